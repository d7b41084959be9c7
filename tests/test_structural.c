/* Structural, reduction, matmul and loss ops beyond the op-table suite:
 * exact shape-error messages, shapes large enough to take the kernels'
 * blocked and multi-threaded paths (against double-precision loops here),
 * thread-count independence of the hand reductions, cross-entropy values
 * known in closed form and its NaN on a bad label, one_hot's out-of-range
 * rows, and td_dense's parameters and output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/plan.h"
#include "ops/layers.h"
#include "ops/ops.h"
#include "tests/testutil.h"

START_TEST(test_shape_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *a = td_input(g, "a", TD_SHAPE(128, 64), TD_F32);
    struct td_node *b = td_input(g, "b", TD_SHAPE(128, 10), TD_F32);
    struct td_node *v = td_input(g, "v", TD_SHAPE(5), TD_F32);
    struct td_node *b3 = td_input(g, "b3", TD_SHAPE(2, 3, 4), TD_F32);
    struct td_node *c3 = td_input(g, "c3", TD_SHAPE(3, 4, 5), TD_F32);
    struct td_node *m23 = td_input(g, "m23", TD_SHAPE(2, 3), TD_F32);
    struct td_node *s = td_input(g, "s", TD_SHAPE(), TD_F32);
    struct td_node *lab = td_input(g, "lab", TD_SHAPE(4), TD_I32);
    struct td_node *logits = td_input(g, "logits", TD_SHAPE(5, 7), TD_F32);
    tu_assert_graph_ok(g, "inputs");

    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, a, b, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': inner dimensions differ: [128,64] x [128,10]");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, a, a, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': inner dimensions differ: [128,64] x [128,64]");
    TU_ASSERT_BUILD_FAILS(
        g, td_matmul(g, a, b, 0, 1), TD_ERR_SHAPE,
        "matmul 'bad': inner dimensions differ: [128,64] x [128,10] (transpose_b)");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, v, b, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': operands need rank >= 2: [5] x [128,10]");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, b3, c3, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': batch dimensions differ: [2,3,4] x [3,4,5]");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, m23, lab, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': expects float operands, got [2,3] x int32 [4]");
    TU_ASSERT_BUILD_FAILS(g, td_reduce_sum(g, m23, 1u << 3, 0), TD_ERR_SHAPE,
                          "reduce_sum 'bad': axis 3 out of range for [2,3]");
    TU_ASSERT_BUILD_FAILS(g, td_reduce_mean(g, s, 1u, 1), TD_ERR_SHAPE,
                          "reduce_mean 'bad': axis 0 out of range for []");
    TU_ASSERT_BUILD_FAILS(g, td_reshape(g, m23, TD_SHAPE(4, 2)), TD_ERR_SHAPE,
                          "reshape 'bad': cannot reshape [2,3] (6 elements) to [4,2] (8 elements)");
    TU_ASSERT_BUILD_FAILS(g, td_broadcast_to(g, b3, TD_SHAPE(2, 5, 4)), TD_ERR_SHAPE,
                          "broadcast_to 'bad': cannot broadcast [2,3,4] to [2,5,4]");
    TU_ASSERT_BUILD_FAILS(g, td_broadcast_to(g, m23, TD_SHAPE(3)), TD_ERR_SHAPE,
                          "broadcast_to 'bad': cannot broadcast [2,3] to [3]");
    TU_ASSERT_BUILD_FAILS(g, td_transpose(g, m23, (const int[]){0, 0}), TD_ERR_SHAPE,
                          "transpose 'bad': perm entry 1 = 0 is not a permutation of the axes of "
                          "[2,3]");
    TU_ASSERT_BUILD_FAILS(g, td_transpose(g, b3, (const int[]){0, 3, 1}), TD_ERR_SHAPE,
                          "transpose 'bad': perm entry 1 = 3 is not a permutation of the axes of "
                          "[2,3,4]");
    TU_ASSERT_BUILD_FAILS(g, td_softmax(g, s), TD_ERR_SHAPE,
                          "softmax 'bad': needs an operand of rank >= 1, got []");
    TU_ASSERT_BUILD_FAILS(g, td_log_softmax(g, lab), TD_ERR_SHAPE,
                          "log_softmax 'bad': expects a float operand, got int32 [4]");
    TU_ASSERT_BUILD_FAILS(g, td_one_hot(g, v, 3), TD_ERR_SHAPE,
                          "one_hot 'bad': expects int32 labels, got float [5]");
    TU_ASSERT_BUILD_FAILS(g, td_one_hot(g, lab, 0), TD_ERR_SHAPE,
                          "one_hot 'bad': classes must be >= 1, got 0");
    TU_ASSERT_BUILD_FAILS(g, td_softmax_cross_entropy(g, logits, lab), TD_ERR_SHAPE,
                          "softmax_cross_entropy 'bad': labels [4] do not match logits [5,7]: "
                          "expected [5]");
    TU_ASSERT_BUILD_FAILS(g, td_softmax_cross_entropy(g, logits, v), TD_ERR_SHAPE,
                          "softmax_cross_entropy 'bad': expects int32 labels, got float [5]");
    TU_ASSERT_BUILD_FAILS(g, td_softmax_cross_entropy(g, b3, lab), TD_ERR_SHAPE,
                          "softmax_cross_entropy 'bad': expects logits of rank 2 [batch, classes], "
                          "got [2,3,4]");
    TU_ASSERT_BUILD_FAILS(g, td_dense(g, m23, 0, "fc"), TD_ERR_ARG,
                          "dense 'fc': units must be >= 1, got 0");
    TU_ASSERT_BUILD_FAILS(g, td_dense(g, s, 4, "fc"), TD_ERR_SHAPE,
                          "dense 'fc': needs an input of rank >= 1, got []");
    td_graph_free(g);
}
END_TEST

/* op(x)[i, j] of a row-major [r, c] matrix stored transposed when t. */
static double at(const float *x, int64_t rows, int64_t cols, int t, int64_t i, int64_t j)
{
    return t ? x[j * rows + i] : x[i * cols + j];
}

