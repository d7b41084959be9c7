#include "ops/layers.h"

#include <math.h>

#include "graph/node.h"
#include "ops/ops.h"

/* x [..., in] -> y [..., units] by one linear (the matmul adds the bias);
 * linear needs rank 2, so a single vector is viewed as one row and the
 * result viewed back. */
static struct td_node *dense_body(struct td_graph *g, struct td_node *x, int units)
{
    int64_t in = x->shape.dim[x->shape.rank - 1];
    struct td_node *w =
        td_param(g, "weight", TD_SHAPE(units, in), (struct td_init){TD_INIT_FAN_IN_UNIFORM, 0, 0});
    /* The bias's fan-in is the weight's, which its own shape [units] does
     * not carry: give the bound explicitly. */
    float bound = (float)(1.0 / sqrt((double)in));
    struct td_node *b =
        td_param(g, "bias", TD_SHAPE(units), (struct td_init){TD_INIT_UNIFORM, -bound, bound});
    struct td_node *rows = x->shape.rank == 1 ? td_reshape(g, x, TD_SHAPE(1, in)) : x;
    struct td_node *y = td_linear(g, rows, w, b);
    return x->shape.rank == 1 ? td_reshape(g, y, TD_SHAPE(units)) : y;
}

struct td_node *td_dense(struct td_graph *g, struct td_node *x, int units, const char *name)
{
    if (!g || !x) return NULL;
    char s[128];
    if (!name) {
        td_graph_fail(g, TD_ERR_ARG, "dense: name is NULL");
        return NULL;
    }
    if (units < 1) {
        td_graph_fail(g, TD_ERR_ARG, "dense '%s': units must be >= 1, got %d", name, units);
        return NULL;
    }
    if (x->shape.rank < 1) {
        td_graph_fail(g, TD_ERR_SHAPE, "dense '%s': needs an input of rank >= 1, got %s", name,
                      td_shape_format(&x->shape, s, sizeof(s)));
        return NULL;
    }
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_node *y = dense_body(g, x, units);
    td_scope_pop(g);
    return y;
}

struct td_node *td_layer_norm(struct td_graph *g, struct td_node *x, const char *name)
{
    if (!g || !x) return NULL;
    char s[128];
    if (!name) {
        td_graph_fail(g, TD_ERR_ARG, "layer_norm: name is NULL");
        return NULL;
    }
    if (x->shape.rank < 1) {
        td_graph_fail(g, TD_ERR_SHAPE, "layer_norm '%s': needs an input of rank >= 1, got %s", name,
                      td_shape_format(&x->shape, s, sizeof(s)));
        return NULL;
    }
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_shape c = TD_SHAPE(x->shape.dim[x->shape.rank - 1]);
    struct td_node *gamma = td_param(g, "weight", c, (struct td_init){TD_INIT_CONSTANT, 1.f, 0});
    struct td_node *beta = td_param(g, "bias", c, (struct td_init){TD_INIT_ZEROS, 0, 0});
    struct td_node *y = td_layer_norm_op(g, x, gamma, beta, 1e-5f);
    td_scope_pop(g);
    return y;
}

struct td_node *td_conv2d(struct td_graph *g, struct td_node *x, int out_channels, int kh, int kw,
                          const struct td_conv2d_params *params, const char *name)
{
    if (!g || !x) return NULL;
    char s[128];
    if (!name) {
        td_graph_fail(g, TD_ERR_ARG, "conv2d: name is NULL");
        return NULL;
    }
    if (out_channels < 1 || kh < 1 || kw < 1) {
        td_graph_fail(g, TD_ERR_ARG,
                      "conv2d '%s': out_channels and kernel size must be >= 1, got %d and %dx%d",
                      name, out_channels, kh, kw);
        return NULL;
    }
    if (x->shape.rank != 4) {
        td_graph_fail(g, TD_ERR_SHAPE, "conv2d '%s': needs an input [N, C, H, W], got %s", name,
                      td_shape_format(&x->shape, s, sizeof(s)));
        return NULL;
    }
    if (td_scope_push(g, name) != TD_OK) return NULL;
    int64_t c = x->shape.dim[1];
    /* PyTorch's kaiming_uniform(a = sqrt(5)) is U(+-1/sqrt(fan_in)), the
     * fan-in C * kh * kw read from the weight's shape; the bias gets the
     * same bound, which its own shape does not carry. */
    struct td_node *w = td_param(g, "weight", TD_SHAPE(out_channels, c, kh, kw),
                                 (struct td_init){TD_INIT_FAN_IN_UNIFORM, 0, 0});
    float bound = (float)(1.0 / sqrt((double)(c * kh * kw)));
    struct td_node *b = td_param(g, "bias", TD_SHAPE(out_channels),
                                 (struct td_init){TD_INIT_UNIFORM, -bound, bound});
    struct td_node *y = td_conv2d_op(g, x, w, b, params);
    td_scope_pop(g);
    return y;
}

struct td_node *td_max_pool2d(struct td_graph *g, struct td_node *x, int k, int stride, int pad)
{
    const struct td_pool2d_params p = {{k, k}, {stride, stride}, {pad, pad}};
    return td_max_pool2d_op(g, x, &p);
}
