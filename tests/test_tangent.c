/* The rest of the tangent toolkit: the linearised network and the
 * second-order Taylor expansion (graph/taylor.h), kernel-regime predictions
 * on a problem with a known answer (optim/kernel_predict.h), Hessian and
 * Gauss-Newton products (optim/curvature.h), Lanczos and Hutchinson against
 * dense eigendecompositions and traces (optim/lanczos.h), and the
 * Hessian-free optimizer: its oracle interface, descent on a toy problem
 * and a bit-exact resume through the training loop. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/node.h"
#include "graph/tandem.h"
#include "optim/curvature.h"
#include "optim/kernel_predict.h"
#include "optim/lanczos.h"
#include "tests/testutil.h"

#define B 6
#define IN 4
#define HID 5
#define OUT 3

/* A small tanh MLP with its logits, labels and loss. */
struct net {
    struct td_graph *g;
    struct td_node *x, *y, *logits, *loss;
    float xs[B * IN];
    int32_t ys[B];
    struct td_feed feeds[2];
};

static void net_build(struct net *n, int hidden)
{
    n->g = td_graph_new(21);
    n->x = td_input(n->g, "x", TD_SHAPE(B, IN), TD_F32);
    n->y = td_input(n->g, "labels", TD_SHAPE(B), TD_I32);
    struct td_node *h = hidden ? td_tanh(n->g, td_dense(n->g, n->x, HID, "fc1")) : n->x;
    n->logits = td_dense(n->g, h, OUT, "out");
    n->loss = td_softmax_cross_entropy(n->g, n->logits, n->y);
    tu_assert_graph_ok(n->g, "net");
    tu_fill_uniform(n->xs, B * IN, -1, 1, 21, 1);
    tu_fill_int(n->ys, B, OUT, 21, 2);
    struct td_params *p = td_graph_params(n->g);
    for (size_t i = 0; i < p->total; i++) p->value[i] = td_rng_normal(21, 3, i);
    n->feeds[0] = (struct td_feed){n->x, n->xs};
    n->feeds[1] = (struct td_feed){n->y, n->ys};
}

/* ---- Taylor expansions ---- */

START_TEST(test_linearize_and_taylor2)
{
    struct net n;
    net_build(&n, 1);
    struct td_graph *g = n.g;
    struct td_params *p = td_graph_params(g);
    struct td_node *lin = td_linearize(g, n.logits), *t2 = td_taylor2(g, n.logits);
    tu_assert_graph_ok(g, "taylor");
    /* The JVP of the network at theta0 along d, for the first-order term. */
    struct td_node **w = malloc(sizeof(*w) * (size_t)p->count),
                   **d = malloc(sizeof(*d) * (size_t)p->count);
    for (int i = 0; i < p->count; i++) {
        w[i] = p->info[i].node;
        d[i] = td_graph_dir_input(g, i);
    }
    struct td_node *jd;
    ck_assert_int_eq(td_jvp(g, w, d, p->count, &n.logits, 1, &jd), TD_OK);
    struct td_node *outs[4] = {n.logits, lin, t2, jd};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 4, NULL);
    const size_t K = B * OUT;
    float f0[B * OUT], jv[B * OUT], theta0[64];
    ck_assert(p->total <= 64);
    memcpy(theta0, p->value, p->total * sizeof(float));
    tu_fill_normal(p->dir, p->total, 22, 1);
    tu_assert_eval_run(&e, n.feeds, 2);
    memcpy(f0, tu_eval_output(&e, 0), sizeof(f0));
    memcpy(jv, tu_eval_output(&e, 3), sizeof(jv));
    ck_assert(!memcmp(tu_eval_output(&e, 1), f0, sizeof(f0)));
    ck_assert(!memcmp(tu_eval_output(&e, 2), f0, sizeof(f0)));
    /* At theta0 + eps d: lin - f0 = eps J d (exactly affine), and the
     * remainders f - lin = O(eps^2), f - taylor2 = O(eps^3). */
    double err1[2], err2[2];
    const double eps[2] = {0.02, 0.01};
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < p->total; i++) p->value[i] = (float)(theta0[i] + eps[s] * p->dir[i]);
        tu_assert_eval_run(&e, n.feeds, 2);
        const float *f = tu_eval_output(&e, 0), *l = tu_eval_output(&e, 1),
                    *q = tu_eval_output(&e, 2);
        double a = 0, b = 0;
        for (size_t k = 0; k < K; k++) {
            tu_assert_rel("linear term", l[k] - f0[k], eps[s] * jv[k], 2e-3, 1e-5);
            a = fmax(a, fabs((double)f[k] - l[k]));
            b = fmax(b, fabs((double)f[k] - q[k]));
        }
        err1[s] = a, err2[s] = b;
    }
    ck_assert_msg(err1[0] / err1[1] > 3.5 && err1[0] / err1[1] < 4.5,
                  "first-order remainder ratio %g (want 4)", err1[0] / err1[1]);
    ck_assert_msg(err2[0] < 0.05 * err1[0] && err2[1] < 0.05 * err1[1],
                  "second order %g, %g vs first %g, %g", err2[0], err2[1], err1[0], err1[1]);
    tu_eval_free(&e);
    free(w), free(d);
    td_graph_free(g);
}
END_TEST

