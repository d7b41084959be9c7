/* Sequence-model ops beyond the op-table suite: exact messages of bad
 * builds; slice, pad and concat on shapes large enough to split rows
 * between threads (against loops here, and bitwise equal on 1 and 2
 * threads), on token ids (int32), through td_split, and concat's JVP with
 * some tangents missing; embedding's run-time errors for bad ids and its
 * scatter-add against a sum in position order on 1 and 2 threads;
 * dropout's masks (recomputed here, per step, node and seed, the fraction
 * kept, evaluation steps) and their reuse by the derivative rules;
 * matmul's broadcast batch errors; and a small GPT block built from all of
 * them, its gradient and Hessian-vector product against finite
 * differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/graph.h"
#include "graph/plan.h"
#include "graph/rng.h"
#include "ops/ops.h"
#include "tests/testutil.h"

/* Compiles outs for `threads` threads with every node big enough to be
 * split between them, runs once and returns a malloc'd copy of each output
 * (4-byte elements) in copies[i]. */
static void run_copies(struct td_graph *g, struct td_node *const *outs, int n,
                       const struct td_feed *feeds, int n_feeds, int threads, void **copies)
{
    struct td_compile_options o = {.num_threads = threads, .parallel_cost = 1};
    struct td_plan *p = td_compile(g, outs, n, &o);
    ck_assert_msg(p != NULL, "compile: %s", td_graph_error(g));
    ck_assert_msg(td_run(p, feeds, n_feeds) == TD_OK, "run: %s", td_plan_error(p));
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)td_shape_numel(td_node_shape(outs[i])) * 4;
        copies[i] = malloc(bytes);
        ck_assert_ptr_nonnull(copies[i]);
        memcpy(copies[i], td_plan_output(p, i), bytes);
    }
    td_plan_free(p);
}

/* Runs outs on 1 and on 2 threads, checks the results are bitwise equal and
 * returns the 2-thread copies. */
static void run_both(struct td_graph *g, struct td_node *const *outs, int n,
                     const struct td_feed *feeds, int n_feeds, void **copies)
{
    void *one[8];
    ck_assert_int_le(n, 8);
    run_copies(g, outs, n, feeds, n_feeds, 1, one);
    run_copies(g, outs, n, feeds, n_feeds, 2, copies);
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)td_shape_numel(td_node_shape(outs[i])) * 4;
        ck_assert_msg(memcmp(one[i], copies[i], bytes) == 0,
                      "output %d differs between 1 and 2 threads", i);
        free(one[i]);
    }
}

START_TEST(test_axis_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 4), TD_F32);
    struct td_node *y = td_input(g, "y", TD_SHAPE(3, 5), TD_F32);
    struct td_node *b3 = td_input(g, "b3", TD_SHAPE(2, 3, 4), TD_F32);
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(2, 4), TD_I32);
    tu_assert_graph_ok(g, "inputs");

    TU_ASSERT_BUILD_FAILS(g, td_slice(g, b3, 3, 0, 1), TD_ERR_SHAPE,
                          "slice 'bad': axis 3 out of range for [2,3,4]");
    TU_ASSERT_BUILD_FAILS(g, td_slice(g, x, -1, 0, 1), TD_ERR_SHAPE,
                          "slice 'bad': axis -1 out of range for [2,4]");
    TU_ASSERT_BUILD_FAILS(g, td_slice(g, x, 1, 2, 3), TD_ERR_SHAPE,
                          "slice 'bad': range [2, 5) is outside axis 1 of [2,4] (size 4)");
    TU_ASSERT_BUILD_FAILS(g, td_slice(g, x, 1, -1, 2), TD_ERR_SHAPE,
                          "slice 'bad': range [-1, 1) is outside axis 1 of [2,4] (size 4)");
    TU_ASSERT_BUILD_FAILS(g, td_slice(g, x, 0, 0, 0), TD_ERR_SHAPE,
                          "slice 'bad': length must be >= 1, got 0");
    TU_ASSERT_BUILD_FAILS(g, td_pad(g, x, 2, 1, 1), TD_ERR_SHAPE,
                          "pad 'bad': axis 2 out of range for [2,4]");
    TU_ASSERT_BUILD_FAILS(g, td_pad(g, x, 0, 1, -2), TD_ERR_SHAPE,
                          "pad 'bad': padding before 1 and after -2 must be >= 0");
    TU_ASSERT_BUILD_FAILS(
        g, td_concat(g, (struct td_node *[]){x, y}, 2, 1), TD_ERR_SHAPE,
        "concat 'bad': operand 2 [3,5] does not match operand 1 [2,4] off axis 1");
    TU_ASSERT_BUILD_FAILS(
        g, td_concat(g, (struct td_node *[]){x, b3}, 2, 0), TD_ERR_SHAPE,
        "concat 'bad': operand 2 [2,3,4] does not match operand 1 [2,4] off axis 0");
    TU_ASSERT_BUILD_FAILS(g, td_concat(g, (struct td_node *[]){x, x, ids}, 3, 0), TD_ERR_SHAPE,
                          "concat 'bad': operand 3 is int32 [2,4] but operand 1 is float32 [2,4]");
    TU_ASSERT_BUILD_FAILS(g, td_concat(g, (struct td_node *[]){x, x}, 2, 2), TD_ERR_SHAPE,
                          "concat 'bad': axis 2 out of range for [2,4]");
    TU_ASSERT_BUILD_FAILS(g, td_concat(g, (struct td_node *[]){x}, 1, 5), TD_ERR_SHAPE,
                          "concat 'bad': axis 5 out of range for [2,4]");
    TU_ASSERT_BUILD_FAILS(g, td_concat(g, (struct td_node *[]){x, x, x, x}, 4, 0), TD_ERR_ARG,
                          "concat: takes 1 to 3 operands (TD_MAX_SRC), got 4");
    TU_ASSERT_BUILD_FAILS(g, td_concat(g, (struct td_node *[]){x}, 0, 0), TD_ERR_ARG,
                          "concat: takes 1 to 3 operands (TD_MAX_SRC), got 0");

    struct td_node *parts[3] = {x, x, x};
    ck_assert_int_eq(td_split(g, x, 1, 3, parts), TD_ERR_SHAPE);
    ck_assert_str_eq(td_graph_error(g),
                     "split: axis 1 of [2,4] (size 4) does not split into 3 equal parts");
    ck_assert(!parts[0] && !parts[1] && !parts[2]);
    td_graph_clear_error(g);
    ck_assert_int_eq(td_split(g, x, 2, 2, parts), TD_ERR_SHAPE);
    ck_assert_str_eq(td_graph_error(g), "split: axis 2 out of range for [2,4]");
    td_graph_clear_error(g);

    /* Identities are the operand itself, not a copy. */
    ck_assert_ptr_eq(td_slice(g, x, 1, 0, 4), x);
    ck_assert_ptr_eq(td_pad(g, x, 0, 0, 0), x);
    ck_assert_ptr_eq(td_concat(g, &x, 1, 1), x);
    tu_assert_graph_ok(g, "identities");
    td_graph_free(g);
}
END_TEST

