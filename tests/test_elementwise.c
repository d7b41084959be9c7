/* Elementwise and broadcasting binary ops beyond the op-table suite:
 *   shape rules and their error messages;
 *   kernels on shapes large enough to be split across threads, run in
 *   place where the planner allows it, against naive loops written here;
 *   second order: the JVP of each op's JVP and of its VJP against central
 *   differences of the first-order result, so every derivative rule is
 *   itself differentiable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/op.h"
#include "ops/ops.h"
#include "tests/testutil.h"

/* The op-table ops whose second order this suite checks (elementwise ops and
 * the row-wise ops whose fused rules have rules of their own). */
static const char *const second_order_ops[] = {
    "add",       "sub",           "mul",
    "div",       "affine",        "exp",
    "log",       "tanh",          "sigmoid",
    "relu",      "gelu",          "sqrt",
    "rsqrt",     "square",        "abs",
    "gelu_tanh", "gelu_grad",     "gelu_tanh_grad",
    "softmax",   "softmax_apply", "causal_softmax",
    "normalize", "layer_norm",    "layer_norm_dgamma",
};

static struct td_node *in(struct td_graph *g, const char *name, struct td_shape s)
{
    return td_input(g, name, s, TD_F32);
}

static void expect_shape(struct td_graph *g, struct td_node *n, struct td_shape want)
{
    char a[64], b[64];
    ck_assert_msg(n, "build failed: %s", td_graph_error(g));
    ck_assert_msg(td_shape_equal(td_node_shape(n), &want), "shape %s, expected %s",
                  td_shape_format(td_node_shape(n), a, sizeof a), td_shape_format(&want, b, 64));
}

START_TEST(test_shapes_and_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *a34 = in(g, "a34", TD_SHAPE(3, 4)), *b5 = in(g, "b5", TD_SHAPE(5));
    struct td_node *c31 = in(g, "c31", TD_SHAPE(3, 1)), *d14 = in(g, "d14", TD_SHAPE(1, 4));
    struct td_node *s = in(g, "s", TD_SHAPE()), *e234 = in(g, "e234", TD_SHAPE(2, 3, 4));
    struct td_node *lab = td_input(g, "lab", TD_SHAPE(3), TD_I32);
    struct td_node *f3 = in(g, "f3", TD_SHAPE(3));

    expect_shape(g, td_add(g, c31, d14), TD_SHAPE(3, 4));
    expect_shape(g, td_sub(g, s, a34), TD_SHAPE(3, 4));
    expect_shape(g, td_mul(g, d14, e234), TD_SHAPE(2, 3, 4));
    expect_shape(g, td_div(g, s, s), TD_SHAPE());
    expect_shape(g, td_add(g, td_input(g, "r6", TD_SHAPE(2, 1, 3, 1, 2, 1), TD_F32), d14),
                 TD_SHAPE(2, 1, 3, 1, 2, 4));
    expect_shape(g, td_gelu(g, e234), TD_SHAPE(2, 3, 4));
    expect_shape(g, td_neg(g, s), TD_SHAPE());
    tu_assert_graph_ok(g, "valid builds");

    tu_assert_unnamed_build_fails(g, td_add(g, a34, b5), TD_ERR_SHAPE, "add",
                                  "cannot broadcast [3,4] with [5]");
    tu_assert_unnamed_build_fails(g, td_div(g, e234, td_input(g, "x32", TD_SHAPE(3, 2), TD_F32)),
                                  TD_ERR_SHAPE, "div", "cannot broadcast [2,3,4] with [3,2]");
    tu_assert_unnamed_build_fails(g, td_mul(g, f3, lab), TD_ERR_SHAPE, "mul",
                                  "expects float operands, got float32 [3] and int32 [3]");
    tu_assert_unnamed_build_fails(g, td_exp(g, lab), TD_ERR_SHAPE, "exp",
                                  "expects a float operand, got int32 [3]");
    tu_assert_unnamed_build_fails(g, td_step(g, lab), TD_ERR_SHAPE, "step",
                                  "expects a float operand, got int32 [3]");

    /* A NULL operand passes the first error through untouched. */
    ck_assert_ptr_null(td_add(g, a34, b5));
    ck_assert_ptr_null(td_tanh(g, NULL));
    ck_assert_ptr_null(td_sub(g, NULL, a34));
    ck_assert_ptr_nonnull(strstr(td_graph_error(g), "cannot broadcast [3,4] with [5]"));
    td_graph_free(g);
}
END_TEST

