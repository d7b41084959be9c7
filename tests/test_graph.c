/* Builder and planner behaviour: shapes, the exact messages of bad builds,
 * sticky errors, parameter names, and the memory plan of a real gradient +
 * Hessian-vector-product plan (liveness, reuse, determinism, no allocation
 * while running, NaN reports, missing feeds). */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "graph/autodiff.h"
#include "graph/memory.h"
#include "graph/node.h"
#include "ops/layers.h"
#include "ops/op.h"
#include "ops/ops.h"
#include "tests/testutil.h"

/* Asserts g holds status s and exactly the message `want`. */
static void assert_error(struct td_graph *g, enum td_status s, const char *want)
{
    ck_assert_msg(td_graph_status(g) == s, "status %s, expected %s (message \"%s\")",
                  td_status_name(td_graph_status(g)), td_status_name(s), td_graph_error(g));
    ck_assert_str_eq(td_graph_error(g), want);
}

static int shape_is(const struct td_shape *s, struct td_shape want)
{
    return td_shape_equal(s, &want);
}

START_TEST(test_shape_macros)
{
    struct td_shape s = TD_SHAPE(128, 784);
    ck_assert_int_eq(s.rank, 2);
    ck_assert_int_eq(s.dim[0], 128);
    ck_assert_int_eq(s.dim[1], 784);
    ck_assert_int_eq(td_shape_numel(&s), 128 * 784);
    struct td_shape scalar = TD_SHAPE();
    ck_assert_int_eq(scalar.rank, 0);
    ck_assert_int_eq(td_shape_numel(&scalar), 1);
    struct td_shape s6 = TD_SHAPE(1, 2, 3, 4, 5, 6);
    ck_assert_int_eq(s6.rank, 6);
    ck_assert_int_eq(td_shape_numel(&s6), 720);

    char buf[64];
    ck_assert_str_eq(td_shape_format(&s, buf, sizeof buf), "[128,784]");
    ck_assert_str_eq(td_shape_format(&scalar, buf, sizeof buf), "[]");
    ck_assert_str_eq(td_shape_format(&s6, buf, sizeof buf), "[1,2,3,4,5,6]");
    /* Truncation keeps the terminating NUL inside the buffer. */
    memset(buf, 'x', sizeof buf);
    td_shape_format(&s, buf, 5);
    ck_assert_int_eq((int)strlen(buf), 4);
    ck_assert(strncmp(buf, "[128", 4) == 0);

    ck_assert(shape_is(&s, TD_SHAPE(128, 784)));
    ck_assert(!shape_is(&s, TD_SHAPE(784, 128)));
    ck_assert(!shape_is(&s, TD_SHAPE(128, 784, 1)));
    ck_assert(td_shape_valid(&s));
    ck_assert(td_shape_valid(&scalar));
    struct td_shape s0 = TD_SHAPE(3, 0);
    ck_assert(!td_shape_valid(&s0));

    int64_t st[TD_MAX_DIMS];
    struct td_shape s3 = TD_SHAPE(2, 3, 4);
    td_shape_strides(&s3, st);
    ck_assert_int_eq(st[0], 12);
    ck_assert_int_eq(st[1], 4);
    ck_assert_int_eq(st[2], 1);
    ck_assert_int_eq(td_dtype_size(TD_F32), 4);
    ck_assert_int_eq(td_dtype_size(TD_I32), 4);
    ck_assert_str_eq(td_status_name(TD_ERR_SHAPE), "TD_ERR_SHAPE");
    ck_assert_str_eq(td_status_name(TD_OK), "TD_OK");
}
END_TEST

START_TEST(test_matmul_message)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *h = td_input(g, "h", TD_SHAPE(128, 64), TD_F32);
    struct td_node *w = td_input(g, "w", TD_SHAPE(128, 10), TD_F32);
    ck_assert_int_eq(td_scope_push(g, "fc2"), TD_OK);
    struct td_node *y = td_matmul(g, h, w, 0, 0);
    td_scope_pop(g);
    ck_assert_ptr_null(y);
    assert_error(g, TD_ERR_SHAPE, "matmul 'fc2': inner dimensions differ: [128,64] x [128,10]");
    /* The transposed product of the same operands is fine once cleared. */
    td_graph_clear_error(g);
    ck_assert_int_eq(td_graph_status(g), TD_OK);
    ck_assert_str_eq(td_graph_error(g), "");
    y = td_matmul(g, h, w, 1, 0);
    ck_assert_ptr_nonnull(y);
    ck_assert(shape_is(td_node_shape(y), TD_SHAPE(64, 10)));
    td_graph_free(g);
}
END_TEST

START_TEST(test_shape_messages)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3), TD_F32);
    struct td_node *v = td_input(g, "v", TD_SHAPE(4), TD_F32);

    /* Unnamed nodes are labelled by id: x is #0, v is #1, so the reshape is #2. */
    ck_assert_ptr_null(td_reshape(g, x, TD_SHAPE(4, 2)));
    assert_error(g, TD_ERR_SHAPE,
                 "reshape #2: cannot reshape [2,3] (6 elements) to [4,2] (8 elements)");
    td_graph_clear_error(g);

    td_scope_push(g, "sum");
    ck_assert_ptr_null(td_reduce_sum(g, x, 1u << 2, 0));
    td_scope_pop(g);
    assert_error(g, TD_ERR_SHAPE, "reduce_sum 'sum': axis 2 out of range for [2,3]");
    td_graph_clear_error(g);

    td_scope_push(g, "t");
    ck_assert_ptr_null(td_transpose(g, x, (const int[]){0, 0}));
    td_scope_pop(g);
    assert_error(g, TD_ERR_SHAPE,
                 "transpose 't': perm entry 1 = 0 is not a permutation of the "
                 "axes of [2,3]");
    td_graph_clear_error(g);

    td_scope_push(g, "bc");
    ck_assert_ptr_null(td_add(g, x, v));
    td_scope_pop(g);
    assert_error(g, TD_ERR_SHAPE, "add 'bc': cannot broadcast [2,3] with [4]");
    td_graph_clear_error(g);

    td_scope_push(g, "to");
    ck_assert_ptr_null(td_broadcast_to(g, x, TD_SHAPE(4, 3)));
    td_scope_pop(g);
    assert_error(g, TD_ERR_SHAPE, "broadcast_to 'to': cannot broadcast [2,3] to [4,3]");
    td_graph_clear_error(g);

    /* Broadcasting that is allowed gives the NumPy shape. */
    struct td_node *col = td_input(g, "col", TD_SHAPE(2, 1), TD_F32);
    struct td_node *row = td_input(g, "row", TD_SHAPE(3), TD_F32);
    struct td_node *s = td_mul(g, col, row);
    ck_assert_ptr_nonnull(s);
    ck_assert(shape_is(td_node_shape(s), TD_SHAPE(2, 3)));
    ck_assert_int_eq(td_graph_status(g), TD_OK);
    td_graph_free(g);
}
END_TEST

/* More bad builds, each inside a scope named like the case so that the
 * node is labelled by it. Leaves: x f32 [2,3], lab i32 [2], v f32 [4],
 * s f32 [], a3 f32 [2,3,4], b3 f32 [3,4,5], h f32 [128,64], w f32 [128,10]. */
enum { L_X, L_LAB, L_V, L_S, L_A3, L_B3, L_H, L_W, N_LEAVES };

struct bad_build {
    const char *scope;
    struct td_node *(*build)(struct td_graph *g, struct td_node *const *l);
    enum td_status status;
    const char *message;
};

