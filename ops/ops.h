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

#endif
