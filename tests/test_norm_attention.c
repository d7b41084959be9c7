/* Layer normalisation, GELU and causal softmax beyond the op-table suite:
 *   the exact messages of bad builds;
 *   forward and VJP kernels on shapes that are split across threads, against
 *   the ops' naive references, and bitwise the same on 1 and 2 threads;
 *   causal_softmax never reads x above the diagonal, and its VJP gives x
 *   exact zeros there whatever the cotangent holds;
 *   the td_layer_norm layer's parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/layers.h"
#include "ops/op.h"
#include "ops/ops.h"
#include "tests/testutil.h"

static struct td_node *in(struct td_graph *g, const char *name, struct td_shape s)
{
    return td_input(g, name, s, TD_F32);
}

START_TEST(test_bad_builds)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = in(g, "x", TD_SHAPE(2, 3, 4)), *c4 = in(g, "c4", TD_SHAPE(4));
    struct td_node *c5 = in(g, "c5", TD_SHAPE(5)), *m14 = in(g, "m14", TD_SHAPE(1, 4));
    struct td_node *sq = in(g, "sq", TD_SHAPE(2, 5, 5)), *v5 = in(g, "v5", TD_SHAPE(5));
    struct td_node *s = in(g, "s", TD_SHAPE()), *lab = td_input(g, "lab", TD_SHAPE(4), TD_I32);
    tu_assert_graph_ok(g, "leaves");

    tu_assert_unnamed_build_fails(g, td_layer_norm_op(g, x, c5, c4, 1e-5f), TD_ERR_SHAPE,
                                  "layer_norm",
                                  "gamma [5] must be [4], the last axis of x [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_layer_norm_op(g, x, c4, m14, 1e-5f), TD_ERR_SHAPE,
                                  "layer_norm",
                                  "beta [1,4] must be [4], the last axis of x [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_layer_norm_op(g, x, lab, c4, 1e-5f), TD_ERR_SHAPE,
                                  "layer_norm", "expects float operands, operand 1 is int32 [4]");
    tu_assert_unnamed_build_fails(g, td_normalize(g, x, -1.f), TD_ERR_SHAPE, "normalize",
                                  "eps must be >= 0, got -1");
    tu_assert_unnamed_build_fails(g, td_normalize(g, s, 1e-5f), TD_ERR_SHAPE, "normalize",
                                  "needs x of rank >= 1, got []");
    tu_assert_unnamed_build_fails(g, td_normalize_grad(g, x, sq, 1e-5f), TD_ERR_SHAPE,
                                  "normalize_grad", "v [2,5,5] must have the shape of x [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_layer_norm_grad(g, x, c4, c4, 1e-5f), TD_ERR_SHAPE,
                                  "layer_norm_grad", "ct [4] must have the shape of x [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_layer_norm_dgamma(g, x, m14, 1e-5f), TD_ERR_SHAPE,
                                  "layer_norm_dgamma", "ct [1,4] must have the shape of x [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_causal_softmax(g, x, 1.f), TD_ERR_SHAPE, "causal_softmax",
                                  "needs square last axes [..., T, T], got [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_causal_softmax(g, v5, 1.f), TD_ERR_SHAPE, "causal_softmax",
                                  "needs square last axes [..., T, T], got [5]");
    tu_assert_unnamed_build_fails(g, td_softmax_apply(g, x, x, 1.f, 1), TD_ERR_SHAPE,
                                  "softmax_apply",
                                  "causal needs square last axes [..., T, T], got [2,3,4]");
    tu_assert_unnamed_build_fails(g, td_softmax_apply(g, sq, sq, 1.f, 2), TD_ERR_SHAPE,
                                  "softmax_apply", "causal must be 0 or 1, got 2");
    tu_assert_unnamed_build_fails(g, td_softmax_apply(g, sq, x, 1.f, 0), TD_ERR_SHAPE,
                                  "softmax_apply",
                                  "y [2,5,5] and v [2,3,4] must have the same shape");
    tu_assert_unnamed_build_fails(g, td_gelu_grad(g, x, sq), TD_ERR_SHAPE, "gelu_grad",
                                  "x [2,3,4] and v [2,5,5] must have the same shape");
    tu_assert_unnamed_build_fails(g, td_gelu_tanh_grad(g, c4, lab), TD_ERR_SHAPE, "gelu_tanh_grad",
                                  "expects float operands, got x float32 [4] and v int32 [4]");
    tu_assert_unnamed_build_fails(g, td_gelu_tanh(g, lab), TD_ERR_SHAPE, "gelu_tanh",
                                  "expects a float operand, got int32 [4]");

    /* The layer builder names its layer. */
    ck_assert_ptr_null(td_layer_norm(g, s, "ln"));
    ck_assert_int_eq(td_graph_status(g), TD_ERR_SHAPE);
    ck_assert_str_eq(td_graph_error(g), "layer_norm 'ln': needs an input of rank >= 1, got []");
    td_graph_clear_error(g);
    td_graph_free(g);
}
END_TEST

