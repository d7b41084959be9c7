#include "ops/matmul_common.h"

#include <stdio.h>

/* op(x) as a oneDNN descriptor of `rank` dims: x of a lower rank gets
 * leading dims of 1; a transpose swaps the last two strides. */
static dnnl_status_t operand_md(dnnl_memory_desc_t *md, const struct td_shape *s, int t, int rank)
{
    int64_t dims[TD_MAX_DIMS], strides[TD_MAX_DIMS], st[TD_MAX_DIMS];
    int lead = rank - s->rank;
    td_shape_strides(s, st);
    for (int d = 0; d < lead; d++) {
        dims[d] = 1;
        strides[d] = td_shape_numel(s);
    }
    for (int d = 0; d < s->rank; d++) {
        dims[lead + d] = s->dim[d];
        strides[lead + d] = st[d];
    }
    if (t) {
        int64_t tmp = dims[rank - 2];
        dims[rank - 2] = dims[rank - 1];
        dims[rank - 1] = tmp;
        tmp = strides[rank - 2];
        strides[rank - 2] = strides[rank - 1];
        strides[rank - 1] = tmp;
    }
    return td_md_strided(md, rank, dims, strides);
}

/* The oneDNN matmul descriptor of node n: args[0] (src, operand 0),
 * args[1] (weights, operand 1) and args[2] (dst, the output) get their
 * memory descriptors, transposes as swapped strides and batch axes of 1
 * where an operand has fewer. */
static dnnl_status_t matmul_desc(const struct td_node *n, struct td_prim_arg args[3],
                                 dnnl_matmul_desc_t *desc)
{
    int rank = n->shape.rank;
    dnnl_status_t st = operand_md(&args[0].md, &n->src[0]->shape, n->attr.i[0], rank);
    if (st == dnnl_success) st = operand_md(&args[1].md, &n->src[1]->shape, n->attr.i[1], rank);
    if (st == dnnl_success) st = td_md_plain(&args[2].md, &n->shape, TD_F32);
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(desc, &args[0].md, &args[1].md, NULL, &args[2].md);
    return st;
}

dnnl_status_t td_md_heads(dnnl_memory_desc_t *md, const struct td_shape *x, int heads,
                          int transposed)
{
    int64_t b = x->dim[0], t = x->dim[1], d = x->dim[2], dh = d / heads;
    int64_t dims[4] = {b, heads, t, dh}, strides[4] = {t * d, dh, d, 1};
    if (transposed) {
        dims[2] = dh, dims[3] = t;
        strides[2] = 1, strides[3] = d;
    }
    return td_md_strided(md, 4, dims, strides);
}

/* K: the columns of op(a). */
static double inner_dim(const struct td_node *n)
{
    const struct td_shape *a = &n->src[0]->shape;
    return (double)a->dim[a->rank - (n->attr.i[0] ? 2 : 1)];
}

enum td_status td_matmul_prepare(struct td_prep *p, const_dnnl_post_ops_t post_ops)
{
    struct td_prim_arg args[3] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_WEIGHTS, .buf = TD_BUF_IN0 + 1},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_matmul_desc_t desc;
    dnnl_status_t st = matmul_desc(p->node, args, &desc);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "%s: oneDNN matmul descriptor failed (status %d)",
                 p->node->op->name, (int)st);
        return TD_ERR_BACKEND;
    }
    struct td_prim_desc d = {&desc, NULL, post_ops};
    return td_prim_create_from(p, &d, 1, args, 3);
}

double td_matmul_flops(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape) * inner_dim(n);
}

/* In the scheduler's unit, elements touched by a streaming op: one
 * multiply-add of a blocked matmul costs about a sixteenth of that. */
double td_matmul_cost(const struct td_node *n)
{
    return (double)td_shape_numel(&n->shape) * inner_dim(n) / 16.0;
}
