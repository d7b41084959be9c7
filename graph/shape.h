/* Tensor shapes: up to TD_MAX_DIMS dimensions, row-major, contiguous. */
#ifndef TD_SHAPE_H
#define TD_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#define TD_MAX_DIMS 6

struct td_shape {
    int rank;                 /* 0 for a scalar */
    int64_t dim[TD_MAX_DIMS]; /* dim[0] is the slowest-varying axis */
};

/* Element types. Labels are TD_I32; everything differentiable is TD_F32. */
enum td_dtype { TD_F32 = 0, TD_I32 = 1 };

/* A shape from a dimension list: TD_SHAPE(128, 784). TD_SHAPE() is a scalar. */
#define TD_SHAPE(...)                                                                              \
    td_shape_from((const int64_t[]){0, __VA_ARGS__} + 1,                                           \
                  (int)(sizeof((const int64_t[]){0, __VA_ARGS__}) / sizeof(int64_t)) - 1)

/* Builds a shape of `rank` dims; rank beyond TD_MAX_DIMS is clamped (callers
 * that accept user ranks check td_shape_valid first). */
struct td_shape td_shape_from(const int64_t *dims, int rank);

/* Number of elements (1 for a scalar). */
int64_t td_shape_numel(const struct td_shape *s);

/* 1 when both ranks and all dims are equal. */
int td_shape_equal(const struct td_shape *a, const struct td_shape *b);

/* 1 when 0 <= rank <= TD_MAX_DIMS and every dim is >= 1. */
int td_shape_valid(const struct td_shape *s);

/* Writes "[128,64]" (or "[]" for a scalar) into buf; always NUL-terminates
 * when n > 0. Returns buf so it can be used inside a printf argument list. */
char *td_shape_format(const struct td_shape *s, char *buf, size_t n);

/* Row-major strides in elements. */
void td_shape_strides(const struct td_shape *s, int64_t *strides);

/* Bytes per element of a dtype. */
size_t td_dtype_size(enum td_dtype t);

#endif
