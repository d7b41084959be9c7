/* layer_norm: y = xhat * gamma + beta, xhat = (x - mean) / sqrt(var + eps)
 * over the last axis (biased variance), as PyTorch's nn.LayerNorm.
 * x [..., C] (rank >= 1), gamma [C], beta [C], y of x's shape, TD_F32.
 * attr: f[0] = eps >= 0. One fused pass per row: the row is read once, its
 * mean and variance taken in cache, y written once. oneDNN 2.6's layer
 * normalization is not used (nor measured): its backward needs the
 * forward's saved mean and variance, a second output that nodes do not
 * have, and the rules need N_x applied to other vectors (normalize_grad),
 * which it does not offer; one set of hand loops serves all of them.
 *
 * Rules:
 *   JVP  gamma N_x(tx) + layer_norm(x, tgamma, tbeta)
 *   VJP  x: layer_norm_grad(x, gamma, ct) = N_x(ct gamma),
 *        gamma: layer_norm_dgamma(x, ct) = column sums of ct xhat,
 *        beta: column sums of ct (reduce_sum, a fixed order). */
#include "ops/norm_common.h"
#include "ops/rules.h"

static enum td_status layer_norm_shape(struct td_node *n)
{
    enum td_status st = td_norm_check(n);
    if (st == TD_OK) st = td_norm_check_row(n, 1, "gamma");
    if (st == TD_OK) st = td_norm_check_row(n, 2, "beta");
    if (st != TD_OK) return st;
    n->shape = n->src[0]->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

static void layer_norm_forward(const struct td_exec *ex)
{
    td_norm_run(ex, ex->in[0], ex->in[1], ex->in[2]);
}

static struct td_node *layer_norm_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    struct td_node *x = n->src[0], *gamma = n->src[1], *dx = NULL, *dp = NULL;
    float eps = n->attr.f[0];
    if (t[0]) dx = td_mul(g, td_normalize_grad(g, x, t[0], eps), gamma);
    if (t[1] && t[2])
        dp = td_layer_norm_op(g, x, t[1], t[2], eps);
    else if (t[1])
        dp = td_mul(g, td_normalize(g, x, eps), t[1]);
    else if (t[2])
        dp = td_broadcast_to(g, t[2], n->shape);
    return td_rule_add(g, dx, dp);
}

static void layer_norm_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    struct td_node *x = n->src[0], *gamma = n->src[1];
    float eps = n->attr.f[0];
    if (need & 4u) cts[2] = td_norm_sum_rows(g, ct);
    if (need & 2u) cts[1] = td_layer_norm_dgamma(g, x, ct, eps);
    if (need & 1u) cts[0] = td_layer_norm_grad(g, x, gamma, ct, eps);
}

static void layer_norm_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0], *gamma = in[1], *beta = in[2];
    int64_t c = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / c;
    for (int64_t r = 0; r < rows; r++) {
        double m, rstd;
        td_norm_reference_stats(x + r * c, c, n->attr.f[0], &m, &rstd);
        for (int64_t j = 0; j < c; j++)
            out[r * c + j] = (float)((x[r * c + j] - m) * rstd * gamma[j] + beta[j]);
    }
}

static struct td_node *build_default(struct td_graph *g, struct td_node *const *in)
{
    return td_layer_norm_op(g, in[0], in[1], in[2], TD_LAYER_NORM_EPS);
}

static struct td_node *build_eps(struct td_graph *g, struct td_node *const *in)
{
    return td_layer_norm_op(g, in[0], in[1], in[2], 0.25f);
}

static const struct td_op_case layer_norm_cases[] = {
    {.n_in = 3, .shape = {{2, {4, 7}}, {1, {7}}, {1, {7}}}, .build = build_default},
    {.n_in = 3, .shape = {{3, {2, 3, 37}}, {1, {37}}, {1, {37}}}, .build = build_default},
    {.n_in = 3, .shape = {{1, {6}}, {1, {6}}, {1, {6}}}, .build = build_eps},
    {.n_in = 3, .shape = {{4, {2, 1, 3, 16}}, {1, {16}}, {1, {16}}}, .build = build_eps},
    {.n_in = 3, .shape = {{2, {3, 1}}, {1, {1}}, {1, {1}}}, .build = build_default},
};

/* Two passes over each row in cache, one read and one write of memory:
 * measured at 1.6x an add of the same size (3 elements touched) on one
 * thread. */
static double layer_norm_cost(const struct td_node *n)
{
    return 5.0 * (double)td_shape_numel(&n->src[0]->shape);
}

const struct td_op_def td_op_layer_norm = {
    .name = "layer_norm",
    .n_src = 3,
    .shape = layer_norm_shape,
    .forward = layer_norm_forward,
    .jvp = layer_norm_jvp,
    .vjp = layer_norm_vjp,
    .cost = layer_norm_cost,
    .test = TD_NORM_TEST(layer_norm_cases, layer_norm_reference),
};

struct td_node *td_layer_norm_op(struct td_graph *g, struct td_node *x, struct td_node *gamma,
                                 struct td_node *beta, float eps)
{
    struct td_node *src[3] = {x, gamma, beta};
    struct td_attr attr = {.f = {eps}};
    return td_node_new(g, &td_op_layer_norm, src, 3, &attr);
}
