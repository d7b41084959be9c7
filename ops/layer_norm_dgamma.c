/* layer_norm_dgamma: dgamma[c] = sum over rows of ct[r, c] * xhat[r, c],
 * layer_norm's VJP for gamma in one pass over x and ct (xhat is recomputed
 * per row in cache, never stored). x [..., C] (rank >= 1), ct of x's shape,
 * dgamma [C], TD_F32. attr: f[0] = eps >= 0.
 *
 * Deterministic: rows are cut into fixed blocks of NORM_BLOCK rows whatever
 * the thread count; each block sums its rows in order into its own partial
 * row (scratch), then the partials are added in block order.
 *
 * Rules (second order, builders): linear in ct (its rule is itself); in x,
 * column sums of ct N_x(t). Transposes (cotangent w [C]): ct gets
 * xhat * w, x gets N_x(ct * w) = layer_norm_grad(x, w, ct). */
#include "ops/norm_common.h"
#include "ops/rules.h"

#define NORM_BLOCK 32

/* Columns of the partials summed by one iteration of the final pass. */
#define COL_CHUNK 256

static int64_t cols(const struct td_node *n)
{
    return n->src[0]->shape.dim[n->src[0]->shape.rank - 1];
}

static int64_t blocks(const struct td_node *n)
{
    int64_t rows = td_shape_numel(&n->src[0]->shape) / cols(n);
    return (rows + NORM_BLOCK - 1) / NORM_BLOCK;
}

static enum td_status layer_norm_dgamma_shape(struct td_node *n)
{
    enum td_status st = td_norm_check(n);
    if (st == TD_OK) st = td_norm_check_same(n, 1, "ct");
    if (st != TD_OK) return st;
    n->shape = (struct td_shape){.rank = 1, .dim = {cols(n)}};
    n->dtype = TD_F32;
    return TD_OK;
}

/* Scratch: one partial row [C] per block. */
static enum td_status layer_norm_dgamma_prepare(struct td_prep *p)
{
    p->scratch_bytes = (size_t)(blocks(p->node) * cols(p->node)) * sizeof(float);
    return TD_OK;
}

/* x, ct [rows, C] row-major; partial [blocks, C] (scratch); dgamma [C]. */
static void layer_norm_dgamma_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const float *x = ex->in[0], *ct = ex->in[1];
    float *partial = ex->scratch, *out = ex->out, eps = n->attr.f[0];
    int64_t c = cols(n), rows = td_shape_numel(&n->src[0]->shape) / c, nb = blocks(n);
    TD_PARALLEL_FOR(ex->nthreads, b, nb, {
        float *acc = partial + b * c;
        for (int64_t j = 0; j < c; j++) acc[j] = 0.f;
        int64_t r1 = (b + 1) * NORM_BLOCK < rows ? (b + 1) * NORM_BLOCK : rows;
        for (int64_t r = b * NORM_BLOCK; r < r1; r++) {
            const float *xr = x + r * c, *cr = ct + r * c;
            float m, rstd;
            td_norm_row_stats(xr, c, eps, &m, &rstd);
            for (int64_t j = 0; j < c; j++) acc[j] += cr[j] * ((xr[j] - m) * rstd);
        }
    });
    int64_t chunks = (c + COL_CHUNK - 1) / COL_CHUNK;
    TD_PARALLEL_FOR(ex->nthreads, k, chunks, {
        int64_t j0 = k * COL_CHUNK, j1 = j0 + COL_CHUNK < c ? j0 + COL_CHUNK : c;
        for (int64_t j = j0; j < j1; j++) out[j] = partial[j];
        for (int64_t b = 1; b < nb; b++)
            for (int64_t j = j0; j < j1; j++) out[j] += partial[b * c + j];
    });
}

static struct td_node *layer_norm_dgamma_jvp(struct td_graph *g, struct td_node *n,
                                             struct td_node *const *t)
{
    struct td_node *x = n->src[0], *ct = n->src[1], *d = NULL;
    float eps = n->attr.f[0];
    if (t[1]) d = td_layer_norm_dgamma(g, x, t[1], eps);
    if (t[0])
        d = td_rule_add(g, d,
                        td_norm_sum_rows(g, td_mul(g, ct, td_normalize_grad(g, x, t[0], eps))));
    return d;
}

static void layer_norm_dgamma_vjp(struct td_graph *g, struct td_node *n, struct td_node *w,
                                  unsigned need, struct td_node **cts)
{
    struct td_node *x = n->src[0], *ct = n->src[1];
    float eps = n->attr.f[0];
    if (need & 2u) cts[1] = td_mul(g, td_normalize(g, x, eps), w);
    if (need & 1u) cts[0] = td_layer_norm_grad(g, x, w, ct, eps);
}

static void layer_norm_dgamma_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0], *ct = in[1];
    int64_t c = cols(n), rows = td_shape_numel(&n->src[0]->shape) / c;
    for (int64_t j = 0; j < c; j++) {
        double acc = 0;
        for (int64_t r = 0; r < rows; r++) {
            double m, rstd;
            td_norm_reference_stats(x + r * c, c, n->attr.f[0], &m, &rstd);
            acc += ct[r * c + j] * (x[r * c + j] - m) * rstd;
        }
        out[j] = (float)acc;
    }
}

static struct td_node *build_default(struct td_graph *g, struct td_node *const *in)
{
    return td_layer_norm_dgamma(g, in[0], in[1], TD_LAYER_NORM_EPS);
}

static struct td_node *build_eps(struct td_graph *g, struct td_node *const *in)
{
    return td_layer_norm_dgamma(g, in[0], in[1], 0.25f);
}

/* 70 rows: two full blocks and a partial one. */
static const struct td_op_case layer_norm_dgamma_cases[] = {
    {.n_in = 2, .shape = {{2, {4, 7}}, {2, {4, 7}}}, .build = build_default},
    {.n_in = 2, .shape = {{3, {2, 3, 37}}, {3, {2, 3, 37}}}, .build = build_default},
    {.n_in = 2, .shape = {{1, {6}}, {1, {6}}}, .build = build_eps},
    {.n_in = 2, .shape = {{2, {70, 5}}, {2, {70, 5}}}, .build = build_eps},
};

/* Reads x and ct once, writes only [C]: measured at 1.2x an add of x's
 * size (3 elements touched) on one thread. The output's numel is not the
 * work: x's is. */
static double layer_norm_dgamma_cost(const struct td_node *n)
{
    return 4.0 * (double)td_shape_numel(&n->src[0]->shape);
}

const struct td_op_def td_op_layer_norm_dgamma = {
    .name = "layer_norm_dgamma",
    .n_src = 2,
    .shape = layer_norm_dgamma_shape,
    .prepare = layer_norm_dgamma_prepare,
    .forward = layer_norm_dgamma_forward,
    .jvp = layer_norm_dgamma_jvp,
    .vjp = layer_norm_dgamma_vjp,
    .cost = layer_norm_dgamma_cost,
    .test = TD_NORM_TEST(layer_norm_dgamma_cases, layer_norm_dgamma_reference),
};

struct td_node *td_layer_norm_dgamma(struct td_graph *g, struct td_node *x, struct td_node *ct,
                                     float eps)
{
    struct td_node *src[2] = {x, ct};
    struct td_attr attr = {.f = {eps}};
    return td_node_new(g, &td_op_layer_norm_dgamma, src, 2, &attr);
}
