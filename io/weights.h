/* Parameters to and from HDF5, laid out for h5py and PyTorch users: each
 * parameter is a float32 dataset at its hierarchical name ("fc1/weight" is
 * dataset `weight` in group `fc1`) with its true shape (dense weights are
 * [out, in], as torch.nn.Linear stores them). The root group carries the
 * fixed-length string attributes framework = "tandem", version = TD_VERSION
 * and param_order, an array of the parameter names in creation order (h5py
 * reads them as bytes). The file starts with Tandem's 512-byte integrity
 * header (io/seal.h, an HDF5 user block that HDF5 and h5py skip), kind
 * "weights".
 *
 * Optional metadata lets a file rebuild its model on its own: root string
 * attributes `model` (a model-zoo name) and `model_config` (the model's
 * options, "layers=4 d_model=256 ..."), and, for text models, dataset
 * `vocab` (uint8 [V], the byte of each token id). `vocab` is the one
 * dataset name reserved for metadata: importing skips it. */
#ifndef TD_WEIGHTS_H
#define TD_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* td_weights_import flag: datasets in the file that match no parameter are
 * ignored instead of being an error. */
#define TD_WEIGHTS_ALLOW_EXTRA 1u

/* Writes every parameter's current value (p->value) to path. The file is
 * written as "<path>.tmp" and renamed over path, so an existing file is
 * replaced only by a complete one. Returns TD_OK, TD_ERR_ARG (NULL argument,
 * path too long), TD_ERR_IO (cannot create, write, sync or rename) or
 * TD_ERR_BACKEND (HDF5 refused a name, e.g. "a" and "a/b" both
 * parameters), with a message in err. */
enum td_status td_weights_export(const struct td_params *p, const char *path, char *err,
                                 size_t errlen);

/* What a weights file records besides the parameters. Every field may be
 * NULL (or vocab_size 0): it is then not written. The caller owns the
 * strings and bytes. */
struct td_weights_meta {
    const char *model;        /* zoo name, e.g. "gpt" */
    const char *model_config; /* the model's options as "key=value" words */
    const uint8_t *vocab;     /* vocab_size bytes, strictly increasing */
    int vocab_size;
};

/* td_weights_export with metadata (meta may be NULL). Same errors. */
enum td_status td_weights_export_meta(const struct td_params *p, const struct td_weights_meta *meta,
                                      const char *path, char *err, size_t errlen);

/* Reads the metadata attributes of a weights file: model and model_config
 * into the caller's buffers (each `len` bytes; "" when the file has none).
 * The vocabulary is read by td_vocab_load (io/text.h). Returns TD_OK,
 * TD_ERR_IO (missing file) or TD_ERR_FORMAT (not HDF5, an attribute that is
 * not a string), with a message naming the file. */
enum td_status td_weights_read_meta(const char *path, char *model, char *model_config, size_t len,
                                    char *err, size_t errlen);

/* Reads every parameter of p from path into p->value. A file Tandem wrote
 * must pass its integrity check (checksum and length) before HDF5 reads any
 * of it; a plain HDF5 file from another program (h5py, PyTorch users: no
 * user block, HDF5's signature at offset 0) has no checksum and is read as
 * it is, checked like any other; any other file is refused. Every parameter
 * must be present as a float32 dataset of exactly its shape, and (unless
 * flags has TD_WEIGHTS_ALLOW_EXTRA) the file may hold no other dataset. All
 * of this is checked, and all data read, before any value is written: on any
 * error p->value is unchanged. Errors, with a message naming the file and the
 * offending parameter or dataset (and the shapes or types that differ):
 * TD_ERR_IO (missing file), TD_ERR_FORMAT (checksum or length mismatch: the
 * file is corrupt; a Tandem file of another kind; not HDF5; missing
 * parameter, wrong dtype or shape, extra dataset, unreadable data),
 * TD_ERR_NOMEM, TD_ERR_ARG. */
enum td_status td_weights_import(struct td_params *p, const char *path, unsigned flags, char *err,
                                 size_t errlen);

#endif
