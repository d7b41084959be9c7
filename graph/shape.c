#include "graph/shape.h"

#include <stdio.h>

struct td_shape td_shape_from(const int64_t *dims, int rank)
{
    struct td_shape s = {0};
    if (rank < 0) rank = 0;
    if (rank > TD_MAX_DIMS) rank = TD_MAX_DIMS;
    s.rank = rank;
    for (int i = 0; i < rank; i++) s.dim[i] = dims[i];
    return s;
}

int64_t td_shape_numel(const struct td_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->dim[i];
    return n;
}

int td_shape_equal(const struct td_shape *a, const struct td_shape *b)
{
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return 0;
    return 1;
}

int td_shape_valid(const struct td_shape *s)
{
    if (s->rank < 0 || s->rank > TD_MAX_DIMS) return 0;
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] < 1) return 0;
    return 1;
}

char *td_shape_format(const struct td_shape *s, char *buf, size_t n)
{
    if (n == 0) return buf;
    size_t at = 0;
    int w = snprintf(buf, n, "[");
    at = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < s->rank && at < n; i++) {
        w = snprintf(buf + at, n - at, i ? ",%lld" : "%lld", (long long)s->dim[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

void td_shape_strides(const struct td_shape *s, int64_t *strides)
{
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s->dim[i];
    }
}

size_t td_dtype_size(enum td_dtype t)
{
    return t == TD_I32 ? sizeof(int32_t) : sizeof(float);
}
