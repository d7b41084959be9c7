/* A convolutional network for small single-channel images (Fashion-MNIST):
 * conv 5x5 32 (padding 2) - ReLU - max pool 2 - conv 5x5 64 (padding 2) -
 * ReLU - max pool 2 - dense 128 - ReLU - dense classes. Inputs [batch, H, W]
 * are viewed as [batch, 1, H, W]; [batch, C, H, W] is taken as is, and any
 * other rank makes conv1 report the shape. */
#include "tools/models/models.h"

static enum td_status cnn(struct td_graph *g, const struct td_data_desc *d,
                          const struct td_model_config *c, struct td_model *m)
{
    (void)c;
    struct td_node *x = m->x;
    const struct td_shape *s = td_node_shape(x);
    struct td_node *h =
        s->rank == 3 ? td_reshape(g, x, TD_SHAPE(s->dim[0], 1, s->dim[1], s->dim[2])) : x;
    const struct td_conv2d_params same5 = {.pad = {2, 2}};
    h = td_max_pool2d(g, td_relu(g, td_conv2d(g, h, 32, 5, 5, &same5, "conv1")), 2, 0, 0);
    h = td_max_pool2d(g, td_relu(g, td_conv2d(g, h, 64, 5, 5, &same5, "conv2")), 2, 0, 0);
    if (!h) return td_graph_status(g);
    const struct td_shape *hs = td_node_shape(h);
    h = td_reshape(g, h, TD_SHAPE(hs->dim[0], hs->dim[1] * hs->dim[2] * hs->dim[3]));
    h = td_relu(g, td_dense(g, h, 128, "fc1"));
    m->logits = td_dense(g, h, d->classes, "fc2");
    return td_graph_status(g);
}

const struct td_model_info td_model_cnn = {
    .name = "cnn",
    .summary = "conv5x5 32 - pool - conv5x5 64 - pool - 128 - classes, ReLU (images [H, W])",
    .build = cnn};
