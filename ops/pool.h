/* Shared glue of the 2-D pooling ops (NCHW, TD_F32): max_pool2d and its
 * derivative ops max_pool2d_select and max_pool2d_scatter, avg_pool2d and
 * its transpose avg_pool2d_grad.
 *
 * Attributes: i[0..1] = kernel (H, W), i[2..3] = stride, i[4..5] = padding,
 * i[6..7] = the input's H, W (avg_pool2d_grad only, which cannot infer it
 * when stride > 1).
 *
 * Kernels are hand loops over (n, c) planes, one thread per plane range, so
 * sums over overlapping windows happen in one fixed order. 2x2 windows at
 * stride 2 without padding (the usual CNN pooling) have a one-pass kernel
 * vectorized along the output row; other windows go row by row, every
 * window of a row advanced together per kernel element. Not oneDNN's
 * pooling: max pooling's backward needs the forward's workspace, a second
 * output the op contract has no place for, and on [64, 32, 28, 28] with 2x2
 * windows (one thread, best of 30 runs) its jit kernels on plain NCHW took
 * 0.36 ms (max) and 0.37 ms (avg) where these loops take 0.24 ms and
 * 0.14 ms (select 0.37 ms, scatter 0.42 ms). The argmax is recomputed from
 * x instead, with one tie rule shared by forward, select and scatter: the
 * first maximum in row-major window order. */
#ifndef TD_POOL_H
#define TD_POOL_H

#include "ops/op.h"
#include "ops/ops.h"

enum td_pool_kind {
    TD_POOL_MAX,      /* (x) -> y */
    TD_POOL_SELECT,   /* (x, t) -> y */
    TD_POOL_SCATTER,  /* (x, ct) -> dx */
    TD_POOL_AVG,      /* (x) -> y */
    TD_POOL_AVG_GRAD, /* (ct) -> dx */
};

/* Sizes of one pooling: planes = N * C, input h x w, output oh x ow. */
struct td_pool_geom {
    int64_t planes, h, w, oh, ow;
    int64_t kernel[2], stride[2], pad[2];
};

/* The attributes of params (NULL: kernel 0, which the shape rule rejects);
 * a stride left 0 becomes the kernel size. i[6..7] = (h, w). */
struct td_attr td_pool_attr(const struct td_pool2d_params *params, int h, int w);

/* The params stored in a pooling node's attributes. */
struct td_pool2d_params td_pool_params(const struct td_node *n);

/* Shape-rule body: checks n's operands and attributes as an op of `kind`
 * and sets n's shape and dtype. Returns TD_OK or the td_node_fail status. */
enum td_status td_pool_shape(struct td_node *n, enum td_pool_kind kind);

/* Kernel body of every kind. */
void td_pool_run(const struct td_exec *ex, enum td_pool_kind kind);

/* Window elements read plus elements written (the scheduler's unit). */
double td_pool_cost(const struct td_node *n, enum td_pool_kind kind);

/* Test reference, written from the definition: every window position is
 * visited; padded ones never win a max and add 0 to an average; in double. */
void td_pool_reference(const struct td_node *n, enum td_pool_kind kind, const void *const *in,
                       float *out);

/* For max pooling's op-table cases: x plus a constant of distinct values
 * 0.1 apart in scrambled order, so that with operands drawn from
 * [-0.02, 0.02] and finite-difference steps of 0.01 no window's argmax can
 * change (a near tie would make the finite differences jump). */
struct td_node *td_pool_test_distinct(struct td_graph *g, struct td_node *x);

#endif
