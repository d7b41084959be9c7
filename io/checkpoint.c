#include "io/checkpoint.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "io/ioutil.h"

struct kind_info {
    const char *group;
    const char *type; /* for messages, as td_h5_type_name spells it */
    size_t size;
    H5T_class_t cls;
    H5T_sign_t sign;
};

static const struct kind_info kinds[] = {
    [TD_CKPT_PARAM] = {"params", "float32", 4, H5T_FLOAT, H5T_SGN_ERROR},
    [TD_CKPT_F32] = {"optim", "float32", 4, H5T_FLOAT, H5T_SGN_ERROR},
    [TD_CKPT_I64] = {"state", "int64", 8, H5T_INTEGER, H5T_SGN_2},
    [TD_CKPT_U64] = {"state", "uint64", 8, H5T_INTEGER, H5T_SGN_NONE},
    [TD_CKPT_F64] = {"state", "float64", 8, H5T_FLOAT, H5T_SGN_ERROR},
};

/* Memory and file types are HDF5 globals that only exist once the library is
 * initialised, so they are picked at run time. */
static hid_t mem_type(enum td_ckpt_kind k)
{
    switch (k) {
    case TD_CKPT_I64:
        return H5T_NATIVE_INT64;
    case TD_CKPT_U64:
        return H5T_NATIVE_UINT64;
    case TD_CKPT_F64:
        return H5T_NATIVE_DOUBLE;
    default:
        return H5T_NATIVE_FLOAT;
    }
}

static hid_t file_type(enum td_ckpt_kind k)
{
    switch (k) {
    case TD_CKPT_I64:
        return H5T_STD_I64LE;
    case TD_CKPT_U64:
        return H5T_STD_U64LE;
    case TD_CKPT_F64:
        return H5T_IEEE_F64LE;
    default:
        return H5T_IEEE_F32LE;
    }
}

int td_ckpt_param_entries(const struct td_params *p, struct td_ckpt_entry *e)
{
    for (int i = 0; i < p->count; i++) {
        const struct td_param_info *pi = &p->info[i];
        e[i] = (struct td_ckpt_entry){pi->name, TD_CKPT_PARAM, p->value + pi->offset, pi->numel,
                                      &pi->shape};
    }
    return p->count;
}

static enum td_status full_name(const struct td_ckpt_entry *e, char *buf, size_t len,
                                const char *path, char *err, size_t errlen)
{
    int w = snprintf(buf, len, "/%s/%s", kinds[e->kind].group, e->name);
    if (w < 0 || (size_t)w >= len)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: entry name '%s' is too long", path,
                          e->name);
    return TD_OK;
}

static enum td_status check_entries(const struct td_ckpt_entry *e, int n, const char *path,
                                    char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0] || !e[i].data || e[i].count == 0)
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "%s: checkpoint entry %d ('%s') has no name, no data or count 0",
                              path, i, e[i].name ? e[i].name : "(null)");
        if ((unsigned)e[i].kind > TD_CKPT_F64)
            return td_io_errf(TD_ERR_ARG, err, errlen, "%s: entry '%s' has unknown kind %d", path,
                              e[i].name, (int)e[i].kind);
        if (e[i].shape &&
            (!td_shape_valid(e[i].shape) || (size_t)td_shape_numel(e[i].shape) != e[i].count)) {
            char s[160];
            return td_io_errf(TD_ERR_ARG, err, errlen, "%s: entry '%s' has shape %s but count %zu",
                              path, e[i].name, td_shape_format(e[i].shape, s, sizeof(s)),
                              e[i].count);
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(kinds[e[i].kind].group, kinds[e[j].kind].group) &&
                !strcmp(e[i].name, e[j].name))
                return td_io_errf(TD_ERR_ARG, err, errlen, "%s: two entries are named /%s/%s", path,
                                  kinds[e[i].kind].group, e[i].name);
    }
    return TD_OK;
}

struct ckpt_write {
    const struct td_ckpt_entry *e;
    int n;
    const char *path;
};

static enum td_status write_entries(hid_t file, const void *ctx, char *err, size_t errlen)
{
    const struct ckpt_write *w = ctx;
    const struct td_ckpt_entry *e = w->e;
    const int n = w->n;
    const char *path = w->path;
    enum td_status st = td_h5_write_str_attr(file, "framework", "tandem", path, err, errlen);
    if (st == TD_OK) st = td_h5_write_str_attr(file, "version", TD_VERSION, path, err, errlen);
    if (st == TD_OK) st = td_h5_write_str_attr(file, "kind", "checkpoint", path, err, errlen);
    for (int i = 0; i < n && st == TD_OK; i++) {
        char name[1024];
        st = full_name(&e[i], name, sizeof(name), path, err, errlen);
        if (st != TD_OK) break;
        int64_t dim = (int64_t)e[i].count;
        struct td_shape flat = td_shape_from(&dim, e[i].count == 1 ? 0 : 1);
        st = td_h5_write(file, name, mem_type(e[i].kind), file_type(e[i].kind),
                         e[i].shape ? e[i].shape : &flat, e[i].data, path, err, errlen);
    }
    return st;
}

