#include "ops/dnnl/prim.h"

#include <stdio.h>
#include <stdlib.h>

dnnl_status_t td_md_plain(dnnl_memory_desc_t *md, const struct td_shape *s, enum td_dtype dtype)
{
    dnnl_dims_t dims;
    int rank = s->rank > 0 ? s->rank : 1;
    for (int i = 0; i < rank; i++) dims[i] = s->rank > 0 ? s->dim[i] : 1;
    int64_t strides[DNNL_MAX_NDIMS];
    strides[rank - 1] = 1;
    for (int i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * dims[i + 1];
    return dnnl_memory_desc_init_by_strides(md, rank, dims, dtype == TD_I32 ? dnnl_s32 : dnnl_f32,
                                            strides);
}

dnnl_status_t td_md_strided(dnnl_memory_desc_t *md, int rank, const int64_t *dims,
                            const int64_t *strides)
{
    dnnl_dims_t d, st;
    for (int i = 0; i < rank; i++) {
        d[i] = dims[i];
        st[i] = strides[i];
    }
    return dnnl_memory_desc_init_by_strides(md, rank, d, dnnl_f32, st);
}

static enum td_status fail(struct td_prep *p, const char *what, dnnl_status_t st)
{
    snprintf(p->err, p->err_len, "%s: oneDNN %s failed (status %d)", p->node->op->name, what,
             (int)st);
    return TD_ERR_BACKEND;
}

enum td_status td_prim_create(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                              const struct td_prim_arg *args, int n_args)
{
    return td_prim_create_post(p, op_desc, args, n_args, NULL);
}

enum td_status td_prim_create_post(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                                   const struct td_prim_arg *args, int n_args,
                                   const_dnnl_post_ops_t post_ops)
{
    if (n_args > TD_PRIM_MAX_ARGS) return fail(p, "argument list", dnnl_invalid_arguments);
    struct td_prim *pr = calloc(1, sizeof(*pr));
    if (!pr) return TD_ERR_NOMEM;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && post_ops) st = dnnl_primitive_attr_set_post_ops(attr, post_ops);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, op_desc, attr, p->engine, NULL);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        free(pr);
        return fail(p, "primitive descriptor creation", st);
    }
    st = dnnl_primitive_create(&pr->prim, pd);
    const dnnl_memory_desc_t *scratch_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t scratch = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
    int n = 0;
    for (int i = 0; st == dnnl_success && i < n_args; i++, n++) {
        pr->buf[n] = args[i].buf;
        pr->args[n].arg = args[i].dnnl_arg;
        st = dnnl_memory_create(&pr->args[n].memory, &args[i].md, p->engine, DNNL_MEMORY_NONE);
    }
    if (st == dnnl_success && scratch > 0) {
        pr->buf[n] = TD_BUF_OUT - 1;
        pr->args[n].arg = DNNL_ARG_SCRATCHPAD;
        st = dnnl_memory_create(&pr->args[n].memory, scratch_md, p->engine, DNNL_MEMORY_NONE);
        n++;
    }
    pr->n_args = n;
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        td_prim_release(pr);
        return fail(p, "primitive creation", st);
    }
    p->state = pr;
    p->scratch_bytes = scratch;
    return TD_OK;
}

void td_prim_execute(const struct td_exec *ex)
{
    struct td_prim *pr = ex->state;
    for (int i = 0; i < pr->n_args; i++) {
        int b = pr->buf[i];
        void *ptr = b == TD_BUF_OUT ? ex->out : b >= 0 ? (void *)ex->in[b] : ex->scratch;
        dnnl_memory_set_data_handle(pr->args[i].memory, ptr);
    }
    dnnl_primitive_execute(pr->prim, ex->stream, pr->n_args, pr->args);
    dnnl_stream_wait(ex->stream);
}

void td_prim_release(void *state)
{
    struct td_prim *pr = state;
    if (!pr) return;
    for (int i = 0; i < pr->n_args; i++)
        if (pr->args[i].memory) dnnl_memory_destroy(pr->args[i].memory);
    if (pr->prim) dnnl_primitive_destroy(pr->prim);
    free(pr);
}
