#include "ops/reduce.h"

#include "ops/ops.h"

enum td_status td_reduce_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0];
    unsigned mask = (unsigned)n->attr.i[0];
    char s[128];
    td_shape_format(&x->shape, s, sizeof(s));
    if (x->dtype != TD_F32) return td_node_fail(n, "expects a float operand, got int32 %s", s);
    for (int d = x->shape.rank; d < 32; d++)
        if (mask & (1u << d)) return td_node_fail(n, "axis %d out of range for %s", d, s);
    n->shape.rank = 0;
    for (int d = 0; d < x->shape.rank; d++) {
        if (!(mask & (1u << d)))
            n->shape.dim[n->shape.rank++] = x->shape.dim[d];
        else if (n->attr.i[1])
            n->shape.dim[n->shape.rank++] = 1;
    }
    n->dtype = TD_F32;
    return TD_OK;
}

struct td_shape td_reduce_kept_shape(const struct td_node *n)
{
    struct td_shape s = n->src[0]->shape;
    for (int d = 0; d < s.rank; d++)
        if ((unsigned)n->attr.i[0] & (1u << d)) s.dim[d] = 1;
    return s;
}

int64_t td_reduce_count(const struct td_node *n)
{
    return td_shape_numel(&n->src[0]->shape) / td_shape_numel(&n->shape);
}

/* x seen as groups of adjacent axes of one kind (reduced or kept), size-1
 * axes dropped: the last group is contiguous in x, the others are walked
 * with x strides. Kept groups other than the last index the output rows. */
struct red_view {
    int n_kept, n_red;
    int64_t kdim[TD_MAX_DIMS], kstride[TD_MAX_DIMS];
    int64_t rdim[TD_MAX_DIMS], rstride[TD_MAX_DIMS];
    int64_t inner;     /* size of the last group (1 when there is none) */
    int inner_reduced; /* the last group is reduced */
    int64_t rows;      /* product of kdim */
    int64_t positions; /* product of rdim */
};

static void red_view_init(struct red_view *v, const struct td_shape *xs, unsigned mask)
{
    int64_t dim[TD_MAX_DIMS];
    int red[TD_MAX_DIMS], m = 0;
    for (int d = 0; d < xs->rank; d++) {
        if (xs->dim[d] == 1) continue;
        int r = (mask >> d) & 1u;
        if (m > 0 && red[m - 1] == r) {
            dim[m - 1] *= xs->dim[d];
        } else {
            dim[m] = xs->dim[d];
            red[m++] = r;
        }
    }
    v->n_kept = v->n_red = 0;
    v->inner = m > 0 ? dim[m - 1] : 1;
    v->inner_reduced = m > 0 && red[m - 1];
    v->rows = v->positions = 1;
    int64_t stride = v->inner;
    for (int k = m - 2; k >= 0; k--) {
        if (red[k]) {
            v->rdim[v->n_red] = dim[k];
            v->rstride[v->n_red++] = stride;
            v->positions *= dim[k];
        } else {
            v->kdim[v->n_kept] = dim[k];
            v->kstride[v->n_kept++] = stride;
            v->rows *= dim[k];
        }
        stride *= dim[k];
    }
}

/* x offset of index idx over groups listed innermost first. */
static int64_t group_offset(const int64_t *dim, const int64_t *stride, int n, int64_t idx)
{
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        off += idx % dim[k] * stride[k];
        idx /= dim[k];
    }
    return off;
}

/* Rows of BLOCK outputs are the unit of work when the last group is kept, so
 * a reduction to a single row still spreads over threads. */
#define BLOCK 512
#define LANES 16

/* y[row, j] = scale * sum over positions of x[row, pos, j]: the last group
 * is kept, whole contiguous rows are added. */
