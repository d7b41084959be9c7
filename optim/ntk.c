/* The NTK driver: checks the arguments, analyses the model on a small
 * probe build, estimates the three methods, picks one and a tile size, and
 * computes the kernel tile by tile into the caller's sink. */
#include "optim/ntk.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/autodiff.h"
#include "io/ioutil.h"
#include "optim/ntk_cost.h"
#include "optim/ntk_impl.h"

#define DEFAULT_MEMORY ((size_t)1 << 30)
#define PROBE_BATCH 2

static const char *const method_names[] = {"auto", "jacobian", "ntvp", "structured"};

const char *td_ntk_method_name(enum td_ntk_method m)
{
    return m >= TD_NTK_AUTO && m <= TD_NTK_STRUCTURED ? method_names[m] : "?";
}

int td_ntk_method_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, method_names[i])) return i;
    return -1;
}

/* Everything planning decides. */
struct ntk_plan {
    struct td_ntk_shape shape;
    struct td_tinst probe;
    struct td_ntk_structure st[4]; /* jacobian's and structured's */
    int64_t tile[4], seeds;
    double flops[4], bytes[4];
    enum td_ntk_method method;
    size_t budget;
    struct td_tangent_data x1, x2;
};

static void plan_free(struct ntk_plan *p)
{
    for (int m = 0; m < 4; m++) td_ntk_structure_free(&p->st[m]);
    if (p->probe.g) td_tinst_free(&p->probe);
}

static int same_samples(const struct td_tangent_data *a, const struct td_tangent_data *b, int n_in)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < n_in; i++)
        if (a->x[i] != b->x[i]) return 0;
    return 1;
}

/* Bytes and nodes of one sample's backward pass to every selected
 * parameter, from a plan compiled on the probe build. */
static enum td_status pass_size(struct td_tinst *t, double *bytes, double *nodes, char *err,
                                size_t errlen)
{
    struct td_graph *g = t->g;
    struct td_params *p = td_graph_params(g);
    struct td_node *f = t->net.output;
    struct td_node **w = malloc((size_t)t->n_sel * sizeof(*w));
    struct td_node **u = malloc((size_t)t->n_sel * sizeof(*u));
    enum td_status st = TD_OK;
    if (!w || !u) {
        free(w), free(u);
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    }
    for (int i = 0; i < t->n_sel; i++) w[i] = p->info[t->sel[i]].node;
    struct td_node *seed = td_input(g, "ntk_probe_seed", *td_node_shape(f), TD_F32);
    struct td_plan *plan = NULL;
    if (seed && td_vjp(g, f, seed, w, t->n_sel, u) == TD_OK) {
        struct td_compile_options co = {.num_threads = 1};
        plan = td_compile(g, u, t->n_sel, &co);
    }
    if (!plan) {
        st =
            td_io_errf(TD_ERR_ARG, err, errlen, "differentiating the model: %s", td_graph_error(g));
    } else {
        struct td_plan_stats s;
        td_plan_get_stats(plan, &s);
        *bytes = (double)s.arena_bytes / PROBE_BATCH;
        *nodes = s.num_nodes;
    }
    td_plan_free(plan);
    free(w), free(u);
    return st;
}

/* The largest tile (and, for structured, backward passes per plan) of
 * method m within the budget; 0 when even one sample does not fit. */
static int64_t fit_tile(struct ntk_plan *p, const struct td_ntk_options *o, enum td_ntk_method m,
                        int64_t *seeds)
{
    const struct td_ntk_shape *s = &p->shape;
    int64_t nmax = s->diagonal || s->n2 < s->n1 ? s->n1 : s->n2;
    int64_t b = o->tile > 0 && o->tile < nmax ? o->tile : nmax;
    struct td_ntk_structure *st = &p->st[m == TD_NTK_NTVP ? TD_NTK_JACOBIAN : m];
    for (;;) {
        int64_t c = 1;
        if (m != TD_NTK_NTVP) td_ntk_choose_routes(st, s->K, b, s->trace, p->budget / 4);
        if (m == TD_NTK_STRUCTURED && st->n_uses > 0) {
            c = s->K < TD_NTK_MAX_SEEDS ? s->K : TD_NTK_MAX_SEEDS;
            while (c > 1 && td_ntk_cost_bytes(s, st, m, b, c) > (double)p->budget) c = (c + 1) / 2;
        }
        if (td_ntk_cost_bytes(s, st, m, b, c) <= (double)p->budget) {
            if (seeds) *seeds = c;
            return b;
        }
        if (o->tile > 0 || b == 1) return 0;
        b = (b + 1) / 2;
    }
}

