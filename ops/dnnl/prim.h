/* oneDNN glue shared by the ops that run a oneDNN primitive.
 *
 * A struct td_prim is created once per node at compile time (op->prepare)
 * with a user-managed scratchpad, so nodes can run concurrently each with
 * the scratch the plan gives them. At run time td_prim_execute points the
 * primitive's memory objects at the node's buffers and executes it: no
 * allocation, no primitive creation. */
#ifndef TD_DNNL_PRIM_H
#define TD_DNNL_PRIM_H

#include "ops/op.h"

/* Where an execute argument's bytes come from. */
enum td_prim_buf {
    TD_BUF_OUT = -1, /* the node's output */
    TD_BUF_IN0 = 0,  /* operand 0, 1, 2: TD_BUF_IN0 + i */
};

struct td_prim_arg {
    int dnnl_arg; /* DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, ... */
    int buf;      /* enum td_prim_buf */
    dnnl_memory_desc_t md;
};

#define TD_PRIM_MAX_ARGS 6

struct td_prim {
    dnnl_primitive_t prim;
    int n_args;
    int buf[TD_PRIM_MAX_ARGS + 1];
    dnnl_exec_arg_t args[TD_PRIM_MAX_ARGS + 1]; /* + scratchpad */
};

/* Plain row-major f32 descriptor of a shape (a scalar becomes [1]). */
dnnl_status_t td_md_plain(dnnl_memory_desc_t *md, const struct td_shape *s, enum td_dtype dtype);

/* Descriptor with explicit element strides. */
dnnl_status_t td_md_strided(dnnl_memory_desc_t *md, int rank, const int64_t *dims,
                            const int64_t *strides);

/* Creates the primitive for op_desc with a user scratchpad and memory objects
 * for `args`; stores it in p->state and the scratch size in
 * p->scratch_bytes. Returns TD_OK or TD_ERR_BACKEND with p->err filled. */
enum td_status td_prim_create(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                              const struct td_prim_arg *args, int n_args);

/* The same with post-ops (NULL: none) in the primitive's attributes. */
enum td_status td_prim_create_post(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                                   const struct td_prim_arg *args, int n_args,
                                   const_dnnl_post_ops_t post_ops);

/* Runs the primitive stored in ex->state on the node's buffers. */
void td_prim_execute(const struct td_exec *ex);

/* op->release for nodes whose state is a struct td_prim. */
void td_prim_release(void *state);

#endif
