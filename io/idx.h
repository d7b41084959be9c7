/* Reader for the IDX format of MNIST and Fashion-MNIST: a big-endian header
 * (magic 0x00000803 for [n, rows, cols] unsigned-byte images, 0x00000801 for
 * [n] unsigned-byte labels) followed by the raw bytes. Files may be gzip'ed
 * or plain; both are read the same way. */
#ifndef TD_IDX_H
#define TD_IDX_H

#include <stddef.h>

#include "graph/status.h"
#include "io/dataset.h"

/* Where td_dataset_load_fashion_mnist looks when dir is NULL (the Debian
 * package dataset-fashion-mnist installs here). */
#define TD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Loads an images file and its labels file into *out: sample_shape
 * [rows, cols], the pixel bytes kept as they are in out->pixels (each
 * stands for byte / 255, see io/dataset.h), labels as int32,
 * classes = 1 + the largest label. *out is overwritten (not freed first); on
 * success the caller frees it with td_dataset_free, on failure it is left
 * zeroed. Errors, with a message naming the path in err:
 *   TD_ERR_IO      a file is missing or unreadable;
 *   TD_ERR_FORMAT  wrong magic number, zero-sized dims, a truncated file
 *                  (expected vs found bytes), corrupt gzip data, or image and
 *                  label counts that differ;
 *   TD_ERR_NOMEM   the pixels do not fit in memory. */
enum td_status td_idx_load(const char *images_path, const char *labels_path, struct td_dataset *out,
                           char *err, size_t errlen);

/* Loads Fashion-MNIST's training (train != 0: train-*) or test (t10k-*)
 * split from dir (NULL: TD_FASHION_MNIST_DIR), trying
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz and then the name without
 * .gz. When neither exists the TD_ERR_IO message says how to install the
 * data set. Otherwise as td_idx_load. */
enum td_status td_dataset_load_fashion_mnist(const char *dir, int train, struct td_dataset *out,
                                             char *err, size_t errlen);

#endif