static void human_bytes(double b, char *buf, size_t n)
{
    if (b >= 1 << 30)
        snprintf(buf, n, "%.2f GiB", b / (1 << 30));
    else if (b >= 1 << 20)
        snprintf(buf, n, "%.1f MiB", b / (1 << 20));
    else if (b >= 1 << 10)
        snprintf(buf, n, "%.0f KiB", b / 1024);
    else
        snprintf(buf, n, "%.0f B", b);
}

static enum td_status plan_ntk(struct ntk_plan *p, const struct td_tangent_model *m,
                               const struct td_tangent_data *x1, const struct td_tangent_data *x2,
                               const struct td_ntk_options *o, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!m || !x1 || !o) return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: NULL argument");
    if (x1->n < 1 || (x2 && x2->n < 1))
        return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: a sample set is empty");
    if (o->method < TD_NTK_AUTO || o->method > TD_NTK_STRUCTURED)
        return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: unknown method %d", (int)o->method);
    if (o->jacobian < TD_NTK_JAC_AUTO || o->jacobian > TD_NTK_JAC_COLUMNS)
        return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: unknown Jacobian route %d",
                          (int)o->jacobian);
    p->x1 = *x1;
    p->x2 = x2 ? *x2 : *x1;
    if (o->diagonal && p->x2.n != x1->n)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "ntk: the diagonal needs as many samples on both sides (%lld and %lld)",
                          (long long)x1->n, (long long)p->x2.n);
    p->budget = o->memory ? o->memory : DEFAULT_MEMORY;
    enum td_status st = td_tinst_init(&p->probe, m, PROBE_BATCH, &o->params, err, errlen);
    if (st != TD_OK) return st;
    for (int i = 0; i < p->probe.net.n_inputs; i++)
        if (!x1->x[i] || !p->x2.x[i])
            return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: no samples for the model's input %d",
                              i);
    struct td_ntk_shape *s = &p->shape;
    *s = (struct td_ntk_shape){
        .n1 = x1->n,
        .n2 = p->x2.n,
        .K = p->probe.K,
        .symmetric = !x2 || same_samples(x1, x2, p->probe.net.n_inputs),
        .jacobian = o->jacobian,
        .trace = o->trace != 0,
        .diagonal = o->diagonal != 0,
        .params = p->probe.sel_total,
        .flops_per_sample = td_tinst_flops_per_sample(&p->probe),
    };
    st = td_ntk_find_structure(&p->probe, 1, &p->st[TD_NTK_JACOBIAN]);
    if (st == TD_OK) st = td_ntk_find_structure(&p->probe, 0, &p->st[TD_NTK_STRUCTURED]);
    if (st != TD_OK) return td_io_errf(st, err, errlen, "out of memory");
    st = pass_size(&p->probe, &s->pass_bytes_per_sample, &s->nodes_per_pass, err, errlen);
    if (st != TD_OK) return st;
    int64_t seeds = 1;
    for (int k = TD_NTK_JACOBIAN; k <= TD_NTK_STRUCTURED; k++) {
        int64_t c = 1;
        p->tile[k] = fit_tile(p, o, (enum td_ntk_method)k, &c);
        int64_t b = p->tile[k] ? p->tile[k] : 1;
        struct td_ntk_structure *sk = &p->st[k == TD_NTK_NTVP ? TD_NTK_JACOBIAN : k];
        if (k != TD_NTK_NTVP) td_ntk_choose_routes(sk, s->K, b, s->trace, p->budget / 4);
        p->flops[k] = td_ntk_cost_flops(s, sk, (enum td_ntk_method)k, b, c);
        p->bytes[k] = td_ntk_cost_bytes(s, sk, (enum td_ntk_method)k, b, c);
        if (k == TD_NTK_STRUCTURED) seeds = c;
    }
    p->method = o->method;
    if (p->method == TD_NTK_AUTO) {
        for (int k = TD_NTK_JACOBIAN; k <= TD_NTK_STRUCTURED; k++)
            if (p->tile[k] && (p->method == TD_NTK_AUTO || p->flops[k] < p->flops[p->method]))
                p->method = (enum td_ntk_method)k;
    }
    if (p->method == TD_NTK_AUTO || !p->tile[p->method]) {
        enum td_ntk_method k = p->method == TD_NTK_AUTO ? TD_NTK_STRUCTURED : p->method;
        char need[32], have[32];
        human_bytes(p->bytes[k], need, sizeof(need));
        human_bytes((double)p->budget, have, sizeof(have));
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "ntk: the memory budget of %s is too small for one tile of %s%lld "
                          "sample%s (the %s method needs %s)",
                          have, o->tile > 0 ? "" : "even ", (long long)(o->tile > 0 ? o->tile : 1),
                          o->tile > 1 ? "s" : "", td_ntk_method_name(k), need);
    }
    /* Leave the chosen method's routes as planned for its tile. */
    if (p->method != TD_NTK_NTVP)
        td_ntk_choose_routes(&p->st[p->method], s->K, p->tile[p->method], s->trace, p->budget / 4);
    p->seeds = p->method == TD_NTK_STRUCTURED ? seeds : 1;
    return TD_OK;
}

