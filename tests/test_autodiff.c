/* First- and second-order checks of composite functions:
 *   gradient           vs central differences of the loss, direction by direction;
 *   H v (td_grad_hvp)  vs central differences of the gradient;
 *   <u, H v> = <v, H u>;
 *   reverse over forward (vjp of jvp) = forward over reverse (td_grad_hvp);
 *   jvp of jvp = v^T H v, and vs the second difference of the loss.
 * Finite differences need a smooth function. The ReLU network (the seed MLP)
 * gets its gradient checked with steps small enough that no ReLU input
 * changes sign, plus the exact identities; finite differences of its
 * gradient would cross kinks, so the tanh / GELU networks and a smooth
 * broadcasting function get the second-order finite-difference checks. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/layers.h"
#include "ops/ops.h"
#include "optim/step_graph.h"
#include "tests/testutil.h"
#include "tools/models/models.h"

#define MAX_PARAMS 64
#define MAX_FEEDS 4
#define MAX_KINKS 8

enum act { ACT_RELU, ACT_TANH, ACT_GELU };

/* A scalar loss of the parameters with every derivative graph built:
 *   pg: loss, grads, hvps (direction from the store's dir block)
 *   pr: L_t = dL.v, L_tt = v^T H v (jvp of jvp), H v by reverse over forward
 *       (v fed through the vin inputs). */
struct model {
    const char *name;
    struct td_graph *g;
    struct td_params *p;
    struct td_node *loss;
    int np;
    size_t total;
    struct td_node *grad[MAX_PARAMS], *hvp[MAX_PARAMS], *vin[MAX_PARAMS], *hvp_rf[MAX_PARAMS];
    struct td_node *lt, *ltt;
    /* ReLU inputs: a central difference is only valid while none of them
     * changes sign between theta - eps d and theta + eps d. */
    struct td_node *kink[MAX_KINKS];
    int n_kinks;
    unsigned char *sign0;
    size_t n_sign;
    struct td_feed feeds[MAX_FEEDS + MAX_PARAMS];
    int n_data_feeds, n_feeds;
    void *data[MAX_FEEDS];
    float *theta0, *v; /* v: the direction fed to vin */
    struct tu_eval pl, pg, pr;
};

static void model_add_data(struct model *m, struct td_node *in, void *data)
{
    m->data[m->n_data_feeds] = data;
    m->feeds[m->n_data_feeds++] = (struct td_feed){in, data};
}

/* Builds every derivative graph of m->loss and compiles the three plans. */
static void model_finish(struct model *m)
{
    struct td_graph *g = m->g;
    tu_assert_graph_ok(g, m->name);
    m->p = td_graph_params(g);
    m->np = m->p->count;
    m->total = m->p->total;
    ck_assert_int_le(m->np, MAX_PARAMS);
    ck_assert_int_gt(m->np, 0);
    ck_assert_int_eq(td_shape_numel(td_node_shape(m->loss)), 1);

    ck_assert_int_eq(td_grad_hvp(g, m->loss, m->grad, m->hvp, NULL), TD_OK);
    struct td_node *theta[MAX_PARAMS];
    char name[96];
    m->v = calloc(m->total, sizeof(float));
    ck_assert_ptr_nonnull(m->v);
    m->n_feeds = m->n_data_feeds;
    for (int i = 0; i < m->np; i++) {
        theta[i] = m->p->info[i].node;
        snprintf(name, sizeof name, "v:%s", m->p->info[i].name);
        m->vin[i] = td_input(g, name, m->p->info[i].shape, TD_F32);
        m->feeds[m->n_feeds++] = (struct td_feed){m->vin[i], m->v + m->p->info[i].offset};
    }
    ck_assert_int_eq(td_jvp(g, theta, m->vin, m->np, &m->loss, 1, &m->lt), TD_OK);
    ck_assert_int_eq(td_jvp(g, theta, m->vin, m->np, &m->lt, 1, &m->ltt), TD_OK);
    ck_assert_int_eq(td_vjp(g, m->lt, NULL, theta, m->np, m->hvp_rf), TD_OK);
    tu_assert_graph_ok(g, m->name);

    struct td_node *outs[2 + 2 * MAX_PARAMS];
    outs[0] = m->loss;
    for (int i = 0; i < m->n_kinks; i++) {
        outs[1 + i] = m->kink[i];
        m->n_sign += (size_t)td_shape_numel(td_node_shape(m->kink[i]));
    }
    tu_assert_eval_init(&m->pl, g, outs, 1 + m->n_kinks, NULL);
    m->sign0 = malloc(m->n_sign + 1);
    ck_assert_ptr_nonnull(m->sign0);

    for (int i = 0; i < m->np; i++) {
        outs[1 + i] = m->grad[i];
        outs[1 + m->np + i] = m->hvp[i];
    }
    tu_assert_eval_init(&m->pg, g, outs, 1 + 2 * m->np, NULL);
    outs[0] = m->lt;
    outs[1] = m->ltt;
    for (int i = 0; i < m->np; i++) outs[2 + i] = m->hvp_rf[i];
    tu_assert_eval_init(&m->pr, g, outs, 2 + m->np, NULL);

    m->theta0 = malloc(m->total * sizeof(float));
    ck_assert_ptr_nonnull(m->theta0);
    memcpy(m->theta0, m->p->value, m->total * sizeof(float));
}

