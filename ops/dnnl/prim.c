#include "ops/dnnl/prim.h"

#include <stdio.h>
#include <stdlib.h>

/* Alignment of the reorder buffers in scratch (a cache line, as the arena's). */
#define PRIM_ALIGN 64

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

static size_t align_up(size_t n)
{
    return (n + PRIM_ALIGN - 1) / PRIM_ALIGN * PRIM_ALIGN;
}

/* Primitive attributes asking for a user-managed scratchpad. */
static dnnl_status_t user_scratchpad(dnnl_primitive_attr_t *attr)
{
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    return st;
}

static size_t scratchpad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static dnnl_status_t make_pd(struct td_prep *p, const struct td_prim_desc *d,
                             dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t hint = NULL;
    dnnl_status_t st = dnnl_success;
    if (d->hint) st = dnnl_primitive_desc_create(&hint, d->hint, NULL, p->engine, NULL);
    if (st == dnnl_success) st = user_scratchpad(&attr);
    if (st == dnnl_success && d->post_ops) st = dnnl_primitive_attr_set_post_ops(attr, d->post_ops);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, d->op, attr, p->engine, hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (hint) dnnl_primitive_desc_destroy(hint);
    return st;
}

/* The layout pd chose for argument a (the md itself when pd reports none). */
static const dnnl_memory_desc_t *chosen_md(const_dnnl_primitive_desc_t pd,
                                           const struct td_prim_arg *a)
{
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a->dnnl_arg);
    return md && md->ndims > 0 ? md : &a->md;
}

static int pads_much(const_dnnl_primitive_desc_t pd, const struct td_prim_arg *args, int n_args)
{
    for (int i = 0; i < n_args; i++) {
        const dnnl_memory_desc_t *md = chosen_md(pd, &args[i]);
        for (int d = 0; d < md->ndims; d++)
            if (md->padded_dims[d] >= 2 * md->dims[d]) return 1;
    }
    return 0;
}

/* A reorder of argument i between its node buffer and the chosen layout.
 * Its scratchpad (if any) starts where the primitive's does; *pad grows to
 * fit it. */
static dnnl_status_t add_reorder(struct td_prep *p, struct td_prim *pr, int i,
                                 const dnnl_memory_desc_t *plain, size_t *pad)
{
    struct td_prim_reorder *r = &pr->reorder[pr->n_reorders++];
    const dnnl_memory_desc_t *chosen;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    r->arg = i;
    r->out = pr->buf[i] == TD_BUF_OUT;
    dnnl_status_t st = dnnl_memory_get_memory_desc(pr->args[i].memory, &chosen);
    if (st == dnnl_success) st = user_scratchpad(&attr);
    if (st == dnnl_success)
        st = r->out ? dnnl_reorder_primitive_desc_create(&pd, chosen, p->engine, plain, p->engine,
                                                         attr)
                    : dnnl_reorder_primitive_desc_create(&pd, plain, p->engine, chosen, p->engine,
                                                         attr);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success) st = dnnl_primitive_create(&r->prim, pd);
    if (st == dnnl_success) {
        const dnnl_memory_desc_t *pad_md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        size_t bytes = pad_md ? dnnl_memory_desc_get_size(pad_md) : 0;
        if (bytes > *pad) *pad = bytes;
        if (bytes > 0) st = dnnl_memory_create(&r->pad, pad_md, p->engine, DNNL_MEMORY_NONE);
    }
    if (st == dnnl_success) st = dnnl_memory_create(&r->plain, plain, p->engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&r->chosen, chosen, p->engine, DNNL_MEMORY_NONE);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Memory objects for the primitive's arguments (in the chosen layouts, with
 * reorders where those are not the node's), then the scratchpad. Returns
 * the scratch bytes in *scratch. */
static dnnl_status_t bind_args(struct td_prep *p, struct td_prim *pr,
                               const_dnnl_primitive_desc_t pd, const struct td_prim_arg *args,
                               int n_args, size_t *scratch)
{
    size_t pad = scratchpad_bytes(pd), buffers = 0;
    dnnl_status_t st = dnnl_success;
    for (int i = 0; st == dnnl_success && i < n_args; i++) {
        const dnnl_memory_desc_t *md = chosen_md(pd, &args[i]);
        pr->buf[i] = args[i].buf;
        pr->args[i].arg = args[i].dnnl_arg;
        st = dnnl_memory_create(&pr->args[i].memory, md, p->engine, DNNL_MEMORY_NONE);
        pr->n_args = i + 1;
        if (st != dnnl_success || dnnl_memory_desc_equal(md, &args[i].md)) continue;
        pr->offset[i] = buffers;
        buffers += align_up(dnnl_memory_desc_get_size(md));
        st = add_reorder(p, pr, i, &args[i].md, &pad);
    }
    /* The buffers go after the scratchpad, which reorders and the primitive
     * share: they run one after another on one stream. */
    pad = align_up(pad);
    for (int i = 0; i < pr->n_reorders; i++) pr->offset[pr->reorder[i].arg] += pad;
    const dnnl_memory_desc_t *pad_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (st == dnnl_success && pad_md && dnnl_memory_desc_get_size(pad_md) > 0) {
        int n = pr->n_args;
        pr->buf[n] = TD_BUF_OUT - 1;
        pr->offset[n] = 0;
        pr->args[n].arg = DNNL_ARG_SCRATCHPAD;
        st = dnnl_memory_create(&pr->args[n].memory, pad_md, p->engine, DNNL_MEMORY_NONE);
        pr->n_args = n + 1;
    }
    *scratch = pad + buffers;
    return st;
}

