/* attn_scores: the attention scores of every head, read from packed heads
 * in place: y[b, h, i, j] = sum_c q[b, i, h dh + c] k[b, j, h dh + c].
 * attr i[0] = heads. q [B, Tq, D], k [B, Tk, D] with D = heads * dh;
 * y [B, heads, Tq, Tk]. One oneDNN matmul whose operands are q and k^T seen
 * as [B, heads, Tq, dh] and [B, heads, dh, Tk] by strides, so the heads are
 * never split into copies (the matmul runs as fast on these strides).
 * Rules, with attn_mix: dq = attn_mix(dy, k), dk = attn_mix(dy^T, q);
 * the JVP is the sum of the scores of each tangent with the other operand. */
#include <stdio.h>

#include "ops/matmul_common.h"
#include "ops/rules.h"

static enum td_status attn_scores_shape(struct td_node *n)
{
    const struct td_shape *q = &n->src[0]->shape, *k = &n->src[1]->shape;
    int heads = n->attr.i[0];
    char sq[128], sk[128];
    td_shape_format(q, sq, sizeof(sq));
    td_shape_format(k, sk, sizeof(sk));
    if (n->src[0]->dtype != TD_F32 || n->src[1]->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got q %s and k %s", sq, sk);
    if (q->rank != 3 || k->rank != 3)
        return td_node_fail(n, "needs q and k of shape [batch, time, features], got %s and %s", sq,
                            sk);
    if (q->dim[0] != k->dim[0] || q->dim[2] != k->dim[2])
        return td_node_fail(n, "q %s and k %s differ in batch or features", sq, sk);
    if (heads < 1 || q->dim[2] % heads)
        return td_node_fail(n, "%d heads do not divide the %lld features", heads,
                            (long long)q->dim[2]);
    n->shape = TD_SHAPE(q->dim[0], heads, q->dim[1], k->dim[1]);
    n->dtype = TD_F32;
    return TD_OK;
}

static enum td_status attn_scores_prepare(struct td_prep *p)
{
    const struct td_node *n = p->node;
    struct td_prim_arg args[3] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_WEIGHTS, .buf = TD_BUF_IN0 + 1},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_matmul_desc_t desc;
    dnnl_status_t st = td_md_heads(&args[0].md, &n->src[0]->shape, n->attr.i[0], 0);
    if (st == dnnl_success) st = td_md_heads(&args[1].md, &n->src[1]->shape, n->attr.i[0], 1);
    if (st == dnnl_success) st = td_md_plain(&args[2].md, &n->shape, TD_F32);
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&desc, &args[0].md, &args[1].md, NULL, &args[2].md);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "attn_scores: oneDNN matmul descriptor failed (status %d)",
                 (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(p, &desc, args, 3);
}

static struct td_node *attn_scores_jvp(struct td_graph *g, struct td_node *n,
                                       struct td_node *const *t)
{
    struct td_node *q = n->src[0], *k = n->src[1];
    int heads = n->attr.i[0];
    struct td_node *dq = t[0] ? td_attn_scores(g, t[0], k, heads) : NULL;
    struct td_node *dk = t[1] ? td_attn_scores(g, q, t[1], heads) : NULL;
    return td_rule_add(g, dq, dk);
}

static void attn_scores_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                            unsigned need, struct td_node **cts)
{
    struct td_node *q = n->src[0], *k = n->src[1];
    int heads = n->attr.i[0];
    if (need & 1u) cts[0] = td_attn_mix(g, ct, k, heads, 0);
    if (need & 2u) cts[1] = td_attn_mix(g, ct, q, heads, 1);
}

/* The test reference: a dot product per score, in double. */
static void attn_scores_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *q = in[0], *k = in[1];
    int64_t B = n->shape.dim[0], H = n->shape.dim[1], Tq = n->shape.dim[2], Tk = n->shape.dim[3];
    int64_t D = n->src[0]->shape.dim[2], dh = D / H;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++)
                for (int64_t j = 0; j < Tk; j++) {
                    double acc = 0;
                    for (int64_t c = 0; c < dh; c++)
                        acc += (double)q[(b * Tq + i) * D + h * dh + c] *
                               k[(b * Tk + j) * D + h * dh + c];
                    out[((b * H + h) * Tq + i) * Tk + j] = (float)acc;
                }
}

static double attn_scores_flops(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape) *
           (double)(n->src[0]->shape.dim[2] / n->attr.i[0]);
}

/* As matmul's: a sixteenth of an element touched per multiply-add. */
static double attn_scores_cost(const struct td_node *n)
{
    return attn_scores_flops(n) / 32.0;
}

static struct td_node *build_h1(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_scores(g, in[0], in[1], 1);
}

static struct td_node *build_h2(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_scores(g, in[0], in[1], 2);
}

static struct td_node *build_h3(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_scores(g, in[0], in[1], 3);
}

static const struct td_op_case attn_scores_cases[] = {
    {.n_in = 2, .shape = {{3, {2, 4, 6}}, {3, {2, 4, 6}}}, .build = build_h2},
    {.n_in = 2, .shape = {{3, {1, 3, 6}}, {3, {1, 5, 6}}}, .build = build_h3},
    {.n_in = 2, .shape = {{3, {2, 5, 4}}, {3, {2, 5, 4}}}, .build = build_h1},
    {.n_in = 2, .shape = {{3, {3, 1, 2}}, {3, {3, 1, 2}}}, .build = build_h2},
};

const struct td_op_def td_op_attn_scores = {
    .name = "attn_scores",
    .n_src = 2,
    .shape = attn_scores_shape,
    .prepare = attn_scores_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = attn_scores_jvp,
    .vjp = attn_scores_vjp,
    .cost = attn_scores_cost,
    .flops = attn_scores_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(attn_scores_cases) / sizeof(attn_scores_cases[0])),
            .cases = attn_scores_cases,
            .reference = attn_scores_reference,
        },
};

struct td_node *td_attn_scores(struct td_graph *g, struct td_node *q, struct td_node *k, int heads)
{
    struct td_attr attr = {.i = {heads}};
    struct td_node *src[2] = {q, k};
    return td_node_new(g, &td_op_attn_scores, src, 2, &attr);
}
