/* avg_pool2d: y = the mean of each window of x over the whole kernel area,
 * padding counted as zeros (PyTorch's count_include_pad). x [N, C, H, W],
 * y [N, C, OH, OW]; attributes and kernel in ops/pool.h. Linear: the JVP
 * pools the tangent, the VJP is avg_pool2d_grad. */
#include "ops/pool.h"
#include "ops/rules.h"

static enum td_status avg_pool2d_shape(struct td_node *n)
{
    return td_pool_shape(n, TD_POOL_AVG);
}

static void avg_pool2d_forward(const struct td_exec *ex)
{
    td_pool_run(ex, TD_POOL_AVG);
}

static struct td_node *avg_pool2d_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    struct td_pool2d_params p = td_pool_params(n);
    return t[0] ? td_avg_pool2d(g, t[0], &p) : NULL;
}

static void avg_pool2d_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    struct td_pool2d_params p = td_pool_params(n);
    const struct td_shape *x = &n->src[0]->shape;
    if (need & 1u) cts[0] = td_avg_pool2d_grad(g, ct, &p, (int)x->dim[2], (int)x->dim[3]);
}

static void avg_pool2d_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_pool_reference(n, TD_POOL_AVG, in, out);
}

static double avg_pool2d_cost(const struct td_node *n)
{
    return td_pool_cost(n, TD_POOL_AVG);
}

#define AVG_BUILD(name, kh, kw, sh, sw, ph, pw)                                                    \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_pool2d_params p = {{kh, kw}, {sh, sw}, {ph, pw}};                          \
        return td_avg_pool2d(g, in[0], &p);                                                        \
    }

AVG_BUILD(build_k2, 2, 2, 0, 0, 0, 0)
AVG_BUILD(build_k3s2p1, 3, 3, 2, 2, 1, 1)
AVG_BUILD(build_k23s12p11, 2, 3, 1, 2, 1, 1)
AVG_BUILD(build_k3s1, 3, 3, 1, 1, 0, 0)

static const struct td_op_case avg_pool2d_cases[] = {
    {.n_in = 1, .shape = {{4, {2, 3, 6, 6}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {1, 2, 7, 7}}}, .build = build_k3s2p1},
    {.n_in = 1, .shape = {{4, {2, 2, 5, 8}}}, .build = build_k23s12p11},
    {.n_in = 1, .shape = {{4, {1, 1, 4, 5}}}, .build = build_k3s1},
    {.n_in = 1, .shape = {{4, {2, 2, 7, 6}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {1, 2, 4, 22}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {2, 1, 6, 13}}}, .build = build_k2},
};

const struct td_op_def td_op_avg_pool2d = {
    .name = "avg_pool2d",
    .n_src = 1,
    .shape = avg_pool2d_shape,
    .forward = avg_pool2d_forward,
    .jvp = avg_pool2d_jvp,
    .vjp = avg_pool2d_vjp,
    .cost = avg_pool2d_cost,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(avg_pool2d_cases) / sizeof(avg_pool2d_cases[0])),
            .cases = avg_pool2d_cases,
            .reference = avg_pool2d_reference,
        },
};

struct td_node *td_avg_pool2d(struct td_graph *g, struct td_node *x,
                              const struct td_pool2d_params *params)
{
    struct td_attr attr = td_pool_attr(params, 0, 0);
    return td_node_new(g, &td_op_avg_pool2d, &x, 1, &attr);
}