START_TEST(test_layer_norm_layer)
{
    struct td_graph *g = td_graph_new(3);
    struct td_node *x = in(g, "x", TD_SHAPE(2, 5, 6));
    struct td_node *y = td_layer_norm(g, x, "ln1");
    tu_assert_graph_ok(g, "layer");
    ck_assert_str_eq(td_node_op_name(y), "layer_norm");
    ck_assert(td_shape_equal(td_node_shape(y), td_node_shape(x)));
    struct td_params *p = td_graph_params(g);
    ck_assert_int_eq(p->count, 2);
    int w = td_params_find(p, "ln1/weight"), b = td_params_find(p, "ln1/bias");
    ck_assert_int_ge(w, 0);
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(p->info[w].numel, 6);
    ck_assert_int_eq(p->info[b].numel, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_float_eq(p->value[p->info[w].offset + i], 1.0f);
        ck_assert_float_eq(p->value[p->info[b].offset + i], 0.0f);
    }
    ck_assert_float_eq(y->attr.f[0], 1e-5f);
    td_graph_free(g);
}
END_TEST

/* Layer norm and causal softmax with their VJPs, and GELU with its fused
 * grad, on shapes every kernel splits across threads. */
enum { LN_ROWS = 300, LN_C = 96, HEADS = 6, T = 37, GELU_N = 40000 };

struct big {
    struct td_graph *g;
    struct td_node *x, *gamma, *beta, *u, *s, *us, *h, *v;
    struct td_node *outs[9];
    float *xv, *gv, *bv, *uv, *sv, *usv, *hv, *vv;
    struct td_feed feeds[8];
};

static float *filled(size_t n, float lo, float hi, uint64_t stream)
{
    float *a = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(a);
    tu_fill_uniform(a, n, lo, hi, 21, stream);
    return a;
}