static void model_free(struct model *m)
{
    tu_eval_free(&m->pl);
    tu_eval_free(&m->pg);
    tu_eval_free(&m->pr);
    td_graph_free(m->g);
    for (int i = 0; i < m->n_data_feeds; i++) free(m->data[i]);
    free(m->theta0);
    free(m->v);
    free(m->sign0);
}

/* Sets theta = theta0 + s * d (d may be NULL for theta0). */
static void set_theta(struct model *m, const float *d, double s)
{
    for (size_t k = 0; k < m->total; k++)
        m->p->value[k] = (float)(m->theta0[k] + (d ? s * d[k] : 0.0));
}

/* The loss at theta0 + s d. record = 1 stores the sign pattern of the ReLU
 * inputs in m->sign0; otherwise, when `same` is given, it receives whether
 * the pattern equals m->sign0. */
static double loss_at_signs(struct model *m, const float *d, double s, int record, int *same)
{
    set_theta(m, d, s);
    tu_assert_eval_run(&m->pl, m->feeds, m->n_feeds);
    size_t at = 0;
    if (same) *same = 1;
    for (int i = 0; i < m->n_kinks; i++) {
        const float *h = tu_eval_output(&m->pl, 1 + i);
        size_t n = (size_t)td_shape_numel(td_node_shape(m->kink[i]));
        for (size_t k = 0; k < n; k++, at++) {
            unsigned char pos = h[k] > 0;
            if (record)
                m->sign0[at] = pos;
            else if (same && pos != m->sign0[at])
                *same = 0;
        }
    }
    return tu_eval_output(&m->pl, 0)[0];
}

static double loss_at(struct model *m, const float *d, double s)
{
    return loss_at_signs(m, d, s, 0, NULL);
}

/* (L(theta + eps d) - L(theta - eps d)) / 2 eps, halving eps (at most 12
 * times) until no ReLU input changes sign over the segment, where the loss
 * is smooth. */
static double central_difference(struct model *m, const float *d, double *eps)
{
    loss_at_signs(m, NULL, 0, 1, NULL);
    for (int tries = 0;; tries++) {
        int same_p, same_m;
        double lp = loss_at_signs(m, d, *eps, 0, &same_p);
        double lm = loss_at_signs(m, d, -*eps, 0, &same_m);
        if (same_p && same_m) return (lp - lm) / (2 * *eps);
        ck_assert_msg(tries < 12, "%s: a ReLU input changes sign even for eps %g", m->name, *eps);
        *eps /= 2;
    }
}

/* Copies per-parameter outputs first..first+np of e into a flat vector laid
 * out like the store. */
static void gather(struct model *m, struct tu_eval *e, int first, float *flat)
{
    for (int i = 0; i < m->np; i++)
        memcpy(flat + m->p->info[i].offset, tu_eval_output(e, first + i),
               m->p->info[i].numel * sizeof(float));
}

/* Gradient and H dir at theta0 + s d, dir from `dir`. Returns the loss. */
static double grad_hvp_at(struct model *m, const float *d, double s, const float *dir, float *grad,
                          float *hv)
{
    set_theta(m, d, s);
    memcpy(m->p->dir, dir, m->total * sizeof(float));
    tu_assert_eval_run(&m->pg, m->feeds, m->n_feeds);
    if (grad) gather(m, &m->pg, 1, grad);
    if (hv) gather(m, &m->pg, 1 + m->np, hv);
    return tu_eval_output(&m->pg, 0)[0];
}

/* A direction: standard normal on parameter `only` (all when -1). */
static void direction(struct model *m, int only, uint64_t stream, float *d)
{
    tu_fill_normal(d, m->total, 77, stream);
    if (only < 0) return;
    for (int i = 0; i < m->np; i++)
        if (i != only) memset(d + m->p->info[i].offset, 0, m->p->info[i].numel * sizeof(float));
}

static float *new_vec(struct model *m)
{
    float *x = calloc(m->total, sizeof(float));
    ck_assert_ptr_nonnull(x);
    return x;
}

/* g.d against (L(theta + eps d) - L(theta - eps d)) / 2 eps, for a direction
 * on each parameter tensor alone (so a wrong small block, a bias, cannot hide)
 * and one on all of them. */
static void check_gradient(struct model *m, double eps, double tol)
{
    float *g = new_vec(m), *d = new_vec(m);
    double l0 = grad_hvp_at(m, NULL, 0, m->v, g, NULL);
    for (int only = -1; only < m->np; only++) {
        direction(m, only, 100 + (uint64_t)(only + 1), d);
        double gd = tu_dot(g, d, m->total), h = eps;
        double fd = central_difference(m, d, &h);
        char what[160];
        snprintf(what, sizeof what, "%s: g.d vs finite difference, direction on %s", m->name,
                 only < 0 ? "all parameters" : m->p->info[only].name);
        printf("  %-70s %.7g vs %.7g (eps %.2g)\n", what, gd, fd, h);
        /* The loss is a float: a difference of a few ulps of L is noise. */
        double noise = 4 * fabs(l0) * FLT_EPSILON / (2 * h);
        ck_assert_msg(fabs(gd - fd) <= tol * fmax(fabs(gd), fabs(fd)) + noise,
                      "%s: %.9g vs %.9g (eps %g; allowed %.3g relative + %.3g)", what, gd, fd, h,
                      tol, noise);
    }
    set_theta(m, NULL, 0);
    free(g);
    free(d);
}

