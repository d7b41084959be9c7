/* Shared glue of the GELU ops: gelu (exact, erf form) and gelu_tanh (the
 * tanh approximation), and their fused derivative ops gelu_grad and
 * gelu_tanh_grad: y = v * f'(x) with x, v and y of one shape (no
 * broadcasting), TD_F32. */
#ifndef TD_GELU_COMMON_H
#define TD_GELU_COMMON_H

#include "ops/op.h"

#define TD_GELU_C 0.79788456080286535588 /* sqrt(2/pi), the tanh form's constants */
#define TD_GELU_K 0.044715

/* Shape rule of gelu_grad, gelu_tanh_grad (x, v) and gelu_second (x, v,
 * t): float operands of one shape. */
enum td_status td_gelu_grad_shape(struct td_node *n);

/* Rules of y = v * f'(x): linear in v (its rule is the op itself on the
 * tangent), and d/dx applied to t is times_second(g, x, v, t), the nodes of
 * v * t * f''(x) for the GELU f at hand. */
struct td_node *td_gelu_grad_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t,
                                 struct td_node *(*times_second)(struct td_graph *,
                                                                 struct td_node *, struct td_node *,
                                                                 struct td_node *));
void td_gelu_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                      struct td_node **cts,
                      struct td_node *(*times_second)(struct td_graph *, struct td_node *,
                                                      struct td_node *, struct td_node *));

/* Elements handed to one call of a kernel's range function: a fixed block,
 * so the split never depends on the thread count. */
#define TD_GELU_BLOCK 4096

/* Calls range(ex, i0, i1) over [0, numel) in TD_GELU_BLOCK pieces, on
 * ex->nthreads threads. */
void td_gelu_blocks_run(const struct td_exec *ex,
                        void (*range)(const struct td_exec *ex, int64_t i0, int64_t i1));

/* Operand shapes the grad ops are tested on. */
#define TD_GELU_GRAD_N_CASES 4
extern const struct td_op_case td_gelu_grad_cases[TD_GELU_GRAD_N_CASES];

#endif