/* x [A, B, C] element (a, b, c) in a test pattern that names its position. */
static float pattern(int64_t a, int64_t b, int64_t c)
{
    return (float)(a * 1000000 + b * 1000 + c) * 0.5f;
}

/* Slice, pad and concat of [3, 300, 96] along each axis; concat along axis
 * 0 leaves one outer row, which the copy splits into pieces. */
START_TEST(test_axis_large)
{
    const int64_t A = 3, B = 300, C = 96;
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(A, B, C), TD_F32);
    struct td_node *w = td_input(g, "w", TD_SHAPE(1, B, C), TD_F32);
    struct td_node *outs[6];
    outs[0] = td_slice(g, x, 1, 50, 200);
    outs[1] = td_slice(g, x, 2, 10, 1);
    outs[2] = td_pad(g, x, 0, 1, 2);
    outs[3] = td_pad(g, x, 2, 3, 0);
    outs[4] = td_concat(g, (struct td_node *[]){x, w}, 2, 0);
    outs[5] = td_concat(g, (struct td_node *[]){x, x, x}, 3, 2);
    tu_assert_graph_ok(g, "axis ops");
    float *xd = malloc((size_t)(A * B * C) * sizeof(float));
    float *wd = malloc((size_t)(B * C) * sizeof(float));
    ck_assert(xd && wd);
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C; c++) xd[(a * B + b) * C + c] = pattern(a, b, c);
    for (int64_t i = 0; i < B * C; i++) wd[i] = -1.0f - (float)i;
    struct td_feed f[2] = {{x, xd}, {w, wd}};
    void *res[6];
    run_both(g, outs, 6, f, 2, res);

    const float *s1 = res[0], *s2 = res[1], *p0 = res[2], *p2 = res[3], *c0 = res[4], *c2 = res[5];
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < 200; b++)
            for (int64_t c = 0; c < C; c++)
                ck_assert_float_eq(s1[(a * 200 + b) * C + c], pattern(a, b + 50, c));
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++) ck_assert_float_eq(s2[a * B + b], pattern(a, b, 10));
    for (int64_t a = 0; a < A + 3; a++)
        for (int64_t i = 0; i < B * C; i++)
            ck_assert_float_eq(p0[a * B * C + i], a >= 1 && a <= A ? xd[(a - 1) * B * C + i] : 0);
    for (int64_t r = 0; r < A * B; r++)
        for (int64_t c = 0; c < C + 3; c++)
            ck_assert_float_eq(p2[r * (C + 3) + c], c < 3 ? 0 : xd[r * C + c - 3]);
    for (int64_t i = 0; i < (A + 1) * B * C; i++)
        ck_assert_float_eq(c0[i], i < A * B * C ? xd[i] : wd[i - A * B * C]);
    for (int64_t r = 0; r < A * B; r++)
        for (int64_t c = 0; c < 3 * C; c++)
            ck_assert_float_eq(c2[r * 3 * C + c], xd[r * C + c % C]);
    for (int i = 0; i < 6; i++) free(res[i]);
    free(xd);
    free(wd);
    td_graph_free(g);
}
END_TEST

/* Token ids [B, T + 1] sliced into a GPT's inputs and targets, padded and
 * joined again: int32 in, int32 out, bit for bit. */
START_TEST(test_axis_ids)
{
    const int B = 3, T = 8;
    struct td_graph *g = td_graph_new(1);
    struct td_node *tok = td_input(g, "tokens", TD_SHAPE(B, T + 1), TD_I32);
    struct td_node *in = td_slice(g, tok, 1, 0, T), *tgt = td_slice(g, tok, 1, 1, T);
    struct td_node *outs[4] = {in, tgt, td_pad(g, in, 1, 0, 1),
                               td_concat(g, (struct td_node *[]){tgt, in}, 2, 0)};
    tu_assert_graph_ok(g, "ids");
    for (int i = 0; i < 4; i++) ck_assert_int_eq(td_node_dtype(outs[i]), TD_I32);
    int32_t td[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) td[i] = 1000 + i;
    struct td_feed f = {tok, td};
    void *res[4];
    run_both(g, outs, 4, &f, 1, res);
    const int32_t *ri = res[0], *rt = res[1], *rp = res[2], *rc = res[3];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            ck_assert_int_eq(ri[b * T + t], td[b * (T + 1) + t]);
            ck_assert_int_eq(rt[b * T + t], td[b * (T + 1) + t + 1]);
            ck_assert_int_eq(rp[b * (T + 1) + t], td[b * (T + 1) + t]);
            ck_assert_int_eq(rc[b * T + t], td[b * (T + 1) + t + 1]);
            ck_assert_int_eq(rc[(B + b) * T + t], td[b * (T + 1) + t]);
        }
    for (int b = 0; b < B; b++) ck_assert_int_eq(rp[b * (T + 1) + T], 0);
    for (int i = 0; i < 4; i++) free(res[i]);
    td_graph_free(g);
}
END_TEST

