#include "graph/autodiff.h"

#include <stdlib.h>

#include "graph/node.h"
#include "ops/op.h"
#include "ops/ops.h"

static int is_zero(const struct td_node *n)
{
    return !n || (n->kind == TD_NODE_CONST && n->is_zero);
}

static enum td_status bad_arg(struct td_graph *g, const char *what)
{
    /* A NULL node argument normally comes from an earlier failed builder,
     * whose error is already recorded and kept. */
    td_graph_fail(g, TD_ERR_ARG, "%s", what);
    return td_graph_status(g);
}

static int check_rule_shape(struct td_graph *g, const struct td_node *n, const char *mode,
                            const struct td_node *got, const struct td_shape *want)
{
    if (!got || td_shape_equal(&got->shape, want)) return 1;
    char a[96], b[96];
    td_graph_fail(g, TD_ERR_SHAPE, "%s rule of %s built %s where %s was needed", mode, n->op->name,
                  td_shape_format(&got->shape, a, sizeof(a)), td_shape_format(want, b, sizeof(b)));
    return 0;
}

/* mark[id] = 1 for every ancestor of the given nodes (themselves included). */
static void mark_ancestors(struct td_graph *g, struct td_node *const *roots, int n_roots,
                           unsigned char *mark, int n)
{
    for (int i = 0; i < n_roots; i++)
        if (roots[i]->id >= 0 && roots[i]->id < n) mark[roots[i]->id] = 1;
    for (int id = n - 1; id >= 0; id--) {
        if (!mark[id]) continue;
        struct td_node *node = td_graph_node(g, id);
        for (int s = 0; s < node->n_src; s++) mark[node->src[s]->id] = 1;
    }
}

static enum td_status zeros_for(struct td_graph *g, struct td_node *const *like, int n,
                                struct td_node **out)
{
    for (int i = 0; i < n; i++)
        if (!out[i]) out[i] = td_fill(g, like[i]->shape, 0.0f);
    return td_graph_status(g);
}

/* prev + add, add being a cotangent a rule just built (nodes from
 * first_new on are the rule's). When add is a product of the rule (a
 * matmul, possibly behind a reshape) that no other node reads, the sum is
 * that product accumulated onto prev in one node (matmul_add): no add pass
 * and no buffer for the product. */
static struct td_node *accumulate(struct td_graph *g, struct td_node *prev, struct td_node *add,
                                  int first_new)
{
    struct td_node *m = add;
    if (m->op && (m->op->traits & TD_TRAIT_VIEW) && m->id >= first_new) m = m->src[0];
    int own = m->op == &td_op_matmul && m->id >= first_new;
    for (int id = first_new; own && id < td_graph_num_nodes(g); id++) {
        struct td_node *u = td_graph_node(g, id);
        for (int s = 0; s < u->n_src && u != add; s++) own &= u->src[s] != m;
    }
    if (!own) return td_add(g, prev, add);
    struct td_node *c =
        td_shape_equal(&prev->shape, &m->shape) ? prev : td_reshape(g, prev, m->shape);
    struct td_node *sum = td_matmul_add(g, m->src[0], m->src[1], m->attr.i[0], m->attr.i[1], c);
    return add == m ? sum : td_reshape(g, sum, add->shape);
}

/* With td_graph_set_remat on: before node's VJP rule runs, each operand x
 * whose op allows it (TD_TRAIT_REMAT) and that gets a cotangent (so its own
 * VJP, which reads x's operands, will run too) is swapped for a copy of x
 * recomputed from those operands (made once per x, in again[x]). The rule's
 * nodes then read the copy, the scheduler computes it when the backward
 * pass needs it, and x dies after the forward pass. saved[] gets the
 * operands to put back. */
static void swap_in_recomputed(struct td_graph *g, struct td_node *node, unsigned need,
                               struct td_node **again, struct td_node **saved)
{
    for (int s = 0; s < node->n_src; s++) saved[s] = node->src[s];
    for (int s = 0; s < node->n_src; s++) {
        struct td_node *x = saved[s];
        if (!(need & (1u << s)) || !x->op || !(x->op->traits & TD_TRAIT_REMAT)) continue;
        if (!again[x->id]) {
            again[x->id] = td_node_new(g, x->op, x->src, x->n_src, &x->attr);
            if (!again[x->id]) return;
            if (x->name) td_node_set_name(again[x->id], x->name);
            again[x->id]->recomputed = 1;
        }
        node->src[s] = again[x->id];
    }
}

