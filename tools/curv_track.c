#include "tools/curv_track.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/ioutil.h"
#include "io/results.h"
#include "optim/curvature.h"
#include "optim/lanczos.h"
#include "optim/ntk.h"
#include "tools/tangent_setup.h"

#define N_COLS 6
static const char *const col_names[N_COLS] = {
    "step", "top_eigenvalue", "hessian_trace", "hessian_trace_ci95", "ntk_trace", "seconds"};

struct td_curv_track {
    struct td_curv_track_options o;
    const struct td_setup *s;
    struct td_graph *g;
    struct td_model m;
    struct td_samples probe;
    struct td_feed feeds[2];
    struct td_curv_op *h;
    struct td_zoo_builder zb;
    struct td_tangent_model tm;
    struct td_ntk *ntk; /* the probe batch's NTK trace, planned once */
    double ntk_sum;
    double *cols[N_COLS];
    int64_t rows, cap;
    char path[4096];
};

static enum td_status grow(struct td_curv_track *t)
{
    if (t->rows < t->cap) return TD_OK;
    int64_t cap = t->cap ? 2 * t->cap : 64;
    for (int c = 0; c < N_COLS; c++) {
        double *n = realloc(t->cols[c], (size_t)cap * sizeof(double));
        if (!n) return TD_ERR_NOMEM;
        t->cols[c] = n;
    }
    t->cap = cap;
    return TD_OK;
}

static enum td_status save(struct td_curv_track *t, char *err, size_t errlen)
{
    struct td_result_array a[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        a[c] = (struct td_result_array){col_names[c], t->cols[c], NULL, TD_SHAPE(t->rows)};
    char probe[64], steps[32], probes[32];
    snprintf(probe, sizeof(probe), "%lld", (long long)t->o.probe_n);
    snprintf(steps, sizeof(steps), "%d", t->o.lanczos_steps);
    snprintf(probes, sizeof(probes), "%d", t->o.probes);
    const struct td_result_attr at[] = {{"model", t->s->info->name},
                                        {"probe_samples", probe},
                                        {"lanczos_steps", steps},
                                        {"hutchinson_probes", probes},
                                        {"linearized", t->o.linearize ? "yes" : "no"}};
    return td_results_save(t->path, a, N_COLS, at, (int)(sizeof(at) / sizeof(at[0])), err, errlen);
}

static enum td_status hvp(void *ctx, const float *v, float *out)
{
    return td_curv_op_apply(ctx, v, out);
}

static enum td_status add_tile(void *ctx, const struct td_ntk_tile *tile, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct td_curv_track *t = ctx;
    for (int64_t i = 0; i < tile->ni; i++) t->ntk_sum += tile->data[i];
    return TD_OK;
}

static enum td_status measure(struct td_curv_track *t, int64_t step, char *err, size_t errlen)
{
    double t0 = omp_get_wtime();
    const struct td_params *from = td_graph_params(t->s->g);
    struct td_params *p = td_graph_params(t->g);
    memcpy(p->value, from->value, p->total * sizeof(float));
    struct td_lanczos_result r;
    enum td_status st =
        td_lanczos(hvp, t->h, p->total, t->o.lanczos_steps, 1, t->o.seed, 0, 0, &r, err, errlen);
    double top = st == TD_OK ? r.values[0] : 0, tr = 0, ci = 0;
    td_lanczos_result_free(&r);
    if (st == TD_OK)
        st =
            td_hutchinson_trace(hvp, t->h, p->total, t->o.probes, t->o.seed, &tr, &ci, err, errlen);
    t->ntk_sum = 0;
    if (st == TD_OK) st = td_ntk_run(t->ntk, &t->probe.data, NULL, NULL, err, errlen);
    if (st == TD_OK && grow(t) != TD_OK)
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    if (st != TD_OK) return st;
    const double row[N_COLS] = {(double)step, top, tr, ci, t->ntk_sum, omp_get_wtime() - t0};
    for (int c = 0; c < N_COLS; c++) t->cols[c][t->rows] = row[c];
    t->rows++;
    return save(t, err, errlen);
}

/* Rows of an earlier run's file up to the resumed step. */
static enum td_status reload(struct td_curv_track *t, char *err, size_t errlen)
{
    double *steps;
    int64_t n;
    enum td_status st = td_results_read(t->path, "step", &steps, &n, err, errlen);
    if (st == TD_ERR_IO) return TD_OK; /* no file yet: nothing to keep */
    if (st != TD_OK) return st;
    int64_t keep = 0;
    while (keep < n && steps[keep] <= (double)t->o.resumed_step) keep++;
    free(steps);
    for (int c = 0; c < N_COLS && st == TD_OK; c++) {
        double *v;
        int64_t m;
        st = td_results_read(t->path, col_names[c], &v, &m, err, errlen);
        if (st != TD_OK) break;
        if (m < keep) {
            free(v);
            return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: column '%s' is short", t->path,
                              col_names[c]);
        }
        free(t->cols[c]);
        t->cols[c] = v;
    }
    t->rows = t->cap = keep;
    return st;
}

