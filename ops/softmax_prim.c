#include "ops/softmax_prim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/dnnl/prim.h"
#include "ops/ops.h"

enum td_status td_softmax_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0];
    char s[128];
    td_shape_format(&x->shape, s, sizeof(s));
    if (x->dtype != TD_F32) return td_node_fail(n, "expects a float operand, got int32 %s", s);
    if (x->shape.rank < 1) return td_node_fail(n, "needs an operand of rank >= 1, got %s", s);
    n->shape = x->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

enum td_status td_softmax_prepare(struct td_prep *p, dnnl_alg_kind_t alg)
{
    const struct td_node *n = p->node;
    struct td_prim_arg args[2] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_softmax_v2_desc_t desc;
    dnnl_status_t st = td_md_plain(&args[0].md, &n->shape, TD_F32);
    args[1].md = args[0].md;
    if (st == dnnl_success)
        st = dnnl_softmax_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &args[0].md,
                                               &args[1].md, n->shape.rank - 1);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "%s: oneDNN softmax descriptor failed (status %d)",
                 n->op->name, (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(p, &desc, args, 2);
}

struct td_node *td_sum_last(struct td_graph *g, struct td_node *x)
{
    return td_reduce_sum(g, x, 1u << (x->shape.rank - 1), 1);
}

int64_t td_causal_size(const struct td_shape *s)
{
    if (s->rank < 2 || s->dim[s->rank - 1] != s->dim[s->rank - 2]) return 0;
    return s->dim[s->rank - 1];
}

struct td_node *td_causal_mask(struct td_graph *g, struct td_node *t)
{
    int64_t T = td_causal_size(&t->shape);
    float *m = malloc((size_t)(T * T) * sizeof(float));
    if (!m) {
        td_graph_fail(g, TD_ERR_NOMEM, "causal mask: out of memory for [%lld,%lld]", (long long)T,
                      (long long)T);
        return NULL;
    }
    for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < T; j++) m[i * T + j] = j <= i ? 1.0f : 0.0f;
    struct td_node *mask = td_constant(g, TD_SHAPE(T, T), m);
    free(m);
    return td_mul(g, t, mask);
}

void td_softmax_reference(const struct td_node *n, const void *const *in, float *out, int take_log)
{
    const float *x = in[0];
    int64_t c = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / c;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        double mx = xr[0], sum = 0;
        for (int64_t j = 1; j < c; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int64_t j = 0; j < c; j++) sum += exp(xr[j] - mx);
        for (int64_t j = 0; j < c; j++)
            out[r * c + j] = (float)(take_log ? xr[j] - mx - log(sum) : exp(xr[j] - mx) / sum);
    }
}

const struct td_op_case td_softmax_cases[TD_SOFTMAX_N_CASES] = {
    {.n_in = 1, .shape = {{2, {4, 7}}}},
    {.n_in = 1, .shape = {{3, {2, 3, 5}}}},
    {.n_in = 1, .shape = {{1, {6}}}},
};
