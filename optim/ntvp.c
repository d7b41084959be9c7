#include "optim/ntvp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "io/ioutil.h"
#include "optim/ntk_impl.h"

static enum td_status graph_err(struct td_graph *g, char *err, size_t errlen)
{
    enum td_status st = td_graph_status(g);
    return td_io_errf(st != TD_OK ? st : TD_ERR_NOMEM, err, errlen, "NTK-vector products: %s",
                      st != TD_OK ? td_graph_error(g) : "out of memory");
}

enum td_status td_ntvp_core_init(struct td_ntvp_core *c, const struct td_tangent_model *m,
                                 int64_t batch, const struct td_param_select *sel, int want_both,
                                 int num_threads, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    enum td_status st = td_tinst_init(&c->inst, m, batch, sel, err, errlen);
    if (st != TD_OK) return st;
    struct td_graph *g = c->inst.g;
    struct td_params *p = td_graph_params(g);
    int n = c->inst.n_sel;
    struct td_node *f = c->inst.net.output;
    struct td_node **w = malloc((size_t)n * sizeof(*w)), **u = malloc((size_t)n * sizeof(*u));
    struct td_node **d = malloc((size_t)n * sizeof(*d));
    struct td_binding *bind = malloc((size_t)n * sizeof(*bind));
    struct td_node *jf = NULL, *jf2 = NULL;
    if (!w || !u || !d || !bind) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        w[i] = p->info[c->inst.sel[i]].node;
        d[i] = td_graph_dir_input(g, c->inst.sel[i]);
    }
    c->seed = td_input(g, "ntvp_seed", *td_node_shape(f), TD_F32);
    if (td_graph_status(g) != TD_OK || td_vjp(g, f, c->seed, w, n, u) != TD_OK ||
        td_jvp(g, w, d, n, &f, 1, &jf) != TD_OK ||
        (want_both && td_jvp(g, w, u, n, &f, 1, &jf2) != TD_OK)) {
        st = graph_err(g, err, errlen);
        goto done;
    }
    for (int i = 0; i < n; i++)
        bind[i] = (struct td_binding){u[i], p->dir + p->info[c->inst.sel[i]].offset};
    struct td_compile_options co = {.num_threads = num_threads, .bindings = bind, .n_bindings = n};
    c->vjp = td_compile(g, u, n, &co);
    co.bindings = NULL, co.n_bindings = 0;
    c->jvp = c->vjp ? td_compile(g, &jf, 1, &co) : NULL;
    c->both = c->jvp && want_both ? td_compile(g, &jf2, 1, &co) : NULL;
    if (!c->vjp || !c->jvp || (want_both && !c->both)) st = graph_err(g, err, errlen);
done:
    free(w), free(u), free(d), free(bind);
    return st;
}

void td_ntvp_core_free(struct td_ntvp_core *c)
{
    td_plan_free(c->vjp);
    td_plan_free(c->jvp);
    td_plan_free(c->both);
    if (c->inst.g) td_tinst_free(&c->inst);
    memset(c, 0, sizeof(*c));
}

enum td_status td_ntvp_core_run(struct td_ntvp_core *c, struct td_plan *plan,
                                const struct td_feed *feeds, const float *seed, char *err,
                                size_t errlen)
{
    struct td_feed all[TD_TANGENT_MAX_INPUTS + 1];
    int n = c->inst.net.n_inputs;
    memcpy(all, feeds, (size_t)n * sizeof(*all));
    if (seed) all[n++] = (struct td_feed){c->seed, seed};
    if (td_run(plan, all, n) != TD_OK)
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "NTK-vector product: %s",
                          td_plan_error(plan));
    return TD_OK;
}

struct td_ntvp {
    struct td_ntvp_core c1, c2; /* c2 unused when X2 is X1 or has X1's size */
    struct td_tangent_data x1, x2;
    int same;                   /* X2 is X1: one plan */
    struct td_ntvp_core *vside; /* the build the VJP runs on */
    char err[TD_MSG_MAX];
};

