/* Shared glue of the matmul family (matmul, matmul_add): nodes whose
 * operands 0 and 1 are a and b of op(a) op(b), with attr i[0] =
 * transpose_a and i[1] = transpose_b (see td_matmul in ops/ops.h). */
#ifndef TD_MATMUL_COMMON_H
#define TD_MATMUL_COMMON_H

#include "ops/dnnl/prim.h"

/* op->prepare body: the oneDNN matmul primitive of node n on its buffers
 * (operand 0 as src, operand 1 as weights, the output as dst), transposes
 * as swapped strides, batch axes of 1 where an operand has fewer, and
 * post_ops (NULL: none; the caller keeps them). Returns TD_OK or
 * TD_ERR_BACKEND with p->err filled. */
enum td_status td_matmul_prepare(struct td_prep *p, const_dnnl_post_ops_t post_ops);

/* x [B, T, heads * dh] (row-major) seen as the heads' matrices
 * [B, heads, T, dh] by strides, or as their transposes [B, heads, dh, T]
 * when transposed is set: attention reads and writes packed heads in place. */
dnnl_status_t td_md_heads(dnnl_memory_desc_t *md, const struct td_shape *x, int heads,
                          int transposed);

/* 2 M N K of the product of node n, the FLOPs of its multiply-adds. */
double td_matmul_flops(const struct td_node *n);

/* The scheduler's cost of the product of node n (ops/op.h, .cost). */
double td_matmul_cost(const struct td_node *n);

#endif
