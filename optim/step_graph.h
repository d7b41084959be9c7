/* The nodes of one training step, shared by the training loop
 * (optim/train.h) and the tools (check, inspect, the benchmark): a scalar
 * loss, the gradient of every parameter and H*dir (forward over reverse),
 * and the bindings that write them straight into the parameter store's grad
 * and tangent blocks. */
#ifndef TD_STEP_GRAPH_H
#define TD_STEP_GRAPH_H

#include "graph/autodiff.h"
#include "graph/graph.h"
#include "graph/plan.h"

struct td_step_graph {
    struct td_graph *g;
    int n_params;
    /* loss, then n_params gradients, then n_params HVPs: the outputs of a
     * gradient plan are the first 1 + n_params, of a gradient+HVP plan all. */
    struct td_node **outs;
    struct td_binding *bind; /* gradients -> p->grad, then HVPs -> p->tangent */
};

/* Builds the derivative nodes of loss in its graph (td_grad_hvp). Returns
 * TD_OK or the graph's error status (message on the graph), or TD_ERR_NOMEM.
 * Free with td_step_graph_free, also after a failure. */
enum td_status td_step_graph_init(struct td_step_graph *s, struct td_graph *g,
                                  struct td_node *loss);
void td_step_graph_free(struct td_step_graph *s);

/* Number of outputs of the gradient plan (hvp = 0) or gradient+HVP plan. */
int td_step_graph_num_outputs(const struct td_step_graph *s, int hvp);

/* Compiles the gradient (hvp = 0) or gradient+HVP plan. With bind set, the
 * derivatives are written into the store; otherwise they stay in the arena.
 * opts' own bindings are replaced. NULL on failure (message on the graph). */
struct td_plan *td_step_graph_compile(const struct td_step_graph *s, int hvp, int bind,
                                      struct td_compile_options opts);

#endif
