/* The planner: picks the nodes an output set needs, groups them into
 * scheduler steps, decides which buffers may share bytes and where each
 * lives in one arena, and prepares every kernel once. */
#include "graph/plan_impl.h"
#include "graph/memory.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TD_ALIGN 64
/* Default scheduling thresholds (see struct td_compile_options), measured
 * on the seed MLP with 2 cores: splitting a node across cores pays from
 * about 50 us of work; independent products of about 2 MFLOP (the second
 * layer's weight and input gradients, 20 us each) gain from running side
 * by side, one core each: the gradient step at batch 128 went from 0.322
 * to 0.301 ms (medians of 10 alternating runs; every grouped run was
 * faster). Below that, moving the data between cores costs more than it
 * saves. Such a product with no partner of its weight (the first product
 * of the second layer, or its tangent beside a 4 us mask) takes 21 us on
 * one core and 13 on two, so it gets both: gradient 0.299 -> 0.292 ms,
 * gradient + HVP 0.690 -> 0.636 ms, JVP 0.299 -> 0.290 ms (10 alternating
 * runs each, cores one cache hop apart; where they sit two hops apart,
 * 300 ns per round trip instead of 55, both schedules take the same time). */
#define TD_PARALLEL_COST 262144.0
#define TD_GROUP_COST 16384.0
#define TD_SOLO_COST 65536.0
/* Most nodes one concurrent step holds (the scheduler keeps a group on its
 * stack). */