static void fill_report(const struct ntk_plan *p, struct td_ntk_report *r)
{
    if (!r) return;
    memset(r, 0, sizeof(*r));
    const struct td_ntk_shape *s = &p->shape;
    r->method = p->method;
    for (int k = 1; k < 4; k++) {
        r->flops[k] = p->flops[k];
        r->bytes[k] = p->bytes[k];
        r->tile[k] = p->tile[k];
    }
    r->n1 = s->n1;
    r->n2 = s->n2;
    r->K = s->K;
    r->params = s->params;
    r->symmetric = s->symmetric;
    const struct td_ntk_structure *st = &p->st[TD_NTK_STRUCTURED];
    for (int i = 0; i < st->n_uses; i++) {
        if (st->uses[i].route == TD_ROUTE_FACTORED)
            r->uses_factored++;
        else
            r->uses_explicit++;
    }
    r->fallback_params = st->n_fallback;
    int64_t b = p->tile[TD_NTK_STRUCTURED] ? p->tile[TD_NTK_STRUCTURED] : 1;
    const char *route = td_ntk_fallback_columns(s, st->fallback_elems, b) ? "columns" : "rows";
    snprintf(r->why, sizeof(r->why),
             "estimated GFLOP: jacobian %.3g, ntvp %.3g, structured %.3g; structure: %d "
             "parameter uses factored, %d as per-sample gradients, %d parameters by Jacobian %s",
             p->flops[1] / 1e9, p->flops[2] / 1e9, p->flops[3] / 1e9, r->uses_factored,
             r->uses_explicit, r->fallback_params, route);
}

enum td_status td_ntk_plan(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                           const struct td_tangent_data *x2, const struct td_ntk_options *o,
                           struct td_ntk_report *r, char *err, size_t errlen)
{
    struct ntk_plan p;
    enum td_status st = plan_ntk(&p, m, x1, x2, o, err, errlen);
    if (st == TD_OK) fill_report(&p, r);
    plan_free(&p);
    return st;
}

/* ---- execution ---- */

/* X2's side data per tile, kept when they all fit the budget's spare room. */
struct side_cache {
    struct td_ntk_side *side;
    unsigned char *ready;
    int64_t n;
};

