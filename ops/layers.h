/* Layer builders: compositions of ops that create their own parameters
 * under a name scope. Same error convention as ops/ops.h. */
#ifndef TD_LAYERS_H
#define TD_LAYERS_H

#include "graph/graph.h"

/* y = x W^T + b with W "name/weight" [units, in] (PyTorch's layout) and
 * b "name/bias" [units]; x is [..., in]. W and b start from PyTorch's
 * nn.Linear default, U(+-1/sqrt(in)). */
struct td_node *td_dense(struct td_graph *g, struct td_node *x, int units, const char *name);

/* PyTorch's nn.LayerNorm(C) on x [..., C]: y = xhat * gamma + beta over the
 * last axis with eps 1e-5 (ops/ops.h, td_layer_norm_op), gamma
 * "name/weight" [C] starting at ones and beta "name/bias" [C] at zeros. */
struct td_node *td_layer_norm(struct td_graph *g, struct td_node *x, const char *name);

#endif
