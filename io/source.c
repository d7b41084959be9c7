#include "io/source.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

void td_source_free(struct td_source *src)
{
    if (!src) return;
    if (src->release) src->release(src->ctx);
    memset(src, 0, sizeof(*src));
}

/* Both batchers keep a permutation of their dataset; the training one is
 * refilled only when a step enters another epoch. */
struct image_source {
    struct td_batcher train, eval; /* train walks global batches */
    int has_eval;
    int64_t batch, steps_per_epoch;
    int rank;
};

static void image_release(void *ctx)
{
    struct image_source *s = ctx;
    if (!s) return;
    td_batcher_free(&s->train);
    if (s->has_eval) td_batcher_free(&s->eval);
    free(s);
}

static enum td_status image_train_batch(void *ctx, int64_t step, void *const *bufs, char *err,
                                        size_t errlen)
{
    struct image_source *s = ctx;
    if (step < 0)
        return td_io_errf(TD_ERR_ARG, err, errlen, "images: step %" PRId64 " is negative", step);
    struct td_batch_pos pos = {(uint64_t)(step / s->steps_per_epoch),
                               step % s->steps_per_epoch * s->train.batch_size +
                                   s->rank * s->batch};
    enum td_status st = td_batcher_seek(&s->train, pos, err, errlen);
    if (st != TD_OK) return st;
    td_batcher_take(&s->train, s->batch, bufs[0], bufs[1]);
    return TD_OK;
}

static int64_t image_eval_batch(void *ctx, int64_t i, void *const *bufs)
{
    struct image_source *s = ctx;
    struct td_batch_pos pos = {0, i * s->batch};
    if (td_batcher_seek(&s->eval, pos, NULL, 0) != TD_OK) return 0;
    int64_t n = td_batcher_next(&s->eval, bufs[0], bufs[1]);
    int64_t numel = td_dataset_sample_numel(s->eval.data);
    /* Padding rows get defined values so that no kernel reads garbage. */
    memset((float *)bufs[0] + n * numel, 0, (size_t)((s->batch - n) * numel) * sizeof(float));
    memset((int32_t *)bufs[1] + n, 0, (size_t)(s->batch - n) * sizeof(int32_t));
    return n;
}

static enum td_status check_shard(const char *what, int64_t batch, int rank, int ranks, char *err,
                                  size_t errlen)
{
    if (ranks < 1 || rank < 0 || rank >= ranks)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: rank %d of %d", what, rank, ranks);
    if (batch < 1 || batch > INT64_MAX / ranks)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: batch %" PRId64 " is not >= 1", what,
                          batch);
    return TD_OK;
}

enum td_status td_source_images(const struct td_dataset *train, const struct td_dataset *eval,
                                int64_t batch, uint64_t seed, int rank, int ranks,
                                struct td_source *src, char *err, size_t errlen)
{
    if (!src || !train) return td_io_errf(TD_ERR_ARG, err, errlen, "images: NULL argument");
    memset(src, 0, sizeof(*src));
    enum td_status st = check_shard("images", batch, rank, ranks, err, errlen);
    if (st != TD_OK) return st;
    if (eval && !td_shape_equal(&eval->sample_shape, &train->sample_shape)) {
        char a[96], b[96];
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "images: evaluation samples are %s, training samples %s",
                          td_shape_format(&eval->sample_shape, a, sizeof(a)),
                          td_shape_format(&train->sample_shape, b, sizeof(b)));
    }
    if (train->sample_shape.rank + 1 > TD_MAX_DIMS)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "images: samples of rank %d leave no axis for the batch (at most %d)",
                          train->sample_shape.rank, TD_MAX_DIMS - 1);
    struct image_source *s = calloc(1, sizeof(*s));
    if (!s) return td_io_errf(TD_ERR_NOMEM, err, errlen, "images: out of memory");
    st = td_batcher_init(&s->train, train, batch * ranks, TD_BATCH_DROP_LAST, 1, seed, err, errlen);
    if (st != TD_OK) {
        free(s);
        return st;
    }
    if (eval) {
        st = td_batcher_init(&s->eval, eval, batch, TD_BATCH_PARTIAL, 0, 0, err, errlen);
        if (st != TD_OK) {
            td_batcher_free(&s->train);
            free(s);
            return st;
        }
        s->has_eval = 1;
    }
    s->batch = batch;
    s->rank = rank;
    s->steps_per_epoch = td_batcher_num_batches(&s->train);
    src->ctx = s;
    src->n_bufs = 2;
    src->shape[0].rank = train->sample_shape.rank + 1;
    src->shape[0].dim[0] = batch;
    for (int d = 0; d < train->sample_shape.rank; d++)
        src->shape[0].dim[d + 1] = train->sample_shape.dim[d];
    src->dtype[0] = TD_F32;
    src->shape[1] = TD_SHAPE(batch);
    src->dtype[1] = TD_I32;
    src->steps_per_epoch = s->steps_per_epoch;
    src->items_per_batch = batch;
    src->train_items = train->n;
    src->item_name = "samples";
    src->train_batch = image_train_batch;
    src->eval_batches = eval ? td_batcher_num_batches(&s->eval) : 0;
    src->eval_batch = image_eval_batch;
    src->release = image_release;
    return TD_OK;
}

struct text_source {
    const struct td_text *t;
    int64_t batch, context, first_row;
    uint64_t seed;
};

static void text_release(void *ctx)
{
    free(ctx);
}

static enum td_status text_train_batch(void *ctx, int64_t step, void *const *bufs, char *err,
                                       size_t errlen)
{
    const struct text_source *s = ctx;
    if (td_text_sample_rows(s->t, s->seed, step, s->first_row, s->batch, s->context, bufs[0],
                            bufs[1]) != TD_OK)
        return td_io_errf(TD_ERR_ARG, err, errlen, "text: cannot sample step %" PRId64, step);
    return TD_OK;
}

static int64_t text_eval_batch(void *ctx, int64_t i, void *const *bufs)
{
    const struct text_source *s = ctx;
    return td_text_val_batch(s->t, i, s->batch, s->context, bufs[0], bufs[1]);
}

enum td_status td_source_text(const struct td_text *t, int64_t batch, int64_t context,
                              uint64_t seed, int rank, int ranks, struct td_source *src, char *err,
                              size_t errlen)
{
    if (!src || !t) return td_io_errf(TD_ERR_ARG, err, errlen, "text: NULL argument");
    memset(src, 0, sizeof(*src));
    enum td_status st = check_shard("text", batch, rank, ranks, err, errlen);
    if (st != TD_OK) return st;
    if (context < 1)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "text: batch %" PRId64 " and context %" PRId64 " must be >= 1", batch,
                          context);
    if (t->n_train < context + 1)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "text: %" PRId64 " training tokens, fewer than one window of %" PRId64,
                          t->n_train, context + 1);
    struct text_source *s = malloc(sizeof(*s));
    if (!s) return td_io_errf(TD_ERR_NOMEM, err, errlen, "text: out of memory");
    *s = (struct text_source){t, batch, context, rank * batch, seed};
    src->ctx = s;
    src->n_bufs = 2;
    src->shape[0] = src->shape[1] = TD_SHAPE(batch, context);
    src->dtype[0] = src->dtype[1] = TD_I32;
    src->items_per_batch = batch * context;
    src->train_items = t->n_train;
    src->item_name = "tokens";
    src->train_batch = text_train_batch;
    src->eval_batches = (td_text_val_windows(t, context) + batch - 1) / batch;
    src->eval_batch = text_eval_batch;
    src->release = text_release;
    return TD_OK;
}
