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
/* GELU, exact (erf) form as PyTorch's nn.GELU default:
 * x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). */
struct td_node *td_gelu(struct td_graph *g, struct td_node *x);
/* GELU, tanh approximation (PyTorch's approximate='tanh'):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
struct td_node *td_gelu_tanh(struct td_graph *g, struct td_node *x);
/* v * gelu'(x) and v * gelu_tanh'(x): the GELUs' derivative rules in one
 * pass. x and v have one shape (no broadcasting). */
struct td_node *td_gelu_grad(struct td_graph *g, struct td_node *x, struct td_node *v);
struct td_node *td_gelu_tanh_grad(struct td_graph *g, struct td_node *x, struct td_node *v);
/* v * t * gelu''(x) in one pass: the exact GELU's second-order term.
 * x, v and t have one shape. */
struct td_node *td_gelu_second(struct td_graph *g, struct td_node *x, struct td_node *v,
                               struct td_node *t);
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
 * op = transpose when the flag is set. The leading (batch) axes broadcast as
 * in NumPy: ranks may differ, a missing axis or a batch dim of 1 stretches
 * ([B,H,T,T] x [1,H,T,dh], [H,T,dh] x [B,H,dh,T], a 2-D operand shared by
 * every batch). Errors: rank < 2, integer operands, inner dims differing,
 * batch dims that do not broadcast. */
struct td_node *td_matmul(struct td_graph *g, struct td_node *a, struct td_node *b, int transpose_a,
                          int transpose_b);

/* op(a) op(b) + c in one product (the sum a matmul's or linear's tangent
 * is): a, b and the flags as td_matmul; c of the product's shape exactly.
 * Errors: td_matmul's, and c of another shape or integer. */
struct td_node *td_matmul_add(struct td_graph *g, struct td_node *a, struct td_node *b,
                              int transpose_a, int transpose_b, struct td_node *c);

/* Attention on packed heads, without copies that split or merge them.
 * td_attn_scores: y[b, h, i, j] = sum_c q[b, i, h dh + c] k[b, j, h dh + c]
 * with q [B, Tq, D], k [B, Tk, D], D = heads * dh; y [B, heads, Tq, Tk].
 * Errors: operands not float of rank 3, batch or features differing, heads
 * not dividing D.
 * td_attn_mix: y[b, i, h dh + c] = sum_j op(p)[b, h, i, j] v[b, j, h dh + c]
 * with p [B, heads, Tq, Tk] (op(p) = p, or its transpose over the last two
 * axes when transpose_p is set), v [B, Tk, D]; y [B, Tq, D]. Errors: p not
 * float of rank 4, v not of rank 3, heads not axis 1 of p or not dividing
 * D, batch or the summed time axis differing. */
struct td_node *td_attn_scores(struct td_graph *g, struct td_node *q, struct td_node *k, int heads);
struct td_node *td_attn_mix(struct td_graph *g, struct td_node *p, struct td_node *v, int heads,
                            int transpose_p);

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

/* Layer normalisation over the last axis, biased variance as PyTorch:
 * xhat = (x - mean) / sqrt(var + eps). x [..., C] (rank >= 1); eps >= 0
 * (PyTorch's default 1e-5). td_normalize gives xhat; td_layer_norm_op
 * gives xhat * gamma + beta with gamma and beta [C] (ops/layers.h's
 * td_layer_norm creates them as parameters). A gamma or beta not of shape
 * [C], or a negative eps, is a shape error. */
struct td_node *td_normalize(struct td_graph *g, struct td_node *x, float eps);
struct td_node *td_layer_norm_op(struct td_graph *g, struct td_node *x, struct td_node *gamma,
                                 struct td_node *beta, float eps);
/* Their derivative rules in one pass each, x as above:
 * td_normalize_grad: N_x v = (v - mean(v) - xhat mean(v xhat)) / sqrt(var + eps),
 *   normalize's Jacobian (symmetric) applied to v of x's shape;
 * td_layer_norm_grad: N_x(ct * gamma), layer_norm's cotangent of x, with
 *   gamma [C] and ct of x's shape;
 * td_layer_norm_dgamma: sum over rows of ct * xhat, layer_norm's cotangent
 *   of gamma, [C]. */
struct td_node *td_normalize_grad(struct td_graph *g, struct td_node *x, struct td_node *v,
                                  float eps);
struct td_node *td_layer_norm_grad(struct td_graph *g, struct td_node *x, struct td_node *gamma,
                                   struct td_node *ct, float eps);
