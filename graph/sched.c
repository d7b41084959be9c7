/* The scheduler: runs a compiled plan step by step. A step is one node run
 * with the threads the planner gave it, or a group of small independent
 * nodes run side by side on one thread each (oneDNN primitives called inside
 * an OpenMP parallel region run single-threaded in the calling thread). */
#include "graph/plan_impl.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void td_exec_fail(const struct td_exec *ex, enum td_status code, const char *fmt, ...)
{
    struct td_run_status *rs = ex->status;
    char label[TD_MSG_MAX / 4], text[TD_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
#pragma omp critical(td_exec_fail)
    {
        if (!rs->failed) {
            rs->failed = 1;
            rs->code = code;
            snprintf(rs->msg, sizeof(rs->msg), "run: %s %s: %s", td_node_op_name(ex->node),
                     td_node_label(ex->node, label, sizeof(label)), text);
        }
    }
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_entry(struct td_plan *p, int k, int slot)
{
    struct td_entry *e = &p->e[k];
    struct td_exec ex = {
        .node = e->node,
        .out = p->ptr[k],
        .state = e->state,
        .scratch = p->scratch ? p->scratch + (size_t)slot * p->scratch_slot : NULL,
        .nthreads = e->nthreads,
        .stream = p->streams[slot],
        .status = &p->run_status,
    };
    for (int s = 0; s < e->node->n_src; s++) ex.in[s] = p->ptr[e->src[s]];
    if (!p->profile) {
        e->node->op->forward(&ex);
        return;
    }
    double t0 = omp_get_wtime(), c0 = thread_cpu_seconds();
    e->node->op->forward(&ex);
    e->seconds += omp_get_wtime() - t0;
    e->cpu_seconds += thread_cpu_seconds() - c0;
    e->runs++;
}

/* The first non-finite element of entry k, or -1. */
static long long first_bad(const struct td_plan *p, int k)
{
    const struct td_node *n = p->e[k].node;
    if (n->dtype != TD_F32) return -1;
    const float *x = p->ptr[k];
    long long count = td_shape_numel(&n->shape);
    for (long long i = 0; i < count; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

static enum td_status check_step(struct td_plan *p, const struct td_step *st)
{
    for (int i = st->first; i < st->first + st->count; i++) {
        int k = p->order[i];
        long long bad = first_bad(p, k);
        if (bad < 0) continue;
        const struct td_node *n = p->e[k].node;
        char label[TD_MSG_MAX / 2];
        snprintf(p->msg, sizeof(p->msg), "run: %s %s produced %s at element %lld",
                 td_node_op_name(n), td_node_label(n, label, sizeof(label)),
                 isnan(((const float *)p->ptr[k])[bad]) ? "NaN" : "Inf", bad);
        return TD_ERR_NUMERIC;
    }
    return TD_OK;
}

static enum td_status bind_feeds(struct td_plan *p, const struct td_feed *feeds, int n_feeds)
{
    for (int k = 0; k < p->n_entries; k++)
        if (p->e[k].where == TD_AT_FEED) p->ptr[k] = NULL;
    for (int i = 0; i < n_feeds; i++) {
        const struct td_node *n = feeds[i].node;
        if (!n || n->graph != p->graph) {
            snprintf(p->msg, sizeof(p->msg), "run: feed %d is NULL or of another graph", i);
            return TD_ERR_ARG;
        }
        if (n->id >= p->n_graph_nodes || p->entry_of[n->id] < 0) continue;
        int k = p->entry_of[n->id];
        if (p->e[k].where != TD_AT_FEED) {
            char label[TD_MSG_MAX / 2];
            snprintf(p->msg, sizeof(p->msg), "run: feed %d: %s %s is not a fed input", i,
                     td_node_op_name(n), td_node_label(n, label, sizeof(label)));
            return TD_ERR_ARG;
        }
        p->ptr[k] = (void *)feeds[i].data;
    }
    for (int k = 0; k < p->n_entries; k++) {
        if (p->e[k].where == TD_AT_FEED && !p->ptr[k]) {
            char label[TD_MSG_MAX / 2];
            snprintf(p->msg, sizeof(p->msg), "run: input %s was not fed",
                     td_node_label(p->e[k].node, label, sizeof(label)));
            return TD_ERR_ARG;
        }
        /* Entries are in creation order, so a view's source is resolved. */
        if (p->e[k].where == TD_AT_ALIAS) p->ptr[k] = p->ptr[p->e[k].src[0]];
    }
    return TD_OK;
}

/* Copies the outputs bound to caller memory that the arena holds (views and
 * leaves bound as outputs). */
static void copy_bound(struct td_plan *p)
{
    for (int k = 0; k < p->n_entries; k++)
        if (p->e[k].bound) memcpy(p->e[k].bound, p->ptr[k], td_node_bytes(p->e[k].node));
}

static enum td_status call_hook(struct td_plan *p, const struct td_run_hook *hook, int done)
{
    if (!hook || !hook->after_step) return TD_OK;
    char text[TD_MSG_MAX - 16] = "";
    enum td_status st = hook->after_step(hook->ctx, done, text, sizeof(text));
    if (st != TD_OK) snprintf(p->msg, sizeof(p->msg), "run: %s", text);
    return st;
}

enum td_status td_run_hooked(struct td_plan *p, const struct td_feed *feeds, int n_feeds,
                             const struct td_run_hook *hook)
{
    p->msg[0] = '\0';
    p->run_status.failed = 0;
    enum td_status st = bind_feeds(p, feeds, n_feeds);
    if (st != TD_OK) return st;
    if (!p->keep_denormals) td_flush_denormals(0);
    int saved = omp_get_max_threads(), current = saved;
    for (int s = 0; s < p->n_steps && st == TD_OK; s++) {
        const struct td_step *step = &p->steps[s];
        int k = p->order[step->first];
        /* A view's step runs nothing: its bytes are its operand's, checked there. */
        int view = !step->concurrent && p->e[k].where == TD_AT_ALIAS;
        if (step->concurrent) {
#pragma omp parallel for num_threads(p->num_threads) schedule(dynamic, 1)
            for (int i = step->first; i < step->first + step->count; i++)
                run_entry(p, p->order[i], omp_get_thread_num());
        } else if (!view) {
            if (p->e[k].nthreads != current) {
                current = p->e[k].nthreads;
                omp_set_num_threads(current);
            }
            run_entry(p, k, 0);
        }
        if (p->run_status.failed) {
            st = p->run_status.code;
            snprintf(p->msg, sizeof(p->msg), "%s", p->run_status.msg);
        } else if (p->check_numerics && !view) {
            st = check_step(p, step);
        }
        if (st == TD_OK && s + 1 < p->n_steps) st = call_hook(p, hook, s + 1);
    }
    if (current != saved) omp_set_num_threads(saved);
    if (st != TD_OK) return st;
    copy_bound(p);
    return call_hook(p, hook, p->n_steps);
}

enum td_status td_run(struct td_plan *p, const struct td_feed *feeds, int n_feeds)
{
    return td_run_hooked(p, feeds, n_feeds, NULL);
}

const char *td_plan_error(const struct td_plan *p)
{
    return p->msg;
}

const float *td_plan_output(const struct td_plan *p, int i)
{
    if (i < 0 || i >= p->n_outputs) return NULL;
    int k = p->outputs[i];
    return p->e[k].bound ? p->e[k].bound : p->ptr[k];
}