static struct td_node *bb_add_int(struct td_graph *g, struct td_node *const *l)
{
    return td_add(g, l[L_X], l[L_LAB]);
}
static struct td_node *bb_exp_int(struct td_graph *g, struct td_node *const *l)
{
    return td_exp(g, l[L_LAB]);
}
static struct td_node *bb_matmul_rank(struct td_graph *g, struct td_node *const *l)
{
    return td_matmul(g, l[L_V], l[L_X], 0, 0);
}
static struct td_node *bb_matmul_batch(struct td_graph *g, struct td_node *const *l)
{
    return td_matmul(g, l[L_A3], l[L_B3], 0, 0);
}
static struct td_node *bb_matmul_tb(struct td_graph *g, struct td_node *const *l)
{
    return td_matmul(g, l[L_H], l[L_W], 0, 1);
}
static struct td_node *bb_sce_labels(struct td_graph *g, struct td_node *const *l)
{
    return td_softmax_cross_entropy(g, l[L_X], td_input(g, "lab3", TD_SHAPE(3), TD_I32));
}
static struct td_node *bb_sce_rank(struct td_graph *g, struct td_node *const *l)
{
    return td_softmax_cross_entropy(g, l[L_A3], l[L_LAB]);
}
static struct td_node *bb_one_hot_float(struct td_graph *g, struct td_node *const *l)
{
    return td_one_hot(g, l[L_X], 3);
}
static struct td_node *bb_one_hot_classes(struct td_graph *g, struct td_node *const *l)
{
    return td_one_hot(g, l[L_LAB], 0);
}
static struct td_node *bb_softmax_scalar(struct td_graph *g, struct td_node *const *l)
{
    return td_log_softmax(g, l[L_S]);
}
static struct td_node *bb_reduce_axis(struct td_graph *g, struct td_node *const *l)
{
    return td_reduce_mean(g, l[L_A3], 1u << 3, 1);
}
static struct td_node *bb_dense_units(struct td_graph *g, struct td_node *const *l)
{
    return td_dense(g, l[L_X], 0, "fc");
}
static struct td_node *bb_input_shape(struct td_graph *g, struct td_node *const *l)
{
    (void)l;
    return td_input(g, "bad", TD_SHAPE(3, 0), TD_F32);
}
static struct td_node *bb_jvp_tangent(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *y = td_tanh(g, l[L_X]), *t = l[L_V], *out;
    return td_jvp(g, &l[L_X], &t, 1, &y, 1, &out) == TD_OK ? out : NULL;
}

static struct td_node *bb_matmul_add_c(struct td_graph *g, struct td_node *const *l)
{
    return td_matmul_add(g, l[L_H], l[L_W], 1, 0, l[L_X]);
}
static struct td_node *bb_matmul_add_inner(struct td_graph *g, struct td_node *const *l)
{
    return td_matmul_add(g, l[L_H], l[L_W], 0, 0, l[L_X]);
}

static struct td_node *bb_attn_scores_heads(struct td_graph *g, struct td_node *const *l)
{
    return td_attn_scores(g, l[L_A3], l[L_A3], 3);
}
static struct td_node *bb_attn_mix_time(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *p = td_reshape(g, l[L_A3], TD_SHAPE(2, 1, 3, 4));
    return td_attn_mix(g, p, l[L_A3], 1, 0);
}

static const struct bad_build bad_builds[] = {
    {"d", bb_add_int, TD_ERR_SHAPE,
     "add 'd': expects float operands, got float32 [2,3] and int32 [2]"},
    {"e", bb_exp_int, TD_ERR_SHAPE, "exp 'e': expects a float operand, got int32 [2]"},
    {"mr", bb_matmul_rank, TD_ERR_SHAPE, "matmul 'mr': operands need rank >= 2: [4] x [2,3]"},
    {"mb", bb_matmul_batch, TD_ERR_SHAPE,
     "matmul 'mb': batch dimensions differ: [2,3,4] x [3,4,5]"},
    {"fc2", bb_matmul_tb, TD_ERR_SHAPE,
     "matmul 'fc2': inner dimensions differ: [128,64] x [128,10] (transpose_b)"},
    {"ce", bb_sce_labels, TD_ERR_SHAPE,
     "softmax_cross_entropy 'ce': labels [3] do not match logits [2,3]: expected [2]"},
    {"ce", bb_sce_rank, TD_ERR_SHAPE,
     "softmax_cross_entropy 'ce': expects logits of rank 2 [batch, classes], got [2,3,4]"},
    {"oh", bb_one_hot_float, TD_ERR_SHAPE, "one_hot 'oh': expects int32 labels, got float [2,3]"},
    {"oh", bb_one_hot_classes, TD_ERR_SHAPE, "one_hot 'oh': classes must be >= 1, got 0"},
    {"ls", bb_softmax_scalar, TD_ERR_SHAPE,
     "log_softmax 'ls': needs an operand of rank >= 1, got []"},
    {"rm", bb_reduce_axis, TD_ERR_SHAPE, "reduce_mean 'rm': axis 3 out of range for [2,3,4]"},
    {"net", bb_dense_units, TD_ERR_ARG, "dense 'fc': units must be >= 1, got 0"},
    {"in", bb_input_shape, TD_ERR_SHAPE,
     "input 'in/bad': invalid shape [3,0] (rank 2, dims must be >= 1)"},
    {"j", bb_jvp_tangent, TD_ERR_SHAPE, "jvp: tangent [4] does not match its node [2,3]"},
    {"ma", bb_matmul_add_c, TD_ERR_SHAPE,
     "matmul_add 'ma': addend [2,3] does not match the product [64,10]"},
    {"ma", bb_matmul_add_inner, TD_ERR_SHAPE,
     "matmul_add 'ma': inner dimensions differ: [128,64] x [128,10]"},
    {"at", bb_attn_scores_heads, TD_ERR_SHAPE,
     "attn_scores 'at': 3 heads do not divide the 4 features"},
    {"at", bb_attn_mix_time, TD_ERR_SHAPE,
     "attn_mix 'at': p [2,1,3,4] and v [2,3,4] differ in batch or in the summed time axis"},
};

START_TEST(test_bad_build_table)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *l[N_LEAVES];
    l[L_X] = td_input(g, "x", TD_SHAPE(2, 3), TD_F32);
    l[L_LAB] = td_input(g, "lab", TD_SHAPE(2), TD_I32);
    l[L_V] = td_input(g, "v", TD_SHAPE(4), TD_F32);
    l[L_S] = td_input(g, "s", TD_SHAPE(), TD_F32);
    l[L_A3] = td_input(g, "a3", TD_SHAPE(2, 3, 4), TD_F32);
    l[L_B3] = td_input(g, "b3", TD_SHAPE(3, 4, 5), TD_F32);
    l[L_H] = td_input(g, "h", TD_SHAPE(128, 64), TD_F32);
    l[L_W] = td_input(g, "w", TD_SHAPE(128, 10), TD_F32);
    tu_assert_graph_ok(g, "leaves");
    for (size_t i = 0; i < sizeof bad_builds / sizeof bad_builds[0]; i++) {
        const struct bad_build *b = &bad_builds[i];
        td_scope_push(g, b->scope);
        struct td_node *n = b->build(g, l);
        td_scope_pop(g);
        tu_assert_build_fails(g, n, b->status, b->message);
    }
    td_graph_free(g);
}
END_TEST

START_TEST(test_sticky_and_null)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3), TD_F32);
    td_scope_push(g, "first");
    struct td_node *bad = td_reshape(g, x, TD_SHAPE(5));
    td_scope_pop(g);
    ck_assert_ptr_null(bad);
    const char *first = "reshape 'first': cannot reshape [2,3] (6 elements) to [5] (5 elements)";
    assert_error(g, TD_ERR_SHAPE, first);
    int nodes = td_graph_num_nodes(g);

    /* The NULL flows through later builders without a new message. */
    struct td_node *y = td_relu(g, bad);
    y = td_add(g, y, x);
    y = td_matmul(g, x, y, 0, 0);
    y = td_softmax(g, td_sum_all(g, y));
    ck_assert_ptr_null(y);
    ck_assert_ptr_null(td_dense(g, bad, 4, "fc"));
    assert_error(g, TD_ERR_SHAPE, first);

    /* A second, different mistake does not replace the first message. */
    ck_assert_ptr_null(td_matmul(g, x, x, 0, 0));
    ck_assert_ptr_null(td_reduce_mean(g, x, 1u << 5, 0));
    assert_error(g, TD_ERR_SHAPE, first);
    ck_assert_int_eq(td_graph_num_nodes(g), nodes);
    ck_assert_ptr_null(td_compile(g, &x, 1, NULL));
    assert_error(g, TD_ERR_SHAPE, first);
    td_graph_free(g);
}
END_TEST

