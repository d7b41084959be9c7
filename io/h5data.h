/* User datasets from HDF5 (for instance written with h5py):
 *   x  [N, ...]  float32, another float type such as float64 (converted to
 *                float32) or uint8 (scaled by 1/255 into [0, 1]); the sample
 *                shape is x's shape without its first axis (at most
 *                TD_MAX_DIMS axes)
 *   y  [N]       class labels of any integer type, each in [0, 2^31 - 1)
 * Any HDF5 file is read; one that carries Tandem's integrity header
 * (io/seal.h) must pass its checksum first.
 */
#ifndef TD_H5DATA_H
#define TD_H5DATA_H

#include <stddef.h>

#include "graph/status.h"
#include "io/dataset.h"

/* Loads datasets `x` and `y` of the HDF5 file at path into *out; classes is
 * 1 + the largest label. *out is overwritten (not freed first); on success
 * the caller frees it with td_dataset_free, on failure it is left zeroed.
 * Errors, with a message naming the path and the dataset:
 *   TD_ERR_IO      the file is missing or unreadable;
 *   TD_ERR_FORMAT  a Tandem header whose checksum or length does not match, not
 *                  an HDF5 file, x or y missing, an unsupported type (x
 *                  neither float nor uint8, y not an integer), x of rank 0 or
 *                  rank > TD_MAX_DIMS + 1, y not of rank 1, N of x and y
 *                  differing, N = 0, a negative or too large label;
 *   TD_ERR_NOMEM. */
enum td_status td_h5data_load(const char *path, struct td_dataset *out, char *err, size_t errlen);

#endif
