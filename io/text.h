/* Text for character-level language models: a byte-level vocabulary, a
 * tokenized corpus split into training and validation parts, and the windows
 * a model trains and is evaluated on.
 *
 * A token is a byte of the corpus; the vocabulary is the sorted set of the
 * distinct bytes it holds (73 for the King James Bible of tools/kjv.sh), so
 * token ids follow byte order and UTF-8 text is modelled byte by byte.
 * Everything a loader returns is owned by the struct it fills; sampling and
 * validation batches allocate nothing. The vocabulary's HDF5 form (for
 * weights and checkpoints) is in io/text_h5.h, apart from td_vocab_load, so
 * that this header needs no HDF5 headers. */
#ifndef TD_TEXT_H
#define TD_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

/* A byte-level vocabulary: the sorted distinct bytes of a corpus. */
struct td_vocab {
    int size;          /* V, 1..256 */
    uint8_t byte[256]; /* byte of token id i (i < size), strictly ascending */
    int16_t id[256];   /* token id of byte b, or -1 when b is not in the vocabulary */
};

/* A tokenized corpus split into training and validation parts. */
struct td_text {
    struct td_vocab vocab;
    uint8_t *tokens; /* n token ids (V <= 256 fits a byte); owned, freed by td_text_free */
    int64_t n;
    int64_t n_train; /* tokens [0, n_train) train, [n_train, n) validation */
};

/* Makes v the vocabulary of the n bytes in `bytes`, which must be strictly
 * increasing, 1 <= n <= 256 (token i is bytes[i]). TD_ERR_ARG with a message
 * naming the first byte out of order; v is then unchanged. */
enum td_status td_vocab_init(struct td_vocab *v, const uint8_t *bytes, int n, char *err,
                             size_t errlen);

/* Loads a file of bytes (UTF-8, ASCII, anything; also a pipe or device,
 * read to its end) into t: vocabulary, tokens, and the split. The last
 * floor(val_fraction * n) tokens are for validation; val_fraction is in
 * [0, 1), e.g. 0.1. `context` is the model's window: each part must hold at
 * least one window of context + 1 tokens (the validation part only when
 * val_fraction > 0). On success t owns its tokens (td_text_free); on error t
 * is zeroed and owns nothing. Errors, with a message naming the path:
 *   TD_ERR_IO      "<path>: cannot open: <reason>", "<path>: is a directory,
 *                  not a text file", "<path>: read failed: <reason>"
 *   TD_ERR_FORMAT  "<path>: empty file, no tokens"; too short, e.g.
 *                  "<path>: too short for context 64: 100 tokens split into 90
 *                  for training and 10 for validation (val_fraction 0.1); each
 *                  part needs at least 65 (context + 1)"
 *   TD_ERR_ARG     NULL path or t, val_fraction outside [0, 1), context < 1
 *   TD_ERR_NOMEM */
enum td_status td_text_load(const char *path, double val_fraction, int64_t context,
                            struct td_text *t, char *err, size_t errlen);

/* The same from n bytes in memory (copied: the caller keeps `bytes`). `name`
 * stands for the path in messages (NULL: "text"). */
enum td_status td_text_from_bytes(const uint8_t *bytes, size_t n, const char *name,
                                  double val_fraction, int64_t context, struct td_text *t,
                                  char *err, size_t errlen);

/* Frees the tokens and zeroes *t. NULL and a freed or zeroed text are no-ops. */
void td_text_free(struct td_text *t);

/* Training windows. Fills `batch` rows, each a random window of context + 1
 * training tokens: x gets its first context ids, y its last context (the
 * next-token targets), both int32 [batch, context] row-major. A pure function
 * of (seed, step), so a resumed run sees the same batches: row b starts at
 *   s = (r * (n_train - context)) >> 64,  r = td_rng_u64(seed, TD_RNG_STREAM_TEXT + step, b)
 * (the high half of the 128-bit product: each start in [0, n_train - context - 1]
 * has probability 1 / (n_train - context) within a relative (n_train - context) / 2^64,
 * far below what 2^64 draws could show). Allocates nothing. TD_ERR_ARG, writing nothing,
 * when an argument is NULL, batch < 1, context < 1, or the training part is
 * shorter than context + 1 tokens (a context larger than the one loaded with). */
enum td_status td_text_sample(const struct td_text *t, uint64_t seed, int64_t step, int64_t batch,
                              int64_t context, int32_t *x, int32_t *y);

/* Rows first .. first + rows - 1 of td_text_sample's batch (a data-parallel
 * rank's share of a global batch): the same windows, into x and y
 * [rows, context]. TD_ERR_ARG as td_text_sample, and for first < 0. */
enum td_status td_text_sample_rows(const struct td_text *t, uint64_t seed, int64_t step,
                                   int64_t first, int64_t rows, int64_t context, int32_t *x,
                                   int32_t *y);

/* Validation windows: window k covers tokens [n_train + k context,
 * n_train + (k + 1) context] (context + 1 tokens, consecutive windows share
 * one token), so every validation token after the first is a target exactly
 * once, up to the last partial window, which is dropped. Their number is
 * (n - n_train - 1) / context; 0 when context < 1 or t is NULL. */
int64_t td_text_val_windows(const struct td_text *t, int64_t context);

/* Fills x and y (int32 [batch, context], as td_text_sample) with validation
 * batch `index`, windows [index batch, index batch + batch), and returns how
 * many windows it holds: batch, or fewer for the last batch. Rows past that
 * count are filled with token 0 (a valid id, so a fixed-shape graph can run
 * on them; leave them out of the loss). Returns 0, writing nothing, when
 * index is past the last batch or an argument is bad (NULL, batch < 1,
 * context < 1). Batches number (td_text_val_windows + batch - 1) / batch.
 * Allocates nothing. */
int64_t td_text_val_batch(const struct td_text *t, int64_t index, int64_t batch, int64_t context,
                          int32_t *x, int32_t *y);

/* Encodes n bytes of s (a prompt) into ids. TD_ERR_ARG when a byte is not in
 * the vocabulary, e.g. "byte '\xe2' at offset 7 is not in the vocabulary (73
 * bytes)" (printable bytes other than ' and \ are shown as themselves), or an
 * argument is NULL with n > 0. ids may have been partly written on error. */
enum td_status td_vocab_encode(const struct td_vocab *v, const uint8_t *s, size_t n, int32_t *ids,
                               char *err, size_t errlen);

/* Decodes n ids into n bytes of out. An id outside [0, V) becomes '?';
 * returns how many there were (0 for ids a model sampled over V classes). */
size_t td_vocab_decode(const struct td_vocab *v, const int32_t *ids, size_t n, uint8_t *out);

/* Reads the vocabulary stored in an HDF5 file (a text model's weights or
 * checkpoint; see td_vocab_read_h5 in io/text_h5.h for the checks and
 * errors). TD_ERR_IO when the file is missing, TD_ERR_FORMAT when it is not
 * HDF5 or holds no valid vocabulary; v is unchanged on error. */
enum td_status td_vocab_load(const char *path, struct td_vocab *v, char *err, size_t errlen);

#endif
