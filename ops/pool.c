#include "ops/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct td_attr td_pool_attr(const struct td_pool2d_params *params, int h, int w)
{
    struct td_attr a = {.i = {0, 0, 0, 0, 0, 0, h, w}};
    if (!params) return a;
    for (int d = 0; d < 2; d++) {
        a.i[d] = params->kernel[d];
        a.i[2 + d] = params->stride[d] ? params->stride[d] : params->kernel[d];
        a.i[4 + d] = params->pad[d];
    }
    return a;
}

struct td_pool2d_params td_pool_params(const struct td_node *n)
{
    const int *i = n->attr.i;
    return (struct td_pool2d_params){{i[0], i[1]}, {i[2], i[3]}, {i[4], i[5]}};
}

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p)
{
    return k > in + 2 * p ? 0 : (in + 2 * p - k) / s + 1;
}

static void geom_of(const struct td_node *n, enum td_pool_kind kind, struct td_pool_geom *g)
{
    const int64_t *a = n->src[0]->shape.dim;
    g->planes = a[0] * a[1];
    g->h = kind == TD_POOL_AVG_GRAD ? n->attr.i[6] : a[2];
    g->w = kind == TD_POOL_AVG_GRAD ? n->attr.i[7] : a[3];
    for (int d = 0; d < 2; d++) {
        g->kernel[d] = n->attr.i[d];
        g->stride[d] = n->attr.i[2 + d];
        g->pad[d] = n->attr.i[4 + d];
    }
    g->oh = out_size(g->h, g->kernel[0], g->stride[0], g->pad[0]);
    g->ow = out_size(g->w, g->kernel[1], g->stride[1], g->pad[1]);
}

static enum td_status check_attr(struct td_node *n)
{
    const int *i = n->attr.i;
    if (i[0] < 1 || i[1] < 1)
        return td_node_fail(n, "kernel size must be >= 1, got (%d,%d)", i[0], i[1]);
    if (i[2] < 1 || i[3] < 1)
        return td_node_fail(n, "stride must be >= 1, got (%d,%d)", i[2], i[3]);
    if (i[4] < 0 || i[5] < 0)
        return td_node_fail(n, "padding must be >= 0, got (%d,%d)", i[4], i[5]);
    /* PyTorch's limit: a window is never all padding. */
    if (2 * i[4] > i[0] || 2 * i[5] > i[1])
        return td_node_fail(n, "padding (%d,%d) is more than half the kernel (%d,%d)", i[4], i[5],
                            i[0], i[1]);
    return TD_OK;
}