/* Training the linearised model: its gradient at theta0 is the network's,
 * and gradient descent on its MSE moves its outputs exactly as the kernel
 * predicts for a step. */
START_TEST(test_linearized_gradient)
{
    struct net n;
    net_build(&n, 1);
    struct td_graph *g = n.g;
    struct td_params *p = td_graph_params(g);
    struct td_node *lin = td_linearize(g, n.logits);
    struct td_node *loss_lin = td_softmax_cross_entropy(g, lin, n.y);
    struct td_node *gs[2][16];
    struct td_node **w = malloc(sizeof(*w) * (size_t)p->count);
    for (int i = 0; i < p->count; i++) w[i] = p->info[i].node;
    ck_assert_int_eq(td_vjp(g, n.loss, NULL, w, p->count, gs[0]), TD_OK);
    ck_assert_int_eq(td_vjp(g, loss_lin, NULL, w, p->count, gs[1]), TD_OK);
    struct tu_eval e;
    struct td_node *outs[32];
    for (int i = 0; i < p->count; i++) outs[i] = gs[0][i], outs[p->count + i] = gs[1][i];
    tu_assert_eval_init(&e, g, outs, 2 * p->count, NULL);
    tu_assert_eval_run(&e, n.feeds, 2);
    for (int i = 0; i < p->count; i++)
        tu_assert_close("gradient at theta0", tu_eval_output(&e, p->count + i),
                        tu_eval_output(&e, i), p->info[i].numel, 1e-5, 1e-7);
    tu_eval_free(&e);
    free(w);
    td_graph_free(g);
}
END_TEST

/* ---- kernel-regime predictions ---- */

/* A linear model f(x) = x . w with w starting at 0: its NTK is x . x', and
 * kernel regression on N < D points recovers w* on their span. */
