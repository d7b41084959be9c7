/* The op contract. Each op is one file in ops/ defining a const
 * struct td_op_def td_op_<name> and its builder, plus one line in op_list.h.
 *
 * Rules are written with builders, so derivative graphs are differentiable:
 *   jvp: returns the output tangent given the operands' tangents (NULL means
 *        zero) or NULL when the output tangent is identically zero.
 *   vjp: given the output cotangent ct, stores in cts[i] the cotangent for
 *        operand i for each bit i set in `need` (NULL means zero); it never
 *        needs to write the others. Cotangents have the operand's shape.
 * Kernels see contiguous row-major buffers. */
#ifndef TD_OP_H
#define TD_OP_H

#include <stddef.h>

#include <oneapi/dnnl/dnnl.h>

#include "graph/node.h"

enum td_op_trait {
    TD_TRAIT_ELEMENTWISE = 1u << 0, /* out[i] depends on in[i] only: may run in place */
    TD_TRAIT_VIEW = 1u << 1,        /* output is src[0]'s bytes reinterpreted (reshape) */
    TD_TRAIT_NONDIFF = 1u << 2,     /* piecewise constant or integer: derivatives are zero */
    TD_TRAIT_ACCUMULATE = 1u << 3,  /* out = f(other operands) + the last operand, of out's
                                       shape: may run with out aliasing the last operand */
    TD_TRAIT_REMAT = 1u << 4,       /* cheap to recompute, and its VJP reads its operands:
                                       gradients may recompute it (td_graph_set_remat) */
};

struct td_run_status;

/* Everything a kernel needs for one execution of one node. */
struct td_exec {
    const struct td_node *node;
    void *out;
    const void *in[TD_MAX_SRC];
    void *state;                  /* what op->prepare stored, or NULL */
    void *scratch;                /* op->prepare's scratch_bytes for this execution */
    int nthreads;                 /* threads this kernel may use; 1 inside a concurrent group */
    dnnl_stream_t stream;         /* a stream usable by the calling thread */
    struct td_run_status *status; /* where td_exec_fail reports; owned by the plan */
};

/* Reports that the node's input data is unusable (an id outside a table, say):
 * the run stops after the current step and td_run returns `code` with the
 * message "run: <op> <label>: <text>". The first report of a run wins; later
 * ones are dropped. Safe to call from several threads. The kernel must still
 * return normally without reading or writing out of bounds; its output is
 * then unspecified. */
void td_exec_fail(const struct td_exec *ex, enum td_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `for (int64_t i = 0; i < n; i++) { body }` on `nthreads` threads with a
 * static schedule, so each element's work is the same for any thread count.
 * With one thread it is a plain loop: entering even an inactive OpenMP
 * region costs about 1 us here, as much as a small node's whole work. */
#define TD_PARALLEL_FOR(nthreads, i, n, ...)                                                       \
    do {                                                                                           \
        const int td_pf_threads_ = (nthreads);                                                     \
        const int64_t td_pf_n_ = (n);                                                              \
        if (td_pf_threads_ <= 1) {                                                                 \
            for (int64_t i = 0; i < td_pf_n_; i++) {                                               \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            _Pragma(                                                                               \
                "omp parallel for schedule(static) num_threads(td_pf_threads_)") for (int64_t i =  \
                                                                                          0;       \
                                                                                      i <          \
                                                                                      td_pf_n_;    \
                                                                                      i++)         \
            {                                                                                      \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Compile-time preparation of one node (oneDNN primitives). */
struct td_prep {
    const struct td_node *node;
    dnnl_engine_t engine;
    void *state;          /* out: freed by op->release */
    size_t scratch_bytes; /* out: per-execution scratch the kernel needs */
    char *err;            /* out: message on failure */
    size_t err_len;
};

/* One op-table test case: operand shapes/dtypes and how to build the node
 * from leaves (NULL build means the op's plain builder with default attrs). */
struct td_op_case {
    int n_in;
    struct td_shape shape[TD_MAX_SRC];
    enum td_dtype dtype[TD_MAX_SRC];
    struct td_node *(*build)(struct td_graph *g, struct td_node *const *in);
};

struct td_op_test {
    float lo, hi;  /* operands are drawn uniformly from [lo, hi] */
    float fd_eps;  /* central finite-difference step */
    float tol;     /* relative tolerance of the derivative checks */
    float fwd_tol; /* relative tolerance of the forward check; 0 means 1e-5 */
    int int_hi;    /* TD_I32 operands are drawn from [0, int_hi) */
    int n_cases;
    const struct td_op_case *cases;
    /* A naive implementation of the forward pass, written independently of
     * the kernel, in double precision where that helps. */
    void (*reference)(const struct td_node *n, const void *const *in, float *out);
};

struct td_op_def {
    const char *name;
    int n_src; /* operands; 0: variadic, 1 to TD_MAX_SRC, checked by the shape rule */
    unsigned traits;
    enum td_status (*shape)(struct td_node *n);   /* sets n->shape, n->dtype */
    enum td_status (*prepare)(struct td_prep *p); /* optional */
    void (*release)(void *state);                 /* optional */
    void (*forward)(const struct td_exec *ex);
    struct td_node *(*jvp)(struct td_graph *g, struct td_node *n, struct td_node *const *tangents);
    void (*vjp)(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                struct td_node **cts);
    struct td_op_test test;
    /* Optional: work of one execution in flops (or bytes moved), used by the
     * scheduler to pick threads and concurrency. Default: elements read and
     * written. */
    double (*cost)(const struct td_node *n);
    /* Optional: floating-point operations of one execution, a multiply-add
     * counted as 2 (a product of [M, K] by [K, N] is 2MNK), for efficiency
     * figures (td_plan_get_stats). Only the ops whose work is products
     * (matmul, linear, convolutions) report it; NULL counts as 0. */
    double (*flops)(const struct td_node *n);
};

#define TD_OP(name) extern const struct td_op_def td_op_##name;
#include "ops/op_list.h"
#undef TD_OP

/* Every registered op, in op_list.h order; td_op_count entries. */
extern const struct td_op_def *const td_op_table[];
extern const int td_op_count;

#endif