START_TEST(test_other_graph)
{
    struct td_graph *g = td_graph_new(1), *h = td_graph_new(2);
    struct td_node *a = td_input(g, "a", TD_SHAPE(3), TD_F32);
    struct td_node *b = td_input(h, "b", TD_SHAPE(3), TD_F32);
    ck_assert_ptr_null(td_add(g, a, b));
    assert_error(g, TD_ERR_ARG, "add: operand 2 belongs to another graph");
    ck_assert_int_eq(td_graph_status(h), TD_OK);
    td_graph_clear_error(g);
    struct td_node *y = td_sum_all(g, td_square(g, a)), *gy;
    ck_assert_int_eq(td_vjp(g, y, NULL, &b, 1, &gy), TD_ERR_ARG);
    ck_assert_int_eq(td_graph_status(g), TD_ERR_ARG);
    ck_assert_ptr_null(td_compile(h, &a, 1, NULL));
    ck_assert_int_eq(td_graph_status(h), TD_ERR_ARG);
    td_graph_free(g);
    td_graph_free(h);
}
END_TEST

START_TEST(test_vjp_needs_seed)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3), TD_F32);
    struct td_node *y = td_tanh(g, x), *ct = NULL;
    ck_assert_int_eq(td_vjp(g, y, NULL, &x, 1, &ct), TD_ERR_SHAPE);
    assert_error(g, TD_ERR_SHAPE, "vjp: output [2,3] is not a scalar; give a seed");
    td_graph_clear_error(g);
    struct td_node *seed = td_input(g, "seed", TD_SHAPE(3, 2), TD_F32);
    ck_assert_int_eq(td_vjp(g, y, seed, &x, 1, &ct), TD_ERR_SHAPE);
    assert_error(g, TD_ERR_SHAPE, "vjp: seed [3,2] does not match output [2,3]");
    td_graph_clear_error(g);
    /* An integer input gets a zero cotangent, not an error. */
    struct td_node *lab = td_input(g, "lab", TD_SHAPE(2), TD_I32);
    struct td_node *loss = td_softmax_cross_entropy(g, y, lab), *cts[2];
    struct td_node *wrt[2] = {x, lab};
    ck_assert_int_eq(td_vjp(g, loss, NULL, wrt, 2, cts), TD_OK);
    ck_assert_ptr_nonnull(cts[0]);
    ck_assert(td_shape_equal(td_node_shape(cts[0]), td_node_shape(x)));
    ck_assert_ptr_nonnull(cts[1]);
    ck_assert_str_eq(td_node_op_name(cts[1]), "const");
    td_graph_free(g);
}
END_TEST

/* The parameter store's blocks stay 64-byte aligned as parameters are
 * added (the optimizers split them at 64-byte boundaries), and keep their
 * values. */
START_TEST(test_store_aligned)
{
    struct td_graph *g = td_graph_new(5);
    struct td_params *p = td_graph_params(g);
    float first = 0;
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        ck_assert_ptr_nonnull(
            td_param(g, name, TD_SHAPE(3 + i, 7), (struct td_init){TD_INIT_NORMAL, 0, 1.0f}));
        if (i == 0) first = p->value[5];
        ck_assert_msg((uintptr_t)p->value % 64 == 0 && (uintptr_t)p->grad % 64 == 0 &&
                          (uintptr_t)p->dir % 64 == 0,
                      "a block is not 64-byte aligned after %d parameters", i + 1);
        ck_assert(p->tangent == p->grad + p->total);
        ck_assert_float_eq(p->value[5], first);
    }
    ck_assert_float_eq(p->tangent[p->total], 0.0f);
    td_graph_free(g);
}
END_TEST

/* Float blocks of successive slots start 1 KiB apart modulo 4 KiB past
 * their 64-byte alignment (so loops over several never see their accesses
 * 4 KiB apart), and growing a block keeps its values and zeroes the rest. */
START_TEST(test_float_block_slots)
{
    for (int slot = 0; slot < 6; slot++) {
        void *raw = NULL;
        float *at = NULL;
        size_t had = 0;
        for (size_t n = 10; n < 400000; n = n * 7 + 3) {
            ck_assert(td_float_block_grow(&raw, &at, had, n, slot));
            size_t off = (size_t)((char *)at - (char *)raw);
            ck_assert_msg((uintptr_t)at % 64 == 0, "slot %d, %zu floats: not 64-byte aligned", slot,
                          n);
            ck_assert_msg(off / 64 * 64 == (size_t)(slot % 4) * 1024,
                          "slot %d, %zu floats: %zu bytes in", slot, n, off);
            for (size_t i = 0; i < had; i++) ck_assert_float_eq(at[i], (float)i);
            for (size_t i = had; i < n; i++) {
                ck_assert_float_eq(at[i], 0.0f);
                at[i] = (float)i;
            }
            had = n;
        }
        free(raw);
    }
}
END_TEST

START_TEST(test_param_names)
{
    struct td_graph *g = td_graph_new(5);
    struct td_init z = {TD_INIT_ZEROS, 0, 0};
    td_scope_push(g, "fc1");
    struct td_node *w = td_param(g, "weight", TD_SHAPE(4, 3), z);
    td_scope_pop(g);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(td_node_name(w), "fc1/weight");
    ck_assert_ptr_nonnull(td_param(g, "fc1/bias", TD_SHAPE(4), z));
    struct td_params *p = td_graph_params(g);
    ck_assert_int_eq(p->count, 2);
    ck_assert_int_eq(p->total, 16);
    ck_assert_int_eq(td_params_find(p, "fc1/bias"), 1);
    ck_assert_int_eq(p->info[1].offset, 12);
    ck_assert_int_eq(td_params_find(p, "bias"), -1);

    ck_assert_ptr_null(td_param(g, "fc1/weight", TD_SHAPE(2), z));
    assert_error(g, TD_ERR_ARG, "param 'fc1/weight': name already used");
    td_graph_clear_error(g);
    td_scope_push(g, "fc1");
    ck_assert_ptr_null(td_param(g, "bias", TD_SHAPE(4), z));
    td_scope_pop(g);
    assert_error(g, TD_ERR_ARG, "param 'fc1/bias': name already used");
    td_graph_clear_error(g);
    ck_assert_int_eq(p->count, 2);

    /* td_dense creates name/weight [units, in] and name/bias [units]. */
    struct td_node *x = td_input(g, "x", TD_SHAPE(5, 3), TD_F32);
    struct td_node *y = td_dense(g, x, 7, "fc2");
    ck_assert_ptr_nonnull(y);
    ck_assert(shape_is(td_node_shape(y), TD_SHAPE(5, 7)));
    int iw = td_params_find(p, "fc2/weight"), ib = td_params_find(p, "fc2/bias");
    ck_assert_int_ge(iw, 0);
    ck_assert_int_ge(ib, 0);
    ck_assert(shape_is(&p->info[iw].shape, TD_SHAPE(7, 3)));
    ck_assert(shape_is(&p->info[ib].shape, TD_SHAPE(7)));
    /* PyTorch's nn.Linear default: U(+-1/sqrt(in)), not all zero. */
    float bound = 1.0f / sqrtf(3.0f), maxabs = 0;
    for (size_t k = 0; k < p->info[iw].numel; k++) {
        float a = fabsf(p->value[p->info[iw].offset + k]);
        ck_assert_float_le(a, bound);
        if (a > maxabs) maxabs = a;
    }
    ck_assert_float_gt(maxabs, 0.3f * bound);

    /* No parameter once a plan exists. */
    struct td_plan *plan = td_compile(g, &y, 1, NULL);
    ck_assert_ptr_nonnull(plan);
    ck_assert_ptr_null(td_param(g, "late", TD_SHAPE(2), z));
    ck_assert_int_eq(td_graph_status(g), TD_ERR_STATE);
    td_plan_free(plan);
    td_graph_free(g);
}
END_TEST

/* ---- the planner, on the seed MLP's gradient + HVP plan ---- */

struct mlp_plan {
    struct td_graph *g;
    struct td_node *x, *y, *loss;
    struct td_node *outs[1 + 2 * 6];
    int n_out;
    float *xd;
    int32_t *yd;
    struct td_feed feeds[2];
};

