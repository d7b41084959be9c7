#include "io/ntk_file.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "io/ioutil.h"

struct td_ntk_file {
    hid_t file, dset;
    int rank, rows_only; /* rows_only: a diagonal kernel, one sample axis */
    hsize_t dims[TD_MAX_DIMS];
    char path[4096], tmp[4104];
    struct td_h5_quiet quiet;
};

static enum td_status write_index(struct td_ntk_file *f, const char *name, const int64_t *idx,
                                  int64_t n, char *err, size_t errlen)
{
    struct td_shape s = TD_SHAPE(n);
    return td_h5_write(f->file, name, H5T_NATIVE_INT64, H5T_STD_I64LE, &s, idx, f->tmp, err,
                       errlen);
}

enum td_status td_ntk_file_create(struct td_ntk_file **out, const char *path,
                                  const struct td_shape *shape, const int64_t *x1_index, int64_t n1,
                                  const int64_t *x2_index, int64_t n2, char *err, size_t errlen)
{
    *out = NULL;
    struct td_ntk_file *f = calloc(1, sizeof(*f));
    if (!f) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    f->file = f->dset = -1;
    snprintf(f->path, sizeof(f->path), "%s", path);
    enum td_status st = td_io_tmp_path(path, f->tmp, sizeof(f->tmp), err, errlen);
    if (st != TD_OK) {
        free(f);
        return st;
    }
    td_h5_quiet_begin(&f->quiet);
    st = td_h5_create_stream(f->tmp, &f->file, err, errlen);
    if (st != TD_OK) {
        td_h5_quiet_end(&f->quiet);
        free(f);
        return st;
    }
    f->rank = shape->rank;
    f->rows_only = shape->rank == 1 || shape->rank == 3;
    for (int d = 0; d < shape->rank; d++) f->dims[d] = (hsize_t)shape->dim[d];
    hid_t space = H5Screate_simple(f->rank, f->dims, NULL);
    if (space >= 0)
        f->dset = H5Dcreate2(f->file, "ntk", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
    if (space >= 0) H5Sclose(space);
    if (f->dset < 0)
        st = td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: cannot create dataset 'ntk'", f->tmp);
    if (st == TD_OK) st = write_index(f, "x1_index", x1_index, n1, err, errlen);
    if (st == TD_OK) st = write_index(f, "x2_index", x2_index, n2, err, errlen);
    if (st == TD_OK) st = td_ntk_file_attr(f, "framework", "tandem", err, errlen);
    if (st == TD_OK) st = td_ntk_file_attr(f, "version", TD_VERSION, err, errlen);
    if (st != TD_OK) {
        td_ntk_file_abort(f);
        return st;
    }
    *out = f;
    return TD_OK;
}

enum td_status td_ntk_file_write(struct td_ntk_file *f, int64_t i0, int64_t ni, int64_t j0,
                                 int64_t nj, const float *data, char *err, size_t errlen)
{
    hsize_t start[TD_MAX_DIMS] = {0}, count[TD_MAX_DIMS];
    for (int d = 0; d < f->rank; d++) count[d] = f->dims[d];
    start[0] = (hsize_t)i0;
    count[0] = (hsize_t)ni;
    if (!f->rows_only) {
        start[1] = (hsize_t)j0;
        count[1] = (hsize_t)nj;
    }
    hid_t fs = H5Dget_space(f->dset), ms = H5Screate_simple(f->rank, count, NULL);
    herr_t rc =
        fs < 0 || ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dwrite(f->dset, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, data);
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    if (rc < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write rows %lld.. of the kernel",
                          f->tmp, (long long)i0);
    return TD_OK;
}

enum td_status td_ntk_file_attr(struct td_ntk_file *f, const char *name, const char *value,
                                char *err, size_t errlen)
{
    return td_h5_write_str_attr(f->file, name, value, f->tmp, err, errlen);
}

static void close_all(struct td_ntk_file *f, int *failed)
{
    if (f->dset >= 0 && H5Dclose(f->dset) < 0) *failed = 1;
    if (f->file >= 0 && H5Fclose(f->file) < 0) *failed = 1;
    f->dset = f->file = -1;
    td_h5_quiet_end(&f->quiet);
}

enum td_status td_ntk_file_commit(struct td_ntk_file *f, char *err, size_t errlen)
{
    int failed = 0;
    close_all(f, &failed);
    enum td_status st =
        failed ? td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot close (disk full?)", f->tmp)
               : td_io_commit(f->tmp, f->path, err, errlen);
    if (failed) remove(f->tmp);
    free(f);
    return st;
}

void td_ntk_file_abort(struct td_ntk_file *f)
{
    if (!f) return;
    int failed = 0;
    close_all(f, &failed);
    remove(f->tmp);
    free(f);
}
