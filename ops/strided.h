/* A strided gather shared by the copying structural ops (broadcast_to,
 * transpose): each output element is one input element found through
 * per-output-axis input strides. */
#ifndef TD_STRIDED_H
#define TD_STRIDED_H

#include <stdint.h>

#include "graph/shape.h"

/* out [out_shape] row-major; out[i0, .., ir] = in[sum_k ik * in_stride[k]].
 * Copies 4-byte elements (TD_F32 and TD_I32 alike). A stride of 0 repeats
 * (broadcasts) an input axis. out must not overlap in. Runs on nthreads
 * OpenMP threads; allocates nothing. */
void td_strided_gather(const struct td_shape *out_shape, const int64_t *in_stride,
                       const uint32_t *in, uint32_t *out, int nthreads);

#endif