/* The seed MLP at batch B with its gradient and HVP. */
static void mlp_build_batch(struct mlp_plan *m, int B)
{
    memset(m, 0, sizeof *m);
    m->g = td_graph_new(3);
    m->x = td_input(m->g, "x", TD_SHAPE(B, 784), TD_F32);
    m->y = td_input(m->g, "y", TD_SHAPE(B), TD_I32);
    struct td_node *h = td_relu(m->g, td_dense(m->g, m->x, 128, "fc1"));
    h = td_relu(m->g, td_dense(m->g, h, 64, "fc2"));
    m->loss = td_softmax_cross_entropy(m->g, td_dense(m->g, h, 10, "fc3"), m->y);
    struct td_node *grads[6], *hvps[6];
    ck_assert_int_eq(td_graph_params(m->g)->count, 6);
    ck_assert_int_eq(td_grad_hvp(m->g, m->loss, grads, hvps, NULL), TD_OK);
    tu_assert_graph_ok(m->g, "mlp");
    m->outs[m->n_out++] = m->loss;
    for (int i = 0; i < 6; i++) m->outs[m->n_out++] = grads[i];
    for (int i = 0; i < 6; i++) m->outs[m->n_out++] = hvps[i];
    m->xd = malloc((size_t)B * 784 * sizeof(float));
    m->yd = malloc((size_t)B * sizeof(int32_t));
    ck_assert(m->xd && m->yd);
    tu_fill_uniform(m->xd, B * 784, 0, 1, 3, 1);
    tu_fill_int(m->yd, B, 10, 3, 2);
    m->feeds[0] = (struct td_feed){m->x, m->xd};
    m->feeds[1] = (struct td_feed){m->y, m->yd};
    struct td_params *p = td_graph_params(m->g);
    tu_fill_normal(p->dir, p->total, 3, 3);
}

static void mlp_build(struct mlp_plan *m)
{
    mlp_build_batch(m, 8);
}

static void mlp_free(struct mlp_plan *m)
{
    td_graph_free(m->g);
    free(m->xd);
    free(m->yd);
}

static struct td_plan *mlp_compile(struct mlp_plan *m, int no_reuse)
{
    struct td_compile_options o = {.num_threads = 2, .no_reuse = no_reuse};
    struct td_plan *p = td_compile(m->g, m->outs, m->n_out, &o);
    ck_assert_msg(p != NULL, "td_compile: %s", td_graph_error(m->g));
    return p;
}

static void mlp_run(struct mlp_plan *m, struct td_plan *p)
{
    enum td_status s = td_run(p, m->feeds, 2);
    ck_assert_msg(s == TD_OK, "td_run: %s", td_plan_error(p));
}

/* The node whose bytes n's output is: n itself, or for a view (reshape)
 * the owner of its operand. */
static const struct td_node *bytes_owner(const struct td_node *n)
{
    while (n->kind == TD_NODE_OP && (n->op->traits & TD_TRAIT_VIEW)) n = n->src[0];
    return n;
}

/* The last step at which n's bytes are read, computed from the graph rather
 * than asked from the planner: the latest step of a planned consumer, through
 * views (whose readers read n's bytes), or `end` for an output. */
static int bytes_last_read(const struct td_plan *p, struct td_graph *g, struct td_node *const *outs,
                           int n_out, int id, int end)
{
    const struct td_node *n = td_graph_node(g, id);
    int last = td_plan_step_of(p, n);
    for (int o = 0; o < n_out; o++)
        if (outs[o] == n) last = end;
    for (int c = id + 1; c < td_graph_num_nodes(g); c++) {
        const struct td_node *u = td_graph_node(g, c);
        if (td_plan_step_of(p, u) < 0) continue;
        for (int s = 0; s < u->n_src; s++) {
            if (u->src[s] != n) continue;
            int r = (u->op->traits & TD_TRAIT_VIEW) ? bytes_last_read(p, g, outs, n_out, c, end)
                                                    : td_plan_step_of(p, u);
            if (r > last) last = r;
        }
    }
    return last;
}

/* Planned non-view nodes of step s that read a's bytes (directly or through
 * views). */
static int readers_at(const struct td_plan *p, struct td_graph *g, const struct td_node *a, int s)
{
    int count = 0;
    for (int c = a->id + 1; c < td_graph_num_nodes(g); c++) {
        const struct td_node *u = td_graph_node(g, c);
        if (td_plan_step_of(p, u) != s || (u->op->traits & TD_TRAIT_VIEW)) continue;
        for (int k = 0; k < u->n_src; k++)
            if (bytes_owner(u->src[k]) == a) {
                count++;
                break;
            }
    }
    return count;
}

/* Checks the memory plan of p (compiled from g for outs) against liveness
 * computed from the graph: every arena buffer lies inside the arena, and
 * buffers that share bytes are never live at the same time, except an
 * elementwise node that overwrites its first operand's bytes (an
 * accumulating one its last operand's) at that operand's last read with no
 * other reader in that step (in place). */
static void check_liveness(const char *what, struct td_plan *p, struct td_graph *g,
                           struct td_node *const *outs, int n_out)
{
    struct td_plan_stats st;
    td_plan_get_stats(p, &st);
    ck_assert_int_gt(st.num_nodes, 0);
    ck_assert_int_gt(st.num_steps, 0);
    int N = td_graph_num_nodes(g);
    long long *off = malloc((size_t)N * sizeof *off);
    size_t *bytes = calloc((size_t)N, sizeof *bytes);
    int *first = malloc((size_t)N * sizeof(int)), *last = malloc((size_t)N * sizeof(int));
    ck_assert(off && bytes && first && last);
    int placed = 0;
    for (int id = 0; id < N; id++) {
        const struct td_node *n = td_graph_node(g, id);
        off[id] = td_plan_buffer(p, n, &bytes[id]);
        if (n->kind != TD_NODE_OP) {
            ck_assert_msg(off[id] < 0, "%s: leaf #%d placed in the arena", what, id);
            continue;
        }
        if (off[id] < 0) continue;
        placed++;
        ck_assert_msg(bytes[id] == td_node_bytes(n), "%s: node #%d: %zu bytes, needs %zu", what, id,
                      bytes[id], td_node_bytes(n));
        ck_assert_msg((size_t)off[id] + bytes[id] <= st.arena_bytes,
                      "%s: node #%d ends at %zu beyond the %zu-byte arena", what, id,
                      (size_t)off[id] + bytes[id], st.arena_bytes);
        first[id] = td_plan_step_of(p, n);
        last[id] = bytes_last_read(p, g, outs, n_out, id, st.num_steps);
        ck_assert_int_ge(first[id], 0);
        /* The planner's own last use covers every direct reader. */
        int direct = td_plan_last_use(p, n);
        for (int c = id + 1; c < N; c++) {
            const struct td_node *u = td_graph_node(g, c);
            for (int s = 0; s < u->n_src; s++)
                if (u->src[s] == n && td_plan_step_of(p, u) > direct)
                    ck_abort_msg("%s: node #%d read at step %d after its last use %d", what, id,
                                 td_plan_step_of(p, u), direct);
        }
    }
    ck_assert_int_gt(placed, 3);

    int inplace = 0;
    for (int a = 0; a < N; a++) {
        if (off[a] < 0) continue;
        for (int b = a + 1; b < N; b++) {
            if (off[b] < 0) continue;
            int share =
                off[a] < off[b] + (long long)bytes[b] && off[b] < off[a] + (long long)bytes[a];
            if (!share) continue;
            int live_together = first[a] <= last[b] && first[b] <= last[a];
            if (!live_together) continue;
            const struct td_node *nb = td_graph_node(g, b);
            const struct td_node *na = td_graph_node(g, a);
            /* Elementwise ops may overwrite their first operand,
             * accumulating ones (matmul_add) their last. */
            int over = (nb->op->traits & TD_TRAIT_ELEMENTWISE)  ? 0
                       : (nb->op->traits & TD_TRAIT_ACCUMULATE) ? nb->n_src - 1
                                                                : -1;
            int ok = over >= 0 && bytes_owner(nb->src[over]) == na && off[a] == off[b] &&
                     last[a] == first[b] && readers_at(p, g, na, first[b]) == 1;
            ck_assert_msg(ok,
                          "%s: nodes #%d (%s, steps %d..%d, bytes %lld+%zu) and #%d (%s, steps "
                          "%d..%d, bytes %lld+%zu) share memory while both are live",
                          what, a, td_node_op_name(na), first[a], last[a], off[a], bytes[a], b,
                          td_node_op_name(nb), first[b], last[b], off[b], bytes[b]);
            inplace++;
        }
    }
    ck_assert_int_eq(inplace, st.num_inplace);
    ck_assert_msg(st.arena_bytes < st.no_reuse_bytes, "%s: arena %zu bytes, no reuse %zu", what,
                  st.arena_bytes, st.no_reuse_bytes);
    printf("%s: %d nodes, %d steps, %d concurrent, %d in place, arena %zu of %zu bytes\n", what,
           st.num_nodes, st.num_steps, st.num_concurrent, st.num_inplace, st.arena_bytes,
           st.no_reuse_bytes);
    free(off);
    free(bytes);
    free(first);
    free(last);
}

