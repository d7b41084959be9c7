#include "ops/eltwise.h"

#include <stdio.h>

#include "ops/dnnl/prim.h"

enum td_status td_unary_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0];
    if (x->dtype != TD_F32) {
        char s[64];
        return td_node_fail(n, "expects a float operand, got int32 %s",
                            td_shape_format(&x->shape, s, sizeof(s)));
    }
    n->shape = x->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

enum td_status td_eltwise_prepare(struct td_prep *p, dnnl_alg_kind_t alg, float alpha, float beta)
{
    struct td_prim_arg args[2] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_eltwise_desc_t desc;
    dnnl_status_t st = td_md_plain(&args[0].md, &p->node->shape, TD_F32);
    args[1].md = args[0].md;
    if (st == dnnl_success)
        st = dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &args[0].md, alpha,
                                            beta);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "%s: oneDNN eltwise descriptor failed (status %d)",
                 p->node->op->name, (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(p, &desc, args, 2);
}

struct td_node *td_unary_new(struct td_graph *g, const struct td_op_def *op, struct td_node *x,
                             const struct td_attr *attr)
{
    return td_node_new(g, op, &x, 1, attr);
}

void td_unary_reference(const struct td_node *n, const void *const *in, float *out,
                        double (*f)(double x, const struct td_attr *attr))
{
    const float *x = in[0];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) out[i] = (float)f(x[i], &n->attr);
}

const struct td_op_case td_unary_cases[TD_UNARY_N_CASES] = {
    {.n_in = 1, .shape = {{.rank = 2, .dim = {3, 5}}}},
    {.n_in = 1, .shape = {{.rank = 3, .dim = {2, 3, 4}}}},
    {.n_in = 1, .shape = {{.rank = 0}}},
};
