#include "ops/axis.h"

#include <stdio.h>
#include <string.h>

/* Rows per thread below which each row's runs are cut into pieces, and the
 * smallest piece worth a work item of its own (elements). */
#define TD_ROWS_PER_THREAD 4
#define TD_MIN_PIECE 4096

enum td_status td_axis_check(struct td_node *n, const struct td_shape *s, int axis)
{
    if (axis >= 0 && axis < s->rank) return TD_OK;
    char buf[128];
    return td_node_fail(n, "axis %d out of range for %s", axis,
                        td_shape_format(s, buf, sizeof(buf)));
}

void td_axis_view(const struct td_shape *s, int axis, int64_t *outer, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= s->dim[d];
    for (int d = axis + 1; d < s->rank; d++) *inner *= s->dim[d];
}

/* Elements [lo, hi) of every run of row r, hi clipped to each run's len. */
static void copy_piece(const struct td_copy_run *runs, int n_runs, int64_t r, int piece, int pieces)
{
    for (int j = 0; j < n_runs; j++) {
        const struct td_copy_run *c = &runs[j];
        int64_t lo = c->len * piece / pieces, hi = c->len * (piece + 1) / pieces;
        if (hi <= lo) continue;
        uint32_t *dst = c->dst + r * c->dst_stride + lo;
        if (c->src)
            memcpy(dst, c->src + r * c->src_stride + lo, (size_t)(hi - lo) * sizeof(*dst));
        else
            memset(dst, 0, (size_t)(hi - lo) * sizeof(*dst));
    }
}

void td_copy_rows(const struct td_copy_run *runs, int n_runs, int64_t rows, int nthreads)
{
    int pieces = 1;
    if (nthreads > 1 && rows < (int64_t)nthreads * TD_ROWS_PER_THREAD) {
        int64_t row_len = 0;
        for (int j = 0; j < n_runs; j++) row_len += runs[j].len;
        int64_t want = ((int64_t)nthreads * TD_ROWS_PER_THREAD + rows - 1) / rows;
        int64_t most = row_len / TD_MIN_PIECE;
        pieces = (int)(want < most ? want : most > 1 ? most : 1);
    }
    TD_PARALLEL_FOR(nthreads, w, rows * pieces,
                    copy_piece(runs, n_runs, w / pieces, (int)(w % pieces), pieces););
}
