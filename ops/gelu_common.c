#include "ops/gelu_common.h"

#include "ops/rules.h"

enum td_status td_gelu_grad_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0], *v = n->src[1];
    char sx[128], sv[128];
    td_shape_format(&x->shape, sx, sizeof(sx));
    td_shape_format(&v->shape, sv, sizeof(sv));
    if (x->dtype != TD_F32 || v->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got x %s %s and v %s %s",
                            x->dtype == TD_F32 ? "float32" : "int32", sx,
                            v->dtype == TD_F32 ? "float32" : "int32", sv);
    if (!td_shape_equal(&x->shape, &v->shape))
        return td_node_fail(n, "x %s and v %s must have the same shape", sx, sv);
    if (n->n_src == 3) {
        const struct td_node *t = n->src[2];
        char st[128];
        td_shape_format(&t->shape, st, sizeof(st));
        if (t->dtype != TD_F32) return td_node_fail(n, "expects a float t, got int32 %s", st);
        if (!td_shape_equal(&x->shape, &t->shape))
            return td_node_fail(n, "x %s and t %s must have the same shape", sx, st);
    }
    n->shape = x->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* d(v f'(x)) = tv f'(x) + v f''(x) tx; the first term is the op on tv. */
struct td_node *td_gelu_grad_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t,
                                 struct td_node *(*times_second)(struct td_graph *,
                                                                 struct td_node *, struct td_node *,
                                                                 struct td_node *))
{
    struct td_node *x = n->src[0], *v = n->src[1], *dx = NULL, *dv = NULL;
    if (t[0]) dx = times_second(g, x, v, t[0]);
    if (t[1]) dv = td_node_new(g, n->op, (struct td_node *[]){x, t[1]}, 2, &n->attr);
    return td_rule_add(g, dv, dx);
}

void td_gelu_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                      struct td_node **cts,
                      struct td_node *(*times_second)(struct td_graph *, struct td_node *,
                                                      struct td_node *, struct td_node *))
{
    struct td_node *x = n->src[0], *v = n->src[1];
    if (need & 1u) cts[0] = times_second(g, x, v, ct);
    if (need & 2u) cts[1] = td_node_new(g, n->op, (struct td_node *[]){x, ct}, 2, &n->attr);
}

void td_gelu_blocks_run(const struct td_exec *ex,
                        void (*range)(const struct td_exec *ex, int64_t i0, int64_t i1))
{
    int64_t count = td_shape_numel(&ex->node->shape);
    int64_t blocks = (count + TD_GELU_BLOCK - 1) / TD_GELU_BLOCK;
    TD_PARALLEL_FOR(ex->nthreads, k, blocks, int64_t i0 = k * TD_GELU_BLOCK;
                    range(ex, i0, count - i0 < TD_GELU_BLOCK ? count : i0 + TD_GELU_BLOCK););
}

const struct td_op_case td_gelu_grad_cases[TD_GELU_GRAD_N_CASES] = {
    {.n_in = 2, .shape = {{2, {3, 5}}, {2, {3, 5}}}},
    {.n_in = 2, .shape = {{3, {2, 3, 4}}, {3, {2, 3, 4}}}},
    {.n_in = 2, .shape = {{1, {40}}, {1, {40}}}},
    {.n_in = 2, .shape = {{0}, {0}}},
};