/* td_split into three heads-worth of [B, T, 3C] (q, k, v) and concat back. */
START_TEST(test_split)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "qkv", TD_SHAPE(2, 5, 12), TD_F32);
    struct td_node *p[3];
    ck_assert_int_eq(td_split(g, x, 2, 3, p), TD_OK);
    struct td_node *outs[4] = {p[0], p[1], p[2], td_concat(g, p, 3, 2)};
    tu_assert_graph_ok(g, "split");
    for (int k = 0; k < 3; k++) {
        const struct td_shape *s = td_node_shape(p[k]);
        ck_assert(s->rank == 3 && s->dim[0] == 2 && s->dim[1] == 5 && s->dim[2] == 4);
    }
    float xd[120];
    for (int i = 0; i < 120; i++) xd[i] = (float)i;
    struct td_feed f = {x, xd};
    void *res[4];
    run_both(g, outs, 4, &f, 1, res);
    for (int r = 0; r < 10; r++)
        for (int k = 0; k < 3; k++)
            for (int c = 0; c < 4; c++)
                ck_assert_float_eq(((float *)res[k])[r * 4 + c], xd[r * 12 + k * 4 + c]);
    ck_assert_mem_eq(res[3], xd, sizeof xd);
    for (int i = 0; i < 4; i++) free(res[i]);
    /* One part is the operand itself. */
    ck_assert_int_eq(td_split(g, x, 0, 1, p), TD_OK);
    ck_assert_ptr_eq(p[0], x);
    td_graph_free(g);
}
END_TEST

/* concat's JVP when some operands have tangents and others not: the
 * missing ones are zeros, whether one tangent (padded) or two (joined
 * with a zero block) are given. */
START_TEST(test_concat_partial_tangents)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x[3], *t[3];
    const int64_t widths[3] = {2, 3, 1};
    for (int k = 0; k < 3; k++) {
        char name[8];
        snprintf(name, sizeof name, "x%d", k);
        x[k] = td_input(g, name, TD_SHAPE(4, widths[k]), TD_F32);
        snprintf(name, sizeof name, "t%d", k);
        t[k] = td_input(g, name, TD_SHAPE(4, widths[k]), TD_F32);
    }
    struct td_node *y = td_concat(g, x, 3, 1), *jv[3];
    struct td_node *wrt02[2] = {x[0], x[2]}, *tan02[2] = {t[0], t[2]};
    ck_assert_int_eq(td_jvp(g, wrt02, tan02, 2, &y, 1, &jv[0]), TD_OK);
    ck_assert_int_eq(td_jvp(g, &x[1], &t[1], 1, &y, 1, &jv[1]), TD_OK);
    ck_assert_int_eq(td_jvp(g, x, t, 3, &y, 1, &jv[2]), TD_OK);
    tu_assert_graph_ok(g, "jvp");
    ck_assert_str_eq(td_node_op_name(jv[1]), "pad");
    float data[3][2][12]; /* 4 rows of widths[k] <= 3 */
    struct td_feed f[6];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 4 * widths[k]; i++) {
            data[k][0][i] = (float)(10 * k + i);
            data[k][1][i] = (float)(-100 * (k + 1) - i);
        }
        f[2 * k] = (struct td_feed){x[k], data[k][0]};
        f[2 * k + 1] = (struct td_feed){t[k], data[k][1]};
    }
    void *res[3];
    run_both(g, jv, 3, f, 6, res);
    for (int s = 0; s < 3; s++) {
        const float *r = res[s];
        for (int row = 0; row < 4; row++)
            for (int k = 0, col = 0; k < 3; k++)
                for (int c = 0; c < widths[k]; c++, col++) {
                    int has = s == 2 || (s == 0 && k != 1) || (s == 1 && k == 1);
                    float want = has ? data[k][1][row * widths[k] + c] : 0.0f;
                    ck_assert_msg(r[row * 6 + col] == want, "set %d [%d,%d]: got %g, expected %g",
                                  s, row, col, r[row * 6 + col], want);
                }
        free(res[s]);
    }
    td_graph_free(g);
}
END_TEST