#define TD_MAX_GROUP 64

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static struct td_plan *compile_fail(struct td_graph *g, struct td_plan *p, enum td_status s,
                                    const char *fmt, ...)
{
    char msg[TD_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    td_graph_fail(g, s, "%s", msg);
    td_plan_free(p);
    return NULL;
}

static double node_cost(const struct td_node *n)
{
    if (n->op->cost) return n->op->cost(n);
    double c = (double)td_shape_numel(&n->shape);
    for (int s = 0; s < n->n_src; s++) c += (double)td_shape_numel(&n->src[s]->shape);
    return c;
}

/* Leaves and bindings: where each entry's bytes come from. */
static const char *place_entries(struct td_plan *p, const struct td_compile_options *o)
{
    struct td_params *store = td_graph_params(p->graph);
    for (int k = 0; k < p->n_entries; k++) {
        struct td_entry *e = &p->e[k];
        struct td_node *n = e->node;
        e->root = k;
        e->step = -1;
        e->last_use = -1;
        switch (n->kind) {
        case TD_NODE_PARAM:
            e->where = TD_AT_FIXED;
            e->fixed = store->value + store->info[n->param_index].offset;
            break;
        case TD_NODE_INPUT:
            if (n->param_index >= 0) {
                e->where = TD_AT_FIXED;
                e->fixed = store->dir + store->info[n->param_index].offset;
            } else {
                e->where = TD_AT_FEED;
            }
            break;
        case TD_NODE_CONST:
            e->where = TD_AT_FIXED;
            e->fixed = (void *)n->const_data;
            break;
        case TD_NODE_OP:
            e->where = (n->op->traits & TD_TRAIT_VIEW) ? TD_AT_ALIAS : TD_AT_ARENA;
            break;
        }
    }
    for (int b = 0; b < o->n_bindings; b++) {
        const struct td_binding *bd = &o->bindings[b];
        if (!bd->node || !bd->data) return "compile: a binding has a NULL node or pointer";
        int k = bd->node->graph == p->graph && bd->node->id < p->n_graph_nodes
                    ? p->entry_of[bd->node->id]
                    : -1;
        int is_output = 0;
        for (int i = 0; i < p->n_outputs && k >= 0; i++) is_output |= p->outputs[i] == k;
        if (!is_output) return "compile: a binding names a node that is not an output";
        struct td_entry *e = &p->e[k];
        if (e->node->kind == TD_NODE_OP) {
            /* A bound view copies instead of aliasing. */
            e->where = TD_AT_FIXED;
            e->fixed = bd->data;
        } else {
            e->bound = bd->data;
        }
    }
    return NULL;
}

/* Bytes entry k takes in the arena (0 when it lives elsewhere). */
static size_t arena_bytes_of(const struct td_plan *p, int k)
{
    const struct td_entry *e = &p->e[k];
    return e->where == TD_AT_ARENA ? align_up(td_node_bytes(e->node), TD_ALIGN) : 0;
}

/* Working state of the list scheduler. Views (reshapes) own no bytes: a
 * read of a view is a read of the entry whose bytes it shows, its root. */
struct sched {
    int *height;  /* the longest path of op entries from k to an output */
    int *root;    /* the entry whose bytes k's output is (k itself unless a view) */
    int *waiting; /* operands not yet scheduled */
    int *readers; /* for a root: op entries still to run that read its bytes */
    int *cons_at; /* consumers of k: cons[cons_at[k] .. cons_at[k + 1]) */
    int *cons;
    int *ready; /* op entries whose operands are all scheduled */
    int n_ready;
    int *since; /* the step (round of the scheduler) in which k became ready */
    int round;
    unsigned char *pinned; /* outputs: their bytes are never freed */
};

static void sched_free(struct sched *s)
{
    free(s->height), free(s->root), free(s->waiting), free(s->readers);
    free(s->cons_at), free(s->cons), free(s->ready), free(s->pinned), free(s->since);
}

/* Whether entry k lists operand entry `src` before position s (an operand
 * read twice counts once). */
static int seen_before(const struct td_entry *e, int s)
{
    for (int t = 0; t < s; t++)
        if (e->src[t] == e->src[s]) return 1;
    return 0;
}

static int sched_init(struct sched *s, const struct td_plan *p)
{
    int n = p->n_entries;
    memset(s, 0, sizeof(*s));
    s->height = calloc((size_t)n, sizeof(int));
    s->root = malloc((size_t)n * sizeof(int));
    s->waiting = calloc((size_t)n, sizeof(int));
    s->readers = calloc((size_t)n, sizeof(int));
    s->cons_at = calloc((size_t)n + 1, sizeof(int));
    s->cons = malloc((size_t)(n > 0 ? n : 1) * TD_MAX_SRC * sizeof(int));
    s->ready = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    s->pinned = calloc((size_t)n, 1);
    s->since = calloc((size_t)n, sizeof(int));
    if (!s->height || !s->root || !s->waiting || !s->readers || !s->cons_at || !s->cons ||
        !s->ready || !s->pinned || !s->since)
        return 0;
    for (int i = 0; i < p->n_outputs; i++) s->pinned[p->outputs[i]] = 1;
    /* Entries are in creation order, so operands come first. */
    for (int k = 0; k < n; k++) {
        const struct td_entry *e = &p->e[k];
        s->root[k] = k;
        if (e->node->kind != TD_NODE_OP) continue;
        if (e->where == TD_AT_ALIAS) s->root[k] = s->root[e->src[0]];
        for (int i = 0; i < e->node->n_src; i++) {
            int src = e->src[i];
            if (seen_before(e, i)) continue;
            if (p->e[src].node->kind == TD_NODE_OP) {
                s->waiting[k]++;
                s->cons_at[src + 1]++;
            }
        }
    }
    for (int k = 0; k < n; k++) s->cons_at[k + 1] += s->cons_at[k];
    int *fill = calloc((size_t)n, sizeof(int));
    if (!fill) return 0;
    for (int k = 0; k < n; k++) {
        const struct td_entry *e = &p->e[k];
        if (e->node->kind != TD_NODE_OP) continue;
        for (int i = 0; i < e->node->n_src; i++) {
            int src = e->src[i];
            if (seen_before(e, i) || p->e[src].node->kind != TD_NODE_OP) continue;
            s->cons[s->cons_at[src] + fill[src]++] = k;
        }
        if (s->waiting[k] == 0) s->ready[s->n_ready++] = k;
        /* A reader of the bytes of each distinct root among the operands. */
        if (e->where == TD_AT_ALIAS) continue;
        for (int i = 0; i < e->node->n_src; i++) {
            int r = s->root[e->src[i]], dup = 0;
            for (int t = 0; t < i; t++) dup |= s->root[e->src[t]] == r;
            if (!dup) s->readers[r]++;
        }
    }
    free(fill);
    for (int k = n - 1; k >= 0; k--)
        for (int c = s->cons_at[k]; c < s->cons_at[k + 1]; c++)
            if (s->height[s->cons[c]] + 1 > s->height[k]) s->height[k] = s->height[s->cons[c]] + 1;
    return 1;
}

/* Whether ready entry k should run before ready entry b, given the bytes
 * each would add (delta). One that frees bytes (delta <= 0) goes first, the
 * more freed the better: its operands would stay live until it runs anyway.
 * Among those that add bytes, the one with the longer path still ahead of
 * it goes first, whatever its size: a value that little depends on is
 * computed when it is needed instead of being held meanwhile. */
static int sched_before(const struct sched *s, int k, long long dk, int b, long long db)
{
    int fk = dk <= 0, fb = db <= 0;
    if (fk != fb) return fk;
    if (fk && dk != db) return dk < db;
    if (s->height[k] != s->height[b]) return s->height[k] > s->height[b];
    if (dk != db) return dk < db;
    return k < b;
}

/* Arena bytes that running op entry k allocates minus those it frees: its
 * output, less every operand buffer it is the last reader of. */
static long long sched_delta(const struct sched *s, const struct td_plan *p, int k)
{
    const struct td_entry *e = &p->e[k];
    long long delta = (long long)arena_bytes_of(p, k);
    for (int i = 0; i < e->node->n_src; i++) {
        int r = s->root[e->src[i]], dup = 0;
        for (int t = 0; t < i; t++) dup |= s->root[e->src[t]] == r;
        if (!dup && !s->pinned[r] && s->readers[r] == 1) delta -= (long long)arena_bytes_of(p, r);
    }
    return delta;
}

/* Marks ready entry ready[i] as run: removes it from the ready list, counts
 * its reads and readies the consumers it was the last operand of. */
static void sched_take(struct sched *s, const struct td_plan *p, int i)
{
    int k = s->ready[i];
    s->ready[i] = s->ready[--s->n_ready];
    const struct td_entry *e = &p->e[k];
    if (e->where != TD_AT_ALIAS)
        for (int j = 0; j < e->node->n_src; j++) {
            int r = s->root[e->src[j]], dup = 0;
            for (int t = 0; t < j; t++) dup |= s->root[e->src[t]] == r;
            if (!dup) s->readers[r]--;
        }
    for (int c = s->cons_at[k]; c < s->cons_at[k + 1]; c++)
        if (--s->waiting[s->cons[c]] == 0) {
            s->ready[s->n_ready++] = s->cons[c];
            s->since[s->cons[c]] = s->round;
        }
}

/* Whether a consumer of k (through views) waits for nothing else. */
static int sole_blocker(const struct sched *s, const struct td_plan *p, int k)
{
    for (int c = s->cons_at[k]; c < s->cons_at[k + 1]; c++) {
        int j = s->cons[c];
        if (p->e[j].where == TD_AT_ALIAS ? sole_blocker(s, p, j) : s->waiting[j] == 1) return 1;
    }
    return 0;
}

/* The position in the ready list of the node (not a view) to run next, or
 * -1 when there is none; *delta gets its sched_delta. Without `any`, a
 * recomputed node is a candidate only once some consumer waits for nothing
 * else: run earlier, it would hold its bytes from then until its readers
 * run. */
static int sched_pick_among(const struct sched *s, const struct td_plan *p, long long *delta,
                            int any)
{
    int best = -1;
    for (int i = 0; i < s->n_ready; i++) {
        int k = s->ready[i];
        int due = p->e[k].node->recomputed && sole_blocker(s, p, k);
        if (p->e[k].where == TD_AT_ALIAS || (!any && p->e[k].node->recomputed && !due)) continue;
        long long d = sched_delta(s, p, k);
        /* Its one reader, waiting only for it, frees it right after. */
        if (due && s->readers[s->root[k]] == 1) d -= (long long)arena_bytes_of(p, k);
        if (best < 0 || sched_before(s, k, d, s->ready[best], *delta)) {
            best = i;
            *delta = d;
        }
    }
    return best;
}

/* The node to run next: a recomputed one that no consumer is waiting for
 * only when nothing else is ready. */
static int sched_pick(const struct sched *s, const struct td_plan *p, long long *delta)
{
    int best = sched_pick_among(s, p, delta, 0);
    return best >= 0 ? best : sched_pick_among(s, p, delta, 1);
}

/* Appends a step holding entry k alone. */
static void add_step(struct td_plan *p, int k, int nthreads)
{
    struct td_entry *e = &p->e[k];
    e->concurrent = 0;
    e->nthreads = nthreads;
    e->step = p->n_steps;
    p->steps[p->n_steps++] = (struct td_step){p->n_order, 1, 0};
    p->order[p->n_order++] = k;
}

/* Appends the n independent entries of group[] as one concurrent step, one
 * thread each, in creation order; one entry runs alone (on every thread if
 * it costs at least solo_cost); none appends nothing. */
static void add_group(struct td_plan *p, int *group, int n, int T, double solo_cost)
{
    if (n == 1) add_step(p, group[0], node_cost(p->e[group[0]].node) >= solo_cost ? T : 1);
    if (n < 2) return;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && group[b - 1] > group[b]; b--) {
            int t = group[b];
            group[b] = group[b - 1];
            group[b - 1] = t;
        }
    p->steps[p->n_steps] = (struct td_step){p->n_order, n, 1};
    for (int g = 0; g < n; g++) {
        struct td_entry *e = &p->e[group[g]];
        e->concurrent = 1;
        e->nthreads = 1;
        e->step = p->n_steps;
        p->order[p->n_order++] = group[g];
    }
    p->n_steps++;
}