enum td_status td_ckpt_save(const char *path, const struct td_ckpt_entry *e, int n, char *err,
                            size_t errlen)
{
    if (!path || (n > 0 && !e) || n < 0)
        return td_io_errf(TD_ERR_ARG, err, errlen, "checkpoint save: NULL or bad argument");
    enum td_status st = check_entries(e, n, path, err, errlen);
    if (st != TD_OK) return st;
    struct ckpt_write w = {e, n, path};
    return td_h5_write_atomic(path, "checkpoint", write_entries, &w, err, errlen);
}

/* Pass one for one entry: present, of the entry's kind and size. */
static enum td_status check_stored(hid_t file, const struct td_ckpt_entry *e, const char *path,
                                   char *err, size_t errlen)
{
    const struct kind_info *k = &kinds[e->kind];
    char name[1024];
    enum td_status st = full_name(e, name, sizeof(name), path, err, errlen);
    hid_t d;
    if (st == TD_OK)
        st = td_h5_open_dataset(file, name, &d, "in the checkpoint", path, err, errlen);
    if (st != TD_OK) return st;
    hid_t t = H5Dget_type(d);
    if (t < 0 || H5Tget_class(t) != k->cls || H5Tget_size(t) != k->size ||
        (k->cls == H5T_INTEGER && H5Tget_sign(t) != k->sign)) {
        char tn[32];
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: entry %s is %s, expected %s", path, name,
                        t < 0 ? "unreadable" : td_h5_type_name(t, tn, sizeof(tn)), k->type);
    } else {
        struct td_shape s;
        char a[160], b[160];
        st = td_h5_get_shape(d, TD_MAX_DIMS, &s, name, path, err, errlen);
        if (st == TD_OK && (size_t)td_shape_numel(&s) != e->count)
            st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                            "%s: entry %s holds %lld elements %s, expected %zu", path, name,
                            (long long)td_shape_numel(&s), td_shape_format(&s, a, sizeof(a)),
                            e->count);
        else if (st == TD_OK && e->shape && !td_shape_equal(&s, e->shape))
            st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: entry %s has shape %s, expected %s",
                            path, name, td_shape_format(&s, a, sizeof(a)),
                            td_shape_format(e->shape, b, sizeof(b)));
    }
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return st;
}

static enum td_status check_header(hid_t file, const char *path, char *err, size_t errlen)
{
    char fw[64], kind[64];
    if (td_h5_read_str_attr(file, "framework", fw, sizeof(fw), path, NULL, 0) != TD_OK ||
        td_h5_read_str_attr(file, "kind", kind, sizeof(kind), path, NULL, 0) != TD_OK ||
        strcmp(fw, "tandem") != 0 || strcmp(kind, "checkpoint") != 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: not a Tandem checkpoint (the root attributes framework=\"tandem\" "
                          "and kind=\"checkpoint\" are missing)",
                          path);
    return TD_OK;
}

/* Both passes. stage receives every entry, at offsets in bytes. */
static enum td_status load_staged(hid_t file, const struct td_ckpt_entry *e, int n,
                                  unsigned char **stage, size_t *offs, const char *path, char *err,
                                  size_t errlen)
{
    enum td_status st = check_header(file, path, err, errlen);
    size_t total = 0;
    for (int i = 0; i < n && st == TD_OK; i++) {
        st = check_stored(file, &e[i], path, err, errlen);
        offs[i] = total;
        /* 8-byte aligned, so int64 and double entries are read aligned. */
        total += (e[i].count * kinds[e[i].kind].size + 7) & ~(size_t)7;
    }
    if (st != TD_OK) return st;
    *stage = malloc(total ? total : 1);
    if (!*stage)
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory staging %zu bytes", path,
                          total);
    for (int i = 0; i < n; i++) {
        char name[1024];
        full_name(&e[i], name, sizeof(name), path, NULL, 0);
        hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
        herr_t rc = d < 0 ? -1
                          : H5Dread(d, mem_type(e[i].kind), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    *stage + offs[i]);
        if (d >= 0) H5Dclose(d);
        if (rc < 0)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: cannot read entry %s (truncated or corrupt file)", path, name);
    }
    return TD_OK;
}

enum td_status td_ckpt_load(const char *path, const struct td_ckpt_entry *e, int n, char *err,
                            size_t errlen)
{
    if (!path || (n > 0 && !e) || n < 0)
        return td_io_errf(TD_ERR_ARG, err, errlen, "checkpoint load: NULL or bad argument");
    enum td_status st = check_entries(e, n, path, err, errlen);
    if (st != TD_OK) return st;
    size_t *offs = malloc((size_t)(n > 0 ? n : 1) * sizeof(*offs));
    if (!offs) return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    unsigned char *stage = NULL;
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    st = td_h5_open_read(path, TD_H5_SEALED, "checkpoint", &file, err, errlen);
    if (st == TD_OK) {
        st = load_staged(file, e, n, &stage, offs, path, err, errlen);
        H5Fclose(file);
    }
    td_h5_quiet_end(&q);
    for (int i = 0; i < n && st == TD_OK; i++)
        memcpy(e[i].data, stage + offs[i], e[i].count * kinds[e[i].kind].size);
    free(stage);
    free(offs);
    return st;
}
