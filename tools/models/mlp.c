/* Multi-layer perceptrons on flattened inputs. "mlp" is the seed model:
 * 784-128-64-10 with ReLU; "mlp-gelu" swaps in GELU (exact, erf form),
 * whose second derivative is not zero almost everywhere (useful for
 * curvature studies). */
#include "tools/models/models.h"

static enum td_status mlp(struct td_graph *g, struct td_node *x, int classes,
                          struct td_node *(*act)(struct td_graph *, struct td_node *),
                          struct td_node **logits)
{
    const struct td_shape *s = td_node_shape(x);
    int64_t features = 1;
    for (int i = 1; i < s->rank; i++) features *= s->dim[i];
    struct td_node *h = td_reshape(g, x, TD_SHAPE(s->dim[0], features));
    h = act(g, td_dense(g, h, 128, "fc1"));
    h = act(g, td_dense(g, h, 64, "fc2"));
    *logits = td_dense(g, h, classes, "fc3");
    return td_graph_status(g);
}

static enum td_status mlp_relu(struct td_graph *g, struct td_node *x, int classes,
                               struct td_node **logits)
{
    return mlp(g, x, classes, td_relu, logits);
}

static enum td_status mlp_gelu(struct td_graph *g, struct td_node *x, int classes,
                               struct td_node **logits)
{
    return mlp(g, x, classes, td_gelu, logits);
}

const struct td_model_info td_model_mlp = {"mlp", "784-128-64-10 perceptron, ReLU", mlp_relu};
const struct td_model_info td_model_mlp_gelu = {"mlp-gelu", "784-128-64-10 perceptron, GELU (erf)",
                                                mlp_gelu};
