/* max_pool2d: y = the maximum of each window of x, padding -inf.
 * x [N, C, H, W], y [N, C, OH, OW]; attributes and kernel in ops/pool.h.
 * The JVP routes the tangent through each window's argmax
 * (max_pool2d_select); the VJP adds the cotangent into it
 * (max_pool2d_scatter). Both recompute the argmax from x with the
 * forward's tie rule, the first maximum in row-major window order. */
#include "ops/pool.h"
#include "ops/rules.h"

static enum td_status max_pool2d_shape(struct td_node *n)
{
    return td_pool_shape(n, TD_POOL_MAX);
}

static void max_pool2d_forward(const struct td_exec *ex)
{
    td_pool_run(ex, TD_POOL_MAX);
}

static struct td_node *max_pool2d_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    struct td_pool2d_params p = td_pool_params(n);
    return t[0] ? td_max_pool2d_select(g, n->src[0], t[0], &p) : NULL;
}

static void max_pool2d_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    struct td_pool2d_params p = td_pool_params(n);
    if (need & 1u) cts[0] = td_max_pool2d_scatter(g, n->src[0], ct, &p);
}

static void max_pool2d_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_pool_reference(n, TD_POOL_MAX, in, out);
}

static double max_pool2d_cost(const struct td_node *n)
{
    return td_pool_cost(n, TD_POOL_MAX);
}

#define MAX_BUILD(name, kh, kw, sh, sw, ph, pw)                                                    \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_pool2d_params p = {{kh, kw}, {sh, sw}, {ph, pw}};                          \
        return td_max_pool2d_op(g, td_pool_test_distinct(g, in[0]), &p);                           \
    }

MAX_BUILD(build_k2, 2, 2, 0, 0, 0, 0)
MAX_BUILD(build_k3s2p1, 3, 3, 2, 2, 1, 1)
MAX_BUILD(build_k23s12p11, 2, 3, 1, 2, 1, 1)
MAX_BUILD(build_k3s1, 3, 3, 1, 1, 0, 0)
MAX_BUILD(build_k31s21p10, 3, 1, 2, 1, 1, 0)

static const struct td_op_case max_pool2d_cases[] = {
    {.n_in = 1, .shape = {{4, {2, 3, 6, 6}}}, .build = build_k2},
    /* batch 1, padding */
    {.n_in = 1, .shape = {{4, {1, 2, 7, 7}}}, .build = build_k3s2p1},
    /* overlapping non-square windows */
    {.n_in = 1, .shape = {{4, {2, 2, 5, 8}}}, .build = build_k23s12p11},
    {.n_in = 1, .shape = {{4, {1, 1, 4, 5}}}, .build = build_k3s1},
    /* (H - k) % s != 0: the last row is in no window */
    {.n_in = 1, .shape = {{4, {2, 2, 7, 6}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {1, 3, 5, 5}}}, .build = build_k31s21p10},
    /* rows of 11 and 6 windows: the 2x2 kernel's blocks of 8 and 4, the last
     * overlapping the one before; an odd width */
    {.n_in = 1, .shape = {{4, {1, 2, 4, 22}}}, .build = build_k2},
    {.n_in = 1, .shape = {{4, {2, 1, 6, 13}}}, .build = build_k2},
};

/* Operands from a narrow range around distinct offsets: see
 * td_pool_test_distinct. */
const struct td_op_def td_op_max_pool2d = {
    .name = "max_pool2d",
    .n_src = 1,
    .shape = max_pool2d_shape,
    .forward = max_pool2d_forward,
    .jvp = max_pool2d_jvp,
    .vjp = max_pool2d_vjp,
    .cost = max_pool2d_cost,
    .test =
        {
            .lo = -0.02f,
            .hi = 0.02f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(max_pool2d_cases) / sizeof(max_pool2d_cases[0])),
            .cases = max_pool2d_cases,
            .reference = max_pool2d_reference,
        },
};

struct td_node *td_max_pool2d_op(struct td_graph *g, struct td_node *x,
                                 const struct td_pool2d_params *params)
{
    struct td_attr attr = td_pool_attr(params, 0, 0);
    return td_node_new(g, &td_op_max_pool2d, &x, 1, &attr);
}