/* Per parameter tensor: ||a_i - b_i|| <= tol max(||a_i||, ||b_i||, floor ||a||). */
static void assert_blocks_close(struct model *m, const char *what, const float *a, const double *b,
                                double tol, double floor)
{
    double na = tu_norm(a, m->total);
    for (int i = 0; i < m->np; i++) {
        size_t o = m->p->info[i].offset, n = m->p->info[i].numel;
        double diff = tu_norm_diff_d(a + o, b + o, n);
        double scale = fmax(fmax(tu_norm(a + o, n), tu_norm_d(b + o, n)), floor * na);
        ck_assert_msg(diff <= tol * scale, "%s: %s: ||a - b|| = %.4g, ||a|| = %.4g, ||b|| = %.4g",
                      what, m->p->info[i].name, diff, tu_norm(a + o, n), tu_norm_d(b + o, n));
    }
}

/* H v against (g(theta + eps v) - g(theta - eps v)) / 2 eps. */
static void check_hvp_fd(struct model *m, double eps, double tol)
{
    float *v = new_vec(m), *hv = new_vec(m), *gp = new_vec(m), *gm = new_vec(m);
    double *fd = calloc(m->total, sizeof *fd);
    ck_assert_ptr_nonnull(fd);
    direction(m, -1, 200, v);
    grad_hvp_at(m, NULL, 0, v, NULL, hv);
    grad_hvp_at(m, v, eps, v, gp, NULL);
    grad_hvp_at(m, v, -eps, v, gm, NULL);
    for (size_t k = 0; k < m->total; k++) fd[k] = ((double)gp[k] - gm[k]) / (2 * eps);
    char what[96];
    snprintf(what, sizeof what, "%s: H v vs finite differences of g", m->name);
    double rel = tu_norm_diff_d(hv, fd, m->total) / tu_norm(hv, m->total);
    printf("  %-70s relative error %.3g\n", what, rel);
    assert_blocks_close(m, what, hv, fd, tol, 1e-3);
    set_theta(m, NULL, 0);
    free(v);
    free(hv);
    free(gp);
    free(gm);
    free(fd);
}

/* <u, H v> = <v, H u>, relative to the sum of absolute products. */
static void check_symmetry(struct model *m)
{
    float *u = new_vec(m), *v = new_vec(m), *hu = new_vec(m), *hv = new_vec(m);
    direction(m, -1, 300, u);
    direction(m, -1, 301, v);
    grad_hvp_at(m, NULL, 0, v, NULL, hv);
    grad_hvp_at(m, NULL, 0, u, NULL, hu);
    double a = tu_dot(u, hv, m->total), b = tu_dot(v, hu, m->total);
    double scale = fmax(tu_dot_abs(u, hv, m->total), tu_dot_abs(v, hu, m->total));
    char what[96];
    snprintf(what, sizeof what, "%s: <u, H v> vs <v, H u>", m->name);
    printf("  %-70s %.7g vs %.7g\n", what, a, b);
    ck_assert_msg(fabs(a - b) <= 1e-5 * scale, "%s: <u, H v> = %.9g but <v, H u> = %.9g", m->name,
                  a, b);
    ck_assert_msg(scale > 0, "%s: the Hessian-vector products are all zero", m->name);
    free(u);
    free(v);
    free(hu);
    free(hv);
}

/* Reverse over forward against forward over reverse, and the directional
 * derivatives the forward plan gives against the gradient plan's. */
