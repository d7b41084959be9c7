/* dropout: y = x * keep / (1 - rate) with keep = 1 iff
 *   td_rng_uniform(graph seed, TD_RNG_STREAM_DROPOUT + (mask id << 40) + step, i) >= rate
 * for element i, or y = x when step < 0 (evaluation).
 * attr f[0] = rate in (0, 1), i[0] = mask id. x [...] TD_F32, step [1]
 * TD_I32 (any shape of one element), fed by the caller each run; y has x's
 * shape. The mask is a pure function of (seed, step, mask id, i): the same
 * on any thread count and at every run with the same step. td_dropout sets
 * the mask id to the node's id, and the rules copy it into the nodes they
 * build, so the forward pass, its JVP and its VJP drop the same elements.
 * Linear in x: the JVP and VJP are dropout of the tangent or cotangent. The
 * step is an integer and gets no derivative. Mask ids below 2^20 keep the
 * streams apart from other namespaces (graphs of fewer than a million
 * nodes). */
#include <math.h>
#include <string.h>

#include "graph/rng.h"
#include "ops/rules.h"

static enum td_status dropout_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0], *step = n->src[1];
    float rate = n->attr.f[0];
    char sx[128], ss[128];
    td_shape_format(&x->shape, sx, sizeof(sx));
    td_shape_format(&step->shape, ss, sizeof(ss));
    if (x->dtype != TD_F32) return td_node_fail(n, "expects a float operand, got int32 %s", sx);
    if (step->dtype != TD_I32 || td_shape_numel(&step->shape) != 1)
        return td_node_fail(n, "expects an int32 step of one element, got %s %s",
                            step->dtype == TD_I32 ? "int32" : "float32", ss);
    if (!(rate >= 0.0f && rate < 1.0f))
        return td_node_fail(n, "rate must be in [0, 1), got %g", (double)rate);
    n->shape = x->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* Elements handed to one call of dropout_range by the parallel loop. */
#define DROPOUT_BLOCK 4096

/* Elements [i0, i1) of x and y (y may alias x): one keyed draw each. The
 * draw's uniform is k / 2^24 for its top 24 bits k, so u >= rate exactly
 * when k >= threshold = ceil(rate 2^24): an integer compare, no float
 * conversion. */
static void dropout_range(float *y, const float *x, uint64_t key, uint64_t threshold, float scale,
                          int64_t i0, int64_t i1)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        float v = x[i] * scale;
        y[i] = (td_rng_u64_keyed(key, (uint64_t)i) >> 40) >= threshold ? v : 0.0f;
    }
}

/* x, y: the same number of elements, row-major; step [1]. */
static void dropout_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const float *x = ex->in[0];
    float *y = ex->out;
    int32_t step = *(const int32_t *)ex->in[1];
    int64_t count = td_shape_numel(&n->shape);
    if (step < 0) {
        if (y != x) memcpy(y, x, (size_t)count * sizeof(*y));
        return;
    }
    float rate = n->attr.f[0], scale = 1.0f / (1.0f - rate);
    uint64_t threshold = (uint64_t)ceilf(rate * 16777216.0f);
    uint64_t stream =
        TD_RNG_STREAM_DROPOUT + ((uint64_t)(uint32_t)n->attr.i[0] << 40) + (uint64_t)step;
    uint64_t key = td_rng_key(td_graph_seed(n->graph), stream);
    int64_t blocks = (count + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK;
    TD_PARALLEL_FOR(ex->nthreads, k, blocks, int64_t i0 = k * DROPOUT_BLOCK;
                    dropout_range(y, x, key, threshold, scale, i0,
                                  count - i0 < DROPOUT_BLOCK ? count : i0 + DROPOUT_BLOCK););
}

/* A dropout node with an explicit mask id: the rules' builder. */
static struct td_node *dropout_new(struct td_graph *g, struct td_node *x, struct td_node *step,
                                   float rate, int mask_id)
{
    struct td_attr attr = {.f = {rate}, .i = {mask_id}};
    struct td_node *src[2] = {x, step};
    return td_node_new(g, &td_op_dropout, src, 2, &attr);
}

static struct td_node *dropout_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? dropout_new(g, t[0], n->src[1], n->attr.f[0], n->attr.i[0]) : NULL;
}

static void dropout_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                        struct td_node **cts)
{
    if (need & 1u) cts[0] = dropout_new(g, ct, n->src[1], n->attr.f[0], n->attr.i[0]);
    if (need & 2u) cts[1] = NULL;
}

/* The test reference: the mask drawn element by element with the plain
 * td_rng_uniform, the scale divided in double. */
static void dropout_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0];
    int32_t step = *(const int32_t *)in[1];
    double rate = n->attr.f[0];
    uint64_t seed = td_graph_seed(n->graph);
    uint64_t stream =
        TD_RNG_STREAM_DROPOUT + (uint64_t)n->attr.i[0] * (1ull << 40) + (uint64_t)step;
    for (int64_t i = 0; i < td_shape_numel(&n->shape); i++) {
        int keep = step < 0 || td_rng_uniform(seed, stream, (uint64_t)i) >= rate;
        out[i] = keep ? (float)(x[i] / (step < 0 ? 1.0 : 1.0 - rate)) : 0.0f;
    }
}

static struct td_node *build_03(struct td_graph *g, struct td_node *const *in)
{
    return td_dropout(g, in[0], 0.3f, in[1]);
}

static struct td_node *build_05(struct td_graph *g, struct td_node *const *in)
{
    return td_dropout(g, in[0], 0.5f, in[1]);
}

static struct td_node *build_09(struct td_graph *g, struct td_node *const *in)
{
    return td_dropout(g, in[0], 0.9f, in[1]);
}

/* Steps are drawn from [0, 7): the cases see different masks. */
static const struct td_op_case dropout_cases[] = {
    {.n_in = 2, .shape = {{2, {4, 5}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build_03},
    {.n_in = 2, .shape = {{3, {2, 3, 8}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build_05},
    {.n_in = 2, .shape = {{1, {64}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build_09},
    {.n_in = 2, .shape = {{1, {1}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build_03},
    {.n_in = 2, .shape = {{0}, {0}}, .dtype = {TD_F32, TD_I32}, .build = build_05},
    {.n_in = 2,
     .shape = {{4, {2, 2, 3, 5}}, {1, {1}}},
     .dtype = {TD_F32, TD_I32},
     .build = build_05},
};

/* A keyed hash per element (three 64-bit multiplies) takes about three
 * times a streaming copy of the same elements (166 vs 45 us on
 * [16,128,256], one thread), so its work counts as three copies. */
static double dropout_cost(const struct td_node *n)
{
    return 6.0 * (double)td_shape_numel(&n->shape);
}

const struct td_op_def td_op_dropout = {
    .name = "dropout",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = dropout_shape,
    .forward = dropout_forward,
    .jvp = dropout_jvp,
    .vjp = dropout_vjp,
    .cost = dropout_cost,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .int_hi = 7,
            .n_cases = (int)(sizeof(dropout_cases) / sizeof(dropout_cases[0])),
            .cases = dropout_cases,
            .reference = dropout_reference,
        },
};

struct td_node *td_dropout(struct td_graph *g, struct td_node *x, float rate, struct td_node *step)
{
    if (rate == 0.0f) return x;
    struct td_node *n = dropout_new(g, x, step, rate, 0);
    if (n) n->attr.i[0] = n->id;
    return n;
}
