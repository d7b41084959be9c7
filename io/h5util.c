#include "io/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ioutil.h"
#include "io/seal.h"

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

/* Deflate's largest compression ratio. */
#define DEFLATE_RATIO 1032u

static enum td_status accept_file(int fd, const char *path, enum td_h5_accept accept,
                                  const char *kind, int *sealed, char *err, size_t errlen)
{
    enum td_seal_state state;
    char found[TD_SEAL_KIND_MAX];
    enum td_status st = td_seal_check(fd, path, &state, found, err, errlen);
    if (st != TD_OK) return st;
    *sealed = state == TD_SEAL_VALID;
    if (state == TD_SEAL_VALID && kind && strcmp(found, kind) != 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: a Tandem %s file, not a %s file", path,
                          found, kind);
    if (state == TD_SEAL_VALID || accept == TD_H5_ANY ||
        (state == TD_SEAL_NONE && accept == TD_H5_SEALED_OR_PLAIN))
        return TD_OK;
    if (state == TD_SEAL_NONE)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: an HDF5 file without Tandem's integrity header: not a Tandem %s "
                          "file (written by another program or an older Tandem)",
                          path, kind ? kind : "");
    if (state == TD_SEAL_FOREIGN)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: an HDF5 file whose user block is not Tandem's integrity header: "
                          "the file is corrupt, or another program wrote the block",
                          path);
    return td_io_errf(TD_ERR_FORMAT, err, errlen,
                      "%s: neither Tandem's integrity header nor HDF5's signature at its start: "
                      "not a Tandem %s file, or the file is corrupt",
                      path, kind ? kind : "HDF5");
}

/* 1 when the file HDF5 opened is the one fd refers to (and not one renamed
 * over path since fd was opened); 1 as well when HDF5 cannot say. */
static int same_file(hid_t file, int fd)
{
    void *handle = NULL;
    struct stat a, b;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || !handle) return 1;
    if (fstat(fd, &a) != 0 || fstat(*(int *)handle, &b) != 0) return 1;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

enum td_status td_h5_open_read(const char *path, enum td_h5_accept accept, const char *kind,
                               hid_t *file, char *err, size_t errlen)
{
    *file = H5I_INVALID_HID;
    int is_sealed = 0;
    /* Open first: HDF5 reports a missing file and a corrupt one alike. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
    enum td_status st = accept_file(fd, path, accept, kind, &is_sealed, err, errlen);
    hid_t fapl = st == TD_OK ? H5Pcreate(H5P_FILE_ACCESS) : H5I_INVALID_HID;
    if (st == TD_OK && fapl < 0)
        st = td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 setup failed", path);
    if (st == TD_OK) {
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
        *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        H5Pclose(fapl);
        if (*file < 0)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                            "%s: not a readable HDF5 file (truncated, corrupt or another format)",
                            path);
        else if (is_sealed && !same_file(*file, fd))
            st = td_io_errf(TD_ERR_IO, err, errlen,
                            "%s: replaced by another file while being opened; try again", path);
        if (st != TD_OK && *file >= 0) {
            H5Fclose(*file);
            *file = H5I_INVALID_HID;
        }
    }
    close(fd);
    return st;
}

/* A fixed-length UTF-8 string type of `size` bytes, NUL-terminated. */
static hid_t fixed_str_type(size_t size)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, size) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static enum td_status write_attr(hid_t obj, const char *name, hid_t space, size_t size,
                                 const void *buf, const char *path, char *err, size_t errlen)
{
    hid_t t = fixed_str_type(size);
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
    enum td_status st = write_attr(obj, name, space, strlen(value) + 1, value, path, err, errlen);
    if (space >= 0) H5Sclose(space);
    return st;
}

enum td_status td_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values,
                                          int n, const char *path, char *err, size_t errlen)
{
    size_t size = 1;
    for (int i = 0; i < n; i++)
        if (strlen(values[i]) + 1 > size) size = strlen(values[i]) + 1;
    char *buf = calloc(n > 0 ? (size_t)n : 1, size);
    if (!buf) return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * size, values[i], strlen(values[i]));
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    enum td_status st = write_attr(obj, name, space, size, buf, path, err, errlen);
    if (space >= 0) H5Sclose(space);
    free(buf);
    return st;
}

/* Longest string attribute td_h5_read_str_attr reads. */
#define STR_ATTR_MAX 4096

enum td_status td_h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t len,
                                   const char *path, char *err, size_t errlen)
{
    enum td_status st = TD_OK;
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (a < 0) return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: no attribute '%s'", path, name);
    hid_t ft = H5Aget_type(a);
    hid_t space = H5Aget_space(a);
    H5S_class_t sc = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
    size_t size = ft < 0 ? 0 : H5Tget_size(ft);
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING || (sc != H5S_SCALAR && sc != H5S_SIMPLE) ||
        H5Sget_simple_extent_npoints(space) != 1) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: attribute '%s' is not a string", path,
                        name);
    } else if (H5Tis_variable_str(ft) != 0) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: attribute '%s' is a variable-length string, which Tandem does not "
                        "read",
                        path, name);
    } else if (size == 0 || size > STR_ATTR_MAX) {
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: attribute '%s' is a string of %zu bytes (at most %d are read)", path,
                        name, size, STR_ATTR_MAX);
    } else {
        char s[STR_ATTR_MAX + 1] = {0};
        /* HDF5 converts no string between character sets: read the file's. */
        hid_t mt = H5Tcopy(ft);
        if (mt < 0 || H5Aread(a, mt, s) < 0)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: cannot read attribute '%s'", path,
                            name);
        else
            snprintf(buf, len, "%s", s);
        if (mt >= 0) H5Tclose(mt);
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
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Without timestamps the same values always give the same bytes. */
    int ok = space >= 0 && lcpl >= 0 && dcpl >= 0 &&
             H5Pset_create_intermediate_group(lcpl, 1) >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0;
    hid_t d = ok ? H5Dcreate2(loc, name, ftype, space, lcpl, dcpl, H5P_DEFAULT) : H5I_INVALID_HID;
    enum td_status st = TD_OK;
    if (d < 0) {
        st = td_io_errf(TD_ERR_BACKEND, err, errlen,
                        "%s: cannot create dataset '%s' (does the name clash with another "
                        "name or group?)",
                        path, name);
    } else if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        st = td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: cannot write dataset '%s'", path, name);
    }
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
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