static float *uniform(size_t n, float lo, float hi, uint64_t stream)
{
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    tu_fill_uniform(x, n, lo, hi, 5, stream);
    return x;
}

#define R 64
#define C 300

/* A chain over [R, C] mixing every kernel path: oneDNN binary with src1
 * broadcast and in place, the commuted oneDNN binary (a broadcast src0 of
 * add/mul), the hand-written broadcasting loop (a broadcast src0 of sub/div),
 * oneDNN eltwise and the sign/step/log loops. */
START_TEST(test_large_chain)
{
    struct td_graph *g = td_graph_new(2);
    struct td_node *x = in(g, "x", TD_SHAPE(R, C)), *row = in(g, "row", TD_SHAPE(C));
    struct td_node *col = in(g, "col", TD_SHAPE(R, 1));
    struct td_node *t1 = td_affine(g, x, 2.f, 0.5f);
    struct td_node *t2 = td_add(g, t1, row);
    struct td_node *t3 = td_sub(g, t2, col);
    struct td_node *t4 = td_mul(g, row, t3);
    struct td_node *t5 = td_sub(g, row, t4);
    struct td_node *t6 = td_tanh(g, t5);
    struct td_node *t7 = td_div(g, col, td_add_scalar(g, td_square(g, t6), 1.f));
    struct td_node *t8 = td_mul(g, td_step(g, t7), td_sign(g, t6));
    struct td_node *t9 = td_log(g, td_add_scalar(g, td_abs(g, t8), 0.5f));
    struct td_node *outs[] = {t9, t7};
    tu_assert_graph_ok(g, "chain");
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 2, NULL);
    struct td_plan_stats st;
    td_plan_get_stats(e.plan, &st);
    ck_assert_int_ge(st.num_inplace, 4);

    float *xv = uniform(R * C, -2, 2, 1), *rv = uniform(C, -1, 1, 2), *cv = uniform(R, -1, 1, 3);
    struct td_feed f[] = {{x, xv}, {row, rv}, {col, cv}};
    tu_assert_eval_run(&e, f, 3);
    double *w9 = malloc(R * C * sizeof(double)), *w7 = malloc(R * C * sizeof(double));
    ck_assert(w9 && w7);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            double v = 2.0 * xv[i * C + j] + 0.5 + rv[j] - cv[i];
            double th = tanh(rv[j] - rv[j] * v);
            double q = cv[i] / (th * th + 1.0);
            double sg = th > 0 ? 1.0 : th < 0 ? -1.0 : 0.0;
            w7[i * C + j] = q;
            w9[i * C + j] = log(fabs((q > 0 ? 1.0 : 0.0) * sg) + 0.5);
        }
    char msg[256];
    ck_assert_msg(tu_close_d(tu_eval_output(&e, 1), w7, R * C, 1e-5, 1e-6, msg, sizeof msg),
                  "t7: %s", msg);
    ck_assert_msg(tu_close_d(tu_eval_output(&e, 0), w9, R * C, 1e-5, 1e-6, msg, sizeof msg),
                  "t9: %s", msg);
    tu_eval_free(&e);
    td_graph_free(g);
    free(xv);
    free(rv);
    free(cv);
    free(w9);
    free(w7);
}
END_TEST

/* Both operands stretched on several axes: only the hand-written loop can
 * run it; [A, 1, C] op [B, 1] -> [A, B, C]. */
