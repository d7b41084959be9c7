/* Helpers that keep most ops' derivative rules to one formula. */
#ifndef TD_RULES_H
#define TD_RULES_H

#include "ops/op.h"
#include "ops/ops.h"

/* a + b where NULL is a symbolic zero (NULL + NULL = NULL). */
struct td_node *td_rule_add(struct td_graph *g, struct td_node *a, struct td_node *b);

/* Sums ct over the axes that NumPy broadcasting stretched to turn `shape`
 * into ct's shape, and reshapes to `shape`. Returns ct itself when the shapes
 * are equal. */
struct td_node *td_rule_unbroadcast(struct td_graph *g, struct td_node *ct,
                                    const struct td_shape *shape);

/* Rules of a piecewise-constant op (TD_TRAIT_NONDIFF): all zero. */
struct td_node *td_rule_zero_jvp(struct td_graph *g, struct td_node *n,
                                 struct td_node *const *tangents);
void td_rule_zero_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                      struct td_node **cts);

/* Unary elementwise op y = f(x) whose derivative f'(x) is built by
 * `deriv(g, n)` from n->src[0] (and n itself): defines
 * static <name>_jvp (t * f'(x)) and <name>_vjp (ct * f'(x)). */
#define TD_UNARY_RULES(name, deriv)                                                                \
    static struct td_node *name##_jvp(struct td_graph *g, struct td_node *n,                       \
                                      struct td_node *const *t)                                    \
    {                                                                                              \
        return t[0] ? td_mul(g, t[0], deriv(g, n)) : NULL;                                         \
    }                                                                                              \
    static void name##_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,              \
                           unsigned need, struct td_node **cts)                                    \
    {                                                                                              \
        if (need & 1u) cts[0] = td_mul(g, ct, deriv(g, n));                                        \
    }

#endif
