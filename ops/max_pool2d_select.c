/* max_pool2d_select: y = t at the argmax of each window of x (max_pool2d's
 * tie rule), the JVP of max pooling. x, t [N, C, H, W], y [N, C, OH, OW];
 * attributes and kernel in ops/pool.h. Linear in t: its JVP selects the
 * tangent of t, its VJP is max_pool2d_scatter; x gets no derivative (the
 * selection is piecewise constant in x). */
#include "ops/pool.h"
#include "ops/rules.h"

static enum td_status select_shape(struct td_node *n)
{
    return td_pool_shape(n, TD_POOL_SELECT);
}

static void select_forward(const struct td_exec *ex)
{
    td_pool_run(ex, TD_POOL_SELECT);
}

static struct td_node *select_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_pool2d_params p = td_pool_params(n);
    return t[1] ? td_max_pool2d_select(g, n->src[0], t[1], &p) : NULL;
}

static void select_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    struct td_pool2d_params p = td_pool_params(n);
    if (need & 1u) cts[0] = NULL;
    if (need & 2u) cts[1] = td_max_pool2d_scatter(g, n->src[0], ct, &p);
}

static void select_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_pool_reference(n, TD_POOL_SELECT, in, out);
}

static double select_cost(const struct td_node *n)
{
    return td_pool_cost(n, TD_POOL_SELECT);
}

#define SELECT_BUILD(name, kh, kw, sh, sw, ph, pw)                                                 \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_pool2d_params p = {{kh, kw}, {sh, sw}, {ph, pw}};                          \
        return td_max_pool2d_select(g, td_pool_test_distinct(g, in[0]), in[1], &p);                \
    }

SELECT_BUILD(build_k2, 2, 2, 0, 0, 0, 0)
SELECT_BUILD(build_k3s2p1, 3, 3, 2, 2, 1, 1)
SELECT_BUILD(build_k23s12p11, 2, 3, 1, 2, 1, 1)
SELECT_BUILD(build_k3s1, 3, 3, 1, 1, 0, 0)

static const struct td_op_case select_cases[] = {
    {.n_in = 2, .shape = {{4, {2, 3, 6, 6}}, {4, {2, 3, 6, 6}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {1, 2, 7, 7}}, {4, {1, 2, 7, 7}}}, .build = build_k3s2p1},
    {.n_in = 2, .shape = {{4, {2, 2, 5, 8}}, {4, {2, 2, 5, 8}}}, .build = build_k23s12p11},
    {.n_in = 2, .shape = {{4, {1, 1, 4, 5}}, {4, {1, 1, 4, 5}}}, .build = build_k3s1},
    {.n_in = 2, .shape = {{4, {2, 2, 7, 6}}, {4, {2, 2, 7, 6}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {1, 2, 4, 22}}, {4, {1, 2, 4, 22}}}, .build = build_k2},
    {.n_in = 2, .shape = {{4, {2, 1, 6, 13}}, {4, {2, 1, 6, 13}}}, .build = build_k2},
};

/* Operands from a narrow range around distinct offsets: see
 * td_pool_test_distinct. */
const struct td_op_def td_op_max_pool2d_select = {
    .name = "max_pool2d_select",
    .n_src = 2,
    .shape = select_shape,
    .forward = select_forward,
    .jvp = select_jvp,
    .vjp = select_vjp,
    .cost = select_cost,
    .test =
        {
            .lo = -0.02f,
            .hi = 0.02f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(select_cases) / sizeof(select_cases[0])),
            .cases = select_cases,
            .reference = select_reference,
        },
};

struct td_node *td_max_pool2d_select(struct td_graph *g, struct td_node *x, struct td_node *t,
                                     const struct td_pool2d_params *params)
{
    struct td_attr attr = td_pool_attr(params, 0, 0);
    struct td_node *src[2] = {x, t};
    return td_node_new(g, &td_op_max_pool2d_select, src, 2, &attr);
}
