#include "io/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "io/ioutil.h"

/* The one dataset name reserved for metadata (see weights.h). */
#define TD_WEIGHTS_VOCAB "vocab"

struct weights_write {
    const struct td_params *p;
    const struct td_weights_meta *meta;
    const char *path;
};

static enum td_status write_meta(hid_t file, const struct td_weights_meta *m, const char *path,
                                 char *err, size_t errlen)
{
    enum td_status st = TD_OK;
    if (m->model) st = td_h5_write_str_attr(file, "model", m->model, path, err, errlen);
    if (st == TD_OK && m->model_config)
        st = td_h5_write_str_attr(file, "model_config", m->model_config, path, err, errlen);
    if (st == TD_OK && m->vocab && m->vocab_size > 0) {
        struct td_shape s = TD_SHAPE(m->vocab_size);
        st = td_h5_write(file, TD_WEIGHTS_VOCAB, H5T_NATIVE_UINT8, H5T_STD_U8LE, &s, m->vocab, path,
                         err, errlen);
    }
    return st;
}

static enum td_status write_params(hid_t file, const void *ctx, char *err, size_t errlen)
{
    const struct weights_write *w = ctx;
    const struct td_params *p = w->p;
    const char *path = w->path;
    enum td_status st = td_h5_write_str_attr(file, "framework", "tandem", path, err, errlen);
    if (st == TD_OK) st = td_h5_write_str_attr(file, "version", TD_VERSION, path, err, errlen);
    if (st == TD_OK && w->meta) st = write_meta(file, w->meta, path, err, errlen);
    if (st != TD_OK) return st;
    const char **names = malloc((size_t)(p->count > 0 ? p->count : 1) * sizeof(*names));
    if (!names) return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    for (int i = 0; i < p->count; i++) names[i] = p->info[i].name;
    st = td_h5_write_str_array_attr(file, "param_order", names, p->count, path, err, errlen);
    free(names);
    for (int i = 0; i < p->count && st == TD_OK; i++) {
        const struct td_param_info *pi = &p->info[i];
        st = td_h5_write(file, pi->name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, &pi->shape,
                         p->value + pi->offset, path, err, errlen);
    }
    return st;
}

enum td_status td_weights_export_meta(const struct td_params *p, const struct td_weights_meta *meta,
                                      const char *path, char *err, size_t errlen)
{
    if (!p || !path) return td_io_errf(TD_ERR_ARG, err, errlen, "weights export: NULL argument");
    if (meta && meta->vocab_size > 0 && td_params_find(p, TD_WEIGHTS_VOCAB) >= 0)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "weights export: a parameter is named '%s', the name of the "
                          "vocabulary dataset",
                          TD_WEIGHTS_VOCAB);
    struct weights_write w = {p, meta, path};
    return td_h5_write_atomic(path, "weights", write_params, &w, err, errlen);
}

enum td_status td_weights_export(const struct td_params *p, const char *path, char *err,
                                 size_t errlen)
{
    return td_weights_export_meta(p, NULL, path, err, errlen);
}

/* An absent attribute reads as "". */
static enum td_status read_optional_str(hid_t file, const char *name, char *buf, size_t len,
                                        const char *path, char *err, size_t errlen)
{
    buf[0] = '\0';
    if (H5Aexists(file, name) <= 0) return TD_OK;
    return td_h5_read_str_attr(file, name, buf, len, path, err, errlen);
}

enum td_status td_weights_read_meta(const char *path, char *model, char *model_config, size_t len,
                                    char *err, size_t errlen)
{
    if (!path || !model || !model_config || len == 0)
        return td_io_errf(TD_ERR_ARG, err, errlen, "weights metadata: NULL argument");
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    enum td_status st = td_h5_open_read(path, TD_H5_SEALED_OR_PLAIN, "weights", &file, err, errlen);
    if (st == TD_OK) {
        st = read_optional_str(file, "model", model, len, path, err, errlen);
        if (st == TD_OK)
            st = read_optional_str(file, "model_config", model_config, len, path, err, errlen);
        H5Fclose(file);
    }
    td_h5_quiet_end(&q);
    return st;
}

