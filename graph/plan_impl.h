/* Internals shared by the planner (plan.c) and the scheduler (sched.c). */
#ifndef TD_PLAN_IMPL_H
#define TD_PLAN_IMPL_H

#include <oneapi/dnnl/dnnl.h>

#include "graph/fpmode.h"
#include "graph/plan.h"
#include "ops/op.h"

/* Where an entry's bytes live. */
enum td_where {
    TD_AT_ARENA, /* offset into the arena */
    TD_AT_FIXED, /* a pointer known at compile time: parameter, constant, dir, binding */
    TD_AT_FEED,  /* an input fed at each run */
    TD_AT_ALIAS, /* a view: src[0]'s pointer, resolved at each run */
};

struct td_entry {
    struct td_node *node;
    int src[TD_MAX_SRC]; /* entry indices of the operands */
    enum td_where where;
    size_t offset; /* TD_AT_ARENA */
    void *fixed;   /* TD_AT_FIXED */
    void *bound;   /* caller memory for an output bound to a leaf or a view */
    int step;      /* -1 for leaves */
    int last_use;  /* last step reading this node directly */
    int live_end;  /* last step reading its bytes, through views or in place */
    int root;      /* entry whose buffer this one shares */
    int nthreads;
    int concurrent; /* runs inside a concurrent group */
    void *state;
    size_t scratch_bytes;
    double seconds;     /* profile: total time in the kernel */
    double cpu_seconds; /* profile: the calling thread's CPU time in it */
    long long runs;
};

/* The first failure a kernel reported during the current run (td_exec_fail). */
struct td_run_status {
    int failed;
    enum td_status code;
    char msg[TD_MSG_MAX];
};

struct td_step {
    int first, count; /* into plan->order */
    int concurrent;
};

struct td_plan {
    struct td_graph *graph;
    int n_entries;
    struct td_entry *e;
    int *entry_of; /* node id -> entry index or -1 */
    int n_graph_nodes;
    int *order; /* op entries in execution order */
    int n_order;
    struct td_step *steps;
    int n_steps;
    int n_outputs;
    int *outputs; /* entry indices */
    void **ptr;   /* per entry data pointer, refreshed by td_run */
    unsigned char *arena;
    size_t arena_bytes, no_reuse_bytes;
    unsigned char *scratch; /* num_threads slots of scratch_slot bytes */
    size_t scratch_slot;
    int num_threads;
    int check_numerics;
    int profile;
    int keep_denormals;
    double parallel_cost, group_cost, solo_cost;
    int num_inplace;
    dnnl_engine_t engine;
    dnnl_stream_t *streams; /* one per thread slot */
    struct td_run_status run_status;
    char msg[TD_MSG_MAX];
};

#endif