START_TEST(test_kernel_regression_known_answer)
{
    enum { N = 4, D = 6, M = 3 };
    double X[N * D], ws[D], K[N * N], y[N], f0[N] = {0}, Xt[M * D], Kst[M * N], ft0[M] = {0};
    for (int i = 0; i < N * D; i++) X[i] = td_rng_normal(31, 1, (uint64_t)i);
    for (int i = 0; i < D; i++) ws[i] = td_rng_normal(31, 2, (uint64_t)i);
    for (int m = 0; m < M; m++) /* test points in the span of the training points */
        for (int d = 0; d < D; d++) {
            Xt[m * D + d] = 0;
            for (int n = 0; n < N; n++)
                Xt[m * D + d] += td_rng_normal(31, 3, (uint64_t)(m * N + n)) * X[n * D + d];
        }
    for (int a = 0; a < N; a++) {
        y[a] = 0;
        for (int d = 0; d < D; d++) y[a] += X[a * D + d] * ws[d];
        for (int b = 0; b < N; b++) {
            K[a * N + b] = 0;
            for (int d = 0; d < D; d++) K[a * N + b] += X[a * D + d] * X[b * D + d];
        }
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            Kst[m * N + n] = 0;
            for (int d = 0; d < D; d++) Kst[m * N + n] += Xt[m * D + d] * X[n * D + d];
        }
    char err[256];
    struct td_kpredict *kp = td_kpredict_new(K, N, 1, 0, f0, y, 0.0, err, sizeof(err));
    ck_assert_msg(kp != NULL, "%s", err);
    double out[M], tr[N];
    ck_assert_int_eq(td_kpredict_test(kp, Kst, M, ft0, INFINITY, out, err, sizeof(err)), TD_OK);
    for (int m = 0; m < M; m++) {
        double want = 0;
        for (int d = 0; d < D; d++) want += Xt[m * D + d] * ws[d];
        tu_assert_rel("kernel regression on the span", out[m], want, 1e-9, 1e-12);
    }
    /* Finite time against gradient flow integrated in small steps:
     * dw/dt = -eta X^T (X w - y) / N, so f(X) follows the kernel flow. */
    const double eta = 0.5, T = 3.0;
    double w[D] = {0};
    const int steps = 300000;
    for (int s = 0; s < steps; s++) {
        double r[N];
        for (int a = 0; a < N; a++) {
            r[a] = -y[a];
            for (int d = 0; d < D; d++) r[a] += X[a * D + d] * w[d];
        }
        for (int d = 0; d < D; d++) {
            double gsum = 0;
            for (int a = 0; a < N; a++) gsum += X[a * D + d] * r[a];
            w[d] -= (T / steps) * eta * gsum / N;
        }
    }
    ck_assert_int_eq(td_kpredict_train(kp, eta * T, tr, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_kpredict_test(kp, Kst, M, ft0, eta * T, out, err, sizeof(err)), TD_OK);
    for (int a = 0; a < N; a++) {
        double f = 0;
        for (int d = 0; d < D; d++) f += X[a * D + d] * w[d];
        tu_assert_rel("train predictions at time t", tr[a], f, 1e-4, 1e-9);
    }
    for (int m = 0; m < M; m++) {
        double f = 0;
        for (int d = 0; d < D; d++) f += Xt[m * D + d] * w[d];
        tu_assert_rel("test predictions at time t", out[m], f, 1e-4, 1e-9);
    }
    td_kpredict_free(kp);
}
END_TEST

/* A scalar kernel k with K outputs is the full kernel k (x) I_K. */
START_TEST(test_kernel_scalar_equals_kron)
{
    enum { N = 5, K = 3, M = 2 };
    double k[N * N], full[N * K * N * K], kst[M * N], fst[M * K * N * K];
    double f0[N * K], y[N * K], ft0[M * K], a[M * K], b[M * K];
    double A[N * 7];
    for (int i = 0; i < N * 7; i++) A[i] = td_rng_normal(41, 1, (uint64_t)i);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            k[i * N + j] = 0;
            for (int d = 0; d < 7; d++) k[i * N + j] += A[i * 7 + d] * A[j * 7 + d];
        }
    for (int i = 0; i < M * N; i++) kst[i] = td_rng_normal(41, 2, (uint64_t)i);
    for (int i = 0; i < N * K; i++) f0[i] = td_rng_normal(41, 3, (uint64_t)i), y[i] = i % K == 1;
    for (int i = 0; i < M * K; i++) ft0[i] = td_rng_normal(41, 4, (uint64_t)i);
    memset(full, 0, sizeof(full));
    memset(fst, 0, sizeof(fst));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < K; c++) {
            for (int m = 0; m < N; m++) full[(n * K + c) * N * K + m * K + c] = k[n * N + m];
            for (int m = 0; m < M; m++) fst[(m * K + c) * N * K + n * K + c] = kst[m * N + n];
        }
    char err[256];
    struct td_kpredict *ps = td_kpredict_new(k, N, K, 0, f0, y, 1e-8, err, sizeof(err));
    struct td_kpredict *pf = td_kpredict_new(full, N, K, 1, f0, y, 1e-8, err, sizeof(err));
    ck_assert(ps && pf);
    const double times[2] = {INFINITY, 2.0};
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(td_kpredict_test(ps, kst, M, ft0, times[t], a, err, sizeof(err)), TD_OK);
        ck_assert_int_eq(td_kpredict_test(pf, fst, M, ft0, times[t], b, err, sizeof(err)), TD_OK);
        for (int i = 0; i < M * K; i++) tu_assert_rel("scalar vs full", a[i], b[i], 1e-8, 1e-10);
    }
    /* A kernel that is not positive definite is refused by name. */
    for (int i = 0; i < N * N; i++) k[i] = -k[i];
    ck_assert_ptr_null(td_kpredict_new(k, N, K, 0, f0, y, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "not positive definite"), "%s", err);
    double pred[4] = {0.1, 0.9, 0.7, 0.2};
    int32_t labels[2] = {1, 1};
    ck_assert(td_kpredict_accuracy(pred, labels, 2, 2) == 0.5);
    td_kpredict_free(ps);
    td_kpredict_free(pf);
}
END_TEST