enum td_status td_vjp(struct td_graph *g, struct td_node *y, struct td_node *seed,
                      struct td_node *const *wrt, int n_wrt, struct td_node **out)
{
    if (!y) return bad_arg(g, "vjp: output is NULL");
    for (int i = 0; i < n_wrt; i++) {
        out[i] = NULL;
        if (!wrt[i]) return bad_arg(g, "vjp: a node to differentiate with respect to is NULL");
        if (wrt[i]->graph != g || y->graph != g)
            return bad_arg(g, "vjp: node belongs to another graph");
    }
    char a[96], b[96];
    if (!seed) {
        if (td_shape_numel(&y->shape) != 1) {
            td_graph_fail(g, TD_ERR_SHAPE, "vjp: output %s is not a scalar; give a seed",
                          td_shape_format(&y->shape, a, sizeof(a)));
            return TD_ERR_SHAPE;
        }
        seed = td_fill(g, y->shape, 1.0f);
        if (!seed) return td_graph_status(g);
    } else if (!td_shape_equal(&seed->shape, &y->shape)) {
        td_graph_fail(g, TD_ERR_SHAPE, "vjp: seed %s does not match output %s",
                      td_shape_format(&seed->shape, a, sizeof(a)),
                      td_shape_format(&y->shape, b, sizeof(b)));
        return TD_ERR_SHAPE;
    }

    int n = y->id + 1;
    unsigned char *dep = calloc((size_t)n + 1, 1), *live = calloc((size_t)n + 1, 1);
    struct td_node **ct = calloc((size_t)n + 1, sizeof(*ct));
    struct td_node **again = td_graph_remat(g) ? calloc((size_t)n + 1, sizeof(*again)) : NULL;
    if (!dep || !live || !ct || (td_graph_remat(g) && !again)) {
        free(dep), free(live), free(ct), free(again);
        td_graph_fail(g, TD_ERR_NOMEM, "vjp: out of memory");
        return TD_ERR_NOMEM;
    }
    for (int i = 0; i < n_wrt; i++)
        if (wrt[i]->id < n && wrt[i]->dtype == TD_F32) dep[wrt[i]->id] = 1;
    for (int id = 0; id < n; id++) {
        struct td_node *node = td_graph_node(g, id);
        for (int s = 0; s < node->n_src && !dep[id]; s++) dep[id] = dep[node->src[s]->id];
    }
    mark_ancestors(g, &y, 1, live, n);

    ct[y->id] = is_zero(seed) ? NULL : seed;
    for (int id = n - 1; id >= 0 && td_graph_status(g) == TD_OK; id--) {
        struct td_node *node = td_graph_node(g, id);
        if (!ct[id] || !live[id] || !dep[id] || !node->op) continue;
        if (node->op->traits & TD_TRAIT_NONDIFF) continue;
        unsigned need = 0;
        for (int s = 0; s < node->n_src; s++)
            if (dep[node->src[s]->id] && node->src[s]->dtype == TD_F32) need |= 1u << s;
        if (!need) continue;
        struct td_node *cts[TD_MAX_SRC] = {0}, *saved[TD_MAX_SRC];
        if (again) swap_in_recomputed(g, node, need, again, saved);
        int first_new = td_graph_num_nodes(g);
        if (td_graph_status(g) == TD_OK) node->op->vjp(g, node, ct[id], need, cts);
        if (again)
            for (int s = 0; s < node->n_src; s++) node->src[s] = saved[s];
        for (int s = 0; s < node->n_src; s++) {
            if (!(need & (1u << s)) || is_zero(cts[s])) continue;
            struct td_node *src = node->src[s];
            if (!check_rule_shape(g, node, "vjp", cts[s], &src->shape)) break;
            ct[src->id] = ct[src->id] ? accumulate(g, ct[src->id], cts[s], first_new) : cts[s];
        }
    }
    for (int i = 0; i < n_wrt; i++) out[i] = wrt[i]->id < n ? ct[wrt[i]->id] : NULL;
    free(dep), free(live), free(ct), free(again);
    if (td_graph_status(g) != TD_OK) return td_graph_status(g);
    return zeros_for(g, wrt, n_wrt, out);
}

