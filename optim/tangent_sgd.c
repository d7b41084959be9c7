/* tangent-sgd: momentum on the first-order lookahead gradient g + H dir, the
 * Taylor estimate of grad L(theta + dir) (equations in optim/optim.h).
 * State: v (momentum buffer) and a, the direction the next step will read. */
#include "optim/optim_impl.h"
#include "optim/par.h"

#include <string.h>

/* Whether the coming step has a nonzero direction: none before the first
 * step, and none ever in momentum mode without momentum. */
static unsigned tangent_needs(const struct td_optim *o)
{
    const int zero_dir =
        o->steps == 0 || (o->cfg.lookahead == TD_LOOKAHEAD_MOMENTUM && o->cfg.momentum == 0.0f);
    return TD_OPTIM_NEEDS_GRAD | (zero_dir ? 0u : TD_OPTIM_NEEDS_TANGENT);
}

static void tangent_direction(struct td_optim *o, struct td_params *p)
{
    memcpy(p->dir, o->state[1], o->n * sizeof(float));
}

/* theta [n], g [n], t [n] = H dir, dir [n], v [n], a [n] (next dir).
 * Without a tangent this step's dir and t are zero. */
static void tangent_step(struct td_optim *o, struct td_params *p, float lr, int with_tangent)
{
    float *restrict w = p->value, *restrict v = o->state[0], *restrict a = o->state[1];
    const float *restrict g = p->grad;
    /* Without a tangent, g stands in for t and dir, scaled by 0 (g is finite
     * here): a loop that loads through no conditional pointer vectorizes. */
    const float *restrict t = with_tangent ? p->tangent : g;
    const float *restrict dir = with_tangent ? p->dir : g;
    const float tf = with_tangent ? 1.0f : 0.0f;
    const float s = td_optim_clip_scale(o, g, with_tangent ? t : NULL);
    const float wd = o->cfg.weight_decay, mu = o->cfg.momentum;
    const int grad_mode = o->cfg.lookahead == TD_LOOKAHEAD_GRADIENT;
    const size_t n = o->n;
#pragma omp parallel for simd schedule(static, td_par_chunk(n, td_optim_threads(o)))               \
    num_threads(td_optim_threads(o)) if (n >= TD_OPTIM_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float wi = w[i];
        const float u = s * (g[i] + tf * t[i]) + wd * (wi + tf * dir[i]);
        const float ga = -lr * (s * g[i] + wd * wi);
        const float vi = mu * v[i] + u;
        v[i] = vi;
        w[i] = wi - lr * vi;
        a[i] = grad_mode ? ga : -lr * mu * vi;
    }
}

const struct td_optim_method td_optim_tangent_sgd = {
    .name = "tangent-sgd",
    .uses = TD_USES_MOMENTUM | TD_USES_LOOKAHEAD,
    .n_state = 2,
    .state_names = {"momentum_buffer", "lookahead"},
    .needs = tangent_needs,
    .direction = tangent_direction,
    .step = tangent_step,
};
