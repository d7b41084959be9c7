/* HDF5 helpers shared by io/weights.c, io/checkpoint.c and io/h5data.c (not
 * installed). Every helper expects the caller to have silenced HDF5's error
 * printing with td_h5_quiet_begin, and turns failures into a status and a
 * message naming the file and object. */
#ifndef TD_H5UTIL_H
#define TD_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"

/* HDF5's automatic error-stack printer, saved so it can be put back. */
struct td_h5_quiet {
    H5E_auto2_t func;
    void *data;
};

/* Saves the current printer into q and turns printing off. */
void td_h5_quiet_begin(struct td_h5_quiet *q);

/* Restores the printer saved in q. */
void td_h5_quiet_end(const struct td_h5_quiet *q);

/* Which files a reader accepts. Every file Tandem writes is sealed (io/seal.h):
 * its checksum is verified before HDF5 parses a byte of it. */
enum td_h5_accept {
    TD_H5_SEALED,          /* only a file Tandem sealed, of the expected kind */
    TD_H5_SEALED_OR_PLAIN, /* also a plain HDF5 file (HDF5's signature at offset 0,
                              no user block) written by another program */
    TD_H5_ANY,             /* also anything else HDF5 opens (user data) */
};

/* Opens path read-only into *file after checking its seal. A sealed file must
 * have a valid checksum and, when kind is not NULL, that kind. Errors, with a
 * message naming path: TD_ERR_IO when the file is missing or unreadable;
 * TD_ERR_FORMAT when the seal is damaged (checksum or length mismatch), the
 * kind differs, the file is not accepted under `accept`, or HDF5 cannot open
 * it. */
enum td_status td_h5_open_read(const char *path, enum td_h5_accept accept, const char *kind,
                               hid_t *file, char *err, size_t errlen);

/* Creates (truncating) path, a plain HDF5 file written by HDF5 itself, for
 * outputs too large to build in memory (an NTK streamed tile by tile). It
 * is not sealed, and HDF5 1.10 may not report a write it lost on a full
 * disk: use it only for outputs that can be computed again, never for what
 * a run resumes from. Closed strongly so that H5Fclose really closes it.
 * TD_ERR_IO naming the path and the reason. */
enum td_status td_h5_create_stream(const char *path, hid_t *file, char *err, size_t errlen);

/* Writes an HDF5 file so that path is only ever replaced by a complete,
 * sealed one. write(file, ctx, err, errlen) fills a file that HDF5 builds in
 * memory (its core driver: HDF5 never writes to disk, since HDF5 1.10 can
 * lose a failed write, e.g. on a full disk, and still report success). Its
 * image is then sealed as `kind` (io/seal.h) and written by Tandem to
 * "<path>.tmp", every write checked, then fsynced and renamed over path. On
 * any failure the temporary is removed and path is untouched; the status of
 * the first failure is returned: TD_ERR_IO with the system's reason ("No
 * space left on device") for the file operations, TD_ERR_NOMEM, or write's
 * own. Needs memory for about twice the file's size while it runs. HDF5's
 * error printing is off meanwhile. This is the one way Tandem writes HDF5
 * files. */
enum td_status td_h5_write_atomic(const char *path, const char *kind,
                                  enum td_status (*write)(hid_t file, const void *ctx, char *err,
                                                          size_t errlen),
                                  const void *ctx, char *err, size_t errlen);

/* A scalar fixed-length UTF-8 string attribute on obj. Fixed-length strings
 * keep HDF5's global heap, which HDF5 1.10 reads without defending against
 * corruption, out of Tandem's files; h5py 3 reads them as bytes
 * (numpy.bytes_: `f.attrs["framework"].decode()`). */
enum td_status td_h5_write_str_attr(hid_t obj, const char *name, const char *value,
                                    const char *path, char *err, size_t errlen);

/* A 1-D fixed-length UTF-8 string array attribute (each element as long as
 * the longest value plus its NUL; h5py reads an array of bytes). n may be 0. */
enum td_status td_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values,
                                          int n, const char *path, char *err, size_t errlen);

/* Reads a scalar fixed-length string attribute of at most 4096 bytes into
 * buf, after checking its class, size and dataspace. Variable-length strings
 * are refused, not read (HDF5's global heap reader). TD_ERR_FORMAT when it
 * is missing or not such a string; truncates to len - 1. */
enum td_status td_h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t len,
                                   const char *path, char *err, size_t errlen);

/* Creates dataset `name` under loc (intermediate groups created) with file
 * type ftype and the given shape (rank 0: a scalar), and writes `data` of
 * memory type mtype. TD_ERR_BACKEND naming path and name. */
enum td_status td_h5_write(hid_t loc, const char *name, hid_t mtype, hid_t ftype,
                           const struct td_shape *shape, const void *data, const char *path,
                           char *err, size_t errlen);

/* Opens dataset `name` under loc; TD_ERR_FORMAT "<path>: no dataset '<name>'"
 * when it is missing or not a dataset. `what` (may be NULL) is added to the
 * message, e.g. "for parameter fc1/weight". */
enum td_status td_h5_open_dataset(hid_t loc, const char *name, hid_t *dset, const char *what,
                                  const char *path, char *err, size_t errlen);

/* A dataset's shape. TD_ERR_FORMAT when its dataspace is not simple or its
 * rank exceeds max_rank (at most TD_MAX_DIMS). */
enum td_status td_h5_get_shape(hid_t dset, int max_rank, struct td_shape *shape, const char *name,
                               const char *path, char *err, size_t errlen);

/* Checks, before a reader allocates memory for dataset `name` of `numel`
 * elements, that the file stores enough bytes for them: a damaged header
 * must not make a reader allocate (and HDF5 fill) more than the file can
 * hold. Unfiltered data must be stored in full; filtered (compressed) data
 * within deflate's largest ratio, 1032:1. External and virtual datasets are
 * not checked. TD_ERR_FORMAT naming path and name. */
enum td_status td_h5_check_storage(hid_t dset, uint64_t numel, const char *name, const char *path,
                                   char *err, size_t errlen);

/* Writes a short name of an HDF5 datatype into buf: "float32", "uint8",
 * "int64", "string", "compound" ... Returns buf. */
char *td_h5_type_name(hid_t type, char *buf, size_t len);

/* 1 when the datatype of dset is a float of `bytes` bytes (bytes 0: any float). */
int td_h5_is_float(hid_t dset, size_t bytes);

#endif
