/* adam (L2 weight decay, torch.optim.Adam) and adamw (decoupled,
 * torch.optim.AdamW); the equations are in optim/optim.h. */
#include <math.h>

#include "optim/optim_impl.h"
#include "optim/par.h"

/* theta [n], g [n], m [n], v [n] */
static void adam_update(struct td_optim *o, struct td_params *p, float lr, int decoupled)
{
    float *restrict w = p->value, *restrict m = o->state[0], *restrict v = o->state[1];
    const float *restrict g = p->grad;
    const float s = td_optim_clip_scale(o, g, NULL);
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const double k = (double)(o->steps + 1);
    const float step_size = (float)(lr / (1.0 - pow(b1, k)));
    /* 1 / sqrt(1 - b2^k): a multiplication per element instead of a
     * division (vdivps and vsqrtps dominate this memory-light loop). */
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, k)));
    const float l2 = decoupled ? 0.0f : o->cfg.weight_decay;
    const float shrink = decoupled ? 1.0f - lr * o->cfg.weight_decay : 1.0f;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float u = s * g[i] + l2 * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * u;
        v[i] = b2 * v[i] + (1.0f - b2) * u * u;
        w[i] = shrink * w[i] - step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

static void adam_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    (void)with_tangent;
    adam_update(o, p, lr, 0);
}

static void adamw_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    (void)with_tangent;
    adam_update(o, p, lr, 1);
}

const struct td_optim_method td_optim_adam = {
    .name = "adam",
    .uses = TD_USES_BETAS | TD_USES_EPS,
    .n_state = 2,
    .state_names = {"exp_avg", "exp_avg_sq"},
    .step = adam_step,
};

const struct td_optim_method td_optim_adamw = {
    .name = "adamw",
    .uses = TD_USES_BETAS | TD_USES_EPS,
    .n_state = 2,
    .state_names = {"exp_avg", "exp_avg_sq"},
    .step = adamw_step,
};