/* Matmuls of a few hundred per side, every flag pair, and a batched a with a
 * shared b, against a double loop; the tolerance is relative to the sum of
 * absolute products. */
START_TEST(test_matmul_large)
{
    const int64_t m = 67, k = 300, n = 130, batch = 3;
    for (int flags = 0; flags < 5; flags++) {
        int ta = flags & 1, tb = (flags >> 1) & 1, batched = flags == 4;
        struct td_graph *g = td_graph_new(1);
        struct td_shape sa = ta ? TD_SHAPE(k, m) : TD_SHAPE(m, k);
        if (batched) sa = TD_SHAPE(batch, m, k);
        struct td_node *a = td_input(g, "a", sa, TD_F32);
        struct td_node *b = td_input(g, "b", tb ? TD_SHAPE(n, k) : TD_SHAPE(k, n), TD_F32);
        struct td_node *y = td_matmul(g, a, b, ta, tb);
        tu_assert_graph_ok(g, "matmul");
        int64_t na = td_shape_numel(&sa), nb = k * n, reps = batched ? batch : 1;
        float *ad = malloc((size_t)na * sizeof(float)), *bd = malloc((size_t)nb * sizeof(float));
        ck_assert(ad && bd);
        tu_fill_uniform(ad, (size_t)na, -1, 1, 3, 1);
        tu_fill_uniform(bd, (size_t)nb, -1, 1, 3, 2);
        struct td_feed f[2] = {{a, ad}, {b, bd}};
        struct tu_eval e;
        tu_assert_eval_init(&e, g, &y, 1, NULL);
        tu_assert_eval_run(&e, f, 2);
        const float *yd = tu_eval_output(&e, 0);
        for (int64_t s = 0; s < reps; s++)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double acc = 0, mag = 0;
                    for (int64_t l = 0; l < k; l++) {
                        double p = at(ad + s * m * k, m, k, ta, i, l) * at(bd, k, n, tb, l, j);
                        acc += p;
                        mag += fabs(p);
                    }
                    double got = yd[(s * m + i) * n + j];
                    ck_assert_msg(fabs(got - acc) <= 1e-5 * mag,
                                  "flags %d, [%lld,%lld,%lld]: got %.9g, expected %.9g", flags,
                                  (long long)s, (long long)i, (long long)j, got, acc);
                }
        tu_eval_free(&e);
        free(ad);
        free(bd);
        td_graph_free(g);
    }
}
END_TEST

/* Reductions with more than one 512-float block per row, over leading,
 * middle, trailing and all axes, compared with double sums, and bitwise
 * equal on 1 and 2 threads. */