/* Which forward nodes' tangents a rematerialising JVP may recompute for the
 * nodes of the backward region (ids from late_from on, built by td_vjp):
 * those of elementwise nodes whose every operand the backward region reads
 * anyway, and whose operands' tangents it will read anyway. A JVP rule
 * reads the tangent of every operand of the node it differentiates, so an
 * operand read by a differentiable backward node will have its tangent read
 * there; a piecewise-constant reader (a ReLU's mask) reads none. Recomputing
 * such a tangent from values that stay live costs one elementwise pass and
 * frees its buffer for the whole span from the forward pass to the backward
 * one (the GPT's MLP blocks: 8.4 MB per layer). */
struct remat {
    int late_from;
    unsigned char *read_late;  /* [id]: some backward node reads it */
    unsigned char *diff_late;  /* [id]: some differentiable backward node reads it */
    struct td_node **late_tan; /* [id]: the recomputed tangent, once built */
};

static int remat_init(struct remat *r, struct td_graph *g, int late_from, int n)
{
    r->late_from = late_from;
    r->read_late = calloc((size_t)n + 1, 1);
    r->diff_late = calloc((size_t)n + 1, 1);
    r->late_tan = calloc((size_t)n + 1, sizeof(*r->late_tan));
    if (!r->read_late || !r->diff_late || !r->late_tan) return 0;
    for (int id = late_from; id < n; id++) {
        struct td_node *b = td_graph_node(g, id);
        int diff = b->op && !(b->op->traits & TD_TRAIT_NONDIFF);
        for (int s = 0; s < b->n_src; s++) {
            if (b->src[s]->id >= late_from) continue;
            r->read_late[b->src[s]->id] = 1;
            r->diff_late[b->src[s]->id] |= diff;
        }
    }
    return 1;
}

static void remat_free(struct remat *r)
{
    free(r->read_late), free(r->diff_late), free(r->late_tan);
}

/* The tangent of forward node f for a backward node: recomputed there when
 * the rule above allows it, else tan[f]. */
static struct td_node *late_tangent(struct td_graph *g, struct remat *r, struct td_node **tan,
                                    struct td_node *f)
{
    struct td_node *t = tan[f->id];
    if (!t || f->id >= r->late_from || !f->op || !(f->op->traits & TD_TRAIT_ELEMENTWISE)) return t;
    if (r->late_tan[f->id]) return r->late_tan[f->id];
    struct td_node *ts[TD_MAX_SRC] = {0};
    for (int s = 0; s < f->n_src; s++) {
        struct td_node *x = f->src[s];
        if (x->op && !r->read_late[x->id]) return t;
        if (x->dtype == TD_F32 && tan[x->id] && !r->diff_late[x->id]) return t;
    }
    /* The operands' tangents as the backward pass reads them: recomputed
     * too where they qualify, so no forward-pass tangent is kept for this. */
    for (int s = 0; s < f->n_src; s++)
        ts[s] = f->src[s]->dtype == TD_F32 ? late_tangent(g, r, tan, f->src[s]) : NULL;
    r->late_tan[f->id] = f->op->jvp(g, f, ts);
    return r->late_tan[f->id] ? r->late_tan[f->id] : t;
}

static enum td_status jvp_run(struct td_graph *g, struct td_node *const *wrt,
                              struct td_node *const *tangents, int n_wrt,
                              struct td_node *const *outputs, int n_out, struct td_node **out,
                              int late_from);

enum td_status td_jvp(struct td_graph *g, struct td_node *const *wrt,
                      struct td_node *const *tangents, int n_wrt, struct td_node *const *outputs,
                      int n_out, struct td_node **out)
{
    return jvp_run(g, wrt, tangents, n_wrt, outputs, n_out, out, -1);
}

/* td_jvp; with late_from >= 0, nodes from that id on (a backward pass)
 * may read recomputed tangents of earlier nodes (struct remat). */
