/* "gpt": a character-level GPT in GPT-2's pre-LN layout: token and learned
 * position embeddings, `layers` Transformer blocks, a final layer norm and
 * an output head without bias (untied from the embedding). Parameter names
 * and shapes are PyTorch's, so tools/gpt_torch.py loads weights.h5:
 *   tok_emb/weight [V, d]  pos_emb/weight [T, d]  h{i}/...  ln_f/weight, ln_f/bias  head/weight [V,
 * d] Weights start as GPT-2's: N(0, 0.02), the residual projections N(0, 0.02 / sqrt(2 layers)),
 * biases 0, layer norms 1 and 0. */
#include <math.h>
#include <stdio.h>

#include "tools/models/models.h"

static enum td_status gpt(struct td_graph *g, const struct td_data_desc *d,
                          const struct td_model_config *c, struct td_model *m)
{
    int64_t t = c->context, v = d->classes;
    struct td_init emb = {TD_INIT_NORMAL, 0.0f, 0.02f};
    struct td_block_options o = {.dropout = (float)c->dropout,
                                 .proj_init_std = 0.02f / sqrtf(2.0f * (float)c->layers)};
    if (c->dropout > 0) m->step = o.step = td_input(g, "step", TD_SHAPE(1), TD_I32);
    struct td_node *pos = td_param(g, "pos_emb/weight", TD_SHAPE(t, c->d_model), emb);
    struct td_node *x = td_add(g, td_embedding(g, m->x, (int)v, c->d_model, &emb, "tok_emb"), pos);
    if (c->dropout > 0) x = td_dropout(g, x, (float)c->dropout, o.step);
    char name[32];
    for (int i = 0; i < c->layers; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        x = td_transformer_block(g, x, c->heads, &o, name);
    }
    x = td_layer_norm(g, x, "ln_f");
    struct td_node *head = td_param(g, "head/weight", TD_SHAPE(v, c->d_model), emb);
    m->logits = td_matmul(g, x, head, 0, 1);
    return td_graph_status(g);
}

const struct td_model_info td_model_gpt = {
    .name = "gpt",
    .summary = "GPT-2-style pre-LN Transformer on bytes of text",
    .data = TD_DATA_TEXT,
    .defaults = {.layers = 4, .d_model = 256, .heads = 4, .context = 128, .dropout = 0},
    .build = gpt,
};
