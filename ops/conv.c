#include "ops/conv.h"

#include <stdio.h>
#include <stdlib.h>

#include "ops/dnnl/prim.h"

struct td_attr td_conv_attr(const struct td_conv2d_params *params, int e0, int e1)
{
    struct td_attr a = {.i = {1, 1, 0, 0, 1, 1, e0, e1}};
    if (!params) return a;
    for (int d = 0; d < 2; d++) {
        a.i[d] = params->stride[d] ? params->stride[d] : 1;
        a.i[2 + d] = params->pad[d];
        a.i[4 + d] = params->dilation[d] ? params->dilation[d] : 1;
    }
    return a;
}

struct td_conv2d_params td_conv_params(const struct td_node *n)
{
    const int *i = n->attr.i;
    return (struct td_conv2d_params){{i[0], i[1]}, {i[2], i[3]}, {i[4], i[5]}};
}

/* Roles of the two operands of each kind, for messages. */
static const char *const role[3][2] = {
    {"input", "weight"},
    {"output gradient", "weight"},
    {"input", "output gradient"},
};

static enum td_status check_attr(struct td_node *n)
{
    const int *i = n->attr.i;
    if (i[0] < 1 || i[1] < 1)
        return td_node_fail(n, "stride must be >= 1, got (%d,%d)", i[0], i[1]);
    if (i[2] < 0 || i[3] < 0)
        return td_node_fail(n, "padding must be >= 0, got (%d,%d)", i[2], i[3]);
    if (i[4] < 1 || i[5] < 1)
        return td_node_fail(n, "dilation must be >= 1, got (%d,%d)", i[4], i[5]);
    return TD_OK;
}

static enum td_status check_operands(struct td_node *n, enum td_conv_kind kind)
{
    static const char *const layout[3][2] = {
        {"[N, C, H, W]", "[O, C, KH, KW]"},
        {"[N, O, OH, OW]", "[O, C, KH, KW]"},
        {"[N, C, H, W]", "[N, O, OH, OW]"},
    };
    char s[128];
    for (int k = 0; k < n->n_src; k++) {
        const struct td_node *a = n->src[k];
        const char *what = k < 2 ? role[kind][k] : "bias";
        td_shape_format(&a->shape, s, sizeof(s));
        if (a->dtype != TD_F32)
            return td_node_fail(n, "expects float operands, got int32 %s %s", what, s);
        if (k < 2 && a->shape.rank != 4)
            return td_node_fail(n, "%s must be %s, got %s", what, layout[kind][k], s);
    }
    return TD_OK;
}

/* The sizes td_conv_shape checks, read from the operands and attributes. */
static void geom_read(const struct td_node *n, enum td_conv_kind kind, struct td_conv_geom *g)
{
    const int64_t *a = n->src[0]->shape.dim, *b = n->src[1]->shape.dim;
    for (int d = 0; d < 2; d++) {
        g->stride[d] = n->attr.i[d];
        g->pad[d] = n->attr.i[2 + d];
        g->dil[d] = n->attr.i[4 + d];
    }
    switch (kind) {
    case TD_CONV_FWD: /* x, w */
        g->n = a[0], g->c = a[1], g->h = a[2], g->w = a[3];
        g->o = b[0], g->kh = b[2], g->kw = b[3];
        break;
    case TD_CONV_BWD_DATA: /* y, w; input size from attributes */
        g->n = a[0], g->c = b[1], g->h = n->attr.i[6], g->w = n->attr.i[7];
        g->o = b[0], g->kh = b[2], g->kw = b[3];
        break;
    case TD_CONV_BWD_WEIGHTS: /* x, y; kernel size from attributes */
        g->n = a[0], g->c = a[1], g->h = a[2], g->w = a[3];
        g->o = b[1], g->kh = n->attr.i[6], g->kw = n->attr.i[7];
        break;
    }
}

