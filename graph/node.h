/* Library-internal view of nodes, used by op files, the autodiff driver and
 * the planner. Not installed: users see struct td_node as opaque. */
#ifndef TD_NODE_H
#define TD_NODE_H

#include <stdarg.h>

#include "graph/graph.h"

#define TD_MAX_SRC 3

struct td_op_def;

enum td_node_kind { TD_NODE_OP, TD_NODE_INPUT, TD_NODE_PARAM, TD_NODE_CONST };

/* Op parameters. Each op documents which fields it reads. */
struct td_attr {
    float f[4];
    int i[TD_MAX_DIMS + 2];
};

struct td_node {
    struct td_graph *graph;
    const struct td_op_def *op; /* NULL for leaves */
    enum td_node_kind kind;
    int id;
    int n_src;
    struct td_node *src[TD_MAX_SRC];
    struct td_shape shape;
    enum td_dtype dtype;
    struct td_attr attr;
    const char *name;        /* graph-owned, NULL when unnamed */
    int param_index;         /* TD_NODE_PARAM: index into the store, else -1 */
    const float *const_data; /* TD_NODE_CONST: numel graph-owned floats */
    int is_zero;             /* TD_NODE_CONST filled with 0: a symbolic zero */
    int recomputed;          /* a copy of an earlier node made for a gradient's
                                backward pass (td_graph_set_remat): it runs
                                once a reader waits for nothing else */
};

/* Adds an op node: checks the operands (count against op->n_src, non-NULL,
 * same graph), copies attr (may be NULL), names it from the current scope
 * and runs op->shape. Returns NULL when an operand is NULL (error already
 * recorded) or on a new error. */
struct td_node *td_node_new(struct td_graph *g, const struct td_op_def *op,
                            struct td_node *const *src, int n_src, const struct td_attr *attr);

/* For shape rules: records TD_ERR_SHAPE with the message
 * "<op> '<name>': <formatted text>" (or "<op> #<id>: ..." when unnamed) and
 * returns TD_ERR_SHAPE. */
enum td_status td_node_fail(struct td_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records an error on the graph unless one is already recorded. */
void td_graph_fail(struct td_graph *g, enum td_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "'fc2'" or "#17": how messages refer to a node. */
const char *td_node_label(const struct td_node *n, char *buf, size_t len);

/* Bytes of n's output. */
size_t td_node_bytes(const struct td_node *n);

/* Forbids adding parameters from now on (a plan holds pointers into the
 * store). */
void td_graph_freeze_params(struct td_graph *g);

/* A new input node "<param name>:dir" of parameter param_index's shape that
 * plans bind to the store's dir block. NULL on error (recorded on g). */
struct td_node *td_graph_dir_input(struct td_graph *g, int param_index);

#endif
