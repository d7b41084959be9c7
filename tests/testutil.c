#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/node.h"
#include "graph/rng.h"

void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * td_rng_uniform(seed, stream, i);
}

void tu_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++) x[i] = td_rng_normal(seed, stream, i);
}

void tu_fill_int(int32_t *x, size_t n, int hi, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++) x[i] = (int32_t)(td_rng_u64(seed, stream, i) % (uint64_t)hi);
}

double tu_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

double tu_dot_abs(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    return s;
}

double tu_norm(const float *a, size_t n)
{
    return sqrt(tu_dot(a, a, n));
}

double tu_norm_diff_d(const float *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

double tu_norm_d(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * a[i];
    return sqrt(s);
}

/* Worst element by the ratio of its error to its allowance; NaN counts as worst. */
int tu_close_d(const float *got, const double *want, size_t n, double rtol, double atol, char *msg,
               size_t msg_len)
{
    size_t worst = 0;
    double worst_ratio = -1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        double ratio = err / (rtol * fabs(want[i]) + atol);
        if (isnan(ratio) || isnan(got[i]) || isinf(got[i])) ratio = INFINITY;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    if (n == 0 || worst_ratio <= 1) return 1;
    snprintf(msg, msg_len, "index %zu of %zu: got %.9g, expected %.9g (rtol %g, atol %g)", worst, n,
             (double)got[worst], want[worst], rtol, atol);
    return 0;
}

int tu_close_f(const float *got, const float *want, size_t n, double rtol, double atol, char *msg,
               size_t msg_len)
{
    double *w = malloc(n * sizeof *w + 1);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++) w[i] = want[i];
    int ok = tu_close_d(got, w, n, rtol, atol, msg, msg_len);
    free(w);
    return ok;
}

void tu_assert_close(const char *what, const float *got, const float *want, size_t n, double rtol,
                     double atol)
{
    char msg[256];
    int ok = tu_close_f(got, want, n, rtol, atol, msg, sizeof msg);
    ck_assert_msg(ok, "%s: %s", what, msg);
}

void tu_assert_rel(const char *what, double a, double b, double tol, double floor)
{
    double scale = fmax(fmax(fabs(a), fabs(b)), floor);
    ck_assert_msg(fabs(a - b) <= tol * scale, "%s: %.9g vs %.9g (relative difference %.3g > %g)",
                  what, a, b, fabs(a - b) / scale, tol);
}

enum td_status tu_eval_init(struct tu_eval *e, struct td_graph *g, struct td_node *const *outs,
                            int n_out, const struct td_compile_options *opts)
{
    struct td_node *planned[TU_MAX_OUT];
    int n_planned = 0;
    ck_assert_int_le(n_out, TU_MAX_OUT);
    memset(e, 0, sizeof *e);
    e->graph = g;
    e->n_out = n_out;
    for (int i = 0; i < n_out; i++) {
        e->out[i] = outs[i];
        e->slot[i] = -1;
        if (outs[i] && outs[i]->kind == TD_NODE_OP) {
            e->slot[i] = n_planned;
            planned[n_planned++] = outs[i];
        }
    }
    if (n_planned == 0) return TD_OK;
    e->plan = td_compile(g, planned, n_planned, opts);
    if (!e->plan) return td_graph_status(g) != TD_OK ? td_graph_status(g) : TD_ERR_STATE;
    return TD_OK;
}

enum td_status tu_eval_run(struct tu_eval *e, const struct td_feed *feeds, int n_feeds)
{
    e->feeds = feeds;
    e->n_feeds = n_feeds;
    return e->plan ? td_run(e->plan, feeds, n_feeds) : TD_OK;
}

const float *tu_eval_output(const struct tu_eval *e, int i)
{
    const struct td_node *n = e->out[i];
    if (e->slot[i] >= 0) return td_plan_output(e->plan, e->slot[i]);
    if (n->kind == TD_NODE_CONST) return n->const_data;
    if (n->kind == TD_NODE_PARAM)
        return td_graph_params(e->graph)->value +
               td_graph_params(e->graph)->info[n->param_index].offset;
    for (int f = 0; f < e->n_feeds; f++)
        if (e->feeds[f].node == n) return e->feeds[f].data;
    ck_abort_msg("output %d (node #%d) is an input that was not fed", i, n->id);
    return NULL;
}

void tu_eval_free(struct tu_eval *e)
{
    td_plan_free(e->plan);
    e->plan = NULL;
}

void tu_assert_graph_ok(struct td_graph *g, const char *what)
{
    ck_assert_msg(td_graph_status(g) == TD_OK, "%s: graph error %s: %s", what,
                  td_status_name(td_graph_status(g)), td_graph_error(g));
}

void tu_assert_eval_init(struct tu_eval *e, struct td_graph *g, struct td_node *const *outs,
                         int n_out, const struct td_compile_options *opts)
{
    enum td_status s = tu_eval_init(e, g, outs, n_out, opts);
    ck_assert_msg(s == TD_OK, "td_compile failed: %s: %s", td_status_name(s), td_graph_error(g));
}

void tu_assert_eval_run(struct tu_eval *e, const struct td_feed *feeds, int n_feeds)
{
    enum td_status s = tu_eval_run(e, feeds, n_feeds);
    ck_assert_msg(s == TD_OK, "td_run failed: %s: %s", td_status_name(s),
                  e->plan ? td_plan_error(e->plan) : "");
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tu_remove_tree(const char *path)
{
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

void tu_assert_build_fails(struct td_graph *g, const struct td_node *n, enum td_status status,
                           const char *text)
{
    ck_assert_msg(n == NULL, "the build succeeded; expected: %s", text);
    ck_assert_msg(td_graph_status(g) == status, "status %s, expected %s (%s)",
                  td_status_name(td_graph_status(g)), td_status_name(status), td_graph_error(g));
    ck_assert_str_eq(td_graph_error(g), text);
    td_graph_clear_error(g);
}

void tu_assert_unnamed_build_fails(struct td_graph *g, const struct td_node *n,
                                   enum td_status status, const char *op, const char *text)
{
    char want[TD_MSG_MAX];
    snprintf(want, sizeof want, "%s #%d: %s", op, td_graph_num_nodes(g), text);
    tu_assert_build_fails(g, n, status, want);
}