static void big_build(struct big *m)
{
    memset(m, 0, sizeof *m);
    struct td_graph *g = m->g = td_graph_new(5);
    m->x = in(g, "x", TD_SHAPE(LN_ROWS, LN_C));
    m->gamma = in(g, "gamma", TD_SHAPE(LN_C));
    m->beta = in(g, "beta", TD_SHAPE(LN_C));
    m->u = in(g, "u", TD_SHAPE(LN_ROWS, LN_C));
    m->s = in(g, "s", TD_SHAPE(2, HEADS / 2, T, T));
    m->us = in(g, "us", TD_SHAPE(2, HEADS / 2, T, T));
    m->h = in(g, "h", TD_SHAPE(GELU_N));
    m->v = in(g, "v", TD_SHAPE(GELU_N));
    struct td_node *y = td_layer_norm_op(g, m->x, m->gamma, m->beta, 1e-5f);
    struct td_node *p = td_causal_softmax(g, m->s, 0.3f);
    struct td_node *wrt[3] = {m->x, m->gamma, m->beta}, *ct[3], *cs;
    ck_assert_int_eq(td_vjp(g, y, m->u, wrt, 3, ct), TD_OK);
    ck_assert_int_eq(td_vjp(g, p, m->us, &m->s, 1, &cs), TD_OK);
    struct td_node *outs[9] = {y,
                               ct[0],
                               ct[1],
                               ct[2],
                               p,
                               cs,
                               td_gelu(g, m->h),
                               td_gelu_grad(g, m->h, m->v),
                               td_gelu_tanh_grad(g, m->h, m->v)};
    memcpy(m->outs, outs, sizeof outs);
    tu_assert_graph_ok(g, "big");
    /* The rules used the fused ops, not a composition. */
    ck_assert_str_eq(td_node_op_name(ct[0]), "layer_norm_grad");
    ck_assert_str_eq(td_node_op_name(ct[1]), "layer_norm_dgamma");
    ck_assert_str_eq(td_node_op_name(cs), "softmax_apply");

    m->xv = filled(LN_ROWS * LN_C, -2, 4, 1);
    m->gv = filled(LN_C, -1.5f, 1.5f, 2);
    m->bv = filled(LN_C, -1, 1, 3);
    m->uv = filled(LN_ROWS * LN_C, -1, 1, 4);
    m->sv = filled(HEADS * T * T, -3, 3, 5);
    m->usv = filled(HEADS * T * T, -1, 1, 6);
    m->hv = filled(GELU_N, -6, 6, 7);
    m->vv = filled(GELU_N, -1, 1, 8);
    struct td_feed f[8] = {{m->x, m->xv}, {m->gamma, m->gv}, {m->beta, m->bv}, {m->u, m->uv},
                           {m->s, m->sv}, {m->us, m->usv},   {m->h, m->hv},    {m->v, m->vv}};
    memcpy(m->feeds, f, sizeof f);
}

static void big_free(struct big *m)
{
    td_graph_free(m->g);
    free(m->xv);
    free(m->gv);
    free(m->bv);
    free(m->uv);
    free(m->sv);
    free(m->usv);
    free(m->hv);
    free(m->vv);
}

/* Runs the node's op reference on the node's operands as fed. */
static float *reference_of(const struct td_node *n, const void *const *src)
{
    float *out = malloc((size_t)td_shape_numel(&n->shape) * sizeof(float));
    ck_assert_ptr_nonnull(out);
    n->op->test.reference(n, src, out);
    return out;
}

START_TEST(test_threads_bitwise)
{
    struct big m;
    big_build(&m);
    struct td_compile_options one = {.num_threads = 1};
    struct td_compile_options two = {.num_threads = 2, .parallel_cost = 1, .group_cost = 1};
    struct tu_eval e1, e2;
    tu_assert_eval_init(&e1, m.g, m.outs, 9, &one);
    tu_assert_eval_init(&e2, m.g, m.outs, 9, &two);
    struct td_plan_stats st;
    td_plan_get_stats(e2.plan, &st);
    ck_assert_int_eq(st.num_threads, 2);
    tu_assert_eval_run(&e1, m.feeds, 8);
    tu_assert_eval_run(&e2, m.feeds, 8);
    for (int o = 0; o < 9; o++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(m.outs[o]));
        ck_assert_msg(memcmp(tu_eval_output(&e1, o), tu_eval_output(&e2, o), n * 4) == 0,
                      "output %d (%s) differs between 1 and 2 threads", o,
                      td_node_op_name(m.outs[o]));
    }

    /* Each fused kernel against its op's naive reference on these shapes. */
    for (int o = 0; o < 9; o++) {
        const struct td_node *n = m.outs[o];
        const void *src[TD_MAX_SRC] = {0};
        for (int k = 0; k < n->n_src; k++) {
            const struct td_node *s = n->src[k];
            for (int f = 0; f < 8; f++)
                if (m.feeds[f].node == s) src[k] = m.feeds[f].data;
            for (int q = 0; q < 9; q++)
                if (m.outs[q] == s) src[k] = tu_eval_output(&e2, q);
            ck_assert_msg(src[k], "output %d: operand %d is neither fed nor an output", o, k);
        }
        float *want = reference_of(n, src);
        char what[64];
        snprintf(what, sizeof what, "%s (output %d)", n->op->name, o);
        /* Column sums over 300 rows and the reduce_sum of dbeta round more. */
        double rtol = o == 2 || o == 3 ? 1e-4 : 2e-5;
        tu_assert_close(what, tu_eval_output(&e2, o), want, (size_t)td_shape_numel(&n->shape), rtol,
                        2e-6);
        free(want);
    }
    tu_eval_free(&e1);
    tu_eval_free(&e2);
    big_free(&m);
}
END_TEST