enum td_status td_curv_track_new(struct td_curv_track **out, const struct td_setup *s,
                                 const struct td_curv_track_options *o, char *err, size_t errlen)
{
    *out = NULL;
    struct td_curv_track *t = calloc(1, sizeof(*t));
    if (!t) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    t->o = *o;
    t->s = s;
    snprintf(t->path, sizeof(t->path), "%s/curvature.h5", o->out_dir);
    enum td_status st = TD_OK;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        st = td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create directory: %s", o->out_dir,
                        strerror(errno));
    if (st == TD_OK) st = td_samples_pick(s, "train", 0, o->probe_n, &t->probe, err, errlen);
    if (st == TD_OK) {
        t->g = td_graph_new(td_graph_seed(s->g));
        struct td_model_config mc = s->m.config;
        mc.dropout = 0;
        if (!t->g || td_model_build(s->info, t->g, (int)o->probe_n, &s->desc, &mc, &t->m) != TD_OK)
            st = td_io_errf(TD_ERR_ARG, err, errlen, "curvature probe: %s",
                            t->g ? td_graph_error(t->g) : "out of memory");
    }
    struct td_node *loss = t->m.loss;
    if (st == TD_OK && o->linearize)
        loss = td_model_loss(t->g, td_linearize(t->g, t->m.logits), t->m.labels);
    if (st == TD_OK && td_graph_params(t->g)->total != td_graph_params(s->g)->total)
        st = td_io_errf(TD_ERR_ARG, err, errlen, "curvature probe: the model differs");
    if (st == TD_OK) {
        t->feeds[0] = (struct td_feed){t->m.x, t->probe.data.x[0]};
        t->feeds[1] = (struct td_feed){t->m.labels, t->probe.labels};
        t->h = td_curv_op_new(t->g, loss, t->m.logits, TD_CURV_HESSIAN, t->feeds, 2, o->num_threads,
                              err, errlen);
        if (!t->h) st = TD_ERR_ARG;
    }
    t->zb = (struct td_zoo_builder){s->info, s->desc, s->m.config};
    t->zb.mc.dropout = 0;
    if (st == TD_OK) {
        t->tm = (struct td_tangent_model){
            .build = td_zoo_build, .ctx = &t->zb, .values = td_graph_params(t->g)};
        struct td_ntk_options no = {.trace = 1,
                                    .diagonal = 1,
                                    .num_threads = o->num_threads,
                                    .sink = add_tile,
                                    .sink_ctx = t};
        st = td_ntk_new(&t->ntk, &t->tm, &t->probe.data, NULL, &no, NULL, err, errlen);
    }
    if (st == TD_OK && o->resumed_step >= 0) st = reload(t, err, errlen);
    if (st == TD_OK && (o->resumed_step < 0 || t->rows == 0))
        st = measure(t, o->resumed_step > 0 ? o->resumed_step : 0, err, errlen);
    if (st != TD_OK) {
        td_curv_track_free(t);
        return st;
    }
    *out = t;
    return TD_OK;
}

void td_curv_track_free(struct td_curv_track *t)
{
    if (!t) return;
    td_ntk_free(t->ntk);
    td_curv_op_free(t->h);
    td_graph_free(t->g);
    td_samples_free(&t->probe);
    for (int c = 0; c < N_COLS; c++) free(t->cols[c]);
    free(t);
}

enum td_status td_curv_track_stepped(void *ctx, int64_t step, char *err, size_t errlen)
{
    struct td_curv_track *t = ctx;
    if (step % t->o.every) return TD_OK;
    return measure(t, step, err, errlen);
}
