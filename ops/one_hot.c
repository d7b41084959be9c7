/* one_hot: y[b, c] = 1 where labels[b] == c, else 0; attr i[0] = classes.
 * labels [B] TD_I32, y [B, classes] TD_F32. A label outside [0, classes)
 * gives a row of zeros. Piecewise constant: derivatives are zero. */
#include <string.h>

#include "ops/rules.h"

static enum td_status one_hot_shape(struct td_node *n)
{
    const struct td_node *labels = n->src[0];
    char s[128];
    td_shape_format(&labels->shape, s, sizeof(s));
    if (labels->dtype != TD_I32) return td_node_fail(n, "expects int32 labels, got float %s", s);
    if (labels->shape.rank != 1) return td_node_fail(n, "expects labels of rank 1, got %s", s);
    if (n->attr.i[0] < 1) return td_node_fail(n, "classes must be >= 1, got %d", n->attr.i[0]);
    n->shape.rank = 2;
    n->shape.dim[0] = labels->shape.dim[0];
    n->shape.dim[1] = n->attr.i[0];
    n->dtype = TD_F32;
    return TD_OK;
}

/* labels [B] int32, y [B, C] row-major. */
static void one_hot_forward(const struct td_exec *ex)
{
    const int32_t *labels = ex->in[0];
    float *y = ex->out;
    int64_t rows = ex->node->shape.dim[0], c = ex->node->shape.dim[1];
    TD_PARALLEL_FOR(ex->nthreads, b, rows, memset(y + b * c, 0, (size_t)c * sizeof(*y));
                    if (labels[b] >= 0 && labels[b] < c) y[b * c + labels[b]] = 1.0f;);
}

static void one_hot_reference(const struct td_node *n, const void *const *in, float *out)
{
    const int32_t *labels = in[0];
    for (int64_t b = 0; b < n->shape.dim[0]; b++)
        for (int64_t c = 0; c < n->shape.dim[1]; c++) out[b * n->shape.dim[1] + c] = labels[b] == c;
}

static struct td_node *build_6(struct td_graph *g, struct td_node *const *in)
{
    return td_one_hot(g, in[0], 6);
}

/* Labels are drawn from [0, 7): some fall outside the 6 classes. */
static const struct td_op_case one_hot_cases[] = {
    {.n_in = 1, .shape = {{1, {9}}}, .dtype = {TD_I32}, .build = build_6},
};

const struct td_op_def td_op_one_hot = {
    .name = "one_hot",
    .n_src = 1,
    .traits = TD_TRAIT_NONDIFF,
    .shape = one_hot_shape,
    .forward = one_hot_forward,
    .jvp = td_rule_zero_jvp,
    .vjp = td_rule_zero_vjp,
    .test =
        {
            .lo = 0.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .int_hi = 7,
            .n_cases = (int)(sizeof(one_hot_cases) / sizeof(one_hot_cases[0])),
            .cases = one_hot_cases,
            .reference = one_hot_reference,
        },
};

struct td_node *td_one_hot(struct td_graph *g, struct td_node *labels, int classes)
{
    struct td_attr attr = {.i = {classes}};
    return td_node_new(g, &td_op_one_hot, &labels, 1, &attr);
}
