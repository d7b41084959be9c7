/* adahessian and sophia: Adam-like updates preconditioned by Hutchinson's
 * estimate D = z * (H z) of diag(H), z Rademacher (equations in
 * optim/optim.h). State: m and the curvature EMA (D^2 or D). */
#include <math.h>

#include "graph/rng.h"
#include "optim/optim_impl.h"
#include "optim/par.h"

/* Refresh steps are k = 1, 1 + K, 1 + 2K, ... with k = steps + 1. */
static int refresh(const struct td_optim *o)
{
    return o->steps % o->cfg.hessian_interval == 0;
}

static unsigned hutch_needs(const struct td_optim *o)
{
    return TD_OPTIM_NEEDS_GRAD | (refresh(o) ? TD_OPTIM_NEEDS_TANGENT : 0u);
}

/* dir [n]: z_i = td_rng_sign(seed, TD_RNG_STREAM_PROBE + steps taken, i), a pure function of its
 * arguments, so any thread may draw any element. */
static void hutch_direction(struct td_optim *o, struct td_params *p)
{
    float *restrict z = p->dir;
    const uint64_t seed = o->cfg.seed, stream = TD_RNG_STREAM_PROBE + (uint64_t)o->steps;
    const size_t n = o->n;
#pragma omp parallel for schedule(static)                                                          \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) z[i] = td_rng_sign(seed, stream, (uint64_t)i);
}

/* theta [n], g [n], z [n] = dir, t [n] = H z, m [n], v [n] (EMA of D^2) */
static void adahessian_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    float *restrict w = p->value, *restrict m = o->state[0], *restrict v = o->state[1];
    const float *restrict g = p->grad;
    const float *restrict z = p->dir, *restrict t = p->tangent;
    const float s = td_optim_clip_scale(o, g, NULL);
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const double k = (double)(o->steps + 1);
    const double r = (double)(o->steps / o->cfg.hessian_interval + 1);
    const float step_size = (float)(lr / (1.0 - pow(b1, k)));
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, r))); /* as adam.c's */
    const float shrink = 1.0f - lr * o->cfg.weight_decay;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * (s * g[i]);
        if (with_tangent) {
            const float di = z[i] * t[i];
            v[i] = b2 * v[i] + (1.0f - b2) * di * di;
        }
        w[i] = shrink * w[i] - step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

/* theta [n], g [n], z [n] = dir, t [n] = H z, m [n], h [n] (EMA of D) */
static void sophia_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    float *restrict w = p->value, *restrict m = o->state[0], *restrict h = o->state[1];
    const float *restrict g = p->grad;
    const float *restrict z = p->dir, *restrict t = p->tangent;
    const float s = td_optim_clip_scale(o, g, NULL);
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float rho = o->cfg.rho, c = o->cfg.update_clip;
    const float shrink = 1.0f - lr * o->cfg.weight_decay;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * (s * g[i]);
        /* z and t are the store's blocks, always there: loading them on
         * every step keeps the loop free of conditional loads, so it
         * vectorizes. */
        const float zt = z[i] * t[i];
        h[i] = with_tangent ? b2 * h[i] + (1.0f - b2) * zt : h[i];
        const float rh = rho * h[i];
        const float ratio = m[i] / (rh > eps ? rh : eps); /* fmaxf's result, NaN included */
        /* Comparisons rather than fminf/fmaxf so a NaN gradient stays
         * visible; both are made every time, which lets the loop vectorize. */
        const float upper = ratio > c ? c : ratio;
        const float clipped = ratio < -c ? -c : upper;
        w[i] = shrink * w[i] - lr * clipped;
    }
}

const struct td_optim_method td_optim_adahessian = {
    .name = "adahessian",
    .uses = TD_USES_BETAS | TD_USES_EPS | TD_USES_INTERVAL,
    .n_state = 2,
    .state_names = {"exp_avg", "exp_hessian_diag_sq"},
    .needs = hutch_needs,
    .direction = hutch_direction,
    .step = adahessian_step,
};

const struct td_optim_method td_optim_sophia = {
    .name = "sophia",
    .uses = TD_USES_BETAS | TD_USES_EPS_POSITIVE | TD_USES_INTERVAL | TD_USES_SOPHIA,
    .n_state = 2,
    .state_names = {"exp_avg", "hessian"},
    .needs = hutch_needs,
    .direction = hutch_direction,
    .step = sophia_step,
};
