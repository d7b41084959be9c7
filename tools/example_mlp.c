/* The README's example: the seed MLP, its gradient and a Hessian-vector
 * product, in one plan. Build your own with `pkg-config --cflags --libs tandem`. */
#include <stdio.h>
#include <tandem.h>

int main(void)
{
    struct td_graph *g = td_graph_new(42); /* the seed drives every initializer */
    struct td_node *x = td_input(g, "x", TD_SHAPE(128, 784), TD_F32);
    struct td_node *y = td_input(g, "labels", TD_SHAPE(128), TD_I32);
    struct td_node *h = td_relu(g, td_dense(g, x, 128, "fc1"));
    h = td_relu(g, td_dense(g, h, 64, "fc2"));
    struct td_node *loss = td_softmax_cross_entropy(g, td_dense(g, h, 10, "fc3"), y);

    struct td_params *p = td_graph_params(g); /* fc1/weight, fc1/bias, ... */
    struct td_node *grads[6], *hvps[6], *outs[13] = {loss};
    td_grad_hvp(g, loss, grads, hvps, NULL); /* g = dL/dθ, H·Δθ with Δθ = p->dir */
    for (int i = 0; i < p->count; i++) outs[1 + i] = grads[i], outs[7 + i] = hvps[i];
    struct td_plan *plan = td_compile(g, outs, 13, NULL); /* plan once ... */
    if (!plan) return fprintf(stderr, "%s\n", td_graph_error(g)), 1;

    static float xs[128 * 784];
    static int ys[128];
    for (int i = 0; i < 128 * 784; i++) xs[i] = td_rng_uniform(1, 0, i);
    for (int i = 0; i < 128; i++) ys[i] = i % 10;
    for (size_t i = 0; i < p->total; i++) p->dir[i] = 1e-2f * td_rng_normal(1, 1, i);
    struct td_feed feeds[] = {{x, xs}, {y, ys}};
    if (td_run(plan, feeds, 2) != TD_OK) /* ... run many: no allocation */
        return fprintf(stderr, "%s\n", td_plan_error(plan)), 1;
    printf("loss %.4f  dL/d fc3/bias[0] %.5f  (H·Δθ) fc3/bias[0] %.3e\n",
           td_plan_output(plan, 0)[0], td_plan_output(plan, 6)[0], td_plan_output(plan, 12)[0]);
    td_plan_free(plan);
    td_graph_free(g);
    return 0;
}
