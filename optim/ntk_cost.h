/* Library-internal: the NTK methods' cost model (optim/ntk_cost.c). */
#ifndef TD_NTK_COST_H
#define TD_NTK_COST_H

#include "optim/ntk_impl.h"

/* What the estimates depend on. */
struct td_ntk_shape {
    int64_t n1, n2, K;
    enum td_ntk_jacobian jacobian; /* the caller's choice of rows or columns */
    int symmetric, trace, diagonal;
    size_t params;                /* elements of theta */
    double flops_per_sample;      /* one sample's forward pass */
    double pass_bytes_per_sample; /* arena of one sample's backward pass */
    double nodes_per_pass;        /* nodes a backward pass runs */
};

/* Work of method m with tiles of b samples (st: its structure, routes
 * chosen for b; structured: `seeds` backward passes per forward pass). */
double td_ntk_cost_flops(const struct td_ntk_shape *s, const struct td_ntk_structure *st,
                         enum td_ntk_method m, int64_t b, int64_t seeds);

/* How the fallback Jacobian entries of `elems` parameter elements are best
 * computed at tile b: 0 for rows (one-sample backward passes), or the
 * number of tangent directions per forward pass of the column route. */
int64_t td_ntk_fallback_columns(const struct td_ntk_shape *s, size_t elems, int64_t b);

/* Working set of method m at tile b. */
double td_ntk_cost_bytes(const struct td_ntk_shape *s, const struct td_ntk_structure *st,
                         enum td_ntk_method m, int64_t b, int64_t seeds);

#endif
