#include "optim/grad_sum.h"

#include <omp.h>
#include <stdlib.h>

#include "io/ioutil.h"

struct td_grad_sum {
    struct td_dist_buckets *b;
    float *buf;     /* the store's grad block, then tangent, then the spare float */
    size_t n;       /* floats before the loss's */
    int loss_ready; /* td_plan_ready_step of the loss */
    const float *loss_out;
    const struct td_plan *plan;
    int n_buckets;
    int *ready; /* per bucket: the step count after which all its values are final */
    int *order; /* buckets by ready step */
    int next;   /* into order: the first bucket not yet started */
};

/* A stretch of the buffer written by one output. */
struct segment {
    size_t offset, count;
    int ready;
};

static int by_offset(const void *a, const void *b)
{
    const struct segment *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

void td_grad_sum_free(struct td_grad_sum *gs)
{
    if (!gs) return;
    td_dist_buckets_free(gs->b);
    free(gs->ready);
    free(gs->order);
    free(gs);
}

/* Cuts the buffer after segments until each bucket holds at least `least`
 * floats; bucket b ends at ends[b] and is final after ready[b] steps. */
static int cut(const struct segment *seg, int n_seg, size_t least, size_t *ends, int *ready)
{
    int n = 0, r = 0;
    size_t start = 0;
    for (int i = 0; i < n_seg; i++) {
        if (seg[i].ready > r) r = seg[i].ready;
        size_t end = seg[i].offset + seg[i].count;
        if (end - start >= least || i == n_seg - 1) {
            ends[n] = end;
            ready[n++] = r;
            start = end;
            r = 0;
        }
    }
    return n;
}

struct td_grad_sum *td_grad_sum_new(struct td_dist *d, const struct td_step_graph *s,
                                    const struct td_plan *plan, int hvp, size_t bucket_floats,
                                    char *err, size_t errlen)
{
    const struct td_params *p = td_graph_params(s->g);
    int P = s->n_params, n_seg = (hvp ? 2 : 1) * P + 1;
    struct td_grad_sum *gs = calloc(1, sizeof(*gs));
    struct segment *seg = calloc((size_t)n_seg, sizeof(*seg));
    size_t *ends = calloc((size_t)n_seg, sizeof(*ends));
    if (gs) gs->ready = calloc((size_t)n_seg, sizeof(*gs->ready));
    if (gs) gs->order = calloc((size_t)n_seg, sizeof(*gs->order));
    if (!gs || !seg || !ends || !gs->ready || !gs->order) {
        td_io_errf(TD_ERR_NOMEM, err, errlen, "gradient sum: out of memory");
        goto fail;
    }
    gs->buf = p->grad;
    gs->n = p->total * (hvp ? 2 : 1);
    gs->plan = plan;
    gs->loss_ready = td_plan_ready_step(plan, s->outs[0]);
    int missing = gs->loss_ready < 0;
    for (int i = 0; i < n_seg - 1; i++) {
        int j = i % P, half = i / P;
        seg[i] = (struct segment){half * p->total + p->info[j].offset, p->info[j].numel,
                                  td_plan_ready_step(plan, s->outs[1 + i])};
        missing |= seg[i].ready < 0;
    }
    if (missing) {
        td_io_errf(TD_ERR_ARG, err, errlen, "gradient sum: the plan lacks a step output");
        goto fail;
    }
    qsort(seg, (size_t)n_seg - 1, sizeof(*seg), by_offset);
    /* Padding between parameters joins the segment before it. */
    for (int i = 0; i + 1 < n_seg - 1; i++) seg[i].count = seg[i + 1].offset - seg[i].offset;
    seg[n_seg - 1] = (struct segment){gs->n, 1, gs->loss_ready};
    if (n_seg > 1) seg[n_seg - 2].count = gs->n - seg[n_seg - 2].offset;
    seg[0].count += seg[0].offset;
    seg[0].offset = 0;
    gs->n_buckets =
        cut(seg, n_seg, bucket_floats ? bucket_floats : TD_GRAD_SUM_BUCKET_FLOATS, ends, gs->ready);
    /* Insertion sort: stable, so equal steps start in buffer order. */
    for (int i = 0; i < gs->n_buckets; i++) {
        int k = i;
        while (k > 0 && gs->ready[gs->order[k - 1]] > gs->ready[i]) {
            gs->order[k] = gs->order[k - 1];
            k--;
        }
        gs->order[k] = i;
    }
    gs->b = td_dist_buckets_new(d, ends, gs->n_buckets, err, errlen);
    if (!gs->b) goto fail;
    free(seg);
    free(ends);
    return gs;
fail:
    free(seg);
    free(ends);
    td_grad_sum_free(gs);
    return NULL;
}

/* Starts every bucket the plan has finished, then moves the started ones on. */
static enum td_status after_step(void *ctx, int done, char *err, size_t errlen)
{
    struct td_grad_sum *gs = ctx;
    if (done == gs->loss_ready) gs->buf[gs->n] = gs->loss_out[0];
    while (gs->next < gs->n_buckets && gs->ready[gs->order[gs->next]] <= done) {
        enum td_status st = td_dist_buckets_ready(gs->b, gs->order[gs->next++], err, errlen);
        if (st != TD_OK) return st;
    }
    return td_dist_buckets_progress(gs->b, err, errlen);
}

enum td_status td_grad_sum_run(struct td_grad_sum *gs, struct td_plan *plan,
                               const struct td_feed *feeds, int n_feeds, double *loss,
                               double *waited, char *err, size_t errlen)
{
    if (plan != gs->plan)
        return td_io_errf(TD_ERR_ARG, err, errlen, "gradient sum: made for another plan");
    gs->loss_out = td_plan_output(plan, 0);
    gs->next = 0;
    enum td_status st = td_dist_buckets_start(gs->b, gs->buf, err, errlen);
    if (st != TD_OK) return st;
    /* Buckets final before the first step (none in practice: every output
     * is computed) start with the run. */
    st = after_step(gs, 0, err, errlen);
    if (st != TD_OK) return st;
    struct td_run_hook hook = {gs, after_step};
    st = td_run_hooked(plan, feeds, n_feeds, &hook);
    if (st != TD_OK) return td_io_errf(st, err, errlen, "%s", td_plan_error(plan));
    double t0 = omp_get_wtime();
    st = td_dist_buckets_finish(gs->b, err, errlen);
    *waited = omp_get_wtime() - t0;
    if (st == TD_OK) *loss = gs->buf[gs->n];
    return st;
}
