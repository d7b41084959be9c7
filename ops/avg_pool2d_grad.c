/* avg_pool2d_grad: the transpose of avg_pool2d, each ct element spread
 * evenly (1 / kernel area) over its window, padding dropped.
 * ct [N, C, OH, OW], dx [N, C, H, W] with (H, W) from attr i[6..7];
 * attributes and kernel in ops/pool.h. One thread adds a plane's windows
 * in row-major order. Linear: the JVP spreads the tangent, the VJP is
 * avg_pool2d. */
#include "ops/pool.h"
#include "ops/rules.h"

static enum td_status avg_grad_shape(struct td_node *n)
{
    return td_pool_shape(n, TD_POOL_AVG_GRAD);
}

static void avg_grad_forward(const struct td_exec *ex)
{
    td_pool_run(ex, TD_POOL_AVG_GRAD);
}

static struct td_node *avg_grad_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_pool2d_params p = td_pool_params(n);
    return t[0] ? td_avg_pool2d_grad(g, t[0], &p, n->attr.i[6], n->attr.i[7]) : NULL;
}

static void avg_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                         struct td_node **cts)
{
    struct td_pool2d_params p = td_pool_params(n);
    if (need & 1u) cts[0] = td_avg_pool2d(g, ct, &p);
}

static void avg_grad_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_pool_reference(n, TD_POOL_AVG_GRAD, in, out);
}

static double avg_grad_cost(const struct td_node *n)
{
    return td_pool_cost(n, TD_POOL_AVG_GRAD);
}

#define AVG_GRAD_BUILD(name, kh, kw, sh, sw, ph, pw, h, w)                                         \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_pool2d_params p = {{kh, kw}, {sh, sw}, {ph, pw}};                          \
        return td_avg_pool2d_grad(g, in[0], &p, h, w);                                             \
    }

AVG_GRAD_BUILD(build_k2, 2, 2, 0, 0, 0, 0, 6, 6)
AVG_GRAD_BUILD(build_k3s2p1, 3, 3, 2, 2, 1, 1, 7, 7)
AVG_GRAD_BUILD(build_k23s12p11, 2, 3, 1, 2, 1, 1, 5, 8)
AVG_GRAD_BUILD(build_k3s1, 3, 3, 1, 1, 0, 0, 4, 5)
AVG_GRAD_BUILD(build_k2_odd, 2, 2, 0, 0, 0, 0, 7, 6)
AVG_GRAD_BUILD(build_k2_wide, 2, 2, 0, 0, 0, 0, 4, 22)
AVG_GRAD_BUILD(build_k2_odd_wide, 2, 2, 0, 0, 0, 0, 7, 13)

static const struct td_op_case avg_grad_cases[] = {
    {.n_in = 1, .shape = {{4, {2, 3, 3, 3}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {1, 2, 4, 4}}}, .build = build_k3s2p1},
    {.n_in = 1, .shape = {{4, {2, 2, 6, 4}}}, .build = build_k23s12p11},
    {.n_in = 1, .shape = {{4, {1, 1, 2, 3}}}, .build = build_k3s1},
    /* input height 7 pools to 3 rows: the size comes from the attribute */
    {.n_in = 1, .shape = {{4, {2, 2, 3, 3}}}, .build = build_k2_odd},
    {.n_in = 1, .shape = {{4, {1, 2, 2, 11}}}, .build = build_k2_wide},
    {.n_in = 1, .shape = {{4, {2, 1, 3, 6}}}, .build = build_k2_odd_wide},
};

const struct td_op_def td_op_avg_pool2d_grad = {
    .name = "avg_pool2d_grad",
    .n_src = 1,
    .shape = avg_grad_shape,
    .forward = avg_grad_forward,
    .jvp = avg_grad_jvp,
    .vjp = avg_grad_vjp,
    .cost = avg_grad_cost,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(avg_grad_cases) / sizeof(avg_grad_cases[0])),
            .cases = avg_grad_cases,
            .reference = avg_grad_reference,
        },
};

struct td_node *td_avg_pool2d_grad(struct td_graph *g, struct td_node *ct,
                                   const struct td_pool2d_params *params, int h, int w)
{
    struct td_attr attr = td_pool_attr(params, h, w);
    return td_node_new(g, &td_op_avg_pool2d_grad, &ct, 1, &attr);
}
