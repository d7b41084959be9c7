/* The computation graph and its leaves (inputs, parameters, constants).
 *
 * A graph owns every node created in it, the names, the constants and the
 * parameter store; all of them live until td_graph_free. Nodes are added by
 * builder functions (this file, ops/ops.h, ops/layers.h) and only ever refer
 * to nodes created before them, so creation order is a topological order.
 *
 * Errors are sticky: the first builder that fails (bad shape, NULL operand,
 * node of another graph, out of memory) records a status and a message on the
 * graph and returns NULL; every later builder given that NULL returns NULL
 * without touching the message. Check td_graph_status once after building. */
#ifndef TD_GRAPH_H
#define TD_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"

struct td_graph;
struct td_node;

/* A new empty graph. `seed` drives every parameter initializer. Returns NULL
 * only when out of memory. Free with td_graph_free. */
struct td_graph *td_graph_new(uint64_t seed);

/* Frees the graph, its nodes, constants and parameter store. Plans compiled
 * from it must be freed first. NULL is a no-op. */
void td_graph_free(struct td_graph *g);

/* The seed given to td_graph_new: parameter initializers and dropout masks
 * are drawn from it. */
uint64_t td_graph_seed(const struct td_graph *g);

/* TD_OK, or the first error recorded while building. */
enum td_status td_graph_status(const struct td_graph *g);

/* The message of the first error ("" when none). Owned by the graph. */
const char *td_graph_error(const struct td_graph *g);

/* Forgets a recorded error so building can go on (used by tests and tools
 * that probe bad builds). Nodes already built stay valid. */
void td_graph_clear_error(struct td_graph *g);

/* Rematerialisation. With it on, gradients built afterwards (td_vjp,
 * td_grad_hvp) recompute in their backward pass each activation whose op is
 * cheap to recompute from operands the backward pass reads anyway (GELU:
 * its gradient reads its input), instead of keeping the forward pass's
 * output until then. The values are the same, bitwise; the cost is one
 * elementwise pass per such node, the gain its buffer over the span from
 * the forward pass to the backward one. Off for a new graph.
 * td_graph_set_remat returns the previous setting. */
int td_graph_set_remat(struct td_graph *g, int on);
int td_graph_remat(const struct td_graph *g);

/* Name scopes. Nodes built between push and pop are named by the scope path
 * ("fc1", "block0/attn"); error messages and NaN reports use that name.
 * Returns TD_OK or records TD_ERR_ARG (too deep, name too long). */
enum td_status td_scope_push(struct td_graph *g, const char *name);
void td_scope_pop(struct td_graph *g);

/* A graph input fed at each td_run (data, labels, directions). `name` is
 * copied; dtype TD_F32 or TD_I32. */
struct td_node *td_input(struct td_graph *g, const char *name, struct td_shape shape,
                         enum td_dtype dtype);

/* A constant tensor; `values` (numel floats) are copied into the graph. */
struct td_node *td_constant(struct td_graph *g, struct td_shape shape, const float *values);

/* A constant tensor with every element equal to `value`. */
struct td_node *td_fill(struct td_graph *g, struct td_shape shape, float value);

/* Parameter initializers. Fans are read from the shape in PyTorch's layout:
 * weights [out, in, ...], fan_in = in * receptive field, fan_out = out * rf. */
enum td_init_kind {
    TD_INIT_ZEROS,
    TD_INIT_CONSTANT,       /* a */
    TD_INIT_UNIFORM,        /* U(a, b) */
    TD_INIT_NORMAL,         /* N(mean a, std b) */
    TD_INIT_GLOROT_UNIFORM, /* U(+-sqrt(6 / (fan_in + fan_out))) */
    TD_INIT_GLOROT_NORMAL,  /* N(0, sqrt(2 / (fan_in + fan_out))) */
    TD_INIT_HE_UNIFORM,     /* U(+-sqrt(6 / fan_in)) */
    TD_INIT_HE_NORMAL,      /* N(0, sqrt(2 / fan_in)) */
    TD_INIT_FAN_IN_UNIFORM, /* U(+-1 / sqrt(fan_in)), PyTorch's nn.Linear default */
};

struct td_init {
    enum td_init_kind kind;
    float a, b;
};

/* A trainable float parameter stored in the graph's parameter store and
 * initialised at once from (graph seed, parameter index). `name` is its
 * hierarchical path ("fc1/weight"), also its HDF5 path; it is prefixed by the
 * current scope and must be unique. Parameters can no longer be added once a
 * plan has been compiled (TD_ERR_STATE). */
struct td_node *td_param(struct td_graph *g, const char *name, struct td_shape shape,
                         struct td_init init);

/* Node accessors. The pointers returned are owned by the graph. */
const struct td_shape *td_node_shape(const struct td_node *n);
enum td_dtype td_node_dtype(const struct td_node *n);
const char *td_node_name(const struct td_node *n);    /* NULL when unnamed */
const char *td_node_op_name(const struct td_node *n); /* "input", "param", "const" or an op */
int td_node_id(const struct td_node *n);
int td_node_num_src(const struct td_node *n);
struct td_node *td_node_src(const struct td_node *n, int i);

/* Renames a node (copied). Returns its argument for chaining; NULL passes. */
struct td_node *td_node_set_name(struct td_node *n, const char *name);

/* Number of nodes and the node of a given id (NULL when out of range). */
int td_graph_num_nodes(const struct td_graph *g);
struct td_node *td_graph_node(const struct td_graph *g, int id);

/* The parameter store: flat blocks, one float per parameter element, in
 * creation order, so an optimizer is a flat loop and MPI can reduce several
 * blocks in one buffer. The blocks are owned by the graph; pointers stay
 * valid while no parameter is added. */
struct td_param_info {
    const char *name;     /* hierarchical path, "fc1/weight" */
    struct td_node *node; /* the parameter node */
    struct td_shape shape;
    size_t offset; /* in floats, into every block */
    size_t numel;
};

struct td_params {
    int count;                  /* number of parameter tensors */
    size_t total;               /* floats per block */
    struct td_param_info *info; /* count entries */
    float *value;               /* current values, read by every plan */
    float *grad;                /* gradients written by gradient plans */
    float *tangent;             /* H * dir, written by tangent plans; tangent == grad + total,
                                   and tangent[total] is a spare float, so gradient, tangent
                                   and one more value (a loss) form one buffer for a
                                   data-parallel sum */
    float *dir;                 /* the direction dir (delta theta) tangent plans read */
};

/* The store of g; never NULL for a valid graph. */
struct td_params *td_graph_params(struct td_graph *g);

/* The index of the parameter named `name`, or -1. */
int td_params_find(const struct td_params *p, const char *name);

#endif
