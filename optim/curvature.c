#include "optim/curvature.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/memory.h"
#include "graph/node.h"
#include "io/ioutil.h"

struct td_curv_op {
    struct td_graph *g;
    struct td_params *p;
    struct td_node *loss;
    struct td_feed *feeds;
    int n_feeds, num_threads;
    struct td_plan *product, *loss_plan, *grad_plan;
    struct td_node **grads; /* built for grad_plan */
    float *out, *grad_buf;
    char err[TD_MSG_MAX];
};

static enum td_status graph_err(struct td_graph *g, char *err, size_t errlen)
{
    enum td_status st = td_graph_status(g);
    return td_io_errf(st != TD_OK ? st : TD_ERR_NOMEM, err, errlen, "curvature: %s",
                      st != TD_OK ? td_graph_error(g) : "out of memory");
}

/* G v = J^T H_l J v with v read from the dir block. */
static enum td_status build_ggn(struct td_graph *g, struct td_node *loss, struct td_node *z,
                                struct td_node *const *w, struct td_node *const *d, int n,
                                struct td_node **gv)
{
    struct td_node *jv = NULL, *gz = NULL, *hjv = NULL;
    if (td_jvp(g, w, d, n, &z, 1, &jv) != TD_OK) return td_graph_status(g);
    if (td_vjp(g, loss, NULL, &z, 1, &gz) != TD_OK) return td_graph_status(g);
    if (td_jvp(g, &z, &jv, 1, &gz, 1, &hjv) != TD_OK) return td_graph_status(g);
    return td_vjp(g, z, hjv, w, n, gv);
}

struct td_curv_op *td_curv_op_new(struct td_graph *g, struct td_node *loss, struct td_node *output,
                                  enum td_curv_matrix which, const struct td_feed *feeds,
                                  int n_feeds, int num_threads, char *err, size_t errlen)
{
    if (!g || !loss || td_shape_numel(td_node_shape(loss)) != 1 ||
        (which == TD_CURV_GGN && !output)) {
        td_io_errf(TD_ERR_ARG, err, errlen,
                   "curvature: needs a scalar loss (and an output for the Gauss-Newton matrix)");
        return NULL;
    }
    struct td_curv_op *c = calloc(1, sizeof(*c));
    struct td_params *p = td_graph_params(g);
    int n = p->count;
    struct td_node **w = malloc(((size_t)n + 1) * sizeof(*w));
    struct td_node **d = malloc(((size_t)n + 1) * sizeof(*d));
    struct td_node **prod = malloc(((size_t)n + 1) * sizeof(*prod));
    struct td_binding *bind = malloc(((size_t)n + 1) * sizeof(*bind));
    enum td_status st = TD_OK;
    if (!c || !w || !d || !prod || !bind) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    c->g = g, c->p = p, c->loss = loss, c->num_threads = num_threads, c->n_feeds = n_feeds;
    c->feeds = malloc(((size_t)n_feeds + 1) * sizeof(*c->feeds));
    c->out = td_alloc_large(p->total * sizeof(float));
    c->grads = calloc((size_t)n + 1, sizeof(*c->grads));
    if (!c->feeds || !c->out || !c->grads) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    memcpy(c->feeds, feeds, (size_t)n_feeds * sizeof(*feeds));
    for (int i = 0; i < n; i++) {
        w[i] = p->info[i].node;
        d[i] = td_graph_dir_input(g, i);
    }
    if (which == TD_CURV_GGN) {
        st = build_ggn(g, loss, output, w, d, n, prod);
        if (st == TD_OK && td_graph_status(g) == TD_OK) {
            /* A loss that ignores the output would make G zero: say so. */
            struct td_node *gz = NULL;
            td_vjp(g, loss, NULL, &output, 1, &gz);
            if (gz && gz->kind == TD_NODE_CONST && gz->is_zero)
                st = td_io_errf(TD_ERR_ARG, err, errlen,
                                "curvature: the loss does not depend on the output node");
        }
    } else {
        st = td_grad_hvp(g, loss, c->grads, prod, NULL);
    }
    if (st != TD_OK || td_graph_status(g) != TD_OK) {
        if (td_graph_status(g) != TD_OK) st = graph_err(g, err, errlen);
        goto done;
    }
    for (int i = 0; i < n; i++) bind[i] = (struct td_binding){prod[i], c->out + p->info[i].offset};
    struct td_compile_options co = {.num_threads = num_threads, .bindings = bind, .n_bindings = n};
    c->product = td_compile(g, prod, n, &co);
    if (!c->product) st = graph_err(g, err, errlen);
done:
    free(w), free(d), free(prod), free(bind);
    if (st != TD_OK) {
        td_curv_op_free(c);
        return NULL;
    }
    return c;
}

