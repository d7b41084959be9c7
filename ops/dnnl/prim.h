/* oneDNN glue shared by the ops that run a oneDNN primitive.
 *
 * A struct td_prim is created once per node at compile time (op->prepare)
 * with a user-managed scratchpad, so nodes can run concurrently each with
 * the scratch the plan gives them. At run time td_prim_execute points the
 * primitive's memory objects at the node's buffers and executes it: no
 * allocation, no primitive creation.
 *
 * Layouts. Node buffers are always plain row-major. An op may still build
 * its descriptor with `dnnl_format_tag_any` for some arguments so that
 * oneDNN picks its fast (blocked) layouts: the glue then asks the primitive
 * which layout it chose for each argument and, where that differs from the
 * argument's plain descriptor, plans a reorder through a buffer in the
 * node's scratch: inputs are reordered in before the primitive runs, the
 * output is reordered back after it. */
#ifndef TD_DNNL_PRIM_H
#define TD_DNNL_PRIM_H

#include "ops/op.h"

/* Where an execute argument's bytes come from. */
enum td_prim_buf {
    TD_BUF_OUT = -1, /* the node's output */
    TD_BUF_IN0 = 0,  /* operand 0, 1, 2: TD_BUF_IN0 + i */
};

struct td_prim_arg {
    int dnnl_arg;          /* DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, ... */
    int buf;               /* enum td_prim_buf */
    dnnl_memory_desc_t md; /* the layout of that buffer (plain, or strided) */
};

#define TD_PRIM_MAX_ARGS 6

/* A reorder between a node buffer and the layout the primitive chose. */
struct td_prim_reorder {
    dnnl_primitive_t prim;
    dnnl_memory_t plain;  /* points at the node buffer */
    dnnl_memory_t chosen; /* points into scratch, as the primitive's argument does */
    dnnl_memory_t pad;    /* the reorder's scratchpad at the start of scratch, or NULL */
    int arg;              /* index into td_prim.args */
    int out;              /* 1: run after the primitive (chosen -> plain) */
};

struct td_prim {
    dnnl_primitive_t prim;
    int n_args;
    int buf[TD_PRIM_MAX_ARGS + 1];
    size_t offset[TD_PRIM_MAX_ARGS + 1];        /* of reordered arguments in scratch */
    dnnl_exec_arg_t args[TD_PRIM_MAX_ARGS + 1]; /* + scratchpad */
    int n_reorders;
    struct td_prim_reorder reorder[TD_PRIM_MAX_ARGS];
};

/* Plain row-major f32 descriptor of a shape (a scalar becomes [1]). */
dnnl_status_t td_md_plain(dnnl_memory_desc_t *md, const struct td_shape *s, enum td_dtype dtype);

/* Descriptor with explicit element strides. */
dnnl_status_t td_md_strided(dnnl_memory_desc_t *md, int rank, const int64_t *dims,
                            const int64_t *strides);

/* One way to compute a node: `op` is the operation descriptor (its memory
 * descriptors may be `any`); `hint` is the forward operation descriptor a
 * backward primitive needs as its hint, NULL for forward primitives. The
 * hint's primitive descriptor is created and destroyed inside the call.
 * `post_ops` (NULL: none) go into the primitive's attributes; the caller
 * keeps ownership of them. */
struct td_prim_desc {
    const_dnnl_op_desc_t op;
    const_dnnl_op_desc_t hint;
    const_dnnl_post_ops_t post_ops;
};

/* Creates the primitive for op_desc with a user scratchpad and memory objects
 * for `args`; stores it in p->state and the scratch size in
 * p->scratch_bytes. Returns TD_OK or TD_ERR_BACKEND with p->err filled. */
enum td_status td_prim_create(struct td_prep *p, const_dnnl_op_desc_t op_desc,
                              const struct td_prim_arg *args, int n_args);

/* As td_prim_create, from the first of n_cands candidate descriptions whose
 * chosen layouts pad no dimension of any argument to twice its size or more
 * (a blocked layout of a 1- or 3-channel tensor does up to 16x the work);
 * the last candidate is taken whatever it pads, so it should be the one over
 * plain layouts. Arguments whose chosen layout differs from args[i].md are
 * reordered through scratch (see the top of this file); p->scratch_bytes
 * covers the primitive's scratchpad and those buffers. */
enum td_status td_prim_create_from(struct td_prep *p, const struct td_prim_desc *cands, int n_cands,
                                   const struct td_prim_arg *args, int n_args);

/* Runs the primitive stored in ex->state on the node's buffers, with the
 * planned reorders around it. */
void td_prim_execute(const struct td_exec *ex);

/* op->release for nodes whose state is a struct td_prim. */
void td_prim_release(void *state);

#endif