/* A planned computation: the builds, plans and buffers of its method, kept
 * for runs on other samples of the same sizes. */
struct td_ntk {
    struct ntk_plan plan;
    const struct ntk_plan *p; /* &plan */
    struct td_ntk_options opts;
    const struct td_ntk_options *o; /* &opts */
    const struct td_tangent_model *m;
    int64_t K, b, t1, t2;
    double *acc; /* [(n,k),(m,l)], [n][m], [n][k][l] or [n] */
    float *tile; /* the sink's copy */
    float *mirror;
    double sink_seconds;
    int64_t done, total;
    /* jacobian and structured */
    struct td_ntk_passes ps;
    struct td_ntk_side a, bside;
    struct side_cache cache;
    struct td_ntk_work work;
    /* ntvp */
    struct td_ntvp_core core;
    float *seed;
};

static int64_t acc_elems(const struct td_ntk *r, int64_t ni, int64_t nj)
{
    const struct td_ntk_shape *s = &r->p->shape;
    int64_t e = s->diagonal ? ni : ni * nj;
    return s->trace ? e : e * r->K * r->K;
}

static enum td_status deliver(struct td_ntk *r, int64_t i0, int64_t ni, int64_t j0, int64_t nj,
                              const float *data, char *err, size_t errlen)
{
    double t0 = omp_get_wtime();
    struct td_ntk_tile t = {i0, ni, j0, nj, data};
    enum td_status st = r->o->sink(r->o->sink_ctx, &t, err, errlen);
    r->sink_seconds += omp_get_wtime() - t0;
    return st;
}

/* Converts the accumulator to the output layout and hands it (and its
 * mirror image for a symmetric kernel below the diagonal) to the sink.
 * With `lower` (a tile of the same samples on both sides) only the lower
 * triangle of the accumulator, in (sample, output) order, is read, which
 * makes the tile exactly symmetric. Blocks of 64 keep the transposed reads
 * in cache. */
static enum td_status emit(struct td_ntk *r, int64_t i0, int64_t ni, int64_t j0, int64_t nj,
                           int lower, char *err, size_t errlen)
{
    const struct td_ntk_shape *s = &r->p->shape;
    const int64_t K = s->trace ? 1 : r->K, e = acc_elems(r, ni, nj);
    if (s->diagonal) {
        for (int64_t i = 0; i < e; i++) r->tile[i] = (float)r->acc[i];
    } else {
        /* acc [(n,k),(m,l)] -> tile [n][m][k][l]; with `lower`, only the
         * lower triangle in (sample, output) order is read and mirrored. */
        const int64_t cols = nj * K;
        float *out = r->tile;
        const double *acc = r->acc;
        const int team = td_ntk_team(r->o->num_threads, (double)(ni * K) * (double)cols);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
        for (int64_t n = 0; n < ni; n++)
            for (int64_t k = 0; k < K; k++) {
                const double *row = acc + (n * K + k) * cols;
                for (int64_t m = 0; m < (lower ? n + 1 : nj); m++) {
                    float *blk = out + ((n * nj + m) * K + k) * K;
                    for (int64_t l = 0; l < K; l++) blk[l] = (float)row[m * K + l];
                }
            }
        if (lower) {
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
            for (int64_t n = 0; n < ni; n++)
                for (int64_t m = 0; m <= n; m++) {
                    float *src = out + (n * nj + m) * K * K, *dst = out + (m * nj + n) * K * K;
                    for (int64_t k = 0; k < K; k++)
                        for (int64_t l = m == n ? k + 1 : 0; l < K; l++)
                            if (m == n)
                                src[k * K + l] = src[l * K + k];
                            else
                                dst[l * K + k] = src[k * K + l];
                }
        }
    }
    enum td_status st = deliver(r, i0, ni, j0, nj, r->tile, err, errlen);
    if (st != TD_OK || s->diagonal || !s->symmetric || i0 == j0) return st;
    const int64_t kk = K * K;
    for (int64_t n = 0; n < ni; n++)
        for (int64_t m = 0; m < nj; m++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t l = 0; l < K; l++)
                    r->mirror[(m * ni + n) * kk + l * K + k] =
                        r->tile[(n * nj + m) * kk + k * K + l];
    return deliver(r, j0, nj, i0, ni, r->mirror, err, errlen);
}