/* ---- curvature operators and spectra ---- */

static enum td_status curv_mv(void *ctx, const float *v, float *out)
{
    return td_curv_op_apply(ctx, v, out);
}

/* The dense matrix of an operator, column by column, symmetrised check. */
static double *dense_of(struct td_curv_op *c, size_t n)
{
    double *a = malloc(sizeof(double) * n * n);
    float *e = calloc(n, sizeof(float)), *col = malloc(sizeof(float) * n);
    for (size_t j = 0; j < n; j++) {
        e[j] = 1;
        ck_assert_int_eq(td_curv_op_apply(c, e, col), TD_OK);
        e[j] = 0;
        for (size_t i = 0; i < n; i++) a[i * n + j] = col[i];
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double s = fmax(fabs(a[i * n + j]), fabs(a[j * n + i]));
            ck_assert_msg(fabs(a[i * n + j] - a[j * n + i]) <= 1e-4 * s + 1e-6,
                          "not symmetric at (%zu, %zu)", i, j);
        }
    free(e), free(col);
    return a;
}

/* On a linear-softmax model the logits are affine in theta: the Hessian is
 * the Gauss-Newton matrix. On a tanh MLP G stays PSD where H need not. */
START_TEST(test_ggn_operator)
{
    char err[256];
    struct net n;
    net_build(&n, 0);
    struct td_curv_op *h =
        td_curv_op_new(n.g, n.loss, n.logits, TD_CURV_HESSIAN, n.feeds, 2, 1, err, sizeof(err));
    struct td_curv_op *g =
        td_curv_op_new(n.g, n.loss, n.logits, TD_CURV_GGN, n.feeds, 2, 1, err, sizeof(err));
    ck_assert_msg(h && g, "%s", err);
    size_t P = td_curv_op_size(g);
    float v[64], hv[64], gv[64];
    tu_fill_normal(v, P, 5, 5);
    ck_assert_int_eq(td_curv_op_apply(h, v, hv), TD_OK);
    ck_assert_int_eq(td_curv_op_apply(g, v, gv), TD_OK);
    tu_assert_close("G v = H v for a linear model", gv, hv, P, 1e-5, 1e-7);
    double loss;
    float grad[64];
    ck_assert_int_eq(td_curv_op_loss(g, &loss, grad), TD_OK);
    ck_assert(loss > 0 && isfinite(loss));
    td_curv_op_free(h);
    td_curv_op_free(g);
    td_graph_free(n.g);

    net_build(&n, 1);
    g = td_curv_op_new(n.g, n.loss, n.logits, TD_CURV_GGN, n.feeds, 2, 1, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    P = td_curv_op_size(g);
    double *a = dense_of(g, P), w[64], top = 0;
    ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (int)P, a, (int)P, w), 0);
    for (size_t i = 0; i < P; i++) top = fmax(top, w[i]);
    for (size_t i = 0; i < P; i++) ck_assert_msg(w[i] > -1e-5 * top, "G eigenvalue %g", w[i]);
    free(a);
    td_curv_op_free(g);
    /* A loss that does not reach the output is named. */
    struct td_node *other = td_input(n.g, "other", TD_SHAPE(B, OUT), TD_F32);
    ck_assert_ptr_null(
        td_curv_op_new(n.g, n.loss, other, TD_CURV_GGN, n.feeds, 2, 1, err, sizeof(err)));
    ck_assert_msg(strstr(err, "does not depend on the output"), "%s", err);
    td_graph_free(n.g);
}
END_TEST

/* Lanczos' top eigenvalues and vectors of H and G against dsyevd of the
 * dense matrices; Hutchinson's trace within its interval of the exact one. */
