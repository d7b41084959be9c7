/* hessian-free: truncated Newton on Gauss-Newton products with conjugate
 * gradients and Levenberg-Marquardt damping (equations in optim/optim.h).
 * State: the previous CG solution (the warm start) and the damping lambda.
 * Every dot product is a fixed-order sum (optim/reduce.h), so a run
 * resumed from a checkpoint retraces the same iterates bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim/optim_impl.h"
#include "optim/reduce.h"

/* Halvings of the step tried after lr d fails to lower the loss. */
#define HF_BACKTRACKS 3

/* Martens' stopping test on the quadratic's values q[0..i]. */
static int stalled(const double *q, int i)
{
    int k = i / 10 > 10 ? i / 10 : 10;
    return i > k && q[i] < 0 && (q[i] - q[i - k]) / q[i] < 5e-4 * k;
}

struct cg {
    struct td_optim *o;
    const struct td_optim_oracle *q;
    double shift; /* lambda + wd */
    int products;
};

/* out = (G + shift I) v. */
static enum td_status apply_a(struct cg *c, const float *v, float *out)
{
    enum td_status st = c->q->ggn(c->q->ctx, v, out);
    if (st != TD_OK) return st;
    const float s = (float)c->shift;
    for (size_t i = 0; i < c->o->n; i++) out[i] += s * v[i];
    c->products++;
    return TD_OK;
}

static enum td_status hf_step(struct td_optim *o, struct td_params *p, float lr,
                              const struct td_optim_oracle *q)
{
    const size_t n = o->n;
    const int nt = td_optim_threads(o);
    float *x = o->work[0], *r = o->work[1], *dir = o->work[2], *ad = o->work[3];
    float *keep = o->work[4], *b = o->work[5], *dprev = o->state[0];
    const float s = td_optim_clip_scale(o, p->grad, NULL), wd = o->cfg.weight_decay;
    double lambda = o->scalar[0];
    struct cg c = {o, q, lambda + wd, 0};
    enum td_status st = TD_OK;
    double qs[501]; /* cg_iters <= 500 */
    for (size_t i = 0; i < n; i++) {
        b[i] = -(s * p->grad[i] + wd * p->value[i]);
        x[i] = o->cfg.cg_decay * dprev[i];
    }
    /* r = b - A x, unless the warm start is zero. */
    if (td_vec_sumsq(x, n, nt) > 0) {
        st = apply_a(&c, x, ad);
        for (size_t i = 0; i < n; i++) r[i] = b[i] - ad[i];
    } else {
        memcpy(r, b, n * sizeof(float));
    }
    memcpy(dir, r, n * sizeof(float));
    double rr = td_vec_sumsq(r, n, nt);
    for (int i = 0; st == TD_OK && c.products < o->cfg.cg_iters && rr > 0; i++) {
        st = apply_a(&c, dir, ad);
        if (st != TD_OK) break;
        const double pap = td_vec_dot(dir, ad, n, nt);
        if (!(pap > 0) || !isfinite(pap)) break;
        const float a = (float)(rr / pap);
        for (size_t e = 0; e < n; e++) {
            x[e] += a * dir[e];
            r[e] -= a * ad[e];
        }
        const double rr_new = td_vec_sumsq(r, n, nt);
        /* q(x) = -1/2 x^T (b + r), as A x = b - r. */
        qs[i] = -0.5 * (td_vec_dot(x, b, n, nt) + td_vec_dot(x, r, n, nt));
        if (stalled(qs, i)) break;
        const float beta = (float)(rr_new / rr);
        for (size_t e = 0; e < n; e++) dir[e] = r[e] + beta * dir[e];
        rr = rr_new;
    }
    if (st != TD_OK) {
        snprintf(o->err, sizeof(o->err), "%s: step %lld: a Gauss-Newton product failed", o->m->name,
                 (long long)o->steps + 1);
        return st;
    }
    /* The model's change at lr x: -lr b^T x + lr^2/2 x^T A x, x^T A x = x^T (b - r). */
    const double bx = td_vec_dot(b, x, n, nt), xax = bx - td_vec_dot(x, r, n, nt);
    const double model = -(double)lr * bx + 0.5 * (double)lr * lr * xax;
    const double xx = td_vec_sumsq(x, n, nt);
    o->stats.products = c.products;
    o->stats.model_drop = model;
    o->stats.curvature = xx > 0 ? xax / xx - (lambda + wd) : NAN;
    if (!(model < 0)) {
        /* No descent predicted (a zero gradient): nothing to try. */
        memcpy(dprev, x, n * sizeof(float));
        return TD_OK;
    }
    /* Try lr d, then halves of it, until the loss falls; the ratio of the
     * full step adapts the damping. */
    memcpy(keep, p->value, n * sizeof(float));
    double rho = NAN;
    int accepted = 0;
    for (int back = 0; back <= HF_BACKTRACKS && !accepted; back++) {
        const float a = lr * ldexpf(1.0f, -back);
        for (size_t i = 0; i < n; i++) p->value[i] = keep[i] + a * x[i];
        double l1 = NAN;
        st = q->eval(q->ctx, &l1);
        if (st != TD_OK) {
            memcpy(p->value, keep, n * sizeof(float));
            snprintf(o->err, sizeof(o->err), "%s: step %lld: evaluating the trial step failed",
                     o->m->name, (long long)o->steps + 1);
            return st;
        }
        if (back == 0) rho = (l1 - q->loss) / model;
        accepted = l1 < q->loss;
        o->stats.alpha = a;
    }
    if (!accepted) {
        memcpy(p->value, keep, n * sizeof(float));
        o->stats.alpha = 0;
    }
    o->stats.rho = rho;
    if (!(rho >= 0.25))
        lambda *= 1.5;
    else if (rho > 0.75)
        lambda /= 1.5;
    o->scalar[0] = lambda;
    memcpy(dprev, x, n * sizeof(float));
    return TD_OK;
}

const struct td_optim_method td_optim_hessian_free = {
    .name = "hessian-free",
    .uses = TD_USES_CG,
    .n_state = 1,
    .state_names = {"cg_direction"},
    .needs = NULL,
    .step_oracle = hf_step,
    .n_scalars = 1,
    .scalar_names = {"damping"},
    .n_work = 6,
};