/* Output size along one axis, or 0 when the dilated kernel does not fit
 * in the padded input. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t span = (k - 1) * d + 1;
    return span > in + 2 * p ? 0 : (in + 2 * p - span) / s + 1;
}

void td_conv_geom_of(const struct td_node *n, enum td_conv_kind kind, struct td_conv_geom *g)
{
    geom_read(n, kind, g);
    g->oh = out_size(g->h, g->kh, g->stride[0], g->pad[0], g->dil[0]);
    g->ow = out_size(g->w, g->kw, g->stride[1], g->pad[1], g->dil[1]);
}

enum td_status td_conv_shape(struct td_node *n, enum td_conv_kind kind)
{
    enum td_status st = check_operands(n, kind);
    if (st == TD_OK) st = check_attr(n);
    if (st != TD_OK) return st;
    char sa[128], sb[128];
    const struct td_shape *a = &n->src[0]->shape, *b = &n->src[1]->shape;
    td_shape_format(a, sa, sizeof(sa));
    td_shape_format(b, sb, sizeof(sb));
    struct td_conv_geom g;
    td_conv_geom_of(n, kind, &g);
    switch (kind) {
    case TD_CONV_FWD:
        if (a->dim[1] != b->dim[1])
            return td_node_fail(n, "input %s has %lld channels but weight %s expects %lld", sa,
                                (long long)a->dim[1], sb, (long long)b->dim[1]);
        if (n->src[2]->shape.rank != 1 || n->src[2]->shape.dim[0] != g.o) {
            char sc[128];
            return td_node_fail(n, "bias %s does not match weight %s: expected [%lld]",
                                td_shape_format(&n->src[2]->shape, sc, sizeof(sc)), sb,
                                (long long)g.o);
        }
        break;
    case TD_CONV_BWD_DATA:
        if (g.h < 1 || g.w < 1)
            return td_node_fail(n, "input size must be >= 1, got (%lld,%lld)", (long long)g.h,
                                (long long)g.w);
        if (a->dim[1] != b->dim[0])
            return td_node_fail(n, "output gradient %s has %lld channels but weight %s has %lld",
                                sa, (long long)a->dim[1], sb, (long long)b->dim[0]);
        break;
    case TD_CONV_BWD_WEIGHTS:
        if (g.kh < 1 || g.kw < 1)
            return td_node_fail(n, "kernel size must be >= 1, got (%lld,%lld)", (long long)g.kh,
                                (long long)g.kw);
        if (a->dim[0] != b->dim[0])
            return td_node_fail(n, "input %s and output gradient %s differ in batch size", sa, sb);
        break;
    }
    if (g.oh < 1 || g.ow < 1)
        return td_node_fail(n,
                            "kernel %lldx%lld with dilation (%lld,%lld) spans %lldx%lld, more "
                            "than the padded input %lldx%lld",
                            (long long)g.kh, (long long)g.kw, (long long)g.dil[0],
                            (long long)g.dil[1], (long long)((g.kh - 1) * g.dil[0] + 1),
                            (long long)((g.kw - 1) * g.dil[1] + 1), (long long)(g.h + 2 * g.pad[0]),
                            (long long)(g.w + 2 * g.pad[1]));
    const struct td_shape *y = kind == TD_CONV_FWD ? NULL : kind == TD_CONV_BWD_DATA ? a : b;
    if (y && (y->dim[2] != g.oh || y->dim[3] != g.ow))
        return td_node_fail(n,
                            "output gradient %s does not match the convolution's output "
                            "[%lld,%lld,%lld,%lld]",
                            kind == TD_CONV_BWD_DATA ? sa : sb, (long long)g.n, (long long)g.o,
                            (long long)g.oh, (long long)g.ow);
    switch (kind) {
    case TD_CONV_FWD:
        n->shape = TD_SHAPE(g.n, g.o, g.oh, g.ow);
        break;
    case TD_CONV_BWD_DATA:
        n->shape = TD_SHAPE(g.n, g.c, g.h, g.w);
        break;
    case TD_CONV_BWD_WEIGHTS:
        n->shape = TD_SHAPE(g.o, g.c, g.kh, g.kw);
        break;
    }
    n->dtype = TD_F32;
    return TD_OK;
}

/* x, w and y descriptors, plain or left to oneDNN (`any`). */
struct conv_mds {
    dnnl_memory_desc_t x, w, y, b;
};

