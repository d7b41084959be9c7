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

/* Window (oh, ow) clipped to the input: rows [h0, h1), columns [w0, w1);
 * never empty (padding is at most half the kernel). */
struct window {
    int64_t h0, h1, w0, w1;
};

static struct window window_at(const struct td_pool_geom *g, int64_t oh, int64_t ow)
{
    int64_t h0 = oh * g->stride[0] - g->pad[0], w0 = ow * g->stride[1] - g->pad[1];
    int64_t h1 = h0 + g->kernel[0], w1 = w0 + g->kernel[1];
    return (struct window){h0 < 0 ? 0 : h0, h1 > g->h ? g->h : h1, w0 < 0 ? 0 : w0,
                           w1 > g->w ? g->w : w1};
}

/* Plane index of the first maximum of window v of plane x [h, w]
 * (row-major order; a NaN beats every number, the first NaN wins). */
static int64_t window_argmax(const float *x, int64_t w, struct window v)
{
    int64_t best = v.h0 * w + v.w0;
    float bv = x[best];
    for (int64_t i = v.h0; i < v.h1; i++)
        for (int64_t j = v.w0; j < v.w1; j++) {
            float e = x[i * w + j];
            if (e > bv || (isnan(e) && !isnan(bv))) {
                bv = e;
                best = i * w + j;
            }
        }
    return best;
}

/* One (n, c) plane. a: x [h, w] (ct [oh, ow] for AVG_GRAD); b: t [h, w]
 * (SELECT) or ct [oh, ow] (SCATTER); out: [oh, ow], or [h, w] for SCATTER
 * and AVG_GRAD, whose windows are added in row-major window order. */
static void pool_plane(const struct td_pool_geom *g, enum td_pool_kind kind, const float *a,
                       const float *b, float *out)
{
    float inv_area = 1.0f / (float)(g->kernel[0] * g->kernel[1]);
    if (kind == TD_POOL_SCATTER || kind == TD_POOL_AVG_GRAD)
        memset(out, 0, (size_t)(g->h * g->w) * sizeof(float));
    for (int64_t oh = 0; oh < g->oh; oh++)
        for (int64_t ow = 0; ow < g->ow; ow++) {
            struct window v = window_at(g, oh, ow);
            int64_t o = oh * g->ow + ow;
            switch (kind) {
            case TD_POOL_MAX:
                out[o] = a[window_argmax(a, g->w, v)];
                break;
            case TD_POOL_SELECT:
                out[o] = b[window_argmax(a, g->w, v)];
                break;
            case TD_POOL_SCATTER:
                out[window_argmax(a, g->w, v)] += b[o];
                break;
            case TD_POOL_AVG: {
                float sum = 0;
                for (int64_t i = v.h0; i < v.h1; i++)
                    for (int64_t j = v.w0; j < v.w1; j++) sum += a[i * g->w + j];
                out[o] = sum * inv_area;
                break;
            }
            case TD_POOL_AVG_GRAD: {
                float share = a[o] * inv_area;
                for (int64_t i = v.h0; i < v.h1; i++)
                    for (int64_t j = v.w0; j < v.w1; j++) out[i * g->w + j] += share;
                break;
            }
            }
        }
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
