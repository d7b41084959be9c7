/* Optimizers, schedules and clipping.
 *
 * Every method's first three updates on a hand-made store are compared with a
 * reference written out again here in double precision (not calling the
 * library). The quadratic tests then run the real engine on
 * L(theta) = 0.5 theta^T A theta - b^T theta, where the gradient (A theta - b),
 * the Hessian-vector product (A dir) and the line minimiser along d
 * (-g^T d / d^T A d) are known exactly. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "graph/autodiff.h"
#include "graph/plan.h"
#include "graph/rng.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "optim/par.h"
#include "optim/reduce.h"
#include "optim/schedule.h"
#include "tests/testutil.h"

/* ---- a hand-made store and three steps of data ---- */

#define N 5
#define RTOL 1e-6
#define ATOL 1e-7

static const float theta0[N] = {0.5f, -1.25f, 2.0f, 0.1f, -0.7f};
static const float G[3][N] = {
    {0.3f, -0.2f, 1.5f, -0.05f, 0.8f},
    {0.25f, -0.4f, 1.1f, 0.02f, 0.5f},
    {-0.1f, -0.3f, 0.9f, 0.07f, 0.45f},
};
/* Stand-ins for H dir: the optimizer only reads them, so any values test
 * the update formulas; the quadratic tests use real ones. */
static const float T[3][N] = {
    {0.7f, -0.1f, 0.4f, 2.0f, -0.3f},
    {0.2f, 0.35f, -0.6f, 1.2f, 0.05f},
    {-0.4f, 0.15f, 0.3f, -0.8f, 0.6f},
};
static const float LR[3] = {0.1f, 0.05f, 0.08f};

struct store {
    float value[N], grad[N], tangent[N], dir[N];
    struct td_params p;
};

static void store_init(struct store *s)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->value, theta0, sizeof(theta0));
    s->p.total = N;
    s->p.value = s->value;
    s->p.grad = s->grad;
    s->p.tangent = s->tangent;
    s->p.dir = s->dir;
}

static struct td_optim *new_optim(const char *name, const struct td_optim_config *c,
                                  const struct td_params *p)
{
    char err[256] = "";
    struct td_optim *o = td_optim_new(name, c, p, err, sizeof err);
    ck_assert_msg(o != NULL, "td_optim_new(%s) failed: %s", name, err);
    return o;
}

/* Before the run of step k: poisons dir so a step that did not ask for a
 * direction cannot silently read one, asks for the direction, and fills grad
 * (and tangent, or NaN when the step did not ask for it). */
static unsigned begin_step(struct td_optim *o, struct store *s, int k, const float *tangent)
{
    for (int i = 0; i < N; i++) s->dir[i] = NAN;
    unsigned need = td_optim_needs(o);
    ck_assert_int_eq(td_optim_direction(o, &s->p), TD_OK);
    memcpy(s->grad, G[k], sizeof(s->grad));
    for (int i = 0; i < N; i++) s->tangent[i] = (need & TD_OPTIM_NEEDS_TANGENT) ? tangent[i] : NAN;
    return need;
}

static void end_step(struct td_optim *o, struct store *s, int k, const double *w_ref)
{
    ck_assert_msg(td_optim_step(o, &s->p, LR[k]) == TD_OK, "%s step %d: %s", td_optim_name(o),
                  k + 1, td_optim_error(o));
    char what[64];
    snprintf(what, sizeof what, "%s step %d", td_optim_name(o), k + 1);
    char msg[256];
    ck_assert_msg(tu_close_d(s->value, w_ref, N, RTOL, ATOL, msg, sizeof msg), "%s: %s", what, msg);
}

static void assert_dir(const struct store *s, const double *want, const char *what)
{
    char msg[256];
    ck_assert_msg(tu_close_d(s->dir, want, N, RTOL, ATOL, msg, sizeof msg), "%s direction: %s",
                  what, msg);
}

static void ref_init(double *w)
{
    for (int i = 0; i < N; i++) w[i] = theta0[i];
}

/* ---- first three updates of every method ---- */

START_TEST(test_sgd)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("sgd");
    c.weight_decay = 0.01f;
    struct td_optim *o = new_optim("sgd", &c, &s.p);
    double w[N];
    ref_init(w);
    const double wd = c.weight_decay;
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(begin_step(o, &s, k, T[k]), TD_OPTIM_NEEDS_GRAD);
        for (int i = 0; i < N; i++) w[i] = w[i] - LR[k] * (G[k][i] + wd * w[i]);
        end_step(o, &s, k, w);
    }
    ck_assert_int_eq(td_optim_steps(o), 3);
    td_optim_free(o);
}
END_TEST

START_TEST(test_momentum)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("momentum");
    c.weight_decay = 0.01f;
    struct td_optim *o = new_optim("momentum", &c, &s.p);
    double w[N], v[N] = {0};
    ref_init(w);
    const double mu = c.momentum, wd = c.weight_decay;
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(begin_step(o, &s, k, T[k]), TD_OPTIM_NEEDS_GRAD);
        for (int i = 0; i < N; i++) {
            v[i] = mu * v[i] + G[k][i] + wd * w[i];
            w[i] -= LR[k] * v[i];
        }
        end_step(o, &s, k, w);
    }
    td_optim_free(o);
}
END_TEST

START_TEST(test_nesterov)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("nesterov");
    c.weight_decay = 0.01f;
    struct td_optim *o = new_optim("nesterov", &c, &s.p);
    double w[N], buf[N] = {0};
    ref_init(w);
    const double mu = c.momentum, wd = c.weight_decay;
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(begin_step(o, &s, k, T[k]), TD_OPTIM_NEEDS_GRAD);
        for (int i = 0; i < N; i++) {
            double grad = G[k][i] + wd * w[i];
            buf[i] = mu * buf[i] + grad;
            grad += mu * buf[i];
            w[i] -= LR[k] * grad;
        }
        end_step(o, &s, k, w);
    }
    td_optim_free(o);
}
END_TEST

/* Adam as torch.optim.Adam / AdamW write it. */
static void adam_case(const char *name, int decoupled)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default(name);
    c.weight_decay = 0.05f;
    struct td_optim *o = new_optim(name, &c, &s.p);
    double w[N], m[N] = {0}, v[N] = {0};
    ref_init(w);
    const double b1 = c.beta1, b2 = c.beta2, eps = c.eps, wd = c.weight_decay;
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(begin_step(o, &s, k, T[k]), TD_OPTIM_NEEDS_GRAD);
        const int t = k + 1;
        for (int i = 0; i < N; i++) {
            double grad = G[k][i];
            if (decoupled)
                w[i] *= 1.0 - LR[k] * wd;
            else
                grad += wd * w[i];
            m[i] = b1 * m[i] + (1 - b1) * grad;
            v[i] = b2 * v[i] + (1 - b2) * grad * grad;
            const double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
            w[i] -= LR[k] * mhat / (sqrt(vhat) + eps);
        }
        end_step(o, &s, k, w);
    }
    td_optim_free(o);
}

START_TEST(test_adam)
{
    adam_case("adam", 0);
}
END_TEST

START_TEST(test_adamw)
{
    adam_case("adamw", 1);
}
END_TEST

/* tangent-sgd: u = (g + H dir) + wd (theta + dir); v = mu v + u;
 * theta -= lr v; next dir = -lr mu v (momentum) or -lr (g + wd theta_old). */
