/* softmax_cross_entropy: y = mean over b of logsumexp(logits[b]) -
 * logits[b, labels[b]]. logits [B, C] TD_F32, labels [B] TD_I32, y [] TD_F32.
 * A label outside [0, C) makes y NaN, so numeric checking reports it.
 * Labels are integers: they get no tangent and no cotangent. */
#include <math.h>

#include "ops/cross_entropy.h"
#include "ops/rules.h"

static enum td_status sce_shape(struct td_node *n)
{
    enum td_status st = td_cross_entropy_check(n);
    if (st != TD_OK) return st;
    n->shape.rank = 0;
    n->dtype = TD_F32;
    return TD_OK;
}

/* Scratch: e [B, C], sum [B], row_loss [B] doubles, then mx [B] floats. */
static enum td_status sce_prepare(struct td_prep *p)
{
    size_t rows = (size_t)p->node->src[0]->shape.dim[0];
    size_t c = (size_t)p->node->src[0]->shape.dim[1];
    p->scratch_bytes = (rows * c + 2 * rows) * sizeof(double) + rows * sizeof(float);
    return TD_OK;
}

/* Rows [b0, b0 + n) of logits [B, C] row-major and labels [B]: their
 * losses into the scratch's row_loss [B]. */
static void sce_rows(const struct td_exec *ex, int64_t b0, int64_t n)
{
    const float *x = ex->in[0];
    const int32_t *labels = ex->in[1];
    int64_t rows = ex->node->src[0]->shape.dim[0], c = ex->node->src[0]->shape.dim[1];
    double *e = ex->scratch, *sum = e + rows * c, *row_loss = sum + rows;
    float *mx = (float *)(row_loss + rows);
    td_row_exp(x + b0 * c, n, c, mx + b0, e + b0 * c, sum + b0);
    for (int64_t b = b0; b < b0 + n; b++) {
        int32_t l = labels[b];
        row_loss[b] = l >= 0 && l < c ? (double)mx[b] + log(sum[b]) - (double)x[b * c + l] : NAN;
    }
}

/* logits [B, C], labels [B], y []. The row losses are summed in row order
 * after the parallel part so y does not depend on the thread count. */
static void sce_forward(const struct td_exec *ex)
{
    int64_t rows = ex->node->src[0]->shape.dim[0], c = ex->node->src[0]->shape.dim[1];
    const double *row_loss = (const double *)ex->scratch + rows * c + rows;
    td_row_blocks_run(ex, rows, sce_rows);
    double total = 0;
    for (int64_t b = 0; b < rows; b++) total += row_loss[b];
    *(float *)ex->out = (float)(total / (double)rows);
}

/* ct * g where the scalar ct is usually the constant 1 that seeds a
 * gradient: then g itself, one node fewer on the gradient's path. */
static struct td_node *times_scalar(struct td_graph *g, struct td_node *x, struct td_node *ct)
{
    if (ct->kind == TD_NODE_CONST && ct->const_data && ct->const_data[0] == 1.0f) return x;
    return td_mul(g, x, ct);
}

/* d y = sum(grad * t) with grad = (softmax(logits) - one_hot(labels)) / B. */
static struct td_node *sce_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    if (!t[0]) return NULL;
    struct td_node *grad = td_softmax_cross_entropy_grad(g, n->src[0], n->src[1]);
    return td_sum_all(g, td_mul(g, grad, t[0]));
}

static void sce_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    if (need & 1u)
        cts[0] = times_scalar(g, td_softmax_cross_entropy_grad(g, n->src[0], n->src[1]), ct);
    if (need & 2u) cts[1] = NULL;
}

static void sce_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0];
    const int32_t *labels = in[1];
    int64_t rows = n->src[0]->shape.dim[0], c = n->src[0]->shape.dim[1];
    double total = 0;
    for (int64_t b = 0; b < rows; b++) {
        double mx = x[b * c], sum = 0;
        for (int64_t j = 1; j < c; j++) mx = fmax(mx, x[b * c + j]);
        for (int64_t j = 0; j < c; j++) sum += exp(x[b * c + j] - mx);
        total += mx + log(sum) - x[b * c + labels[b]];
    }
    out[0] = (float)(total / (double)rows);
}

const struct td_op_def td_op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .n_src = 2,
    .shape = sce_shape,
    .prepare = sce_prepare,
    .forward = sce_forward,
    .jvp = sce_jvp,
    .vjp = sce_vjp,
    .test = TD_CROSS_ENTROPY_TEST(sce_reference),
};

struct td_node *td_softmax_cross_entropy(struct td_graph *g, struct td_node *logits,
                                         struct td_node *labels)
{
    struct td_node *src[2] = {logits, labels};
    return td_node_new(g, &td_op_softmax_cross_entropy, src, 2, NULL);
}