struct td_ntvp *td_ntvp_new(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                            const struct td_tangent_data *x2, const struct td_param_select *sel,
                            int num_threads, char *err, size_t errlen)
{
    if (!x1 || x1->n < 1 || (x2 && x2->n < 1)) {
        td_io_errf(TD_ERR_ARG, err, errlen, "NTK-vector products: no samples");
        return NULL;
    }
    struct td_ntvp *t = calloc(1, sizeof(*t));
    if (!t) {
        td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        return NULL;
    }
    t->x1 = *x1;
    t->x2 = x2 ? *x2 : *x1;
    t->same = !x2 || !memcmp(x1, x2, sizeof(*x1));
    enum td_status st = td_ntvp_core_init(&t->c1, m, x1->n, sel, t->same, num_threads, err, errlen);
    t->vside = &t->c1;
    if (st == TD_OK && t->x2.n != x1->n) {
        st = td_ntvp_core_init(&t->c2, m, t->x2.n, sel, 0, num_threads, err, errlen);
        t->vside = &t->c2;
    }
    if (st != TD_OK) {
        td_ntvp_free(t);
        return NULL;
    }
    return t;
}

void td_ntvp_free(struct td_ntvp *t)
{
    if (!t) return;
    td_ntvp_core_free(&t->c1);
    td_ntvp_core_free(&t->c2);
    free(t);
}

int64_t td_ntvp_rows(const struct td_ntvp *t)
{
    return t->x1.n * t->c1.inst.K;
}

int64_t td_ntvp_cols(const struct td_ntvp *t)
{
    return t->x2.n * t->c1.inst.K;
}

size_t td_ntvp_params(const struct td_ntvp *t)
{
    return t->c1.inst.sel_total;
}

const char *td_ntvp_error(const struct td_ntvp *t)
{
    return t->err;
}

/* Copies the selected parameters' slices between a store block and a
 * packed vector (to_packed 1: store -> packed). */
static void pack(const struct td_tinst *in, float *block, float *packed, int to_packed)
{
    const struct td_params *p = td_graph_params(in->g);
    size_t at = 0;
    for (int i = 0; i < in->n_sel; i++) {
        const struct td_param_info *pi = &p->info[in->sel[i]];
        if (to_packed)
            memcpy(packed + at, block + pi->offset, pi->numel * sizeof(float));
        else
            memcpy(block + pi->offset, packed + at, pi->numel * sizeof(float));
        at += pi->numel;
    }
}

static enum td_status vjp_into_dir(struct td_ntvp *t, const float *v)
{
    struct td_ntvp_core *c = t->vside;
    const struct td_feed *f = td_tinst_feed(&c->inst, &t->x2, 0, t->x2.n, 1);
    enum td_status st = td_ntvp_core_run(c, c->vjp, f, v, t->err, sizeof(t->err));
    if (st == TD_OK && c != &t->c1) {
        /* The JVP build reads its own dir block: move u across. */
        struct td_params *from = td_graph_params(c->inst.g), *to = td_graph_params(t->c1.inst.g);
        memcpy(to->dir, from->dir, to->total * sizeof(float));
    }
    return st;
}

enum td_status td_ntvp_vjp(struct td_ntvp *t, const float *v, float *u)
{
    enum td_status st = vjp_into_dir(t, v);
    if (st == TD_OK) pack(&t->c1.inst, td_graph_params(t->c1.inst.g)->dir, u, 1);
    return st;
}

enum td_status td_ntvp_jvp(struct td_ntvp *t, const float *u, float *out)
{
    pack(&t->c1.inst, td_graph_params(t->c1.inst.g)->dir, (float *)u, 0);
    const struct td_feed *f = td_tinst_feed(&t->c1.inst, &t->x1, 0, t->x1.n, 1);
    enum td_status st = td_ntvp_core_run(&t->c1, t->c1.jvp, f, NULL, t->err, sizeof(t->err));
    if (st == TD_OK)
        memcpy(out, td_plan_output(t->c1.jvp, 0), (size_t)td_ntvp_rows(t) * sizeof(float));
    return st;
}

enum td_status td_ntvp_apply(struct td_ntvp *t, const float *v, float *out)
{
    struct td_plan *plan = t->same ? t->c1.both : t->c1.jvp;
    enum td_status st = TD_OK;
    const struct td_feed *f;
    if (t->same) {
        f = td_tinst_feed(&t->c1.inst, &t->x1, 0, t->x1.n, 1);
        st = td_ntvp_core_run(&t->c1, plan, f, v, t->err, sizeof(t->err));
    } else {
        st = vjp_into_dir(t, v);
        f = td_tinst_feed(&t->c1.inst, &t->x1, 0, t->x1.n, 1);
        if (st == TD_OK) st = td_ntvp_core_run(&t->c1, plan, f, NULL, t->err, sizeof(t->err));
    }
    if (st == TD_OK) memcpy(out, td_plan_output(plan, 0), (size_t)td_ntvp_rows(t) * sizeof(float));
    return st;
}