static void tangent_case(enum td_lookahead mode, float mu)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("tangent-sgd");
    c.weight_decay = 0.01f;
    c.momentum = mu;
    c.lookahead = mode;
    struct td_optim *o = new_optim("tangent-sgd", &c, &s.p);
    double w[N], v[N] = {0}, a[N] = {0};
    ref_init(w);
    const double wd = c.weight_decay;
    for (int k = 0; k < 3; k++) {
        const unsigned need = begin_step(o, &s, k, T[k]);
        /* Step 1 has no direction yet, so it needs no tangent. */
        ck_assert_uint_eq(need, k == 0 ? TD_OPTIM_NEEDS_GRAD
                                       : TD_OPTIM_NEEDS_GRAD | TD_OPTIM_NEEDS_TANGENT);
        if (k > 0) assert_dir(&s, a, "tangent-sgd");
        for (int i = 0; i < N; i++) {
            const double t = k > 0 ? T[k][i] : 0.0, d = k > 0 ? a[i] : 0.0;
            const double u = G[k][i] + t + wd * (w[i] + d);
            const double g_plain = G[k][i] + wd * w[i];
            v[i] = mu * v[i] + u;
            w[i] -= LR[k] * v[i];
            a[i] = mode == TD_LOOKAHEAD_MOMENTUM ? -LR[k] * mu * v[i] : -LR[k] * g_plain;
        }
        end_step(o, &s, k, w);
        ck_assert_int_eq(td_optim_last_stats(o)->used_tangent, k > 0);
    }
    td_optim_free(o);
}

START_TEST(test_tangent_sgd_momentum)
{
    tangent_case(TD_LOOKAHEAD_MOMENTUM, 0.9f);
}
END_TEST

START_TEST(test_tangent_sgd_gradient)
{
    tangent_case(TD_LOOKAHEAD_GRADIENT, 0.5f);
}
END_TEST

START_TEST(test_tangent_sgd_no_momentum_needs_no_tangent)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("tangent-sgd");
    c.momentum = 0.0f;
    struct td_optim *o = new_optim("tangent-sgd", &c, &s.p);
    double w[N];
    ref_init(w);
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(begin_step(o, &s, k, T[k]), TD_OPTIM_NEEDS_GRAD);
        for (int i = 0; i < N; i++) w[i] -= LR[k] * G[k][i];
        end_step(o, &s, k, w);
    }
    td_optim_free(o);
}
END_TEST

/* curv-sgd: step 1 plain momentum; then d = -v,
 * alpha = -u.d / (t.d + (wd + damping) |d|^2), fallback lr, |alpha| <= ratio lr,
 * theta += alpha d, v = mu v + u. The tangents are built from d: step 2 a
 * positive diagonal "Hessian" (exact minimiser), step 3 a negative one
 * (fallback). */
START_TEST(test_curv_sgd)
{
    static const double diag[N] = {1.0, 2.0, 3.0, 4.0, 5.0};
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("curv-sgd");
    c.weight_decay = 0.01f;
    c.damping = 0.1f;
    c.max_step_ratio = 100.0f;
    struct td_optim *o = new_optim("curv-sgd", &c, &s.p);
    double w[N], v[N] = {0};
    ref_init(w);
    const double mu = c.momentum, wd = c.weight_decay, damp = c.damping;
    for (int k = 0; k < 3; k++) {
        double d[N];
        float t[N];
        for (int i = 0; i < N; i++) {
            d[i] = -v[i];
            t[i] = (float)((k == 1 ? diag[i] : -3.0) * d[i]);
        }
        const unsigned need = begin_step(o, &s, k, t);
        ck_assert_uint_eq(need, k == 0 ? TD_OPTIM_NEEDS_GRAD
                                       : TD_OPTIM_NEEDS_GRAD | TD_OPTIM_NEEDS_TANGENT);
        if (k == 0) {
            for (int i = 0; i < N; i++) {
                v[i] = mu * v[i] + G[k][i] + wd * w[i];
                w[i] -= LR[k] * v[i];
            }
            end_step(o, &s, k, w);
            continue;
        }
        assert_dir(&s, d, "curv-sgd");
        /* The reference reads the float tangent the optimizer read. */
        double ud = 0, td = 0, dd = 0;
        for (int i = 0; i < N; i++) {
            ud += (G[k][i] + wd * w[i]) * d[i];
            td += (double)t[i] * d[i];
            dd += d[i] * d[i];
        }
        const double q = td + (wd + damp) * dd;
        double alpha = q > 0 ? -ud / q : LR[k];
        ck_assert_msg((k == 1) == (q > 0), "test data: step %d should %s", k + 1,
                      k == 1 ? "have positive curvature" : "fall back");
        ck_assert(fabs(alpha) <= 100.0 * LR[k]);
        for (int i = 0; i < N; i++) {
            const double u = G[k][i] + wd * w[i];
            w[i] += alpha * d[i];
            v[i] = mu * v[i] + u;
        }
        end_step(o, &s, k, w);
        const struct td_optim_stats *st = td_optim_last_stats(o);
        ck_assert_int_eq(st->fallback, k == 1 ? 0 : 1);
        tu_assert_rel("curv-sgd alpha", st->alpha, alpha, 1e-6, 1e-9);
        tu_assert_rel("curv-sgd curvature", st->curvature, td / dd, 1e-6, 1e-9);
    }
    td_optim_free(o);
}
END_TEST

/* A step length beyond max_step_ratio * lr is cut to it, keeping its sign. */
START_TEST(test_curv_sgd_clip)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("curv-sgd");
    c.momentum = 0.0f;
    c.damping = 0.0f;
    c.max_step_ratio = 1.5f;
    struct td_optim *o = new_optim("curv-sgd", &c, &s.p);
    begin_step(o, &s, 0, T[0]);
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[0]), TD_OK);
    /* d = -G[0]; tiny curvature makes the minimiser far away, past the cap. */
    float t[N];
    for (int i = 0; i < N; i++) t[i] = -1e-3f * G[0][i];
    double w[N], d[N], ud = 0;
    for (int i = 0; i < N; i++) {
        w[i] = s.value[i];
        d[i] = -G[0][i];
        ud += (double)G[1][i] * d[i];
    }
    ck_assert(ud < 0); /* so the minimiser is at positive alpha */
    begin_step(o, &s, 1, t);
    const double alpha = 1.5 * LR[1];
    for (int i = 0; i < N; i++) w[i] += alpha * d[i];
    end_step(o, &s, 1, w);
    ck_assert_int_eq(td_optim_last_stats(o)->fallback, 2);
    tu_assert_rel("clipped alpha", td_optim_last_stats(o)->alpha, alpha, 1e-6, 0);
    td_optim_free(o);
}
END_TEST

/* adahessian and sophia with K = 2: steps 1 and 3 refresh D = z * (H z). */
static double rademacher(uint64_t seed, int step, int i)
{
    return td_rng_sign(seed, TD_RNG_STREAM_PROBE + (uint64_t)step, (uint64_t)i);
}