enum td_status td_pool_shape(struct td_node *n, enum td_pool_kind kind)
{
    static const char *const first[] = {"input", "input", "input", "input", "output gradient"};
    static const char *const second[] = {"", "tangent", "output gradient", "", ""};
    char s0[128], s1[128];
    const struct td_node *a = n->src[0];
    td_shape_format(&a->shape, s0, sizeof(s0));
    for (int k = 0; k < n->n_src; k++)
        if (n->src[k]->dtype != TD_F32)
            return td_node_fail(n, "expects float operands, got int32 %s %s",
                                k ? second[kind] : first[kind],
                                td_shape_format(&n->src[k]->shape, s1, sizeof(s1)));
    if (a->shape.rank != 4)
        return td_node_fail(n, "%s must be %s, got %s", first[kind],
                            kind == TD_POOL_AVG_GRAD ? "[N, C, OH, OW]" : "[N, C, H, W]", s0);
    enum td_status st = check_attr(n);
    if (st != TD_OK) return st;
    struct td_pool_geom g;
    geom_of(n, kind, &g);
    if (kind == TD_POOL_AVG_GRAD && (g.h < 1 || g.w < 1))
        return td_node_fail(n, "input size must be >= 1, got (%lld,%lld)", (long long)g.h,
                            (long long)g.w);
    if (g.oh < 1 || g.ow < 1)
        return td_node_fail(n, "kernel (%lld,%lld) is larger than the padded input (%lld,%lld)",
                            (long long)g.kernel[0], (long long)g.kernel[1],
                            (long long)(g.h + 2 * g.pad[0]), (long long)(g.w + 2 * g.pad[1]));
    struct td_shape in = a->shape, out = a->shape;
    if (kind == TD_POOL_AVG_GRAD) {
        in.dim[2] = g.h, in.dim[3] = g.w;
        out.dim[2] = g.oh, out.dim[3] = g.ow;
    } else {
        out.dim[2] = g.oh, out.dim[3] = g.ow;
    }
    const struct td_shape *b = n->n_src > 1 ? &n->src[1]->shape : NULL;
    td_shape_format(&out, s1, sizeof(s1));
    if (kind == TD_POOL_SELECT && !td_shape_equal(b, &in)) {
        char sb[128];
        return td_node_fail(n, "tangent %s does not match the input %s",
                            td_shape_format(b, sb, sizeof(sb)), s0);
    }
    if (kind == TD_POOL_SCATTER && !td_shape_equal(b, &out)) {
        char sb[128];
        return td_node_fail(n, "output gradient %s does not match the pooling output %s",
                            td_shape_format(b, sb, sizeof(sb)), s1);
    }
    if (kind == TD_POOL_AVG_GRAD && !td_shape_equal(&a->shape, &out))
        return td_node_fail(n, "output gradient %s does not match the pooling output %s", s0, s1);
    n->shape = kind == TD_POOL_SCATTER || kind == TD_POOL_AVG_GRAD ? in : out;
    n->dtype = TD_F32;
    return TD_OK;
}

/* c ? a : b on bits: compilers keep it a blend even in scalar code, where a
 * float select becomes a branch that random data mispredicts half the time
 * (short rows leave much of the work to the scalar loop tails). */
