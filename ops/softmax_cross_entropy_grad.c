/* softmax_cross_entropy_grad: y = (softmax(logits) - one_hot(labels)) / B,
 * the gradient of softmax_cross_entropy with respect to its logits, in one
 * pass instead of softmax, one_hot, sub and scale. logits [B, C] TD_F32,
 * labels [B] TD_I32, y [B, C] TD_F32. A label outside [0, C) makes its row
 * NaN, as it makes the loss NaN. No attributes.
 * Labels are integers: they get no tangent and no cotangent. */
#include <math.h>

#include "ops/cross_entropy.h"
#include "ops/rules.h"

static enum td_status sce_grad_shape(struct td_node *n)
{
    enum td_status st = td_cross_entropy_check(n);
    if (st != TD_OK) return st;
    n->shape = n->src[0]->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* Scratch: e [B, C], sum [B] doubles, then mx [B] floats. */
static enum td_status sce_grad_prepare(struct td_prep *p)
{
    size_t rows = (size_t)p->node->shape.dim[0], c = (size_t)p->node->shape.dim[1];
    p->scratch_bytes = (rows * c + rows) * sizeof(double) + rows * sizeof(float);
    return TD_OK;
}

/* Rows [b0, b0 + n) of logits [B, C] row-major, labels [B] and y [B, C]
 * row-major. */
static void sce_grad_rows(const struct td_exec *ex, int64_t b0, int64_t n)
{
    const float *x = ex->in[0];
    const int32_t *labels = ex->in[1];
    float *y = ex->out;
    int64_t rows = ex->node->shape.dim[0], c = ex->node->shape.dim[1];
    double *e = ex->scratch, *sum = e + rows * c, inv_rows = 1.0 / (double)rows;
    float *mx = (float *)(sum + rows);
    td_row_exp(x + b0 * c, n, c, mx + b0, e + b0 * c, sum + b0);
    for (int64_t b = b0; b < b0 + n; b++) {
        double scale = inv_rows / sum[b];
        for (int64_t j = 0; j < c; j++) y[b * c + j] = (float)(e[b * c + j] * scale);
        int32_t l = labels[b];
        if (l >= 0 && l < c)
            y[b * c + l] = (float)((e[b * c + l] / sum[b] - 1.0) * inv_rows);
        else
            for (int64_t j = 0; j < c; j++) y[b * c + j] = NAN;
    }
}

static void sce_grad_forward(const struct td_exec *ex)
{
    td_row_blocks_run(ex, ex->node->shape.dim[0], sce_grad_rows);
}

/* The op is softmax(logits) / B minus a constant, so its Jacobian is
 * softmax's (symmetric: one formula for JVP and VJP) over B: one
 * softmax_apply with alpha = 1/B. */
static struct td_node *sce_grad_apply(struct td_graph *g, struct td_node *n, struct td_node *v)
{
    return td_softmax_apply(g, td_softmax(g, n->src[0]), v, (float)(1.0 / (double)n->shape.dim[0]),
                            0);
}

static struct td_node *sce_grad_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? sce_grad_apply(g, n, t[0]) : NULL;
}

static void sce_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                         struct td_node **cts)
{
    if (need & 1u) cts[0] = sce_grad_apply(g, n, ct);
    if (need & 2u) cts[1] = NULL;
}

static void sce_grad_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0];
    const int32_t *labels = in[1];
    int64_t rows = n->shape.dim[0], c = n->shape.dim[1];
    for (int64_t b = 0; b < rows; b++) {
        const float *xb = x + b * c;
        double mx = xb[0], sum = 0;
        for (int64_t j = 1; j < c; j++) mx = fmax(mx, xb[j]);
        for (int64_t j = 0; j < c; j++) sum += exp(xb[j] - mx);
        for (int64_t j = 0; j < c; j++)
            out[b * c + j] = (float)((exp(xb[j] - mx) / sum - (j == labels[b])) / (double)rows);
    }
}

const struct td_op_def td_op_softmax_cross_entropy_grad = {
    .name = "softmax_cross_entropy_grad",
    .n_src = 2,
    .shape = sce_grad_shape,
    .prepare = sce_grad_prepare,
    .forward = sce_grad_forward,
    .jvp = sce_grad_jvp,
    .vjp = sce_grad_vjp,
    .test = TD_CROSS_ENTROPY_TEST(sce_grad_reference),
};

struct td_node *td_softmax_cross_entropy_grad(struct td_graph *g, struct td_node *logits,
                                              struct td_node *labels)
{
    struct td_node *src[2] = {logits, labels};
    return td_node_new(g, &td_op_softmax_cross_entropy_grad, src, 2, NULL);
}