START_TEST(test_lanczos_against_dense)
{
    char err[256];
    struct net n;
    net_build(&n, 1);
    for (int which = 0; which < 2; which++) {
        struct td_curv_op *c = td_curv_op_new(n.g, n.loss, n.logits, (enum td_curv_matrix)which,
                                              n.feeds, 2, 1, err, sizeof(err));
        ck_assert_msg(c != NULL, "%s", err);
        const size_t P = td_curv_op_size(c);
        double *a = dense_of(c, P), w[64], trace = 0;
        for (size_t i = 0; i < P; i++) trace += a[i * P + i];
        double *vecs = malloc(sizeof(double) * P * P);
        memcpy(vecs, a, sizeof(double) * P * P);
        ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (int)P, vecs, (int)P, w), 0);
        struct td_lanczos_result r;
        ck_assert_int_eq(td_lanczos(curv_mv, c, P, (int)P, 4, 7, 1, 1, &r, err, sizeof(err)),
                         TD_OK);
        ck_assert_int_eq(r.k, 4);
        for (int i = 0; i < 4; i++) {
            double want = w[P - 1 - (size_t)i];
            tu_assert_rel("Lanczos eigenvalue", r.values[i], want, 1e-4, 1e-6 * fabs(w[P - 1]));
            ck_assert_msg(r.residuals[i] < 1e-3 * fabs(w[P - 1]), "residual %g", r.residuals[i]);
            double overlap = 0;
            for (size_t e = 0; e < P; e++)
                overlap += r.vectors[(size_t)i * P + e] * vecs[e * P + P - 1 - (size_t)i];
            ck_assert_msg(fabs(fabs(overlap) - 1) < 1e-3, "eigenvector %d overlap %g", i, overlap);
        }
        tu_assert_rel("smallest Ritz value", r.smallest, w[0], 1e-3, 1e-4 * fabs(w[P - 1]));
        td_lanczos_result_free(&r);
        /* Fewer steps than the dimension still find the top one. */
        ck_assert_int_eq(td_lanczos(curv_mv, c, P, 20, 1, 8, 0, 0, &r, err, sizeof(err)), TD_OK);
        tu_assert_rel("top eigenvalue in 20 steps", r.values[0], w[P - 1], 1e-3, 0);
        td_lanczos_result_free(&r);
        double mean, ci;
        ck_assert_int_eq(td_hutchinson_trace(curv_mv, c, P, 1000, 3, &mean, &ci, err, sizeof(err)),
                         TD_OK);
        ck_assert_msg(fabs(mean - trace) <= 1.5 * ci && ci < 0.25 * fabs(trace),
                      "Hutchinson %g +- %g, trace %g", mean, ci, trace);
        free(a), free(vecs);
        td_curv_op_free(c);
    }
    ck_assert_int_eq(td_lanczos(curv_mv, NULL, 10, 2, 3, 1, 0, 0, &(struct td_lanczos_result){0},
                                err, sizeof(err)),
                     TD_ERR_ARG);
    td_graph_free(n.g);
}
END_TEST

/* Lanczos on the NTK through NTK-vector products against dsyevd of the
 * dense kernel. */
static enum td_status ntk_mv(void *ctx, const float *v, float *out)
{
    return td_ntvp_apply(ctx, v, out);
}

static enum td_status mlp_builder(void *ctx, struct td_graph *g, int64_t batch,
                                  struct td_tangent_net *net)
{
    (void)ctx;
    struct td_node *x = td_input(g, "x", TD_SHAPE(batch, IN), TD_F32);
    net->inputs[0] = x;
    net->n_inputs = 1;
    net->output = td_dense(g, td_tanh(g, td_dense(g, x, HID, "fc1")), OUT, "out");
    return td_graph_status(g);
}

START_TEST(test_lanczos_ntk)
{
    float xs[7 * IN];
    tu_fill_uniform(xs, 7 * IN, -1, 1, 51, 1);
    struct td_tangent_model m = {.build = mlp_builder, .seed = 51};
    struct td_tangent_data x = {{xs}, 7};
    enum { NK = 7 * OUT };
    float kern[NK * NK];
    char err[256];
    struct td_ntk_options o = {0};
    ck_assert_int_eq(td_ntk_dense(&m, &x, NULL, &o, kern, NULL, err, sizeof(err)), TD_OK);
    double a[NK * NK], w[NK];
    for (int n = 0; n < 7; n++)
        for (int k = 0; k < OUT; k++)
            for (int mm = 0; mm < 7; mm++)
                for (int l = 0; l < OUT; l++)
                    a[(n * OUT + k) * NK + mm * OUT + l] = kern[((n * 7 + mm) * OUT + k) * OUT + l];
    ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', NK, a, NK, w), 0);
    struct td_ntvp *t = td_ntvp_new(&m, &x, NULL, NULL, 1, err, sizeof(err));
    ck_assert_msg(t != NULL, "%s", err);
    struct td_lanczos_result r;
    ck_assert_int_eq(td_lanczos(ntk_mv, t, NK, NK, 3, 2, 0, 1, &r, err, sizeof(err)), TD_OK);
    for (int i = 0; i < 3; i++)
        tu_assert_rel("NTK eigenvalue", r.values[i], w[NK - 1 - i], 1e-4, 1e-6 * w[NK - 1]);
    td_lanczos_result_free(&r);
    td_ntvp_free(t);
}
END_TEST

