#include "graph/node.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/rng.h"
#include "ops/op.h"

#define TD_SCOPE_MAX 256
#define TD_SCOPE_DEPTH 16
#define TD_ARENA_BLOCK (64 * 1024)

/* Graph-owned memory (nodes, names, constants) comes from a list of blocks
 * freed together, so nodes never move and need no individual frees. */
struct td_block {
    struct td_block *next;
    size_t used, size;
    _Alignas(64) unsigned char data[];
};

struct td_graph {
    uint64_t seed;
    enum td_status status;
    char msg[TD_MSG_MAX];
    struct td_block *blocks;
    struct td_node **nodes;
    int n_nodes, cap_nodes;
    char scope[TD_SCOPE_MAX];
    size_t scope_len[TD_SCOPE_DEPTH + 1];
    int scope_depth;
    struct td_params params;
    void *params_raw[3]; /* allocations holding params.value, dir and grad (aligned within) */
    int params_cap;
    int params_frozen;
    int remat;
};

static void *graph_alloc(struct td_graph *g, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    struct td_block *b = g->blocks;
    if (!b || b->used + bytes > b->size) {
        size_t size = bytes > TD_ARENA_BLOCK ? bytes : TD_ARENA_BLOCK;
        b = aligned_alloc(64, (sizeof(*b) + size + 63) & ~(size_t)63);
        if (!b) return NULL;
        b->next = g->blocks;
        b->used = 0;
        b->size = size;
        g->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    return p;
}

static char *graph_strdup(struct td_graph *g, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = graph_alloc(g, n);
    if (d) memcpy(d, s, n);
    return d;
}

struct td_graph *td_graph_new(uint64_t seed)
{
    struct td_graph *g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->seed = seed;
    return g;
}

void td_graph_free(struct td_graph *g)
{
    if (!g) return;
    while (g->blocks) {
        struct td_block *next = g->blocks->next;
        free(g->blocks);
        g->blocks = next;
    }
    free(g->nodes);
    free(g->params.info);
    for (int b = 0; b < 3; b++) free(g->params_raw[b]);
    free(g);
}

uint64_t td_graph_seed(const struct td_graph *g)
{
    return g->seed;
}

enum td_status td_graph_status(const struct td_graph *g)
{
    return g->status;
}

const char *td_graph_error(const struct td_graph *g)
{
    return g->msg;
}

void td_graph_clear_error(struct td_graph *g)
{
    g->status = TD_OK;
    g->msg[0] = '\0';
}

static void graph_vfail(struct td_graph *g, enum td_status s, const char *fmt, va_list ap)
{
    if (g->status != TD_OK) return;
    g->status = s;
    vsnprintf(g->msg, sizeof(g->msg), fmt, ap);
}

void td_graph_fail(struct td_graph *g, enum td_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    graph_vfail(g, s, fmt, ap);
    va_end(ap);
}

const char *td_node_label(const struct td_node *n, char *buf, size_t len)
{
    if (n->name)
        snprintf(buf, len, "'%s'", n->name);
    else
        snprintf(buf, len, "#%d", n->id);
    return buf;
}

enum td_status td_node_fail(struct td_node *n, const char *fmt, ...)
{
    char text[TD_MSG_MAX], label[TD_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    td_graph_fail(n->graph, TD_ERR_SHAPE, "%s %s: %s", td_node_op_name(n),
                  td_node_label(n, label, sizeof(label)), text);
    return TD_ERR_SHAPE;
}

enum td_status td_scope_push(struct td_graph *g, const char *name)
{
    size_t len = g->scope_len[g->scope_depth];
    size_t add = strlen(name) + (len ? 1 : 0);
    if (g->scope_depth >= TD_SCOPE_DEPTH || len + add + 1 > TD_SCOPE_MAX || !name[0]) {
        td_graph_fail(g, TD_ERR_ARG, "scope '%s': empty, too long or nested too deeply", name);
        return TD_ERR_ARG;
    }
    snprintf(g->scope + len, TD_SCOPE_MAX - len, "%s%s", len ? "/" : "", name);
    g->scope_depth++;
    g->scope_len[g->scope_depth] = len + add;
    return TD_OK;
}

void td_scope_pop(struct td_graph *g)
{
    if (g->scope_depth == 0) return;
    g->scope_depth--;
    g->scope[g->scope_len[g->scope_depth]] = '\0';
}

/* Writes "scope/name", "scope" or "name" into buf (TD_SCOPE_MAX * 2 bytes);
 * returns buf, or NULL when both are empty. */
static const char *format_scoped(const struct td_graph *g, const char *name, char *buf)
{
    size_t len = g->scope_len[g->scope_depth];
    if (name && len)
        snprintf(buf, TD_SCOPE_MAX * 2, "%s/%s", g->scope, name);
    else if (len)
        snprintf(buf, TD_SCOPE_MAX * 2, "%s", g->scope);
    else if (name)
        snprintf(buf, TD_SCOPE_MAX * 2, "%s", name);
    else
        return NULL;
    return buf;
}

/* The scoped name copied into the graph's arena; NULL when both are empty
 * or out of memory. */
static const char *scoped_name(struct td_graph *g, const char *name)
{
    char buf[TD_SCOPE_MAX * 2];
    return format_scoped(g, name, buf) ? graph_strdup(g, buf) : NULL;
}

static struct td_node *node_alloc(struct td_graph *g, enum td_node_kind kind, const char *name)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        struct td_node **nodes = realloc(g->nodes, (size_t)cap * sizeof(*nodes));
        if (!nodes) return NULL;
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    struct td_node *n = graph_alloc(g, sizeof(*n));
    if (!n) return NULL;
    memset(n, 0, sizeof(*n));
    n->graph = g;
    n->kind = kind;
    n->id = g->n_nodes;
    n->param_index = -1;
    n->name = scoped_name(g, name);
    /* NULL is a valid name only when neither a name nor a scope was given. */
    if (!n->name && (name || g->scope_len[g->scope_depth])) return NULL;
    return n;
}

static struct td_node *node_commit(struct td_graph *g, struct td_node *n)
{
    g->nodes[g->n_nodes++] = n;
    return n;
}

static struct td_node *nomem(struct td_graph *g, const char *what)
{
    td_graph_fail(g, TD_ERR_NOMEM, "%s: out of memory", what);
    return NULL;
}

struct td_node *td_node_new(struct td_graph *g, const struct td_op_def *op,
                            struct td_node *const *src, int n_src, const struct td_attr *attr)
{
    if (!g) return NULL;
    if (op->n_src ? n_src != op->n_src : n_src < 1 || n_src > TD_MAX_SRC) {
        if (op->n_src)
            td_graph_fail(g, TD_ERR_ARG, "%s: takes %d operands, got %d", op->name, op->n_src,
                          n_src);
        else
            td_graph_fail(g, TD_ERR_ARG, "%s: takes 1 to %d operands, got %d", op->name, TD_MAX_SRC,
                          n_src);
        return NULL;
    }
    for (int i = 0; i < n_src; i++) {
        if (!src[i]) {
            /* A NULL operand is the result of an earlier failed builder. */
            td_graph_fail(g, TD_ERR_ARG, "%s: operand %d is NULL", op->name, i + 1);
            return NULL;
        }
        if (src[i]->graph != g) {
            td_graph_fail(g, TD_ERR_ARG, "%s: operand %d belongs to another graph", op->name,
                          i + 1);
            return NULL;
        }
    }
    struct td_node *n = node_alloc(g, TD_NODE_OP, NULL);
    if (!n) return nomem(g, op->name);
    n->op = op;
    n->n_src = n_src;
    for (int i = 0; i < n_src; i++) n->src[i] = src[i];
    if (attr) n->attr = *attr;
    n->dtype = TD_F32;
    if (op->shape(n) != TD_OK) return NULL;
    return node_commit(g, n);
}

static int check_leaf_shape(struct td_graph *g, const char *what, const char *name,
                            const struct td_shape *shape)
{
    if (td_shape_valid(shape)) return 1;
    char buf[128];
    struct td_shape shown = *shape;
    if (shown.rank < 0 || shown.rank > TD_MAX_DIMS) shown.rank = 0;
    td_graph_fail(g, TD_ERR_SHAPE, "%s '%s': invalid shape %s (rank %d, dims must be >= 1)", what,
                  name ? name : "", td_shape_format(&shown, buf, sizeof(buf)), shape->rank);
    return 0;
}

struct td_node *td_input(struct td_graph *g, const char *name, struct td_shape shape,
                         enum td_dtype dtype)
{
    if (!g) return NULL;
    char shown[TD_SCOPE_MAX * 2];
    if (!check_leaf_shape(g, "input", format_scoped(g, name, shown), &shape)) return NULL;
    struct td_node *n = node_alloc(g, TD_NODE_INPUT, name);
    if (!n) return nomem(g, "input");
    n->shape = shape;
    n->dtype = dtype;
    return node_commit(g, n);
}

struct td_node *td_constant(struct td_graph *g, struct td_shape shape, const float *values)
{
    if (!g) return NULL;
    if (!check_leaf_shape(g, "constant", NULL, &shape)) return NULL;
    struct td_node *n = node_alloc(g, TD_NODE_CONST, NULL);
    size_t bytes = (size_t)td_shape_numel(&shape) * sizeof(float);
    float *data = n ? graph_alloc(g, bytes) : NULL;
    if (!data) return nomem(g, "constant");
    memcpy(data, values, bytes);
    n->shape = shape;
    n->dtype = TD_F32;
    n->const_data = data;
    return node_commit(g, n);
}

struct td_node *td_fill(struct td_graph *g, struct td_shape shape, float value)
{
    if (!g) return NULL;
    if (!check_leaf_shape(g, "fill", NULL, &shape)) return NULL;
    struct td_node *n = node_alloc(g, TD_NODE_CONST, NULL);
    int64_t count = td_shape_numel(&shape);
    float *data = n ? graph_alloc(g, (size_t)count * sizeof(float)) : NULL;
    if (!data) return nomem(g, "fill");
    for (int64_t i = 0; i < count; i++) data[i] = value;
    n->shape = shape;
    n->dtype = TD_F32;
    n->const_data = data;
    n->is_zero = value == 0.0f;
    return node_commit(g, n);
}

static void fans(const struct td_shape *s, double *fan_in, double *fan_out)
{
    if (s->rank == 0) {
        *fan_in = *fan_out = 1;
    } else if (s->rank == 1) {
        *fan_in = *fan_out = (double)s->dim[0];
    } else {
        double rf = 1;
        for (int i = 2; i < s->rank; i++) rf *= (double)s->dim[i];
        *fan_out = (double)s->dim[0] * rf;
        *fan_in = (double)s->dim[1] * rf;
    }
}

static void init_values(float *v, size_t count, const struct td_shape *s, struct td_init init,
                        uint64_t seed, uint64_t stream)
{
    double fi, fo;
    fans(s, &fi, &fo);
    double bound = 0, std = 0;
    switch (init.kind) {
    case TD_INIT_GLOROT_UNIFORM:
        bound = sqrt(6.0 / (fi + fo));
        break;
    case TD_INIT_HE_UNIFORM:
        bound = sqrt(6.0 / fi);
        break;
    case TD_INIT_FAN_IN_UNIFORM:
        bound = 1.0 / sqrt(fi);
        break;
    case TD_INIT_GLOROT_NORMAL:
        std = sqrt(2.0 / (fi + fo));
        break;
    case TD_INIT_HE_NORMAL:
        std = sqrt(2.0 / fi);
        break;
    default:
        break;
    }
    for (size_t i = 0; i < count; i++) {
        switch (init.kind) {
        case TD_INIT_ZEROS:
            v[i] = 0;
            break;
        case TD_INIT_CONSTANT:
            v[i] = init.a;
            break;
        case TD_INIT_UNIFORM:
            v[i] = init.a + (init.b - init.a) * td_rng_uniform(seed, stream, i);
            break;
        case TD_INIT_NORMAL:
            v[i] = init.a + init.b * td_rng_normal(seed, stream, i);
            break;
        case TD_INIT_GLOROT_UNIFORM:
        case TD_INIT_HE_UNIFORM:
        case TD_INIT_FAN_IN_UNIFORM:
            v[i] = (float)(bound * (2.0 * td_rng_uniform(seed, stream, i) - 1.0));
            break;
        case TD_INIT_GLOROT_NORMAL:
        case TD_INIT_HE_NORMAL:
            v[i] = (float)(std * td_rng_normal(seed, stream, i));
            break;
        }
    }
}

static int grow_params(struct td_graph *g, size_t total)
{
    struct td_params *p = &g->params;
    if (p->count == g->params_cap) {
        int c = g->params_cap ? g->params_cap * 2 : 16;
        struct td_param_info *info = realloc(p->info, (size_t)c * sizeof(*info));
        if (!info) return 0;
        p->info = info;
        g->params_cap = c;
    }
    /* Slots 0 to 2; the optimizers' blocks take the next ones. */
    if (!td_float_block_grow(&g->params_raw[0], &p->value, p->total, total, 0) ||
        !td_float_block_grow(&g->params_raw[1], &p->dir, p->total, total, 1))
        return 0;
    /* grad | tangent | one spare float, in one block (see graph.h). */
    if (!td_float_block_grow(&g->params_raw[2], &p->grad, p->grad ? 2 * p->total + 1 : 0,
                             2 * total + 1, 2))
        return 0;
    float *d = p->grad;
    memmove(d + total, d + p->total, p->total * sizeof(float));
    memset(d + p->total, 0, (total - p->total) * sizeof(float));
    p->tangent = d + total;
    return 1;
}

struct td_node *td_param(struct td_graph *g, const char *name, struct td_shape shape,
                         struct td_init init)
{
    if (!g) return NULL;
    if (!name || !name[0]) {
        td_graph_fail(g, TD_ERR_ARG, "param: a parameter needs a name");
        return NULL;
    }
    char shown[TD_SCOPE_MAX * 2];
    if (!check_leaf_shape(g, "param", format_scoped(g, name, shown), &shape)) return NULL;
    struct td_node *n = node_alloc(g, TD_NODE_PARAM, name);
    if (!n || !n->name) return nomem(g, "param");
    struct td_params *p = &g->params;
    if (g->params_frozen) {
        td_graph_fail(g, TD_ERR_STATE,
                      "param '%s': parameters cannot be added after a plan was compiled", n->name);
        return NULL;
    }
    if (td_params_find(p, n->name) >= 0) {
        td_graph_fail(g, TD_ERR_ARG, "param '%s': name already used", n->name);
        return NULL;
    }
    size_t numel = (size_t)td_shape_numel(&shape);
    if (!grow_params(g, p->total + numel)) return nomem(g, "param");
    struct td_param_info *pi = &p->info[p->count];
    pi->name = n->name;
    pi->node = n;
    pi->shape = shape;
    pi->offset = p->total;
    pi->numel = numel;
    init_values(p->value + p->total, numel, &shape, init, g->seed, (uint64_t)p->count);
    n->shape = shape;
    n->dtype = TD_F32;
    n->param_index = p->count;
    p->count++;
    p->total += numel;
    return node_commit(g, n);
}

struct td_params *td_graph_params(struct td_graph *g)
{
    return &g->params;
}

int td_params_find(const struct td_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->info[i].name, name) == 0) return i;
    return -1;
}