static inline float pick(int c, float a, float b)
{
    uint32_t ua, ub, m = 0u - (uint32_t)c;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

/* Whether v replaces the running maximum best: greater, or the first NaN. */
static inline int beats(float v, float best)
{
    return (v > best) | ((v != v) & (best == best));
}

/* Output columns per pass of the row kernels (their state lives on the
 * stack). */
#define POOL_CHUNK 64

/* Columns ow in [c0, c1) whose input column ow * s + off lies in [0, w):
 * *lo, *hi. */
static void valid_columns(int64_t s, int64_t off, int64_t w, int64_t c0, int64_t c1, int64_t *lo,
                          int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = w - 1 - off < 0 ? 0 : (w - 1 - off) / s + 1;
    *lo = a > c0 ? a : c0;
    *hi = b < c1 ? b : c1;
}

/* The argmax of windows (oh, c0 .. c1-1) of plane x [h, w]: the first
 * maximum in row-major window order (a NaN beats every number, the first NaN
 * wins), as plane indices in arg[0 .. c1-c0). Each window starts from its
 * first element inside the input; then rows ih and kernel columns kw are
 * visited in order, every column of the chunk at once, so the inner loop
 * vectorizes. `s` is the column stride: callers pass a constant where they
 * can so that it folds. */
static inline void row_argmax(const struct td_pool_geom *g, const float *x, int64_t oh, int64_t c0,
                              int64_t c1, int64_t s, float *best, int64_t *arg)
{
    int64_t h0 = oh * g->stride[0] - g->pad[0], p = g->pad[1], w = g->w;
    int64_t ih0 = h0 < 0 ? 0 : h0, ih1 = h0 + g->kernel[0] > g->h ? g->h : h0 + g->kernel[0];
    for (int64_t ow = c0; ow < c1; ow++) {
        int64_t iw = ow * s - p < 0 ? 0 : ow * s - p;
        best[ow - c0] = x[ih0 * w + iw];
        arg[ow - c0] = ih0 * w + iw;
    }
    for (int64_t ih = ih0; ih < ih1; ih++)
        for (int64_t kw = 0; kw < g->kernel[1]; kw++) {
            int64_t off = kw - p, lo, hi;
            valid_columns(s, off, w, c0, c1, &lo, &hi);
            const float *xr = x + ih * w + off;
            float *b = best - c0;
            int64_t *a = arg - c0;
#pragma omp simd
            for (int64_t ow = lo; ow < hi; ow++) {
                float v = xr[ow * s];
                int take = beats(v, b[ow]);
                b[ow] = pick(take, v, b[ow]);
                a[ow] = take ? ih * w + ow * s + off : a[ow];
            }
        }
}

/* Sums of windows (oh, c0 .. c1-1) of plane x [h, w], padding adding
 * nothing, in row-major window order. */
static inline void row_sum(const struct td_pool_geom *g, const float *x, int64_t oh, int64_t c0,
                           int64_t c1, int64_t s, float *sum)
{
    int64_t h0 = oh * g->stride[0] - g->pad[0], w = g->w;
    int64_t ih0 = h0 < 0 ? 0 : h0, ih1 = h0 + g->kernel[0] > g->h ? g->h : h0 + g->kernel[0];
    for (int64_t ow = c0; ow < c1; ow++) sum[ow - c0] = 0;
    for (int64_t ih = ih0; ih < ih1; ih++)
        for (int64_t kw = 0; kw < g->kernel[1]; kw++) {
            int64_t off = kw - g->pad[1], lo, hi;
            valid_columns(s, off, w, c0, c1, &lo, &hi);
            const float *xr = x + ih * w + off;
            float *acc = sum - c0;
#pragma omp simd
            for (int64_t ow = lo; ow < hi; ow++) acc[ow] += xr[ow * s];
        }
}

/* One (n, c) plane, output row by output row. a: x [h, w] (ct [oh, ow] for
 * AVG_GRAD); b: t [h, w] (SELECT) or ct [oh, ow] (SCATTER); out: [oh, ow],
 * or [h, w] for SCATTER and AVG_GRAD, which add their windows in row-major
 * window order. */
static inline void pool_plane_s(const struct td_pool_geom *g, enum td_pool_kind kind,
                                const float *a, const float *b, float *out, int64_t s)
{
    float val[POOL_CHUNK], inv_area = 1.0f / (float)(g->kernel[0] * g->kernel[1]);
    int64_t arg[POOL_CHUNK];
    if (kind == TD_POOL_SCATTER || kind == TD_POOL_AVG_GRAD)
        memset(out, 0, (size_t)(g->h * g->w) * sizeof(float));
    for (int64_t oh = 0; oh < g->oh; oh++)
        for (int64_t c0 = 0; c0 < g->ow; c0 += POOL_CHUNK) {
            int64_t c1 = c0 + POOL_CHUNK < g->ow ? c0 + POOL_CHUNK : g->ow, n = c1 - c0;
            int64_t o = oh * g->ow + c0;
            switch (kind) {
            case TD_POOL_MAX:
                row_argmax(g, a, oh, c0, c1, s, val, arg);
                memcpy(out + o, val, (size_t)n * sizeof(float));
                break;
            case TD_POOL_SELECT:
                row_argmax(g, a, oh, c0, c1, s, val, arg);
                for (int64_t j = 0; j < n; j++) out[o + j] = b[arg[j]];
                break;
            case TD_POOL_SCATTER:
                row_argmax(g, a, oh, c0, c1, s, val, arg);
                for (int64_t j = 0; j < n; j++) out[arg[j]] += b[o + j];
                break;
            case TD_POOL_AVG:
                row_sum(g, a, oh, c0, c1, s, val);
                for (int64_t j = 0; j < n; j++) out[o + j] = val[j] * inv_area;
                break;
            case TD_POOL_AVG_GRAD: {
                int64_t h0 = oh * g->stride[0] - g->pad[0];
                int64_t ih0 = h0 < 0 ? 0 : h0;
                int64_t ih1 = h0 + g->kernel[0] > g->h ? g->h : h0 + g->kernel[0];
                for (int64_t j = 0; j < n; j++) val[j] = a[o + j] * inv_area;
                for (int64_t ih = ih0; ih < ih1; ih++)
                    for (int64_t kw = 0; kw < g->kernel[1]; kw++) {
                        int64_t off = kw - g->pad[1], lo, hi;
                        valid_columns(s, off, g->w, c0, c1, &lo, &hi);
                        float *dr = out + ih * g->w + off;
                        for (int64_t ow = lo; ow < hi; ow++) dr[ow * s] += val[ow - c0];
                    }
                break;
            }
            }
        }
}

/* Index (0 .. 3, row-major) of the first maximum of v0 .. v3 under the tie
 * and NaN rule of row_argmax; the maximum in *m. */
static inline int first_max4(float v0, float v1, float v2, float v3, float *m)
{
    float best = v0;
    int k = 0, t;
    t = beats(v1, best), best = pick(t, v1, best), k = t ? 1 : k;
    t = beats(v2, best), best = pick(t, v2, best), k = t ? 2 : k;
    t = beats(v3, best), best = pick(t, v3, best), k = t ? 3 : k;
    *m = best;
    return k;
}

/* Windows ow0 .. ow0+n-1 of one output row of 2x2 windows at stride 2
 * without padding. r0, r1: the row's two input rows (x, or the cotangent for
 * AVG_GRAD at r0); t0, t1: SELECT's tangent rows; c: SCATTER's cotangent
 * row; y: the output row; d0, d1: the two output rows of SCATTER and
 * AVG_GRAD, every element of each window written (no zero fill, no second
 * pass). Callers pass a constant n, so the loop is one vector without a
 * scalar tail. */
static inline __attribute__((always_inline)) void row_2x2(enum td_pool_kind kind, const float *r0,
                                                          const float *r1, const float *t0,
                                                          const float *t1, const float *c, float *y,
                                                          float *d0, float *d1, int64_t ow0, int n)
{
#pragma omp simd
    for (int j = 0; j < n; j++) {
        int64_t ow = ow0 + j, i = 2 * ow;
        float m, v;
        int k = kind == TD_POOL_AVG_GRAD || kind == TD_POOL_AVG
                    ? 0
                    : first_max4(r0[i], r0[i + 1], r1[i], r1[i + 1], &m);
        switch (kind) {
        case TD_POOL_MAX:
            y[ow] = m;
            break;
        case TD_POOL_SELECT:
            y[ow] = pick(k < 2, pick(k == 0, t0[i], t0[i + 1]), pick(k == 2, t1[i], t1[i + 1]));
            break;
        case TD_POOL_SCATTER:
            v = c[ow];
            d0[i] = pick(k == 0, v, 0.0f);
            d0[i + 1] = pick(k == 1, v, 0.0f);
            d1[i] = pick(k == 2, v, 0.0f);
            d1[i + 1] = pick(k == 3, v, 0.0f);
            break;
        case TD_POOL_AVG_GRAD:
            v = r0[ow] * 0.25f;
            d0[i] = d0[i + 1] = d1[i] = d1[i + 1] = v;
            break;
        case TD_POOL_AVG: /* row_sum's order */
            y[ow] = (((r0[i] + r0[i + 1]) + r1[i]) + r1[i + 1]) * 0.25f;
            break;
        }
    }
}

/* 2x2 windows, stride 2, no padding (the usual CNN pooling): one pass per
 * output row over its two input rows, in blocks of 8 (or 4) windows. A row
 * that is not a multiple of the block ends with a block overlapping the one
 * before: every kind writes, never adds, so the windows done twice give the
 * same values; rows of 14 or 7 windows (28x28 and 14x14 inputs) thus run
 * without scalar tails. A last odd row or column, in no window, is zeroed
 * for SCATTER and AVG_GRAD. The values are pool_plane_s's. */
static inline __attribute__((always_inline)) void pool_plane_2x2(const struct td_pool_geom *g,
                                                                 enum td_pool_kind kind,
                                                                 const float *a, const float *b,
                                                                 float *out)
{
    int64_t w = g->w, ow_n = g->ow;
    int grad = kind == TD_POOL_SCATTER || kind == TD_POOL_AVG_GRAD;
    int blk = ow_n >= 8 ? 8 : ow_n >= 4 ? 4 : 0;
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const float *r0, *r1 = NULL, *t0 = NULL, *t1 = NULL, *c = NULL;
        float *y = NULL, *d0 = NULL, *d1 = NULL;
        if (kind == TD_POOL_AVG_GRAD) {
            r0 = a + oh * ow_n;
        } else {
            r0 = a + 2 * oh * w;
            r1 = r0 + w;
        }
        if (kind == TD_POOL_SELECT) t0 = b + 2 * oh * w, t1 = t0 + w;
        if (kind == TD_POOL_SCATTER) c = b + oh * ow_n;
        if (grad)
            d0 = out + 2 * oh * w, d1 = d0 + w;
        else
            y = out + oh * ow_n;
        if (blk == 8) {
            for (int64_t o = 0; o < ow_n; o += 8)
                row_2x2(kind, r0, r1, t0, t1, c, y, d0, d1, o + 8 <= ow_n ? o : ow_n - 8, 8);
        } else if (blk == 4) {
            for (int64_t o = 0; o < ow_n; o += 4)
                row_2x2(kind, r0, r1, t0, t1, c, y, d0, d1, o + 4 <= ow_n ? o : ow_n - 4, 4);
        } else {
            for (int64_t o = 0; o < ow_n; o++) row_2x2(kind, r0, r1, t0, t1, c, y, d0, d1, o, 1);
        }
        if (grad && (w & 1)) d0[w - 1] = d1[w - 1] = 0;
    }
    if (grad && (g->h & 1)) memset(out + (g->h - 1) * w, 0, (size_t)w * sizeof(float));
}

