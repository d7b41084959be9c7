/* Taylor expansions of a model output in its parameters, as graph
 * transforms: the linearised network of neural-tangent theory and its
 * second-order correction.
 *
 *   td_linearize:  f_lin(x; theta) = f(x; theta0) + J(x; theta0) (theta - theta0)
 *   td_taylor2:    f_lin + 1/2 (theta - theta0)^T d2f/dtheta2(x; theta0) (theta - theta0)
 *
 * theta0 is the parameters' values at the time of the call, copied into the
 * graph as constants: the nodes between the parameters and f are built a
 * second time on those constants (f at theta0), and the correction terms
 * are forward-mode derivatives of that copy (one JVP, and a JVP of the JVP)
 * in the direction theta - theta0, where theta are the graph's parameters.
 * The result is an ordinary node: a loss built on it trains the linearised
 * model with any optimizer, its gradient being J(theta0)^T dL/df_lin
 * (reverse over forward). At theta = theta0 both equal f.
 *
 * Cost: the graph holds a second copy of the forward pass and two floats
 * per parameter element more; a step of the linearised model costs about
 * a forward pass, a JVP and their reverse. Dropout in the copy draws masks
 * of its own (they are functions of the node). */
#ifndef TD_TAYLOR_H
#define TD_TAYLOR_H

#include "graph/graph.h"

/* The linearised output, of f's shape; NULL with an error recorded on g (f
 * NULL or of another graph, out of memory). */
struct td_node *td_linearize(struct td_graph *g, struct td_node *f);

/* The second-order expansion, of f's shape; errors as td_linearize. */
struct td_node *td_taylor2(struct td_graph *g, struct td_node *f);

#endif
