/* sgd, momentum and nesterov (torch.optim.SGD semantics, dampening 0); the
 * equations are in optim/optim.h. */
#include "optim/optim_impl.h"
#include "optim/par.h"

/* theta [n], g [n] */
static void sgd_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    (void)with_tangent;
    float *restrict w = p->value;
    const float *restrict g = p->grad;
    const float s = td_optim_clip_scale(o, g, NULL), wd = o->cfg.weight_decay;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) w[i] -= lr * (s * g[i] + wd * w[i]);
}

/* theta [n], g [n], v [n] */
static void momentum_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    (void)with_tangent;
    float *restrict w = p->value, *restrict v = o->state[0];
    const float *restrict g = p->grad;
    const float s = td_optim_clip_scale(o, g, NULL), wd = o->cfg.weight_decay;
    const float mu = o->cfg.momentum;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        v[i] = mu * v[i] + (s * g[i] + wd * w[i]);
        w[i] -= lr * v[i];
    }
}

/* theta [n], g [n], v [n] */
static void nesterov_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    (void)with_tangent;
    float *restrict w = p->value, *restrict v = o->state[0];
    const float *restrict g = p->grad;
    const float s = td_optim_clip_scale(o, g, NULL), wd = o->cfg.weight_decay;
    const float mu = o->cfg.momentum;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float u = s * g[i] + wd * w[i];
        v[i] = mu * v[i] + u;
        w[i] -= lr * (u + mu * v[i]);
    }
}

const struct td_optim_method td_optim_sgd = {
    .name = "sgd",
    .step = sgd_step,
};

const struct td_optim_method td_optim_momentum = {
    .name = "momentum",
    .uses = TD_USES_MOMENTUM,
    .n_state = 1,
    .state_names = {"momentum_buffer"},
    .step = momentum_step,
};

const struct td_optim_method td_optim_nesterov = {
    .name = "nesterov",
    .uses = TD_USES_MOMENTUM,
    .n_state = 1,
    .state_names = {"momentum_buffer"},
    .step = nesterov_step,
};
