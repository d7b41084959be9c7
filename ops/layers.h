/* Layer builders: compositions of ops that create their own parameters
 * under a name scope. Same error convention as ops/ops.h. */
#ifndef TD_LAYERS_H
#define TD_LAYERS_H

#include "graph/graph.h"

/* y = x W^T + b with W "name/weight" [units, in] (PyTorch's layout) and
 * b "name/bias" [units]; x is [..., in]. W and b start from PyTorch's
 * nn.Linear default, U(+-1/sqrt(in)). */
struct td_node *td_dense(struct td_graph *g, struct td_node *x, int units, const char *name);

#endif
