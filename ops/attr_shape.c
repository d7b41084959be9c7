#include "ops/attr_shape.h"

#include <limits.h>
#include <string.h>

void td_attr_put_shape(struct td_attr *a, const struct td_shape *s)
{
    memset(a, 0, sizeof(*a));
    int rank = s->rank >= 0 && s->rank <= TD_MAX_DIMS ? s->rank : -1;
    a->i[0] = rank;
    for (int d = 0; d < rank; d++) a->i[1 + d] = s->dim[d] <= INT_MAX ? (int)s->dim[d] : -1;
}

int td_attr_get_shape(const struct td_attr *a, struct td_shape *s)
{
    memset(s, 0, sizeof(*s));
    s->rank = a->i[0] >= 0 && a->i[0] <= TD_MAX_DIMS ? a->i[0] : 0;
    for (int d = 0; d < s->rank; d++) s->dim[d] = a->i[1 + d];
    return a->i[0] == s->rank && td_shape_valid(s);
}
