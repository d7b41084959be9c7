#include "io/results.h"

#include <hdf5.h>
#include <stdlib.h>

#include "io/h5util.h"
#include "io/ioutil.h"

struct save_ctx {
    const char *path;
    const struct td_result_array *a;
    int n;
    const struct td_result_attr *attrs;
    int n_attrs;
};

static enum td_status write_all(hid_t file, const void *ctx, char *err, size_t errlen)
{
    const struct save_ctx *c = ctx;
    enum td_status st = td_h5_write_str_attr(file, "framework", "tandem", c->path, err, errlen);
    if (st == TD_OK) st = td_h5_write_str_attr(file, "version", TD_VERSION, c->path, err, errlen);
    for (int i = 0; i < c->n_attrs && st == TD_OK; i++)
        st = td_h5_write_str_attr(file, c->attrs[i].name, c->attrs[i].value, c->path, err, errlen);
    for (int i = 0; i < c->n && st == TD_OK; i++) {
        const struct td_result_array *a = &c->a[i];
        if (a->f64)
            st = td_h5_write(file, a->name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &a->shape, a->f64,
                             c->path, err, errlen);
        else if (a->f32)
            st = td_h5_write(file, a->name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, &a->shape, a->f32,
                             c->path, err, errlen);
        else
            st =
                td_io_errf(TD_ERR_ARG, err, errlen, "%s: array '%s' has no data", c->path, a->name);
    }
    return st;
}

enum td_status td_results_save(const char *path, const struct td_result_array *a, int n,
                               const struct td_result_attr *attrs, int n_attrs, char *err,
                               size_t errlen)
{
    struct save_ctx c = {path, a, n, attrs, n_attrs};
    return td_h5_write_atomic(path, "results", write_all, &c, err, errlen);
}

enum td_status td_results_read(const char *path, const char *name, double **data, int64_t *n,
                               char *err, size_t errlen)
{
    *data = NULL;
    *n = 0;
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file, dset = H5I_INVALID_HID;
    enum td_status st = td_h5_open_read(path, TD_H5_SEALED, "results", &file, err, errlen);
    if (st == TD_OK) st = td_h5_open_dataset(file, name, &dset, NULL, path, err, errlen);
    struct td_shape s;
    if (st == TD_OK) st = td_h5_get_shape(dset, 1, &s, name, path, err, errlen);
    if (st == TD_OK && (s.rank != 1 || !td_h5_is_float(dset, 0)))
        st =
            td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: '%s' is not a 1-D float array", path, name);
    if (st == TD_OK) {
        *data = malloc((size_t)(s.dim[0] > 0 ? s.dim[0] : 1) * sizeof(double));
        if (!*data)
            st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        else if (H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: cannot read '%s'", path, name);
        else
            *n = s.dim[0];
    }
    if (st != TD_OK) {
        free(*data);
        *data = NULL;
    }
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0) H5Fclose(file);
    td_h5_quiet_end(&q);
    return st;
}