START_TEST(test_matmul_broadcast_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *q = td_input(g, "q", TD_SHAPE(2, 3, 4, 5), TD_F32);
    struct td_node *k3 = td_input(g, "k3", TD_SHAPE(2, 4, 5), TD_F32);
    struct td_node *v = td_input(g, "v", TD_SHAPE(3, 2, 5, 6), TD_F32);
    tu_assert_graph_ok(g, "inputs");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, q, k3, 0, 1), TD_ERR_SHAPE,
                          "matmul 'bad': batch dimensions differ: [2,3,4,5] x [2,4,5]");
    TU_ASSERT_BUILD_FAILS(g, td_matmul(g, q, v, 0, 0), TD_ERR_SHAPE,
                          "matmul 'bad': batch dimensions differ: [2,3,4,5] x [3,2,5,6]");
    /* What does broadcast has NumPy's shape. */
    struct td_node *k1 = td_input(g, "k1", TD_SHAPE(1, 3, 4, 5), TD_F32);
    struct td_node *s = td_matmul(g, q, k1, 0, 1);
    struct td_node *h = td_input(g, "h", TD_SHAPE(3, 5, 7), TD_F32);
    struct td_node *u = td_matmul(g, td_input(g, "b1", TD_SHAPE(4, 1, 1, 4, 3), TD_F32),
                                  td_input(g, "b2", TD_SHAPE(2, 1, 3, 7), TD_F32), 0, 0);
    struct td_node *qh = td_matmul(g, q, h, 0, 0);
    tu_assert_graph_ok(g, "broadcast");
    struct td_shape want_s = TD_SHAPE(2, 3, 4, 4), want_qh = TD_SHAPE(2, 3, 4, 7);
    struct td_shape want_u = TD_SHAPE(4, 2, 1, 4, 7);
    ck_assert(td_shape_equal(td_node_shape(s), &want_s));
    ck_assert(td_shape_equal(td_node_shape(qh), &want_qh));
    ck_assert(td_shape_equal(td_node_shape(u), &want_u));
    td_graph_free(g);
}
END_TEST

START_TEST(test_embedding_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *table = td_input(g, "table", TD_SHAPE(10, 4), TD_F32);
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(2, 3), TD_I32);
    struct td_node *fids = td_input(g, "fids", TD_SHAPE(2, 3), TD_F32);
    struct td_node *v = td_input(g, "v", TD_SHAPE(10), TD_F32);
    struct td_node *s = td_input(g, "s", TD_SHAPE(), TD_I32);
    struct td_node *ids5 = td_input(g, "ids5", TD_SHAPE(1, 1, 1, 1, 1, 2), TD_I32);
    struct td_node *ct = td_input(g, "ct", TD_SHAPE(2, 3, 4), TD_F32);
    struct td_node *ct_bad = td_input(g, "ct_bad", TD_SHAPE(2, 4, 4), TD_F32);
    tu_assert_graph_ok(g, "inputs");

    TU_ASSERT_BUILD_FAILS(g, td_embedding_lookup(g, table, fids), TD_ERR_SHAPE,
                          "embedding 'bad': expects int32 ids, got float32 [2,3]");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_lookup(g, v, ids), TD_ERR_SHAPE,
                          "embedding 'bad': expects a float32 table [rows, dim], got [10]");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_lookup(g, ids, ids), TD_ERR_SHAPE,
                          "embedding 'bad': expects a float32 table [rows, dim], got int32 [2,3]");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_lookup(g, table, s), TD_ERR_SHAPE,
                          "embedding 'bad': expects ids of rank >= 1, got []");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_lookup(g, table, ids5), TD_ERR_SHAPE,
                          "embedding 'bad': ids [1,1,1,1,1,2] leave no room for the embedding axis "
                          "(rank at most 5)");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_grad(g, ct_bad, ids, 10), TD_ERR_SHAPE,
                          "embedding_grad 'bad': cotangent [2,4,4] does not match ids [2,3]: "
                          "expected float32 [2,3] + [dim]");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_grad(g, ct, ids, 0), TD_ERR_SHAPE,
                          "embedding_grad 'bad': rows must be >= 1, got 0");
    TU_ASSERT_BUILD_FAILS(g, td_embedding_grad(g, ct, fids, 10), TD_ERR_SHAPE,
                          "embedding_grad 'bad': expects int32 ids, got float32 [2,3]");
    struct td_node *y = td_embedding_lookup(g, table, ids);
    tu_assert_graph_ok(g, "lookup");
    struct td_shape want = TD_SHAPE(2, 3, 4);
    ck_assert(td_shape_equal(td_node_shape(y), &want));
    td_graph_free(g);
}
END_TEST

/* A bad id stops the run with TD_ERR_ARG and names the node, the id and
 * its first position; the next run with good ids succeeds. */
START_TEST(test_embedding_bad_id)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *table =
        td_param(g, "tok_emb", TD_SHAPE(73, 8), (struct td_init){TD_INIT_ZEROS});
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(4, 6), TD_I32);
    struct td_node *ct = td_input(g, "ct", TD_SHAPE(4, 6, 8), TD_F32);
    td_scope_push(g, "tok_emb");
    struct td_node *y = td_embedding_lookup(g, table, ids);
    td_scope_pop(g);
    td_scope_push(g, "scatter");
    struct td_node *dt = td_embedding_grad(g, ct, ids, 73);
    td_scope_pop(g);
    tu_assert_graph_ok(g, "embedding");
    int32_t id[24];
    float cd[4 * 6 * 8] = {0};
    for (int i = 0; i < 24; i++) id[i] = i;
    struct td_feed f[2] = {{ids, id}, {ct, cd}};
    for (int threads = 1; threads <= 2; threads++) {
        struct td_compile_options o = {.num_threads = threads, .parallel_cost = 1};
        struct td_plan *py = td_compile(g, &y, 1, &o), *pd = td_compile(g, &dt, 1, &o);
        ck_assert(py && pd);
        id[17] = 91;
        id[20] = -3;
        ck_assert_int_eq(td_run(py, f, 2), TD_ERR_ARG);
        ck_assert_str_eq(td_plan_error(py),
                         "run: embedding 'tok_emb': id 91 at position 17 is outside the table's "
                         "73 rows");
        ck_assert_int_eq(td_run(pd, f, 2), TD_ERR_ARG);
        ck_assert_str_eq(td_plan_error(pd),
                         "run: embedding_grad 'scatter': id 91 at position 17 is outside the "
                         "table's 73 rows");
        id[17] = 17;
        ck_assert_int_eq(td_run(py, f, 2), TD_ERR_ARG);
        ck_assert_str_eq(td_plan_error(py),
                         "run: embedding 'tok_emb': id -3 at position 20 is outside the table's "
                         "73 rows");
        id[20] = 72;
        ck_assert_int_eq(td_run(py, f, 2), TD_OK);
        ck_assert_str_eq(td_plan_error(py), "");
        ck_assert_int_eq(td_run(pd, f, 2), TD_OK);
        id[20] = 20;
        td_plan_free(py);
        td_plan_free(pd);
    }
    td_graph_free(g);
}
END_TEST

