#include "ops/rules.h"

struct td_node *td_rule_add(struct td_graph *g, struct td_node *a, struct td_node *b)
{
    if (!a) return b;
    if (!b) return a;
    return td_add(g, a, b);
}

struct td_node *td_rule_unbroadcast(struct td_graph *g, struct td_node *ct,
                                    const struct td_shape *shape)
{
    if (!ct || td_shape_equal(&ct->shape, shape)) return ct;
    /* Axes of size 1 in ct need no sum: the reshape below drops or keeps them. */
    int lead = ct->shape.rank - shape->rank;
    unsigned mask = 0;
    for (int d = 0; d < ct->shape.rank; d++)
        if (ct->shape.dim[d] > 1 && (d < lead || shape->dim[d - lead] == 1)) mask |= 1u << d;
    struct td_node *r = mask ? td_reduce_sum(g, ct, mask, 1) : ct;
    return td_reshape(g, r, *shape);
}

struct td_node *td_rule_zero_jvp(struct td_graph *g, struct td_node *n,
                                 struct td_node *const *tangents)
{
    (void)g;
    (void)n;
    (void)tangents;
    return NULL;
}

void td_rule_zero_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                      struct td_node **cts)
{
    (void)g;
    (void)ct;
    for (int i = 0; i < n->n_src; i++)
        if (need & (1u << i)) cts[i] = NULL;
}
