/* attn_mix: every head's attention output written into packed heads in
 * place: y[b, i, h dh + c] = sum_j p[b, h, i, j] v[b, j, h dh + c], or with
 * transpose_p p[b, h, j, i] in place of p[b, h, i, j].
 * attr i[0] = heads, i[1] = transpose_p. p [B, heads, Tq, Tk] ([B, heads,
 * Tk, Tq] when transposed), v [B, Tk, D] with D = heads * dh; y [B, Tq, D].
 * One oneDNN matmul whose weights v and output y are seen as
 * [B, heads, T, dh] by strides, so the heads are never split or merged by
 * copies. Rules, with attn_scores: dp = attn_scores(dy, v) (of v and dy
 * when transposed), dv = attn_mix(p, dy) with the other transpose flag; the
 * JVP is the sum of the products of each tangent with the other operand. */
#include <stdio.h>

#include "ops/matmul_common.h"
#include "ops/rules.h"

/* Rows and columns of op(p) [.., Tq, Tk] for p of shape s. */
static int64_t p_rows(const struct td_shape *s, int t)
{
    return s->dim[t ? 3 : 2];
}

static int64_t p_cols(const struct td_shape *s, int t)
{
    return s->dim[t ? 2 : 3];
}

static enum td_status attn_mix_shape(struct td_node *n)
{
    const struct td_shape *p = &n->src[0]->shape, *v = &n->src[1]->shape;
    int heads = n->attr.i[0], t = n->attr.i[1];
    char sp[128], sv[128];
    td_shape_format(p, sp, sizeof(sp));
    td_shape_format(v, sv, sizeof(sv));
    if (n->src[0]->dtype != TD_F32 || n->src[1]->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got p %s and v %s", sp, sv);
    if (p->rank != 4 || v->rank != 3)
        return td_node_fail(n,
                            "needs p [batch, heads, time, time] and v [batch, time, features], "
                            "got %s and %s",
                            sp, sv);
    if (heads < 1 || v->dim[2] % heads || p->dim[1] != heads)
        return td_node_fail(n, "%d heads must divide the features of v %s and be axis 1 of p %s",
                            heads, sv, sp);
    if (p->dim[0] != v->dim[0] || p_cols(p, t) != v->dim[1])
        return td_node_fail(n, "p %s and v %s differ in batch or in the summed time axis%s", sp, sv,
                            t ? " (transpose_p)" : "");
    n->shape = TD_SHAPE(v->dim[0], p_rows(p, t), v->dim[2]);
    n->dtype = TD_F32;
    return TD_OK;
}

static enum td_status attn_mix_prepare(struct td_prep *pp)
{
    const struct td_node *n = pp->node;
    const struct td_shape *p = &n->src[0]->shape;
    int heads = n->attr.i[0], t = n->attr.i[1];
    struct td_prim_arg args[3] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_WEIGHTS, .buf = TD_BUF_IN0 + 1},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    int64_t r = p->dim[2], c = p->dim[3];
    int64_t dims[4] = {p->dim[0], heads, p_rows(p, t), p_cols(p, t)};
    int64_t strides[4] = {heads * r * c, r * c, t ? 1 : c, t ? c : 1};
    dnnl_matmul_desc_t desc;
    dnnl_status_t st = td_md_strided(&args[0].md, 4, dims, strides);
    if (st == dnnl_success) st = td_md_heads(&args[1].md, &n->src[1]->shape, heads, 0);
    if (st == dnnl_success) st = td_md_heads(&args[2].md, &n->shape, heads, 0);
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&desc, &args[0].md, &args[1].md, NULL, &args[2].md);
    if (st != dnnl_success) {
        snprintf(pp->err, pp->err_len, "attn_mix: oneDNN matmul descriptor failed (status %d)",
                 (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(pp, &desc, args, 3);
}

static struct td_node *attn_mix_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *p = n->src[0], *v = n->src[1];
    int heads = n->attr.i[0], tp = n->attr.i[1];
    struct td_node *dp = t[0] ? td_attn_mix(g, t[0], v, heads, tp) : NULL;
    struct td_node *dv = t[1] ? td_attn_mix(g, p, t[1], heads, tp) : NULL;
    return td_rule_add(g, dp, dv);
}

static void attn_mix_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                         struct td_node **cts)
{
    struct td_node *p = n->src[0], *v = n->src[1];
    int heads = n->attr.i[0], tp = n->attr.i[1];
    if (need & 1u) cts[0] = tp ? td_attn_scores(g, v, ct, heads) : td_attn_scores(g, ct, v, heads);
    if (need & 2u) cts[1] = td_attn_mix(g, p, ct, heads, !tp);
}