/* GPT-sized lookups and scatter-adds: the lookup copies rows exactly; the
 * scatter-add equals a float sum in position order, bit for bit, on 1 and
 * 2 threads, for widths that fill column blocks, split them unevenly and
 * fit in one. */
START_TEST(test_embedding_large)
{
    const int64_t B = 4, T = 64, V = 50, P = B * T;
    const int64_t widths[3] = {96, 40, 7};
    for (int w = 0; w < 3; w++) {
        const int64_t d = widths[w];
        struct td_graph *g = td_graph_new(1);
        struct td_node *table = td_input(g, "table", TD_SHAPE(V, d), TD_F32);
        struct td_node *ids = td_input(g, "ids", TD_SHAPE(B, T), TD_I32);
        struct td_node *ct = td_input(g, "ct", TD_SHAPE(B, T, d), TD_F32);
        struct td_node *outs[2] = {td_embedding_lookup(g, table, ids),
                                   td_embedding_grad(g, ct, ids, (int)V)};
        tu_assert_graph_ok(g, "embedding");
        float *td = malloc((size_t)(V * d) * sizeof(float));
        float *cd = malloc((size_t)(P * d) * sizeof(float));
        float *want = calloc((size_t)(V * d), sizeof(float));
        int32_t *id = malloc((size_t)P * sizeof(int32_t));
        ck_assert(td && cd && want && id);
        tu_fill_uniform(td, (size_t)(V * d), -1, 1, 5, 1);
        tu_fill_uniform(cd, (size_t)(P * d), -1, 1, 5, 2);
        /* Skewed ids: low rows repeat often, some rows never occur. */
        tu_fill_int(id, (size_t)P, (int)V, 5, 3);
        for (int64_t p = 0; p < P; p += 3) id[p] %= 5;
        struct td_feed f[3] = {{table, td}, {ids, id}, {ct, cd}};
        void *res[2];
        run_both(g, outs, 2, f, 3, res);
        const float *y = res[0], *dt = res[1];
        for (int64_t p = 0; p < P; p++)
            ck_assert_mem_eq(y + p * d, td + id[p] * d, (size_t)d * sizeof(float));
        for (int64_t p = 0; p < P; p++)
            for (int64_t j = 0; j < d; j++) want[id[p] * d + j] += cd[p * d + j];
        ck_assert_msg(memcmp(dt, want, (size_t)(V * d) * sizeof(float)) == 0,
                      "d = %lld: the scatter-add differs from a float sum in position order",
                      (long long)d);
        free(res[0]);
        free(res[1]);
        free(td);
        free(cd);
        free(want);
        free(id);
        td_graph_free(g);
    }
}
END_TEST

START_TEST(test_dropout_errors)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3), TD_F32);
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(2, 3), TD_I32);
    struct td_node *step = td_input(g, "step", TD_SHAPE(1), TD_I32);
    struct td_node *fstep = td_input(g, "fstep", TD_SHAPE(1), TD_F32);
    struct td_node *steps = td_input(g, "steps", TD_SHAPE(2), TD_I32);
    tu_assert_graph_ok(g, "inputs");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, 1.0f, step), TD_ERR_SHAPE,
                          "dropout 'bad': rate must be in [0, 1), got 1");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, -0.5f, step), TD_ERR_SHAPE,
                          "dropout 'bad': rate must be in [0, 1), got -0.5");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, NAN, step), TD_ERR_SHAPE,
                          "dropout 'bad': rate must be in [0, 1), got nan");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, 0.1f, fstep), TD_ERR_SHAPE,
                          "dropout 'bad': expects an int32 step of one element, got float32 [1]");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, 0.1f, steps), TD_ERR_SHAPE,
                          "dropout 'bad': expects an int32 step of one element, got int32 [2]");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, ids, 0.1f, step), TD_ERR_SHAPE,
                          "dropout 'bad': expects a float operand, got int32 [2,3]");
    TU_ASSERT_BUILD_FAILS(g, td_dropout(g, x, 0.1f, NULL), TD_ERR_ARG,
                          "dropout: operand 2 is NULL");
    ck_assert_ptr_eq(td_dropout(g, x, 0.0f, step), x);
    tu_assert_graph_ok(g, "rate 0");
    td_graph_free(g);
}
END_TEST

#define DROP_N 200000

/* One dropout node's output for a step, on `threads` threads. */
static void dropout_run(struct td_graph *g, struct td_node *y, struct td_node *x, const float *xd,
                        struct td_node *step, int32_t s, int threads, float *out)
{
    struct td_feed f[2] = {{x, xd}, {step, &s}};
    void *res;
    run_copies(g, &y, 1, f, 2, threads, &res);
    memcpy(out, res, DROP_N * sizeof(float));
    free(res);
}

