/* curv-sgd: steps along the previous momentum direction d = -v by the
 * minimiser of the damped quadratic model, read off one Hessian-vector
 * product (equations in optim/optim.h). State: v (momentum buffer). */
#include <math.h>

#include "optim/optim_impl.h"
#include "optim/par.h"
#include "optim/reduce.h"

static unsigned curv_needs(const struct td_optim *o)
{
    return TD_OPTIM_NEEDS_GRAD | (o->steps == 0 ? 0u : TD_OPTIM_NEEDS_TANGENT);
}

/* dir [n] = -v [n] */
static void curv_direction(struct td_optim *o, struct td_params *p)
{
    float *restrict d = p->dir;
    const float *restrict v = o->state[0];
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) d[i] = -v[i];
}

/* The step length along d and the reason it was chosen (0 minimiser,
 * 1 fallback to lr, 2 clipped to max_step_ratio * lr). */
static double step_length(const struct td_optim *o, double ud, double dhd, double dd, float lr,
                          int *why)
{
    const double q = dhd + ((double)o->cfg.weight_decay + (double)o->cfg.damping) * dd;
    double alpha = -ud / q;
    *why = 0;
    if (!(q > 0.0) || !isfinite(q) || !isfinite(alpha)) {
        alpha = lr;
        *why = 1;
    }
    const double cap = (double)o->cfg.max_step_ratio * (double)lr;
    if (fabs(alpha) > cap) {
        alpha = alpha > 0.0 ? cap : -cap;
        *why = 2;
    }
    return alpha;
}

/* theta [n], g [n], d [n] = dir, t [n] = H d, v [n] */
static void curv_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    float *restrict w = p->value, *restrict v = o->state[0];
    const float *restrict g = p->grad;
    const float s = td_optim_clip_scale(o, g, NULL);
    const float wd = o->cfg.weight_decay, mu = o->cfg.momentum;
    const size_t n = o->n;
    const int nt = td_optim_threads(o);
    if (!with_tangent) {
#pragma omp parallel for simd schedule(static, td_par_chunk(n, nt))                                \
    num_threads(nt) if (n >= TD_OPTIM_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            v[i] = mu * v[i] + (s * g[i] + wd * w[i]);
            w[i] -= lr * v[i];
        }
        return;
    }
    const float *restrict d = p->dir, *restrict t = p->tangent;
    double ud = (double)s * td_vec_dot(g, d, n, nt);
    if (wd > 0.0f) ud += (double)wd * td_vec_dot(w, d, n, nt);
    const double dhd = td_vec_dot(t, d, n, nt), dd = td_vec_sumsq(d, n, nt);
    int why;
    const double alpha = step_length(o, ud, dhd, dd, lr, &why);
    o->stats.alpha = alpha;
    o->stats.fallback = why;
    o->stats.curvature = dd > 0.0 ? dhd / dd : NAN;
    const float af = (float)alpha;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, nt))                                \
    num_threads(nt) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float u = s * g[i] + wd * w[i];
        w[i] += af * d[i];
        v[i] = mu * v[i] + u;
    }
}

const struct td_optim_method td_optim_curv_sgd = {
    .name = "curv-sgd",
    .uses = TD_USES_MOMENTUM | TD_USES_CURVATURE,
    .n_state = 1,
    .state_names = {"momentum_buffer"},
    .needs = curv_needs,
    .direction = curv_direction,
    .step = curv_step,
};
