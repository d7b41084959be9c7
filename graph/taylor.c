#include "graph/taylor.h"

#include <stdlib.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/ops.h"

/* f rebuilt on constants holding the parameters' values: clone[id] is the
 * copy of node id (the node itself when it does not depend on a
 * parameter). c0[i] and delta[i] (i < *n) are the constants and theta - theta0
 * of the parameters f depends on. */
struct expansion {
    struct td_node *f0;
    struct td_node **c0, **delta;
    int n;
};

static struct td_node *fail_nomem(struct td_graph *g, const char *what)
{
    td_graph_fail(g, TD_ERR_NOMEM, "%s: out of memory", what);
    return NULL;
}

static struct td_node *expand(struct td_graph *g, struct td_node *f, const char *what,
                              struct expansion *e)
{
    e->f0 = NULL;
    e->c0 = e->delta = NULL;
    e->n = 0;
    if (!f || f->graph != g) {
        td_graph_fail(g, TD_ERR_ARG, "%s: the output is NULL or of another graph", what);
        return NULL;
    }
    const struct td_params *p = td_graph_params(g);
    int n = f->id + 1;
    struct td_node **clone = calloc((size_t)n, sizeof(*clone));
    unsigned char *dep = calloc((size_t)n, 1), *live = calloc((size_t)n, 1);
    e->c0 = malloc(((size_t)p->count + 1) * sizeof(*e->c0));
    e->delta = malloc(((size_t)p->count + 1) * sizeof(*e->delta));
    if (!clone || !dep || !live || !e->c0 || !e->delta) {
        free(clone), free(dep), free(live);
        return fail_nomem(g, what);
    }
    live[f->id] = 1;
    for (int id = n - 1; id >= 0; id--)
        if (live[id])
            for (int s = 0; s < td_graph_node(g, id)->n_src; s++)
                live[td_graph_node(g, id)->src[s]->id] = 1;
    for (int id = 0; id < n && td_graph_status(g) == TD_OK; id++) {
        struct td_node *node = td_graph_node(g, id);
        clone[id] = node;
        if (!live[id]) continue;
        if (node->kind == TD_NODE_PARAM) {
            const struct td_param_info *pi = &p->info[node->param_index];
            const float *v = p->value + pi->offset;
            struct td_node *c = td_constant(g, pi->shape, v);
            e->c0[e->n] = c;
            /* theta - theta0 through a constant of its own: the second-order
             * term differentiates in c, along a direction that must not
             * move with it. */
            e->delta[e->n++] = td_sub(g, node, td_constant(g, pi->shape, v));
            clone[id] = c;
            dep[id] = 1;
            continue;
        }
        if (node->kind != TD_NODE_OP) continue;
        struct td_node *src[TD_MAX_SRC];
        for (int s = 0; s < node->n_src; s++) {
            src[s] = clone[node->src[s]->id];
            dep[id] |= dep[node->src[s]->id];
        }
        if (!dep[id]) continue;
        clone[id] = td_node_new(g, node->op, src, node->n_src, &node->attr);
    }
    e->f0 = clone[f->id];
    free(clone), free(dep), free(live);
    return td_graph_status(g) == TD_OK ? e->f0 : NULL;
}

static void expansion_free(struct expansion *e)
{
    free(e->c0);
    free(e->delta);
}

/* J(theta0) delta: the JVP of the copy; NULL (with no error) when f does not
 * depend on a parameter. */
static struct td_node *first_order(struct td_graph *g, struct expansion *e, struct td_node *y)
{
    struct td_node *t = NULL;
    if (e->n == 0) return NULL;
    if (td_jvp(g, e->c0, e->delta, e->n, &y, 1, &t) != TD_OK) return NULL;
    return t;
}

struct td_node *td_linearize(struct td_graph *g, struct td_node *f)
{
    struct expansion e;
    struct td_node *f0 = expand(g, f, "linearize", &e), *r = f0;
    if (f0 && e.n) r = td_add(g, f0, first_order(g, &e, f0));
    expansion_free(&e);
    return r;
}

struct td_node *td_taylor2(struct td_graph *g, struct td_node *f)
{
    struct expansion e;
    struct td_node *f0 = expand(g, f, "taylor2", &e), *r = f0;
    if (f0 && e.n) {
        struct td_node *t1 = first_order(g, &e, f0);
        struct td_node *t2 = t1 ? first_order(g, &e, t1) : NULL;
        r = td_add(g, td_add(g, f0, t1), td_scale(g, t2, 0.5f));
    }
    expansion_free(&e);
    return r;
}