/* Masks are pure functions of (seed, step, node): the same step gives the
 * same mask, on any thread count; other steps, nodes and seeds give
 * independent masks; about 1 - rate of the elements are kept, scaled by
 * 1 / (1 - rate); a negative step is the identity. */
START_TEST(test_dropout_masks)
{
    const float rate = 0.25f;
    struct td_graph *g = td_graph_new(7), *g2 = td_graph_new(8);
    struct td_node *x = td_input(g, "x", TD_SHAPE(DROP_N), TD_F32);
    struct td_node *step = td_input(g, "step", TD_SHAPE(1), TD_I32);
    struct td_node *y = td_dropout(g, x, rate, step), *y2 = td_dropout(g, x, rate, step);
    struct td_node *x_b = td_input(g2, "x", TD_SHAPE(DROP_N), TD_F32);
    struct td_node *step_b = td_input(g2, "step", TD_SHAPE(1), TD_I32);
    struct td_node *y_b = td_dropout(g2, x_b, rate, step_b);
    tu_assert_graph_ok(g, "dropout");
    tu_assert_graph_ok(g2, "dropout");
    ck_assert_int_eq(td_node_id(y), td_node_id(y_b));
    float *xd = malloc(DROP_N * sizeof(float)), *r[6];
    ck_assert_ptr_nonnull(xd);
    for (int k = 0; k < 6; k++) {
        r[k] = malloc(DROP_N * sizeof(float));
        ck_assert_ptr_nonnull(r[k]);
    }
    tu_fill_uniform(xd, DROP_N, 1, 2, 3, 1);
    dropout_run(g, y, x, xd, step, 5, 1, r[0]);
    dropout_run(g, y, x, xd, step, 5, 2, r[1]);
    dropout_run(g, y, x, xd, step, 6, 2, r[2]);
    dropout_run(g, y2, x, xd, step, 5, 2, r[3]);
    dropout_run(g2, y_b, x_b, xd, step_b, 5, 2, r[4]);
    dropout_run(g, y, x, xd, step, -1, 2, r[5]);
    ck_assert_mem_eq(r[0], r[1], DROP_N * sizeof(float));
    ck_assert_mem_eq(r[5], xd, DROP_N * sizeof(float));

    /* The mask recomputed here from its definition. */
    uint64_t stream = TD_RNG_STREAM_DROPOUT + ((uint64_t)td_node_id(y) << 40) + 5;
    long kept = 0;
    for (long i = 0; i < DROP_N; i++) {
        int keep = td_rng_uniform(7, stream, (uint64_t)i) >= rate;
        kept += keep;
        if (keep)
            tu_assert_rel("kept element", r[0][i], xd[i] / (1.0 - rate), 1e-6, 0);
        else
            ck_assert_msg(r[0][i] == 0.0f, "element %ld: dropped but %g", i, r[0][i]);
    }
    double frac = (double)kept / DROP_N;
    ck_assert_msg(fabs(frac - (1 - rate)) < 0.01, "kept %.4f of the elements, expected %.2f", frac,
                  1 - rate);
    /* Independent masks agree on a fraction r^2 + (1-r)^2 = 0.625. */
    const char *what[3] = {"another step", "another node", "another seed"};
    for (int k = 2; k <= 4; k++) {
        long same = 0;
        for (long i = 0; i < DROP_N; i++) same += (r[0][i] == 0) == (r[k][i] == 0);
        double agree = (double)same / DROP_N;
        ck_assert_msg(fabs(agree - 0.625) < 0.01, "%s: masks agree on %.4f, expected 0.625",
                      what[k - 2], agree);
    }
    for (int k = 0; k < 6; k++) free(r[k]);
    free(xd);
    td_graph_free(g);
    td_graph_free(g2);
}
END_TEST

/* The rules' nodes reuse the forward's mask: with L = sum(dropout(x)^2),
 * dL/dx = 2 s^2 m x and H v = 2 s^2 m v (forward over reverse), and the JVP
 * of dropout is s m t, where m is the forward's mask and s = 1 / (1 - r). */
START_TEST(test_dropout_rules_share_mask)
{
    const int n = 4096;
    const float rate = 0.5f;
    const double s2 = 1.0 / ((1.0 - rate) * (1.0 - rate));
    struct td_graph *g = td_graph_new(3);
    struct td_node *x = td_input(g, "x", TD_SHAPE(n), TD_F32);
    struct td_node *t = td_input(g, "t", TD_SHAPE(n), TD_F32);
    struct td_node *step = td_input(g, "step", TD_SHAPE(1), TD_I32);
    struct td_node *y = td_dropout(g, x, rate, step);
    struct td_node *loss = td_sum_all(g, td_square(g, y)), *grad, *hv, *yt;
    ck_assert_int_eq(td_vjp(g, loss, NULL, &x, 1, &grad), TD_OK);
    ck_assert_int_eq(td_jvp(g, &x, &t, 1, &grad, 1, &hv), TD_OK);
    ck_assert_int_eq(td_jvp(g, &x, &t, 1, &y, 1, &yt), TD_OK);
    tu_assert_graph_ok(g, "derivatives");
    float *xd = malloc((size_t)n * sizeof(float)), *tdat = malloc((size_t)n * sizeof(float));
    ck_assert(xd && tdat);
    tu_fill_uniform(xd, (size_t)n, 0.5f, 1.5f, 4, 1);
    tu_fill_uniform(tdat, (size_t)n, 0.5f, 1.5f, 4, 2);
    int32_t sd = 11;
    struct td_feed f[3] = {{x, xd}, {t, tdat}, {step, &sd}};
    struct td_node *outs[4] = {y, grad, hv, yt};
    void *res[4];
    run_both(g, outs, 4, f, 3, res);
    const float *yo = res[0], *go = res[1], *ho = res[2], *to = res[3];
    int dropped = 0;
    for (int i = 0; i < n; i++) {
        int keep = yo[i] != 0.0f;
        dropped += !keep;
        tu_assert_rel("gradient", go[i], keep ? 2 * s2 * xd[i] : 0.0, 1e-6, 1e-30);
        tu_assert_rel("H v", ho[i], keep ? 2 * s2 * tdat[i] : 0.0, 1e-6, 1e-30);
        tu_assert_rel("JVP", to[i], keep ? tdat[i] / (1.0 - rate) : 0.0, 1e-6, 1e-30);
    }
    ck_assert_int_gt(dropped, n / 3);
    for (int k = 0; k < 4; k++) free(res[k]);
    free(xd);
    free(tdat);
    td_graph_free(g);
}
END_TEST

