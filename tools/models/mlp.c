/* Multi-layer perceptrons on flattened inputs. "mlp" is the seed model:
 * 784-128-64-10 with ReLU; "mlp-gelu" swaps in GELU (exact, erf form),
 * whose second derivative is not zero almost everywhere (useful for
 * curvature studies); "wide-mlp" is 784-4096-4096-10 with ReLU, a model
 * whose step is almost all large products (the benchmark's yardstick for
 * the matmul path). */
#include "tools/models/models.h"

static enum td_status mlp(struct td_graph *g, const struct td_data_desc *d, struct td_model *m,
                          struct td_node *(*act)(struct td_graph *, struct td_node *), int h1,
                          int h2)
{
    const struct td_shape *s = td_node_shape(m->x);
    int64_t features = td_shape_numel(s) / s->dim[0];
    struct td_node *h = td_reshape(g, m->x, TD_SHAPE(s->dim[0], features));
    h = act(g, td_dense(g, h, h1, "fc1"));
    h = act(g, td_dense(g, h, h2, "fc2"));
    m->logits = td_dense(g, h, d->classes, "fc3");
    return td_graph_status(g);
}

static enum td_status mlp_relu(struct td_graph *g, const struct td_data_desc *d,
                               const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    return mlp(g, d, m, td_relu, 128, 64);
}

static enum td_status mlp_gelu(struct td_graph *g, const struct td_data_desc *d,
                               const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    return mlp(g, d, m, td_gelu, 128, 64);
}

static enum td_status mlp_wide(struct td_graph *g, const struct td_data_desc *d,
                               const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    return mlp(g, d, m, td_relu, 4096, 4096);
}

const struct td_model_info td_model_mlp = {
    .name = "mlp", .summary = "784-128-64-10 perceptron, ReLU", .build = mlp_relu};
const struct td_model_info td_model_mlp_gelu = {
    .name = "mlp-gelu", .summary = "784-128-64-10 perceptron, GELU (erf)", .build = mlp_gelu};
const struct td_model_info td_model_wide_mlp = {
    .name = "wide-mlp", .summary = "784-4096-4096-10 perceptron, ReLU", .build = mlp_wide};
