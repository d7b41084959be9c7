/* transpose: output axis i is input axis perm[i]; attr i[0 .. rank-1] =
 * perm. x [d0, ..., dr-1], y [d_perm[0], ..., d_perm[r-1]]. The kernel is a
 * strided gather; the rules transpose by perm (JVP) or its inverse (VJP). */
#include "ops/rules.h"
#include "ops/strided.h"

static enum td_status transpose_shape(struct td_node *n)
{
    const struct td_shape *xs = &n->src[0]->shape;
    int seen[TD_MAX_DIMS] = {0};
    for (int d = 0; d < xs->rank; d++) {
        int p = n->attr.i[d];
        if (p < 0 || p >= xs->rank || seen[p]) {
            char s[128];
            return td_node_fail(n, "perm entry %d = %d is not a permutation of the axes of %s", d,
                                p, td_shape_format(xs, s, sizeof(s)));
        }
        seen[p] = 1;
        n->shape.dim[d] = xs->dim[p];
    }
    n->shape.rank = xs->rank;
    n->dtype = n->src[0]->dtype;
    return TD_OK;
}

/* y [...] contiguous, x read with x's stride of axis perm[d] along y's axis d. */
static void transpose_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    int64_t xst[TD_MAX_DIMS], st[TD_MAX_DIMS];
    td_shape_strides(&n->src[0]->shape, xst);
    for (int d = 0; d < n->shape.rank; d++) st[d] = xst[n->attr.i[d]];
    td_strided_gather(&n->shape, st, ex->in[0], ex->out, ex->nthreads);
}

static struct td_node *transpose_jvp(struct td_graph *g, struct td_node *n,
                                     struct td_node *const *t)
{
    return t[0] ? td_transpose(g, t[0], n->attr.i) : NULL;
}

static void transpose_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                          struct td_node **cts)
{
    if (!(need & 1u)) return;
    int inv[TD_MAX_DIMS];
    for (int d = 0; d < n->shape.rank; d++) inv[n->attr.i[d]] = d;
    cts[0] = td_transpose(g, ct, inv);
}

/* The test reference: each input element sent to its output position. */
static void transpose_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *xs = &n->src[0]->shape;
    const float *x = in[0];
    int64_t xst[TD_MAX_DIMS], yst[TD_MAX_DIMS];
    td_shape_strides(xs, xst);
    td_shape_strides(&n->shape, yst);
    for (int64_t i = 0; i < td_shape_numel(xs); i++) {
        int64_t j = 0;
        for (int d = 0; d < n->shape.rank; d++)
            j += (i / xst[n->attr.i[d]] % xs->dim[n->attr.i[d]]) * yst[d];
        out[j] = x[i];
    }
}

static struct td_node *build_10(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){1, 0});
}

static struct td_node *build_201(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){2, 0, 1});
}

static struct td_node *build_021(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){0, 2, 1});
}

static struct td_node *build_102(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){1, 0, 2});
}

/* Attention's split into heads, [B, T, H, dh] -> [B, H, T, dh], and back. */
static struct td_node *build_0213(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){0, 2, 1, 3});
}

static struct td_node *build_20314(struct td_graph *g, struct td_node *const *in)
{
    return td_transpose(g, in[0], (const int[]){2, 0, 3, 1, 4});
}

static const struct td_op_case transpose_cases[] = {
    {.n_in = 1, .shape = {{2, {4, 7}}}, .build = build_10},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_201},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_021},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_102},
    {.n_in = 1, .shape = {{4, {2, 3, 4, 5}}}, .build = build_0213},
    {.n_in = 1, .shape = {{4, {1, 3, 1, 5}}}, .build = build_0213},
    {.n_in = 1, .shape = {{5, {2, 3, 4, 2, 3}}}, .build = build_20314},
    /* Larger than the gather's 16 x 16 tiles, with partial tiles at both
     * edges and around a third axis. */
    {.n_in = 1, .shape = {{2, {37, 45}}}, .build = build_10},
    {.n_in = 1, .shape = {{3, {3, 21, 18}}}, .build = build_021},
    {.n_in = 1, .shape = {{3, {5, 3, 33}}}, .build = build_201},
};

const struct td_op_def td_op_transpose = {
    .name = "transpose",
    .n_src = 1,
    .shape = transpose_shape,
    .forward = transpose_forward,
    .jvp = transpose_jvp,
    .vjp = transpose_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(transpose_cases) / sizeof(transpose_cases[0])),
            .cases = transpose_cases,
            .reference = transpose_reference,
        },
};

struct td_node *td_transpose(struct td_graph *g, struct td_node *x, const int *perm)
{
    struct td_attr attr = {0};
    for (int d = 0; x && perm && d < x->shape.rank; d++) attr.i[d] = perm[d];
    if (g && x && !perm) {
        td_graph_fail(g, TD_ERR_ARG, "transpose: perm is NULL");
        return NULL;
    }
    return td_node_new(g, &td_op_transpose, &x, 1, &attr);
}
