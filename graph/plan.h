/* Compiled plans: a graph's needed nodes in execution order, their buffers
 * placed in one aligned arena by a liveness-based planner, and every oneDNN
 * primitive created once. td_run's own code allocates nothing: buffers,
 * scratch and primitives all come from compile time. (oneDNN 2.6 itself makes
 * small short-lived allocations for its execution context on each primitive
 * call; the heap does not grow across runs.)
 *
 * A plan keeps pointers into its graph: free the plan before the graph. */
#ifndef TD_PLAN_H
#define TD_PLAN_H

#include <stddef.h>

#include "graph/graph.h"

struct td_plan;

/* An output written straight into caller memory (for instance a gradient
 * into the parameter store's grad block) instead of the arena. The memory
 * must hold numel elements and outlive the plan's runs. */
struct td_binding {
    struct td_node *node;
    void *data;
};

struct td_compile_options {
    int num_threads;    /* 0: omp_get_max_threads() at compile time */
    int check_numerics; /* 1: td_run checks each node's output for NaN/Inf */
    int no_reuse;       /* 1: give every buffer its own bytes (for debugging) */
    int profile;        /* 1: td_run times every node (td_plan_profile) */
    /* 0 (default): td_compile and td_run put the calling thread and the
     * OpenMP threads in flush-to-zero and denormals-are-zero mode, and leave
     * them so. Denormal values (below 1.2e-38 in magnitude) become zero; they
     * arise in momentum buffers and tangents that decay for thousands of steps
     * and cost about a hundred cycles per operation without these modes.
     * 1: leave the floating-point modes as they are. */
    int keep_denormals;
    /* Scheduling thresholds, in the ops' cost units (elements touched; a
     * product counts M*N*K/16) (0: the defaults, tuned on 2-core machines):
     * a node of at least parallel_cost gets every thread; independent nodes
     * between group_cost and parallel_cost run side by side, one thread
     * each, and such a node that finds no partner gets every thread if it
     * costs at least solo_cost; the rest run one at a time on one thread. */
    double parallel_cost;
    double group_cost;
    double solo_cost;
    const struct td_binding *bindings; /* outputs placed in caller memory */
    int n_bindings;
};

/* Compiles the nodes needed for `outputs`. Parameters are read from the
 * store; inputs named "<param>:dir" by td_grad_hvp read the store's dir
 * block; other inputs must be fed at each run. opts may be NULL (defaults).
 * Returns NULL on failure, with the status and message recorded on g. */
struct td_plan *td_compile(struct td_graph *g, struct td_node *const *outputs, int n_out,
                           const struct td_compile_options *opts);

void td_plan_free(struct td_plan *p);

/* Data for one input node, read in place during td_run (not copied). */
struct td_feed {
    struct td_node *node;
    const void *data;
};

/* Runs the plan. Every input the plan needs must be fed. Returns TD_OK or an
 * error with the message on the plan: a missing feed (TD_ERR_ARG) or, with
 * check_numerics, the first node whose output holds NaN/Inf (TD_ERR_NUMERIC,
 * the message names the node, its op and the first bad index). */
enum td_status td_run(struct td_plan *p, const struct td_feed *feeds, int n_feeds);

/* Work done between the steps of a run, on the thread that called
 * td_run_hooked: after_step(ctx, s, err, errlen) is called once for each s
 * from 1 to the plan's num_steps, when steps [0, s) have run and their outputs
 * are final where td_plan_output and the bindings put them (see
 * td_plan_ready_step). A status other than TD_OK stops the run with that
 * status, and the message the hook wrote into err becomes the plan's error.
 * Meant for work that overlaps the rest of the run, such as sending finished
 * gradients to other processes. */
struct td_run_hook {
    void *ctx;
    enum td_status (*after_step)(void *ctx, int steps_done, char *err, size_t errlen);
};

/* td_run with a hook (NULL: td_run). Errors as td_run, plus the hook's. */
enum td_status td_run_hooked(struct td_plan *p, const struct td_feed *feeds, int n_feeds,
                             const struct td_run_hook *hook);

/* The steps_done at which a hook first sees n's output final: its step + 1,
 * num_steps for an output the run copies into its binding at the end, 0 for
 * a leaf, or -1 when n is not in the plan. */
int td_plan_ready_step(const struct td_plan *p, const struct td_node *n);

/* The message of the last failed td_run ("" when none). Owned by the plan. */
const char *td_plan_error(const struct td_plan *p);

/* Pointer to output i after td_run; valid until the next td_run or free. */
const float *td_plan_output(const struct td_plan *p, int i);

/* Memory and schedule statistics. */
struct td_plan_stats {
    size_t arena_bytes;    /* bytes the arena holds */
    size_t no_reuse_bytes; /* bytes if every buffer had its own memory */
    size_t scratch_bytes;  /* oneDNN scratch, all thread slots */
    int num_nodes;         /* nodes executed per run */
    int num_steps;         /* scheduler steps (a step is one node or a group run concurrently) */
    int num_concurrent;    /* nodes that run inside concurrent groups */
    int num_inplace;       /* elementwise nodes writing over their input */
    int num_threads;
    double flops; /* per run: the sum of the nodes' op->flops (products, 2MNK each) */
};
void td_plan_get_stats(const struct td_plan *p, struct td_plan_stats *s);

/* Time spent per node over the runs so far (needs the profile option).
 * Fills up to max entries, slowest first, and returns how many it filled
 * (every node executed when max >= td_plan_stats.num_nodes). */
struct td_node_time {
    const struct td_node *node;
    double seconds;     /* total over all runs */
    double cpu_seconds; /* the CPU time of the thread that ran the node, total: on a shared
                           machine, its time without the moments another process held the
                           core (on one thread) */
    long long runs;
    int step, nthreads, concurrent;
    double flops; /* per run, as td_plan_stats.flops; 0 for ops that do not count */
};
int td_plan_profile(const struct td_plan *p, struct td_node_time *out, int max);

/* Where the plan put node n's output: byte offset into the arena and size,
 * or -1 when n is not placed in the arena (leaf, bound output, not in the
 * plan). Used by the planner tests and by `tandem inspect`. */
long long td_plan_buffer(const struct td_plan *p, const struct td_node *n, size_t *bytes);

/* Execution step index of node n (-1 when not in the plan); nodes of the same
 * step may run at the same time. */
int td_plan_step_of(const struct td_plan *p, const struct td_node *n);

/* Last step that reads n's bytes, directly or through a view or an in-place
 * successor sharing them (its own step when nothing reads it), or -1 when n
 * is not in the plan. Outputs are live to the end: they report num_steps. */
int td_plan_last_use(const struct td_plan *p, const struct td_node *n);

#endif
