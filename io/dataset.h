/* In-memory datasets and the seeded minibatch iterator.
 *
 * A dataset holds n samples of one shape as float32 plus one int32 class
 * label each. The batcher walks a dataset in minibatches: the order of epoch
 * e is a pure function of (seed, e), so a run can be resumed from a
 * checkpointed position and sees exactly the batches it would have seen. */
#ifndef TD_DATASET_H
#define TD_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"

/* The samples are x (float) or pixels (bytes, a quarter of the memory:
 * Fashion-MNIST's 47 MB instead of 188 MB); exactly one of the two is set.
 * A pixel byte b stands for the value b / 255.0f, converted as batches are
 * copied out. x, pixels and y are owned by the dataset when it came from a
 * loader (freed by td_dataset_free); a caller may also point them at its own
 * arrays and then must not call td_dataset_free. */
struct td_dataset {
    int64_t n;                    /* number of samples */
    struct td_shape sample_shape; /* shape of one sample, e.g. [28, 28] */
    float *x;                     /* [n, numel(sample_shape)] row-major, or NULL */
    int32_t *y;                   /* [n] labels in [0, classes) */
    int classes;                  /* 1 + the largest label */
    uint8_t *pixels;              /* [n, numel(sample_shape)] row-major, or NULL */
};

/* Frees x and y and zeroes *d. NULL and an already freed dataset are no-ops.
 * Loaders (io/idx.h, io/h5data.h) fill a dataset the caller frees with this. */
void td_dataset_free(struct td_dataset *d);

/* Allocates n floats for a dataset's x, released by td_dataset_free (free).
 * Large blocks are asked to use huge pages, which makes filling them several
 * times faster. NULL when out of memory. */
float *td_dataset_alloc_floats(size_t n);

/* Values per sample: numel(sample_shape). */
int64_t td_dataset_sample_numel(const struct td_dataset *d);

/* Value i of the samples (row-major over [n, sample...]): x[i], or
 * pixels[i] / 255.0f. */
float td_dataset_value(const struct td_dataset *d, int64_t i);

/* Samples [first, first + count) as floats into x [count, numel] (pixel
 * bytes divided by 255, as td_dataset_value). The range must lie in [0, n). */
void td_dataset_copy_samples(const struct td_dataset *d, int64_t first, int64_t count, float *x);

/* What to do with the n % batch_size samples left at the end of an epoch. */
enum td_batch_policy {
    TD_BATCH_DROP_LAST, /* skip them (they differ each epoch when shuffling) */
    TD_BATCH_PARTIAL,   /* return them as a last, smaller batch */
};

/* A position in the stream of batches, for checkpoints. */
struct td_batch_pos {
    uint64_t epoch;
    int64_t index; /* samples of this epoch already returned, in [0, n] */
};

/* A minibatch iterator over a dataset it does not own (the dataset must
 * outlive it). All memory is allocated by td_batcher_init; td_batcher_next
 * allocates nothing. Fields are private: use the functions. */
struct td_batcher {
    const struct td_dataset *data;
    int64_t batch_size;
    enum td_batch_policy policy;
    int shuffle;
    uint64_t seed;
    uint64_t epoch;
    int64_t index;
    int64_t *perm; /* order of the current epoch, n entries */
};

/* Prepares b over d with the given batch size and policy. With shuffle != 0
 * the order of epoch e is a Fisher-Yates shuffle drawn from
 * td_rng_u64(seed, TD_RNG_STREAM_SHUFFLE + e, i); with shuffle == 0 it is 0..n-1 every epoch.
 * Starts at epoch 0, index 0. Returns TD_OK, TD_ERR_ARG (NULL or empty
 * dataset, batch_size < 1, or batch_size > n with TD_BATCH_DROP_LAST, which
 * would make every epoch empty) or TD_ERR_NOMEM, with a message in err. On
 * failure b needs no td_batcher_free. */
enum td_status td_batcher_init(struct td_batcher *b, const struct td_dataset *d, int64_t batch_size,
                               enum td_batch_policy policy, int shuffle, uint64_t seed, char *err,
                               size_t errlen);

/* Frees the permutation; NULL is a no-op. */
void td_batcher_free(struct td_batcher *b);

/* Copies the next batch into x (batch_size * sample numel floats, pixel
 * bytes converted) and y
 * (batch_size labels; y may be NULL) and returns how many samples it copied:
 * batch_size, or fewer for the last batch under TD_BATCH_PARTIAL. Returns 0
 * when the epoch is over; the batcher has then moved to the next epoch, whose
 * first batch the following call returns. */
int64_t td_batcher_next(struct td_batcher *b, float *x, int32_t *y);

/* Copies the `count` samples at the current position into x and y (y may be
 * NULL) and advances past them; count is clipped to what is left of the
 * epoch, and the number copied is returned (0 at the epoch's end, which,
 * unlike td_batcher_next, does not move to the next epoch). Batches of at
 * least 65536 values are copied by OpenMP's current number of threads
 * (omp_get_max_threads: the scattered rows' memory latency dominates, and
 * several threads keep more rows in flight); the result is the same. */
int64_t td_batcher_take(struct td_batcher *b, int64_t count, float *x, int32_t *y);

/* Full batches per epoch, plus one under TD_BATCH_PARTIAL when n % batch_size != 0. */
int64_t td_batcher_num_batches(const struct td_batcher *b);

/* Samples skipped at the end of every epoch (n % batch_size under
 * TD_BATCH_DROP_LAST, 0 under TD_BATCH_PARTIAL). */
int64_t td_batcher_dropped(const struct td_batcher *b);

/* The current position: the next td_batcher_next continues from here. */
struct td_batch_pos td_batcher_tell(const struct td_batcher *b);

/* Moves to pos (for instance one read from a checkpoint): the next batch is
 * the one that followed pos in the original run. TD_ERR_ARG when pos.index
 * is outside [0, n]; b is then unchanged. */
enum td_status td_batcher_seek(struct td_batcher *b, struct td_batch_pos pos, char *err,
                               size_t errlen);

#endif
