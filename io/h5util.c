#include "io/h5util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

void td_h5_quiet_begin(struct td_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void td_h5_quiet_end(const struct td_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

enum td_status td_h5_open_read(const char *path, hid_t *file, char *err, size_t errlen)
{
    *file = H5I_INVALID_HID;
    /* fopen first: HDF5 reports a missing file and a corrupt one alike. */
    FILE *f = fopen(path, "rb");
    if (!f) return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 setup failed", path);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (*file < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: not a readable HDF5 file (truncated, corrupt or another format)",
                          path);
    return TD_OK;
}

enum td_status td_h5_create(const char *path, hid_t *file, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 setup failed", path);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (*file < 0) {
        /* Say why when the directory is missing or not writable. */
        FILE *f = fopen(path, "wb");
        int saved = errno;
        if (f) {
            fclose(f);
            remove(path);
        }
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create HDF5 file%s%s", path,
                          f ? "" : ": ", f ? "" : strerror(saved));
    }
    return TD_OK;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static enum td_status write_attr(hid_t obj, const char *name, hid_t space, const void *buf,
                                 const char *path, char *err, size_t errlen)
{
    hid_t t = vlen_str_type();
    hid_t a = t < 0 || space < 0 ? H5I_INVALID_HID
                                 : H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, buf);
    if (a >= 0) H5Aclose(a);
    if (t >= 0) H5Tclose(t);
    if (rc < 0)
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: cannot write attribute '%s'", path,
                          name);
    return TD_OK;
}

enum td_status td_h5_write_str_attr(hid_t obj, const char *name, const char *value,
                                    const char *path, char *err, size_t errlen)
{
    hid_t space = H5Screate(H5S_SCALAR);
    enum td_status st = write_attr(obj, name, space, &value, path, err, errlen);
    if (space >= 0) H5Sclose(space);
    return st;
}

enum td_status td_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values,
                                          int n, const char *path, char *err, size_t errlen)
{
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    enum td_status st = write_attr(obj, name, space, values, path, err, errlen);
    if (space >= 0) H5Sclose(space);
    return st;
}

enum td_status td_h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t len,
                                   const char *path, char *err, size_t errlen)
{
    enum td_status st = TD_OK;
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (a < 0) return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: no attribute '%s'", path, name);
    hid_t ft = H5Aget_type(a);
    hid_t space = H5Aget_space(a);
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: attribute '%s' is not a string", path,
                        name);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        /* HDF5 converts no string between character sets: read the file's. */
        hid_t mt = vlen_str_type();
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (H5Aread(a, mt, &s) < 0 || !s) {
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: cannot read attribute '%s'", path,
                            name);
        } else {
            snprintf(buf, len, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(ft);
        char *s = calloc(size + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, size);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (!s || H5Aread(a, mt, s) < 0)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: cannot read attribute '%s'", path,
                            name);
        else
            snprintf(buf, len, "%s", s);
        H5Tclose(mt);
        free(s);
    }
    if (space >= 0) H5Sclose(space);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return st;
}

enum td_status td_h5_write(hid_t loc, const char *name, hid_t mtype, hid_t ftype,
                           const struct td_shape *shape, const void *data, const char *path,
                           char *err, size_t errlen)
{
    hsize_t dims[TD_MAX_DIMS];
    for (int i = 0; i < shape->rank; i++) dims[i] = (hsize_t)shape->dim[i];
    hid_t space =
        shape->rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(shape->rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = space < 0 || lcpl < 0
                  ? H5I_INVALID_HID
                  : H5Dcreate2(loc, name, ftype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    enum td_status st = TD_OK;
    if (d < 0)
        st = td_io_errf(TD_ERR_BACKEND, err, errlen,
                        "%s: cannot create dataset '%s' (does the name clash with another "
                        "name or group?)",
                        path, name);
    else if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write dataset '%s'", path, name);
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

/* H5Lexists fails (rather than saying no) when an inner group is missing,
 * so each prefix of the path is checked in turn. */
static int path_exists(hid_t loc, const char *name)
{
    char buf[1024];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof(buf)) return 0;
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        int ok = H5Lexists(loc, buf, H5P_DEFAULT) > 0;
        buf[i] = c;
        if (!ok) return 0;
    }
    return 1;
}

enum td_status td_h5_open_dataset(hid_t loc, const char *name, hid_t *dset, const char *what,
                                  const char *path, char *err, size_t errlen)
{
    *dset = path_exists(loc, name) ? H5Dopen2(loc, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (*dset < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: no dataset '%s'%s%s", path, name,
                          what ? " " : "", what ? what : "");
    return TD_OK;
}

enum td_status td_h5_get_shape(hid_t dset, int max_rank, struct td_shape *shape, const char *name,
                               const char *path, char *err, size_t errlen)
{
    hid_t space = H5Dget_space(dset);
    enum td_status st = TD_OK;
    H5S_class_t cls = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
    int rank = cls == H5S_SCALAR ? 0 : cls == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank < 0) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset '%s' has no data space", path,
                        name);
    } else if (rank > max_rank) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: dataset '%s' has rank %d, more than the %d supported", path, name,
                        rank, max_rank);
    } else {
        hsize_t dims[TD_MAX_DIMS];
        if (rank > 0) H5Sget_simple_extent_dims(space, dims, NULL);
        shape->rank = rank;
        for (int i = 0; i < TD_MAX_DIMS; i++) shape->dim[i] = i < rank ? (int64_t)dims[i] : 0;
    }
    if (space >= 0) H5Sclose(space);
    return st;
}

char *td_h5_type_name(hid_t type, char *buf, size_t len)
{
    size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT:
        snprintf(buf, len, "float%zu", bits);
        break;
    case H5T_STRING:
        snprintf(buf, len, "string");
        break;
    case H5T_COMPOUND:
        snprintf(buf, len, "compound");
        break;
    case H5T_ENUM:
        snprintf(buf, len, "enum");
        break;
    case H5T_ARRAY:
        snprintf(buf, len, "array");
        break;
    case H5T_VLEN:
        snprintf(buf, len, "variable-length");
        break;
    default:
        snprintf(buf, len, "an unsupported type");
        break;
    }
    return buf;
}

int td_h5_is_float(hid_t dset, size_t bytes)
{
    hid_t t = H5Dget_type(dset);
    if (t < 0) return 0;
    int ok = H5Tget_class(t) == H5T_FLOAT && (bytes == 0 || H5Tget_size(t) == bytes);
    H5Tclose(t);
    return ok;
}

enum td_status td_h5_write_atomic(const char *path,
                                  enum td_status (*write)(hid_t file, const void *ctx, char *err,
                                                          size_t errlen),
                                  const void *ctx, char *err, size_t errlen)
{
    char tmp[4096];
    enum td_status st = td_io_tmp_path(path, tmp, sizeof(tmp), err, errlen);
    if (st != TD_OK) return st;
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    st = td_h5_create(tmp, &file, err, errlen);
    if (st == TD_OK) {
        st = write(file, ctx, err, errlen);
        if (H5Fclose(file) < 0 && st == TD_OK)
            st = td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot close (disk full?)", tmp);
        if (st == TD_OK)
            st = td_io_commit(tmp, path, err, errlen);
        else
            remove(tmp);
    }
    td_h5_quiet_end(&q);
    return st;
}
