#include "io/text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/rng.h"
#include "io/ioutil.h"

/* Largest context accepted: keeps context + 1 and window arithmetic far from
 * overflow. */
#define TEXT_MAX_CONTEXT ((int64_t)1 << 48)

enum td_status td_vocab_init(struct td_vocab *v, const uint8_t *bytes, int n, char *err,
                             size_t errlen)
{
    if (!v || (n > 0 && !bytes))
        return td_io_errf(TD_ERR_ARG, err, errlen, "vocabulary: NULL argument");
    if (n < 1 || n > 256)
        return td_io_errf(TD_ERR_ARG, err, errlen, "a vocabulary holds 1 to 256 bytes, not %d", n);
    for (int i = 1; i < n; i++)
        if (bytes[i] <= bytes[i - 1])
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "byte 0x%02x at index %d does not follow 0x%02x (the bytes must be "
                              "strictly increasing)",
                              bytes[i], i, bytes[i - 1]);
    v->size = n;
    memset(v->byte, 0, sizeof(v->byte));
    memcpy(v->byte, bytes, (size_t)n);
    for (int b = 0; b < 256; b++) v->id[b] = -1;
    for (int i = 0; i < n; i++) v->id[bytes[i]] = (int16_t)i;
    return TD_OK;
}

/* Checks the arguments shared by the loaders; name is already non-NULL. */
static enum td_status check_split_args(const char *name, double val_fraction, int64_t context,
                                       char *err, size_t errlen)
{
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: val_fraction %g is not in [0, 1)", name,
                          val_fraction);
    if (context < 1 || context > TEXT_MAX_CONTEXT)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "%s: context %" PRId64 " is not a window length in [1, 2^48]", name,
                          context);
    return TD_OK;
}

/* Turns the n bytes of buf (n >= 1) into token ids in place and fills t,
 * which takes buf on success; on failure buf is freed. */
static enum td_status tokenize(uint8_t *buf, int64_t n, const char *name, double val_fraction,
                               int64_t context, struct td_text *t, char *err, size_t errlen)
{
    int64_t n_val = (int64_t)(val_fraction * (double)n);
    int64_t n_train = n - n_val;
    if (n_train < context + 1 || (val_fraction > 0.0 && n_val < context + 1)) {
        free(buf);
        if (val_fraction > 0.0)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: too short for context %" PRId64 ": %" PRId64
                              " tokens split into %" PRId64 " for training and %" PRId64
                              " for validation (val_fraction %g); each part needs at least "
                              "%" PRId64 " (context + 1)",
                              name, context, n, n_train, n_val, val_fraction, context + 1);
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: too short for context %" PRId64 ": %" PRId64
                          " tokens; training needs at least %" PRId64 " (context + 1)",
                          name, context, n, context + 1);
    }
    uint8_t seen[256] = {0}, bytes[256];
    for (int64_t i = 0; i < n; i++) seen[buf[i]] = 1;
    int size = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) bytes[size++] = (uint8_t)b;
    enum td_status st = td_vocab_init(&t->vocab, bytes, size, err, errlen);
    if (st != TD_OK) {
        free(buf);
        return st;
    }
    for (int64_t i = 0; i < n; i++) buf[i] = (uint8_t)t->vocab.id[buf[i]];
    t->tokens = buf;
    t->n = n;
    t->n_train = n_train;
    return TD_OK;
}

enum td_status td_text_from_bytes(const uint8_t *bytes, size_t n, const char *name,
                                  double val_fraction, int64_t context, struct td_text *t,
                                  char *err, size_t errlen)
{
    if (!name) name = "text";
    if (!t) return td_io_errf(TD_ERR_ARG, err, errlen, "%s: NULL text", name);
    memset(t, 0, sizeof(*t));
    if (n > 0 && !bytes) return td_io_errf(TD_ERR_ARG, err, errlen, "%s: NULL bytes", name);
    enum td_status st = check_split_args(name, val_fraction, context, err, errlen);
    if (st != TD_OK) return st;
    if (n == 0) return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: empty file, no tokens", name);
    if (n > (uint64_t)INT64_MAX)
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: %zu bytes do not fit", name, n);
    uint8_t *buf = malloc(n);
    if (!buf)
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory for %zu tokens", name, n);
    memcpy(buf, bytes, n);
    return tokenize(buf, (int64_t)n, name, val_fraction, context, t, err, errlen);
}

/* Reads the whole of fd into a malloc'd buffer. `hint` is the expected size
 * (a regular file's), 0 when unknown; the file may still differ from it. */
static enum td_status read_all(int fd, size_t hint, uint8_t **out, size_t *len, const char *path,
                               char *err, size_t errlen)
{
    size_t cap = hint > 0 && hint < SIZE_MAX ? hint + 1 : (size_t)1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            uint8_t *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!grown) break;
            buf = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int saved = errno;
            free(buf);
            return td_io_errf(TD_ERR_IO, err, errlen, "%s: read failed: %s", path, strerror(saved));
        }
        if (r == 0) {
            *out = buf;
            *len = n;
            return TD_OK;
        }
        n += (size_t)r;
    }
    free(buf);
    return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory after %zu bytes", path, n);
}