START_TEST(test_plan_liveness)
{
    struct mlp_plan m;
    mlp_build(&m);
    struct td_plan *p = mlp_compile(&m, 0);
    check_liveness("mlp gradient + hvp plan", p, m.g, m.outs, m.n_out);
    td_plan_free(p);
    mlp_free(&m);
}
END_TEST

/* Views (reshape, whose readers read the viewed bytes) and elementwise
 * chains, with their gradient and HVP. */
START_TEST(test_plan_liveness_views)
{
    struct td_graph *g = td_graph_new(2);
    struct td_node *t = td_param(g, "t", TD_SHAPE(4, 6), (struct td_init){TD_INIT_NORMAL, 0, 1});
    struct td_node *a = td_exp(g, td_scale(g, t, 0.5f));
    struct td_node *r = td_reshape(g, a, TD_SHAPE(24));
    struct td_node *c = td_tanh(g, td_tanh(g, t));
    struct td_node *y = td_mul(g, r, td_reshape(g, c, TD_SHAPE(24)));
    struct td_node *z =
        td_reshape(g, td_sigmoid(g, td_reshape(g, y, TD_SHAPE(6, 4))), TD_SHAPE(24));
    struct td_node *loss =
        td_add(g, td_sum_all(g, td_square(g, z)), td_sum_all(g, td_mul(g, r, r)));
    struct td_node *outs[4] = {loss, z}, *grads[1], *hvps[1];
    ck_assert_int_eq(td_grad_hvp(g, loss, grads, hvps, NULL), TD_OK);
    outs[2] = grads[0];
    outs[3] = hvps[0];
    tu_assert_graph_ok(g, "views");
    struct td_plan *p = td_compile(g, outs, 4, NULL);
    ck_assert_msg(p != NULL, "td_compile: %s", td_graph_error(g));
    check_liveness("view plan", p, g, outs, 4);
    /* Same bits as a plan where every buffer has its own bytes. */
    struct td_compile_options o = {.no_reuse = 1};
    struct td_plan *p0 = td_compile(g, outs, 4, &o);
    ck_assert_ptr_nonnull(p0);
    ck_assert_int_eq(td_run(p, NULL, 0), TD_OK);
    ck_assert_int_eq(td_run(p0, NULL, 0), TD_OK);
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(outs[i]));
        ck_assert_msg(memcmp(td_plan_output(p, i), td_plan_output(p0, i), n * sizeof(float)) == 0,
                      "view plan output %d differs from the no-reuse plan's", i);
    }
    ck_assert_float_gt(td_plan_output(p, 0)[0], 0.0f);
    td_plan_free(p0);
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST

/* Copies every output of p into one block. */
static float *snapshot(const struct mlp_plan *m, const struct td_plan *p, size_t *total)
{
    size_t n = 0;
    for (int i = 0; i < m->n_out; i++) n += (size_t)td_shape_numel(td_node_shape(m->outs[i]));
    float *s = malloc(n * sizeof(float)), *at = s;
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < m->n_out; i++) {
        size_t k = (size_t)td_shape_numel(td_node_shape(m->outs[i]));
        memcpy(at, td_plan_output(p, i), k * sizeof(float));
        at += k;
    }
    *total = n;
    return s;
}

START_TEST(test_plan_outputs_bitwise)
{
    struct mlp_plan m;
    mlp_build(&m);
    struct td_plan *p1 = mlp_compile(&m, 0), *p2 = mlp_compile(&m, 0), *p0 = mlp_compile(&m, 1);
    size_t n, n1;
    mlp_run(&m, p0);
    float *ref = snapshot(&m, p0, &n);
    mlp_run(&m, p1);
    float *a = snapshot(&m, p1, &n1);
    ck_assert_int_eq(n, n1);
    /* Reuse never overwrites an output: same bits as every buffer apart. */
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(memcmp(&a[k], &ref[k], sizeof(float)) == 0,
                      "output element %zu: %.9g with reuse, %.9g without", k, (double)a[k],
                      (double)ref[k]);
    mlp_run(&m, p1);
    float *b = snapshot(&m, p1, &n1);
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "two runs of one plan differ");
    mlp_run(&m, p2);
    float *c = snapshot(&m, p2, &n1);
    ck_assert_msg(memcmp(a, c, n * sizeof(float)) == 0, "two plans compiled alike differ");
    /* The outputs are not trivial: the loss is about log(10) and the HVP is
     * not zero. */
    ck_assert_float_gt(a[0], 1.5f);
    ck_assert_float_lt(a[0], 3.5f);
    double hv = tu_norm(a + n - 10, 10);
    ck_assert_msg(hv > 0, "the last HVP block is zero");
    free(ref);
    free(a);
    free(b);
    free(c);
    td_plan_free(p0);
    td_plan_free(p1);
    td_plan_free(p2);
    mlp_free(&m);
}
END_TEST

/* Concurrent groups (forced with a low group cost, since the defaults keep
 * this small MLP sequential) keep live buffers apart and give the same bits
 * as running every node in turn on one thread. */
START_TEST(test_plan_concurrent_groups)
{
    struct mlp_plan m;
    mlp_build(&m);
    struct td_compile_options seq = {.num_threads = 1};
    struct td_compile_options grp = {.num_threads = 2, .group_cost = 1, .parallel_cost = 1e12};
    struct td_plan *p1 = td_compile(m.g, m.outs, m.n_out, &seq);
    struct td_plan *p2 = td_compile(m.g, m.outs, m.n_out, &grp);
    ck_assert_msg(p1 && p2, "td_compile: %s", td_graph_error(m.g));
    struct td_plan_stats st;
    td_plan_get_stats(p2, &st);
    ck_assert_msg(st.num_concurrent >= 4 && st.num_steps < st.num_nodes,
                  "%d concurrent nodes in %d steps for %d nodes", st.num_concurrent, st.num_steps,
                  st.num_nodes);
    check_liveness("grouped plan", p2, m.g, m.outs, m.n_out);
    size_t n, n2;
    mlp_run(&m, p1);
    float *a = snapshot(&m, p1, &n);
    for (int rep = 0; rep < 3; rep++) {
        mlp_run(&m, p2);
        float *b = snapshot(&m, p2, &n2);
        ck_assert_int_eq(n, n2);
        ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0,
                      "grouped plan differs from the sequential one (run %d)", rep);
        free(b);
    }
    free(a);
    td_plan_free(p1);
    td_plan_free(p2);
    mlp_free(&m);
}
END_TEST

/* Memory for the MLP's gradients and HVPs (outputs 1 ..) and the bindings
 * that put them there, as the trainer binds them into the store; mem[0]
 * (the loss stays in the arena) is NULL. Free every mem[i]. */
static void bind_derivatives(const struct mlp_plan *m, float **mem, struct td_binding *bind)
{
    mem[0] = NULL;
    for (int i = 1; i < m->n_out; i++) {
        mem[i] = calloc((size_t)td_shape_numel(td_node_shape(m->outs[i])), sizeof(float));
        ck_assert_ptr_nonnull(mem[i]);
        bind[i - 1] = (struct td_binding){m->outs[i], mem[i]};
    }
}

/* With the default thresholds, the seed MLP's second-layer weight and input
 * gradients (about 2 MFLOP each at batch 128) run side by side, one core
 * each, in the plans the trainer compiles (derivatives bound into the
 * store); grouping keeps the arena of the plan without groups, since a
 * group only takes the nodes the order would run next or nodes that free
 * bytes. */