void td_graph_freeze_params(struct td_graph *g)
{
    g->params_frozen = 1;
}

struct td_node *td_graph_dir_input(struct td_graph *g, int param_index)
{
    const struct td_param_info *pi = &g->params.info[param_index];
    char name[TD_SCOPE_MAX * 2];
    snprintf(name, sizeof(name), "%s:dir", pi->name);
    /* Built outside any scope: the name is the parameter's full path. */
    int depth = g->scope_depth;
    g->scope_depth = 0;
    struct td_node *n = td_input(g, name, pi->shape, TD_F32);
    g->scope_depth = depth;
    if (n) n->param_index = param_index;
    return n;
}

const struct td_shape *td_node_shape(const struct td_node *n)
{
    return &n->shape;
}

enum td_dtype td_node_dtype(const struct td_node *n)
{
    return n->dtype;
}

const char *td_node_name(const struct td_node *n)
{
    return n->name;
}

const char *td_node_op_name(const struct td_node *n)
{
    switch (n->kind) {
    case TD_NODE_INPUT:
        return "input";
    case TD_NODE_PARAM:
        return "param";
    case TD_NODE_CONST:
        return "const";
    case TD_NODE_OP:
        break;
    }
    return n->op->name;
}

int td_node_id(const struct td_node *n)
{
    return n->id;
}

int td_node_num_src(const struct td_node *n)
{
    return n->n_src;
}

struct td_node *td_node_src(const struct td_node *n, int i)
{
    return i >= 0 && i < n->n_src ? n->src[i] : NULL;
}

struct td_node *td_node_set_name(struct td_node *n, const char *name)
{
    if (!n) return NULL;
    const char *copy = graph_strdup(n->graph, name);
    if (copy) n->name = copy;
    return n;
}

int td_graph_set_remat(struct td_graph *g, int on)
{
    int was = g->remat;
    g->remat = on != 0;
    return was;
}

int td_graph_remat(const struct td_graph *g)
{
    return g->remat;
}

int td_graph_num_nodes(const struct td_graph *g)
{
    return g->n_nodes;
}

struct td_node *td_graph_node(const struct td_graph *g, int id)
{
    return id >= 0 && id < g->n_nodes ? g->nodes[id] : NULL;
}

size_t td_node_bytes(const struct td_node *n)
{
    return (size_t)td_shape_numel(&n->shape) * td_dtype_size(n->dtype);
}
