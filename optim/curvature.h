/* Curvature of a loss on a fixed batch, matrix-free: products with the
 * Hessian H = d2L/dtheta2 (forward over reverse, as td_grad_hvp) or the
 * Gauss-Newton matrix G = J^T H_l J, where J = d output/dtheta and H_l the
 * Hessian of the loss in the output (for softmax cross-entropy, per sample
 * (diag(p) - p p^T) / N). G v is built from the graph's own rules: u = J v
 * (a JVP), w = H_l u (the JVP, in the output alone, of dL/doutput), G v =
 * J^T w (a VJP seeded with w). G is positive semi-definite, so conjugate
 * gradients and Lanczos apply to it; the tests hold both against dense
 * matrices built column by column.
 *
 * The operator reads v from, and so overwrites, the graph's parameter store
 * dir block (graph/graph.h): do not keep anything there across a product. */
#ifndef TD_CURVATURE_H
#define TD_CURVATURE_H

#include <stddef.h>

#include "graph/plan.h"

enum td_curv_matrix {
    TD_CURV_HESSIAN = 0,
    TD_CURV_GGN = 1,
};

struct td_curv_op;

/* Products for the scalar loss of g, over every parameter, fed with
 * `feeds` (copied; the data they point to is read at every product, so
 * the caller may change it between products). output: the node the
 * Gauss-Newton matrix linearises (the logits; unused for the Hessian).
 * Returns NULL with a message in err: a loss that is not a scalar, an
 * output the loss does not depend on, a compile failure. Free with
 * td_curv_op_free before the graph. */
struct td_curv_op *td_curv_op_new(struct td_graph *g, struct td_node *loss, struct td_node *output,
                                  enum td_curv_matrix which, const struct td_feed *feeds,
                                  int n_feeds, int num_threads, char *err, size_t errlen);
void td_curv_op_free(struct td_curv_op *c);

/* Parameter elements (the vectors' length). */
size_t td_curv_op_size(const struct td_curv_op *c);

/* out = M v (M = H or G); v and out hold td_curv_op_size floats and may
 * not overlap. Returns TD_OK or the run's failure (td_curv_op_error). */
enum td_status td_curv_op_apply(struct td_curv_op *c, const float *v, float *out);

/* The loss and the gradient (written into `grad`, may be NULL) at the
 * current parameters, from a plan compiled on first use. */
enum td_status td_curv_op_loss(struct td_curv_op *c, double *loss, float *grad);

const char *td_curv_op_error(const struct td_curv_op *c);

#endif
