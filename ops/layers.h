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

/* Rows of "name/weight" [vocab, dim] picked by ids (TD_I32, any shape):
 * [ids..., dim], as torch.nn.Embedding. init NULL: N(0, 1), PyTorch's
 * default. An id outside [0, vocab) fails td_run with a message naming it. */
struct td_node *td_embedding(struct td_graph *g, struct td_node *ids, int vocab, int dim,
                             const struct td_init *init, const char *name);

/* Options shared by the Transformer layers below; NULL or zeroed fields
 * take the defaults given. */
struct td_block_options {
    float dropout;        /* rate on the attention probabilities and at the end of each
                             residual branch (GPT-2's places); 0: no dropout */
    struct td_node *step; /* TD_I32 [1], the step dropout masks are drawn for (td_dropout);
                             required when dropout > 0 */
    float init_std;       /* weights ~ N(0, init_std), biases 0; 0: 0.02 (GPT-2) */
    float proj_init_std;  /* the output projections of the residual branches; 0: init_std
                             (GPT-2 uses 0.02 / sqrt(2 layers)) */
    int mlp_ratio;        /* the MLP's hidden width over d_model; 0: 4 */
};

/* Causal multi-head self-attention on x [B, T, d] with `heads` heads of
 * d / heads: a fused QKV parameter "name/qkv/weight" [3d, d] (rows q, k, v;
 * head h uses rows h d/heads .. (h+1) d/heads - 1 of each block) and
 * "name/qkv/bias" [3d], scores scaled by 1/sqrt(d / heads) and masked so
 * position t sees positions <= t, and the output projection "name/proj"
 * (weight [d, d], bias [d]). y [B, T, d]. Errors: x not of rank 3, d not a
 * multiple of heads, dropout without a step input. */
struct td_node *td_causal_self_attention(struct td_graph *g, struct td_node *x, int heads,
                                         const struct td_block_options *o, const char *name);

/* GPT-2's MLP on x [..., d]: "name/fc" (weight [hidden, d]), exact GELU,
 * "name/proj" (weight [d, hidden]); y [..., d]. */
struct td_node *td_mlp_block(struct td_graph *g, struct td_node *x, int hidden,
                             const struct td_block_options *o, const char *name);

/* The pre-LN Transformer block of GPT-2 on x [B, T, d]:
 *   x = x + attn(ln1(x));  x = x + mlp(ln2(x))
 * with layer norms "name/ln1", "name/ln2", attention "name/attn" and MLP
 * "name/mlp" (hidden width mlp_ratio * d). */
struct td_node *td_transformer_block(struct td_graph *g, struct td_node *x, int heads,
                                     const struct td_block_options *o, const char *name);

/* 2-D convolution layer: x [N, C, H, W] -> [N, out_channels, OH, OW] (see
 * td_conv2d_op in ops/ops.h for the output size and params; NULL params:
 * stride 1, no padding, dilation 1), with W "name/weight"
 * [out_channels, C, kh, kw] and b "name/bias" [out_channels] initialised as
 * PyTorch's nn.Conv2d: U(+-1/sqrt(C * kh * kw)) for both. */
struct td_conv2d_params; /* ops/ops.h */
struct td_node *td_conv2d(struct td_graph *g, struct td_node *x, int out_channels, int kh, int kw,
                          const struct td_conv2d_params *params, const char *name);

/* Max pooling with a square kernel k, stride (0: k) and padding on both
 * axes; x [N, C, H, W]. A wrapper of td_max_pool2d_op (ops/ops.h). */
struct td_node *td_max_pool2d(struct td_graph *g, struct td_node *x, int k, int stride, int pad);

#endif