static void check_modes_agree(struct model *m)
{
    float *hv = new_vec(m), *g = new_vec(m), *hv_rf = new_vec(m);
    double *ref = calloc(m->total, sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    direction(m, -1, 400, m->v);
    grad_hvp_at(m, NULL, 0, m->v, g, hv);
    tu_assert_eval_run(&m->pr, m->feeds, m->n_feeds);
    gather(m, &m->pr, 2, hv_rf);
    for (size_t k = 0; k < m->total; k++) ref[k] = hv[k];
    char what[96];
    snprintf(what, sizeof what, "%s: vjp(jvp(L)) vs jvp(vjp(L))", m->name);
    printf("  %-70s relative difference %.3g\n", what,
           tu_norm_diff_d(hv_rf, ref, m->total) / tu_norm(hv, m->total));
    assert_blocks_close(m, what, hv_rf, ref, 1e-4, 1e-4);

    double lt = tu_eval_output(&m->pr, 0)[0], ltt = tu_eval_output(&m->pr, 1)[0];
    snprintf(what, sizeof what, "%s: jvp(L) vs g.v", m->name);
    tu_assert_rel(what, lt, tu_dot(g, m->v, m->total), 1e-4, 1e-2 * tu_dot_abs(g, m->v, m->total));
    snprintf(what, sizeof what, "%s: jvp(jvp(L)) vs v.(H v)", m->name);
    printf("  %-70s %.7g vs %.7g\n", what, ltt, tu_dot(m->v, hv, m->total));
    tu_assert_rel(what, ltt, tu_dot(m->v, hv, m->total), 1e-4,
                  1e-2 * tu_dot_abs(m->v, hv, m->total));
    free(hv);
    free(g);
    free(hv_rf);
    free(ref);
}

/* v^T H v from jvp of jvp against the second difference of the loss,
 * Richardson-extrapolated so eps can stay large against float rounding. */
static void check_second_directional(struct model *m, double eps, double tol)
{
    direction(m, -1, 500, m->v);
    tu_assert_eval_run(&m->pr, m->feeds, m->n_feeds);
    double ltt = tu_eval_output(&m->pr, 1)[0];
    double l0 = loss_at(m, NULL, 0);
    double d1 = (loss_at(m, m->v, eps) - 2 * l0 + loss_at(m, m->v, -eps)) / (eps * eps);
    double h = eps / 2;
    double d2 = (loss_at(m, m->v, h) - 2 * l0 + loss_at(m, m->v, -h)) / (h * h);
    double fd = (4 * d2 - d1) / 3;
    set_theta(m, NULL, 0);
    char what[96];
    snprintf(what, sizeof what, "%s: jvp(jvp(L)) vs second difference", m->name);
    printf("  %-70s %.7g vs %.7g\n", what, ltt, fd);
    tu_assert_rel(what, ltt, fd, tol, 1e-3);
}

/* Every check, finite differences of the gradient included, for a model
 * that is smooth everywhere. */
static void check_smooth(struct model *m)
{
    check_gradient(m, 1e-2, 5e-3);
    check_hvp_fd(m, 1e-2, 1e-2);
    check_symmetry(m);
    check_modes_agree(m);
    check_second_directional(m, 4e-2, 1e-2);
}

/* An MLP on fixed data: dense layers of sizes[0] -> ... -> sizes[n-1], the
 * activation between them, softmax cross-entropy on labels. */
static void build_mlp(struct model *m, const char *name, const int *sizes, int n, enum act act,
                      int batch)
{
    memset(m, 0, sizeof *m);
    m->name = name;
    m->g = td_graph_new(42);
    ck_assert_ptr_nonnull(m->g);
    struct td_node *x = td_input(m->g, "x", TD_SHAPE(batch, sizes[0]), TD_F32);
    struct td_node *y = td_input(m->g, "y", TD_SHAPE(batch), TD_I32);
    float *xd = malloc((size_t)batch * sizes[0] * sizeof(float));
    int32_t *yd = malloc((size_t)batch * sizeof(int32_t));
    ck_assert(xd && yd);
    tu_fill_uniform(xd, (size_t)batch * sizes[0], 0, 1, 7, 1);
    tu_fill_int(yd, (size_t)batch, sizes[n - 1], 7, 2);
    model_add_data(m, x, xd);
    model_add_data(m, y, yd);
    struct td_node *h = x;
    char lname[16];
    for (int i = 1; i < n; i++) {
        snprintf(lname, sizeof lname, "fc%d", i);
        h = td_dense(m->g, h, sizes[i], lname);
        if (i == n - 1) break;
        if (act == ACT_RELU) m->kink[m->n_kinks++] = h;
        h = act == ACT_RELU   ? td_relu(m->g, h)
            : act == ACT_TANH ? td_tanh(m->g, h)
                              : td_gelu(m->g, h);
    }
    m->loss = td_softmax_cross_entropy(m->g, h, y);
    model_finish(m);
}

START_TEST(test_seed_mlp_relu)
{
    struct model m;
    const int sizes[] = {784, 128, 64, 10};
    build_mlp(&m, "mlp 784-128-64-10 relu", sizes, 4, ACT_RELU, 8);
    check_gradient(&m, 1e-3, 2e-2);
    check_symmetry(&m);
    check_modes_agree(&m);
    model_free(&m);
}
END_TEST

START_TEST(test_small_mlp_tanh)
{
    struct model m;
    const int sizes[] = {20, 16, 12, 5};
    build_mlp(&m, "mlp 20-16-12-5 tanh", sizes, 4, ACT_TANH, 8);
    check_smooth(&m);
    model_free(&m);
}
END_TEST

START_TEST(test_small_mlp_gelu)
{
    struct model m;
    const int sizes[] = {20, 16, 12, 5};
    build_mlp(&m, "mlp 20-16-12-5 gelu", sizes, 4, ACT_GELU, 8);
    check_smooth(&m);
    model_free(&m);
}
END_TEST

/* Broadcasting, reductions over chosen axes, softmax and log-softmax:
 *   z = x * w[None, :] + b[:, None]                      [4, 6]
 *   r = mean_1(z^2) keepdims                             [4, 1]
 *   e = sum_1(softmax(z) * log_softmax(z / (1 + r)))     [4]
 *   loss = sum(e) + mean_all(mean_0(tanh(z))^2) + mean(z W^T) */
static void build_broadcast(struct model *m)
{
    memset(m, 0, sizeof *m);
    m->name = "broadcast/reduce";
    struct td_graph *g = td_graph_new(9);
    m->g = g;
    ck_assert_ptr_nonnull(g);
    struct td_node *x = td_input(g, "x", TD_SHAPE(4, 6), TD_F32);
    float *xd = malloc(24 * sizeof(float));
    ck_assert_ptr_nonnull(xd);
    tu_fill_uniform(xd, 24, -1, 1, 9, 1);
    model_add_data(m, x, xd);
    struct td_node *w = td_param(g, "w", TD_SHAPE(6), (struct td_init){TD_INIT_NORMAL, 0, 0.7f});
    struct td_node *b = td_param(g, "b", TD_SHAPE(4, 1), (struct td_init){TD_INIT_NORMAL, 0, 0.5f});
    struct td_node *W =
        td_param(g, "W", TD_SHAPE(3, 6), (struct td_init){TD_INIT_UNIFORM, -0.5f, 0.5f});
    struct td_node *z = td_add(g, td_mul(g, x, w), b);
    struct td_node *r = td_reduce_mean(g, td_square(g, z), 1u << 1, 1);
    struct td_node *ls = td_log_softmax(g, td_div(g, z, td_add_scalar(g, r, 1)));
    struct td_node *e = td_reduce_sum(g, td_mul(g, td_softmax(g, z), ls), 1u << 1, 0);
    struct td_node *t = td_reduce_mean(g, td_tanh(g, z), 1u << 0, 0);
    struct td_node *q = td_reduce_mean(g, td_square(g, t), 1u << 0, 0);
    struct td_node *lin = td_reduce_mean(g, td_matmul(g, z, W, 0, 1), 3u, 0);
    m->loss = td_add(g, td_add(g, td_sum_all(g, e), q), lin);
    model_finish(m);
}

START_TEST(test_broadcast_reduce)
{
    struct model m;
    build_broadcast(&m);
    check_smooth(&m);
    model_free(&m);
}
END_TEST

/* A small attention block through every op of a GPT layer but the
 * embedding, smooth everywhere:
 *   h = gelu(dense(layer_norm(x)))                       [2, 5, 8]
 *   p = causal_softmax(h h^T, 1/sqrt 8)                  [2, 5, 5]
 *   loss = mean((p h - x)^2) */
static void build_attention(struct model *m)
{
    memset(m, 0, sizeof *m);
    m->name = "layer_norm/gelu/causal_softmax";
    struct td_graph *g = td_graph_new(11);
    m->g = g;
    ck_assert_ptr_nonnull(g);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 5, 8), TD_F32);
    float *xd = malloc(80 * sizeof(float));
    ck_assert_ptr_nonnull(xd);
    tu_fill_uniform(xd, 80, -1, 2, 11, 1);
    model_add_data(m, x, xd);
    struct td_node *h = td_layer_norm(g, x, "ln");
    h = td_gelu(g, td_dense(g, h, 8, "fc"));
    struct td_node *p = td_causal_softmax(g, td_matmul(g, h, h, 0, 1), 0.35355339f);
    struct td_node *r = td_sub(g, td_matmul(g, p, h, 0, 0), x);
    m->loss = td_reduce_mean(g, td_square(g, r), 7u, 0);
    model_finish(m);
    /* Start gamma and beta away from ones and zeros, so that their
     * derivatives are not special. */
    for (size_t k = 0; k < m->total; k++) m->theta0[k] += 0.3f * (float)sin(3.0 * (double)k);
    set_theta(m, NULL, 0);
}

