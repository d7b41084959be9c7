/* Shared glue of the matmul family (matmul, matmul_add): nodes whose
 * operands 0 and 1 are a and b of op(a) op(b), with attr i[0] =
 * transpose_a and i[1] = transpose_b (see td_matmul in ops/ops.h). */
#ifndef TD_MATMUL_COMMON_H
#define TD_MATMUL_COMMON_H

#include "ops/dnnl/prim.h"

/* The oneDNN matmul descriptor of node n: args[0] (src, operand 0),
 * args[1] (weights, operand 1) and args[2] (dst, the output) get their
 * memory descriptors, transposes as swapped strides and batch axes of 1
 * where an operand has fewer. */
dnnl_status_t td_matmul_desc(const struct td_node *n, struct td_prim_arg args[3],
                             dnnl_matmul_desc_t *desc);

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