START_TEST(test_large_double_broadcast)
{
    enum { A = 16, B = 40, K = 300 };
    struct td_graph *g = td_graph_new(3);
    struct td_node *a = in(g, "a", TD_SHAPE(A, 1, K)), *b = in(g, "b", TD_SHAPE(B, 1));
    struct td_node *outs[] = {td_add(g, a, b), td_sub(g, a, b), td_mul(g, a, b), td_div(g, a, b)};
    tu_assert_graph_ok(g, "double broadcast");
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 4, NULL);
    float *av = uniform(A * K, -2, 2, 4), *bv = uniform(B, 0.5f, 2, 5);
    struct td_feed f[] = {{a, av}, {b, bv}};
    tu_assert_eval_run(&e, f, 2);
    double *want = malloc((size_t)A * B * K * sizeof(double));
    ck_assert_ptr_nonnull(want);
    char msg[256];
    for (int op = 0; op < 4; op++) {
        for (int i = 0; i < A; i++)
            for (int j = 0; j < B; j++)
                for (int k = 0; k < K; k++) {
                    double x = av[i * K + k], y = bv[j];
                    double r = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
                    want[((size_t)i * B + j) * K + k] = r;
                }
        ck_assert_msg(tu_close_d(tu_eval_output(&e, op), want, (size_t)A * B * K, 1e-6, 1e-7, msg,
                                 sizeof msg),
                      "%s: %s", td_node_op_name(outs[op]), msg);
    }
    tu_eval_free(&e);
    td_graph_free(g);
    free(av);
    free(bv);
    free(want);
}
END_TEST

/* ||got - fd|| relative to the larger norm (floor 1e-3, as the op-table
 * suite does); fd = (plus - minus) / (2 eps). */
static double fd_error(const float *got, const float *plus, const float *minus, size_t n,
                       double eps)
{
    double *fd = malloc(n * sizeof *fd);
    ck_assert_ptr_nonnull(fd);
    for (size_t i = 0; i < n; i++) fd[i] = ((double)plus[i] - minus[i]) / (2 * eps);
    double scale = fmax(fmax(tu_norm(got, n), tu_norm_d(fd, n)), 1e-3);
    double err = tu_norm_diff_d(got, fd, n) / scale;
    free(fd);
    return err;
}

/* For one op-table case: with v the tangent of every operand and u a
 * cotangent, checks d/ds [J(x + s v) v] = jvp(jvp) and
 * d/ds [J(x + s v)^T u] = jvp(vjp) against central differences. */