void td_curv_op_free(struct td_curv_op *c)
{
    if (!c) return;
    td_plan_free(c->product);
    td_plan_free(c->loss_plan);
    td_plan_free(c->grad_plan);
    free(c->feeds), free(c->out), free(c->grads), free(c->grad_buf);
    free(c);
}

size_t td_curv_op_size(const struct td_curv_op *c)
{
    return c->p->total;
}

const char *td_curv_op_error(const struct td_curv_op *c)
{
    return c->err;
}

enum td_status td_curv_op_apply(struct td_curv_op *c, const float *v, float *out)
{
    memcpy(c->p->dir, v, c->p->total * sizeof(float));
    if (td_run(c->product, c->feeds, c->n_feeds) != TD_OK)
        return td_io_errf(TD_ERR_BACKEND, c->err, sizeof(c->err), "curvature product: %s",
                          td_plan_error(c->product));
    memcpy(out, c->out, c->p->total * sizeof(float));
    return TD_OK;
}

/* The loss plan, or the loss and gradient plan (gradients bound into
 * grad_buf); compiled on first use. The Hessian's operator built the
 * gradient nodes already (td_grad_hvp); the Gauss-Newton one builds them
 * here. */
static struct td_plan *value_plan(struct td_curv_op *c, int with_grad)
{
    struct td_plan **slot = with_grad ? &c->grad_plan : &c->loss_plan;
    struct td_compile_options co = {.num_threads = c->num_threads};
    if (*slot || !with_grad) return *slot ? *slot : (*slot = td_compile(c->g, &c->loss, 1, &co));
    const int n = c->p->count;
    struct td_node **outs = malloc(((size_t)n + 1) * sizeof(*outs));
    struct td_binding *bind = malloc(((size_t)n + 1) * sizeof(*bind));
    if (!c->grad_buf) c->grad_buf = td_alloc_large(c->p->total * sizeof(float));
    if (outs && bind && c->grad_buf) {
        for (int i = 0; i < n; i++) outs[1 + i] = c->p->info[i].node;
        if (n > 0 && !c->grads[0]) td_vjp(c->g, c->loss, NULL, outs + 1, n, c->grads);
        outs[0] = c->loss;
        for (int i = 0; i < n; i++) {
            outs[1 + i] = c->grads[i];
            bind[i] = (struct td_binding){c->grads[i], c->grad_buf + c->p->info[i].offset};
        }
        co.bindings = bind;
        co.n_bindings = n;
        if (td_graph_status(c->g) == TD_OK) *slot = td_compile(c->g, outs, n + 1, &co);
    }
    free(outs), free(bind);
    return *slot;
}

enum td_status td_curv_op_loss(struct td_curv_op *c, double *loss, float *grad)
{
    struct td_plan *plan = value_plan(c, grad != NULL);
    if (!plan) return graph_err(c->g, c->err, sizeof(c->err));
    if (td_run(plan, c->feeds, c->n_feeds) != TD_OK)
        return td_io_errf(TD_ERR_BACKEND, c->err, sizeof(c->err), "curvature loss: %s",
                          td_plan_error(plan));
    *loss = td_plan_output(plan, 0)[0];
    if (grad) memcpy(grad, c->grad_buf, c->p->total * sizeof(float));
    return TD_OK;
}