static void progress(struct td_ntk *r)
{
    r->done++;
    if (r->o->progress) r->o->progress(r->o->progress_ctx, (double)r->done / (double)r->total);
}

/* The builds and buffers of the jacobian and structured methods. */
static enum td_status rows_init(struct td_ntk *r, char *err, size_t errlen)
{
    const struct ntk_plan *p = r->p;
    const struct td_ntk_shape *s = &p->shape;
    const struct td_ntk_structure *st = &p->st[p->method];
    const int64_t cols = td_ntk_fallback_columns(s, st->fallback_elems, r->b);
    enum td_status rc = td_ntk_passes_init(&r->ps, r->m, &r->o->params, &p->probe, st, r->K, r->b,
                                           p->seeds, cols, r->o->num_threads, err, errlen);
    if (rc == TD_OK && (td_ntk_side_alloc(&r->a, st, r->K, r->b) != TD_OK ||
                        td_ntk_side_alloc(&r->bside, st, r->K, r->b) != TD_OK))
        rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    size_t side_bytes = td_ntk_side_bytes(st, r->K, r->b);
    if (rc == TD_OK && !s->diagonal && !s->symmetric && r->t1 > 1 && r->t2 > 1 &&
        (double)r->t2 * (double)side_bytes + p->bytes[p->method] <= (double)p->budget) {
        r->cache.side = calloc((size_t)r->t2, sizeof(*r->cache.side));
        r->cache.ready = calloc((size_t)r->t2, 1);
        if (r->cache.side && r->cache.ready) r->cache.n = r->t2;
    }
    return rc;
}

static void rows_free(struct td_ntk *r)
{
    const struct td_ntk_structure *st = &r->p->st[r->p->method];
    for (int64_t J = 0; J < r->cache.n; J++) td_ntk_side_free(&r->cache.side[J], st);
    free(r->cache.side), free(r->cache.ready);
    td_ntk_work_free(&r->work);
    td_ntk_side_free(&r->a, st);
    td_ntk_side_free(&r->bside, st);
    td_ntk_passes_free(&r->ps);
}

static enum td_status rows_method(struct td_ntk *r, char *err, size_t errlen)
{
    const struct ntk_plan *p = r->p;
    const struct td_ntk_shape *s = &p->shape;
    const struct td_ntk_structure *st = &p->st[p->method];
    const int nt = r->o->num_threads;
    struct td_ntk_passes *ps = &r->ps;
    struct td_ntk_side *a = &r->a, *b = &r->bside;
    struct side_cache *cache = &r->cache;
    const int64_t t1 = r->t1, t2 = r->t2;
    enum td_status rc = TD_OK;
    for (int64_t J = 0; J < cache->n; J++) cache->ready[J] = 0;
    for (int64_t I = 0; I < t1 && rc == TD_OK; I++) {
        const int64_t i0 = I * r->b, ni = s->n1 - i0 < r->b ? s->n1 - i0 : r->b;
        rc = td_ntk_passes_run(ps, st, &p->x1, i0, ni, a, err, errlen);
        if (rc == TD_OK && s->diagonal) {
            const struct td_ntk_side *bs = a;
            if (!s->symmetric) {
                rc = td_ntk_passes_run(ps, st, &p->x2, i0, ni, b, err, errlen);
                bs = b;
            }
            memset(r->acc, 0, (size_t)acc_elems(r, ni, ni) * sizeof(double));
            if (rc == TD_OK && td_ntk_contract_diag(st, r->K, a, bs, s->trace, nt, r->acc))
                rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
            if (rc == TD_OK) rc = emit(r, i0, ni, i0, ni, 0, err, errlen);
            progress(r);
            continue;
        }
        for (int64_t J = 0; J < (s->symmetric ? I + 1 : t2) && rc == TD_OK; J++) {
            const int64_t j0 = J * r->b, nj = s->n2 - j0 < r->b ? s->n2 - j0 : r->b;
            const struct td_ntk_side *bs = b;
            if (s->symmetric && J == I) {
                bs = a;
            } else if (cache->n) {
                if (!cache->ready[J]) {
                    if (td_ntk_side_alloc(&cache->side[J], st, r->K, r->b) != TD_OK)
                        rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
                    if (rc == TD_OK)
                        rc =
                            td_ntk_passes_run(ps, st, &p->x2, j0, nj, &cache->side[J], err, errlen);
                    cache->ready[J] = rc == TD_OK;
                }
                bs = &cache->side[J];
            } else {
                rc = td_ntk_passes_run(ps, st, &p->x2, j0, nj, b, err, errlen);
            }
            if (rc != TD_OK) break;
            const int lower = s->symmetric && J == I;
            memset(r->acc, 0, (size_t)acc_elems(r, ni, nj) * sizeof(double));
            if (td_ntk_contract(st, r->K, a, bs, s->trace, lower, nt, &r->work, r->acc)) {
                rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
                break;
            }
            rc = emit(r, i0, ni, j0, nj, lower, err, errlen);
            progress(r);
        }
    }
    return rc;
}