static void hutch_begin(struct td_optim *o, struct store *s, int k, uint64_t seed, double *z)
{
    const int refresh = k % 2 == 0;
    const unsigned need = begin_step(o, s, k, T[k]);
    ck_assert_uint_eq(need,
                      refresh ? TD_OPTIM_NEEDS_GRAD | TD_OPTIM_NEEDS_TANGENT : TD_OPTIM_NEEDS_GRAD);
    for (int i = 0; i < N; i++) z[i] = rademacher(seed, k, i);
    if (refresh) {
        assert_dir(s, z, td_optim_name(o));
        for (int i = 0; i < N; i++) ck_assert(z[i] == 1.0 || z[i] == -1.0);
    }
}

START_TEST(test_adahessian)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("adahessian");
    c.hessian_interval = 2;
    c.weight_decay = 0.01f;
    c.seed = 42;
    struct td_optim *o = new_optim("adahessian", &c, &s.p);
    double w[N], m[N] = {0}, v[N] = {0}, z[N];
    ref_init(w);
    const double b1 = c.beta1, b2 = c.beta2, eps = c.eps, wd = c.weight_decay;
    int refreshes = 0;
    for (int k = 0; k < 3; k++) {
        hutch_begin(o, &s, k, c.seed, z);
        const int refresh = k % 2 == 0;
        refreshes += refresh;
        for (int i = 0; i < N; i++) {
            w[i] -= LR[k] * wd * w[i];
            m[i] = b1 * m[i] + (1 - b1) * G[k][i];
            if (refresh) {
                const double D = z[i] * T[k][i];
                v[i] = b2 * v[i] + (1 - b2) * D * D;
            }
            const double mhat = m[i] / (1 - pow(b1, k + 1));
            const double vhat = v[i] / (1 - pow(b2, refreshes));
            w[i] -= LR[k] * mhat / (sqrt(vhat) + eps);
        }
        end_step(o, &s, k, w);
    }
    td_optim_free(o);
}
END_TEST

START_TEST(test_sophia)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("sophia");
    c.hessian_interval = 2;
    c.rho = 20.0f; /* large enough that some ratios stay inside the clip */
    c.update_clip = 0.5f;
    c.seed = 7;
    struct td_optim *o = new_optim("sophia", &c, &s.p);
    double w[N], m[N] = {0}, h[N] = {0}, z[N];
    ref_init(w);
    const double b1 = c.beta1, b2 = c.beta2, eps = c.eps, wd = c.weight_decay;
    const double rho = c.rho, cl = c.update_clip;
    int clipped = 0, inside = 0;
    for (int k = 0; k < 3; k++) {
        hutch_begin(o, &s, k, c.seed, z);
        for (int i = 0; i < N; i++) {
            w[i] -= LR[k] * wd * w[i];
            m[i] = b1 * m[i] + (1 - b1) * G[k][i];
            if (k % 2 == 0) h[i] = b2 * h[i] + (1 - b2) * z[i] * T[k][i];
            double r = m[i] / fmax(rho * h[i], eps);
            if (r > cl || r < -cl) {
                r = r > 0 ? cl : -cl;
                clipped++;
            } else {
                inside++;
            }
            w[i] -= LR[k] * r;
        }
        end_step(o, &s, k, w);
    }
    ck_assert_msg(clipped > 0 && inside > 0, "test data: %d clipped, %d inside", clipped, inside);
    td_optim_free(o);
}
END_TEST

/* Clipping scales the gradient by clip_norm / ||g|| before weight decay; for
 * tangent-sgd the norm is that of g + H dir. */
START_TEST(test_optim_clip_norm)
{
    struct store s;
    store_init(&s);
    struct td_optim_config c = td_optim_config_default("sgd");
    c.clip_norm = 0.5f;
    c.weight_decay = 0.01f;
    struct td_optim *o = new_optim("sgd", &c, &s.p);
    double w[N], norm = 0;
    ref_init(w);
    for (int i = 0; i < N; i++) norm += (double)G[0][i] * G[0][i];
    norm = sqrt(norm);
    ck_assert(norm > 0.5);
    begin_step(o, &s, 0, T[0]);
    for (int i = 0; i < N; i++) w[i] -= LR[0] * (G[0][i] * 0.5 / norm + 0.01 * w[i]);
    end_step(o, &s, 0, w);
    tu_assert_rel("sgd grad_norm", td_optim_last_stats(o)->grad_norm, norm, 1e-12, 0);
    tu_assert_rel("sgd clip_scale", td_optim_last_stats(o)->clip_scale, 0.5 / norm, 1e-6, 0);
    td_optim_free(o);

    store_init(&s);
    c = td_optim_config_default("tangent-sgd");
    c.clip_norm = 0.25f;
    o = new_optim("tangent-sgd", &c, &s.p);
    begin_step(o, &s, 0, T[0]);
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[0]), TD_OK);
    double v[N];
    for (int i = 0; i < N; i++) {
        w[i] = s.value[i];
        v[i] = G[0][i] * fmin(1.0, 0.25 / norm);
    }
    begin_step(o, &s, 1, T[1]);
    double gt = 0;
    for (int i = 0; i < N; i++) gt += ((double)G[1][i] + T[1][i]) * ((double)G[1][i] + T[1][i]);
    gt = sqrt(gt);
    ck_assert(gt > 0.25);
    for (int i = 0; i < N; i++) {
        v[i] = c.momentum * v[i] + ((double)G[1][i] + T[1][i]) * 0.25 / gt;
        w[i] -= LR[1] * v[i];
    }
    end_step(o, &s, 1, w);
    tu_assert_rel("tangent-sgd grad_norm", td_optim_last_stats(o)->grad_norm, gt, 1e-12, 0);
    td_optim_free(o);
}
END_TEST

/* ---- names, hyperparameters, state and misuse ---- */

static void expect_bad(const char *name, const struct td_optim_config *c, const char *part1,
                       const char *part2)
{
    struct store s;
    store_init(&s);
    char err[512] = "";
    struct td_optim *o = td_optim_new(name, c, &s.p, err, sizeof err);
    ck_assert_msg(o == NULL, "td_optim_new(%s) accepted a bad configuration", name);
    ck_assert_msg(strstr(err, part1) && strstr(err, part2), "message '%s' lacks '%s' / '%s'", err,
                  part1, part2);
}

START_TEST(test_bad_names)
{
    expect_bad("adagrad", NULL, "unknown optimizer 'adagrad'", "sgd, momentum, nesterov");
    expect_bad("Adam", NULL, "'Adam'", "tangent-sgd, curv-sgd, adahessian, sophia");
    expect_bad(NULL, NULL, "unknown optimizer", "adamw");
    char err[8] = "";
    struct store s;
    store_init(&s);
    ck_assert_ptr_null(td_optim_new("sgd", NULL, NULL, err, sizeof err));
    ck_assert_ptr_null(td_optim_new("nope", NULL, &s.p, NULL, 0));
    /* A short buffer gets a truncated, terminated message. */
    ck_assert_ptr_null(td_optim_new("nope", NULL, &s.p, err, sizeof err));
    ck_assert_uint_eq(strlen(err), sizeof err - 1);
}
END_TEST

