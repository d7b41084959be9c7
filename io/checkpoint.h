/* Checkpoints: everything a run needs to resume, in one HDF5 file.
 *
 * A checkpoint is a list of named entries the caller describes; save writes
 * them, load checks the file holds each one with the same kind and size and
 * then fills the caller's memory. Where an entry lives depends on its kind:
 *   TD_CKPT_PARAM  float32 arrays     /params/<name>  (e.g. fc1/weight)
 *   TD_CKPT_F32    float32 arrays     /optim/<name>   (optimizer state blocks)
 *   TD_CKPT_I64    int64 values       /state/<name>   (step, iterator index)
 *   TD_CKPT_U64    uint64 values      /state/<name>   (seed, epoch, RNG counter)
 *   TD_CKPT_F64    float64 values     /state/<name>   (learning-rate schedule)
 * The root carries framework = "tandem", version = TD_VERSION and
 * kind = "checkpoint" (fixed-length strings), and the file starts with
 * Tandem's integrity header (io/seal.h), kind "checkpoint". */
#ifndef TD_CHECKPOINT_H
#define TD_CHECKPOINT_H

#include <stddef.h>

#include "graph/graph.h"

enum td_ckpt_kind { TD_CKPT_PARAM, TD_CKPT_F32, TD_CKPT_I64, TD_CKPT_U64, TD_CKPT_F64 };

/* One entry. The caller owns name, shape and data; they must stay valid
 * during the save or load call. */
struct td_ckpt_entry {
    const char *name; /* path inside the kind's group; '/' makes subgroups */
    enum td_ckpt_kind kind;
    void *data;                   /* count elements: float, int64_t, uint64_t or double */
    size_t count;                 /* elements; 1 for a scalar */
    const struct td_shape *shape; /* optional (NULL: stored as [count], or a scalar when
                                     count is 1); its numel must equal count */
};

/* Fills e[0 .. p->count-1] with one TD_CKPT_PARAM entry per parameter of p
 * (name, shape and its slice of p->value) and returns how many it filled.
 * e must hold p->count entries; the entries point into p. */
int td_ckpt_param_entries(const struct td_params *p, struct td_ckpt_entry *e);

/* Writes the n entries to "<path>.tmp", fsyncs it and renames it over path:
 * a crash during save leaves the previous checkpoint at path intact.
 * Returns TD_OK, TD_ERR_ARG (NULL data or name, count 0, a shape whose numel
 * differs from count, a bad kind, two entries with one name), TD_ERR_IO or
 * TD_ERR_BACKEND, with a message in err. */
enum td_status td_ckpt_save(const char *path, const struct td_ckpt_entry *e, int n, char *err,
                            size_t errlen);

/* Reads the n entries from path into their data. Every entry is checked
 * (present, same kind, same number of elements and, when shape is given, the
 * same shape) and every value read before any entry's data is written: on
 * error the caller's memory is unchanged. Entries in the file that are not
 * asked for are ignored. The file's integrity header is checked (checksum
 * and length) before HDF5 reads any of it; a file without one is not a
 * checkpoint. Errors, with a message naming the path and entry:
 * TD_ERR_IO (missing file), TD_ERR_FORMAT (checksum or length mismatch: the
 * file is truncated or corrupt; no integrity header; not a Tandem
 * checkpoint; missing entry, wrong kind or size), TD_ERR_NOMEM, TD_ERR_ARG. */
enum td_status td_ckpt_load(const char *path, const struct td_ckpt_entry *e, int n, char *err,
                            size_t errlen);

#endif
