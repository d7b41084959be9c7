/* Multi-layer perceptrons on flattened inputs. "mlp" is the seed model:
 * 784-128-64-10 with ReLU; "mlp-gelu" swaps in GELU (exact, erf form),
 * whose second derivative is not zero almost everywhere (useful for
 * curvature studies). */
#include "tools/models/models.h"

static enum td_status mlp(struct td_graph *g, const struct td_data_desc *d, struct td_model *m,
                          struct td_node *(*act)(struct td_graph *, struct td_node *))
{
    const struct td_shape *s = td_node_shape(m->x);
    int64_t features = td_shape_numel(s) / s->dim[0];
    struct td_node *h = td_reshape(g, m->x, TD_SHAPE(s->dim[0], features));
    h = act(g, td_dense(g, h, 128, "fc1"));
    h = act(g, td_dense(g, h, 64, "fc2"));
    m->logits = td_dense(g, h, d->classes, "fc3");
    return td_graph_status(g);
}

static enum td_status mlp_relu(struct td_graph *g, const struct td_data_desc *d,
                               const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    return mlp(g, d, m, td_relu);
}

static enum td_status mlp_gelu(struct td_graph *g, const struct td_data_desc *d,
                               const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    return mlp(g, d, m, td_gelu);
}

const struct td_model_info td_model_mlp = {
    .name = "mlp", .summary = "784-128-64-10 perceptron, ReLU", .build = mlp_relu};
const struct td_model_info td_model_mlp_gelu = {
    .name = "mlp-gelu", .summary = "784-128-64-10 perceptron, GELU (erf)", .build = mlp_gelu};