/* The execution order, by list scheduling that keeps the arena small: of
 * the nodes whose operands have run, run next the one that adds the fewest
 * bytes to what is live (its output less the buffers it is the last reader
 * of), ties going to the shallowest, then the earliest created. So a buffer
 * is freed as soon as its readers can run, and a value needed only much
 * later (a second derivative of an activation used by the HVP's backward
 * pass, say) is computed when it is needed instead of at the depth of its
 * operands. Views run as soon as they are ready (they cost nothing).
 *
 * Steps: a node of at least the parallel cost gets every thread; nodes
 * between the group and parallel costs that are ready together (so none
 * reads another) run as one concurrent step, one thread each; the rest run
 * alone on one thread. The order depends only on the graph and the options. */
static int schedule(struct td_plan *p)
{
    struct sched s = {0};
    p->order = malloc((size_t)(p->n_entries > 0 ? p->n_entries : 1) * sizeof(int));
    p->steps = malloc((size_t)(p->n_entries > 0 ? p->n_entries : 1) * sizeof(*p->steps));
    if (!p->order || !p->steps || !sched_init(&s, p)) {
        sched_free(&s);
        return 0;
    }
    int T = p->num_threads;
    while (s.n_ready > 0) {
        s.round++;
        int view = -1;
        for (int i = 0; i < s.n_ready; i++)
            if (p->e[s.ready[i]].where == TD_AT_ALIAS && (view < 0 || s.ready[i] < s.ready[view]))
                view = i;
        if (view >= 0) {
            int k = s.ready[view];
            sched_take(&s, p, view);
            add_step(p, k, 1);
            continue;
        }
        long long best_delta;
        int best = sched_pick(&s, p, &best_delta);
        int k = s.ready[best];
        double c = node_cost(p->e[k].node);
        int eligible = T > 1 && c >= p->group_cost && c < p->parallel_cost;
        if (!eligible) {
            sched_take(&s, p, best);
            add_step(p, k, c < p->parallel_cost ? 1 : T);
            continue;
        }
        /* A concurrent step: k and the nodes the order would run right
         * after it, while they were ready before this step (so none reads
         * another, whatever their depths) and between the two costs. Nodes
         * the order would leave for later stay out, so a group holds no
         * more bytes live than the sequential order would. */
        int group[TD_MAX_GROUP], n_group = 0;
        double cost[TD_MAX_GROUP];
        cost[n_group] = c;
        group[n_group++] = k;
        sched_take(&s, p, best);
        while (n_group < TD_MAX_GROUP) {
            long long d;
            int i = sched_pick_among(&s, p, &d, 0);
            if (i < 0) break;
            int j = s.ready[i];
            double cj = node_cost(p->e[j].node);
            if (s.since[j] == s.round || cj < p->group_cost || cj >= p->parallel_cost) break;
            cost[n_group] = cj;
            group[n_group++] = j;
            sched_take(&s, p, i);
        }
        /* Also any other such node that frees bytes: it would run before
         * every node that adds some anyway. */
        for (int i = 0; i < s.n_ready && n_group < TD_MAX_GROUP;) {
            int j = s.ready[i];
            double cj = node_cost(p->e[j].node);
            if (p->e[j].where != TD_AT_ALIAS && s.since[j] < s.round && cj >= p->group_cost &&
                cj < p->parallel_cost && sched_delta(&s, p, j) <= 0) {
                cost[n_group] = cj;
                group[n_group++] = j;
                sched_take(&s, p, i);
                i = 0;
            } else {
                i++;
            }
        }
        /* One thread each pays only when the work is balanced: a node that
         * outweighs the rest of its group together runs first on every
         * thread (if it is worth splitting), the rest then as their own
         * group. They were all ready before this step, so any order holds. */
        int heavy = 0;
        for (int g = 1; g < n_group; g++)
            if (cost[g] > cost[heavy]) heavy = g;
        double rest = 0;
        for (int g = 0; g < n_group; g++)
            if (g != heavy) rest += cost[g];
        if (n_group > 1 && cost[heavy] > rest && cost[heavy] >= p->solo_cost) {
            add_step(p, group[heavy], T);
            group[heavy] = group[--n_group];
        }
        add_group(p, group, n_group, T, p->solo_cost);
    }
    sched_free(&s);
    return 1;
}

