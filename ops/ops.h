/* Op builders. Each adds one node to g and returns it, or returns NULL and
 * records a sticky error on g (see graph/graph.h). Operands must belong to g.
 * Binary elementwise ops broadcast as NumPy does (shapes aligned on the
 * right, a dimension of 1 stretches). All float ops take and give TD_F32. */
#ifndef TD_OPS_H
#define TD_OPS_H

#include "graph/graph.h"

/* Binary, broadcasting. */
struct td_node *td_add(struct td_graph *g, struct td_node *a, struct td_node *b);
struct td_node *td_sub(struct td_graph *g, struct td_node *a, struct td_node *b);
struct td_node *td_mul(struct td_graph *g, struct td_node *a, struct td_node *b);
struct td_node *td_div(struct td_graph *g, struct td_node *a, struct td_node *b);

/* y = alpha * x + beta; td_scale, td_add_scalar and td_neg are its special cases. */
struct td_node *td_affine(struct td_graph *g, struct td_node *x, float alpha, float beta);
struct td_node *td_scale(struct td_graph *g, struct td_node *x, float alpha);
struct td_node *td_add_scalar(struct td_graph *g, struct td_node *x, float beta);
struct td_node *td_neg(struct td_graph *g, struct td_node *x);

/* Unary elementwise. */
struct td_node *td_exp(struct td_graph *g, struct td_node *x);
struct td_node *td_log(struct td_graph *g, struct td_node *x);
struct td_node *td_tanh(struct td_graph *g, struct td_node *x);
struct td_node *td_sigmoid(struct td_graph *g, struct td_node *x);
struct td_node *td_relu(struct td_graph *g, struct td_node *x);
/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
struct td_node *td_gelu(struct td_graph *g, struct td_node *x);
struct td_node *td_sqrt(struct td_graph *g, struct td_node *x);
struct td_node *td_rsqrt(struct td_graph *g, struct td_node *x);
struct td_node *td_square(struct td_graph *g, struct td_node *x);
struct td_node *td_abs(struct td_graph *g, struct td_node *x);
/* sign(x) in {-1, 0, 1}; derivative zero. */
struct td_node *td_sign(struct td_graph *g, struct td_node *x);
/* step(x) = 1 where x > 0, else 0 (Heaviside); derivative zero. */
struct td_node *td_step(struct td_graph *g, struct td_node *x);
/* a where m > 0, else 0 (NaN in m masks); a and m have one shape, no
 * broadcasting. ReLU's derivative rules in one pass. Differentiable in a;
 * m is a mask and gets no derivative. */
struct td_node *td_mask_positive(struct td_graph *g, struct td_node *a, struct td_node *m);

/* Matrix product of the last two axes: op(a) [.., M, K] x op(b) [.., K, N],
 * op = transpose when the flag is set. Leading (batch) axes must be equal,
 * or one operand may be 2-D and is then shared by every batch of the other. */
struct td_node *td_matmul(struct td_graph *g, struct td_node *a, struct td_node *b, int transpose_a,
                          int transpose_b);

/* Dense layer in one product: y = x W^T + b with x [..., K] (rank >= 2),
 * W [N, K] (PyTorch layout), b [N]; y [..., N]. The bias is added by the
 * matmul itself. */
struct td_node *td_linear(struct td_graph *g, struct td_node *x, struct td_node *w,
                          struct td_node *b);

/* 2-D convolution, NCHW, as PyTorch's conv2d: x [N, C, H, W], w [O, C, KH, KW],
 * b [O] or NULL (no bias), y [N, O, OH, OW] with, per spatial axis,
 * OH = floor((H + 2 pad - dilation (KH - 1) - 1) / stride) + 1.
 * params NULL means stride 1, padding 0, dilation 1; within the struct a
 * stride or dilation left 0 also means 1 ([0] is the H axis, [1] the W axis;
 * dilation 1 is a dense kernel, as in PyTorch). Errors (TD_ERR_SHAPE): integer
 * or non-4-D operands, channels of x and w differing, a bias not [O], stride
 * or dilation < 1, padding < 0, a dilated kernel larger than the padded
 * input. */
struct td_conv2d_params {
    int stride[2], pad[2], dilation[2];
};
struct td_node *td_conv2d_op(struct td_graph *g, struct td_node *x, struct td_node *w,
                             struct td_node *b, const struct td_conv2d_params *params);
/* The convolution's derivative with respect to its input, applied to an
 * output gradient: dy [N, O, OH, OW], w [O, C, KH, KW] -> dx [N, C, h, w].
 * The input size (h, w) is given because several sizes give one output size
 * when stride > 1; dy must have the output size of that convolution. */
