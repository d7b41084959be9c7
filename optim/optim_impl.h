/* Library-internal: the optimizer vtable and the fields every method shares.
 * Not installed. Each method file defines one struct td_optim_method. */
#ifndef TD_OPTIM_IMPL_H
#define TD_OPTIM_IMPL_H

#include <omp.h>

#include "graph/status.h"
#include "optim/optim.h"

#define TD_OPTIM_MAX_STATE 2
#define TD_OPTIM_MAX_SCALARS 1
#define TD_OPTIM_MAX_WORK 6

/* Below this many elements an elementwise loop stays on one thread: the
 * team start-up costs more than the loop. */
#define TD_OPTIM_PAR_MIN 32768

/* Config fields a method reads; td_optim_new validates exactly these. */
enum {
    TD_USES_MOMENTUM = 1u << 0,
    TD_USES_BETAS = 1u << 1,
    TD_USES_EPS = 1u << 2,
    TD_USES_EPS_POSITIVE = 1u << 3,
    TD_USES_LOOKAHEAD = 1u << 4,
    TD_USES_CURVATURE = 1u << 5, /* damping, max_step_ratio */
    TD_USES_INTERVAL = 1u << 6,  /* hessian_interval */
    TD_USES_SOPHIA = 1u << 7,    /* rho, update_clip */
    TD_USES_CG = 1u << 8,        /* damping (> 0), cg_iters, cg_decay */
};

struct td_optim;

struct td_optim_method {
    const char *name;
    unsigned uses; /* TD_USES_* */
    int n_state;
    const char *state_names[TD_OPTIM_MAX_STATE];
    /* NULL means gradient only, every step. */
    unsigned (*needs)(const struct td_optim *o);
    /* Writes p->dir; called only when needs() asks for a tangent. */
    void (*direction)(struct td_optim *o, struct td_params *p);
    /* Updates p->value and the state; with_tangent tells whether p->tangent
     * holds H p->dir for this step. Does not touch o->steps. */
    void (*step)(struct td_optim *o, struct td_params *p, float lr, int with_tangent);
    /* Methods that need products step through this instead (the oracle is
     * set); an error leaves p->value and the state as they were. */
    enum td_status (*step_oracle)(struct td_optim *o, struct td_params *p, float lr,
                                  const struct td_optim_oracle *q);
    int n_scalars;
    const char *scalar_names[TD_OPTIM_MAX_SCALARS];
    int n_work; /* scratch blocks of n floats, allocated with the optimizer */
};

struct td_optim {
    const struct td_optim_method *m;
    struct td_optim_config cfg;
    size_t n;      /* floats per block */
    int64_t steps; /* steps taken */
    int dir_ready; /* td_optim_direction ran since the last step */
    int has_sumsq; /* grad_sumsq holds the next step's gradient's sum of squares */
    double grad_sumsq;
    float *state[TD_OPTIM_MAX_STATE]; /* inside state_raw[i] */
    double scalar[TD_OPTIM_MAX_SCALARS];
    float *work[TD_OPTIM_MAX_WORK]; /* inside work_raw[i] */
    void *state_raw[TD_OPTIM_MAX_STATE], *work_raw[TD_OPTIM_MAX_WORK];
    const struct td_optim_oracle *oracle;
    struct td_optim_stats stats;
    char err[TD_MSG_MAX];
};

extern const struct td_optim_method td_optim_sgd, td_optim_momentum, td_optim_nesterov,
    td_optim_adam, td_optim_adamw, td_optim_tangent_sgd, td_optim_curv_sgd, td_optim_adahessian,
    td_optim_sophia, td_optim_hessian_free;

/* The team size for o's loops (never 0). */
static inline int td_optim_threads(const struct td_optim *o)
{
    return o->cfg.num_threads > 0 ? o->cfg.num_threads : omp_get_max_threads();
}

/* The clipping factor s for the gradient g (g + t when t is not NULL) of
 * o->n floats; records grad_norm and clip_scale in o->stats. Returns 1 when
 * clipping is off or the norm is within clip_norm or not finite. */
float td_optim_clip_scale(struct td_optim *o, const float *g, const float *t);

#endif
