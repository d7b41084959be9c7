/* The optimizer registry, hyperparameter checks and the calls shared by every
 * method; the update rules live in one file per family. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "optim/optim_impl.h"
#include "optim/reduce.h"

static const struct td_optim_method *const methods[] = {
    &td_optim_sgd,    &td_optim_momentum,     &td_optim_nesterov, &td_optim_adam,
    &td_optim_adamw,  &td_optim_tangent_sgd,  &td_optim_curv_sgd, &td_optim_adahessian,
    &td_optim_sophia, &td_optim_hessian_free,
};
#define N_METHODS ((int)(sizeof(methods) / sizeof(methods[0])))

const char *td_optim_names(void)
{
    return "sgd, momentum, nesterov, adam, adamw, tangent-sgd, curv-sgd, adahessian, sophia, "
           "hessian-free";
}

static const struct td_optim_method *find_method(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < N_METHODS; i++)
        if (strcmp(methods[i]->name, name) == 0) return methods[i];
    return NULL;
}

struct td_optim_config td_optim_config_default(const char *name)
{
    struct td_optim_config c = {
        .lr = 0.01f,
        .momentum = 0.0f,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = 0.0f,
        .clip_norm = 0.0f,
        .lookahead = TD_LOOKAHEAD_MOMENTUM,
        .damping = 1e-3f,
        .max_step_ratio = 10.0f,
        .hessian_interval = 1,
        .rho = 0.04f,
        .update_clip = 1.0f,
        .seed = 0,
        .num_threads = 0,
        .cg_iters = 50,
        .cg_decay = 0.95f,
    };
    const struct td_optim_method *m = find_method(name);
    if (m == &td_optim_momentum || m == &td_optim_nesterov || m == &td_optim_tangent_sgd ||
        m == &td_optim_curv_sgd) {
        /* lr 0.05 beat 0.01 for all four on the seed MLP at 10 epochs
         * (tools/compare_optimizers.sh). */
        c.lr = 0.05f;
        c.momentum = 0.9f;
    } else if (m == &td_optim_adam) {
        c.lr = 1e-3f;
    } else if (m == &td_optim_adamw) {
        c.lr = 1e-3f;
        c.weight_decay = 0.01f;
    } else if (m == &td_optim_adahessian) {
        /* The AdaHessian reference implementation's defaults. */
        c.lr = 0.1f;
        c.eps = 1e-4f;
    } else if (m == &td_optim_hessian_free) {
        /* The full Newton-like step, with Martens' warm start and a
         * damping that the reduction ratio soon adapts. */
        c.lr = 1.0f;
        c.damping = 1.0f;
    } else if (m == &td_optim_sophia) {
        /* SophiaG's published defaults; K = 10 as in the Sophia paper. */
        c.lr = 1e-4f;
        c.beta1 = 0.965f;
        c.beta2 = 0.99f;
        c.eps = 1e-15f;
        c.weight_decay = 0.1f;
        c.hessian_interval = 10;
    }
    return c;
}

static void put_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Writes the first out-of-range field of c into err; 0 when all are fine. */
static int check_config(const struct td_optim_method *m, const struct td_optim_config *c, char *err,
                        size_t errlen)
{
    const char *nm = m->name;
#define BAD(cond, fmt, ...)                                                                        \
    do {                                                                                           \
        if (cond) {                                                                                \
            put_err(err, errlen, "%s: " fmt, nm, __VA_ARGS__);                                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)
    BAD(!(c->lr >= 0.0f) || !isfinite(c->lr), "lr = %g must be finite and >= 0", (double)c->lr);
    BAD(!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay),
        "weight_decay = %g must be finite and >= 0", (double)c->weight_decay);
    BAD(!(c->clip_norm >= 0.0f) || !isfinite(c->clip_norm),
        "clip_norm = %g must be finite and >= 0 (0 = off)", (double)c->clip_norm);
    BAD(c->num_threads < 0, "num_threads = %d must be >= 0 (0 = OpenMP default)", c->num_threads);
    if (m->uses & TD_USES_MOMENTUM)
        BAD(!(c->momentum >= 0.0f && c->momentum < 1.0f), "momentum = %g is outside [0, 1)",
            (double)c->momentum);
    if (m->uses & TD_USES_BETAS) {
        BAD(!(c->beta1 >= 0.0f && c->beta1 < 1.0f), "beta1 = %g is outside [0, 1)",
            (double)c->beta1);
        BAD(!(c->beta2 >= 0.0f && c->beta2 < 1.0f), "beta2 = %g is outside [0, 1)",
            (double)c->beta2);
    }
    if (m->uses & TD_USES_EPS)
        BAD(!(c->eps >= 0.0f) || !isfinite(c->eps), "eps = %g must be finite and >= 0",
            (double)c->eps);
    if (m->uses & TD_USES_EPS_POSITIVE)
        BAD(!(c->eps > 0.0f) || !isfinite(c->eps), "eps = %g must be finite and > 0",
            (double)c->eps);
    if (m->uses & TD_USES_LOOKAHEAD)
        BAD(c->lookahead != TD_LOOKAHEAD_MOMENTUM && c->lookahead != TD_LOOKAHEAD_GRADIENT,
            "lookahead = %d is neither TD_LOOKAHEAD_MOMENTUM (0) nor TD_LOOKAHEAD_GRADIENT (1)",
            (int)c->lookahead);
    if (m->uses & TD_USES_CURVATURE) {
        BAD(!(c->damping >= 0.0f) || !isfinite(c->damping), "damping = %g must be finite and >= 0",
            (double)c->damping);
        BAD(!(c->max_step_ratio > 0.0f) || !isfinite(c->max_step_ratio),
            "max_step_ratio = %g must be finite and > 0", (double)c->max_step_ratio);
    }
    if (m->uses & TD_USES_INTERVAL)
        BAD(c->hessian_interval < 1, "hessian_interval = %d must be >= 1", c->hessian_interval);
    if (m->uses & TD_USES_SOPHIA) {
        BAD(!(c->rho > 0.0f) || !isfinite(c->rho), "rho = %g must be finite and > 0",
            (double)c->rho);
        BAD(!(c->update_clip > 0.0f) || !isfinite(c->update_clip),
            "update_clip = %g must be finite and > 0", (double)c->update_clip);
    }
    if (m->uses & TD_USES_CG) {
        BAD(!(c->damping > 0.0f) || !isfinite(c->damping), "damping = %g must be finite and > 0",
            (double)c->damping);
        BAD(c->cg_iters < 1 || c->cg_iters > 500, "cg_iters = %d is outside [1, 500]", c->cg_iters);
        BAD(!(c->cg_decay >= 0.0f && c->cg_decay <= 1.0f), "cg_decay = %g is outside [0, 1]",
            (double)c->cg_decay);
    }
#undef BAD
    return 0;
}