/* ---- hessian-free ---- */

struct toy_oracle {
    struct td_curv_op *ggn;
    int fail_at;
    int calls;
};

static enum td_status toy_ggn(void *ctx, const float *v, float *out)
{
    struct toy_oracle *t = ctx;
    if (++t->calls == t->fail_at) return TD_ERR_BACKEND;
    return td_curv_op_apply(t->ggn, v, out);
}

static enum td_status toy_eval(void *ctx, double *loss)
{
    struct toy_oracle *t = ctx;
    return td_curv_op_loss(t->ggn, loss, NULL);
}

/* Full-batch Hessian-free on the toy MLP: the loss falls monotonically
 * (a step is kept only when it lowers the loss), and the method reports
 * its products, ratio and damping; misuse and a failing oracle are clean. */
START_TEST(test_hessian_free_descends)
{
    char err[256];
    struct net n;
    net_build(&n, 1);
    struct td_params *p = td_graph_params(n.g);
    struct toy_oracle to = {0};
    to.ggn = td_curv_op_new(n.g, n.loss, n.logits, TD_CURV_GGN, n.feeds, 2, 1, err, sizeof(err));
    ck_assert_msg(to.ggn != NULL, "%s", err);
    struct td_optim_config cfg = td_optim_config_default("hessian-free");
    cfg.cg_iters = 20;
    struct td_optim *o = td_optim_new("hessian-free", &cfg, p, err, sizeof(err));
    ck_assert_msg(o != NULL, "%s", err);
    ck_assert(td_optim_needs(o) & TD_OPTIM_NEEDS_PRODUCTS);
    ck_assert_int_eq(td_optim_state_count(o), 1);
    ck_assert_int_eq(td_optim_scalar_count(o), 1);
    double loss0;
    ck_assert_int_eq(td_curv_op_loss(to.ggn, &loss0, p->grad), TD_OK);
    ck_assert_int_eq(td_optim_direction(o, p), TD_OK);
    ck_assert_int_eq(td_optim_step(o, p, 1.0f), TD_ERR_STATE);
    ck_assert_msg(strstr(td_optim_error(o), "needs curvature products"), "%s", td_optim_error(o));
    struct td_optim_oracle q = {.ctx = &to, .ggn = toy_ggn, .eval = toy_eval};
    td_optim_set_oracle(o, &q);
    double prev = loss0, loss = loss0;
    for (int k = 0; k < 15; k++) {
        ck_assert_int_eq(td_curv_op_loss(to.ggn, &loss, p->grad), TD_OK);
        ck_assert_msg(loss <= prev, "step %d: loss rose from %g to %g", k, prev, loss);
        prev = loss;
        q.loss = loss;
        ck_assert_int_eq(td_optim_direction(o, p), TD_OK);
        ck_assert_msg(td_optim_step(o, p, 1.0f) == TD_OK, "%s", td_optim_error(o));
        const struct td_optim_stats *s = td_optim_last_stats(o);
        ck_assert(s->products >= 1 && s->products <= 20);
    }
    ck_assert_msg(loss < 0.5 * loss0, "loss %g from %g in 15 steps", loss, loss0);
    const char *name;
    double *damping;
    ck_assert_int_eq(td_optim_scalar(o, 0, &name, &damping), TD_OK);
    ck_assert_str_eq(name, "damping");
    ck_assert(*damping > 0 && isfinite(*damping));
    /* A failing product fails the step and leaves the parameters. */
    float before[128];
    memcpy(before, p->value, p->total * sizeof(float));
    to.fail_at = to.calls + 2;
    q.loss = loss;
    ck_assert_int_eq(td_optim_direction(o, p), TD_OK);
    ck_assert_int_eq(td_optim_step(o, p, 1.0f), TD_ERR_BACKEND);
    ck_assert(!memcmp(before, p->value, p->total * sizeof(float)));
    cfg.cg_iters = 0;
    ck_assert_ptr_null(td_optim_new("hessian-free", &cfg, p, err, sizeof(err)));
    ck_assert_msg(strstr(err, "cg_iters = 0 is outside [1, 500]"), "%s", err);
    td_optim_free(o);
    td_curv_op_free(to.ggn);
    td_graph_free(n.g);
}
END_TEST