static void reduce_rows(const struct red_view *v, const float *x, float *y, float scale,
                        int nthreads)
{
    int64_t nblk = (v->inner + BLOCK - 1) / BLOCK;
    TD_PARALLEL_FOR(nthreads, t, v->rows * nblk, {
        int64_t row = t / nblk, j0 = t % nblk * BLOCK;
        int64_t len = v->inner - j0 < BLOCK ? v->inner - j0 : BLOCK;
        const float *xb = x + group_offset(v->kdim, v->kstride, v->n_kept, row) + j0;
        float *yb = y + row * v->inner + j0;
        for (int64_t j = 0; j < len; j++) yb[j] = xb[j];
        for (int64_t p = 1; p < v->positions; p++) {
            const float *xp = xb + group_offset(v->rdim, v->rstride, v->n_red, p);
            for (int64_t j = 0; j < len; j++) yb[j] += xp[j];
        }
        if (scale != 1.0f)
            for (int64_t j = 0; j < len; j++) yb[j] *= scale;
    });
}

/* y[row] = scale * sum over positions and j of x[row, pos, j]: the last group
 * is reduced, contiguous runs are summed in LANES partial sums (fixed order,
 * vectorizable). */
static void reduce_runs(const struct red_view *v, const float *x, float *y, float scale,
                        int nthreads)
{
    TD_PARALLEL_FOR(nthreads, row, v->rows, {
        const float *xb = x + group_offset(v->kdim, v->kstride, v->n_kept, row);
        float lane[LANES] = {0};
        for (int64_t p = 0; p < v->positions; p++) {
            const float *xp = xb + group_offset(v->rdim, v->rstride, v->n_red, p);
            int64_t j = 0;
            for (; j + LANES <= v->inner; j += LANES)
                for (int l = 0; l < LANES; l++) lane[l] += xp[j + l];
            for (; j < v->inner; j++) lane[j % LANES] += xp[j];
        }
        for (int w = LANES / 2; w > 0; w /= 2)
            for (int l = 0; l < w; l++) lane[l] += lane[l + w];
        y[row] = lane[0] * scale;
    });
}

void td_reduce_run(const struct td_exec *ex, float scale)
{
    const struct td_node *n = ex->node;
    struct red_view v;
    red_view_init(&v, &n->src[0]->shape, (unsigned)n->attr.i[0]);
    if (v.inner_reduced)
        reduce_runs(&v, ex->in[0], ex->out, scale, ex->nthreads);
    else
        reduce_rows(&v, ex->in[0], ex->out, scale, ex->nthreads);
}

struct td_node *td_reduce_spread(struct td_graph *g, const struct td_node *n, struct td_node *ct)
{
    const struct td_shape *xs = &n->src[0]->shape;
    struct td_shape kept = td_reduce_kept_shape(n);
    struct td_node *r = td_shape_equal(&ct->shape, &kept) ? ct : td_reshape(g, ct, kept);
    return td_shape_equal(&kept, xs) ? r : td_broadcast_to(g, r, *xs);
}

void td_reduce_reference(const struct td_node *n, const void *const *in, float *out, int mean)
{
    const struct td_shape *xs = &n->src[0]->shape;
    struct td_shape kept = td_reduce_kept_shape(n);
    int64_t xst[TD_MAX_DIMS], kst[TD_MAX_DIMS], count = td_shape_numel(&n->shape);
    td_shape_strides(xs, xst);
    td_shape_strides(&kept, kst);
    const float *x = in[0];
    for (int64_t o = 0; o < count; o++) {
        /* Walk every x position and keep those whose kept-shape index is o. */
        double acc = 0;
        for (int64_t i = 0; i < td_shape_numel(xs); i++) {
            int64_t k = 0;
            for (int d = 0; d < xs->rank; d++)
                if (kept.dim[d] != 1) k += (i / xst[d] % xs->dim[d]) * kst[d];
            if (k == o) acc += x[i];
        }
        out[o] = (float)(mean ? acc / (double)td_reduce_count(n) : acc);
    }
}
