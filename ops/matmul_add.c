/* matmul_add: y = op(a) op(b) + c, a product accumulated onto a buffer of
 * its own shape in one oneDNN matmul (a sum post-op), as the rules of
 * matmul and linear need for the sums of two products their tangents are:
 * no separate add pass over y, and no buffer for one of the products.
 * attr i[0] = transpose_a, i[1] = transpose_b, as td_matmul.
 * a, b as td_matmul's operands (batch axes broadcast); c [..., M, N] of the
 * product's shape exactly; y of that shape. The planner may give y the
 * bytes of c (TD_TRAIT_ACCUMULATE): the kernel then adds the product onto
 * them; otherwise it copies c into y first. Rules: matmul_adds of the
 * tangents, matmul's VJP for a and b, the cotangent itself for c. */
#include <stdio.h>
#include <string.h>

#include "ops/matmul_common.h"
#include "ops/rules.h"

static enum td_status matmul_add_shape(struct td_node *n)
{
    enum td_status st = td_op_matmul.shape(n);
    if (st != TD_OK) return st;
    const struct td_node *c = n->src[2];
    if (c->dtype != TD_F32 || !td_shape_equal(&c->shape, &n->shape)) {
        char sc[128], sy[128];
        return td_node_fail(
            n, "addend %s%s does not match the product %s", c->dtype == TD_I32 ? "int32 " : "",
            td_shape_format(&c->shape, sc, sizeof(sc)), td_shape_format(&n->shape, sy, sizeof(sy)));
    }
    return TD_OK;
}

/* oneDNN's sum post-op adds the product onto dst, which holds c. */
static enum td_status matmul_add_prepare(struct td_prep *p)
{
    dnnl_post_ops_t post = NULL;
    dnnl_status_t st = dnnl_post_ops_create(&post);
    if (st == dnnl_success) st = dnnl_post_ops_append_sum(post, 1.0f);
    if (st != dnnl_success) {
        if (post) dnnl_post_ops_destroy(post);
        snprintf(p->err, p->err_len, "matmul_add: oneDNN sum post-op failed (status %d)", (int)st);
        return TD_ERR_BACKEND;
    }
    enum td_status s = td_matmul_prepare(p, post);
    dnnl_post_ops_destroy(post);
    return s;
}

/* y = c, then y += op(a) op(b). */
static void matmul_add_forward(const struct td_exec *ex)
{
    if (ex->out != ex->in[2]) {
        const float *c = ex->in[2];
        float *y = ex->out;
        int64_t count = td_shape_numel(&ex->node->shape);
        TD_PARALLEL_FOR(ex->nthreads, i, count, y[i] = c[i];);
    }
    td_prim_execute(ex);
}

static struct td_node *matmul_add_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    int ta = n->attr.i[0], tb = n->attr.i[1];
    struct td_node *acc = t[2];
    if (t[1]) acc = acc ? td_matmul_add(g, a, t[1], ta, tb, acc) : td_matmul(g, a, t[1], ta, tb);
    if (t[0]) acc = acc ? td_matmul_add(g, t[0], b, ta, tb, acc) : td_matmul(g, t[0], b, ta, tb);
    return acc;
}

static void matmul_add_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    /* The product's cotangents are matmul's: its rule reads only operands
     * 0 and 1 and the transpose flags, which this node shares. */
    if (need & 3u) td_op_matmul.vjp(g, n, ct, need & 3u, cts);
    if (need & 4u) cts[2] = ct;
}

/* The test reference: matmul's, then the addend. */
static void matmul_add_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_op_matmul.test.reference(n, in, out);
    const float *c = in[2];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) out[i] = (float)((double)out[i] + c[i]);
}

static struct td_node *build_nn(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul_add(g, in[0], in[1], 0, 0, in[2]);
}

static struct td_node *build_tn(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul_add(g, in[0], in[1], 1, 0, in[2]);
}

static struct td_node *build_nt(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul_add(g, in[0], in[1], 0, 1, in[2]);
}

static struct td_node *build_tt(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul_add(g, in[0], in[1], 1, 1, in[2]);
}

static const struct td_op_case matmul_add_cases[] = {
    {.n_in = 3, .shape = {{2, {4, 6}}, {2, {6, 5}}, {2, {4, 5}}}, .build = build_nn},
    {.n_in = 3, .shape = {{2, {6, 4}}, {2, {6, 5}}, {2, {4, 5}}}, .build = build_tn},
    {.n_in = 3, .shape = {{2, {4, 6}}, {2, {5, 6}}, {2, {4, 5}}}, .build = build_nt},
    {.n_in = 3, .shape = {{2, {6, 4}}, {2, {5, 6}}, {2, {4, 5}}}, .build = build_tt},
    {.n_in = 3, .shape = {{2, {1, 3}}, {2, {3, 1}}, {2, {1, 1}}}, .build = build_nn},
    /* batched, and a 2-D operand shared by every batch (linear's tangent) */
    {.n_in = 3, .shape = {{3, {3, 4, 6}}, {3, {3, 6, 5}}, {3, {3, 4, 5}}}, .build = build_nn},
    {.n_in = 3, .shape = {{3, {2, 3, 4}}, {2, {5, 4}}, {3, {2, 3, 5}}}, .build = build_nt},
    {.n_in = 3, .shape = {{4, {2, 1, 4, 3}}, {3, {3, 5, 4}}, {4, {2, 3, 3, 5}}}, .build = build_tt},
};

const struct td_op_def td_op_matmul_add = {
    .name = "matmul_add",
    .n_src = 3,
    .traits = TD_TRAIT_ACCUMULATE,
    .shape = matmul_add_shape,
    .prepare = matmul_add_prepare,
    .release = td_prim_release,
    .forward = matmul_add_forward,
    .jvp = matmul_add_jvp,
    .vjp = matmul_add_vjp,
    .cost = td_matmul_cost,
    .flops = td_matmul_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(matmul_add_cases) / sizeof(matmul_add_cases[0])),
            .cases = matmul_add_cases,
            .reference = matmul_add_reference,
        },
};

struct td_node *td_matmul_add(struct td_graph *g, struct td_node *a, struct td_node *b,
                              int transpose_a, int transpose_b, struct td_node *c)
{
    struct td_attr attr = {.i = {transpose_a != 0, transpose_b != 0}};
    struct td_node *src[3] = {a, b, c};
    return td_node_new(g, &td_op_matmul_add, src, 3, &attr);
}
