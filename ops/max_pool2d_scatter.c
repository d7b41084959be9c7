/* max_pool2d_scatter: dx = each element of ct added into the argmax of its
 * window of x (max_pool2d's tie rule), the VJP of max pooling.
 * x [N, C, H, W], ct [N, C, OH, OW], dx [N, C, H, W]; attributes and
 * kernel in ops/pool.h. Where windows overlap, one thread adds a plane's
 * windows in row-major order. Linear in ct: its JVP scatters the tangent
 * of ct, its VJP is max_pool2d_select; x gets no derivative. */
#include "ops/pool.h"
#include "ops/rules.h"

static enum td_status scatter_shape(struct td_node *n)
{
    return td_pool_shape(n, TD_POOL_SCATTER);
}

static void scatter_forward(const struct td_exec *ex)
{
    td_pool_run(ex, TD_POOL_SCATTER);
}

static struct td_node *scatter_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_pool2d_params p = td_pool_params(n);
    return t[1] ? td_max_pool2d_scatter(g, n->src[0], t[1], &p) : NULL;
}

static void scatter_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                        struct td_node **cts)
{
    struct td_pool2d_params p = td_pool_params(n);
    if (need & 1u) cts[0] = NULL;
    if (need & 2u) cts[1] = td_max_pool2d_select(g, n->src[0], ct, &p);
}

static void scatter_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_pool_reference(n, TD_POOL_SCATTER, in, out);
}

static double scatter_cost(const struct td_node *n)
{
    return td_pool_cost(n, TD_POOL_SCATTER);
}

#define SCATTER_BUILD(name, kh, kw, sh, sw, ph, pw)                                                \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_pool2d_params p = {{kh, kw}, {sh, sw}, {ph, pw}};                          \
        return td_max_pool2d_scatter(g, td_pool_test_distinct(g, in[0]), in[1], &p);               \
    }

SCATTER_BUILD(build_k2, 2, 2, 0, 0, 0, 0)
SCATTER_BUILD(build_k3s2p1, 3, 3, 2, 2, 1, 1)
SCATTER_BUILD(build_k23s12p11, 2, 3, 1, 2, 1, 1)
SCATTER_BUILD(build_k3s1, 3, 3, 1, 1, 0, 0)

static const struct td_op_case scatter_cases[] = {
    {.n_in = 2, .shape = {{4, {2, 3, 6, 6}}, {4, {2, 3, 3, 3}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {1, 2, 7, 7}}, {4, {1, 2, 4, 4}}}, .build = build_k3s2p1},
    /* overlapping windows: several cotangents add into one element */
    {.n_in = 2, .shape = {{4, {2, 2, 5, 8}}, {4, {2, 2, 6, 4}}}, .build = build_k23s12p11},
    {.n_in = 2, .shape = {{4, {1, 1, 4, 5}}, {4, {1, 1, 2, 3}}}, .build = build_k3s1},
    {.n_in = 2, .shape = {{4, {2, 2, 7, 6}}, {4, {2, 2, 3, 3}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {1, 2, 4, 22}}, {4, {1, 2, 2, 11}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {2, 1, 7, 13}}, {4, {2, 1, 3, 6}}}, .build = build_k2},
};

/* Operands from a narrow range around distinct offsets: see
 * td_pool_test_distinct. */
const struct td_op_def td_op_max_pool2d_scatter = {
    .name = "max_pool2d_scatter",
    .n_src = 2,
    .shape = scatter_shape,
    .forward = scatter_forward,
    .jvp = scatter_jvp,
    .vjp = scatter_vjp,
    .cost = scatter_cost,
    .test =
        {
            .lo = -0.02f,
            .hi = 0.02f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(scatter_cases) / sizeof(scatter_cases[0])),
            .cases = scatter_cases,
            .reference = scatter_reference,
        },
};

struct td_node *td_max_pool2d_scatter(struct td_graph *g, struct td_node *x, struct td_node *ct,
                                      const struct td_pool2d_params *params)
{
    struct td_attr attr = td_pool_attr(params, 0, 0);
    struct td_node *src[2] = {x, ct};
    return td_node_new(g, &td_op_max_pool2d_scatter, src, 2, &attr);
}