START_TEST(test_attention_block)
{
    struct model m;
    build_attention(&m);
    check_smooth(&m);
    model_free(&m);
}
END_TEST

/* The zoo's GPT at the size the tiny-model checks use: 2 layers, d 32,
 * 2 heads, context 16, on a batch of 2 windows over 11 tokens, every
 * parameter moved off its initial value (layer norms off 1 and 0). */
static void build_tiny_gpt(struct model *m)
{
    memset(m, 0, sizeof *m);
    m->name = "tiny gpt (2 layers, d 32, 2 heads, context 16)";
    m->g = td_graph_new(13);
    ck_assert_ptr_nonnull(m->g);
    const struct td_model_info *info = td_model_find("gpt");
    ck_assert_ptr_nonnull(info);
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = 11};
    struct td_model_config c = {
        .layers = 2, .d_model = 32, .heads = 2, .context = 16, .dropout = -1};
    struct td_model gpt;
    ck_assert_int_eq(td_model_build(info, m->g, 2, &d, &c, &gpt), TD_OK);
    int32_t *ids = malloc(32 * sizeof(int32_t)), *targets = malloc(32 * sizeof(int32_t));
    ck_assert(ids && targets);
    tu_fill_int(ids, 32, 11, 13, 1);
    tu_fill_int(targets, 32, 11, 13, 2);
    model_add_data(m, gpt.x, ids);
    model_add_data(m, gpt.labels, targets);
    m->loss = gpt.loss;
    model_finish(m);
    for (size_t k = 0; k < m->total; k++) m->theta0[k] += 0.1f * (float)sin(7.0 * (double)k);
    set_theta(m, NULL, 0);
}

/* Two products reading x: the second cotangent of x is accumulated onto
 * the first in one matmul_add (no add node), with the value
 * dL/dx[i, k] = sum_j W1[j, k] + 2 sum_j W2[j, k] of
 * L = sum(x W1^T) + 2 sum(x W2^T). */