struct td_node *td_layer_norm_dgamma(struct td_graph *g, struct td_node *x, struct td_node *ct,
                                     float eps);

/* Causal (masked) softmax of attention scores: x [..., T, T] (rank >= 2,
 * last two axes equal; anything else is a shape error);
 * y[..., i, j] = softmax over j <= i of scale * x[..., i, j], and exactly 0
 * for j > i. Entries of x above the diagonal are never read. */
struct td_node *td_causal_softmax(struct td_graph *g, struct td_node *x, float scale);
/* alpha * y * (v - sum_last(y * v)): a softmax's Jacobian at output y applied
 * to v, the rules of softmax and causal_softmax in one pass. y and v have one
 * shape [..., C] (rank >= 1). causal = 1 needs y [..., T, T] and reads only
 * the entries j <= i of each row i (y is taken as 0 above the diagonal, the
 * output is 0 there); causal must be 0 or 1. */
struct td_node *td_softmax_apply(struct td_graph *g, struct td_node *y, struct td_node *v,
                                 float alpha, int causal);

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

/* Rows of `table` [V, d] (TD_F32) picked by `ids` (TD_I32, any shape of
 * rank 1 to TD_MAX_DIMS - 1): y [ids..., d]. Differentiable in the table.
 * Build errors (TD_ERR_SHAPE): a table that is not float [V, d], ids not
 * int32 or of a rank outside that range. An id outside [0, V) is bad data:
 * td_run fails with TD_ERR_ARG and a message naming the node, the id and
 * its position. */
struct td_node *td_embedding_lookup(struct td_graph *g, struct td_node *table, struct td_node *ids);

/* The lookup's VJP, a scatter-add: y [rows, d] with y[v] = sum of ct[p]
 * over the positions p where ids[p] == v, summed in position order (the
 * same bits for any thread count). ct [ids..., d] TD_F32, rows >= 1; ids as
 * above. Build errors: ct not float or not of ids' shape plus one axis,
 * rows < 1. An id outside [0, rows) fails the run as above. */
struct td_node *td_embedding_grad(struct td_graph *g, struct td_node *ct, struct td_node *ids,
                                  int rows);

/* Inverted dropout: each element of x (TD_F32) kept with probability
 * 1 - rate and scaled by 1 / (1 - rate), else 0. `step` is a TD_I32 input
 * of one element the caller feeds each run with the training step: the
 * mask is a pure function of (graph seed, step, this node), so a step
 * gives the same mask on every run and thread count, the forward pass and
 * its JVP and VJP drop the same elements, and a new step draws a new mask.
 * A step < 0 means evaluation: y = x. Rate 0 returns x itself (step is
 * then not used). Build errors: rate outside [0, 1), x not float, step not
 * an int32 of one element. */
struct td_node *td_dropout(struct td_graph *g, struct td_node *x, float rate, struct td_node *step);

/* Sequence ops (GPT): copies along one axis. x may be TD_F32 or TD_I32
 * (slicing token ids is fine); integer results get no derivatives.
 *
 * x[..., start : start + length, ...] along `axis` (0 <= axis < rank,
 * 0 <= start, 1 <= length, start + length <= dim; otherwise a build
 * error). Taking the whole axis returns x itself. */
struct td_node *td_slice(struct td_graph *g, struct td_node *x, int axis, int start, int length);

/* x with `before` zeros ahead of it and `after` zeros behind it along
 * `axis` (both >= 0, axis in range; otherwise a build error):
 * [.., D, ..] -> [.., before + D + after, ..]. Zero padding returns x. */
struct td_node *td_pad(struct td_graph *g, struct td_node *x, int axis, int before, int after);

/* The n operands xs[0..n) joined along `axis` in order. They must share a
 * dtype and every dim but the axis (else TD_ERR_SHAPE, as for an axis out
 * of range). 1 <= n <= TD_MAX_SRC (3): join more by nesting concats; n
 * outside that range is a TD_ERR_ARG error. n == 1 returns xs[0] itself. */
struct td_node *td_concat(struct td_graph *g, struct td_node *const *xs, int n, int axis);

/* Not an op: n equal slices of x along `axis` into out[0..n), the inverse
 * of td_concat. Returns TD_OK, or records and returns an error (axis out of
 * range or the dim not divisible by n: TD_ERR_SHAPE) with every out[k]
 * NULL. */
enum td_status td_split(struct td_graph *g, struct td_node *x, int axis, int n,
                        struct td_node **out);

#endif