struct td_optim *td_optim_new(const char *name, const struct td_optim_config *cfg,
                              const struct td_params *p, char *err, size_t errlen)
{
    const struct td_optim_method *m = find_method(name);
    if (!m) {
        put_err(err, errlen, "unknown optimizer '%s'; valid names: %s", name ? name : "(null)",
                td_optim_names());
        return NULL;
    }
    if (!p) {
        put_err(err, errlen, "%s: the parameter store is NULL", m->name);
        return NULL;
    }
    const struct td_optim_config c = cfg ? *cfg : td_optim_config_default(name);
    if (check_config(m, &c, err, errlen)) return NULL;

    struct td_optim *o = calloc(1, sizeof(*o));
    if (!o) goto nomem;
    o->m = m;
    o->cfg = c;
    o->n = p->total;
    /* Slots after the parameter store's three (see graph/memory.h). */
    for (int i = 0; i < m->n_state; i++)
        if (!td_float_block_grow(&o->state_raw[i], &o->state[i], 0, o->n, 3 + i)) goto nomem;
    for (int i = 0; i < m->n_work; i++)
        if (!td_float_block_grow(&o->work_raw[i], &o->work[i], 0, o->n, 3 + m->n_state + i))
            goto nomem;
    /* The one scalar so far is hessian-free's damping, which starts at
     * the configured value. */
    if (m->n_scalars) o->scalar[0] = c.damping;
    return o;
nomem:
    put_err(err, errlen, "%s: out of memory for %d state blocks of %zu floats", m->name, m->n_state,
            p->total);
    td_optim_free(o);
    return NULL;
}

void td_optim_free(struct td_optim *o)
{
    if (!o) return;
    for (int i = 0; i < TD_OPTIM_MAX_STATE; i++) free(o->state_raw[i]);
    for (int i = 0; i < TD_OPTIM_MAX_WORK; i++) free(o->work_raw[i]);
    free(o);
}

const char *td_optim_name(const struct td_optim *o)
{
    return o->m->name;
}

const struct td_optim_config *td_optim_config_of(const struct td_optim *o)
{
    return &o->cfg;
}

unsigned td_optim_needs(const struct td_optim *o)
{
    unsigned need = o->m->needs ? o->m->needs(o) : TD_OPTIM_NEEDS_GRAD;
    return need | (o->m->step_oracle ? TD_OPTIM_NEEDS_PRODUCTS : 0u);
}

static int check_store(struct td_optim *o, const struct td_params *p, const char *call)
{
    if (p && p->total == o->n) return 0;
    if (p)
        snprintf(o->err, sizeof(o->err),
                 "%s: %s: the store holds %zu floats, this optimizer "
                 "was made for %zu",
                 o->m->name, call, p->total, o->n);
    else
        snprintf(o->err, sizeof(o->err), "%s: %s: the parameter store is NULL", o->m->name, call);
    return 1;
}

enum td_status td_optim_direction(struct td_optim *o, struct td_params *p)
{
    if (check_store(o, p, "td_optim_direction")) return TD_ERR_ARG;
    if ((td_optim_needs(o) & TD_OPTIM_NEEDS_TANGENT) && o->m->direction) o->m->direction(o, p);
    o->dir_ready = 1;
    return TD_OK;
}

