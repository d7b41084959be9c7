#include "io/h5data.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "io/h5util.h"
#include "io/ioutil.h"

/* x's shape, rank 1 .. TD_MAX_DIMS + 1 (N then the sample shape). */
static enum td_status x_shape(hid_t d, int64_t *n, struct td_shape *sample, const char *path,
                              char *err, size_t errlen)
{
    hsize_t dims[H5S_MAX_RANK];
    hid_t space = H5Dget_space(d);
    int rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (rank > 0) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (rank < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'x' has no data space", path);
    if (rank == 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: dataset 'x' is a scalar (rank 0), expected [N, ...]", path);
    if (rank > TD_MAX_DIMS + 1)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: dataset 'x' has rank %d, at most %d is supported", path, rank,
                          TD_MAX_DIMS + 1);
    int64_t sd[TD_MAX_DIMS];
    /* Bounded so that N * numel floats is a valid allocation size. */
    uint64_t total = dims[0], limit = SIZE_MAX / sizeof(float);
    for (int i = 1; i < rank; i++) {
        sd[i - 1] = (int64_t)dims[i];
        if (dims[i] == 0)
            return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'x' has axis %d of size 0",
                              path, i);
        if (total > limit / dims[i])
            return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: dataset 'x' is too large", path);
        total *= dims[i];
    }
    *n = (int64_t)dims[0];
    *sample = td_shape_from(sd, rank - 1);
    return TD_OK;
}

static enum td_status read_x(hid_t file, struct td_dataset *out, const char *path, char *err,
                             size_t errlen)
{
    hid_t d;
    enum td_status st = td_h5_open_dataset(file, "x", &d, "(the samples)", path, err, errlen);
    if (st != TD_OK) return st;
    st = x_shape(d, &out->n, &out->sample_shape, path, err, errlen);
    hid_t t = H5Dget_type(d);
    int is_float = t >= 0 && H5Tget_class(t) == H5T_FLOAT;
    int is_u8 = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
                H5Tget_sign(t) == H5T_SGN_NONE;
    char tn[32];
    if (st == TD_OK && !is_float && !is_u8)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: dataset 'x' is %s; supported: float32 (or another float type) "
                        "or uint8",
                        path, t < 0 ? "unreadable" : td_h5_type_name(t, tn, sizeof(tn)));
    if (t >= 0) H5Tclose(t);
    size_t total = st == TD_OK ? (size_t)out->n * (size_t)td_shape_numel(&out->sample_shape) : 0;
    if (st == TD_OK && out->n == 0)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'x' holds no samples", path);
    if (st == TD_OK) st = td_h5_check_storage(d, total, "x", path, err, errlen);
    if (st == TD_OK && !is_u8 && !(out->x = td_dataset_alloc_floats(total)))
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory for x (%zu floats)", path,
                        total);
    if (st == TD_OK && is_u8 && !(out->pixels = td_alloc_large(total)))
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory for x (%zu bytes)", path,
                        total);
    if (st == TD_OK) {
        herr_t rc = is_u8 ? H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->pixels)
                          : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->x);
        if (rc < 0)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                            "%s: cannot read dataset 'x' (truncated or corrupt file?)", path);
    }
    H5Dclose(d);
    return st;
}

static enum td_status read_y(hid_t file, struct td_dataset *out, const char *path, char *err,
                             size_t errlen)
{
    hid_t d;
    enum td_status st = td_h5_open_dataset(file, "y", &d, "(the labels)", path, err, errlen);
    if (st != TD_OK) return st;
    hid_t t = H5Dget_type(d);
    char tn[32];
    if (t < 0 || H5Tget_class(t) != H5T_INTEGER)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: dataset 'y' is %s; labels must be of an integer type", path,
                        t < 0 ? "unreadable" : td_h5_type_name(t, tn, sizeof(tn)));
    if (t >= 0) H5Tclose(t);
    struct td_shape s;
    char sb[160];
    if (st == TD_OK) st = td_h5_get_shape(d, TD_MAX_DIMS, &s, "y", path, err, errlen);
    if (st == TD_OK && s.rank != 1)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'y' has shape %s, expected [N]",
                        path, td_shape_format(&s, sb, sizeof(sb)));
    if (st == TD_OK && s.dim[0] != out->n)
        st =
            td_io_errf(TD_ERR_FORMAT, err, errlen,
                       "%s: dataset 'x' holds %" PRId64 " samples but 'y' holds %" PRId64 " labels",
                       path, out->n, s.dim[0]);
    if (st == TD_OK) st = td_h5_check_storage(d, (uint64_t)out->n, "y", path, err, errlen);
    /* Read wide so that out-of-range labels are seen rather than clipped. */
    int64_t *wide = NULL;
    if (st == TD_OK && (!(wide = malloc((size_t)out->n * sizeof(*wide))) ||
                        !(out->y = malloc((size_t)out->n * sizeof(int32_t)))))
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory for y", path);
    if (st == TD_OK && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) < 0)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: cannot read dataset 'y' (truncated or corrupt file?)", path);
    int64_t top = 0;
    for (int64_t i = 0; st == TD_OK && i < out->n; i++) {
        if (wide[i] < 0 || wide[i] >= INT32_MAX)
            st =
                td_io_errf(TD_ERR_FORMAT, err, errlen,
                           "%s: label y[%" PRId64 "] = %" PRId64 " is not a class index in [0, %d)",
                           path, i, wide[i], INT32_MAX);
        else
            out->y[i] = (int32_t)wide[i];
        if (st == TD_OK && wide[i] > top) top = wide[i];
    }
    if (st == TD_OK) out->classes = (int)(top + 1);
    free(wide);
    H5Dclose(d);
    return st;
}

enum td_status td_h5data_load(const char *path, struct td_dataset *out, char *err, size_t errlen)
{
    if (!out) return td_io_errf(TD_ERR_ARG, err, errlen, "h5data: NULL dataset");
    memset(out, 0, sizeof(*out));
    if (!path) return td_io_errf(TD_ERR_ARG, err, errlen, "h5data: NULL path");
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    enum td_status st = td_h5_open_read(path, TD_H5_ANY, NULL, &file, err, errlen);
    if (st == TD_OK) {
        st = read_x(file, out, path, err, errlen);
        if (st == TD_OK) st = read_y(file, out, path, err, errlen);
        H5Fclose(file);
    }
    td_h5_quiet_end(&q);
    if (st != TD_OK) td_dataset_free(out);
    return st;
}