START_TEST(test_product_cotangents_accumulate)
{
    struct td_graph *g = td_graph_new(5);
    struct td_init nrm = {TD_INIT_NORMAL, 0, 1};
    struct td_node *x = td_param(g, "x", TD_SHAPE(3, 4), nrm);
    struct td_node *w1 = td_param(g, "w1", TD_SHAPE(5, 4), nrm);
    struct td_node *w2 = td_param(g, "w2", TD_SHAPE(6, 4), nrm);
    struct td_node *loss = td_add(g, td_sum_all(g, td_matmul(g, x, w1, 0, 1)),
                                  td_scale(g, td_sum_all(g, td_matmul(g, x, w2, 0, 1)), 2.0f));
    struct td_node *dx;
    ck_assert_int_eq(td_vjp(g, loss, NULL, &x, 1, &dx), TD_OK);
    tu_assert_graph_ok(g, "accumulate");
    ck_assert_str_eq(td_node_op_name(dx), "matmul_add");
    struct tu_eval e;
    tu_assert_eval_init(&e, g, &dx, 1, NULL);
    tu_assert_eval_run(&e, NULL, 0);
    const struct td_params *p = td_graph_params(g);
    const float *W1 = p->value + p->info[1].offset, *W2 = p->value + p->info[2].offset;
    double want[12];
    for (int k = 0; k < 4; k++) {
        double s = 0;
        for (int j = 0; j < 5; j++) s += W1[j * 4 + k];
        for (int j = 0; j < 6; j++) s += 2.0 * W2[j * 4 + k];
        for (int i = 0; i < 3; i++) want[i * 4 + k] = s;
    }
    char msg[256];
    ck_assert_msg(tu_close_d(tu_eval_output(&e, 0), want, 12, 1e-5, 1e-5, msg, sizeof msg), "%s",
                  msg);
    tu_eval_free(&e);
    td_graph_free(g);
}
END_TEST

START_TEST(test_tiny_gpt)
{
    struct model m;
    build_tiny_gpt(&m);
    /* Directions over 30,000 parameters are long: smaller steps than
     * check_smooth's keep the third-order terms below the tolerances. */
    check_gradient(&m, 1e-3, 5e-3);
    check_hvp_fd(&m, 1e-3, 1e-2);
    check_symmetry(&m);
    check_modes_agree(&m);
    check_second_directional(&m, 4e-3, 1e-2);
    model_free(&m);
}
END_TEST

/* td_grad_hvp recomputes, in the backward pass, the tangent of an
 * elementwise node whose operands and their tangents that pass reads anyway
 * (each GELU's), instead of keeping it from the forward pass: the plan of
 * its gradients and HVPs gives the bits of plain td_jvp over the same
 * gradients, with more nodes and an arena no larger. For the ReLU network
 * nothing is recomputed (the backward pass reads only the ReLUs' masks, whose
 * tangents are zero): the two plans are the same size. */
static void compare_with_plain_jvp(struct model *m, int expect_recompute)
{
    struct td_graph *g = m->g;
    struct td_node *theta[MAX_PARAMS], *dir[MAX_PARAMS], *plain[MAX_PARAMS];
    for (int i = 0; i < m->np; i++) {
        theta[i] = m->p->info[i].node;
        dir[i] = td_graph_dir_input(g, i);
    }
    ck_assert_int_eq(td_jvp(g, theta, dir, m->np, m->grad, m->np, plain), TD_OK);
    for (size_t k = 0; k < m->total; k++) m->p->dir[k] = (float)cos(3.0 * (double)k);
    struct td_node *outs[2][2 * MAX_PARAMS];
    for (int i = 0; i < m->np; i++) {
        outs[0][i] = outs[1][i] = m->grad[i];
        outs[0][m->np + i] = m->hvp[i];
        outs[1][m->np + i] = plain[i];
    }
    struct td_compile_options o = {.num_threads = 1};
    struct td_plan *pr = td_compile(g, outs[0], 2 * m->np, &o);
    struct td_plan *pp = td_compile(g, outs[1], 2 * m->np, &o);
    ck_assert_msg(pr && pp, "td_compile: %s", td_graph_error(g));
    struct td_plan_stats sr, sp;
    td_plan_get_stats(pr, &sr);
    td_plan_get_stats(pp, &sp);
    if (expect_recompute)
        ck_assert_msg(sr.num_nodes > sp.num_nodes && sr.arena_bytes <= sp.arena_bytes,
                      "%s: %d nodes, arena %zu with recomputed tangents; %d, %zu without", m->name,
                      sr.num_nodes, sr.arena_bytes, sp.num_nodes, sp.arena_bytes);
    else
        ck_assert_msg(sr.num_nodes == sp.num_nodes && sr.arena_bytes == sp.arena_bytes,
                      "%s: %d nodes, arena %zu; plain %d, %zu", m->name, sr.num_nodes,
                      sr.arena_bytes, sp.num_nodes, sp.arena_bytes);
    ck_assert_int_eq(td_run(pr, m->feeds, m->n_data_feeds), TD_OK);
    ck_assert_int_eq(td_run(pp, m->feeds, m->n_data_feeds), TD_OK);
    for (int i = 0; i < m->np; i++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(m->hvp[i]));
        const float *a = td_plan_output(pr, m->np + i), *b = td_plan_output(pp, m->np + i);
        ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "%s: H v of %s differs", m->name,
                      m->p->info[i].name);
    }
    td_plan_free(pr);
    td_plan_free(pp);
}

START_TEST(test_hvp_recomputes_tangents)
{
    struct model m;
    build_tiny_gpt(&m);
    compare_with_plain_jvp(&m, 1);
    model_free(&m);
    const int sizes[] = {784, 128, 64, 10};
    build_mlp(&m, "mlp 784-128-64-10 relu", sizes, 4, ACT_RELU, 8);
    compare_with_plain_jvp(&m, 0);
    model_free(&m);
}
END_TEST

/* The tiny GPT's gradient and gradient + HVP plans, built with
 * rematerialisation set to `remat`, run on fixed data and direction: into
 * out (loss, gradients, HVPs, parameter order) and *stats. */