/* ---- hessian-free through the training loop: resume is bit-exact ---- */

#define TB 16

struct toy {
    struct td_graph *g;
    struct td_train_model m;
};

static void toy_build(struct toy *t)
{
    t->g = td_graph_new(3);
    struct td_node *x = td_input(t->g, "x", TD_SHAPE(TB, 4), TD_F32);
    struct td_node *y = td_input(t->g, "labels", TD_SHAPE(TB), TD_I32);
    struct td_node *logits = td_dense(t->g, td_tanh(t->g, td_dense(t->g, x, 8, "fc1")), 3, "fc2");
    struct td_node *loss = td_softmax_cross_entropy(t->g, logits, y);
    tu_assert_graph_ok(t->g, "toy");
    t->m = (struct td_train_model){
        .g = t->g, .loss = loss, .inputs = {x, y}, .n_inputs = 2, .eval_output = logits};
}

static enum td_status toy_batch(void *ctx, int64_t step, void *const *bufs, char *err,
                                size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    for (int b = 0; b < TB; b++) {
        float *x = (float *)bufs[0] + 4 * b;
        uint64_t i = (uint64_t)(step * TB + b);
        for (int k = 0; k < 4; k++) x[k] = td_rng_uniform(1, 10 + (uint64_t)k, i);
        ((int32_t *)bufs[1])[b] = x[0] + x[1] > x[2] + x[3] ? 1 : (x[0] > x[3] ? 2 : 0);
    }
    return TD_OK;
}

static int64_t toy_eval_batch(void *ctx, int64_t i, void *const *bufs)
{
    toy_batch(ctx, 1000 + i, bufs, NULL, 0);
    return TB;
}

static void run_hf(const char *out, int64_t steps, const char *resume, float *params)
{
    struct toy t;
    toy_build(&t);
    struct td_source src = {
        .n_bufs = 2,
        .shape = {TD_SHAPE(TB, 4), TD_SHAPE(TB)},
        .dtype = {TD_F32, TD_I32},
        .items_per_batch = TB,
        .train_items = 100 * TB,
        .item_name = "samples",
        .train_batch = toy_batch,
        .eval_batches = 1,
        .eval_batch = toy_eval_batch,
    };
    struct td_train_options o = {
        .optimizer = "hessian-free",
        .optim = td_optim_config_default("hessian-free"),
        .schedule = td_schedule_constant(1.0f),
        .steps = steps,
        .eval_every = 10,
        .num_threads = 2,
        .out_dir = out,
        .resume = resume,
    };
    o.optim.cg_iters = 10;
    char err[512];
    struct td_trainer *tr = td_trainer_new(&t.m, &src, &o, err, sizeof(err));
    ck_assert_msg(tr != NULL, "%s", err);
    ck_assert_msg(td_trainer_run(tr, NULL, err, sizeof(err)) == TD_OK, "%s", err);
    const struct td_params *p = td_graph_params(t.g);
    memcpy(params, p->value, p->total * sizeof(float));
    td_trainer_free(tr);
    td_graph_free(t.g);
}

START_TEST(test_hessian_free_resume)
{
    char dir[] = "/tmp/td_hf.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char a[64], b[64], ck[80];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(ck, sizeof(ck), "%s/checkpoint.h5", b);
    float straight[128], resumed[128], half[128];
    run_hf(a, 30, NULL, straight);
    run_hf(b, 13, NULL, half);
    ck_assert(memcmp(straight, half, sizeof(float) * 67) != 0);
    run_hf(b, 30, ck, resumed);
    ck_assert_msg(!memcmp(straight, resumed, sizeof(float) * 67),
                  "hessian-free resumed from step 13 differs from a straight run");
    tu_remove_tree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tangent");
    TCase *tc = tcase_create("tangent");
    tcase_add_test(tc, test_linearize_and_taylor2);
    tcase_add_test(tc, test_linearized_gradient);
    tcase_add_test(tc, test_kernel_regression_known_answer);
    tcase_add_test(tc, test_kernel_scalar_equals_kron);
    tcase_add_test(tc, test_ggn_operator);
    tcase_add_test(tc, test_lanczos_against_dense);
    tcase_add_test(tc, test_lanczos_ntk);
    tcase_add_test(tc, test_hessian_free_descends);
    tcase_add_test(tc, test_hessian_free_resume);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