static dnnl_status_t conv_mds(struct conv_mds *m, const struct td_conv_geom *g, int any)
{
    dnnl_format_tag_t act = any ? dnnl_format_tag_any : dnnl_nchw;
    dnnl_format_tag_t wei = any ? dnnl_format_tag_any : dnnl_oihw;
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&m->x, 4, (dnnl_dims_t){g->n, g->c, g->h, g->w},
                                                    dnnl_f32, act);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&m->w, 4, (dnnl_dims_t){g->o, g->c, g->kh, g->kw},
                                          dnnl_f32, wei);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&m->y, 4, (dnnl_dims_t){g->n, g->o, g->oh, g->ow},
                                          dnnl_f32, act);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&m->b, 1, (dnnl_dims_t){g->o}, dnnl_f32, dnnl_x);
    return st;
}

/* Descriptors of one candidate: the primitive and the forward hint. */
struct conv_descs {
    struct conv_mds m;
    dnnl_convolution_desc_t op, fwd;
};

static dnnl_status_t conv_descs(struct conv_descs *d, const struct td_conv_geom *g,
                                enum td_conv_kind kind, int any)
{
    /* oneDNN counts dilation from 0 and takes the right padding that makes
     * its output size PyTorch's: p - (H + 2p - span) % stride, which can be
     * negative (down to 1 - stride); oneDNN accepts that. */
    dnnl_dims_t strides = {g->stride[0], g->stride[1]};
    dnnl_dims_t dil = {g->dil[0] - 1, g->dil[1] - 1};
    dnnl_dims_t pad_l = {g->pad[0], g->pad[1]};
    dnnl_dims_t pad_r = {
        (g->oh - 1) * g->stride[0] + (g->kh - 1) * g->dil[0] + 1 - g->h - g->pad[0],
        (g->ow - 1) * g->stride[1] + (g->kw - 1) * g->dil[1] + 1 - g->w - g->pad[1]};
    const dnnl_alg_kind_t alg = dnnl_convolution_direct;
    struct conv_mds *m = &d->m;
    dnnl_status_t st = conv_mds(m, g, any);
    if (st == dnnl_success)
        st = dnnl_dilated_convolution_forward_desc_init(&d->fwd, dnnl_forward_training, alg, &m->x,
                                                        &m->w, kind == TD_CONV_FWD ? &m->b : NULL,
                                                        &m->y, strides, dil, pad_l, pad_r);
    if (st != dnnl_success) return st;
    switch (kind) {
    case TD_CONV_FWD:
        d->op = d->fwd;
        break;
    case TD_CONV_BWD_DATA:
        st = dnnl_dilated_convolution_backward_data_desc_init(&d->op, alg, &m->x, &m->w, &m->y,
                                                              strides, dil, pad_l, pad_r);
        break;
    case TD_CONV_BWD_WEIGHTS:
        st = dnnl_dilated_convolution_backward_weights_desc_init(&d->op, alg, &m->x, &m->w, NULL,
                                                                 &m->y, strides, dil, pad_l, pad_r);
        break;
    }
    return st;
}