enum td_status td_prim_create_from(struct td_prep *p, const struct td_prim_desc *cands, int n_cands,
                                   const struct td_prim_arg *args, int n_args)
{
    if (n_args > TD_PRIM_MAX_ARGS) return fail(p, "argument list", dnnl_invalid_arguments);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_unimplemented;
    for (int c = 0; c < n_cands; c++) {
        st = make_pd(p, &cands[c], &pd);
        if (st != dnnl_success) continue;
        if (c == n_cands - 1 || !pads_much(pd, args, n_args)) break;
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    if (st != dnnl_success) return fail(p, "primitive descriptor creation", st);
    struct td_prim *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        dnnl_primitive_desc_destroy(pd);
        return TD_ERR_NOMEM;
    }
    size_t scratch = 0;
    st = dnnl_primitive_create(&pr->prim, pd);
    if (st == dnnl_success) st = bind_args(p, pr, pd, args, n_args, &scratch);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        td_prim_release(pr);
        return fail(p, "primitive creation", st);
    }
    p->state = pr;
    p->scratch_bytes = scratch;
    return TD_OK;
}

enum td_status td_prim_create(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                              const struct td_prim_arg *args, int n_args)
{
    struct td_prim_desc d = {op_desc, NULL, NULL};
    return td_prim_create_from(p, &d, 1, args, n_args);
}

static void *node_buf(const struct td_exec *ex, int b)
{
    return b == TD_BUF_OUT ? ex->out : (void *)ex->in[b];
}

static void run_reorder(const struct td_exec *ex, const struct td_prim_reorder *r)
{
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, r->out ? r->chosen : r->plain},
                               {DNNL_ARG_TO, r->out ? r->plain : r->chosen},
                               {DNNL_ARG_SCRATCHPAD, r->pad}};
    dnnl_primitive_execute(r->prim, ex->stream, r->pad ? 3 : 2, args);
}

void td_prim_execute(const struct td_exec *ex)
{
    struct td_prim *pr = ex->state;
    char *scratch = ex->scratch;
    for (int i = 0; i < pr->n_args; i++)
        dnnl_memory_set_data_handle(pr->args[i].memory, pr->buf[i] < TD_BUF_OUT
                                                            ? (void *)scratch
                                                            : node_buf(ex, pr->buf[i]));
    for (int k = 0; k < pr->n_reorders; k++) {
        struct td_prim_reorder *r = &pr->reorder[k];
        void *chosen = scratch + pr->offset[r->arg];
        dnnl_memory_set_data_handle(pr->args[r->arg].memory, chosen);
        dnnl_memory_set_data_handle(r->chosen, chosen);
        dnnl_memory_set_data_handle(r->plain, node_buf(ex, pr->buf[r->arg]));
        if (r->pad) dnnl_memory_set_data_handle(r->pad, scratch);
    }
    for (int k = 0; k < pr->n_reorders; k++)
        if (!pr->reorder[k].out) run_reorder(ex, &pr->reorder[k]);
    dnnl_primitive_execute(pr->prim, ex->stream, pr->n_args, pr->args);
    for (int k = 0; k < pr->n_reorders; k++)
        if (pr->reorder[k].out) run_reorder(ex, &pr->reorder[k]);
    dnnl_stream_wait(ex->stream);
}

void td_prim_release(void *state)
{
    struct td_prim *pr = state;
    if (!pr) return;
    for (int i = 0; i < pr->n_reorders; i++) {
        struct td_prim_reorder *r = &pr->reorder[i];
        if (r->plain) dnnl_memory_destroy(r->plain);
        if (r->chosen) dnnl_memory_destroy(r->chosen);
        if (r->pad) dnnl_memory_destroy(r->pad);
        if (r->prim) dnnl_primitive_destroy(r->prim);
    }
    for (int i = 0; i < pr->n_args; i++)
        if (pr->args[i].memory) dnnl_memory_destroy(pr->args[i].memory);
    if (pr->prim) dnnl_primitive_destroy(pr->prim);
    free(pr);
}