/* Columns (m, l) of a tile pair by NTK-vector products into the accumulator. */
static enum td_status ntvp_pair(struct td_ntk *r, struct td_ntvp_core *c, float *seed, int64_t i0,
                                int64_t ni, int64_t j0, int64_t nj, char *err, size_t errlen)
{
    const struct td_ntk_shape *s = &r->p->shape;
    const int64_t K = r->K, b = r->b;
    const int both = s->symmetric && i0 == j0;
    enum td_status rc = TD_OK;
    for (int64_t m = 0; m < nj && rc == TD_OK; m++)
        for (int64_t l = 0; l < K && rc == TD_OK; l++) {
            memset(seed, 0, (size_t)(b * K) * sizeof(float));
            seed[m * K + l] = 1.0f;
            struct td_plan *plan = both ? c->both : c->jvp;
            if (both) {
                rc = td_ntvp_core_run(c, plan, td_tinst_feed(&c->inst, &r->p->x1, i0, ni, 1), seed,
                                      err, errlen);
            } else {
                rc = td_ntvp_core_run(c, c->vjp, td_tinst_feed(&c->inst, &r->p->x2, j0, nj, 1),
                                      seed, err, errlen);
                if (rc == TD_OK)
                    rc = td_ntvp_core_run(c, plan, td_tinst_feed(&c->inst, &r->p->x1, i0, ni, 1),
                                          NULL, err, errlen);
            }
            if (rc != TD_OK) break;
            const float *col = td_plan_output(plan, 0);
            if (s->diagonal) {
                for (int64_t k = 0; k < K; k++)
                    if (!s->trace)
                        r->acc[(m * K + k) * K + l] = col[m * K + k];
                    else if (k == l)
                        r->acc[m] += col[m * K + k];
            } else if (s->trace) {
                for (int64_t n = 0; n < ni; n++) r->acc[n * nj + m] += col[n * K + l];
            } else {
                for (int64_t n = 0; n < ni; n++)
                    for (int64_t k = 0; k < K; k++)
                        r->acc[(n * K + k) * (nj * K) + m * K + l] = col[n * K + k];
            }
        }
    return rc;
}

static enum td_status ntvp_init(struct td_ntk *r, char *err, size_t errlen)
{
    enum td_status rc = td_ntvp_core_init(&r->core, r->m, r->b, &r->o->params,
                                          r->p->shape.symmetric, r->o->num_threads, err, errlen);
    r->seed = malloc((size_t)(r->b * r->K) * sizeof(float));
    if (rc == TD_OK && !r->seed) rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    return rc;
}