START_TEST(test_bad_hyperparameters)
{
    struct td_optim_config c;
    c = td_optim_config_default("sgd");
    c.lr = -0.1f;
    expect_bad("sgd", &c, "sgd: lr = -0.1", ">= 0");
    c = td_optim_config_default("sgd");
    c.lr = NAN;
    expect_bad("sgd", &c, "lr = nan", "finite");
    c = td_optim_config_default("momentum");
    c.momentum = 1.0f;
    expect_bad("momentum", &c, "momentum = 1", "[0, 1)");
    c = td_optim_config_default("nesterov");
    c.weight_decay = -1e-4f;
    expect_bad("nesterov", &c, "weight_decay = -0.0001", ">= 0");
    c = td_optim_config_default("adam");
    c.beta2 = 1.0f;
    expect_bad("adam", &c, "adam: beta2 = 1", "outside [0, 1)");
    c = td_optim_config_default("adamw");
    c.beta1 = -0.5f;
    expect_bad("adamw", &c, "beta1 = -0.5", "[0, 1)");
    c = td_optim_config_default("adam");
    c.eps = -1e-8f;
    expect_bad("adam", &c, "eps = -1e-08", ">= 0");
    c = td_optim_config_default("adam");
    c.clip_norm = -1.0f;
    expect_bad("adam", &c, "clip_norm = -1", "0 = off");
    c = td_optim_config_default("tangent-sgd");
    c.lookahead = (enum td_lookahead)7;
    expect_bad("tangent-sgd", &c, "lookahead = 7", "TD_LOOKAHEAD_MOMENTUM");
    c = td_optim_config_default("curv-sgd");
    c.damping = -1.0f;
    expect_bad("curv-sgd", &c, "curv-sgd: damping = -1", ">= 0");
    c = td_optim_config_default("curv-sgd");
    c.max_step_ratio = 0.0f;
    expect_bad("curv-sgd", &c, "max_step_ratio = 0", "> 0");
    c = td_optim_config_default("adahessian");
    c.hessian_interval = 0;
    expect_bad("adahessian", &c, "hessian_interval = 0", ">= 1");
    c = td_optim_config_default("sophia");
    c.rho = 0.0f;
    expect_bad("sophia", &c, "sophia: rho = 0", "> 0");
    c = td_optim_config_default("sophia");
    c.eps = 0.0f;
    expect_bad("sophia", &c, "eps = 0", "> 0");
    c = td_optim_config_default("sophia");
    c.update_clip = -1.0f;
    expect_bad("sophia", &c, "update_clip = -1", "> 0");
    c = td_optim_config_default("sgd");
    c.num_threads = -2;
    expect_bad("sgd", &c, "num_threads = -2", ">= 0");

    /* Fields a method does not read are not checked. */
    struct store s;
    store_init(&s);
    c = td_optim_config_default("sgd");
    c.beta1 = 5.0f;
    c.hessian_interval = 0;
    struct td_optim *o = new_optim("sgd", &c, &s.p);
    td_optim_free(o);
}
END_TEST

START_TEST(test_defaults_are_valid)
{
    static const char *names[] = {"sgd",         "momentum", "nesterov",   "adam",  "adamw",
                                  "tangent-sgd", "curv-sgd", "adahessian", "sophia"};
    static const int n_state[] = {0, 1, 1, 2, 2, 2, 1, 2, 2};
    struct store s;
    store_init(&s);
    for (int i = 0; i < 9; i++) {
        struct td_optim *o = new_optim(names[i], NULL, &s.p);
        ck_assert_str_eq(td_optim_name(o), names[i]);
        ck_assert_int_eq(td_optim_state_count(o), n_state[i]);
        ck_assert_msg(strstr(td_optim_names(), names[i]) != NULL, "%s not listed", names[i]);
        td_optim_free(o);
    }
    struct td_optim_config c = td_optim_config_default("adamw");
    ck_assert(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.weight_decay == 0.01f);
    c = td_optim_config_default("tangent-sgd");
    ck_assert(c.momentum == 0.9f && c.lookahead == TD_LOOKAHEAD_MOMENTUM);
}
END_TEST

START_TEST(test_state_access)
{
    struct store s;
    store_init(&s);
    struct td_optim *o = new_optim("adam", NULL, &s.p);
    const char *name = NULL;
    float *data = NULL;
    size_t n = 0;
    ck_assert_int_eq(td_optim_state_block(o, 0, &name, &data, &n), TD_OK);
    ck_assert_str_eq(name, "exp_avg");
    ck_assert_uint_eq(n, N);
    for (size_t i = 0; i < n; i++) ck_assert(data[i] == 0.0f);
    ck_assert_int_eq(td_optim_state_block(o, 1, &name, &data, &n), TD_OK);
    ck_assert_str_eq(name, "exp_avg_sq");
    ck_assert_int_eq(td_optim_state_block(o, 2, &name, &data, &n), TD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(td_optim_error(o), "state block 2"));
    ck_assert_int_eq(td_optim_state_block(o, -1, NULL, NULL, NULL), TD_ERR_ARG);

    begin_step(o, &s, 0, T[0]);
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[0]), TD_OK);
    td_optim_state_block(o, 0, &name, &data, &n);
    /* exp_avg after one step is (1 - beta1) g. */
    for (int i = 0; i < N; i++) tu_assert_rel("exp_avg", data[i], (1 - 0.9) * G[0][i], 1e-6, 1e-12);

    ck_assert_int_eq(td_optim_set_steps(o, -1), TD_ERR_ARG);
    ck_assert_int_eq(td_optim_steps(o), 1);
    ck_assert_int_eq(td_optim_set_steps(o, 41), TD_OK);
    ck_assert_int_eq(td_optim_steps(o), 41);
    td_optim_free(o);
}
END_TEST

START_TEST(test_step_misuse)
{
    struct store s;
    store_init(&s);
    struct td_optim *o = new_optim("tangent-sgd", NULL, &s.p);
    begin_step(o, &s, 0, T[0]);
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[0]), TD_OK);

    /* Step 2 needs H dir: stepping without asking for the direction is refused. */
    float before[N];
    memcpy(before, s.value, sizeof before);
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[1]), TD_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(td_optim_error(o), "td_optim_direction"));
    ck_assert_int_eq(memcmp(before, s.value, sizeof before), 0);
    ck_assert_int_eq(td_optim_steps(o), 1);

    begin_step(o, &s, 1, T[1]);
    ck_assert_int_eq(td_optim_step(o, &s.p, -0.1f), TD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(td_optim_error(o), "lr = -0.1"));
    ck_assert_int_eq(td_optim_step(o, &s.p, INFINITY), TD_ERR_ARG);
    ck_assert_int_eq(memcmp(before, s.value, sizeof before), 0);

    struct td_params other = s.p;
    other.total = N + 1;
    ck_assert_int_eq(td_optim_step(o, &other, LR[1]), TD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(td_optim_error(o), "holds 6 floats"));
    ck_assert_int_eq(td_optim_direction(o, &other), TD_ERR_ARG);
    ck_assert_int_eq(td_optim_direction(o, NULL), TD_ERR_ARG);
    ck_assert_int_eq(memcmp(before, s.value, sizeof before), 0);

    /* The direction asked for before the failed calls is still valid. */
    ck_assert_int_eq(td_optim_step(o, &s.p, LR[1]), TD_OK);
    ck_assert_int_eq(td_optim_steps(o), 2);
    td_optim_free(o);
    td_optim_free(NULL);
}
END_TEST

/* ---- larger stores: thread-count independence and checkpoint resume ---- */

#define BIG 100003

struct big {
    float *value, *grad, *tangent, *dir;
    struct td_params p;
};

