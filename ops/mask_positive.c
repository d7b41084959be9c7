/* mask_positive: y = a where m > 0, else 0. a, m and y have one shape (no
 * broadcasting), TD_F32. No attributes. ReLU's derivative rules in one
 * pass instead of step(m) followed by a multiply. A NaN in m masks (NaN > 0
 * is false); a NaN in a passes where m > 0.
 * The mask is piecewise constant: m gets no tangent and no cotangent. */
#include "ops/rules.h"

static enum td_status mask_positive_shape(struct td_node *n)
{
    const struct td_node *a = n->src[0], *m = n->src[1];
    char sa[128], sm[128];
    td_shape_format(&a->shape, sa, sizeof(sa));
    td_shape_format(&m->shape, sm, sizeof(sm));
    if (a->dtype != TD_F32 || m->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got value %s %s and mask %s %s",
                            a->dtype == TD_F32 ? "float32" : "int32", sa,
                            m->dtype == TD_F32 ? "float32" : "int32", sm);
    if (!td_shape_equal(&a->shape, &m->shape))
        return td_node_fail(n, "value %s and mask %s must have the same shape", sa, sm);
    n->shape = a->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* Elements handed to one call of mask_range by the parallel loop. */
#define MASK_BLOCK 4096

/* a, m, y: elements [i0, i1) of buffers of one shape; y may alias a (or m):
 * element i is read before it is written. Both loads are unconditional so
 * the select compiles to a vector blend, not a branch that random signs
 * mispredict. */
static void mask_range(float *y, const float *a, const float *m, int64_t i0, int64_t i1)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        float v = a[i];
        y[i] = m[i] > 0.f ? v : 0.f;
    }
}

/* a, m, y: the same number of elements, any layout shared by all three. On
 * one thread the loop runs outside any OpenMP region: an empty one costs
 * 1.1 us here even with an if(0) clause, as much as the 16k elements of a
 * hidden layer take. */
static void mask_positive_forward(const struct td_exec *ex)
{
    const float *a = ex->in[0], *m = ex->in[1];
    float *y = ex->out;
    int64_t count = td_shape_numel(&ex->node->shape);
    int64_t blocks = (count + MASK_BLOCK - 1) / MASK_BLOCK;
    TD_PARALLEL_FOR(ex->nthreads, k, blocks, int64_t i0 = k * MASK_BLOCK;
                    mask_range(y, a, m, i0, count - i0 < MASK_BLOCK ? count : i0 + MASK_BLOCK););
}

static struct td_node *mask_positive_jvp(struct td_graph *g, struct td_node *n,
                                         struct td_node *const *t)
{
    return t[0] ? td_mask_positive(g, t[0], n->src[1]) : NULL;
}

static void mask_positive_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                              unsigned need, struct td_node **cts)
{
    if (need & 1u) cts[0] = td_mask_positive(g, ct, n->src[1]);
    if (need & 2u) cts[1] = NULL;
}

static void mask_positive_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *a = in[0], *m = in[1];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) out[i] = (double)m[i] > 0.0 ? a[i] : 0.0f;
}

/* Masks drawn from [-2, 2]: about half the elements pass. */
static const struct td_op_case mask_positive_cases[] = {
    {.n_in = 2, .shape = {{2, {6, 9}}, {2, {6, 9}}}},
    {.n_in = 2, .shape = {{3, {2, 3, 7}}, {3, {2, 3, 7}}}},
    {.n_in = 2, .shape = {{1, {40}}, {1, {40}}}},
    {.n_in = 2, .shape = {{0}, {0}}},
};

const struct td_op_def td_op_mask_positive = {
    .name = "mask_positive",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = mask_positive_shape,
    .forward = mask_positive_forward,
    .jvp = mask_positive_jvp,
    .vjp = mask_positive_vjp,
    .test =
        {
            .lo = -2.0f,
            .hi = 2.0f,
            .fd_eps = 1e-3f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(mask_positive_cases) / sizeof(mask_positive_cases[0])),
            .cases = mask_positive_cases,
            .reference = mask_positive_reference,
        },
};

struct td_node *td_mask_positive(struct td_graph *g, struct td_node *a, struct td_node *m)
{
    struct td_node *src[2] = {a, m};
    return td_node_new(g, &td_op_mask_positive, src, 2, NULL);
}