static enum td_status ntvp_method(struct td_ntk *r, char *err, size_t errlen)
{
    const struct td_ntk_shape *s = &r->p->shape;
    enum td_status rc = TD_OK;
    const int64_t t1 = r->t1, t2 = r->t2;
    for (int64_t I = 0; I < t1 && rc == TD_OK; I++) {
        const int64_t i0 = I * r->b, ni = s->n1 - i0 < r->b ? s->n1 - i0 : r->b;
        int64_t jlast = s->diagonal ? I + 1 : (s->symmetric ? I + 1 : t2);
        for (int64_t J = s->diagonal ? I : 0; J < jlast && rc == TD_OK; J++) {
            const int64_t j0 = J * r->b, nj = s->n2 - j0 < r->b ? s->n2 - j0 : r->b;
            memset(r->acc, 0, (size_t)acc_elems(r, ni, nj) * sizeof(double));
            rc = ntvp_pair(r, &r->core, r->seed, i0, ni, j0, nj, err, errlen);
            const int lower = s->symmetric && !s->diagonal && I == J;
            if (rc == TD_OK) rc = emit(r, i0, ni, j0, nj, lower, err, errlen);
            progress(r);
        }
    }
    return rc;
}

void td_ntk_free(struct td_ntk *k)
{
    if (!k) return;
    if (k->p->method == TD_NTK_NTVP) {
        td_ntvp_core_free(&k->core);
        free(k->seed);
    } else if (k->p->method != TD_NTK_AUTO) {
        rows_free(k);
    }
    free(k->acc), free(k->tile), free(k->mirror);
    plan_free(&k->plan);
    free(k);
}

enum td_status td_ntk_new(struct td_ntk **out, const struct td_tangent_model *m,
                          const struct td_tangent_data *x1, const struct td_tangent_data *x2,
                          const struct td_ntk_options *o, struct td_ntk_report *report, char *err,
                          size_t errlen)
{
    *out = NULL;
    struct td_ntk *k = calloc(1, sizeof(*k));
    if (!k) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    k->p = &k->plan;
    k->o = &k->opts;
    enum td_status rc = o ? TD_OK : td_io_errf(TD_ERR_ARG, err, errlen, "ntk: NULL options");
    if (rc == TD_OK) {
        k->opts = *o;
        k->m = m;
        rc = plan_ntk(&k->plan, m, x1, x2, o, err, errlen);
    }
    if (rc != TD_OK) {
        plan_free(&k->plan);
        free(k);
        return rc;
    }
    const struct td_ntk_shape *s = &k->p->shape;
    k->K = s->K;
    k->b = k->p->tile[k->p->method];
    k->t1 = (s->n1 + k->b - 1) / k->b;
    k->t2 = (s->n2 + k->b - 1) / k->b;
    k->total = s->diagonal ? k->t1 : s->symmetric ? k->t1 * (k->t1 + 1) / 2 : k->t1 * k->t2;
    int64_t e = acc_elems(k, k->b, k->b);
    k->acc = td_alloc_large((size_t)e * sizeof(double));
    k->tile = td_alloc_large((size_t)e * sizeof(float));
    /* Mirror images exist only below the diagonal of a symmetric kernel. */
    const int mirrored = s->symmetric && !s->diagonal && k->t1 > 1;
    if (mirrored) k->mirror = td_alloc_large((size_t)e * sizeof(float));
    if (!k->acc || !k->tile || (mirrored && !k->mirror))
        rc = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory for a tile of %lld samples",
                        (long long)k->b);
    if (rc == TD_OK)
        rc = k->p->method == TD_NTK_NTVP ? ntvp_init(k, err, errlen) : rows_init(k, err, errlen);
    if (rc != TD_OK) {
        td_ntk_free(k);
        return rc;
    }
    fill_report(k->p, report);
    *out = k;
    return TD_OK;
}

/* Every build reads the model's current parameter values. */
static void refresh_values(struct td_ntk *k)
{
    struct td_tinst *inst[4] = {&k->ps.multi, &k->ps.one, &k->ps.colb, &k->core.inst};
    for (int i = 0; i < 4; i++) td_tinst_refresh(inst[i], k->m);
}