/* Pass one: the parameter's dataset exists with float32 type and its shape. */
static enum td_status check_param(hid_t file, const struct td_param_info *pi, const char *path,
                                  char *err, size_t errlen)
{
    char what[600];
    snprintf(what, sizeof(what), "for parameter %s", pi->name);
    hid_t d;
    enum td_status st = td_h5_open_dataset(file, pi->name, &d, what, path, err, errlen);
    if (st != TD_OK) return st;
    if (!td_h5_is_float(d, 4)) {
        char tn[32];
        hid_t t = H5Dget_type(d);
        st = td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: parameter %s is %s, expected float32",
                        path, pi->name, td_h5_type_name(t, tn, sizeof(tn)));
        H5Tclose(t);
    } else {
        struct td_shape s;
        st = td_h5_get_shape(d, TD_MAX_DIMS, &s, pi->name, path, err, errlen);
        char a[160], b[160];
        if (st == TD_OK && !td_shape_equal(&s, &pi->shape))
            st = td_io_errf(TD_ERR_FORMAT, err, errlen,
                            "%s: parameter %s has shape %s in the file, expected %s", path,
                            pi->name, td_shape_format(&s, a, sizeof(a)),
                            td_shape_format(&pi->shape, b, sizeof(b)));
    }
    H5Dclose(d);
    return st;
}

struct extra_scan {
    const struct td_params *p;
    char first[512]; /* first dataset that matches no parameter */
    int count;
};

static herr_t visit_extra(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    (void)obj;
    struct extra_scan *s = data;
    if (info->type == H5O_TYPE_DATASET && td_params_find(s->p, name) < 0 &&
        strcmp(name, TD_WEIGHTS_VOCAB) != 0) {
        if (s->count++ == 0) snprintf(s->first, sizeof(s->first), "%s", name);
    }
    return 0;
}

static enum td_status check_file(const struct td_params *p, hid_t file, unsigned flags,
                                 const char *path, char *err, size_t errlen)
{
    for (int i = 0; i < p->count; i++) {
        enum td_status st = check_param(file, &p->info[i], path, err, errlen);
        if (st != TD_OK) return st;
    }
    if (flags & TD_WEIGHTS_ALLOW_EXTRA) return TD_OK;
    struct extra_scan s = {.p = p};
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, visit_extra, &s, H5O_INFO_BASIC) < 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: cannot list the file's datasets", path);
    if (s.count > 0)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: dataset '%s'%s matches no parameter of the model (pass "
                          "TD_WEIGHTS_ALLOW_EXTRA to ignore extra datasets)",
                          path, s.first, s.count > 1 ? " and others" : "");
    return TD_OK;
}

/* Pass two: every parameter into a staging block, so that a read failing
 * half-way leaves the caller's values untouched. */
static enum td_status read_all(const struct td_params *p, hid_t file, float *stage,
                               const char *path, char *err, size_t errlen)
{
    for (int i = 0; i < p->count; i++) {
        const struct td_param_info *pi = &p->info[i];
        hid_t d = H5Dopen2(file, pi->name, H5P_DEFAULT);
        herr_t rc =
            d < 0 ? -1
                  : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, stage + pi->offset);
        if (d >= 0) H5Dclose(d);
        if (rc < 0)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: cannot read parameter %s (corrupt file?)", path, pi->name);
    }
    return TD_OK;
}

enum td_status td_weights_import(struct td_params *p, const char *path, unsigned flags, char *err,
                                 size_t errlen)
{
    if (!p || !path) return td_io_errf(TD_ERR_ARG, err, errlen, "weights import: NULL argument");
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    hid_t file;
    float *stage = NULL;
    enum td_status st = td_h5_open_read(path, TD_H5_SEALED_OR_PLAIN, "weights", &file, err, errlen);
    if (st == TD_OK) {
        st = check_file(p, file, flags, path, err, errlen);
        if (st == TD_OK && p->total > 0) {
            stage = malloc(p->total * sizeof(float));
            if (!stage)
                st = td_io_errf(TD_ERR_NOMEM, err, errlen,
                                "%s: out of memory staging %zu parameter floats", path, p->total);
        }
        if (st == TD_OK) st = read_all(p, file, stage, path, err, errlen);
        if (st == TD_OK && p->total > 0) memcpy(p->value, stage, p->total * sizeof(float));
        H5Fclose(file);
    }
    free(stage);
    td_h5_quiet_end(&q);
    return st;
}