struct td_node *td_conv2d_grad_input(struct td_graph *g, struct td_node *dy, struct td_node *w,
                                     const struct td_conv2d_params *params, int h, int w_);
/* ... and with respect to its weight: x [N, C, H, W], dy [N, O, OH, OW]
 * -> dw [O, C, kh, kw]; dy must have the output size of that convolution. */
struct td_node *td_conv2d_grad_weight(struct td_graph *g, struct td_node *x, struct td_node *dy,
                                      const struct td_conv2d_params *params, int kh, int kw);

/* 2-D pooling, NCHW, as PyTorch's max_pool2d and avg_pool2d (ceil_mode
 * off): x [N, C, H, W] -> y [N, C, OH, OW] with, per spatial axis,
 * OH = floor((H + 2 pad - kernel) / stride) + 1. [0] is the H axis, [1] the
 * W axis; a stride left 0 means the kernel size (PyTorch's default). Max
 * pooling pads with -inf; average pooling divides by the whole kernel area,
 * padding included (count_include_pad). Errors (TD_ERR_SHAPE): integer or
 * non-4-D operands, kernel or stride < 1, padding < 0 or more than half the
 * kernel, a kernel larger than the padded input, a second operand of the
 * wrong shape. */
struct td_pool2d_params {
    int kernel[2], stride[2], pad[2];
};
struct td_node *td_max_pool2d_op(struct td_graph *g, struct td_node *x,
                                 const struct td_pool2d_params *params);
/* Max pooling's derivatives route through the argmax of each window of x,
 * the first maximum in row-major window order (padding never wins; the
 * first NaN does): select gives t [N, C, H, W] at each window's argmax,
 * [N, C, OH, OW] (linear in t, the JVP of max pooling); scatter adds each
 * ct [N, C, OH, OW] element into its window's argmax, [N, C, H, W] (linear
 * in ct, the VJP, summed in a fixed order where windows overlap). Each is
 * the other's transpose; x gets no derivative (the selection is piecewise
 * constant). */
struct td_node *td_max_pool2d_select(struct td_graph *g, struct td_node *x, struct td_node *t,
                                     const struct td_pool2d_params *params);
struct td_node *td_max_pool2d_scatter(struct td_graph *g, struct td_node *x, struct td_node *ct,
                                      const struct td_pool2d_params *params);
struct td_node *td_avg_pool2d(struct td_graph *g, struct td_node *x,
                              const struct td_pool2d_params *params);
/* Average pooling's transpose (its VJP): ct [N, C, OH, OW] spread evenly
 * over each window, [N, C, h, w]; ct must have the pooling output size of
 * an input of size (h, w). */
struct td_node *td_avg_pool2d_grad(struct td_graph *g, struct td_node *ct,
                                   const struct td_pool2d_params *params, int h, int w);

/* Copies x to `shape` by NumPy broadcasting. */
struct td_node *td_broadcast_to(struct td_graph *g, struct td_node *x, struct td_shape shape);

/* Sum or mean over the axes whose bit is set in axes_mask (bit i = axis i);
 * keepdims keeps them as size 1. */
struct td_node *td_reduce_sum(struct td_graph *g, struct td_node *x, unsigned axes_mask,
                              int keepdims);
struct td_node *td_reduce_mean(struct td_graph *g, struct td_node *x, unsigned axes_mask,
                               int keepdims);
/* Sum of every element, a scalar. */
struct td_node *td_sum_all(struct td_graph *g, struct td_node *x);

/* Same elements, new shape (equal element count). No copy. */
struct td_node *td_reshape(struct td_graph *g, struct td_node *x, struct td_shape shape);

/* Output axis i is input axis perm[i]; perm has rank(x) entries. */
struct td_node *td_transpose(struct td_graph *g, struct td_node *x, const int *perm);

/* Softmax / log-softmax over the last axis. */
struct td_node *td_softmax(struct td_graph *g, struct td_node *x);
struct td_node *td_log_softmax(struct td_graph *g, struct td_node *x);

/* One-hot [B, classes] float rows from TD_I32 labels [B]; derivative zero. */
struct td_node *td_one_hot(struct td_graph *g, struct td_node *labels, int classes);

/* Mean over the batch of -log softmax(logits)[label]: logits [B, C] TD_F32,
 * labels [B] TD_I32 in [0, C). A scalar. */
struct td_node *td_softmax_cross_entropy(struct td_graph *g, struct td_node *logits,
                                         struct td_node *labels);
/* Its gradient with respect to the logits in one node:
 * (softmax(logits) - one_hot(labels)) / B, [B, C]. Labels as above; a label
 * outside [0, C) makes its row NaN. */
struct td_node *td_softmax_cross_entropy_grad(struct td_graph *g, struct td_node *logits,
                                              struct td_node *labels);

#endif
