/* Target shapes carried in struct td_attr by the ops that take one
 * (broadcast_to, reshape): i[0] = rank, i[1 .. rank] = dims. */
#ifndef TD_ATTR_SHAPE_H
#define TD_ATTR_SHAPE_H

#include "graph/node.h"

/* Stores s in a (zeroed first). A rank outside [0, TD_MAX_DIMS] or a dim
 * that does not fit an int is stored so that td_attr_get_shape rejects it. */
void td_attr_put_shape(struct td_attr *a, const struct td_shape *s);

/* Reads the shape back into *s. Returns 1 when it is a valid shape
 * (td_shape_valid), else 0 with *s holding what could be read, for messages. */
int td_attr_get_shape(const struct td_attr *a, struct td_shape *s);

#endif
