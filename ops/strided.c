#include "ops/strided.h"

#include <string.h>

#include "ops/op.h"

/* Rows of the last output axis are independent: each thread copies whole
 * rows, so the result does not depend on the thread count. */
void td_strided_gather(const struct td_shape *out_shape, const int64_t *in_stride,
                       const uint32_t *in, uint32_t *out, int nthreads)
{
    int r = out_shape->rank;
    if (r == 0) {
        out[0] = in[0];
        return;
    }
    int64_t inner = out_shape->dim[r - 1], step = in_stride[r - 1];
    int64_t rows = td_shape_numel(out_shape) / inner;
    TD_PARALLEL_FOR(nthreads, row, rows, {
        int64_t rest = row, off = 0;
        for (int d = r - 2; d >= 0; d--) {
            off += (rest % out_shape->dim[d]) * in_stride[d];
            rest /= out_shape->dim[d];
        }
        const uint32_t *src = in + off;
        uint32_t *dst = out + row * inner;
        if (step == 1)
            memcpy(dst, src, (size_t)inner * sizeof(*dst));
        else
            for (int64_t j = 0; j < inner; j++) dst[j] = src[j * step];
    });
}