enum td_status td_conv_prepare(struct td_prep *p, enum td_conv_kind kind)
{
    struct td_conv_geom g;
    td_conv_geom_of(p->node, kind, &g);
    /* Candidates: layouts chosen by oneDNN, then plain ones. */
    struct conv_descs d[2];
    struct td_prim_desc cands[2];
    for (int c = 0; c < 2; c++) {
        dnnl_status_t st = conv_descs(&d[c], &g, kind, c == 0);
        if (st != dnnl_success) {
            snprintf(p->err, p->err_len, "%s: oneDNN convolution descriptor failed (status %d)",
                     p->node->op->name, (int)st);
            return TD_ERR_BACKEND;
        }
        cands[c] = (struct td_prim_desc){&d[c].op, kind == TD_CONV_FWD ? NULL : &d[c].fwd, NULL};
    }
    const struct conv_mds *m = &d[1].m;
    struct td_prim_arg args[4];
    int n = 0;
    switch (kind) {
    case TD_CONV_FWD:
        args[n++] = (struct td_prim_arg){DNNL_ARG_SRC, TD_BUF_IN0, m->x};
        args[n++] = (struct td_prim_arg){DNNL_ARG_WEIGHTS, TD_BUF_IN0 + 1, m->w};
        args[n++] = (struct td_prim_arg){DNNL_ARG_BIAS, TD_BUF_IN0 + 2, m->b};
        args[n++] = (struct td_prim_arg){DNNL_ARG_DST, TD_BUF_OUT, m->y};
        break;
    case TD_CONV_BWD_DATA:
        args[n++] = (struct td_prim_arg){DNNL_ARG_DIFF_DST, TD_BUF_IN0, m->y};
        args[n++] = (struct td_prim_arg){DNNL_ARG_WEIGHTS, TD_BUF_IN0 + 1, m->w};
        args[n++] = (struct td_prim_arg){DNNL_ARG_DIFF_SRC, TD_BUF_OUT, m->x};
        break;
    case TD_CONV_BWD_WEIGHTS:
        args[n++] = (struct td_prim_arg){DNNL_ARG_SRC, TD_BUF_IN0, m->x};
        args[n++] = (struct td_prim_arg){DNNL_ARG_DIFF_DST, TD_BUF_IN0 + 1, m->y};
        args[n++] = (struct td_prim_arg){DNNL_ARG_DIFF_WEIGHTS, TD_BUF_OUT, m->w};
        break;
    }
    return td_prim_create_from(p, cands, 2, args, n);
}

double td_conv_flops(const struct td_node *n, enum td_conv_kind kind)
{
    struct td_conv_geom g;
    td_conv_geom_of(n, kind, &g);
    return 2.0 * (double)g.n * g.o * g.oh * g.ow * g.c * g.kh * g.kw;
}

double td_conv_cost(const struct td_node *n, enum td_conv_kind kind)
{
    return td_conv_flops(n, kind) / 32.0;
}

void td_conv_reference(const struct td_node *n, enum td_conv_kind kind, const void *const *in,
                       float *out)
{
    struct td_conv_geom g;
    td_conv_geom_of(n, kind, &g);
    const float *x = kind == TD_CONV_BWD_DATA ? NULL : in[0];
    const float *w = kind == TD_CONV_BWD_WEIGHTS ? NULL : in[1];
    const float *y = kind == TD_CONV_FWD ? NULL : kind == TD_CONV_BWD_DATA ? in[0] : in[1];
    size_t count = (size_t)td_shape_numel(&n->shape);
    double *acc = calloc(count, sizeof(double));
    if (!acc) return;
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t o = 0; o < g.o; o++)
            for (int64_t oh = 0; oh < g.oh; oh++)
                for (int64_t ow = 0; ow < g.ow; ow++)
                    for (int64_t c = 0; c < g.c; c++)
                        for (int64_t kh = 0; kh < g.kh; kh++)
                            for (int64_t kw = 0; kw < g.kw; kw++) {
                                int64_t ih = oh * g.stride[0] - g.pad[0] + kh * g.dil[0];
                                int64_t iw = ow * g.stride[1] - g.pad[1] + kw * g.dil[1];
                                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                                int64_t xi = ((b * g.c + c) * g.h + ih) * g.w + iw;
                                int64_t wi = ((o * g.c + c) * g.kh + kh) * g.kw + kw;
                                int64_t yi = ((b * g.o + o) * g.oh + oh) * g.ow + ow;
                                if (kind == TD_CONV_FWD)
                                    acc[yi] += (double)x[xi] * w[wi];
                                else if (kind == TD_CONV_BWD_DATA)
                                    acc[xi] += (double)y[yi] * w[wi];
                                else
                                    acc[wi] += (double)x[xi] * y[yi];
                            }
    if (kind == TD_CONV_FWD) {
        const float *bias = in[2];
        for (size_t i = 0; i < count; i++) acc[i] += bias[i / (size_t)(g.oh * g.ow) % g.o];
    }
    for (size_t i = 0; i < count; i++) out[i] = (float)acc[i];
    free(acc);
}
