/* y = alpha * x + beta, oneDNN eltwise "linear".
 * attr: f[0] = alpha, f[1] = beta. */
#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

static enum td_status affine_prepare(struct td_prep *p)
{
    return td_eltwise_prepare(p, dnnl_eltwise_linear, p->node->attr.f[0], p->node->attr.f[1]);
}

static struct td_node *affine_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    float alpha = n->attr.f[0];
    return t[0] && alpha != 0.f ? td_scale(g, t[0], alpha) : NULL;
}

static void affine_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    float alpha = n->attr.f[0];
    if (need & 1u) cts[0] = alpha != 0.f ? td_scale(g, ct, alpha) : NULL;
}

TD_UNARY_REFERENCE(affine, (double)a->f[0] * x + (double)a->f[1])

static struct td_node *build_affine(struct td_graph *g, struct td_node *const *in)
{
    return td_affine(g, in[0], 1.5f, -0.25f);
}

static struct td_node *build_scale(struct td_graph *g, struct td_node *const *in)
{
    return td_scale(g, in[0], -3.f);
}

static struct td_node *build_add_scalar(struct td_graph *g, struct td_node *const *in)
{
    return td_add_scalar(g, in[0], 0.75f);
}

static struct td_node *build_neg(struct td_graph *g, struct td_node *const *in)
{
    return td_neg(g, in[0]);
}

static const struct td_op_case affine_cases[] = {
    {.n_in = 1, .shape = {{.rank = 2, .dim = {3, 5}}}, .build = build_affine},
    {.n_in = 1, .shape = {{.rank = 3, .dim = {2, 3, 4}}}, .build = build_scale},
    {.n_in = 1, .shape = {{.rank = 1, .dim = {7}}}, .build = build_add_scalar},
    {.n_in = 1, .shape = {{.rank = 0}}, .build = build_neg},
};

const struct td_op_def td_op_affine = {
    .name = "affine",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = affine_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = affine_jvp,
    .vjp = affine_vjp,
    .test = {.lo = -2.f,
             .hi = 2.f,
             .fd_eps = 1e-2f,
             .tol = 2e-3f,
             .n_cases = sizeof(affine_cases) / sizeof(affine_cases[0]),
             .cases = affine_cases,
             .reference = affine_reference},
};

struct td_node *td_affine(struct td_graph *g, struct td_node *x, float alpha, float beta)
{
    struct td_attr attr = {.f = {alpha, beta}};
    return td_unary_new(g, &td_op_affine, x, &attr);
}

struct td_node *td_scale(struct td_graph *g, struct td_node *x, float alpha)
{
    return td_affine(g, x, alpha, 0.f);
}

struct td_node *td_add_scalar(struct td_graph *g, struct td_node *x, float beta)
{
    return td_affine(g, x, 1.f, beta);
}

struct td_node *td_neg(struct td_graph *g, struct td_node *x)
{
    return td_affine(g, x, -1.f, 0.f);
}