void td_optim_set_grad_sumsq(struct td_optim *o, double sumsq)
{
    o->grad_sumsq = sumsq;
    o->has_sumsq = 1;
}

/* A step reads the caller's sum of squares once, then forgets it. */
static enum td_status optim_step(struct td_optim *o, struct td_params *p, float lr);

enum td_status td_optim_step(struct td_optim *o, struct td_params *p, float lr)
{
    enum td_status st = optim_step(o, p, lr);
    o->has_sumsq = 0;
    return st;
}

static enum td_status optim_step(struct td_optim *o, struct td_params *p, float lr)
{
    if (check_store(o, p, "td_optim_step")) return TD_ERR_ARG;
    if (!(lr >= 0.0f) || !isfinite(lr)) {
        snprintf(o->err, sizeof(o->err), "%s: step %lld: lr = %g must be finite and >= 0",
                 o->m->name, (long long)o->steps + 1, (double)lr);
        return TD_ERR_ARG;
    }
    const int with_tangent = (td_optim_needs(o) & TD_OPTIM_NEEDS_TANGENT) != 0;
    if (with_tangent && !o->dir_ready) {
        snprintf(o->err, sizeof(o->err),
                 "%s: step %lld needs the tangent H*dir: call "
                 "td_optim_direction before running the plan",
                 o->m->name, (long long)o->steps + 1);
        return TD_ERR_STATE;
    }
    if (o->m->step_oracle && !o->oracle) {
        snprintf(o->err, sizeof(o->err),
                 "%s: step %lld needs curvature products: give an oracle with "
                 "td_optim_set_oracle",
                 o->m->name, (long long)o->steps + 1);
        return TD_ERR_STATE;
    }
    o->stats = (struct td_optim_stats){
        .grad_norm = 0.0,
        .clip_scale = 1.0,
        .alpha = lr,
        .curvature = NAN,
        .fallback = 0,
        .used_tangent = with_tangent,
        .rho = NAN,
    };
    if (o->m->step_oracle) {
        enum td_status st = o->m->step_oracle(o, p, lr, o->oracle);
        if (st != TD_OK) return st;
    } else {
        o->m->step(o, p, lr, with_tangent);
    }
    o->steps++;
    o->dir_ready = 0;
    return TD_OK;
}

const char *td_optim_error(const struct td_optim *o)
{
    return o->err;
}

const struct td_optim_stats *td_optim_last_stats(const struct td_optim *o)
{
    return &o->stats;
}

int64_t td_optim_steps(const struct td_optim *o)
{
    return o->steps;
}

enum td_status td_optim_set_steps(struct td_optim *o, int64_t steps)
{
    if (steps < 0) {
        snprintf(o->err, sizeof(o->err), "%s: step counter %lld must be >= 0", o->m->name,
                 (long long)steps);
        return TD_ERR_ARG;
    }
    o->steps = steps;
    o->dir_ready = 0;
    return TD_OK;
}

int td_optim_state_count(const struct td_optim *o)
{
    return o->m->n_state;
}

enum td_status td_optim_state_block(struct td_optim *o, int i, const char **name, float **data,
                                    size_t *n)
{
    if (i < 0 || i >= o->m->n_state) {
        snprintf(o->err, sizeof(o->err), "%s: state block %d does not exist (it has %d)",
                 o->m->name, i, o->m->n_state);
        return TD_ERR_ARG;
    }
    if (name) *name = o->m->state_names[i];
    if (data) *data = o->state[i];
    if (n) *n = o->n;
    return TD_OK;
}

enum td_status td_optim_set_oracle(struct td_optim *o, const struct td_optim_oracle *oracle)
{
    o->oracle = oracle;
    return TD_OK;
}

int td_optim_scalar_count(const struct td_optim *o)
{
    return o->m->n_scalars;
}

enum td_status td_optim_scalar(struct td_optim *o, int i, const char **name, double **value)
{
    if (i < 0 || i >= o->m->n_scalars) {
        snprintf(o->err, sizeof(o->err), "%s: state scalar %d does not exist (it has %d)",
                 o->m->name, i, o->m->n_scalars);
        return TD_ERR_ARG;
    }
    if (name) *name = o->m->scalar_names[i];
    if (value) *value = &o->scalar[i];
    return TD_OK;
}

float td_optim_clip_scale(struct td_optim *o, const float *g, const float *t)
{
    const int nt = td_optim_threads(o);
    const double sq = t              ? td_vec_sumsq_sum(g, t, o->n, nt)
                      : o->has_sumsq ? o->grad_sumsq
                                     : td_vec_sumsq(g, o->n, nt);
    const double norm = sqrt(sq);
    const double c = o->cfg.clip_norm;
    float s = 1.0f;
    if (c > 0.0 && isfinite(norm) && norm > c) s = (float)(c / norm);
    o->stats.grad_norm = norm;
    o->stats.clip_scale = s;
    return s;
}