/* Number of nodes of step `step` that read a buffer whose root is r. */
static int readers_in_step(const struct td_plan *p, int r, int step)
{
    const struct td_step *st = &p->steps[step];
    int count = 0;
    for (int i = st->first; i < st->first + st->count; i++) {
        const struct td_entry *c = &p->e[p->order[i]];
        for (int s = 0; s < c->node->n_src; s++)
            if (p->e[c->src[s]].root == r) {
                count++;
                break;
            }
    }
    return count;
}

/* The operand whose bytes entry e's output may take, or -1: the first of an
 * elementwise op, the last of an accumulating one when no other operand
 * shares its bytes (a product must not read what it overwrites). */
static int inplace_operand(const struct td_plan *p, const struct td_entry *e)
{
    unsigned traits = e->node->op->traits;
    if (e->node->kind != TD_NODE_OP || (traits & TD_TRAIT_VIEW)) return -1;
    if (traits & TD_TRAIT_ELEMENTWISE) return 0;
    if (!(traits & TD_TRAIT_ACCUMULATE)) return -1;
    int last = e->node->n_src - 1, r = p->e[e->src[last]].root;
    for (int s = 0; s < last; s++)
        if (p->e[e->src[s]].root == r) return -1;
    return last;
}

/* Liveness, aliasing and in-place decisions, in execution order. */
static void plan_lifetimes(struct td_plan *p, int allow_reuse, int *end)
{
    for (int i = 0; i < p->n_order; i++) {
        struct td_entry *c = &p->e[p->order[i]];
        for (int s = 0; s < c->node->n_src; s++) {
            struct td_entry *src = &p->e[c->src[s]];
            if (c->step > src->last_use) src->last_use = c->step;
        }
    }
    for (int i = 0; i < p->n_order; i++) {
        struct td_entry *e = &p->e[p->order[i]];
        if (e->last_use < e->step) e->last_use = e->step;
    }
    for (int i = 0; i < p->n_outputs; i++) p->e[p->outputs[i]].last_use = p->n_steps;
    for (int k = 0; k < p->n_entries; k++) end[k] = p->e[k].last_use;

    for (int i = 0; i < p->n_order; i++) {
        int k = p->order[i];
        struct td_entry *e = &p->e[k];
        if (e->where == TD_AT_ALIAS) {
            e->root = p->e[e->src[0]].root;
        } else if (allow_reuse && inplace_operand(p, e) >= 0) {
            int r = p->e[e->src[inplace_operand(p, e)]].root;
            const struct td_node *in = e->node->src[inplace_operand(p, e)];
            int can = p->e[r].where == TD_AT_ARENA && end[r] == e->step &&
                      td_shape_equal(&in->shape, &e->node->shape) && in->dtype == e->node->dtype &&
                      readers_in_step(p, r, e->step) == 1;
            if (can && e->where == TD_AT_ARENA) {
                e->root = r;
                p->num_inplace++;
            } else if (can && e->where == TD_AT_FIXED) {
                /* An output bound to caller memory, written over an operand
                 * read by nothing else: the operand (and every buffer
                 * sharing its bytes) is computed in the caller's memory
                 * too, and needs no arena bytes. The caller's memory is
                 * written only by this plan's run. */
                for (int j = 0; j < p->n_entries; j++)
                    if (p->e[j].root == r && p->e[j].where == TD_AT_ARENA) {
                        p->e[j].where = TD_AT_FIXED;
                        p->e[j].fixed = e->fixed;
                    }
            }
        }
        if (end[k] > end[e->root]) end[e->root] = end[k];
    }
    for (int k = 0; k < p->n_entries; k++) p->e[k].live_end = end[p->e[k].root];
}