/* ---- a GPT block from the new ops, differentiated twice ----
 * ids [B, T + 1] sliced into inputs and targets; token embedding plus a
 * slice of a position table; q, k, v from one linear and td_split; heads
 * by reshape and transpose (0,2,1,3); causal attention with broadcast
 * matmuls and dropout on the probabilities (a fixed step: a fixed smooth
 * function); the heads merged back, a residual joined by concat, and
 * logits tied to the token table. */
enum { GB = 2, GT = 5, GD = 8, GH = 2, GV = 11, GTMAX = 7 };

struct gpt {
    struct td_graph *g;
    struct td_params *p;
    struct td_node *ids, *step, *loss;
    struct td_node *outs[1 + 2 * 16];
    struct td_binding bind[2 * 16];
    int np;
    int32_t id[GB * (GT + 1)], step_val;
    struct td_feed feeds[2];
};

static struct td_node *heads(struct td_graph *g, struct td_node *x)
{
    struct td_node *r = td_reshape(g, x, TD_SHAPE(GB, GT, GH, GD / GH));
    return td_transpose(g, r, (const int[]){0, 2, 1, 3});
}

static void gpt_build(struct gpt *m)
{
    struct td_graph *g = m->g = td_graph_new(21);
    struct td_init nrm = {TD_INIT_NORMAL, 0.0f, 0.5f};
    struct td_node *tok = td_param(g, "tok_emb", TD_SHAPE(GV, GD), nrm);
    struct td_node *pos = td_param(g, "pos_emb", TD_SHAPE(GTMAX, GD), nrm);
    struct td_node *wqkv = td_param(g, "attn/w_qkv", TD_SHAPE(3 * GD, GD), nrm);
    struct td_node *bqkv = td_param(g, "attn/b_qkv", TD_SHAPE(3 * GD), nrm);
    struct td_node *wmix = td_param(g, "mix/w", TD_SHAPE(GD, 2 * GD), nrm);
    struct td_node *bmix = td_param(g, "mix/b", TD_SHAPE(GD), nrm);
    m->ids = td_input(g, "ids", TD_SHAPE(GB, GT + 1), TD_I32);
    m->step = td_input(g, "step", TD_SHAPE(1), TD_I32);
    struct td_node *in = td_slice(g, m->ids, 1, 0, GT);
    struct td_node *tgt = td_reshape(g, td_slice(g, m->ids, 1, 1, GT), TD_SHAPE(GB * GT));
    struct td_node *x = td_add(g, td_embedding_lookup(g, tok, in), td_slice(g, pos, 0, 0, GT));
    struct td_node *qkv[3];
    td_split(g, td_linear(g, x, wqkv, bqkv), 2, 3, qkv);
    float causal[GT * GT];
    for (int i = 0; i < GT * GT; i++) causal[i] = i % GT > i / GT ? -1e4f : 0.0f;
    struct td_node *att = td_matmul(g, heads(g, qkv[0]), heads(g, qkv[1]), 0, 1);
    att = td_add(g, td_scale(g, att, 0.5f), td_constant(g, TD_SHAPE(GT, GT), causal));
    struct td_node *pr = td_dropout(g, td_softmax(g, att), 0.2f, m->step);
    struct td_node *o =
        td_transpose(g, td_matmul(g, pr, heads(g, qkv[2]), 0, 0), (const int[]){0, 2, 1, 3});
    struct td_node *h = td_add(g, x, td_reshape(g, o, TD_SHAPE(GB, GT, GD)));
    struct td_node *y =
        td_tanh(g, td_linear(g, td_concat(g, (struct td_node *[]){h, x}, 2, 2), wmix, bmix));
    struct td_node *logits = td_reshape(g, td_matmul(g, y, tok, 0, 1), TD_SHAPE(GB * GT, GV));
    m->loss = td_softmax_cross_entropy(g, logits, tgt);
    tu_assert_graph_ok(g, "gpt block");
    m->p = td_graph_params(g);
    m->np = m->p->count;
    struct td_node *grads[16], *hvps[16];
    ck_assert_int_eq(td_grad_hvp(g, m->loss, grads, hvps, NULL), TD_OK);
    m->outs[0] = m->loss;
    for (int i = 0; i < m->np; i++) {
        m->outs[1 + i] = grads[i];
        m->outs[1 + m->np + i] = hvps[i];
        m->bind[i] = (struct td_binding){grads[i], m->p->grad + m->p->info[i].offset};
        m->bind[m->np + i] = (struct td_binding){hvps[i], m->p->tangent + m->p->info[i].offset};
    }
    tu_fill_int(m->id, GB * (GT + 1), GV, 21, 1);
    m->step_val = 3;
    m->feeds[0] = (struct td_feed){m->ids, m->id};
    m->feeds[1] = (struct td_feed){m->step, &m->step_val};
}