enum td_status td_ntk_run(struct td_ntk *k, const struct td_tangent_data *x1,
                          const struct td_tangent_data *x2, struct td_ntk_report *report, char *err,
                          size_t errlen)
{
    struct ntk_plan *p = &k->plan;
    const struct td_ntk_shape *s = &p->shape;
    if (!k->o->sink) return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: no sink");
    if (!x1 || x1->n != s->n1 || (x2 ? x2->n : x1->n) != s->n2 ||
        (!x2 || same_samples(x1, x2, p->probe.net.n_inputs)) != s->symmetric)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "ntk: a run needs sample sets of the sizes planned (%lld and %lld%s)",
                          (long long)s->n1, (long long)s->n2,
                          s->symmetric ? ", the same samples on both sides" : "");
    double t0 = omp_get_wtime();
    p->x1 = *x1;
    p->x2 = x2 ? *x2 : *x1;
    k->sink_seconds = 0;
    k->done = 0;
    refresh_values(k);
    enum td_status rc =
        p->method == TD_NTK_NTVP ? ntvp_method(k, err, errlen) : rows_method(k, err, errlen);
    if (rc == TD_OK && report) {
        fill_report(p, report);
        report->seconds = omp_get_wtime() - t0 - k->sink_seconds;
    }
    return rc;
}

enum td_status td_ntk_compute(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                              const struct td_tangent_data *x2, const struct td_ntk_options *o,
                              struct td_ntk_report *report, char *err, size_t errlen)
{
    if (o && !o->sink) return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: no sink");
    double t0 = omp_get_wtime();
    struct td_ntk *k;
    enum td_status rc = td_ntk_new(&k, m, x1, x2, o, NULL, err, errlen);
    if (rc != TD_OK) return rc;
    rc = td_ntk_run(k, x1, x2, report, err, errlen);
    if (rc == TD_OK && report) report->seconds = omp_get_wtime() - t0 - k->sink_seconds;
    td_ntk_free(k);
    return rc;
}

struct dense_sink {
    float *out;
    int64_t n2, K;
    int trace, diagonal;
};

static enum td_status dense_put(void *ctx, const struct td_ntk_tile *t, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    const struct dense_sink *d = ctx;
    const int64_t kk = d->trace ? 1 : d->K * d->K;
    if (d->diagonal) {
        memcpy(d->out + t->i0 * kk, t->data, (size_t)(t->ni * kk) * sizeof(float));
        return TD_OK;
    }
    for (int64_t n = 0; n < t->ni; n++)
        memcpy(d->out + ((t->i0 + n) * d->n2 + t->j0) * kk, t->data + n * t->nj * kk,
               (size_t)(t->nj * kk) * sizeof(float));
    return TD_OK;
}

enum td_status td_ntk_dense(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                            const struct td_tangent_data *x2, const struct td_ntk_options *o,
                            float *out, struct td_ntk_report *r, char *err, size_t errlen)
{
    if (!o || !out) return td_io_errf(TD_ERR_ARG, err, errlen, "ntk: NULL argument");
    /* K is known once planned; the sink reads it from d at each tile. */
    struct dense_sink d = {out, 0, 0, o->trace, o->diagonal};
    struct td_ntk_options oo = *o;
    oo.sink = dense_put;
    oo.sink_ctx = &d;
    struct td_ntk_report rep;
    struct td_ntk *k;
    double t0 = omp_get_wtime();
    enum td_status st = td_ntk_new(&k, m, x1, x2, &oo, &rep, err, errlen);
    if (st != TD_OK) return st;
    d.n2 = rep.n2;
    d.K = rep.K;
    st = td_ntk_run(k, x1, x2, r, err, errlen);
    if (st == TD_OK && r) r->seconds = omp_get_wtime() - t0 - k->sink_seconds;
    td_ntk_free(k);
    return st;
}
