/* Shared code of the broadcasting binary ops (add, sub, mul, div).
 * Shapes broadcast as in NumPy: aligned on the right, a dimension of 1
 * stretches, and either operand may broadcast. */
#ifndef TD_BINARY_H
#define TD_BINARY_H

#include "ops/op.h"

/* Shape rule: the broadcast of both operands' shapes, TD_F32. Records
 * "cannot broadcast [3,4] with [5]" or "expects float operands, ..." on
 * the graph and returns TD_ERR_SHAPE when that fails. */
enum td_status td_binary_shape(struct td_node *n);

/* op->prepare body for the oneDNN binary `alg` (dnnl_binary_add, _sub,
 * _mul or _div). oneDNN 2.6 needs its first source to have the output's
 * shape: when operand 0 does, or when the op commutes (add, mul) and
 * operand 1 does, a struct td_prim is created (p->state, freed by
 * td_prim_release); otherwise p->state stays NULL and td_binary_forward
 * runs a hand-written loop. Returns TD_OK, TD_ERR_NOMEM, or
 * TD_ERR_BACKEND with p->err filled. */
enum td_status td_binary_prepare(struct td_prep *p, dnnl_alg_kind_t alg);

/* op->forward body: the primitive when prepare made one, else the loop.
 * ex->out may alias ex->in[0] when operand 0 has the output's shape. */
void td_binary_forward(const struct td_exec *ex, dnnl_alg_kind_t alg);

/* Builder body: a node of the binary op `op` on (a, b), no attributes. */
struct td_node *td_binary_new(struct td_graph *g, const struct td_op_def *op, struct td_node *a,
                              struct td_node *b);

/* For JVP rules: the tangent t of one operand broadcast to n's shape (t
 * itself when it already has it; NULL passes through). */
struct td_node *td_binary_expand(struct td_graph *g, struct td_node *t, const struct td_node *n);

/* Test reference: out = f(a, b) elementwise with broadcasting, in double. */
void td_binary_reference(const struct td_node *n, const void *const *in, float *out,
                         double (*f)(double a, double b));

/* Defines static <name>_prepare and <name>_forward running the oneDNN
 * binary `alg` (or the loop), and <name>_reference computing `expr` in
 * double from the elements a and b. */
#define TD_BINARY_KERNELS(name, alg, expr)                                                         \
    static enum td_status name##_prepare(struct td_prep *p)                                        \
    {                                                                                              \
        return td_binary_prepare(p, alg);                                                          \
    }                                                                                              \
    static void name##_forward(const struct td_exec *ex)                                           \
    {                                                                                              \
        td_binary_forward(ex, alg);                                                                \
    }                                                                                              \
    static double name##_ref(double a, double b)                                                   \
    {                                                                                              \
        return (expr);                                                                             \
    }                                                                                              \
    static void name##_reference(const struct td_node *n, const void *const *in, float *out)       \
    {                                                                                              \
        td_binary_reference(n, in, out, name##_ref);                                               \
    }

/* Broadcasting patterns every binary op is tested on. */
#define TD_BINARY_N_CASES 7
extern const struct td_op_case td_binary_cases[TD_BINARY_N_CASES];

/* The test block of a binary op with operands drawn from [lo, hi]. */
#define TD_BINARY_TEST(lo_, hi_, reference_)                                                       \
    {                                                                                              \
        .lo = (lo_), .hi = (hi_), .fd_eps = 1e-2f, .tol = 2e-3f, .n_cases = TD_BINARY_N_CASES,     \
        .cases = td_binary_cases, .reference = (reference_)                                        \
    }

#endif
