/* Shared glue of the unary elementwise ops: y = f(x), y has x's shape.
 * Most run one oneDNN eltwise forward primitive created in op->prepare;
 * the others (sign, step, and exp, log, relu where oneDNN 2.6 is inexact
 * or drops NaNs) are hand-written loops sharing the shape rule and tests. */
#ifndef TD_ELTWISE_H
#define TD_ELTWISE_H

#include "ops/op.h"

/* Shape rule: y has x's shape and TD_F32; an integer x is a shape error. */
enum td_status td_unary_shape(struct td_node *n);

/* op->prepare body: creates the oneDNN eltwise forward (inference)
 * primitive `alg` with (alpha, beta) on the node's shape, stored as a
 * struct td_prim (run it with td_prim_execute, free it with
 * td_prim_release). Returns TD_OK, TD_ERR_NOMEM, or TD_ERR_BACKEND with
 * p->err filled. */
enum td_status td_eltwise_prepare(struct td_prep *p, dnnl_alg_kind_t alg, float alpha, float beta);

/* Builder body: a node of the unary op `op` on x with attributes attr (NULL
 * for none). Same error convention as every builder. */
struct td_node *td_unary_new(struct td_graph *g, const struct td_op_def *op, struct td_node *x,
                             const struct td_attr *attr);

/* Test reference: out[i] = f(in[0][i], &n->attr) in double precision. */
void td_unary_reference(const struct td_node *n, const void *const *in, float *out,
                        double (*f)(double x, const struct td_attr *attr));

/* Defines static <name>_forward, a hand-written kernel out[i] = expr of
 * the float x = in[i] (sign, step, and ops whose oneDNN version is inexact
 * or drops NaNs). Layout: in, out any shape, the same number of elements;
 * out may alias in. */
// clang-format off
#define TD_UNARY_LOOP(name, expr)                                                                  \
    static void name##_forward(const struct td_exec *ex)                                           \
    {                                                                                              \
        const float *in = ex->in[0];                                                               \
        float *out = ex->out;                                                                      \
        int64_t count = td_shape_numel(&ex->node->shape);                                          \
        TD_PARALLEL_FOR(ex->nthreads, i, count, float x = in[i]; out[i] = (expr););                \
    }
// clang-format on

/* Defines static <name>_reference, the test reference computing `expr` in
 * double from x = in[0][i] and a = &n->attr. */
#define TD_UNARY_REFERENCE(name, expr)                                                             \
    static double name##_ref(double x, const struct td_attr *a)                                    \
    {                                                                                              \
        (void)a;                                                                                   \
        return (expr);                                                                             \
    }                                                                                              \
    static void name##_reference(const struct td_node *n, const void *const *in, float *out)       \
    {                                                                                              \
        td_unary_reference(n, in, out, name##_ref);                                                \
    }

/* Defines static <name>_prepare for an op with a fixed oneDNN algorithm. */
#define TD_ELTWISE_PREPARE(name, alg, alpha, beta)                                                 \
    static enum td_status name##_prepare(struct td_prep *p)                                        \
    {                                                                                              \
        return td_eltwise_prepare(p, alg, alpha, beta);                                            \
    }

/* Operand shapes every unary op is tested on. */
#define TD_UNARY_N_CASES 3
extern const struct td_op_case td_unary_cases[TD_UNARY_N_CASES];

/* The test block of a unary op drawn from [lo, hi] with the shared cases. */
#define TD_UNARY_TEST(lo_, hi_, fd_eps_, reference_)                                               \
    {                                                                                              \
        .lo = (lo_), .hi = (hi_), .fd_eps = (fd_eps_), .tol = 2e-3f, .n_cases = TD_UNARY_N_CASES,  \
        .cases = td_unary_cases, .reference = (reference_)                                         \
    }

/* Rules of a unary op whose derivative is best written as a quotient
 * 1 / denom(g, n) (log: 1/x, sqrt: 1/(2y)): defines static <name>_jvp
 * (t / denom) and <name>_vjp (ct / denom), saving the reciprocal node. */
#define TD_UNARY_QUOTIENT_RULES(name, denom)                                                       \
    static struct td_node *name##_jvp(struct td_graph *g, struct td_node *n,                       \
                                      struct td_node *const *t)                                    \
    {                                                                                              \
        return t[0] ? td_div(g, t[0], denom(g, n)) : NULL;                                         \
    }                                                                                              \
    static void name##_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,              \
                           unsigned need, struct td_node **cts)                                    \
    {                                                                                              \
        if (need & 1u) cts[0] = td_div(g, ct, denom(g, n));                                        \
    }

#endif