static void run_tiny_gpt_plans(int remat, float *out, size_t n_out, struct td_plan_stats *stats)
{
    struct td_graph *g = td_graph_new(13);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(td_graph_set_remat(g, remat), 0);
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = 11};
    struct td_model_config c = {
        .layers = 2, .d_model = 32, .heads = 2, .context = 16, .dropout = -1};
    struct td_model gpt;
    ck_assert_int_eq(td_model_build(td_model_find("gpt"), g, 4, &d, &c, &gpt), TD_OK);
    struct td_params *p = td_graph_params(g);
    ck_assert_int_le(p->count, MAX_PARAMS);
    struct td_node *outs[1 + 2 * MAX_PARAMS] = {gpt.loss};
    ck_assert_int_eq(td_grad_hvp(g, gpt.loss, outs + 1, outs + 1 + p->count, NULL), TD_OK);
    ck_assert_uint_eq(n_out, 2 * p->total + 1);
    int32_t ids[64], targets[64];
    tu_fill_int(ids, 64, 11, 13, 1);
    tu_fill_int(targets, 64, 11, 13, 2);
    struct td_feed feeds[] = {{gpt.x, ids}, {gpt.labels, targets}};
    for (size_t k = 0; k < p->total; k++) p->dir[k] = (float)cos(3.0 * (double)k);
    struct td_compile_options o = {.num_threads = 2};
    struct td_plan *grad = td_compile(g, outs, 1 + p->count, &o);
    struct td_plan *hvp = td_compile(g, outs, 1 + 2 * p->count, &o);
    ck_assert_msg(grad && hvp, "td_compile: %s", td_graph_error(g));
    td_plan_get_stats(grad, &stats[0]);
    td_plan_get_stats(hvp, &stats[1]);
    ck_assert_int_eq(td_run(grad, feeds, 2), TD_OK);
    float *at = out;
    for (int i = 0; i <= p->count; i++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(outs[i]));
        memcpy(at, td_plan_output(grad, i), n * sizeof(float));
        at += n;
    }
    ck_assert_int_eq(td_run(hvp, feeds, 2), TD_OK);
    const float *g0 = td_plan_output(hvp, 1);
    ck_assert_msg(memcmp(g0, out + 1, (size_t)td_shape_numel(td_node_shape(outs[1])) * 4) == 0,
                  "the HVP plan's first gradient differs from the gradient plan's");
    for (int i = 0; i < p->count; i++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(outs[1 + p->count + i]));
        memcpy(at, td_plan_output(hvp, 1 + p->count + i), n * sizeof(float));
        at += n;
    }
    td_plan_free(grad);
    td_plan_free(hvp);
    td_graph_free(g);
}

/* With td_graph_set_remat, each GELU output the backward pass reads is
 * recomputed there from the GELU's input (which the GELU's gradient reads
 * anyway): the same loss, gradients and HVPs bitwise, one more node per
 * layer in each plan, and smaller arenas, as no GELU output is kept from
 * the forward pass to the backward one. */
START_TEST(test_remat_recomputes_gelu)
{
    struct td_graph *probe = td_graph_new(13);
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = 11};
    struct td_model_config c = {
        .layers = 2, .d_model = 32, .heads = 2, .context = 16, .dropout = -1};
    struct td_model gpt;
    ck_assert_int_eq(td_model_build(td_model_find("gpt"), probe, 2, &d, &c, &gpt), TD_OK);
    size_t n = 2 * td_graph_params(probe)->total + 1;
    td_graph_free(probe);
    float *plain = malloc(n * sizeof(float)), *remat = malloc(n * sizeof(float));
    ck_assert(plain && remat);
    struct td_plan_stats sp[2], sr[2];
    run_tiny_gpt_plans(0, plain, n, sp);
    run_tiny_gpt_plans(1, remat, n, sr);
    ck_assert_msg(memcmp(plain, remat, n * sizeof(float)) == 0,
                  "loss, gradients or HVPs differ with rematerialisation");
    for (int k = 0; k < 2; k++)
        ck_assert_msg(
            sr[k].num_nodes == sp[k].num_nodes + 2 && sr[k].arena_bytes < sp[k].arena_bytes,
            "%s plan: %d nodes, arena %zu with remat; %d, %zu without", k ? "HVP" : "gradient",
            sr[k].num_nodes, sr[k].arena_bytes, sp[k].num_nodes, sp[k].arena_bytes);
    free(plain);
    free(remat);
}
END_TEST

/* The arena of mlp-gelu's gradient plan (batch 128) as the training loop
 * compiles it, gradients written into the parameter store, built with
 * rematerialisation set to `remat`. */
static size_t mlp_gelu_gradient_arena(int remat)
{
    struct td_graph *g = td_graph_new(5);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(td_graph_set_remat(g, remat), 0);
    struct td_data_desc d = {.kind = TD_DATA_IMAGES, .sample = TD_SHAPE(784), .classes = 10};
    struct td_model_config c = {0};
    struct td_model m;
    ck_assert_int_eq(td_model_build(td_model_find("mlp-gelu"), g, 128, &d, &c, &m), TD_OK);
    struct td_step_graph sg;
    ck_assert_int_eq(td_step_graph_init(&sg, g, m.loss), TD_OK);
    struct td_plan *plan =
        td_step_graph_compile(&sg, 0, 1, (struct td_compile_options){.num_threads = 2});
    ck_assert_msg(plan != NULL, "td_compile: %s", td_graph_error(g));
    struct td_plan_stats st;
    td_plan_get_stats(plan, &st);
    td_plan_free(plan);
    td_step_graph_free(&sg);
    td_graph_free(g);
    return st.arena_bytes;
}