static struct td_plan *gpt_compile(struct gpt *m, int threads)
{
    struct td_compile_options o = {
        .num_threads = threads, .parallel_cost = 1, .bindings = m->bind, .n_bindings = 2 * m->np};
    struct td_plan *p = td_compile(m->g, m->outs, 1 + 2 * m->np, &o);
    ck_assert_msg(p != NULL, "compile: %s", td_graph_error(m->g));
    return p;
}

/* Loss at theta0 + s d, the gradient into grad and H v into hv (NULL: not
 * kept), v taken from the store's dir block. */
static double gpt_eval(struct gpt *m, struct td_plan *p, const float *theta0, const float *d,
                       double s, float *grad, float *hv)
{
    for (size_t k = 0; k < m->p->total; k++) m->p->value[k] = (float)(theta0[k] + s * d[k]);
    ck_assert_msg(td_run(p, m->feeds, 2) == TD_OK, "run: %s", td_plan_error(p));
    if (grad) memcpy(grad, m->p->grad, m->p->total * sizeof(float));
    if (hv) memcpy(hv, m->p->tangent, m->p->total * sizeof(float));
    return td_plan_output(p, 0)[0];
}

/* Gradient vs central differences of the loss, H v vs central differences
 * of the gradient, <u, H v> = <v, H u>, and the same bits on 1 and 2
 * threads. */
START_TEST(test_gpt_block_second_order)
{
    struct gpt m;
    memset(&m, 0, sizeof m);
    gpt_build(&m);
    size_t n = m.p->total;
    float *theta0 = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *u = malloc(n * sizeof(float)), *g0 = malloc(n * sizeof(float));
    float *hv = malloc(n * sizeof(float)), *hu = malloc(n * sizeof(float));
    float *gp = malloc(n * sizeof(float)), *gm = malloc(n * sizeof(float));
    float *g1 = malloc(n * sizeof(float)), *hv1 = malloc(n * sizeof(float));
    ck_assert(theta0 && v && u && g0 && hv && hu && gp && gm && g1 && hv1);
    memcpy(theta0, m.p->value, n * sizeof(float));
    tu_fill_normal(v, n, 22, 1);
    tu_fill_normal(u, n, 22, 2);
    struct td_plan *p1 = gpt_compile(&m, 1), *p2 = gpt_compile(&m, 2);

    memcpy(m.p->dir, v, n * sizeof(float));
    double l0 = gpt_eval(&m, p2, theta0, v, 0, g0, hv);
    double l1 = gpt_eval(&m, p1, theta0, v, 0, g1, hv1);
    ck_assert_msg(l0 == l1 && memcmp(g0, g1, n * sizeof(float)) == 0 &&
                      memcmp(hv, hv1, n * sizeof(float)) == 0,
                  "loss, gradient or H v differ between 1 and 2 threads");
    ck_assert(isfinite(l0) && l0 > 0);

    /* The truncation error of central differences falls as eps^2 (0.5% of
     * |H v| at eps 1e-2 here); at 2.5e-3 it is 0.03%. */
    const double eps = 2.5e-3;
    double lp = gpt_eval(&m, p2, theta0, v, eps, gp, NULL);
    double lm = gpt_eval(&m, p2, theta0, v, -eps, gm, NULL);
    tu_assert_rel("g . v vs finite differences of the loss", tu_dot(g0, v, n),
                  (lp - lm) / (2 * eps), 2e-3, 1e-3);
    double *fd = malloc(n * sizeof(double));
    ck_assert_ptr_nonnull(fd);
    for (size_t k = 0; k < n; k++) fd[k] = ((double)gp[k] - gm[k]) / (2 * eps);
    double err = tu_norm_diff_d(hv, fd, n) / fmax(tu_norm(hv, n), 1e-6);
    ck_assert_msg(err < 2e-3, "H v vs finite differences of the gradient: relative error %.3g",
                  err);

    memcpy(m.p->dir, u, n * sizeof(float));
    gpt_eval(&m, p2, theta0, v, 0, NULL, hu);
    tu_assert_rel("<u, H v> vs <v, H u>", tu_dot(u, hv, n), tu_dot(v, hu, n), 1e-4, 1e-3);

    td_plan_free(p1);
    td_plan_free(p2);
    free(fd);
    free(theta0), free(v), free(u), free(g0), free(hv), free(hu);
    free(gp), free(gm), free(g1), free(hv1);
    td_graph_free(m.g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("seq");
    TCase *a = tcase_create("axis");
    tcase_add_test(a, test_axis_errors);
    tcase_add_test(a, test_axis_large);
    tcase_add_test(a, test_axis_ids);
    tcase_add_test(a, test_split);
    tcase_add_test(a, test_concat_partial_tangents);
    suite_add_tcase(s, a);
    TCase *e = tcase_create("embedding");
    tcase_add_test(e, test_embedding_errors);
    tcase_add_test(e, test_embedding_bad_id);
    tcase_add_test(e, test_embedding_large);
    suite_add_tcase(s, e);
    TCase *d = tcase_create("dropout");
    tcase_add_test(d, test_dropout_errors);
    tcase_add_test(d, test_dropout_masks);
    tcase_add_test(d, test_dropout_rules_share_mask);
    suite_add_tcase(s, d);
    TCase *c = tcase_create("composite");
    tcase_add_test(c, test_gpt_block_second_order);
    suite_add_tcase(s, c);
    TCase *m = tcase_create("matmul");
    tcase_add_test(m, test_matmul_broadcast_errors);
    suite_add_tcase(s, m);
    return tu_run_suite(s);
}
