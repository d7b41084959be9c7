/* Automatic differentiation as graph-to-graph transforms.
 *
 * Both transforms append ordinary nodes to the graph, built by each op's JVP
 * or VJP rule, so their results can be differentiated again:
 *   gradient                 td_vjp(loss)
 *   Hessian-vector product   td_jvp over the nodes td_vjp built (forward over reverse)
 *   linearised network       td_vjp over the nodes td_jvp built (reverse over forward)
 *   second directional       td_jvp of td_jvp
 * A missing tangent or cotangent is a symbolic zero and costs nothing; a
 * result that is identically zero is returned as a td_fill(0) constant. Sums
 * of contributions from several consumers are built in a fixed order. */
#ifndef TD_AUTODIFF_H
#define TD_AUTODIFF_H

#include "graph/graph.h"

/* Reverse mode: out[i] = (d y / d wrt[i])^T seed, the shape of wrt[i].
 * seed NULL means ones and needs a y with one element (a loss).
 * Returns TD_OK, or records and returns an error on the graph (non-scalar y
 * without seed, seed shape differing from y, integer wrt, NULL argument). */
enum td_status td_vjp(struct td_graph *g, struct td_node *y, struct td_node *seed,
                      struct td_node *const *wrt, int n_wrt, struct td_node **out);

/* Forward mode: out[j] = sum_i (d outputs[j] / d wrt[i]) tangents[i].
 * tangents[i] must have the shape of wrt[i]; a NULL tangent is zero.
 * Returns TD_OK or records and returns an error on the graph. */
enum td_status td_jvp(struct td_graph *g, struct td_node *const *wrt,
                      struct td_node *const *tangents, int n_wrt, struct td_node *const *outputs,
                      int n_out, struct td_node **out);

/* Gradient and Hessian-vector product of a scalar loss with respect to every
 * parameter, with the direction read from the parameter store's dir block.
 * Builds, for each parameter i: grads[i] = dL/dtheta_i and, when hvps is not
 * NULL, hvps[i] = (H dir)_i by forward over reverse. dirs (may be NULL)
 * receives the direction input nodes (name "<param>:dir") that plans bind to
 * the store. Arrays hold td_graph_params(g)->count entries.
 * Unlike td_jvp over the gradients, the backward pass's tangent rules read a
 * recomputed tangent of each elementwise forward node whose operands and
 * operand tangents the backward pass reads anyway (a GELU's), so that
 * tangent is not kept alive from the forward pass to the backward one: the
 * same bits, one elementwise pass more, a smaller arena (the GPT's: 310
 * instead of 327 MB). */
enum td_status td_grad_hvp(struct td_graph *g, struct td_node *loss, struct td_node **grads,
                           struct td_node **hvps, struct td_node **dirs);

#endif