START_TEST(test_reduce_large)
{
    const struct {
        struct td_shape shape;
        unsigned mask;
    } cases[] = {
        {{2, {37, 1100}}, 1u}, {{3, {3, 700, 5}}, 2u},  {{3, {6, 9, 1300}}, 5u},
        {{1, {100003}}, 1u},   {{3, {4, 50, 600}}, 3u}, {{3, {4, 50, 600}}, 4u},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct td_graph *g = td_graph_new(1);
        const struct td_shape *xs = &cases[c].shape;
        struct td_node *x = td_input(g, "x", *xs, TD_F32);
        struct td_node *y[2] = {td_reduce_sum(g, x, cases[c].mask, 0),
                                td_reduce_mean(g, x, cases[c].mask, 1)};
        tu_assert_graph_ok(g, "reduce");
        int64_t nx = td_shape_numel(xs), ny = td_shape_numel(td_node_shape(y[0]));
        float *xd = malloc((size_t)nx * sizeof(float));
        double *want = calloc((size_t)ny, sizeof(double)),
               *mag = calloc((size_t)ny, sizeof(double));
        ck_assert(xd && want && mag);
        tu_fill_uniform(xd, (size_t)nx, -1, 1, 5, (uint64_t)c);
        int64_t st[TD_MAX_DIMS];
        td_shape_strides(xs, st);
        for (int64_t i = 0; i < nx; i++) {
            int64_t o = 0;
            for (int d = 0; d < xs->rank; d++)
                if (!(cases[c].mask & (1u << d))) o = o * xs->dim[d] + i / st[d] % xs->dim[d];
            want[o] += xd[i];
            mag[o] += fabs(xd[i]);
        }
        struct td_feed f = {x, xd};
        struct tu_eval e1, e2;
        struct td_compile_options one = {.num_threads = 1}, two = {.num_threads = 2};
        tu_assert_eval_init(&e1, g, y, 2, &one);
        tu_assert_eval_init(&e2, g, y, 2, &two);
        tu_assert_eval_run(&e1, &f, 1);
        tu_assert_eval_run(&e2, &f, 1);
        double count = (double)nx / (double)ny;
        for (int64_t o = 0; o < ny; o++) {
            double s = tu_eval_output(&e2, 0)[o], mean = tu_eval_output(&e2, 1)[o];
            ck_assert_msg(fabs(s - want[o]) <= 1e-6 * mag[o] + 1e-6,
                          "case %zu sum %lld: got %.9g, expected %.9g", c, (long long)o, s,
                          want[o]);
            ck_assert_msg(fabs(mean - want[o] / count) <= (1e-6 * mag[o] + 1e-6) / count,
                          "case %zu mean %lld: got %.9g, expected %.9g", c, (long long)o, mean,
                          want[o] / count);
        }
        for (int k = 0; k < 2; k++)
            ck_assert_msg(memcmp(tu_eval_output(&e1, k), tu_eval_output(&e2, k),
                                 (size_t)ny * sizeof(float)) == 0,
                          "case %zu output %d differs between 1 and 2 threads", c, k);
        tu_eval_free(&e1);
        tu_eval_free(&e2);
        free(xd);
        free(want);
        free(mag);
        td_graph_free(g);
    }
}
END_TEST

/* Known losses: uniform logits give log(C); a dominant logit of 1000 gives
 * 0 on its own label and 1000 on another, without overflow. */