/* 2x2 windows at stride 2 without padding take the one-pass kernel, one
 * copy per kind so that its row loop has no branch; otherwise constant
 * strides 1 and 2 fold into the row loops. */
static void pool_plane(const struct td_pool_geom *g, enum td_pool_kind kind, const float *a,
                       const float *b, float *out)
{
    int k22 = g->kernel[0] == 2 && g->kernel[1] == 2 && g->stride[0] == 2 && g->stride[1] == 2 &&
              g->pad[0] == 0 && g->pad[1] == 0;
    if (k22 && kind == TD_POOL_MAX)
        pool_plane_2x2(g, TD_POOL_MAX, a, b, out);
    else if (k22 && kind == TD_POOL_SELECT)
        pool_plane_2x2(g, TD_POOL_SELECT, a, b, out);
    else if (k22 && kind == TD_POOL_SCATTER)
        pool_plane_2x2(g, TD_POOL_SCATTER, a, b, out);
    else if (k22 && kind == TD_POOL_AVG)
        pool_plane_2x2(g, TD_POOL_AVG, a, b, out);
    else if (k22 && kind == TD_POOL_AVG_GRAD)
        pool_plane_2x2(g, TD_POOL_AVG_GRAD, a, b, out);
    else if (g->stride[1] == 2)
        pool_plane_s(g, kind, a, b, out, 2);
    else if (g->stride[1] == 1)
        pool_plane_s(g, kind, a, b, out, 1);
    else
        pool_plane_s(g, kind, a, b, out, g->stride[1]);
}

