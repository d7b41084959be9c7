#include "io/dataset.h"

#include <immintrin.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/rng.h"
#include "io/ioutil.h"

void td_dataset_free(struct td_dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->pixels);
    free(d->y);
    memset(d, 0, sizeof(*d));
}

float *td_dataset_alloc_floats(size_t n)
{
    return td_alloc_large(n * sizeof(float));
}

int64_t td_dataset_sample_numel(const struct td_dataset *d)
{
    return td_shape_numel(&d->sample_shape);
}

float td_dataset_value(const struct td_dataset *d, int64_t i)
{
    return d->x ? d->x[i] : (float)d->pixels[i] / 255.0f;
}

/* x [count] from pixel bytes [count]: the same division as
 * td_dataset_value, so both give the same bits. Where x is 64-byte aligned
 * the floats go out by streaming stores: a batch written here is read by
 * the plan's first product on every core, and ordinary stores must first
 * take each line back from the caches that read the last batch. When this
 * VM's two cores sit two cache hops apart, an evaluation batch of 128
 * images took 97-101 us to copy so and 14 us streamed, and the Adam epoch's
 * loop outside its plans 76-86 ms against 39-44; one hop apart the epoch
 * takes the same time either way (the copies 2 ms less, the plans, reading
 * the batch from memory, 2 ms more). */
static void pixels_to_floats(float *restrict x, const uint8_t *restrict b, int64_t count)
{
    int64_t i = 0;
#ifdef __AVX512F__
    if (((uintptr_t)x & 63) == 0 && count >= 16) {
        const __m512 d = _mm512_set1_ps(255.0f);
        for (; i + 16 <= count; i += 16) {
            __m128i u8 = _mm_loadu_si128((const __m128i *)(b + i));
            __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(u8));
            _mm512_stream_ps(x + i, _mm512_div_ps(v, d));
        }
        _mm_sfence();
    }
#endif
    for (; i < count; i++) x[i] = (float)b[i] / 255.0f;
}

void td_dataset_copy_samples(const struct td_dataset *d, int64_t first, int64_t count, float *x)
{
    int64_t numel = td_dataset_sample_numel(d);
    if (d->x)
        memcpy(x, d->x + first * numel, (size_t)(count * numel) * sizeof(float));
    else
        pixels_to_floats(x, d->pixels + first * numel, count * numel);
}

/* Fisher-Yates from the last position down; draw i depends only on
 * (seed, TD_RNG_STREAM_SHUFFLE + epoch, i), so the order of an epoch needs no generator state. The
 * modulo bias is below n / 2^64. */
static void fill_perm(struct td_batcher *b)
{
    int64_t n = b->data->n;
    for (int64_t i = 0; i < n; i++) b->perm[i] = i;
    if (!b->shuffle) return;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t r = td_rng_u64(b->seed, TD_RNG_STREAM_SHUFFLE + b->epoch, (uint64_t)i);
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
}

enum td_status td_batcher_init(struct td_batcher *b, const struct td_dataset *d, int64_t batch_size,
                               enum td_batch_policy policy, int shuffle, uint64_t seed, char *err,
                               size_t errlen)
{
    if (!b || !d) return td_io_errf(TD_ERR_ARG, err, errlen, "batcher: NULL batcher or dataset");
    memset(b, 0, sizeof(*b));
    if (d->n < 1 || (!d->x && !d->pixels))
        return td_io_errf(TD_ERR_ARG, err, errlen, "batcher: the dataset is empty");
    if (batch_size < 1)
        return td_io_errf(TD_ERR_ARG, err, errlen, "batcher: batch size %" PRId64 " is not >= 1",
                          batch_size);
    if (policy != TD_BATCH_DROP_LAST && policy != TD_BATCH_PARTIAL)
        return td_io_errf(TD_ERR_ARG, err, errlen, "batcher: unknown last-batch policy %d",
                          (int)policy);
    if (policy == TD_BATCH_DROP_LAST && batch_size > d->n)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "batcher: batch size %" PRId64 " exceeds the %" PRId64
                          " samples and the last partial batch is dropped: every epoch "
                          "would be empty",
                          batch_size, d->n);
    b->perm = malloc((size_t)d->n * sizeof(*b->perm));
    if (!b->perm)
        return td_io_errf(TD_ERR_NOMEM, err, errlen,
                          "batcher: out of memory for a %" PRId64 "-sample permutation", d->n);
    b->data = d;
    b->batch_size = batch_size;
    b->policy = policy;
    b->shuffle = shuffle != 0;
    b->seed = seed;
    fill_perm(b);
    return TD_OK;
}

void td_batcher_free(struct td_batcher *b)
{
    if (!b) return;
    free(b->perm);
    b->perm = NULL;
}

/* Samples the epoch returns in total: n, less the dropped tail. */
static int64_t epoch_len(const struct td_batcher *b)
{
    return b->data->n - td_batcher_dropped(b);
}

/* Samples ahead of the one being copied whose bytes are requested. */
#define PREFETCH_AHEAD 4

static void prefetch_sample(const struct td_dataset *d, int64_t s)
{
    int64_t numel = td_dataset_sample_numel(d);
    const char *p = d->x ? (const char *)(d->x + s * numel) : (const char *)(d->pixels + s * numel);
    size_t bytes = (size_t)numel * (d->x ? sizeof(float) : 1);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
    __builtin_prefetch(&d->y[s]);
}

int64_t td_batcher_take(struct td_batcher *b, int64_t count, float *x, int32_t *y)
{
    int64_t left = epoch_len(b) - b->index;
    if (left < count) count = left > 0 ? left : 0;
    int64_t numel = td_dataset_sample_numel(b->data);
#pragma omp parallel for schedule(static) if (count * numel >= 65536)
    for (int64_t k = 0; k < count; k++) {
        int64_t s = b->perm[b->index + k];
        /* Shuffled rows are scattered over the whole data set: ask for a
         * later one ahead, so its cache misses overlap this copy. */
        if (k + PREFETCH_AHEAD < count)
            prefetch_sample(b->data, b->perm[b->index + k + PREFETCH_AHEAD]);
        td_dataset_copy_samples(b->data, s, 1, x + k * numel);
        if (y) y[k] = b->data->y[s];
    }
    b->index += count;
    return count;
}

int64_t td_batcher_next(struct td_batcher *b, float *x, int32_t *y)
{
    if (epoch_len(b) - b->index <= 0) {
        b->epoch++;
        b->index = 0;
        fill_perm(b);
        return 0;
    }
    return td_batcher_take(b, b->batch_size, x, y);
}

int64_t td_batcher_num_batches(const struct td_batcher *b)
{
    int64_t n = b->data->n, bs = b->batch_size;
    return b->policy == TD_BATCH_PARTIAL ? (n + bs - 1) / bs : n / bs;
}

int64_t td_batcher_dropped(const struct td_batcher *b)
{
    return b->policy == TD_BATCH_DROP_LAST ? b->data->n % b->batch_size : 0;
}

struct td_batch_pos td_batcher_tell(const struct td_batcher *b)
{
    struct td_batch_pos p = {b->epoch, b->index};
    return p;
}

enum td_status td_batcher_seek(struct td_batcher *b, struct td_batch_pos pos, char *err,
                               size_t errlen)
{
    if (pos.index < 0 || pos.index > b->data->n)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "batcher: position index %" PRId64 " is outside [0, %" PRId64 "]",
                          pos.index, b->data->n);
    if (pos.epoch != b->epoch) {
        b->epoch = pos.epoch;
        fill_perm(b);
    }
    b->index = pos.index;
    return TD_OK;
}