static void big_init(struct big *b)
{
    b->value = malloc(4 * BIG * sizeof(float));
    ck_assert_ptr_nonnull(b->value);
    b->grad = b->value + BIG;
    b->tangent = b->grad + BIG;
    b->dir = b->tangent + BIG;
    tu_fill_normal(b->value, BIG, 11, 0);
    b->p = (struct td_params){
        .total = BIG, .value = b->value, .grad = b->grad, .tangent = b->tangent, .dir = b->dir};
}

/* One step with gradient and tangent drawn from (step, seed), the tangent a
 * fixed function of the direction so it depends on the optimizer's choice. */
static void big_step(struct td_optim *o, struct big *b, int step)
{
    ck_assert_int_eq(td_optim_direction(o, &b->p), TD_OK);
    tu_fill_normal(b->grad, BIG, 12, (uint64_t)step);
    if (td_optim_needs(o) & TD_OPTIM_NEEDS_TANGENT)
        for (size_t i = 0; i < BIG; i++) b->tangent[i] = (1.0f + (float)(i % 7)) * b->dir[i];
    ck_assert_int_eq(td_optim_step(o, &b->p, 0.01f), TD_OK);
}

/* A step given the gradient's sum of squares by its caller (the training
 * loop's finiteness check) is the step that computes it; the value is used
 * (a wrong one changes the clipping) and only by the next step. */
START_TEST(test_given_grad_sumsq)
{
    struct big a, b;
    big_init(&a);
    big_init(&b);
    struct td_optim_config c = td_optim_config_default("adamw");
    c.clip_norm = 100.0f;
    struct td_optim *oa = new_optim("adamw", &c, &a.p), *ob = new_optim("adamw", &c, &b.p);
    for (int k = 0; k < 3; k++) {
        tu_fill_normal(a.grad, BIG, 12, (uint64_t)k);
        tu_fill_normal(b.grad, BIG, 12, (uint64_t)k);
        td_optim_set_grad_sumsq(ob, td_vec_sumsq(b.grad, BIG, 1));
        ck_assert_int_eq(td_optim_step(oa, &a.p, 0.01f), TD_OK);
        ck_assert_int_eq(td_optim_step(ob, &b.p, 0.01f), TD_OK);
        ck_assert(td_optim_last_stats(oa)->grad_norm == td_optim_last_stats(ob)->grad_norm);
    }
    ck_assert_mem_eq(a.value, b.value, BIG * sizeof(float));
    td_optim_set_grad_sumsq(ob, 1e12);
    ck_assert_int_eq(td_optim_step(ob, &b.p, 0.01f), TD_OK);
    ck_assert(td_optim_last_stats(ob)->grad_norm == 1e6);
    ck_assert(td_optim_last_stats(ob)->clip_scale < 1e-3);
    ck_assert_int_eq(td_optim_step(ob, &b.p, 0.01f), TD_OK);
    ck_assert(td_optim_last_stats(ob)->grad_norm < 1e4);
    td_optim_free(oa);
    td_optim_free(ob);
    free(a.value);
    free(b.value);
}
END_TEST

/* The optimizers' threads each get one contiguous range that starts on a
 * 64-byte boundary, and the ranges cover the vector. */
START_TEST(test_par_chunk)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 109386, 100003, 1u << 20};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
        for (int t = 1; t <= 8; t++) {
            const size_t n = sizes[k];
            const long c = td_par_chunk(n, t);
            ck_assert_int_gt(c, 0);
            ck_assert_int_eq(c % 16, 0);
            ck_assert_msg((size_t)c * (size_t)t >= n, "n %zu, %d threads: chunk %ld", n, t, c);
            ck_assert_msg(n == 0 || (size_t)c * (size_t)(t - 1) < n + 16 * (size_t)t,
                          "n %zu, %d threads: chunk %ld leaves threads idle", n, t, c);
        }
    ck_assert_int_eq(td_par_chunk(109386, 2), 54704);
}
END_TEST

START_TEST(test_threads_bitwise)
{
    static const char *names[] = {"adam",        "adamw",    "sgd",    "momentum",  "nesterov",
                                  "tangent-sgd", "curv-sgd", "sophia", "adahessian"};
    for (int m = 0; m < (int)(sizeof(names) / sizeof(names[0])); m++) {
        struct big b1, b2;
        big_init(&b1);
        big_init(&b2);
        struct td_optim_config c = td_optim_config_default(names[m]);
        c.clip_norm = 100.0f;
        c.num_threads = 1;
        struct td_optim *o1 = new_optim(names[m], &c, &b1.p);
        c.num_threads = 2;
        struct td_optim *o2 = new_optim(names[m], &c, &b2.p);
        for (int k = 0; k < 3; k++) {
            big_step(o1, &b1, k);
            big_step(o2, &b2, k);
            ck_assert_msg(td_optim_last_stats(o1)->grad_norm == td_optim_last_stats(o2)->grad_norm,
                          "%s: gradient norm differs between 1 and 2 threads", names[m]);
        }
        ck_assert_msg(memcmp(b1.value, b2.value, BIG * sizeof(float)) == 0,
                      "%s: values differ between 1 and 2 threads", names[m]);
        float first[4];
        tu_fill_normal(first, 4, 11, 0);
        ck_assert_msg(memcmp(b1.value, first, sizeof first) != 0, "%s did not move", names[m]);
        td_optim_free(o1);
        td_optim_free(o2);
        free(b1.value);
        free(b2.value);
    }
}
END_TEST

START_TEST(test_resume_bitwise)
{
    static const char *names[] = {"tangent-sgd", "curv-sgd", "adahessian", "sophia"};
    for (int m = 0; m < 4; m++) {
        struct big a, b;
        big_init(&a);
        big_init(&b);
        struct td_optim_config c = td_optim_config_default(names[m]);
        c.lookahead = TD_LOOKAHEAD_GRADIENT;
        c.hessian_interval = 3;
        struct td_optim *oa = new_optim(names[m], &c, &a.p);
        for (int k = 0; k < 4; k++) big_step(oa, &a, k);
        /* b resumes from a's values, state blocks and step counter. */
        struct td_optim *ob = new_optim(names[m], &c, &b.p);
        memcpy(b.value, a.value, BIG * sizeof(float));
        for (int i = 0; i < td_optim_state_count(oa); i++) {
            float *src, *dst;
            size_t n;
            td_optim_state_block(oa, i, NULL, &src, &n);
            td_optim_state_block(ob, i, NULL, &dst, NULL);
            memcpy(dst, src, n * sizeof(float));
        }
        ck_assert_int_eq(td_optim_set_steps(ob, td_optim_steps(oa)), TD_OK);
        for (int k = 4; k < 7; k++) {
            big_step(oa, &a, k);
            big_step(ob, &b, k);
        }
        ck_assert_msg(memcmp(a.value, b.value, BIG * sizeof(float)) == 0, "%s: resumed run differs",
                      names[m]);
        td_optim_free(oa);
        td_optim_free(ob);
        free(a.value);
        free(b.value);
    }
}
END_TEST

/* ---- reductions and clipping helper ---- */

