/* softmax_cross_entropy: y = mean over b of logsumexp(logits[b]) -
 * logits[b, labels[b]]. logits [B, C] TD_F32, labels [B] TD_I32, y [] TD_F32.
 * A label outside [0, C) makes y NaN, so numeric checking reports it.
 * Labels are integers: they get no tangent and no cotangent. */
#include <math.h>

#include "ops/rules.h"

static enum td_status sce_shape(struct td_node *n)
{
    const struct td_node *logits = n->src[0], *labels = n->src[1];
    char sl[128], sy[128];
    td_shape_format(&logits->shape, sl, sizeof(sl));
    td_shape_format(&labels->shape, sy, sizeof(sy));
    if (logits->dtype != TD_F32) return td_node_fail(n, "expects float logits, got int32 %s", sl);
    if (labels->dtype != TD_I32) return td_node_fail(n, "expects int32 labels, got float %s", sy);
    if (logits->shape.rank != 2)
        return td_node_fail(n, "expects logits of rank 2 [batch, classes], got %s", sl);
    if (labels->shape.rank != 1 || labels->shape.dim[0] != logits->shape.dim[0])
        return td_node_fail(n, "labels %s do not match logits %s: expected [%lld]", sy, sl,
                            (long long)logits->shape.dim[0]);
    n->shape.rank = 0;
    n->dtype = TD_F32;
    return TD_OK;
}

/* Room for one loss per row, summed in row order after the parallel loop so
 * the result does not depend on the thread count. */
static enum td_status sce_prepare(struct td_prep *p)
{
    p->scratch_bytes = (size_t)p->node->src[0]->shape.dim[0] * sizeof(double);
    return TD_OK;
}

/* logits [B, C] row-major, labels [B], scratch [B] doubles, y []. */
static void sce_forward(const struct td_exec *ex)
{
    const float *x = ex->in[0];
    const int32_t *labels = ex->in[1];
    double *row_loss = ex->scratch;
    int64_t rows = ex->node->src[0]->shape.dim[0], c = ex->node->src[0]->shape.dim[1];
#pragma omp parallel for schedule(static) num_threads(ex->nthreads) if (ex->nthreads > 1)
    for (int64_t b = 0; b < rows; b++) {
        const float *xb = x + b * c;
        float mx = xb[0];
        for (int64_t j = 1; j < c; j++) mx = xb[j] > mx ? xb[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < c; j++) sum += expf(xb[j] - mx);
        int32_t l = labels[b];
        row_loss[b] = l >= 0 && l < c ? mx + log(sum) - xb[l] : NAN;
    }
    double total = 0;
    for (int64_t b = 0; b < rows; b++) total += row_loss[b];
    *(float *)ex->out = (float)(total / (double)rows);
}

/* (softmax(logits) - one_hot(labels)): the gradient of the summed loss. */
static struct td_node *sce_residual(struct td_graph *g, struct td_node *n)
{
    struct td_node *logits = n->src[0], *labels = n->src[1];
    return td_sub(g, td_softmax(g, logits), td_one_hot(g, labels, (int)logits->shape.dim[1]));
}

static float inv_batch(const struct td_node *n)
{
    return (float)(1.0 / (double)n->src[0]->shape.dim[0]);
}

static struct td_node *sce_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    if (!t[0]) return NULL;
    return td_scale(g, td_sum_all(g, td_mul(g, sce_residual(g, n), t[0])), inv_batch(n));
}

static void sce_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    if (need & 1u) cts[0] = td_mul(g, sce_residual(g, n), td_scale(g, ct, inv_batch(n)));
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

static const struct td_op_case sce_cases[] = {
    {.n_in = 2, .shape = {{2, {5, 7}}, {1, {5}}}, .dtype = {TD_F32, TD_I32}},
    {.n_in = 2, .shape = {{2, {12, 7}}, {1, {12}}}, .dtype = {TD_F32, TD_I32}},
};

const struct td_op_def td_op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .n_src = 2,
    .shape = sce_shape,
    .prepare = sce_prepare,
    .forward = sce_forward,
    .jvp = sce_jvp,
    .vjp = sce_vjp,
    .test =
        {
            .lo = -3.0f,
            .hi = 3.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .int_hi = 7,
            .n_cases = (int)(sizeof(sce_cases) / sizeof(sce_cases[0])),
            .cases = sce_cases,
            .reference = sce_reference,
        },
};

struct td_node *td_softmax_cross_entropy(struct td_graph *g, struct td_node *logits,
                                         struct td_node *labels)
{
    struct td_node *src[2] = {logits, labels};
    return td_node_new(g, &td_op_softmax_cross_entropy, src, 2, NULL);
}
