/* td_text_from_bytes on any bytes, then what a training run does with the
 * result: training and validation windows, and an encode/decode round trip.
 * Input: a byte giving the context (1 to 64), a byte giving the validation
 * fraction (0 to 0.5), then the text. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 2) return 0;
    int64_t context = 1 + data[0] % 64;
    double val = (data[1] % 128) / 256.0;
    struct td_text t;
    char err[512] = "";
    if (td_text_from_bytes(data + 2, n - 2, "fuzz", val, context, &t, err, sizeof(err)) != TD_OK) {
        FZ_ASSERT(err[0] != '\0' && !t.tokens && t.n == 0);
        return 0;
    }
    FZ_ASSERT(t.n == (int64_t)(n - 2) && t.n_train > context && t.n_train <= t.n);
    FZ_ASSERT(t.vocab.size >= 1 && t.vocab.size <= 256);
    for (int64_t i = 0; i < t.n; i++) FZ_ASSERT(t.tokens[i] < t.vocab.size);
    enum { B = 3 };
    int32_t x[B * 64], y[B * 64];
    FZ_ASSERT(td_text_sample(&t, 1, (int64_t)data[0], B, context, x, y) == TD_OK);
    for (int i = 0; i < B * context; i++)
        FZ_ASSERT(x[i] >= 0 && x[i] < t.vocab.size && y[i] >= 0 && y[i] < t.vocab.size);
    int64_t windows = td_text_val_windows(&t, context), seen = 0, got;
    for (int64_t b = 0; (got = td_text_val_batch(&t, b, B, context, x, y)) > 0; b++) seen += got;
    FZ_ASSERT(seen == windows);
    size_t m = n - 2 < 64 ? n - 2 : 64;
    int32_t ids[64];
    uint8_t back[64];
    FZ_ASSERT(td_vocab_encode(&t.vocab, data + 2, m, ids, err, sizeof(err)) == TD_OK);
    FZ_ASSERT(td_vocab_decode(&t.vocab, ids, m, back) == 0 && memcmp(back, data + 2, m) == 0);
    td_text_free(&t);
    return 0;
}
