/* Transformer layers (ops/layers.h): token embeddings, causal multi-head
 * self-attention with a fused QKV parameter, the GELU MLP and the pre-LN
 * block, in the layout of GPT-2 and with PyTorch's parameter names and
 * shapes, built only from public builders. */
#include <math.h>

#include "graph/node.h"
#include "ops/layers.h"
#include "ops/ops.h"

#define GPT_INIT_STD 0.02f

static float init_std(const struct td_block_options *o)
{
    return o && o->init_std > 0 ? o->init_std : GPT_INIT_STD;
}

static float dropout_rate(const struct td_block_options *o)
{
    return o ? o->dropout : 0.0f;
}

static struct td_node *drop(struct td_graph *g, struct td_node *x, const struct td_block_options *o)
{
    return dropout_rate(o) > 0 ? td_dropout(g, x, dropout_rate(o), o->step) : x;
}

/* Records an argument error unless one is recorded; returns NULL. */
static struct td_node *bad(struct td_graph *g, const char *layer, const char *name,
                           const char *what)
{
    td_graph_fail(g, TD_ERR_ARG, "%s '%s': %s", layer, name ? name : "(null)", what);
    return NULL;
}

static struct td_node *normal_param(struct td_graph *g, const char *name, struct td_shape s,
                                    float std)
{
    return td_param(g, name, s, (struct td_init){TD_INIT_NORMAL, 0.0f, std});
}

/* x [..., in] -> [..., units]: "name/weight" [units, in] ~ N(0, std),
 * "name/bias" [units] = 0, as GPT-2 initialises its projections. */
static struct td_node *projection(struct td_graph *g, struct td_node *x, int units, float std,
                                  const char *name)
{
    const struct td_shape *s = td_node_shape(x);
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_node *w = normal_param(g, "weight", TD_SHAPE(units, s->dim[s->rank - 1]), std);
    struct td_node *b = td_param(g, "bias", TD_SHAPE(units), (struct td_init){TD_INIT_ZEROS, 0, 0});
    td_scope_pop(g);
    return td_linear(g, x, w, b);
}

struct td_node *td_embedding(struct td_graph *g, struct td_node *ids, int vocab, int dim,
                             const struct td_init *init, const char *name)
{
    if (!g || !ids) return NULL;
    if (!name) return bad(g, "embedding", name, "name is NULL");
    if (vocab < 1 || dim < 1) return bad(g, "embedding", name, "vocab and dim must be >= 1");
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_init def = {TD_INIT_NORMAL, 0.0f, 1.0f};
    struct td_node *table = td_param(g, "weight", TD_SHAPE(vocab, dim), init ? *init : def);
    td_scope_pop(g);
    return td_embedding_lookup(g, table, ids);
}

/* The fused QKV parameter: "qkv/weight" [3d, d] (rows q, then k, then v)
 * and "qkv/bias" [3d]; each of q, k and v is a linear with its block of
 * rows, so no activation of width 3d is ever split or joined. */
static void qkv_projection(struct td_graph *g, struct td_node *x, float std, struct td_node **qkv)
{
    int64_t d = td_node_shape(x)->dim[2];
    if (td_scope_push(g, "qkv") != TD_OK) return;
    struct td_node *w = normal_param(g, "weight", TD_SHAPE(3 * d, d), std);
    struct td_node *b = td_param(g, "bias", TD_SHAPE(3 * d), (struct td_init){TD_INIT_ZEROS, 0, 0});
    td_scope_pop(g);
    for (int i = 0; i < 3; i++)
        qkv[i] = td_linear(g, x, td_slice(g, w, 0, (int)(i * d), (int)d),
                           td_slice(g, b, 0, (int)(i * d), (int)d));
}

struct td_node *td_causal_self_attention(struct td_graph *g, struct td_node *x, int heads,
                                         const struct td_block_options *o, const char *name)
{
    if (!g || !x) return NULL;
    if (!name) return bad(g, "attention", name, "name is NULL");
    const struct td_shape *s = td_node_shape(x);
    if (s->rank != 3) return bad(g, "attention", name, "needs x of shape [batch, time, d_model]");
    if (heads < 1 || s->dim[2] % heads)
        return bad(g, "attention", name, "d_model must be a multiple of the number of heads");
    if (dropout_rate(o) > 0 && !o->step)
        return bad(g, "attention", name, "dropout needs the step input");
    int64_t dh = s->dim[2] / heads;
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_node *qkv[3] = {NULL, NULL, NULL};
    qkv_projection(g, x, init_std(o), qkv);
    /* The heads stay packed in [B, T, d]: the products read and write them
     * in place, so no copy splits or merges them. */
    struct td_node *p = td_causal_softmax(g, td_attn_scores(g, qkv[0], qkv[1], heads),
                                          (float)(1.0 / sqrt((double)dh)));
    struct td_node *y = td_attn_mix(g, drop(g, p, o), qkv[2], heads, 0);
    float proj_std = o && o->proj_init_std > 0 ? o->proj_init_std : init_std(o);
    y = drop(g, projection(g, y, (int)s->dim[2], proj_std, "proj"), o);
    td_scope_pop(g);
    return y;
}

struct td_node *td_mlp_block(struct td_graph *g, struct td_node *x, int hidden,
                             const struct td_block_options *o, const char *name)
{
    if (!g || !x) return NULL;
    if (!name) return bad(g, "mlp", name, "name is NULL");
    if (hidden < 1) return bad(g, "mlp", name, "hidden width must be >= 1");
    if (dropout_rate(o) > 0 && !o->step) return bad(g, "mlp", name, "dropout needs the step input");
    const struct td_shape *s = td_node_shape(x);
    if (td_scope_push(g, name) != TD_OK) return NULL;
    struct td_node *h = td_gelu(g, projection(g, x, hidden, init_std(o), "fc"));
    float proj_std = o && o->proj_init_std > 0 ? o->proj_init_std : init_std(o);
    struct td_node *y = drop(g, projection(g, h, (int)s->dim[s->rank - 1], proj_std, "proj"), o);
    td_scope_pop(g);
    return y;
}

struct td_node *td_transformer_block(struct td_graph *g, struct td_node *x, int heads,
                                     const struct td_block_options *o, const char *name)
{
    if (!g || !x) return NULL;
    if (!name) return bad(g, "transformer block", name, "name is NULL");
    const struct td_shape *s = td_node_shape(x);
    int ratio = o && o->mlp_ratio > 0 ? o->mlp_ratio : 4;
    if (td_scope_push(g, name) != TD_OK) return NULL;
    x = td_add(g, x, td_causal_self_attention(g, td_layer_norm(g, x, "ln1"), heads, o, "attn"));
    x = td_add(
        g, x,
        td_mlp_block(g, td_layer_norm(g, x, "ln2"), ratio * (int)s->dim[s->rank - 1], o, "mlp"));
    td_scope_pop(g);
    return x;
}
