/* Shared code of the ops that work along one axis (slice, pad, concat):
 * the axis check, the [outer, axis, inner] view of a shape, and a parallel
 * copy of contiguous runs. */
#ifndef TD_AXIS_H
#define TD_AXIS_H

#include <stdint.h>

#include "ops/op.h"

/* TD_OK when 0 <= axis < rank(s); otherwise records "axis A out of range
 * for [..]" on n (td_node_fail) and returns TD_ERR_SHAPE. */
enum td_status td_axis_check(struct td_node *n, const struct td_shape *s, int axis);

/* s viewed as [outer, s->dim[axis], inner]: the products of the dims before
 * and after axis (1 when there are none). axis must be valid. */
void td_axis_view(const struct td_shape *s, int axis, int64_t *outer, int64_t *inner);

/* One contiguous run per row: row r writes len 4-byte elements at
 * dst + r * dst_stride, copied from src + r * src_stride, or zeros when src
 * is NULL. */
struct td_copy_run {
    const uint32_t *src;
    int64_t src_stride;
    uint32_t *dst;
    int64_t dst_stride;
    int64_t len;
};

/* Performs every run of `runs` for rows [0, rows) on nthreads threads
 * (memcpy/memset per run). Rows are split between threads, and each row's
 * runs too when there are few rows, so axis 0 of a large tensor still uses
 * every thread. Destinations must not overlap sources or each other.
 * Allocates nothing. */
void td_copy_rows(const struct td_copy_run *runs, int n_runs, int64_t rows, int nthreads);

#endif