enum td_status td_text_load(const char *path, double val_fraction, int64_t context,
                            struct td_text *t, char *err, size_t errlen)
{
    if (!t) return td_io_errf(TD_ERR_ARG, err, errlen, "text load: NULL text");
    memset(t, 0, sizeof(*t));
    if (!path) return td_io_errf(TD_ERR_ARG, err, errlen, "text load: NULL path");
    enum td_status st = check_split_args(path, val_fraction, context, err, errlen);
    if (st != TD_OK) return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        st = td_io_errf(TD_ERR_IO, err, errlen, "%s: is a directory, not a text file", path);
    } else {
        size_t hint = S_ISREG(sb.st_mode) && sb.st_size > 0 ? (size_t)sb.st_size : 0;
        uint8_t *buf = NULL;
        size_t n = 0;
        st = read_all(fd, hint, &buf, &n, path, err, errlen);
        if (st == TD_OK && n == 0) {
            free(buf);
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: empty file, no tokens", path);
        } else if (st == TD_OK) {
            st = tokenize(buf, (int64_t)n, path, val_fraction, context, t, err, errlen);
        }
    }
    close(fd);
    return st;
}

void td_text_free(struct td_text *t)
{
    if (!t) return;
    free(t->tokens);
    memset(t, 0, sizeof(*t));
}

/* The high 64 bits of a * b, in portable C. */
static uint64_t mul_high(uint64_t a, uint64_t b)
{
    uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32, b_lo = b & 0xffffffffu, b_hi = b >> 32;
    uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
    uint64_t mid = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
    return a_hi * b_hi + (hi_lo >> 32) + (mid >> 32);
}

/* x, y [context] row-major int32: x = tokens[s, s + context), y = the same shifted by one. */
static void copy_window(const uint8_t *tokens, int64_t s, int64_t context, int32_t *x, int32_t *y)
{
    for (int64_t j = 0; j < context; j++) {
        x[j] = tokens[s + j];
        y[j] = tokens[s + j + 1];
    }
}

enum td_status td_text_sample_rows(const struct td_text *t, uint64_t seed, int64_t step,
                                   int64_t first, int64_t rows, int64_t context, int32_t *x,
                                   int32_t *y)
{
    if (!t || !t->tokens || !x || !y || first < 0 || rows < 1 || context < 1 ||
        t->n_train <= context)
        return TD_ERR_ARG;
    uint64_t starts = (uint64_t)(t->n_train - context);
    for (int64_t b = 0; b < rows; b++) {
        uint64_t r = td_rng_u64(seed, TD_RNG_STREAM_TEXT + (uint64_t)step, (uint64_t)(first + b));
        copy_window(t->tokens, (int64_t)mul_high(r, starts), context, x + b * context,
                    y + b * context);
    }
    return TD_OK;
}

enum td_status td_text_sample(const struct td_text *t, uint64_t seed, int64_t step, int64_t batch,
                              int64_t context, int32_t *x, int32_t *y)
{
    return td_text_sample_rows(t, seed, step, 0, batch, context, x, y);
}

int64_t td_text_val_windows(const struct td_text *t, int64_t context)
{
    if (!t || context < 1 || context > TEXT_MAX_CONTEXT || t->n - t->n_train < context + 1)
        return 0;
    return (t->n - t->n_train - 1) / context;
}

int64_t td_text_val_batch(const struct td_text *t, int64_t index, int64_t batch, int64_t context,
                          int32_t *x, int32_t *y)
{
    if (!t || !x || !y || batch < 1 || index < 0) return 0;
    int64_t windows = td_text_val_windows(t, context);
    if (index >= windows / batch + (windows % batch != 0)) return 0;
    int64_t first = index * batch;
    int64_t count = windows - first < batch ? windows - first : batch;
    for (int64_t b = 0; b < count; b++)
        copy_window(t->tokens, t->n_train + (first + b) * context, context, x + b * context,
                    y + b * context);
    size_t pad = (size_t)((batch - count) * context);
    memset(x + count * context, 0, pad * sizeof(int32_t));
    memset(y + count * context, 0, pad * sizeof(int32_t));
    return count;
}

enum td_status td_vocab_encode(const struct td_vocab *v, const uint8_t *s, size_t n, int32_t *ids,
                               char *err, size_t errlen)
{
    if (!v || (n > 0 && (!s || !ids)))
        return td_io_errf(TD_ERR_ARG, err, errlen, "encode: NULL argument");
    for (size_t i = 0; i < n; i++) {
        int id = v->id[s[i]];
        if (id < 0) {
            char shown[8];
            unsigned char c = s[i];
            if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
                snprintf(shown, sizeof(shown), "%c", c);
            else
                snprintf(shown, sizeof(shown), "\\x%02x", c);
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "byte '%s' at offset %zu is not in the vocabulary (%d bytes)", shown,
                              i, v->size);
        }
        ids[i] = id;
    }
    return TD_OK;
}

size_t td_vocab_decode(const struct td_vocab *v, const int32_t *ids, size_t n, uint8_t *out)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= 0 && ids[i] < v->size) {
            out[i] = v->byte[ids[i]];
        } else {
            out[i] = '?';
            bad++;
        }
    }
    return bad;
}