static int check_second_order(const struct td_op_def *op, int ci)
{
    const struct td_op_case *c = &op->test.cases[ci];
    const struct td_op_test *t = &op->test;
    struct td_graph *g = td_graph_new(9);
    struct td_node *x[TD_MAX_SRC], *v[TD_MAX_SRC], *ct[TD_MAX_SRC] = {0}, *ctt[TD_MAX_SRC] = {0};
    char name[8];
    for (int i = 0; i < c->n_in; i++) {
        snprintf(name, sizeof name, "x%d", i);
        x[i] = in(g, name, c->shape[i]);
        snprintf(name, sizeof name, "v%d", i);
        v[i] = in(g, name, c->shape[i]);
    }
    struct td_node *y = c->build ? c->build(g, x) : td_node_new(g, op, x, c->n_in, NULL);
    ck_assert_ptr_nonnull(y);
    struct td_node *u = in(g, "u", y->shape), *yt, *ytt;
    ck_assert_int_eq(td_jvp(g, x, v, c->n_in, &y, 1, &yt), TD_OK);
    ck_assert_int_eq(td_jvp(g, x, v, c->n_in, &yt, 1, &ytt), TD_OK);
    ck_assert_int_eq(td_vjp(g, y, u, x, c->n_in, ct), TD_OK);
    ck_assert_int_eq(td_jvp(g, x, v, c->n_in, ct, c->n_in, ctt), TD_OK);
    tu_assert_graph_ok(g, op->name);

    struct td_node *outs[2 + 2 * TD_MAX_SRC] = {yt, ytt};
    for (int i = 0; i < c->n_in; i++) {
        outs[2 + 2 * i] = ct[i];
        outs[3 + 2 * i] = ctt[i];
    }
    int n_out = 2 + 2 * c->n_in;
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, n_out, NULL);
    float *xv[TD_MAX_SRC], *xp[TD_MAX_SRC], *xm[TD_MAX_SRC], *vv[TD_MAX_SRC];
    struct td_feed f[2 * TD_MAX_SRC + 1];
    size_t numel[TD_MAX_SRC], ny = (size_t)td_shape_numel(&y->shape);
    for (int i = 0; i < c->n_in; i++) {
        numel[i] = (size_t)td_shape_numel(&c->shape[i]);
        xv[i] = uniform(numel[i], t->lo, t->hi, 10 + i);
        vv[i] = uniform(numel[i], -1, 1, 20 + i);
        xp[i] = malloc(numel[i] * sizeof(float));
        xm[i] = malloc(numel[i] * sizeof(float));
        ck_assert(xp[i] && xm[i]);
        for (size_t k = 0; k < numel[i]; k++) {
            xp[i][k] = xv[i][k] + t->fd_eps * vv[i][k];
            xm[i][k] = xv[i][k] - t->fd_eps * vv[i][k];
        }
        f[2 * i] = (struct td_feed){x[i], xv[i]};
        f[2 * i + 1] = (struct td_feed){v[i], vv[i]};
    }
    float *uv = uniform(ny, -1, 1, 30);
    int n_feeds = 2 * c->n_in;
    f[n_feeds++] = (struct td_feed){u, uv};

    /* first[o] at x + eps v, x - eps v, then the second-order values at x. */
    float *plus[1 + TD_MAX_SRC], *minus[1 + TD_MAX_SRC];
    size_t len[1 + TD_MAX_SRC] = {ny};
    for (int i = 0; i < c->n_in; i++) len[1 + i] = numel[i];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < c->n_in; i++) f[2 * i].data = pass ? xm[i] : xp[i];
        tu_assert_eval_run(&e, f, n_feeds);
        for (int o = 0; o <= c->n_in; o++) {
            float *copy = malloc(len[o] * sizeof(float));
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, tu_eval_output(&e, o ? 2 * o : 0), len[o] * sizeof(float));
            (pass ? minus : plus)[o] = copy;
        }
    }
    for (int i = 0; i < c->n_in; i++) f[2 * i].data = xv[i];
    tu_assert_eval_run(&e, f, n_feeds);
    double jj = fd_error(tu_eval_output(&e, 1), plus[0], minus[0], ny, t->fd_eps), jv = 0;
    for (int i = 0; i < c->n_in; i++)
        jv = fmax(jv, fd_error(tu_eval_output(&e, 3 + 2 * i), plus[1 + i], minus[1 + i], numel[i],
                               t->fd_eps));
    int ok = jj <= t->tol && jv <= t->tol;
    printf("second order %-8s case %d: jvp(jvp) %.2e, jvp(vjp) %.2e %s\n", op->name, ci, jj, jv,
           ok ? "ok" : "FAIL");
    for (int o = 0; o <= c->n_in; o++) {
        free(plus[o]);
        free(minus[o]);
    }
    for (int i = 0; i < c->n_in; i++) {
        free(xv[i]);
        free(vv[i]);
        free(xp[i]);
        free(xm[i]);
    }
    free(uv);
    tu_eval_free(&e);
    td_graph_free(g);
    return ok;
}

START_TEST(test_second_order)
{
    int n_ops = (int)(sizeof second_order_ops / sizeof second_order_ops[0]), found = 0, failed = 0;
    for (int i = 0; i < td_op_count; i++) {
        const struct td_op_def *op = td_op_table[i];
        int listed = 0;
        for (int k = 0; k < n_ops; k++) listed |= strcmp(op->name, second_order_ops[k]) == 0;
        if (!listed) continue;
        found++;
        for (int c = 0; c < op->test.n_cases; c++) failed += !check_second_order(op, c);
    }
    ck_assert_int_eq(found, n_ops);
    ck_assert_msg(failed == 0, "%d second-order cases failed (see the lines above)", failed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("elementwise");
    tcase_add_test(tc, test_shapes_and_errors);
    tcase_add_test(tc, test_large_chain);
    tcase_add_test(tc, test_large_double_broadcast);
    tcase_add_test(tc, test_second_order);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