/* x, t, ct, y, dx: [N, C, ., .] row-major, planes of h x w or oh x ow. */
void td_pool_run(const struct td_exec *ex, enum td_pool_kind kind)
{
    struct td_pool_geom g;
    geom_of(ex->node, kind, &g);
    int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
    int64_t a_plane = kind == TD_POOL_AVG_GRAD ? out_plane : in_plane;
    int64_t b_plane = kind == TD_POOL_SELECT ? in_plane : out_plane;
    int64_t o_plane = kind == TD_POOL_SCATTER || kind == TD_POOL_AVG_GRAD ? in_plane : out_plane;
    const float *a = ex->in[0], *b = ex->in[1];
    float *out = ex->out;
    TD_PARALLEL_FOR(
        ex->nthreads, p, g.planes,
        pool_plane(&g, kind, a + p * a_plane, b ? b + p * b_plane : NULL, out + p * o_plane););
}

double td_pool_cost(const struct td_node *n, enum td_pool_kind kind)
{
    struct td_pool_geom g;
    geom_of(n, kind, &g);
    double windows = (double)g.planes * g.oh * g.ow;
    return windows * (double)(g.kernel[0] * g.kernel[1]) + (double)td_shape_numel(&n->shape);
}

void td_pool_reference(const struct td_node *n, enum td_pool_kind kind, const void *const *in,
                       float *out)
{
    struct td_pool_geom g;
    geom_of(n, kind, &g);
    const float *a = in[0], *b = n->n_src > 1 ? in[1] : NULL;
    size_t count = (size_t)td_shape_numel(&n->shape);
    double *acc = calloc(count, sizeof(double)), area = (double)(g.kernel[0] * g.kernel[1]);
    if (!acc) return;
    for (int64_t p = 0; p < g.planes; p++)
        for (int64_t oh = 0; oh < g.oh; oh++)
            for (int64_t ow = 0; ow < g.ow; ow++) {
                int64_t o = (p * g.oh + oh) * g.ow + ow, arg = -1;
                double best = 0, sum = 0;
                for (int64_t kh = 0; kh < g.kernel[0]; kh++)
                    for (int64_t kw = 0; kw < g.kernel[1]; kw++) {
                        int64_t ih = oh * g.stride[0] - g.pad[0] + kh;
                        int64_t iw = ow * g.stride[1] - g.pad[1] + kw;
                        int inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
                        int64_t i = (p * g.h + ih) * g.w + iw;
                        if (kind == TD_POOL_AVG_GRAD) {
                            if (inside) acc[i] += a[o] / area;
                            continue;
                        }
                        if (kind == TD_POOL_AVG) {
                            sum += inside ? a[i] : 0.0;
                            continue;
                        }
                        if (inside && (arg < 0 || a[i] > best)) best = a[i], arg = i;
                    }
                switch (kind) {
                case TD_POOL_MAX:
                    acc[o] = best;
                    break;
                case TD_POOL_SELECT:
                    acc[o] = b[arg];
                    break;
                case TD_POOL_SCATTER:
                    acc[arg] += b[o];
                    break;
                case TD_POOL_AVG:
                    acc[o] = sum / area;
                    break;
                case TD_POOL_AVG_GRAD:
                    break;
                }
            }
    for (size_t i = 0; i < count; i++) out[i] = (float)acc[i];
    free(acc);
}

static int is_prime(int64_t n)
{
    if (n < 2) return 0;
    for (int64_t d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

struct td_node *td_pool_test_distinct(struct td_graph *g, struct td_node *x)
{
    if (!x) return NULL;
    int64_t count = td_shape_numel(&x->shape), prime = count + 2;
    while (!is_prime(prime)) prime++;
    /* i -> i * step mod prime is one-to-one below prime; a step near
     * prime / golden ratio scatters neighbours. */
    int64_t step = (int64_t)(0.6180339887 * (double)prime);
    float *c = malloc((size_t)count * sizeof(float));
    if (!c) return NULL;
    for (int64_t i = 0; i < count; i++) c[i] = 0.1f * (float)((i * step) % prime);
    struct td_node *k = td_constant(g, x->shape, c);
    free(c);
    return td_add(g, x, k);
}
