/* Shared pieces of the libFuzzer targets in tests/fuzz/ (see run.sh).
 *
 * Tandem's loaders read paths, so each target writes the fuzzer's bytes to
 * a memory-backed file (memfd) and hands the loader "/proc/self/fd/N": no
 * disk traffic, and the loaders run exactly as they do on real files. */
#ifndef TD_FUZZ_H
#define TD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "io/checkpoint.h"

struct fz_file {
    int fd;
    char path[64];
};

/* Once per process, for targets that reach HDF5: no error printing, and
 * HDF5's free lists keep what they free, so the metadata cache of each
 * opened file reuses memory instead of faulting in fresh pages (about ten
 * times the executions per second). */
void fz_hdf5_init(void);

/* Creates the memfd once; aborts when it cannot. */
void fz_file_init(struct fz_file *f, const char *name);

/* Makes the file hold exactly data[0 .. n). */
void fz_file_set(struct fz_file *f, const uint8_t *data, size_t n);

/* The input of the HDF5 targets: one byte of flags, then the file. Writes
 * the file into f (a memfd named `name`, created on first use); with bit 0
 * of the flags set, its first 512 bytes are replaced by a valid Tandem
 * header of `kind` (io/seal.h) for the rest, so that the loader gets past
 * the integrity check and HDF5 parses the rest (files shorter than the
 * header are written as they are). Returns the flags, or -1 for an empty
 * input. */
int fz_file_input(struct fz_file *f, const char *name, const uint8_t *data, size_t n,
                  const char *kind);

/* Aborts (a crash the fuzzer reports) when `cond` is false. */
#define FZ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) fz_fail(__FILE__, __LINE__, #cond);                                           \
    } while (0)
void fz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Aborts unless every HDF5 object a loader opened has been closed again. */
void fz_assert_hdf5_closed(void);

/* Aborts unless an error message is set and names the path. */
void fz_assert_message(const char *err, const char *path);

/* The model whose weights fuzz_weights imports and make_seeds exports:
 * fc1/weight [4,3], fc1/bias [4], out/weight [2,4], initialised from seed. */
struct td_graph *fz_small_model(uint64_t seed);

/* What fuzz_checkpoint loads and make_seeds saves: the small model's
 * parameters, an optimizer block and one scalar of each other kind. */
struct fz_ckpt {
    struct td_graph *g;
    float moments[7];
    int64_t step;
    uint64_t seed;
    double lr;
    struct td_ckpt_entry e[8];
    int n;
};
void fz_ckpt_init(struct fz_ckpt *c, uint64_t seed);

#endif