START_TEST(test_reductions)
{
    float *x = malloc(2 * BIG * sizeof(float));
    ck_assert_ptr_nonnull(x);
    float *y = x + BIG;
    tu_fill_normal(x, BIG, 3, 0);
    tu_fill_normal(y, BIG, 3, 1);
    double dot = 0, sq = 0, sqs = 0;
    for (size_t i = 0; i < BIG; i++) {
        dot += (double)x[i] * y[i];
        sq += (double)x[i] * x[i];
        sqs += ((double)x[i] + y[i]) * ((double)x[i] + y[i]);
    }
    tu_assert_rel("dot", td_vec_dot(x, y, BIG, 0), dot, 1e-12, 1e-9);
    tu_assert_rel("sumsq", td_vec_sumsq(x, BIG, 0), sq, 1e-12, 0);
    tu_assert_rel("sumsq_sum", td_vec_sumsq_sum(x, y, BIG, 0), sqs, 1e-12, 0);
    ck_assert(td_vec_dot(x, y, BIG, 1) == td_vec_dot(x, y, BIG, 2));
    ck_assert(td_vec_sumsq(x, BIG, 1) == td_vec_sumsq(x, BIG, 2));
    ck_assert(td_vec_dot(x, y, 0, 0) == 0.0);
    ck_assert(td_vec_sumsq(x, 3, 0) ==
              (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);

    /* clipping */
    float g[2] = {3.0f, 4.0f};
    ck_assert(td_clip_global_norm(g, 2, 10.0, 0) == 5.0);
    ck_assert(g[0] == 3.0f && g[1] == 4.0f);
    ck_assert(td_clip_global_norm(g, 2, 0.0, 0) == 5.0);
    ck_assert(g[0] == 3.0f && g[1] == 4.0f);
    ck_assert(td_clip_global_norm(g, 2, 1.0, 0) == 5.0);
    tu_assert_rel("clipped g0", g[0], 0.6, 1e-7, 0);
    tu_assert_rel("clipped g1", g[1], 0.8, 1e-7, 0);
    tu_assert_rel("norm after clip", td_clip_global_norm(x, BIG, 2.0, 0), sqrt(sq), 1e-12, 0);
    tu_assert_rel("big norm after clip", sqrt(td_vec_sumsq(x, BIG, 0)), 2.0, 1e-6, 0);
    float bad[3] = {1.0f, NAN, 2.0f};
    ck_assert(isnan(td_clip_global_norm(bad, 3, 1.0, 0)));
    ck_assert(bad[0] == 1.0f && bad[2] == 2.0f);

    /* finiteness: every position of a large block, every kind of value */
    ck_assert(td_vec_all_finite(x, BIG, 2));
    ck_assert(td_vec_all_finite(x, 0, 1));
    const float odd[] = {NAN, -NAN, INFINITY, -INFINITY};
    const size_t at[] = {0, 1, BIG / 2, BIG - 1};
    for (int k = 0; k < 4; k++)
        for (int a = 0; a < 4; a++) {
            float keep = x[at[a]];
            x[at[a]] = odd[k];
            ck_assert_msg(!td_vec_all_finite(x, BIG, 1) && !td_vec_all_finite(x, BIG, 2),
                          "%g at %zu not found", (double)odd[k], at[a]);
            x[at[a]] = keep;
        }
    const float edge[] = {FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f, -0.0f};
    ck_assert(td_vec_all_finite(edge, 5, 1));
    free(x);
}
END_TEST

/* ---- schedules ---- */

static void assert_lr(const struct td_schedule *s, int64_t step, double want)
{
    char what[64];
    snprintf(what, sizeof what, "lr at step %lld", (long long)step);
    tu_assert_rel(what, td_schedule_lr(s, step), want, 1e-6, 1e-12);
}

START_TEST(test_schedules)
{
    char err[256];
    struct td_schedule s = td_schedule_constant(0.1f);
    ck_assert_int_eq(td_schedule_check(&s, err, sizeof err), TD_OK);
    assert_lr(&s, 0, 0.1);
    assert_lr(&s, 12345, 0.1);

    s = (struct td_schedule){
        .kind = TD_SCHEDULE_STEP, .base_lr = 0.1f, .step_size = 10, .gamma = 0.5f};
    ck_assert_int_eq(td_schedule_check(&s, err, sizeof err), TD_OK);
    assert_lr(&s, 0, 0.1);
    assert_lr(&s, 9, 0.1);
    assert_lr(&s, 10, 0.05);
    assert_lr(&s, 25, 0.025);
    assert_lr(&s, 30, 0.0125);

    s = (struct td_schedule){
        .kind = TD_SCHEDULE_COSINE, .base_lr = 1.0f, .total_steps = 100, .min_lr = 0.1f};
    ck_assert_int_eq(td_schedule_check(&s, err, sizeof err), TD_OK);
    assert_lr(&s, 0, 1.0);
    assert_lr(&s, 25, 0.1 + 0.45 * (1.0 + sqrt(0.5)));
    assert_lr(&s, 50, 0.55);
    assert_lr(&s, 75, 0.1 + 0.45 * (1.0 - sqrt(0.5)));
    assert_lr(&s, 100, 0.1);
    assert_lr(&s, 1000, 0.1);

    /* Warmup ramps to base over 5 steps, then the cosine starts its own clock. */
    s.warmup_steps = 5;
    assert_lr(&s, 0, 0.2);
    assert_lr(&s, 2, 0.6);
    assert_lr(&s, 4, 1.0);
    assert_lr(&s, 5, 1.0);
    assert_lr(&s, 55, 0.55);
    assert_lr(&s, 105, 0.1);

    s = (struct td_schedule){.kind = TD_SCHEDULE_STEP,
                             .base_lr = 1.0f,
                             .warmup_steps = 10,
                             .step_size = 10,
                             .gamma = 0.1f};
    assert_lr(&s, 0, 0.1);
    assert_lr(&s, 9, 1.0);
    assert_lr(&s, 19, 1.0);
    assert_lr(&s, 20, 0.1);
    assert_lr(&s, 35, 0.01);

    s = td_schedule_constant(0.3f);
    s.warmup_steps = 3;
    assert_lr(&s, 0, 0.1);
    assert_lr(&s, 1, 0.2);
    assert_lr(&s, 3, 0.3);
    assert_lr(&s, -4, 0.1);
}
END_TEST

static void expect_bad_schedule(struct td_schedule s, const char *part)
{
    char err[256] = "";
    ck_assert_int_eq(td_schedule_check(&s, err, sizeof err), TD_ERR_ARG);
    ck_assert_msg(strstr(err, part) != NULL, "message '%s' lacks '%s'", err, part);
}

START_TEST(test_bad_schedules)
{
    struct td_schedule s = td_schedule_constant(-1.0f);
    expect_bad_schedule(s, "base_lr = -1");
    s = td_schedule_constant(0.1f);
    s.warmup_steps = -2;
    expect_bad_schedule(s, "warmup_steps = -2");
    s = (struct td_schedule){.kind = TD_SCHEDULE_STEP, .base_lr = 0.1f, .gamma = 0.5f};
    expect_bad_schedule(s, "step_size = 0");
    s.step_size = 3;
    s.gamma = 0.0f;
    expect_bad_schedule(s, "gamma = 0");
    s = (struct td_schedule){.kind = TD_SCHEDULE_COSINE, .base_lr = 0.1f};
    expect_bad_schedule(s, "total_steps = 0");
    s.total_steps = 10;
    s.min_lr = 0.2f;
    expect_bad_schedule(s, "min_lr = 0.2");
    s.kind = (enum td_schedule_kind)9;
    expect_bad_schedule(s, "kind = 9");
    ck_assert_int_eq(td_schedule_check(NULL, NULL, 0), TD_ERR_ARG);
}
END_TEST

/* ---- quadratics through the real engine ----
 * L(theta) = 0.5 theta^T A theta - b^T theta with A = I + M^T M / QN
 * (symmetric, eigenvalues in [1, ~5]) or a diagonal A, b = A theta_star. */

#define QN 16

struct quad {
    struct td_graph *g;
    struct td_params *p;
    struct td_plan *plan;
    struct td_node *loss;
    double A[QN * QN], b[QN], theta_star[QN];
};

static void quad_init(struct quad *q, int diagonal)
{
    float Af[QN * QN], bf[QN], m[QN * QN], ts[QN];
    tu_fill_normal(m, QN * QN, 21, 0);
    tu_fill_normal(ts, QN, 21, 1);
    for (int i = 0; i < QN; i++)
        for (int j = 0; j < QN; j++) {
            double a = i == j ? 1.0 : 0.0;
            if (diagonal) {
                a *= 0.5 + i;
            } else {
                for (int r = 0; r < QN; r++) a += (double)m[r * QN + i] * m[r * QN + j] / QN;
            }
            Af[i * QN + j] = (float)a;
        }
    /* The reference uses the float-rounded A and b the graph holds. */
    for (int i = 0; i < QN * QN; i++) q->A[i] = Af[i];
    for (int i = 0; i < QN; i++) {
        double s = 0;
        for (int j = 0; j < QN; j++) s += q->A[i * QN + j] * ts[j];
        bf[i] = (float)s;
        q->b[i] = bf[i];
        q->theta_star[i] = ts[i];
    }

    struct td_graph *g = td_graph_new(5);
    ck_assert_ptr_nonnull(g);
    struct td_node *theta =
        td_param(g, "theta", TD_SHAPE(QN), (struct td_init){.kind = TD_INIT_ZEROS});
    struct td_node *A = td_constant(g, TD_SHAPE(QN, QN), Af);
    struct td_node *b = td_constant(g, TD_SHAPE(QN), bf);
    struct td_node *col = td_reshape(g, theta, TD_SHAPE(QN, 1));
    struct td_node *Ath = td_reshape(g, td_matmul(g, A, col, 0, 0), TD_SHAPE(QN));
    struct td_node *quad = td_scale(g, td_sum_all(g, td_mul(g, theta, Ath)), 0.5f);
    struct td_node *lin = td_sum_all(g, td_mul(g, b, theta));
    q->loss = td_sub(g, quad, lin);
    tu_assert_graph_ok(g, "quadratic loss");

    struct td_node *grad, *hvp, *dir;
    ck_assert_msg(td_grad_hvp(g, q->loss, &grad, &hvp, &dir) == TD_OK, "td_grad_hvp: %s",
                  td_graph_error(g));
    q->p = td_graph_params(g);
    ck_assert_uint_eq(q->p->total, QN);
    const struct td_binding bind[2] = {{grad, q->p->grad}, {hvp, q->p->tangent}};
    const struct td_compile_options opts = {.bindings = bind, .n_bindings = 2};
    struct td_node *outs[3] = {q->loss, grad, hvp};
    q->plan = td_compile(g, outs, 3, &opts);
    ck_assert_msg(q->plan != NULL, "td_compile: %s", td_graph_error(g));
    q->g = g;
}

static void quad_free(struct quad *q)
{
    td_plan_free(q->plan);
    td_graph_free(q->g);
}

static void quad_run(struct quad *q)
{
    ck_assert_msg(td_run(q->plan, NULL, 0) == TD_OK, "td_run: %s", td_plan_error(q->plan));
}

/* y = A x in double. */
static void quad_apply(const struct quad *q, const double *x, double *y)
{
    for (int i = 0; i < QN; i++) {
        double s = 0;
        for (int j = 0; j < QN; j++) s += q->A[i * QN + j] * x[j];
        y[i] = s;
    }
}

static double quad_loss(const struct quad *q, const float *theta)
{
    double x[QN], Ax[QN], L = 0;
    for (int i = 0; i < QN; i++) x[i] = theta[i];
    quad_apply(q, x, Ax);
    for (int i = 0; i < QN; i++) L += 0.5 * x[i] * Ax[i] - q->b[i] * x[i];
    return L;
}

START_TEST(test_quad_grad_hvp)
{
    struct quad q;
    quad_init(&q, 0);
    tu_fill_normal(q.p->value, QN, 31, 0);
    tu_fill_normal(q.p->dir, QN, 31, 1);
    quad_run(&q);
    double x[QN], d[QN], xd[QN], Ax[QN], Ad[QN], Axd[QN], g[QN], gt[QN];
    for (int i = 0; i < QN; i++) {
        x[i] = q.p->value[i];
        d[i] = q.p->dir[i];
        xd[i] = x[i] + d[i];
    }
    quad_apply(&q, x, Ax);
    quad_apply(&q, d, Ad);
    quad_apply(&q, xd, Axd);
    float corrected[QN];
    for (int i = 0; i < QN; i++) {
        g[i] = Ax[i] - q.b[i];
        gt[i] = Axd[i] - q.b[i];
        corrected[i] = q.p->grad[i] + q.p->tangent[i];
    }
    char msg[256];
    ck_assert_msg(tu_close_d(q.p->tangent, Ad, QN, 1e-5, 1e-5, msg, sizeof msg), "H dir: %s", msg);
    ck_assert_msg(tu_close_d(q.p->grad, g, QN, 1e-5, 1e-5, msg, sizeof msg), "grad: %s", msg);
    /* The loss is quadratic, so the first-order lookahead g + H dir is exact. */
    ck_assert_msg(tu_close_d(corrected, gt, QN, 1e-5, 1e-5, msg, sizeof msg),
                  "g + H dir vs grad L(theta + dir): %s", msg);
    tu_assert_rel("loss", td_plan_output(q.plan, 0)[0], quad_loss(&q, q.p->value), 1e-5, 1e-5);
    quad_free(&q);
}
END_TEST

/* The direction tangent-sgd writes makes g + H dir the gradient at the
 * lookahead point theta + dir, in both modes. */
START_TEST(test_quad_tangent_lookahead)
{
    for (int mode = 0; mode < 2; mode++) {
        struct quad q;
        quad_init(&q, 0);
        struct td_optim_config c = td_optim_config_default("tangent-sgd");
        c.lookahead = (enum td_lookahead)mode;
        c.lr = 0.05f;
        struct td_optim *o = new_optim("tangent-sgd", &c, q.p);
        for (int k = 0; k < 4; k++) {
            const unsigned need = td_optim_needs(o);
            ck_assert_int_eq(td_optim_direction(o, q.p), TD_OK);
            quad_run(&q);
            if (need & TD_OPTIM_NEEDS_TANGENT) {
                double xd[QN], Axd[QN], want[QN], dn = 0;
                float corrected[QN];
                for (int i = 0; i < QN; i++) {
                    xd[i] = (double)q.p->value[i] + q.p->dir[i];
                    corrected[i] = q.p->grad[i] + q.p->tangent[i];
                    dn += (double)q.p->dir[i] * q.p->dir[i];
                }
                ck_assert_msg(dn > 1e-6, "mode %d step %d: zero direction", mode, k + 1);
                quad_apply(&q, xd, Axd);
                for (int i = 0; i < QN; i++) want[i] = Axd[i] - q.b[i];
                char msg[256];
                ck_assert_msg(tu_close_d(corrected, want, QN, 1e-5, 1e-5, msg, sizeof msg),
                              "mode %d step %d: g + H dir vs grad L(theta + dir): %s", mode, k + 1,
                              msg);
            } else {
                ck_assert_int_eq(k, 0);
            }
            ck_assert_int_eq(td_optim_step(o, q.p, c.lr), TD_OK);
        }
        td_optim_free(o);
        quad_free(&q);
    }
}
END_TEST

START_TEST(test_quad_curv_alpha)
{
    struct quad q;
    quad_init(&q, 0);
    tu_fill_normal(q.p->value, QN, 41, 0);
    struct td_optim_config c = td_optim_config_default("curv-sgd");
    c.damping = 0.0f;
    c.max_step_ratio = 1e6f;
    struct td_optim *o = new_optim("curv-sgd", &c, q.p);
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(td_optim_direction(o, q.p), TD_OK);
        quad_run(&q);
        const int curved = (td_optim_needs(o) & TD_OPTIM_NEEDS_TANGENT) != 0;
        double x[QN], d[QN], Ax[QN], Ad[QN], gd = 0, dAd = 0;
        for (int i = 0; i < QN; i++) {
            x[i] = q.p->value[i];
            d[i] = q.p->dir[i];
        }
        quad_apply(&q, x, Ax);
        quad_apply(&q, d, Ad);
        for (int i = 0; i < QN; i++) {
            gd += (Ax[i] - q.b[i]) * d[i];
            dAd += d[i] * Ad[i];
        }
        ck_assert_int_eq(td_optim_step(o, q.p, 0.01f), TD_OK);
        if (!curved) continue;
        const double alpha = -gd / dAd;
        char what[64];
        snprintf(what, sizeof what, "alpha at step %d", k + 1);
        ck_assert_int_eq(td_optim_last_stats(o)->fallback, 0);
        tu_assert_rel(what, td_optim_last_stats(o)->alpha, alpha, 1e-4, 1e-8);
        /* The step lands on the line minimum: the new gradient is orthogonal to d. */
        double xn[QN], Axn[QN], gn_d = 0, scale = 0;
        for (int i = 0; i < QN; i++) xn[i] = q.p->value[i];
        quad_apply(&q, xn, Axn);
        for (int i = 0; i < QN; i++) {
            gn_d += (Axn[i] - q.b[i]) * d[i];
            scale += fabs(gd) / QN;
        }
        ck_assert_msg(fabs(gn_d) <= 1e-3 * scale, "step %d: g_new.d = %g (was %g)", k + 1, gn_d,
                      gd);
    }
    td_optim_free(o);
    quad_free(&q);
}
END_TEST

