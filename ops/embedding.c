/* embedding: y[p, :] = table[ids[p], :], one row per id; no attributes.
 * table [V, d] TD_F32, ids [...] TD_I32 of rank >= 1, y [..., d] TD_F32
 * with ids' dims first. An id outside [0, V) is bad data: the run stops
 * with a message naming the id and its position (td_exec_fail).
 * Linear in the table: the JVP looks the tangent up, the VJP scatter-adds
 * the cotangent into the table's rows (embedding_grad). ids are integers
 * and get no derivative. */
#include <string.h>

#include "ops/embedding.h"
#include "ops/rules.h"

enum td_status td_embedding_ids_shape(struct td_node *n, const struct td_node *ids)
{
    char s[128];
    td_shape_format(&ids->shape, s, sizeof(s));
    if (ids->dtype != TD_I32) return td_node_fail(n, "expects int32 ids, got float32 %s", s);
    if (ids->shape.rank < 1) return td_node_fail(n, "expects ids of rank >= 1, got %s", s);
    if (ids->shape.rank >= TD_MAX_DIMS)
        return td_node_fail(n, "ids %s leave no room for the embedding axis (rank at most %d)", s,
                            TD_MAX_DIMS - 1);
    return TD_OK;
}

static enum td_status embedding_shape(struct td_node *n)
{
    const struct td_node *table = n->src[0], *ids = n->src[1];
    char s[128];
    td_shape_format(&table->shape, s, sizeof(s));
    if (table->dtype != TD_F32 || table->shape.rank != 2)
        return td_node_fail(n, "expects a float32 table [rows, dim], got %s%s",
                            table->dtype == TD_I32 ? "int32 " : "", s);
    enum td_status st = td_embedding_ids_shape(n, ids);
    if (st != TD_OK) return st;
    n->shape = ids->shape;
    n->shape.dim[n->shape.rank++] = table->shape.dim[1];
    n->dtype = TD_F32;
    return TD_OK;
}

int td_embedding_ids_valid(const struct td_exec *ex, const int32_t *ids, int64_t count,
                           int64_t rows)
{
    for (int64_t p = 0; p < count; p++)
        if (ids[p] < 0 || ids[p] >= rows) {
            td_exec_fail(ex, TD_ERR_ARG, "id %d at position %lld is outside the table's %lld rows",
                         (int)ids[p], (long long)p, (long long)rows);
            return 0;
        }
    return 1;
}

/* table [V, d], ids [P] (flattened), y [P, d] row-major: one row copy per
 * id. The ids are checked in order first, so a bad one is reported at its
 * first position whatever the thread count. */
static void embedding_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const float *table = ex->in[0];
    const int32_t *ids = ex->in[1];
    float *y = ex->out;
    int64_t rows = n->src[0]->shape.dim[0], d = n->src[0]->shape.dim[1];
    int64_t count = td_shape_numel(&n->src[1]->shape);
    if (!td_embedding_ids_valid(ex, ids, count, rows)) return;
    TD_PARALLEL_FOR(ex->nthreads, p, count,
                    memcpy(y + p * d, table + (int64_t)ids[p] * d, (size_t)d * sizeof(*y)););
}

static struct td_node *embedding_jvp(struct td_graph *g, struct td_node *n,
                                     struct td_node *const *t)
{
    return t[0] ? td_embedding_lookup(g, t[0], n->src[1]) : NULL;
}

static void embedding_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                          struct td_node **cts)
{
    if (need & 1u) cts[0] = td_embedding_grad(g, ct, n->src[1], (int)n->src[0]->shape.dim[0]);
    if (need & 2u) cts[1] = NULL;
}

static void embedding_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *table = in[0];
    const int32_t *ids = in[1];
    int64_t d = n->src[0]->shape.dim[1];
    for (int64_t p = 0; p < td_shape_numel(&n->src[1]->shape); p++)
        for (int64_t j = 0; j < d; j++) out[p * d + j] = table[ids[p] * d + j];
}

static struct td_node *build(struct td_graph *g, struct td_node *const *in)
{
    return td_embedding_lookup(g, in[0], in[1]);
}

/* Ids are drawn from [0, 5): every table has at least 5 rows. */
static const struct td_op_case embedding_cases[] = {
    {.n_in = 2, .shape = {{2, {5, 3}}, {1, {4}}}, .dtype = {TD_F32, TD_I32}, .build = build},
    {.n_in = 2, .shape = {{2, {7, 4}}, {2, {2, 3}}}, .dtype = {TD_F32, TD_I32}, .build = build},
    {.n_in = 2, .shape = {{2, {5, 1}}, {1, {1}}}, .dtype = {TD_F32, TD_I32}, .build = build},
    {.n_in = 2, .shape = {{2, {6, 2}}, {3, {2, 1, 3}}}, .dtype = {TD_F32, TD_I32}, .build = build},
    {.n_in = 2,
     .shape = {{2, {5, 3}}, {5, {1, 2, 1, 1, 2}}},
     .dtype = {TD_F32, TD_I32},
     .build = build},
};

/* Rows copied: y written and read from the table, not the whole table. */
static double embedding_cost(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape) + (double)td_shape_numel(&n->src[1]->shape);
}

const struct td_op_def td_op_embedding = {
    .name = "embedding",
    .n_src = 2,
    .shape = embedding_shape,
    .forward = embedding_forward,
    .jvp = embedding_jvp,
    .vjp = embedding_vjp,
    .cost = embedding_cost,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .int_hi = 5,
            .n_cases = (int)(sizeof(embedding_cases) / sizeof(embedding_cases[0])),
            .cases = embedding_cases,
            .reference = embedding_reference,
        },
};

struct td_node *td_embedding_lookup(struct td_graph *g, struct td_node *table, struct td_node *ids)
{
    struct td_node *src[2] = {table, ids};
    return td_node_new(g, &td_op_embedding, src, 2, NULL);
}