struct placed {
    int k;
    size_t bytes;
};

static int cmp_placed(const void *a, const void *b)
{
    const struct placed *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

/* Greedy by size: each buffer goes to the lowest offset that overlaps no
 * already placed buffer live at the same time. */
static int place_buffers(struct td_plan *p, int reuse, const int *end)
{
    struct placed *list = malloc((size_t)p->n_entries * sizeof(*list));
    if (!list) return 0;
    int n = 0;
    for (int k = 0; k < p->n_entries; k++) {
        struct td_entry *e = &p->e[k];
        if (e->where != TD_AT_ARENA) continue;
        size_t bytes = align_up(td_node_bytes(e->node), TD_ALIGN);
        p->no_reuse_bytes += bytes;
        if (e->root == k) list[n++] = (struct placed){k, bytes};
    }
    qsort(list, (size_t)n, sizeof(*list), cmp_placed);
    size_t top = 0;
    for (int i = 0; i < n; i++) {
        struct td_entry *e = &p->e[list[i].k];
        size_t off = 0;
        if (reuse) {
            int moved = 1;
            while (moved) {
                moved = 0;
                for (int j = 0; j < i; j++) {
                    const struct td_entry *o = &p->e[list[j].k];
                    int overlap_time = e->step <= end[list[j].k] && o->step <= end[list[i].k];
                    int overlap_bytes =
                        off < o->offset + list[j].bytes && o->offset < off + list[i].bytes;
                    if (overlap_time && overlap_bytes) {
                        off = o->offset + list[j].bytes;
                        moved = 1;
                    }
                }
            }
        } else {
            off = top;
        }
        e->offset = off;
        if (off + list[i].bytes > top) top = off + list[i].bytes;
    }
    for (int k = 0; k < p->n_entries; k++)
        if (p->e[k].where == TD_AT_ARENA) p->e[k].offset = p->e[p->e[k].root].offset;
    p->arena_bytes = top;
    free(list);
    return 1;
}

/* Fresh pages cost a fault each on first touch: take them once here
 * instead of during the first runs. */
static void *alloc_touched(size_t bytes)
{
    if (bytes == 0) return NULL;
    void *m = td_alloc_large(bytes);
    if (m) memset(m, 0, bytes);
    return m;
}

static enum td_status prepare_kernels(struct td_plan *p, char *err, size_t err_len)
{
    if (dnnl_engine_create(&p->engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(err, err_len, "compile: oneDNN could not create a CPU engine");
        return TD_ERR_BACKEND;
    }
    p->streams = calloc((size_t)p->num_threads, sizeof(*p->streams));
    if (!p->streams) return TD_ERR_NOMEM;
    for (int t = 0; t < p->num_threads; t++)
        if (dnnl_stream_create(&p->streams[t], p->engine, dnnl_stream_default_flags) !=
            dnnl_success) {
            snprintf(err, err_len, "compile: oneDNN could not create a stream");
            return TD_ERR_BACKEND;
        }
    int saved = omp_get_max_threads();
    enum td_status st = TD_OK;
    for (int i = 0; i < p->n_order && st == TD_OK; i++) {
        struct td_entry *e = &p->e[p->order[i]];
        if (!e->node->op->prepare || e->where == TD_AT_ALIAS) continue;
        struct td_prep prep = {
            .node = e->node, .engine = p->engine, .err = err, .err_len = err_len};
        /* Primitives pick their blocking for the thread count they will see. */
        omp_set_num_threads(e->nthreads);
        st = e->node->op->prepare(&prep);
        e->state = prep.state;
        e->scratch_bytes = prep.scratch_bytes;
        if (st == TD_ERR_NOMEM) snprintf(err, err_len, "compile: out of memory");
        if (align_up(prep.scratch_bytes, TD_ALIGN) > p->scratch_slot)
            p->scratch_slot = align_up(prep.scratch_bytes, TD_ALIGN);
    }
    omp_set_num_threads(saved);
    return st;
}

struct td_plan *td_compile(struct td_graph *g, struct td_node *const *outputs, int n_out,
                           const struct td_compile_options *opts)
{
    struct td_compile_options o = {0};
    if (opts) o = *opts;
    if (!g) return NULL;
    if (td_graph_status(g) != TD_OK) return NULL;
    if (n_out < 1) return compile_fail(g, NULL, TD_ERR_ARG, "compile: no outputs");
    for (int i = 0; i < n_out; i++) {
        if (!outputs[i]) return compile_fail(g, NULL, TD_ERR_ARG, "compile: output %d is NULL", i);
        if (outputs[i]->graph != g)
            return compile_fail(g, NULL, TD_ERR_ARG, "compile: output %d belongs to another graph",
                                i);
    }
    struct td_plan *p = calloc(1, sizeof(*p));
    if (!p) return compile_fail(g, NULL, TD_ERR_NOMEM, "compile: out of memory");
    p->graph = g;
    p->num_threads = o.num_threads > 0 ? o.num_threads : omp_get_max_threads();
    p->check_numerics = o.check_numerics;
    p->profile = o.profile;
    p->keep_denormals = o.keep_denormals;
    if (!p->keep_denormals) td_flush_denormals(p->num_threads);
    p->parallel_cost = o.parallel_cost > 0 ? o.parallel_cost : TD_PARALLEL_COST;
    p->group_cost = o.group_cost > 0 ? o.group_cost : TD_GROUP_COST;
    p->solo_cost = o.solo_cost > 0 ? o.solo_cost : TD_SOLO_COST;
    p->n_graph_nodes = td_graph_num_nodes(g);

    int N = p->n_graph_nodes;
    unsigned char *live = calloc((size_t)N, 1);
    p->entry_of = malloc((size_t)N * sizeof(int));
    p->outputs = malloc((size_t)n_out * sizeof(int));
    if (!live || !p->entry_of || !p->outputs) {
        free(live);
        return compile_fail(g, p, TD_ERR_NOMEM, "compile: out of memory");
    }
    for (int i = 0; i < n_out; i++) live[outputs[i]->id] = 1;
    for (int id = N - 1; id >= 0; id--) {
        struct td_node *n = td_graph_node(g, id);
        if (live[id])
            for (int s = 0; s < n->n_src; s++) live[n->src[s]->id] = 1;
    }
    for (int id = 0; id < N; id++) p->n_entries += live[id];
    p->e = calloc((size_t)p->n_entries, sizeof(*p->e));
    p->ptr = calloc((size_t)p->n_entries, sizeof(*p->ptr));
    int *end = malloc((size_t)p->n_entries * sizeof(int));
    if (!p->e || !p->ptr || !end) {
        free(live), free(end);
        return compile_fail(g, p, TD_ERR_NOMEM, "compile: out of memory");
    }
    int k = 0;
    for (int id = 0; id < N; id++) {
        p->entry_of[id] = live[id] ? k : -1;
        if (!live[id]) continue;
        struct td_node *n = td_graph_node(g, id);
        p->e[k].node = n;
        for (int s = 0; s < n->n_src; s++) p->e[k].src[s] = p->entry_of[n->src[s]->id];
        k++;
    }
    free(live);
    p->n_outputs = n_out;
    for (int i = 0; i < n_out; i++) p->outputs[i] = p->entry_of[outputs[i]->id];

    const char *why = place_entries(p, &o);
    if (why) {
        free(end);
        return compile_fail(g, p, TD_ERR_ARG, "%s", why);
    }
    if (!schedule(p)) {
        free(end);
        return compile_fail(g, p, TD_ERR_NOMEM, "compile: out of memory");
    }
    plan_lifetimes(p, !o.no_reuse, end);
    int placed = place_buffers(p, !o.no_reuse, end);
    free(end);
    if (!placed) return compile_fail(g, p, TD_ERR_NOMEM, "compile: out of memory");

    td_graph_freeze_params(g);
    char err[TD_MSG_MAX] = "compile: out of memory";
    enum td_status st = prepare_kernels(p, err, sizeof(err));
    if (st != TD_OK) return compile_fail(g, p, st, "%s", err);
    p->arena = alloc_touched(p->arena_bytes);
    p->scratch = alloc_touched(p->scratch_slot * (size_t)p->num_threads);
    if ((p->arena_bytes && !p->arena) || (p->scratch_slot && !p->scratch))
        return compile_fail(g, p, TD_ERR_NOMEM, "compile: out of memory for a %zu-byte arena",
                            p->arena_bytes);
    for (k = 0; k < p->n_entries; k++) {
        struct td_entry *e = &p->e[k];
        if (e->where == TD_AT_ARENA) p->ptr[k] = p->arena + e->offset;
        if (e->where == TD_AT_FIXED) p->ptr[k] = e->fixed;
    }
    return p;
}

void td_plan_free(struct td_plan *p)
{
    if (!p) return;
    for (int k = 0; k < p->n_entries && p->e; k++)
        if (p->e[k].state && p->e[k].node->op->release) p->e[k].node->op->release(p->e[k].state);
    for (int t = 0; t < p->num_threads && p->streams; t++)
        if (p->streams[t]) dnnl_stream_destroy(p->streams[t]);
    if (p->engine) dnnl_engine_destroy(p->engine);
    free(p->streams);
    free(p->arena);
    free(p->scratch);
    free(p->e);
    free(p->entry_of);
    free(p->order);
    free(p->steps);
    free(p->outputs);
    free(p->ptr);
    free(p);
}

static double node_flops(const struct td_entry *e)
{
    const struct td_op_def *op = e->node->op;
    return e->where != TD_AT_ALIAS && op->flops ? op->flops(e->node) : 0.0;
}

void td_plan_get_stats(const struct td_plan *p, struct td_plan_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->arena_bytes = p->arena_bytes;
    s->no_reuse_bytes = p->no_reuse_bytes;
    s->scratch_bytes = p->scratch_slot * (size_t)p->num_threads;
    s->num_nodes = p->n_order;
    s->num_steps = p->n_steps;
    s->num_inplace = p->num_inplace;
    s->num_threads = p->num_threads;
    for (int i = 0; i < p->n_order; i++) {
        const struct td_entry *e = &p->e[p->order[i]];
        s->num_concurrent += e->concurrent;
        s->flops += node_flops(e);
    }
}

static const struct td_entry *entry(const struct td_plan *p, const struct td_node *n)
{
    if (!n || n->graph != p->graph || n->id >= p->n_graph_nodes) return NULL;
    int k = p->entry_of[n->id];
    return k >= 0 ? &p->e[k] : NULL;
}

long long td_plan_buffer(const struct td_plan *p, const struct td_node *n, size_t *bytes)
{
    const struct td_entry *e = entry(p, n);
    if (!e || e->where != TD_AT_ARENA) return -1;
    if (bytes) *bytes = td_node_bytes(n);
    return (long long)e->offset;
}

int td_plan_step_of(const struct td_plan *p, const struct td_node *n)
{
    const struct td_entry *e = entry(p, n);
    return e ? e->step : -1;
}

int td_plan_ready_step(const struct td_plan *p, const struct td_node *n)
{
    const struct td_entry *e = entry(p, n);
    if (!e) return -1;
    if (e->bound) return p->n_steps;
    return e->step < 0 ? 0 : e->step + 1;
}

int td_plan_last_use(const struct td_plan *p, const struct td_node *n)
{
    const struct td_entry *e = entry(p, n);
    return e ? e->live_end : -1;
}

/* Whether x goes before y: slower first, then by node id. */
static int time_before(const struct td_node_time *x, const struct td_node_time *y)
{
    if (x->seconds != y->seconds) return x->seconds > y->seconds;
    return x->node->id < y->node->id;
}

int td_plan_profile(const struct td_plan *p, struct td_node_time *out, int max)
{
    int n = 0;
    for (int i = 0; i < p->n_order && max > 0; i++) {
        const struct td_entry *e = &p->e[p->order[i]];
        if (e->where == TD_AT_ALIAS) continue;
        struct td_node_time t = {e->node, e->seconds,  e->cpu_seconds, e->runs,
                                 e->step, e->nthreads, e->concurrent,  node_flops(e)};
        if (n == max && !time_before(&t, &out[max - 1])) continue;
        /* Insertion into the sorted list: the list is short or mostly full. */
        int j = n < max ? n++ : max - 1;
        for (; j > 0 && time_before(&t, &out[j - 1]); j--) out[j] = out[j - 1];
        out[j] = t;
    }
    return n;
}
