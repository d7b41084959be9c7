/* The vocabulary of a text model in HDF5: dataset `vocab`, uint8 [V], the
 * byte of each token id, beside the parameters of the model's weights and
 * checkpoints, so that a file holds what is needed to encode prompts and
 * decode samples. h5py reads it as bytes(f["vocab"][...]).
 *
 * Apart from io/text.h, and not installed (like io/h5util.h, whose
 * td_h5_write_atomic its writer is meant for), because it needs <hdf5.h>,
 * which pkg-config's flags for tandem do not reach: the installed headers
 * stay HDF5-free. Its users are the weights and checkpoint writers and the
 * in-tree tools. Every function expects HDF5's error printing to be off (as
 * it is inside td_h5_write_atomic); `path` is used in messages only. */
#ifndef TD_TEXT_H5_H
#define TD_TEXT_H5_H

#include <hdf5.h>
#include <stddef.h>

#include "io/text.h"

/* Writes v as dataset `vocab` under loc (a file or group open for writing),
 * e.g. from the write callback of td_h5_write_atomic. TD_ERR_ARG when v is
 * not a valid vocabulary (size outside 1..256, bytes not strictly
 * increasing); TD_ERR_BACKEND when HDF5 refuses, e.g. `vocab` exists. */
enum td_status td_vocab_write_h5(hid_t loc, const struct td_vocab *v, const char *path, char *err,
                                 size_t errlen);

/* Reads dataset `vocab` under loc into v, checking its type (an 8-bit
 * unsigned integer), shape ([V], 1 <= V <= 256) and that its bytes are
 * strictly increasing. v is unchanged on error. TD_ERR_FORMAT:
 *   "<path>: no vocabulary (dataset 'vocab'): not a text model's weights"
 *   "<path>: dataset 'vocab' is int32, expected uint8"
 *   "<path>: dataset 'vocab' has shape [2,3], expected [V] with V in 1..256"
 *   "<path>: dataset 'vocab' is not a vocabulary: byte 0x61 at index 2 does
 *    not follow 0x61 (the bytes must be strictly increasing)" */
enum td_status td_vocab_read_h5(hid_t loc, struct td_vocab *v, const char *path, char *err,
                                size_t errlen);

#endif