enum td_status td_h5_check_storage(hid_t dset, uint64_t numel, const char *name, const char *path,
                                   char *err, size_t errlen)
{
    hid_t t = H5Dget_type(dset), dcpl = H5Dget_create_plist(dset);
    size_t size = t < 0 ? 0 : H5Tget_size(t);
    H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
    int filters = dcpl < 0 ? -1 : H5Pget_nfilters(dcpl);
    int external = dcpl < 0 ? -1 : H5Pget_external_count(dcpl);
    if (t >= 0) H5Tclose(t);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (size == 0 || layout == H5D_LAYOUT_ERROR || filters < 0 || external < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset '%s' is unreadable", path, name);
    if (layout == H5D_VIRTUAL || external > 0) return TD_OK;
    uint64_t stored = H5Dget_storage_size(dset);
    uint64_t room = filters == 0                          ? stored
                    : stored > UINT64_MAX / DEFLATE_RATIO ? UINT64_MAX
                                                          : stored * DEFLATE_RATIO;
    if (numel > room / size)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: dataset '%s' has %llu elements of %zu bytes but the file stores "
                          "%llu bytes of it%s: truncated or corrupt",
                          path, name, (unsigned long long)numel, size, (unsigned long long)stored,
                          filters ? " (compressed)" : "");
    return TD_OK;
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

/* Growth step of the in-memory file. */
#define CORE_INCREMENT ((size_t)4 << 20)

/* The image of the in-memory HDF5 file `file` (without its user block) in
 * *image (n bytes, malloc'ed). */
static enum td_status take_image(hid_t file, unsigned char **image, size_t *n, const char *path,
                                 char *err, size_t errlen)
{
    ssize_t size = H5Fflush(file, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(file, NULL, 0);
    if (size <= 0)
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 could not finish the file", path);
    *image = malloc((size_t)size);
    if (!*image)
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory for %zd bytes", path, size);
    if (H5Fget_file_image(file, *image, (size_t)size) != size)
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 could not copy the file", path);
    *n = (size_t)size;
    return TD_OK;
}

enum td_status td_h5_write_atomic(const char *path, const char *kind,
                                  enum td_status (*write)(hid_t file, const void *ctx, char *err,
                                                          size_t errlen),
                                  const void *ctx, char *err, size_t errlen)
{
    char tmp[4096];
    enum td_status st = td_io_tmp_path(path, tmp, sizeof(tmp), err, errlen);
    if (st != TD_OK) return st;
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t file = H5I_INVALID_HID;
    /* The user block keeps the image's bytes those of a file whose
     * superblock is at TD_SEAL_SIZE, where the seal puts it. */
    if (fapl >= 0 && fcpl >= 0 && H5Pset_fapl_core(fapl, CORE_INCREMENT, 0) >= 0 &&
        H5Pset_userblock(fcpl, TD_SEAL_SIZE) >= 0)
        file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (file < 0) {
        td_h5_quiet_end(&q);
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 cannot create a file in memory",
                          path);
    }
    unsigned char *image = NULL;
    size_t n = 0;
    st = write(file, ctx, err, errlen);
    if (st == TD_OK) st = take_image(file, &image, &n, path, err, errlen);
    if (H5Fclose(file) < 0 && st == TD_OK)
        st = td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 could not close the file", path);
    td_h5_quiet_end(&q);
    unsigned char hdr[TD_SEAL_SIZE];
    if (st == TD_OK && td_seal_make(hdr, image, n, kind) != TD_OK)
        st = td_io_errf(TD_ERR_ARG, err, errlen, "%s: file kind '%s' is too long", path, kind);
    if (st == TD_OK) {
        const void *bufs[2] = {hdr, image};
        const size_t lens[2] = {sizeof(hdr), n};
        st = td_io_write_file(tmp, bufs, lens, 2, err, errlen);
        if (st == TD_OK) st = td_io_commit(tmp, path, err, errlen);
        if (st != TD_OK) remove(tmp);
    }
    free(image);
    return st;
}

enum td_status td_h5_create_stream(const char *path, hid_t *file, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return td_io_errf(TD_ERR_BACKEND, err, errlen, "%s: HDF5 setup failed", path);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (*file >= 0) return TD_OK;
    /* Say why when the directory is missing or not writable. */
    FILE *f = fopen(path, "wb");
    int saved = errno;
    if (f) {
        fclose(f);
        remove(path);
    }
    return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create HDF5 file%s%s", path, f ? "" : ": ",
                      f ? "" : strerror(saved));
}