/* A few hundred steps bring L to its minimum -0.5 theta*^T A theta*. */
static void quad_converge(const char *name, enum td_lookahead mode, float lr, int steps)
{
    struct quad q;
    quad_init(&q, 0);
    float ts[QN];
    for (int i = 0; i < QN; i++) ts[i] = (float)q.theta_star[i];
    const double L_min = quad_loss(&q, ts);
    struct td_optim_config c = td_optim_config_default(name);
    c.lookahead = mode;
    struct td_optim *o = new_optim(name, &c, q.p);
    const double L0 = quad_loss(&q, q.p->value);
    ck_assert_msg(L0 - L_min > 1.0, "test data: start too close to the minimum");
    for (int k = 0; k < steps; k++) {
        ck_assert_int_eq(td_optim_direction(o, q.p), TD_OK);
        quad_run(&q);
        ck_assert_int_eq(td_optim_step(o, q.p, lr), TD_OK);
    }
    const double L = quad_loss(&q, q.p->value);
    double err = 0;
    for (int i = 0; i < QN; i++) err = fmax(err, fabs(q.p->value[i] - q.theta_star[i]));
    ck_assert_msg(L - L_min <= 1e-6 * (1.0 + fabs(L_min)) && err < 1e-3,
                  "%s mode %d: after %d steps L - L_min = %g (from %g), max |theta - theta*| = %g",
                  name, (int)mode, steps, L - L_min, L0 - L_min, err);
    td_optim_free(o);
    quad_free(&q);
}

