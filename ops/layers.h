/* Layer builders: compositions of ops that create their own parameters
 * under a name scope. Same error convention as ops/ops.h. */
#ifndef TD_LAYERS_H
#define TD_LAYERS_H

#include "graph/graph.h"

/* y = x W^T + b with W "name/weight" [units, in] (PyTorch's layout) and
 * b "name/bias" [units]; x is [..., in]. W and b start from PyTorch's
 * nn.Linear default, U(+-1/sqrt(in)). */
struct td_node *td_dense(struct td_graph *g, struct td_node *x, int units, const char *name);

/* 2-D convolution layer: x [N, C, H, W] -> [N, out_channels, OH, OW] (see
 * td_conv2d_op in ops/ops.h for the output size and params; NULL params:
 * stride 1, no padding, dilation 1), with W "name/weight"
 * [out_channels, C, kh, kw] and b "name/bias" [out_channels] initialised as
 * PyTorch's nn.Conv2d: U(+-1/sqrt(C * kh * kw)) for both. */
struct td_conv2d_params; /* ops/ops.h */
struct td_node *td_conv2d(struct td_graph *g, struct td_node *x, int out_channels, int kh, int kw,
                          const struct td_conv2d_params *params, const char *name);

/* Max pooling with a square kernel k, stride (0: k) and padding on both
 * axes; x [N, C, H, W]. A wrapper of td_max_pool2d_op (ops/ops.h). */
struct td_node *td_max_pool2d(struct td_graph *g, struct td_node *x, int k, int stride, int pad);

#endif