START_TEST(test_plan_default_groups)
{
    struct mlp_plan m;
    mlp_build_batch(&m, 128);
    enum { N = 1 + 2 * 6 };
    float *mem[N];
    struct td_binding bind[N - 1];
    bind_derivatives(&m, mem, bind);
    for (int n_out = 7; n_out <= N; n_out += N - 7) {
        struct td_compile_options def = {
            .num_threads = 2, .bindings = bind, .n_bindings = n_out - 1};
        struct td_compile_options none = def;
        none.group_cost = 1e12;
        struct td_plan *p = td_compile(m.g, m.outs, n_out, &def);
        struct td_plan *q = td_compile(m.g, m.outs, n_out, &none);
        ck_assert_msg(p && q, "td_compile: %s", td_graph_error(m.g));
        struct td_plan_stats sp, sq;
        td_plan_get_stats(p, &sp);
        td_plan_get_stats(q, &sq);
        ck_assert_msg(sp.num_concurrent >= 2, "%d outputs: no group", n_out);
        ck_assert_int_eq(sq.num_concurrent, 0);
        ck_assert_msg(sp.arena_bytes <= sq.arena_bytes,
                      "%d outputs: arena %zu bytes with groups, %zu without", n_out, sp.arena_bytes,
                      sq.arena_bytes);
        td_plan_free(p);
        td_plan_free(q);
    }
    for (int i = 0; i < N; i++) free(mem[i]);
    mlp_free(&m);
}
END_TEST

/* Threads of a node ready beside others: two products of the same size
 * run side by side, one thread each; a product beside an elementwise node
 * that weighs much less runs alone on both threads, the small node in its
 * own step (one thread each would leave a core idle for most of the step). */
static int node_threads(const struct td_node_time *t, int n, const struct td_node *node)
{
    for (int i = 0; i < n; i++)
        if (t[i].node == node) return t[i].nthreads;
    return -1;
}

START_TEST(test_plan_group_balance)
{
    struct td_graph *g = td_graph_new(11);
    const struct td_init init = {TD_INIT_NORMAL, 0, 1};
    struct td_node *x = td_param(g, "x", TD_SHAPE(128, 128), init);
    struct td_node *w = td_param(g, "w", TD_SHAPE(128, 64), init);
    struct td_node *v = td_param(g, "v", TD_SHAPE(128, 64), init);
    struct td_node *y = td_param(g, "y", TD_SHAPE(128, 128), init);
    struct td_node *a = td_matmul(g, x, w, 0, 0), *b = td_matmul(g, x, v, 0, 0);
    struct td_node *r = td_relu(g, y);
    tu_assert_graph_ok(g, "balance");
    struct td_compile_options o = {.num_threads = 2, .profile = 1};
    struct td_node *pair[2] = {a, b}, *lopsided[2] = {a, r};
    struct td_plan *pp = td_compile(g, pair, 2, &o), *pl = td_compile(g, lopsided, 2, &o);
    ck_assert_msg(pp && pl, "td_compile: %s", td_graph_error(g));
    ck_assert_int_eq(td_run(pp, NULL, 0), TD_OK);
    ck_assert_int_eq(td_run(pl, NULL, 0), TD_OK);
    struct td_node_time t[8];
    int n = td_plan_profile(pp, t, 8);
    ck_assert_int_eq(td_plan_step_of(pp, a), td_plan_step_of(pp, b));
    ck_assert_int_eq(node_threads(t, n, a), 1);
    ck_assert_int_eq(node_threads(t, n, b), 1);
    n = td_plan_profile(pl, t, 8);
    ck_assert_int_ne(td_plan_step_of(pl, a), td_plan_step_of(pl, r));
    ck_assert_int_eq(node_threads(t, n, a), 2);
    ck_assert_int_eq(node_threads(t, n, r), 1);
    td_plan_free(pp);
    td_plan_free(pl);
    td_graph_free(g);
}
END_TEST

/* The order keeps the arena small: a value read only at the end (d) is
 * computed when it is needed, not at the depth of its operand, so no more
 * than two [64, 64] buffers are ever live along the chain of transposes
 * (each reads the previous one's bytes and writes new ones). Computed at
 * depth 1, d would be a third live buffer all along the chain. */
START_TEST(test_plan_schedule_defers)
{
    struct td_graph *g = td_graph_new(5);
    struct td_node *x = td_param(g, "x", TD_SHAPE(64, 64), (struct td_init){TD_INIT_NORMAL, 0, 1});
    struct td_node *d = td_exp(g, x);
    struct td_node *t = td_transpose(g, td_scale(g, x, 2.0f), (const int[]){1, 0});
    for (int i = 0; i < 6; i++) t = td_transpose(g, t, (const int[]){1, 0});
    struct td_node *y = td_sum_all(g, td_mul(g, t, d));
    tu_assert_graph_ok(g, "chain");
    struct td_compile_options o = {.num_threads = 1};
    struct td_plan *p = td_compile(g, &y, 1, &o);
    ck_assert_msg(p != NULL, "td_compile: %s", td_graph_error(g));
    struct td_plan_stats st;
    td_plan_get_stats(p, &st);
    const size_t buf = 64 * 64 * sizeof(float);
    ck_assert_msg(st.arena_bytes <= 2 * buf + 64, "arena %zu bytes, two buffers are %zu",
                  st.arena_bytes, 2 * buf);
    ck_assert_int_gt(td_plan_step_of(p, d), td_plan_step_of(p, t));
    check_liveness("deferring plan", p, g, &y, 1);
    /* Same value as a plan where every buffer has its own bytes. */
    struct td_compile_options o0 = {.num_threads = 1, .no_reuse = 1};
    struct td_plan *p0 = td_compile(g, &y, 1, &o0);
    ck_assert_ptr_nonnull(p0);
    ck_assert_int_eq(td_run(p, NULL, 0), TD_OK);
    ck_assert_int_eq(td_run(p0, NULL, 0), TD_OK);
    ck_assert(memcmp(td_plan_output(p, 0), td_plan_output(p0, 0), sizeof(float)) == 0);
    td_plan_free(p0);
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST

/* Outputs bound to caller memory: an output that overwrites an operand read
 * by nothing else (an HVP block, a matmul_add onto a product, or an add
 * onto one) has that operand computed in the caller's memory too, so the
 * seed MLP's gradient + HVP plan at batch 128 needs at most 1.6 times the
 * gradient plan's arena (the goal of the memory planner); and the results
 * are the bits of a plan where every buffer has its own bytes. */
START_TEST(test_plan_bound_outputs)
{
    struct mlp_plan m;
    mlp_build_batch(&m, 128);
    enum { N = 1 + 2 * 6 };
    float *mem[2][N];
    struct td_binding bind[2][N];
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)td_shape_numel(td_node_shape(m.outs[i]));
            mem[v][i] = calloc(n, sizeof(float));
            ck_assert_ptr_nonnull(mem[v][i]);
            bind[v][i] = (struct td_binding){m.outs[i], mem[v][i]};
        }
    struct td_compile_options o = {.num_threads = 2, .bindings = bind[0], .n_bindings = N};
    struct td_compile_options o0 = {
        .num_threads = 2, .bindings = bind[1], .n_bindings = N, .no_reuse = 1};
    struct td_compile_options og = {.num_threads = 2, .bindings = bind[0] + 1, .n_bindings = 6};
    struct td_plan *p = td_compile(m.g, m.outs, N, &o), *p0 = td_compile(m.g, m.outs, N, &o0);
    struct td_plan *pg = td_compile(m.g, m.outs, 7, &og);
    ck_assert_msg(p && p0 && pg, "td_compile: %s", td_graph_error(m.g));
    check_liveness("bound gradient + hvp plan", p, m.g, m.outs, N);
    struct td_plan_stats sh, sg;
    td_plan_get_stats(p, &sh);
    td_plan_get_stats(pg, &sg);
    ck_assert_msg(sh.arena_bytes * 10 <= sg.arena_bytes * 16,
                  "gradient + HVP arena %zu bytes, gradient %zu: more than 1.6x", sh.arena_bytes,
                  sg.arena_bytes);
    /* Some HVP block's operand lives in the bound memory, not the arena. */
    int moved = 0;
    for (int i = 7; i < N; i++) {
        const struct td_node *h = m.outs[i];
        if (h->kind != TD_NODE_OP) continue;
        int over = (h->op->traits & TD_TRAIT_ACCUMULATE) ? h->n_src - 1 : 0;
        if (h->src[over]->kind == TD_NODE_OP && td_plan_buffer(p, h->src[over], NULL) < 0) moved++;
    }
    ck_assert_int_gt(moved, 0);
    for (int rep = 0; rep < 2; rep++) {
        mlp_run(&m, p);
        mlp_run(&m, p0);
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)td_shape_numel(td_node_shape(m.outs[i]));
            ck_assert_msg(memcmp(mem[0][i], mem[1][i], n * sizeof(float)) == 0,
                          "output %d differs from the no-reuse plan's (run %d)", i, rep);
        }
    }
    ck_assert_msg(tu_norm(mem[0][N - 1], 10) > 0, "the last HVP block is zero");
    td_plan_free(p);
    td_plan_free(p0);
    td_plan_free(pg);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N; i++) free(mem[v][i]);
    mlp_free(&m);
}
END_TEST

