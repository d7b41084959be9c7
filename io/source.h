/* Batch sources: where a training loop (optim/train.h) gets its batches.
 *
 * A source fills a fixed list of buffers, one per model input (for example
 * images and labels, or token ids and next-token targets). Training batches
 * are a pure function of the step index, so a run resumed at step k sees
 * exactly the batches an uninterrupted run saw, and a checkpoint needs no
 * iterator state beyond the step. Evaluation batches are a fixed, finite
 * list. A source is a plain struct of callbacks: fill one in to train on
 * data of your own. */
#ifndef TD_SOURCE_H
#define TD_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"
#include "io/dataset.h"
#include "io/text.h"

#define TD_SOURCE_MAX_BUFS 4

struct td_source {
    void *ctx; /* passed to every callback */
    int n_bufs;
    /* Buffer i holds a tensor of shape[i] and dtype[i] (TD_F32: float,
     * TD_I32: int32_t); shape[i].dim[0] is the batch. */
    struct td_shape shape[TD_SOURCE_MAX_BUFS];
    enum td_dtype dtype[TD_SOURCE_MAX_BUFS];
    /* Training batches in one pass over the data (an epoch), or 0 when the
     * source samples without epochs (random windows of a text). */
    int64_t steps_per_epoch;
    /* Items one batch counts for throughput: samples, or tokens of a text;
     * and items in the training data (the epoch column of sources without
     * epochs counts passes as steps * items_per_batch / train_items). */
    int64_t items_per_batch;
    int64_t train_items;
    const char *item_name; /* "samples", "tokens" */
    /* Fills the buffers with the training batch of step `step` (0-based).
     * Must be a pure function of (the source, step) and allocate nothing.
     * Returns TD_OK or an error with a message in err. */
    enum td_status (*train_batch)(void *ctx, int64_t step, void *const *bufs, char *err,
                                  size_t errlen);
    /* Evaluation batches, and batch i (0 <= i < eval_batches): fills the
     * buffers and returns how many leading samples are real; the rest of a
     * short last batch is padding that metrics must skip. */
    int64_t eval_batches;
    int64_t (*eval_batch)(void *ctx, int64_t i, void *const *bufs);
    /* Releases ctx (may be NULL). Called by td_source_free. */
    void (*release)(void *ctx);
};

/* Calls src->release and zeroes *src. NULL and a zeroed source are no-ops. */
void td_source_free(struct td_source *src);

/* Data-parallel sharding: rank `rank` of `ranks` processes takes rows
 * [rank * batch, (rank + 1) * batch) of every global batch of ranks * batch
 * rows, so the ranks together see exactly the batches one process with the
 * global batch would. A single process is rank 0 of 1. */

/* Labelled images: buffers x [batch, sample...] TD_F32 and labels [batch]
 * TD_I32. Training walks `train` in epochs of shuffled full global batches
 * (G = ranks * batch): step k is global batch k % S of epoch k / S
 * (S = n / G; the last n % G samples of each shuffled epoch are skipped),
 * the order of epoch e a Fisher-Yates shuffle drawn from (seed, e) as
 * td_batcher's; this rank copies only its rows. Evaluation walks `eval`
 * (may be NULL: no evaluation batches) in order in batches of `batch`, the
 * last one padded. The datasets are not copied: they must outlive the
 * source. Returns TD_OK, TD_ERR_ARG (batch < 1, a global batch larger than
 * the training set, rank outside [0, ranks), sample shapes that differ, a
 * NULL or empty dataset) or TD_ERR_NOMEM, with a message in err. Free with
 * td_source_free. */
enum td_status td_source_images(const struct td_dataset *train, const struct td_dataset *eval,
                                int64_t batch, uint64_t seed, int rank, int ranks,
                                struct td_source *src, char *err, size_t errlen);

/* Windows of a text: buffers x (token ids) and y (next-token targets), both
 * [batch, context] TD_I32. Training batch k is this rank's rows of
 * td_text_sample(t, seed, k) over the global batch (td_text_sample_rows):
 * random windows, no epochs (steps_per_epoch 0; train_items is the number
 * of training tokens). Evaluation walks the validation windows in order
 * (td_text_val_batch), the last batch padded. t is not copied: it must
 * outlive the source. Returns TD_OK, TD_ERR_ARG (batch or context < 1, a
 * training part shorter than one window) or TD_ERR_NOMEM, with a message in
 * err. Free with td_source_free. */
enum td_status td_source_text(const struct td_text *t, int64_t batch, int64_t context,
                              uint64_t seed, int rank, int ranks, struct td_source *src, char *err,
                              size_t errlen);

#endif
