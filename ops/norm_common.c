#include "ops/norm_common.h"

#include "ops/ops.h"

void td_norm_run(const struct td_exec *ex, const float *x, const float *gamma, const float *beta)
{
    const struct td_shape *s = &ex->node->shape;
    float eps = ex->node->attr.f[0], *out = ex->out;
    int64_t c = s->dim[s->rank - 1], rows = td_shape_numel(s) / c;
    TD_PARALLEL_FOR(ex->nthreads, r, rows, {
        const float *xr = x + r * c;
        float *o = out + r * c, m, rstd;
        td_norm_row_stats(xr, c, eps, &m, &rstd);
        if (gamma)
            for (int64_t j = 0; j < c; j++) o[j] = (xr[j] - m) * rstd * gamma[j] + beta[j];
        else
            for (int64_t j = 0; j < c; j++) o[j] = (xr[j] - m) * rstd;
    });
}

/* Sums of w and w (x - m) over a row, w = v * gamma (v when gamma is
 * NULL), in TD_VLANES lanes; the last partial chunk is padded so that it
 * adds 0 (v = 0, x = m). */
static inline void row_sums_w(const float *x, const float *v, const float *gamma, float m,
                              int64_t c, float *sum_w, float *sum_wd)
{
    td_vf sw = {0}, swd = {0}, w, g, d;
    int64_t j = 0;
    for (; j + TD_VLANES <= c; j += TD_VLANES) {
        td_vload(&w, v + j);
        if (gamma) {
            td_vload(&g, gamma + j);
            w *= g;
        }
        td_vload(&d, x + j);
        sw += w;
        swd += w * (d - m);
    }
    if (j < c) {
        td_vtail(&w, v, j, c, 0.f);
        if (gamma) {
            td_vtail(&g, gamma, j, c, 0.f);
            w *= g;
        }
        td_vtail(&d, x, j, c, m);
        sw += w;
        swd += w * (d - m);
    }
    *sum_w = td_vf_sum(&sw);
    *sum_wd = td_vf_sum(&swd);
}

/* With w = v * gamma: out = rstd (w - mean(w) - xhat mean(w xhat)), and
 * xhat mean(w xhat) = (x - m) rstd^2 mean(w (x - m)). */
void td_norm_grad_run(const struct td_exec *ex, const float *x, const float *v, const float *gamma)
{
    const struct td_shape *s = &ex->node->shape;
    float eps = ex->node->attr.f[0], *out = ex->out;
    int64_t c = s->dim[s->rank - 1], rows = td_shape_numel(s) / c;
    float inv_c = 1.0f / (float)c;
    TD_PARALLEL_FOR(ex->nthreads, r, rows, {
        const float *xr = x + r * c, *vr = v + r * c;
        float *o = out + r * c, m, rstd, sum_w, sum_wd;
        td_norm_row_stats(xr, c, eps, &m, &rstd);
        row_sums_w(xr, vr, gamma, m, c, &sum_w, &sum_wd);
        float mean_w = sum_w * inv_c, k = sum_wd * inv_c * rstd * rstd;
        if (gamma)
            for (int64_t j = 0; j < c; j++)
                o[j] = rstd * (vr[j] * gamma[j] - mean_w - (xr[j] - m) * k);
        else
            for (int64_t j = 0; j < c; j++) o[j] = rstd * (vr[j] - mean_w - (xr[j] - m) * k);
    });
}

static const char *dtype_name(const struct td_node *n)
{
    return n->dtype == TD_F32 ? "float32" : "int32";
}

enum td_status td_norm_check(struct td_node *n)
{
    char s[128];
    for (int i = 0; i < n->n_src; i++)
        if (n->src[i]->dtype != TD_F32)
            return td_node_fail(n, "expects float operands, operand %d is %s %s", i,
                                dtype_name(n->src[i]),
                                td_shape_format(&n->src[i]->shape, s, sizeof(s)));
    const struct td_shape *x = &n->src[0]->shape;
    if (x->rank < 1)
        return td_node_fail(n, "needs x of rank >= 1, got %s", td_shape_format(x, s, sizeof(s)));
    if (!(n->attr.f[0] >= 0.f)) return td_node_fail(n, "eps must be >= 0, got %g", n->attr.f[0]);
    return TD_OK;
}

enum td_status td_norm_check_same(struct td_node *n, int i, const char *what)
{
    const struct td_shape *x = &n->src[0]->shape, *o = &n->src[i]->shape;
    char sx[128], so[128];
    if (td_shape_equal(x, o)) return TD_OK;
    return td_node_fail(n, "%s %s must have the shape of x %s", what,
                        td_shape_format(o, so, sizeof(so)), td_shape_format(x, sx, sizeof(sx)));
}

enum td_status td_norm_check_row(struct td_node *n, int i, const char *what)
{
    const struct td_shape *x = &n->src[0]->shape, *o = &n->src[i]->shape;
    int64_t c = x->dim[x->rank - 1];
    char sx[128], so[128];
    if (o->rank == 1 && o->dim[0] == c) return TD_OK;
    return td_node_fail(n, "%s %s must be [%lld], the last axis of x %s", what,
                        td_shape_format(o, so, sizeof(so)), (long long)c,
                        td_shape_format(x, sx, sizeof(sx)));
}

struct td_node *td_norm_sum_rows(struct td_graph *g, struct td_node *t)
{
    int rank = t->shape.rank;
    return rank == 1 ? t : td_reduce_sum(g, t, (1u << (rank - 1)) - 1u, 0);
}

struct td_node *td_normalize_second(struct td_graph *g, struct td_node *x, struct td_node *v,
                                    struct td_node *t, float eps)
{
    unsigned last = 1u << (x->shape.rank - 1);
    struct td_node *xhat = td_normalize(g, x, eps);
    struct td_node *d = td_sub(g, x, td_reduce_mean(g, x, last, 1));
    struct td_node *r =
        td_rsqrt(g, td_add_scalar(g, td_reduce_mean(g, td_square(g, d), last, 1), eps));
    struct td_node *nv = td_normalize_grad(g, x, v, eps), *nt = td_normalize_grad(g, x, t, eps);
    struct td_node *a = td_mul(g, td_reduce_mean(g, td_mul(g, xhat, t), last, 1), nv);
    struct td_node *b = td_mul(g, td_reduce_mean(g, td_mul(g, xhat, v), last, 1), nt);
    struct td_node *c = td_mul(g, xhat, td_reduce_mean(g, td_mul(g, v, nt), last, 1));
    return td_neg(g, td_mul(g, r, td_add(g, td_add(g, a, b), c)));
}

void td_norm_reference_stats(const float *x, int64_t c, double eps, double *mean, double *rstd)
{
    double m = 0, var = 0;
    for (int64_t j = 0; j < c; j++) m += x[j];
    m /= (double)c;
    for (int64_t j = 0; j < c; j++) var += (x[j] - m) * (x[j] - m);
    *mean = m;
    *rstd = 1.0 / sqrt(var / (double)c + eps);
}