/* What a hook saw: each output copied at the step td_plan_ready_step names. */
struct hook_record {
    struct td_plan *p;
    int n_out, calls, last, fail_at;
    int ready[1 + 2 * 6];
    float *snap[1 + 2 * 6];
    size_t numel[1 + 2 * 6];
};

static enum td_status record_outputs(void *ctx, int done, char *err, size_t errlen)
{
    struct hook_record *r = ctx;
    r->calls++;
    ck_assert_int_eq(done, r->last + 1);
    r->last = done;
    if (done == r->fail_at) {
        snprintf(err, errlen, "stopped by the hook at %d", done);
        return TD_ERR_BACKEND;
    }
    for (int i = 0; i < r->n_out; i++)
        if (r->ready[i] == done)
            memcpy(r->snap[i], td_plan_output(r->p, i), r->numel[i] * sizeof(float));
    return TD_OK;
}

/* td_run_hooked calls its hook after every step, in order, and every output
 * is final from the step td_plan_ready_step gives (what the data-parallel
 * sum relies on to send gradients while the backward pass goes on); a hook's
 * error stops the run with its message. */
START_TEST(test_run_hook)
{
    struct mlp_plan m;
    mlp_build_batch(&m, 32);
    enum { N = 1 + 2 * 6 };
    float *mem[N];
    struct td_binding bind[N - 1];
    bind_derivatives(&m, mem, bind);
    struct td_compile_options o = {.num_threads = 2, .bindings = bind, .n_bindings = N - 1};
    struct td_plan *p = td_compile(m.g, m.outs, N, &o);
    ck_assert_msg(p != NULL, "td_compile: %s", td_graph_error(m.g));
    struct td_plan_stats st;
    td_plan_get_stats(p, &st);
    struct hook_record r = {.p = p, .n_out = N, .fail_at = -1};
    int early = 0;
    for (int i = 0; i < N; i++) {
        r.ready[i] = td_plan_ready_step(p, m.outs[i]);
        ck_assert_int_ge(r.ready[i], 1);
        ck_assert_int_le(r.ready[i], st.num_steps);
        early += r.ready[i] < st.num_steps;
        r.numel[i] = (size_t)td_shape_numel(td_node_shape(m.outs[i]));
        r.snap[i] = calloc(r.numel[i], sizeof(float));
        ck_assert_ptr_nonnull(r.snap[i]);
    }
    ck_assert_msg(early >= N - 2, "only %d outputs are final before the last step", early);
    ck_assert_int_eq(td_plan_ready_step(p, m.x), 0);
    struct td_node *unused = td_relu(m.g, m.x);
    ck_assert_int_eq(td_plan_ready_step(p, unused), -1);
    struct td_run_hook hook = {&r, record_outputs};
    ck_assert_msg(td_run_hooked(p, m.feeds, 2, &hook) == TD_OK, "%s", td_plan_error(p));
    ck_assert_int_eq(r.calls, st.num_steps);
    for (int i = 0; i < N; i++)
        ck_assert_msg(memcmp(r.snap[i], td_plan_output(p, i), r.numel[i] * sizeof(float)) == 0,
                      "output %d changed after step %d, where it was said final", i, r.ready[i]);
    for (int i = 0; i < N; i++) free(r.snap[i]);
    r = (struct hook_record){.p = p, .n_out = 0, .fail_at = 3};
    ck_assert_int_eq(td_run_hooked(p, m.feeds, 2, &hook), TD_ERR_BACKEND);
    ck_assert_int_eq(r.calls, 3);
    ck_assert_msg(strstr(td_plan_error(p), "stopped by the hook at 3") != NULL, "message \"%s\"",
                  td_plan_error(p));
    td_plan_free(p);
    for (int i = 0; i < N; i++) free(mem[i]);
    mlp_free(&m);
}
END_TEST

/* Plans flush denormals to zero unless asked to keep them: x + x of a
 * denormal x is 0 under denormals-are-zero, 2x otherwise. */
START_TEST(test_denormals_flushed)
{
    const unsigned saved = _mm_getcsr();
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(8), TD_F32);
    struct td_node *y = td_add(g, x, x);
    float xd[8];
    for (int i = 0; i < 8; i++) xd[i] = 1e-39f * (float)(i + 1);
    ck_assert(xd[0] != 0.0f && fabsf(xd[7]) < 1.1754944e-38f);
    struct td_feed f = {x, xd};
    _mm_setcsr(saved & ~0x8040u);
    struct td_compile_options keep = {.num_threads = 1, .keep_denormals = 1};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, &y, 1, &keep);
    tu_assert_eval_run(&e, &f, 1);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(tu_eval_output(&e, 0)[i], 2.0f * xd[i]);
    tu_eval_free(&e);
    ck_assert_uint_eq(_mm_getcsr() & 0x8040u, 0);
    struct td_compile_options flush = {.num_threads = 1};
    tu_assert_eval_init(&e, g, &y, 1, &flush);
    tu_assert_eval_run(&e, &f, 1);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(tu_eval_output(&e, 0)[i], 0.0f);
    ck_assert_uint_eq(_mm_getcsr() & 0x8040u, 0x8040u);
    tu_eval_free(&e);
    td_graph_free(g);
    _mm_setcsr(saved);
}
END_TEST

/* FLOP counts: each product counted as 2MNK, other ops not at all. The
 * gradient of the B = 8 MLP runs the three forward products, the three
 * weight gradients and the input gradients of layers 2 and 3 (x needs
 * none). */
START_TEST(test_plan_flops)
{
    struct mlp_plan m;
    mlp_build(&m);
    /* m.outs: the loss, then the six gradients, then the HVPs. */
    struct td_node *const *outs = m.outs;
    struct td_compile_options o = {.num_threads = 1, .profile = 1};
    struct td_plan *p = td_compile(m.g, outs, 7, &o);
    ck_assert_msg(p != NULL, "td_compile: %s", td_graph_error(m.g));
    const double f1 = 2.0 * 8 * 784 * 128, f2 = 2.0 * 8 * 128 * 64, f3 = 2.0 * 8 * 64 * 10;
    struct td_plan_stats st;
    td_plan_get_stats(p, &st);
    ck_assert_double_eq(st.flops, 2 * f1 + 3 * f2 + 3 * f3);
    /* The profile lists every node with its count; they sum to the same. */
    mlp_run(&m, p);
    struct td_node_time *t = malloc((size_t)st.num_nodes * sizeof(*t));
    ck_assert_ptr_nonnull(t);
    int n = td_plan_profile(p, t, st.num_nodes);
    double sum = 0;
    int products = 0;
    for (int i = 0; i < n; i++) {
        sum += t[i].flops;
        products += t[i].flops > 0;
        ck_assert_int_eq(t[i].runs, 1);
        if (i > 0) ck_assert(t[i].seconds <= t[i - 1].seconds);
    }
    ck_assert_double_eq(sum, st.flops);
    ck_assert_int_eq(products, 8);
    /* A forward plan counts the three layers alone. */
    struct td_plan *fp = td_compile(m.g, &m.loss, 1, NULL);
    ck_assert_ptr_nonnull(fp);
    td_plan_get_stats(fp, &st);
    ck_assert_double_eq(st.flops, f1 + f2 + f3);
    free(t);
    td_plan_free(fp);
    td_plan_free(p);
    mlp_free(&m);
}
END_TEST

