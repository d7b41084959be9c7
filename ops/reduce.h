/* Shared glue of reduce_sum and reduce_mean: attr i[0] = bitmask of reduced
 * axes (bit d = axis d), i[1] = keepdims. x [...] TD_F32; y has x's shape
 * with the reduced axes set to 1 (keepdims) or dropped (the same bytes).
 *
 * The kernel is a hand loop, not oneDNN's reduction: oneDNN 2.6 has a jit
 * kernel only when the reduced axes are the trailing ones and otherwise runs
 * its reference code: 4.4 ms for [8,64,784] over axis 0 where this loop takes
 * 50 us, and a reduction over the batch axis is what every bias gradient
 * is. */
#ifndef TD_REDUCE_H
#define TD_REDUCE_H

#include "ops/op.h"

/* Shape rule: rejects integer x and axes beyond x's rank. */
enum td_status td_reduce_shape(struct td_node *n);

/* Kernel: y = scale * (sum of x over the reduced axes). Each output element
 * is summed by one thread in a fixed order, so results do not depend on the
 * thread count. */
void td_reduce_run(const struct td_exec *ex, float scale);

/* x's shape with n's reduced axes set to 1. */
struct td_shape td_reduce_kept_shape(const struct td_node *n);

/* Number of x elements summed into each output element. */
int64_t td_reduce_count(const struct td_node *n);

/* ct (n's shape) copied to every position of x that was summed into it:
 * the VJP of reduce_sum. */
struct td_node *td_reduce_spread(struct td_graph *g, const struct td_node *n, struct td_node *ct);

/* Test reference: sums in double, divided by td_reduce_count when mean. */
void td_reduce_reference(const struct td_node *n, const void *const *in, float *out, int mean);

/* The test block of a reduction with the cases of TD_REDUCE_CASES. */
#define TD_REDUCE_TEST(cases_, reference_)                                                         \
    {                                                                                              \
        .lo = -1.0f, .hi = 1.0f, .fd_eps = 1e-2f, .tol = 2e-3f, .n_cases = TD_REDUCE_N_CASES,      \
        .cases = (cases_), .reference = (reference_)                                               \
    }

/* Defines `static const struct td_op_case <builder>_cases[TD_REDUCE_N_CASES]`,
 * axis masks with and without keepdims built with `builder`. */
#define TD_REDUCE_N_CASES 6
#define TD_REDUCE_CASES(builder)                                                                   \
    static struct td_node *builder##_axis1(struct td_graph *g, struct td_node *const *in)          \
    {                                                                                              \
        return builder(g, in[0], 0x2u, 0);                                                         \
    }                                                                                              \
    static struct td_node *builder##_axes02_keep(struct td_graph *g, struct td_node *const *in)    \
    {                                                                                              \
        return builder(g, in[0], 0x5u, 1);                                                         \
    }                                                                                              \
    static struct td_node *builder##_all(struct td_graph *g, struct td_node *const *in)            \
    {                                                                                              \
        return builder(g, in[0], 0x7u, 0);                                                         \
    }                                                                                              \
    static struct td_node *builder##_axis0(struct td_graph *g, struct td_node *const *in)          \
    {                                                                                              \
        return builder(g, in[0], 0x1u, 0);                                                         \
    }                                                                                              \
    static struct td_node *builder##_axis1_keep(struct td_graph *g, struct td_node *const *in)     \
    {                                                                                              \
        return builder(g, in[0], 0x2u, 1);                                                         \
    }                                                                                              \
    static const struct td_op_case builder##_cases[TD_REDUCE_N_CASES] = {                          \
        {.n_in = 1, .shape = {{3, {3, 4, 5}}}, .build = builder##_axis1},                          \
        {.n_in = 1, .shape = {{3, {3, 4, 5}}}, .build = builder##_axes02_keep},                    \
        {.n_in = 1, .shape = {{3, {3, 4, 5}}}, .build = builder##_all},                            \
        {.n_in = 1, .shape = {{2, {4, 6}}}, .build = builder##_axis0},                             \
        {.n_in = 1, .shape = {{2, {4, 6}}}, .build = builder##_axis1_keep},                        \
        {.n_in = 1, .shape = {{3, {3, 1, 5}}}, .build = builder##_axis1_keep},                     \
    }

#endif