/* The test reference: a sum over the time axis per output, in double. */
static void attn_mix_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *p = in[0], *v = in[1];
    const struct td_shape *ps = &n->src[0]->shape;
    int t = n->attr.i[1];
    int64_t B = n->shape.dim[0], Tq = n->shape.dim[1], D = n->shape.dim[2];
    int64_t H = n->attr.i[0], dh = D / H, Tk = n->src[1]->shape.dim[1];
    int64_t r = ps->dim[2], c = ps->dim[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t e = 0; e < dh; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Tk; j++) {
                        int64_t at = t ? j * c + i : i * c + j;
                        acc +=
                            (double)p[(b * H + h) * r * c + at] * v[(b * Tk + j) * D + h * dh + e];
                    }
                    out[(b * Tq + i) * D + h * dh + e] = (float)acc;
                }
}

static double attn_mix_flops(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape) * (double)n->src[1]->shape.dim[1];
}

/* As matmul's: a sixteenth of an element touched per multiply-add. */
static double attn_mix_cost(const struct td_node *n)
{
    return attn_mix_flops(n) / 32.0;
}

static struct td_node *build_h2(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_mix(g, in[0], in[1], 2, 0);
}

static struct td_node *build_h2t(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_mix(g, in[0], in[1], 2, 1);
}

static struct td_node *build_h1(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_mix(g, in[0], in[1], 1, 0);
}

static struct td_node *build_h3t(struct td_graph *g, struct td_node *const *in)
{
    return td_attn_mix(g, in[0], in[1], 3, 1);
}

static const struct td_op_case attn_mix_cases[] = {
    {.n_in = 2, .shape = {{4, {2, 2, 4, 4}}, {3, {2, 4, 6}}}, .build = build_h2},
    {.n_in = 2, .shape = {{4, {2, 2, 5, 3}}, {3, {2, 5, 4}}}, .build = build_h2t},
    {.n_in = 2, .shape = {{4, {1, 1, 3, 5}}, {3, {1, 5, 2}}}, .build = build_h1},
    {.n_in = 2, .shape = {{4, {1, 3, 4, 2}}, {3, {1, 4, 6}}}, .build = build_h3t},
    {.n_in = 2, .shape = {{4, {3, 2, 1, 1}}, {3, {3, 1, 2}}}, .build = build_h2},
};

const struct td_op_def td_op_attn_mix = {
    .name = "attn_mix",
    .n_src = 2,
    .shape = attn_mix_shape,
    .prepare = attn_mix_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = attn_mix_jvp,
    .vjp = attn_mix_vjp,
    .cost = attn_mix_cost,
    .flops = attn_mix_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(attn_mix_cases) / sizeof(attn_mix_cases[0])),
            .cases = attn_mix_cases,
            .reference = attn_mix_reference,
        },
};

struct td_node *td_attn_mix(struct td_graph *g, struct td_node *p, struct td_node *v, int heads,
                            int transpose_p)
{
    struct td_attr attr = {.i = {heads, transpose_p != 0}};
    struct td_node *src[2] = {p, v};
    return td_node_new(g, &td_op_attn_mix, src, 2, &attr);
}