static enum td_status jvp_run(struct td_graph *g, struct td_node *const *wrt,
                              struct td_node *const *tangents, int n_wrt,
                              struct td_node *const *outputs, int n_out, struct td_node **out,
                              int late_from)
{
    int n = 0;
    for (int j = 0; j < n_out; j++) {
        out[j] = NULL;
        if (!outputs[j]) return bad_arg(g, "jvp: an output is NULL");
        if (outputs[j]->graph != g) return bad_arg(g, "jvp: node belongs to another graph");
        if (outputs[j]->id + 1 > n) n = outputs[j]->id + 1;
    }
    char a[96], b[96];
    for (int i = 0; i < n_wrt; i++) {
        if (!wrt[i]) return bad_arg(g, "jvp: a node to differentiate with respect to is NULL");
        if (wrt[i]->graph != g || (tangents[i] && tangents[i]->graph != g))
            return bad_arg(g, "jvp: node belongs to another graph");
        if (tangents[i] && !td_shape_equal(&tangents[i]->shape, &wrt[i]->shape)) {
            td_graph_fail(g, TD_ERR_SHAPE, "jvp: tangent %s does not match its node %s",
                          td_shape_format(&tangents[i]->shape, a, sizeof(a)),
                          td_shape_format(&wrt[i]->shape, b, sizeof(b)));
            return TD_ERR_SHAPE;
        }
    }
    unsigned char *live = calloc((size_t)n + 1, 1), *seeded = calloc((size_t)n + 1, 1);
    struct td_node **tan = calloc((size_t)n + 1, sizeof(*tan));
    struct remat rm = {0}, *r = late_from >= 0 && late_from < n ? &rm : NULL;
    if (!live || !seeded || !tan || (r && !remat_init(r, g, late_from, n))) {
        free(live), free(seeded), free(tan);
        remat_free(&rm);
        td_graph_fail(g, TD_ERR_NOMEM, "jvp: out of memory");
        return TD_ERR_NOMEM;
    }
    mark_ancestors(g, outputs, n_out, live, n);
    for (int i = 0; i < n_wrt; i++) {
        if (wrt[i]->id >= n || wrt[i]->dtype != TD_F32) continue;
        seeded[wrt[i]->id] = 1;
        tan[wrt[i]->id] = is_zero(tangents[i]) ? NULL : tangents[i];
    }
    for (int id = 0; id < n && td_graph_status(g) == TD_OK; id++) {
        struct td_node *node = td_graph_node(g, id);
        if (!live[id] || seeded[id] || !node->op) continue;
        if (node->op->traits & TD_TRAIT_NONDIFF) continue;
        struct td_node *ts[TD_MAX_SRC] = {0};
        int any = 0;
        for (int s = 0; s < node->n_src; s++) {
            struct td_node *x = node->src[s];
            ts[s] = x->dtype != TD_F32     ? NULL
                    : r && id >= late_from ? late_tangent(g, r, tan, x)
                                           : tan[x->id];
            any |= ts[s] != NULL;
        }
        if (!any) continue;
        struct td_node *t = node->op->jvp(g, node, ts);
        if (!check_rule_shape(g, node, "jvp", t, &node->shape)) break;
        tan[id] = is_zero(t) ? NULL : t;
    }
    for (int j = 0; j < n_out; j++) out[j] = tan[outputs[j]->id];
    free(live), free(seeded), free(tan);
    remat_free(&rm);
    if (td_graph_status(g) != TD_OK) return td_graph_status(g);
    return zeros_for(g, outputs, n_out, out);
}

enum td_status td_grad_hvp(struct td_graph *g, struct td_node *loss, struct td_node **grads,
                           struct td_node **hvps, struct td_node **dirs)
{
    struct td_params *p = td_graph_params(g);
    if (p->count == 0) return bad_arg(g, "grad_hvp: the graph has no parameters");
    struct td_node **params = malloc((size_t)p->count * sizeof(*params));
    struct td_node **d = malloc((size_t)p->count * sizeof(*d));
    if (!params || !d) {
        free(params), free(d);
        td_graph_fail(g, TD_ERR_NOMEM, "grad_hvp: out of memory");
        return TD_ERR_NOMEM;
    }
    for (int i = 0; i < p->count; i++) params[i] = p->info[i].node;
    enum td_status st = td_vjp(g, loss, NULL, params, p->count, grads);
    if (st == TD_OK && (hvps || dirs)) {
        for (int i = 0; i < p->count; i++) d[i] = td_graph_dir_input(g, i);
        st = td_graph_status(g);
        if (st == TD_OK && hvps)
            st = jvp_run(g, params, d, p->count, grads, p->count, hvps, loss->id + 1);
        if (st == TD_OK && dirs)
            for (int i = 0; i < p->count; i++) dirs[i] = d[i];
    }
    free(params), free(d);
    return st;
}