START_TEST(test_quad_tangent_sgd_converges)
{
    quad_converge("tangent-sgd", TD_LOOKAHEAD_MOMENTUM, 0.05f, 300);
    quad_converge("tangent-sgd", TD_LOOKAHEAD_GRADIENT, 0.2f, 300);
}
END_TEST

START_TEST(test_quad_curv_sgd_converges)
{
    quad_converge("curv-sgd", TD_LOOKAHEAD_MOMENTUM, 0.05f, 300);
}
END_TEST

/* With a diagonal A and z in {-1, 1}, D = z * (A z) is diag(A) exactly. */
START_TEST(test_quad_hutchinson_diagonal)
{
    struct quad q;
    quad_init(&q, 1);
    struct td_optim_config c = td_optim_config_default("adahessian");
    c.beta2 = 0.5f;
    c.seed = 3;
    struct td_optim *o = new_optim("adahessian", &c, q.p);
    ck_assert_int_eq(td_optim_direction(o, q.p), TD_OK);
    quad_run(&q);
    ck_assert_int_eq(td_optim_step(o, q.p, 0.01f), TD_OK);
    float *v;
    td_optim_state_block(o, 1, NULL, &v, NULL);
    double want[QN];
    for (int i = 0; i < QN; i++) want[i] = 0.5 * q.A[i * QN + i] * q.A[i * QN + i];
    char msg[256];
    ck_assert_msg(tu_close_d(v, want, QN, 1e-6, 0, msg, sizeof msg), "EMA of D^2: %s", msg);
    td_optim_free(o);
    quad_free(&q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("updates");
    tcase_add_test(tc, test_sgd);
    tcase_add_test(tc, test_momentum);
    tcase_add_test(tc, test_nesterov);
    tcase_add_test(tc, test_adam);
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_tangent_sgd_momentum);
    tcase_add_test(tc, test_tangent_sgd_gradient);
    tcase_add_test(tc, test_tangent_sgd_no_momentum_needs_no_tangent);
    tcase_add_test(tc, test_curv_sgd);
    tcase_add_test(tc, test_curv_sgd_clip);
    tcase_add_test(tc, test_adahessian);
    tcase_add_test(tc, test_sophia);
    tcase_add_test(tc, test_optim_clip_norm);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, test_bad_names);
    tcase_add_test(tc, test_bad_hyperparameters);
    tcase_add_test(tc, test_defaults_are_valid);
    tcase_add_test(tc, test_state_access);
    tcase_add_test(tc, test_step_misuse);
    tcase_add_test(tc, test_threads_bitwise);
    tcase_add_test(tc, test_par_chunk);
    tcase_add_test(tc, test_given_grad_sumsq);
    tcase_add_test(tc, test_resume_bitwise);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_bad_schedules);
    suite_add_tcase(s, tc);

    tc = tcase_create("quadratic");
    tcase_add_test(tc, test_quad_grad_hvp);
    tcase_add_test(tc, test_quad_tangent_lookahead);
    tcase_add_test(tc, test_quad_curv_alpha);
    tcase_add_test(tc, test_quad_tangent_sgd_converges);
    tcase_add_test(tc, test_quad_curv_sgd_converges);
    tcase_add_test(tc, test_quad_hutchinson_diagonal);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