START_TEST(test_cross_entropy_values)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(3, 4), TD_F32);
    struct td_node *l = td_input(g, "l", TD_SHAPE(3), TD_I32);
    struct td_node *loss = td_softmax_cross_entropy(g, x, l);
    tu_assert_graph_ok(g, "cross entropy");
    float xd[12] = {0, 0, 0, 0, 1000, 0, 0, 0, 1000, 0, 0, 0};
    int32_t ld[3] = {2, 0, 3};
    struct td_feed f[2] = {{x, xd}, {l, ld}};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, &loss, 1, NULL);
    tu_assert_eval_run(&e, f, 2);
    tu_assert_rel("loss", tu_eval_output(&e, 0)[0], (log(4.0) + 0.0 + 1000.0) / 3.0, 1e-6, 1e-6);
    tu_eval_free(&e);

    /* A label outside [0, C) makes the loss NaN, which check_numerics reports
     * on the loss node. */
    ld[1] = 4;
    tu_assert_eval_init(&e, g, &loss, 1, NULL);
    tu_assert_eval_run(&e, f, 2);
    ck_assert(isnan(tu_eval_output(&e, 0)[0]));
    tu_eval_free(&e);
    struct td_compile_options o = {.check_numerics = 1};
    struct td_plan *p = td_compile(g, &loss, 1, &o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(td_run(p, f, 2), TD_ERR_NUMERIC);
    ck_assert_msg(strstr(td_plan_error(p), "softmax_cross_entropy"), "message: %s",
                  td_plan_error(p));
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST

START_TEST(test_one_hot_rows)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *l = td_input(g, "l", TD_SHAPE(4), TD_I32);
    struct td_node *y = td_one_hot(g, l, 3);
    tu_assert_graph_ok(g, "one_hot");
    const int32_t ld[4] = {2, -1, 3, 0};
    const float want[12] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    struct td_feed f = {l, ld};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, &y, 1, NULL);
    tu_assert_eval_run(&e, &f, 1);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(tu_eval_output(&e, 0)[i] == want[i], "one_hot element %d: got %g", i,
                      (double)tu_eval_output(&e, 0)[i]);
    tu_eval_free(&e);
    td_graph_free(g);
}
END_TEST

/* td_dense: parameters fc/weight [units, in] and fc/bias [units] drawn from
 * U(+-1/sqrt(in)), and y = x W^T + b for inputs of rank 1, 2 and 3. */
START_TEST(test_dense)
{
    const int64_t in = 25, units = 6;
    const struct td_shape shapes[3] = {{1, {in}}, {2, {4, in}}, {3, {2, 3, in}}};
    for (int c = 0; c < 3; c++) {
        struct td_graph *g = td_graph_new(9);
        struct td_node *x = td_input(g, "x", shapes[c], TD_F32);
        struct td_node *y = td_dense(g, x, (int)units, "fc");
        tu_assert_graph_ok(g, "dense");
        struct td_shape ys = shapes[c];
        ys.dim[ys.rank - 1] = units;
        ck_assert(td_shape_equal(td_node_shape(y), &ys));

        struct td_params *ps = td_graph_params(g);
        int wi = td_params_find(ps, "fc/weight"), bi = td_params_find(ps, "fc/bias");
        ck_assert(wi >= 0 && bi >= 0 && ps->count == 2);
        ck_assert(td_shape_equal(&ps->info[wi].shape, &(struct td_shape){2, {units, in}}));
        ck_assert(td_shape_equal(&ps->info[bi].shape, &(struct td_shape){1, {units}}));
        const float *w = ps->value + ps->info[wi].offset, *b = ps->value + ps->info[bi].offset;
        double bound = 1.0 / sqrt((double)in), wmax = 0, bmax = 0;
        for (int64_t i = 0; i < units * in; i++) wmax = fmax(wmax, fabs(w[i]));
        for (int64_t i = 0; i < units; i++) bmax = fmax(bmax, fabs(b[i]));
        ck_assert_msg(wmax <= bound && wmax > 0.5 * bound, "weight max %g, bound %g", wmax, bound);
        ck_assert_msg(bmax <= bound && bmax > 0.1 * bound, "bias max %g, bound %g", bmax, bound);

        int64_t rows = td_shape_numel(&shapes[c]) / in;
        float *xd = malloc((size_t)(rows * in) * sizeof(float));
        float *want = malloc((size_t)(rows * units) * sizeof(float));
        ck_assert(xd && want);
        tu_fill_uniform(xd, (size_t)(rows * in), -1, 1, 4, 1);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t u = 0; u < units; u++) {
                double acc = b[u];
                for (int64_t i = 0; i < in; i++) acc += (double)xd[r * in + i] * w[u * in + i];
                want[r * units + u] = (float)acc;
            }
        struct td_feed f = {x, xd};
        struct tu_eval e;
        tu_assert_eval_init(&e, g, &y, 1, NULL);
        tu_assert_eval_run(&e, &f, 1);
        tu_assert_close("dense", tu_eval_output(&e, 0), want, (size_t)(rows * units), 1e-5, 1e-6);
        tu_eval_free(&e);
        free(xd);
        free(want);
        td_graph_free(g);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("structural");
    TCase *tc = tcase_create("structural");
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_matmul_large);
    tcase_add_test(tc, test_reduce_large);
    tcase_add_test(tc, test_cross_entropy_values);
    tcase_add_test(tc, test_one_hot_rows);
    tcase_add_test(tc, test_dense);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