/* A recomputed GELU feeding a single reader is freed as soon as that reader
 * has run, so rematerialisation never makes a gradient arena larger: here
 * each hidden layer's GELU output is read once in the backward pass, and
 * placing the copy any earlier than its reader holds it beside that layer's
 * gradient for nothing. */
START_TEST(test_remat_never_grows_the_arena)
{
    size_t plain = mlp_gelu_gradient_arena(0), remat = mlp_gelu_gradient_arena(1);
    ck_assert_msg(remat <= plain, "mlp-gelu gradient arena: %zu with remat, %zu without", remat,
                  plain);
}
END_TEST

/* A small CNN on fixed data: conv2d 3->4 (3x3, padding 1), the activation,
 * a pooling, conv2d 4->5 (3x2, stride 2, dilation (1,2), padding 1), the
 * activation, a dense head and softmax cross-entropy. With tanh and average
 * pooling the loss is smooth; with ReLU and max pooling its kinks are the
 * ReLU inputs' signs and each window's argmax, registered as the positive
 * pattern of max_pool2d_scatter(h, 1). */
static void build_cnn(struct model *m, const char *name, int smooth)
{
    memset(m, 0, sizeof *m);
    m->name = name;
    struct td_graph *g = td_graph_new(11);
    m->g = g;
    ck_assert_ptr_nonnull(g);
    const int batch = 3;
    struct td_node *x = td_input(g, "x", TD_SHAPE(batch, 3, 8, 8), TD_F32);
    struct td_node *y = td_input(g, "y", TD_SHAPE(batch), TD_I32);
    float *xd = malloc((size_t)batch * 3 * 64 * sizeof(float));
    int32_t *yd = malloc((size_t)batch * sizeof(int32_t));
    ck_assert(xd && yd);
    tu_fill_uniform(xd, (size_t)batch * 3 * 64, -1, 1, 11, 1);
    tu_fill_int(yd, (size_t)batch, 4, 11, 2);
    model_add_data(m, x, xd);
    model_add_data(m, y, yd);
    const struct td_conv2d_params p1 = {.pad = {1, 1}};
    const struct td_conv2d_params p2 = {{2, 2}, {1, 1}, {1, 2}};
    const struct td_pool2d_params pool = {.kernel = {2, 2}};
    struct td_node *h = td_conv2d(g, x, 4, 3, 3, &p1, "conv1");
    if (smooth) {
        h = td_avg_pool2d(g, td_tanh(g, h), &pool);
        h = td_tanh(g, td_conv2d(g, h, 5, 3, 2, &p2, "conv2"));
    } else {
        m->kink[m->n_kinks++] = h;
        h = td_relu(g, h);
        struct td_node *ones = td_fill(g, TD_SHAPE(batch, 4, 4, 4), 1.0f);
        m->kink[m->n_kinks++] = td_max_pool2d_scatter(g, h, ones, &pool);
        h = td_max_pool2d_op(g, h, &pool);
        h = td_conv2d(g, h, 5, 3, 2, &p2, "conv2");
        m->kink[m->n_kinks++] = h;
        h = td_relu(g, h);
    }
    const struct td_shape *s = td_node_shape(h);
    h = td_reshape(g, h, TD_SHAPE(batch, s->dim[1] * s->dim[2] * s->dim[3]));
    m->loss = td_softmax_cross_entropy(g, td_dense(g, h, 4, "fc"), y);
    model_finish(m);
}

START_TEST(test_small_cnn_tanh_avg_pool)
{
    struct model m;
    build_cnn(&m, "cnn tanh, avg pool", 1);
    check_gradient(&m, 2e-3, 5e-3);
    check_hvp_fd(&m, 1e-2, 1e-2);
    check_symmetry(&m);
    check_modes_agree(&m);
    check_second_directional(&m, 4e-2, 1e-2);
    model_free(&m);
}
END_TEST

START_TEST(test_small_cnn_relu_max_pool)
{
    struct model m;
    build_cnn(&m, "cnn relu, max pool", 0);
    check_gradient(&m, 1e-3, 2e-2);
    check_symmetry(&m);
    check_modes_agree(&m);
    model_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("autodiff");
    TCase *tc = tcase_create("composite");
    tcase_add_test(tc, test_seed_mlp_relu);
    tcase_add_test(tc, test_small_mlp_tanh);
    tcase_add_test(tc, test_small_mlp_gelu);
    tcase_add_test(tc, test_broadcast_reduce);
    tcase_add_test(tc, test_attention_block);
    tcase_add_test(tc, test_tiny_gpt);
    tcase_add_test(tc, test_hvp_recomputes_tangents);
    tcase_add_test(tc, test_remat_recomputes_gelu);
    tcase_add_test(tc, test_remat_never_grows_the_arena);
    tcase_add_test(tc, test_small_cnn_tanh_avg_pool);
    tcase_add_test(tc, test_small_cnn_relu_max_pool);
    tcase_add_test(tc, test_product_cotangents_accumulate);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
