/* embedding_grad: y[v, :] = sum of ct[p, :] over the positions p with
 * ids[p] == v, in position order (the scatter-add that is embedding's VJP);
 * attr i[0] = V, the table's rows. ct [..., d] TD_F32, ids [...] TD_I32
 * with ct's leading dims, y [V, d] TD_F32; rows no id names are zero. An
 * id outside [0, V) stops the run as in embedding.
 * Linear in ct: the JVP is embedding_grad of the tangent, the VJP looks the
 * cotangent up (embedding). ids get no derivative. */
#include <string.h>

#include "ops/embedding.h"
#include "ops/rules.h"

/* Columns per block handed to a thread: a 64-byte cache line, so threads
 * never write the same line. */
#define TD_EMB_COLS 16

static enum td_status embedding_grad_shape(struct td_node *n)
{
    const struct td_node *ct = n->src[0], *ids = n->src[1];
    enum td_status st = td_embedding_ids_shape(n, ids);
    if (st != TD_OK) return st;
    char sc[128], si[128];
    td_shape_format(&ct->shape, sc, sizeof(sc));
    td_shape_format(&ids->shape, si, sizeof(si));
    int match = ct->dtype == TD_F32 && ct->shape.rank == ids->shape.rank + 1;
    for (int d = 0; match && d < ids->shape.rank; d++)
        match = ct->shape.dim[d] == ids->shape.dim[d];
    if (!match)
        return td_node_fail(n, "cotangent %s%s does not match ids %s: expected float32 %s + [dim]",
                            ct->dtype == TD_I32 ? "int32 " : "", sc, si, si);
    if (n->attr.i[0] < 1) return td_node_fail(n, "rows must be >= 1, got %d", n->attr.i[0]);
    n->shape.rank = 2;
    n->shape.dim[0] = n->attr.i[0];
    n->shape.dim[1] = ct->shape.dim[ct->shape.rank - 1];
    n->dtype = TD_F32;
    return TD_OK;
}

/* Columns [c0, c1) of ct [P, d] and y [V, d] row-major: y zeroed, then
 * every position added to its row in position order. */
static void scatter_columns(float *restrict y, const float *restrict ct, const int32_t *ids,
                            int64_t count, int64_t rows, int64_t d, int64_t c0, int64_t c1)
{
    for (int64_t v = 0; v < rows; v++) memset(y + v * d + c0, 0, (size_t)(c1 - c0) * sizeof(*y));
    for (int64_t p = 0; p < count; p++) {
        float *restrict dst = y + (int64_t)ids[p] * d;
        const float *restrict src = ct + p * d;
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
}

/* ct [P, d] (ids' dims flattened), ids [P], y [V, d]. Threads own disjoint
 * column blocks and each walks every position in order, so each element's
 * sum has one order for any thread count and no two threads write one
 * element. */
static void embedding_grad_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const int32_t *ids = ex->in[1];
    int64_t rows = n->shape.dim[0], d = n->shape.dim[1];
    int64_t count = td_shape_numel(&n->src[1]->shape);
    if (!td_embedding_ids_valid(ex, ids, count, rows)) return;
    int64_t blocks = (d + TD_EMB_COLS - 1) / TD_EMB_COLS;
    int parts = ex->nthreads < blocks ? ex->nthreads : (int)blocks;
    TD_PARALLEL_FOR(parts, t, parts, {
        int64_t c0 = blocks * t / parts * TD_EMB_COLS, c1 = blocks * (t + 1) / parts * TD_EMB_COLS;
        scatter_columns(ex->out, ex->in[0], ids, count, rows, d, c0, c1 < d ? c1 : d);
    });
}

static struct td_node *embedding_grad_jvp(struct td_graph *g, struct td_node *n,
                                          struct td_node *const *t)
{
    return t[0] ? td_embedding_grad(g, t[0], n->src[1], n->attr.i[0]) : NULL;
}

static void embedding_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                               unsigned need, struct td_node **cts)
{
    if (need & 1u) cts[0] = td_embedding_lookup(g, ct, n->src[1]);
    if (need & 2u) cts[1] = NULL;
}

/* The test reference: sums in double, position by position. */
static void embedding_grad_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *ct = in[0];
    const int32_t *ids = in[1];
    int64_t rows = n->shape.dim[0], d = n->shape.dim[1];
    for (int64_t v = 0; v < rows; v++)
        for (int64_t j = 0; j < d; j++) {
            double s = 0;
            for (int64_t p = 0; p < td_shape_numel(&n->src[1]->shape); p++)
                if (ids[p] == v) s += ct[p * d + j];
            out[v * d + j] = (float)s;
        }
}

static struct td_node *build_5(struct td_graph *g, struct td_node *const *in)
{
    return td_embedding_grad(g, in[0], in[1], 5);
}

static struct td_node *build_7(struct td_graph *g, struct td_node *const *in)
{
    return td_embedding_grad(g, in[0], in[1], 7);
}

/* Ids are drawn from [0, 5): rows 5 and 6 of a 7-row table stay zero. */
static const struct td_op_case embedding_grad_cases[] = {
    {.n_in = 2, .shape = {{2, {4, 3}}, {1, {4}}}, .dtype = {TD_F32, TD_I32}, .build = build_5},
    {.n_in = 2,
     .shape = {{3, {2, 3, 4}}, {2, {2, 3}}},
     .dtype = {TD_F32, TD_I32},
     .build = build_7},
    {.n_in = 2, .shape = {{2, {1, 2}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build_5},
    {.n_in = 2,
     .shape = {{4, {3, 1, 2, 6}}, {3, {3, 1, 2}}},
     .dtype = {TD_F32, TD_I32},
     .build = build_5},
    {.n_in = 2, .shape = {{2, {12, 2}}, {1, {12}}}, .dtype = {TD_F32, TD_I32}, .build = build_5},
    {.n_in = 2, .shape = {{2, {6, 40}}, {1, {6}}}, .dtype = {TD_F32, TD_I32}, .build = build_7},
};

const struct td_op_def td_op_embedding_grad = {
    .name = "embedding_grad",
    .n_src = 2,
    .shape = embedding_grad_shape,
    .forward = embedding_grad_forward,
    .jvp = embedding_grad_jvp,
    .vjp = embedding_grad_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .int_hi = 5,
            .n_cases = (int)(sizeof(embedding_grad_cases) / sizeof(embedding_grad_cases[0])),
            .cases = embedding_grad_cases,
            .reference = embedding_grad_reference,
        },
};

struct td_node *td_embedding_grad(struct td_graph *g, struct td_node *ct, struct td_node *ids,
                                  int rows)
{
    struct td_attr attr = {.i = {rows}};
    struct td_node *src[2] = {ct, ids};
    return td_node_new(g, &td_op_embedding_grad, src, 2, &attr);
}