/* The allocation tests replace glibc's allocator (counting wrappers) and
 * read its statistics; AddressSanitizer builds bring their own allocator,
 * under which neither is meaningful, so they are built without them. */
#ifndef __SANITIZE_ADDRESS__
START_TEST(test_run_allocates_nothing)
{
    struct mlp_plan m;
    mlp_build(&m);
    struct td_plan *p = mlp_compile(&m, 0);
    mlp_run(&m, p);
    mlp_run(&m, p);
    struct mallinfo2 before = mallinfo2();
    for (int r = 0; r < 5; r++) ck_assert_int_eq(td_run(p, m.feeds, 2), TD_OK);
    struct mallinfo2 after = mallinfo2();
    ck_assert_msg(after.uordblks == before.uordblks && after.hblkhd == before.hblkhd,
                  "td_run changed the heap: in use %zu -> %zu bytes, mmapped %zu -> %zu bytes",
                  before.uordblks, after.uordblks, before.hblkhd, after.hblkhd);
    td_plan_free(p);
    mlp_free(&m);
}
END_TEST

/* Counting wrappers around glibc's allocator, interposed for the whole
 * process (the executable's definitions win over libc's), so calls made by
 * libtandem are seen. They count only while alloc_counting is set. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
static volatile int alloc_counting;
static volatile long alloc_calls;

void *malloc(size_t n)
{
    if (alloc_counting) alloc_calls++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (alloc_counting) alloc_calls++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (alloc_counting) alloc_calls++;
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    if (alloc_counting) alloc_calls++;
    return __libc_memalign(align, n);
}

/* oneDNN 2.6 allocates inside every primitive execution (its execution
 * context), which the heap-size check above tolerates. Tandem's own run
 * path must not allocate at all: a plan of hand-written kernels, with a
 * concurrent step, makes no allocator call once warm. */
START_TEST(test_run_no_allocator_calls)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(64, 300), TD_F32);
    struct td_node *outs[4] = {
        td_transpose(g, td_exp(g, x), (const int[]){1, 0}),
        td_sign(g, x),
        td_step(g, x),
        td_relu(g, td_reshape(g, x, TD_SHAPE(300, 64))),
    };
    tu_assert_graph_ok(g, "hand-written kernels");
    struct td_compile_options o = {.num_threads = 2};
    struct td_plan *p = td_compile(g, outs, 4, &o);
    ck_assert_ptr_nonnull(p);
    float *xd = malloc(64 * 300 * sizeof(float));
    ck_assert_ptr_nonnull(xd);
    tu_fill_uniform(xd, 64 * 300, -1, 1, 4, 1);
    struct td_feed f = {x, xd};
    ck_assert_int_eq(td_run(p, &f, 1), TD_OK);
    ck_assert_int_eq(td_run(p, &f, 1), TD_OK);
    alloc_calls = 0;
    alloc_counting = 1;
    enum td_status st = TD_OK;
    for (int r = 0; r < 5 && st == TD_OK; r++) st = td_run(p, &f, 1);
    alloc_counting = 0;
    ck_assert_int_eq(st, TD_OK);
    ck_assert_msg(alloc_calls == 0, "5 runs called the allocator %ld times", alloc_calls);
    /* The counter does see allocations. */
    alloc_counting = 1;
    void *volatile probe = malloc(16);
    free(probe);
    alloc_counting = 0;
    ck_assert_int_eq(alloc_calls, 1);
    ck_assert_float_eq(td_plan_output(p, 1)[0], xd[0] > 0 ? 1.0f : -1.0f);
    free(xd);
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST
#endif

START_TEST(test_check_numerics)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(4), TD_F32);
    struct td_node *a = td_node_set_name(td_square(g, x), "sq");
    struct td_node *b = td_node_set_name(td_log(g, td_add_scalar(g, a, -1.0f)), "bad_log");
    struct td_node *y = td_sum_all(g, td_exp(g, b));
    tu_assert_graph_ok(g, "numerics");
    const float xd[4] = {2.0f, 3.0f, 0.5f, 1.5f}; /* x^2 - 1 < 0 at element 2 */
    struct td_feed f = {x, xd};

    struct td_compile_options o = {.check_numerics = 1};
    struct td_plan *p = td_compile(g, &y, 1, &o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(td_run(p, &f, 1), TD_ERR_NUMERIC);
    const char *msg = td_plan_error(p);
    size_t len = strlen(msg);
    ck_assert_msg(strstr(msg, "log 'bad_log'") && strstr(msg, "NaN") && len > 2 &&
                      strcmp(msg + len - 2, " 2") == 0 && !strstr(msg, "exp"),
                  "message \"%s\" should name log 'bad_log' (not the exp after it), NaN and "
                  "element 2",
                  msg);
    /* A clean run clears the message. */
    const float ok[4] = {2.0f, 3.0f, 1.25f, 1.5f};
    f.data = ok;
    ck_assert_int_eq(td_run(p, &f, 1), TD_OK);
    ck_assert_str_eq(td_plan_error(p), "");
    td_plan_free(p);

    /* Without the option the NaN is not looked for. */
    p = td_compile(g, &y, 1, NULL);
    ck_assert_ptr_nonnull(p);
    f.data = xd;
    ck_assert_int_eq(td_run(p, &f, 1), TD_OK);
    ck_assert(isnan(td_plan_output(p, 0)[0]));
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST

START_TEST(test_missing_feed)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(3), TD_F32);
    struct td_node *w = td_input(g, "weights_in", TD_SHAPE(3), TD_F32);
    struct td_node *y = td_mul(g, x, w);
    struct td_plan *p = td_compile(g, &y, 1, NULL);
    ck_assert_ptr_nonnull(p);
    const float d[3] = {1, 2, 3};
    struct td_feed f = {x, d};
    ck_assert_int_eq(td_run(p, &f, 1), TD_ERR_ARG);
    ck_assert_msg(strstr(td_plan_error(p), "'weights_in'") != NULL,
                  "message \"%s\" does not name the input", td_plan_error(p));
    struct td_feed both[2] = {{x, d}, {w, d}};
    ck_assert_int_eq(td_run(p, both, 2), TD_OK);
    const float *out = td_plan_output(p, 0);
    ck_assert_float_eq(out[0], 1.0f);
    ck_assert_float_eq(out[1], 4.0f);
    ck_assert_float_eq(out[2], 9.0f);
    td_plan_free(p);
    td_graph_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *b = tcase_create("builder");
    tcase_add_test(b, test_shape_macros);
    tcase_add_test(b, test_matmul_message);
    tcase_add_test(b, test_shape_messages);
    tcase_add_test(b, test_bad_build_table);
    tcase_add_test(b, test_sticky_and_null);
    tcase_add_test(b, test_other_graph);
    tcase_add_test(b, test_vjp_needs_seed);
    tcase_add_test(b, test_param_names);
    tcase_add_test(b, test_store_aligned);
    tcase_add_test(b, test_float_block_slots);
    suite_add_tcase(s, b);
    TCase *p = tcase_create("planner");
    tcase_add_test(p, test_plan_liveness);
    tcase_add_test(p, test_plan_liveness_views);
    tcase_add_test(p, test_plan_outputs_bitwise);
    tcase_add_test(p, test_plan_concurrent_groups);
    tcase_add_test(p, test_plan_default_groups);
    tcase_add_test(p, test_plan_group_balance);
    tcase_add_test(p, test_plan_flops);
    tcase_add_test(p, test_plan_schedule_defers);
    tcase_add_test(p, test_plan_bound_outputs);
    tcase_add_test(p, test_run_hook);
#ifndef __SANITIZE_ADDRESS__
    tcase_add_test(p, test_run_allocates_nothing);
    tcase_add_test(p, test_run_no_allocator_calls);
#endif
    tcase_add_test(p, test_check_numerics);
    tcase_add_test(p, test_missing_feed);
    suite_add_tcase(s, p);
    /* Tagged so tools/valgrind.sh can leave it out: valgrind does not model
     * the flush-to-zero and denormals-are-zero bits of MXCSR. */
    TCase *fp = tcase_create("fpmode");
    tcase_set_tags(fp, "fpu");
    tcase_add_test(fp, test_denormals_flushed);
    suite_add_tcase(s, fp);
    return tu_run_suite(s);
}