/* x and the cotangent hold NaN above the diagonal: y and the cotangent of x
 * are exactly 0 there and finite elsewhere, and the visible part is what a
 * zero-filled x gives, bit for bit. */
START_TEST(test_causal_ignores_future)
{
    enum { B = 3, N = 6 };
    struct td_graph *g = td_graph_new(4);
    struct td_node *x = in(g, "x", TD_SHAPE(B, N, N)), *u = in(g, "u", TD_SHAPE(B, N, N));
    struct td_node *y = td_causal_softmax(g, x, 0.5f), *dx;
    ck_assert_int_eq(td_vjp(g, y, u, &x, 1, &dx), TD_OK);
    tu_assert_graph_ok(g, "causal");
    struct td_node *outs[2] = {y, dx};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 2, NULL);
    float *xv = filled(B * N * N, -3, 3, 11), *uv = filled(B * N * N, -1, 1, 12);
    float *y0 = malloc(B * N * N * sizeof(float)), *d0 = malloc(B * N * N * sizeof(float));
    ck_assert(y0 && d0);
    for (int k = 0; k < B * N * N; k++)
        if (k % N > k / N % N) xv[k] = uv[k] = 0.f;
    struct td_feed f[2] = {{x, xv}, {u, uv}};
    tu_assert_eval_run(&e, f, 2);
    memcpy(y0, tu_eval_output(&e, 0), sizeof(float) * B * N * N);
    memcpy(d0, tu_eval_output(&e, 1), sizeof(float) * B * N * N);
    for (int k = 0; k < B * N * N; k++)
        if (k % N > k / N % N) xv[k] = uv[k] = NAN;
    tu_assert_eval_run(&e, f, 2);
    const float *y1 = tu_eval_output(&e, 0), *d1 = tu_eval_output(&e, 1);
    double row = 0;
    for (int k = 0; k < B * N * N; k++) {
        int i = k / N % N, j = k % N;
        ck_assert_msg(memcmp(&y0[k], &y1[k], 4) == 0 && memcmp(&d0[k], &d1[k], 4) == 0,
                      "element %d (row %d, column %d) depends on the masked part", k, i, j);
        if (j > i) {
            ck_assert_msg(y1[k] == 0.f && d1[k] == 0.f, "element %d above the diagonal: %g %g", k,
                          (double)y1[k], (double)d1[k]);
        } else {
            ck_assert(isfinite(y1[k]) && y1[k] > 0.f && isfinite(d1[k]));
            row += y1[k];
        }
    }
    /* Each of the B * N rows sums to 1. */
    ck_assert_msg(fabs(row - B * N) < 1e-4, "rows sum to %.7g in all, expected %d", row, B * N);
    tu_eval_free(&e);
    td_graph_free(g);
    free(xv);
    free(uv);
    free(y0);
    free(d0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("norm_attention");
    TCase *tc = tcase_create("norm_attention");
    tcase_add_test(tc, test_bad_builds);
    tcase_add_test(tc, test_layer_norm_layer);
    tcase_add_test(tc, test_threads_bitwise);
    tcase_add_test(tc, test_causal_ignores_future);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
