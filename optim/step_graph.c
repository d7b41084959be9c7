#include "optim/step_graph.h"

#include <stdlib.h>

enum td_status td_step_graph_init(struct td_step_graph *s, struct td_graph *g, struct td_node *loss)
{
    struct td_params *p = td_graph_params(g);
    int P = p->count;
    *s = (struct td_step_graph){.g = g, .n_params = P};
    s->outs = calloc(2 * (size_t)P + 1, sizeof(*s->outs));
    s->bind = calloc(2 * (size_t)P + 1, sizeof(*s->bind));
    if (!s->outs || !s->bind) return TD_ERR_NOMEM;
    s->outs[0] = loss;
    enum td_status st = td_grad_hvp(g, loss, s->outs + 1, s->outs + 1 + P, NULL);
    if (st != TD_OK) return st;
    for (int i = 0; i < P; i++) {
        s->bind[i] = (struct td_binding){s->outs[1 + i], p->grad + p->info[i].offset};
        s->bind[P + i] = (struct td_binding){s->outs[1 + P + i], p->tangent + p->info[i].offset};
    }
    return TD_OK;
}

void td_step_graph_free(struct td_step_graph *s)
{
    free(s->outs);
    free(s->bind);
    s->outs = NULL;
    s->bind = NULL;
}

int td_step_graph_num_outputs(const struct td_step_graph *s, int hvp)
{
    return 1 + (hvp ? 2 : 1) * s->n_params;
}

struct td_plan *td_step_graph_compile(const struct td_step_graph *s, int hvp, int bind,
                                      struct td_compile_options opts)
{
    opts.bindings = bind ? s->bind : NULL;
    opts.n_bindings = bind ? (hvp ? 2 : 1) * s->n_params : 0;
    return td_compile(s->g, s->outs, td_step_graph_num_outputs(s, hvp), &opts);
}
