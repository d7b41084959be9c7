/* Shared glue of the 2-D convolution ops conv2d, conv2d_grad_input and
 * conv2d_grad_weight (NCHW activations, OIHW weights, TD_F32).
 *
 * The three are the partial derivatives of one trilinear form
 *   T(x, w, y) = sum x[n, c, ih, iw] w[o, c, kh, kw] y[n, o, oh, ow],
 *   ih = oh * stride - pad + kh * dilation (the same along W),
 * where x is zero outside [0, H) x [0, W):
 *   conv2d(x, w)             = dT/dy   [N, O, OH, OW]
 *   conv2d_grad_input(y, w)  = dT/dx   [N, C, H, W]
 *   conv2d_grad_weight(x, y) = dT/dw   [O, C, KH, KW]
 * Each is bilinear, and its JVP and VJP rules are built from the three.
 *
 * Attributes: i[0..1] = stride (H, W), i[2..3] = padding, i[4..5] =
 * dilation (1 = dense), i[6..7] = what the op's operands do not determine:
 * the input's H, W for conv2d_grad_input, the kernel's KH, KW for
 * conv2d_grad_weight.
 *
 * Kernels are oneDNN convolution primitives (forward, backward data,
 * backward weights). Their descriptors let oneDNN choose its layouts: plain
 * NCHW/OIHW would run its gemm-based convolution at about half the speed of
 * the blocked jit kernels, so the glue reorders through scratch (see
 * ops/dnnl/prim.h); layouts that would pad a 1- or 3-channel tensor to 16
 * fall back to plain ones. */
#ifndef TD_CONV_H
#define TD_CONV_H

#include "ops/op.h"
#include "ops/ops.h"

enum td_conv_kind { TD_CONV_FWD, TD_CONV_BWD_DATA, TD_CONV_BWD_WEIGHTS };

/* Sizes of one convolution, whichever of the three ops it comes from. */
struct td_conv_geom {
    int64_t n, c, h, w; /* input */
    int64_t o, kh, kw;  /* weight [o, c, kh, kw] */
    int64_t oh, ow;     /* output */
    int64_t stride[2], pad[2], dil[2];
};

/* The attributes of params (NULL: defaults) with i[6..7] = (e0, e1). */
struct td_attr td_conv_attr(const struct td_conv2d_params *params, int e0, int e1);

/* The params stored in a convolution node's attributes. */
struct td_conv2d_params td_conv_params(const struct td_node *n);

/* Shape-rule body: checks n's operands and attributes as an op of `kind`
 * and sets n's shape and dtype. Returns TD_OK or the td_node_fail status. */
enum td_status td_conv_shape(struct td_node *n, enum td_conv_kind kind);

/* The sizes of a node that passed td_conv_shape. */
void td_conv_geom_of(const struct td_node *n, enum td_conv_kind kind, struct td_conv_geom *g);

/* op->prepare body: the oneDNN primitive of `kind` on n's buffers. */
enum td_status td_conv_prepare(struct td_prep *p, enum td_conv_kind kind);

/* Multiply-adds of one execution over sixteen (the scheduler's unit, as
 * matmul's cost). */
double td_conv_cost(const struct td_node *n, enum td_conv_kind kind);

/* Floating-point operations of one execution: 2 per multiply-add, every
 * kernel position counted (padding included), as for op->flops. The three
 * kinds do the same number. */
double td_conv_flops(const struct td_node *n, enum td_conv_kind kind);

/* Test reference: the op's sums of T's terms in double, one term at a time
 * (the loops of the definition above, nothing shared with oneDNN). */
void td_conv_reference(const struct td_node *n, enum td_conv_kind kind, const void *const *in,
                       float *out);

#endif
