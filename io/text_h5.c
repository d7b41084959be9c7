#include "io/text_h5.h"

#include <stdio.h>

#include "io/h5util.h"
#include "io/ioutil.h"

#define VOCAB_DATASET "vocab"

enum td_status td_vocab_write_h5(hid_t loc, const struct td_vocab *v, const char *path, char *err,
                                 size_t errlen)
{
    if (!v || !path) return td_io_errf(TD_ERR_ARG, err, errlen, "vocabulary write: NULL argument");
    struct td_vocab check;
    char why[256];
    if (td_vocab_init(&check, v->byte, v->size, why, sizeof(why)) != TD_OK)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: not a valid vocabulary: %s", path, why);
    struct td_shape shape = {.rank = 1, .dim = {v->size}};
    return td_h5_write(loc, VOCAB_DATASET, H5T_NATIVE_UINT8, H5T_STD_U8LE, &shape, v->byte, path,
                       err, errlen);
}

/* Checks type and shape of the open dataset d and reads its bytes into v. */
static enum td_status read_vocab(hid_t d, struct td_vocab *v, const char *path, char *err,
                                 size_t errlen)
{
    hid_t type = H5Dget_type(d);
    int is_u8 = type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 &&
                H5Tget_sign(type) == H5T_SGN_NONE;
    char tn[32];
    enum td_status st = TD_OK;
    if (!is_u8)
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'vocab' is %s, expected uint8",
                        path, type < 0 ? "unreadable" : td_h5_type_name(type, tn, sizeof(tn)));
    if (type >= 0) H5Tclose(type);
    if (st != TD_OK) return st;
    struct td_shape s;
    st = td_h5_get_shape(d, TD_MAX_DIMS, &s, VOCAB_DATASET, path, err, errlen);
    char sb[160];
    if (st == TD_OK && (s.rank != 1 || s.dim[0] < 1 || s.dim[0] > 256))
        st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                        "%s: dataset 'vocab' has shape %s, expected [V] with V in 1..256", path,
                        td_shape_format(&s, sb, sizeof(sb)));
    if (st != TD_OK) return st;
    uint8_t bytes[256];
    if (H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes) < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: cannot read dataset 'vocab' (corrupt file?)", path);
    char why[256];
    if (td_vocab_init(v, bytes, (int)s.dim[0], why, sizeof(why)) != TD_OK)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dataset 'vocab' is not a vocabulary: %s",
                          path, why);
    return TD_OK;
}

enum td_status td_vocab_read_h5(hid_t loc, struct td_vocab *v, const char *path, char *err,
                                size_t errlen)
{
    if (!v || !path) return td_io_errf(TD_ERR_ARG, err, errlen, "vocabulary read: NULL argument");
    hid_t d = H5Lexists(loc, VOCAB_DATASET, H5P_DEFAULT) > 0
                  ? H5Dopen2(loc, VOCAB_DATASET, H5P_DEFAULT)
                  : H5I_INVALID_HID;
    if (d < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: no vocabulary (dataset 'vocab'): not a text model's weights", path);
    enum td_status st = read_vocab(d, v, path, err, errlen);
    H5Dclose(d);
    return st;
}

enum td_status td_vocab_load(const char *path, struct td_vocab *v, char *err, size_t errlen)
{
    if (!path || !v) return td_io_errf(TD_ERR_ARG, err, errlen, "vocabulary load: NULL argument");
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    enum td_status st = td_h5_open_read(path, TD_H5_SEALED_OR_PLAIN, NULL, &file, err, errlen);
    if (st == TD_OK) {
        st = td_vocab_read_h5(file, v, path, err, errlen);
        H5Fclose(file);
    }
    td_h5_quiet_end(&q);
    return st;
}
