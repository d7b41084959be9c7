/* A GPT written with Tandem's layers, in the layout of the zoo's "gpt", and
 * the derivatives a researcher asks of it: the loss's gradient and H·v in
 * one plan, and the JVP of the logits in a direction of the parameters. */
#include <stdio.h>
#include <tandem.h>

enum { B = 4, T = 32, V = 65, D = 64, HEADS = 4, LAYERS = 2 };

int main(void)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(B, T), TD_I32);
    struct td_node *targets = td_input(g, "targets", TD_SHAPE(B * T), TD_I32);
    struct td_init emb = {TD_INIT_NORMAL, 0.0f, 0.02f};
    struct td_node *x = td_add(g, td_embedding(g, ids, V, D, &emb, "tok_emb"),
                               td_param(g, "pos_emb/weight", TD_SHAPE(T, D), emb));
    for (int i = 0; i < LAYERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "h%d", i);
        x = td_transformer_block(g, x, HEADS, NULL, name); /* pre-LN, GELU MLP, causal */
    }
    x = td_layer_norm(g, x, "ln_f");
    struct td_node *logits = td_matmul(g, x, td_param(g, "head/weight", TD_SHAPE(V, D), emb), 0, 1);
    struct td_node *loss =
        td_softmax_cross_entropy(g, td_reshape(g, logits, TD_SHAPE(B * T, V)), targets);

    struct td_params *p = td_graph_params(g);
    struct td_node *grads[64], *hvps[64], *outs[1 + 2 * 64] = {loss}, *dirs[64], *jvp;
    td_grad_hvp(g, loss, grads, hvps, dirs); /* g and H·dir, dir from the store */
    struct td_node *params[64];
    for (int i = 0; i < p->count; i++) params[i] = p->info[i].node;
    td_jvp(g, params, dirs, p->count, &logits, 1, &jvp); /* d logits along dir */
    for (int i = 0; i < p->count; i++) outs[1 + i] = grads[i], outs[1 + p->count + i] = hvps[i];
    outs[1 + 2 * p->count] = jvp;
    struct td_plan *plan = td_compile(g, outs, 2 + 2 * p->count, NULL);
    if (!plan) return fprintf(stderr, "%s\n", td_graph_error(g)), 1;

    static int32_t xs[B * T], ys[B * T];
    for (int i = 0; i < B * T; i++) xs[i] = (int32_t)(td_rng_u64(7, 0, (uint64_t)i) % V);
    for (int i = 0; i < B * T; i++) ys[i] = (int32_t)(td_rng_u64(7, 1, (uint64_t)i) % V);
    for (size_t i = 0; i < p->total; i++) p->dir[i] = 1e-3f * td_rng_normal(7, 2, i);
    struct td_feed feeds[] = {{ids, xs}, {targets, ys}};
    if (td_run(plan, feeds, 2) != TD_OK) return fprintf(stderr, "%s\n", td_plan_error(plan)), 1;
    printf("%d parameter tensors, %zu values; loss %.4f (log V = 4.17)\n", p->count, p->total,
           td_plan_output(plan, 0)[0]);
    printf("dL/d head/weight[0] %.3e  (H dir) head/weight[0] %.3e  d logits[0] %.3e\n",
           td_plan_output(plan, p->count)[0], td_plan_output(plan, 2 * p->count)[0],
           td_plan_output(plan, 1 + 2 * p->count)[0]);
    td_plan_free(plan);
    td_graph_free(g);
    return 0;
}
