/* `tandem inspect`: prints a model's graph (nodes, shapes), its parameters,
 * and the planned memory of its forward, gradient and gradient+HVP plans;
 * optionally writes the chosen graph as Graphviz DOT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/setup.h"
#include "optim/step_graph.h"

static const char usage[] =
    "usage: tandem inspect [--model NAME] [--batch N] [--graph forward|grad|hvp]\n"
    "                      [--dot FILE] [--threads N] [--live N] [--remat]\n"
    "  Prints the nodes of the chosen graph (default forward), the parameters and\n"
    "  the arena each plan needs; --dot writes that graph for Graphviz; --live N\n"
    "  lists the N largest buffers live at the step of the chosen graph's plan\n"
    "  that holds the most bytes; --remat builds the derivatives with GELU outputs\n"
    "  recomputed in the backward pass (td_graph_set_remat).\n"
    "  Models:";

/* Ends the usage text, which td_cli_parse prints, with the zoo's names. */
static void print_models(FILE *f)
{
    for (int i = 0; td_models[i]; i++) fprintf(f, " %s", td_models[i]->name);
    fputc('\n', f);
}

static int node_in(struct td_node *const *set, int n, const struct td_node *x)
{
    for (int i = 0; i < n; i++)
        if (set[i] == x) return 1;
    return 0;
}

/* Marks the ancestors of the roots: the nodes a plan for them would run. */
static unsigned char *needed(struct td_graph *g, struct td_node *const *roots, int n)
{
    int N = td_graph_num_nodes(g);
    unsigned char *m = calloc((size_t)N, 1);
    if (!m) return NULL;
    for (int id = N - 1; id >= 0; id--) {
        struct td_node *x = td_graph_node(g, id);
        if (!m[id] && !node_in(roots, n, x)) continue;
        m[id] = 1;
        for (int s = 0; s < td_node_num_src(x); s++) m[td_node_id(td_node_src(x, s))] = 1;
    }
    return m;
}

static void print_nodes(struct td_graph *g, const unsigned char *m)
{
    char buf[96];
    printf("%5s  %-24s %-16s %-16s %s\n", "id", "op", "shape", "operands", "name");
    for (int id = 0; id < td_graph_num_nodes(g); id++) {
        if (!m[id]) continue;
        struct td_node *x = td_graph_node(g, id);
        char srcs[64] = "";
        for (int s = 0; s < td_node_num_src(x); s++) {
            size_t at = strlen(srcs);
            snprintf(srcs + at, sizeof(srcs) - at, "%s%d", s ? "," : "",
                     td_node_id(td_node_src(x, s)));
        }
        printf("%5d  %-24s %-16s %-16s %s\n", id, td_node_op_name(x),
               td_shape_format(td_node_shape(x), buf, sizeof(buf)), srcs,
               td_node_name(x) ? td_node_name(x) : "");
    }
}

static int write_dot(struct td_graph *g, const unsigned char *m, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 0;
    }
    char buf[96];
    fprintf(f, "digraph tandem {\n  rankdir=TB;\n  node [shape=box, fontsize=10];\n");
    for (int id = 0; id < td_graph_num_nodes(g); id++) {
        if (!m[id]) continue;
        struct td_node *x = td_graph_node(g, id);
        const char *op = td_node_op_name(x);
        int leaf = td_node_num_src(x) == 0;
        fprintf(f, "  n%d [label=\"%s%s%s\\n%s\"%s];\n", id, op, td_node_name(x) ? " " : "",
                td_node_name(x) ? td_node_name(x) : "",
                td_shape_format(td_node_shape(x), buf, sizeof(buf)),
                leaf ? ", style=filled, fillcolor=lightgrey" : "");
        for (int s = 0; s < td_node_num_src(x); s++)
            fprintf(f, "  n%d -> n%d;\n", td_node_id(td_node_src(x, s)), id);
    }
    fprintf(f, "}\n");
    int ok = fclose(f) == 0;
    if (!ok) perror(path);
    return ok;
}

/* A buffer of a plan's arena and the steps it is live for. */
struct live_buf {
    struct td_node *node;
    long long off;
    size_t bytes;
    int first, last;
};

/* Orders by offset, then the latest writer first. */
static int by_offset(const void *a, const void *b)
{
    const struct live_buf *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return y->first - x->first;
}

static int by_bytes(const void *a, const void *b)
{
    const struct live_buf *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return x->first - y->first;
}

/* The buffers live at `step`, one per arena offset (an in-place successor
 * takes its operand's bytes at the step it runs, so of the nodes sharing an
 * offset the latest writer holds them), into out; returns how many, and
 * their bytes in *total. */
static int live_at(const struct live_buf *all, int n, int step, struct live_buf *out, double *total)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (all[i].first <= step && step <= all[i].last) out[k++] = all[i];
    qsort(out, (size_t)k, sizeof(*out), by_offset);
    int m = 0;
    *total = 0;
    for (int i = 0; i < k; i++)
        if (m == 0 || out[i].off != out[m - 1].off) {
            out[m++] = out[i];
            *total += (double)out[i].bytes;
        }
    return m;
}

/* Prints the `rows` largest buffers live at the step of plan p that holds
 * the most arena bytes. */
static void print_live(struct td_graph *g, const struct td_plan *p, int rows)
{
    int n_nodes = td_graph_num_nodes(g), n = 0;
    struct live_buf *all = malloc((size_t)(n_nodes + 1) * sizeof(*all));
    struct live_buf *at = malloc((size_t)(n_nodes + 1) * sizeof(*at));
    if (!all || !at) {
        free(all);
        free(at);
        fprintf(stderr, "tandem inspect: out of memory\n");
        return;
    }
    for (int i = 0; i < n_nodes; i++) {
        struct td_node *node = td_graph_node(g, i);
        size_t bytes;
        long long off = td_plan_buffer(p, node, &bytes);
        if (off < 0) continue;
        all[n++] = (struct live_buf){node, off, bytes, td_plan_step_of(p, node),
                                     td_plan_last_use(p, node)};
    }
    struct td_plan_stats st;
    td_plan_get_stats(p, &st);
    int peak = 0;
    double most = -1, total;
    for (int s = 0; s < st.num_steps; s++) {
        live_at(all, n, s, at, &total);
        if (total > most) most = total, peak = s;
    }
    int m = live_at(all, n, peak, at, &total);
    qsort(at, (size_t)m, sizeof(*at), by_bytes);
    printf("\nmost live at step %d of %d: %.3f MB in %d buffers (arena %.3f MB); the largest:\n",
           peak, st.num_steps, total / 1e6, m, (double)st.arena_bytes / 1e6);
    printf("  %9s  %-11s  %-26s %-18s %s\n", "MB", "steps", "op", "shape", "name");
    char shape[96], steps[32];
    for (int i = 0; i < m && i < rows; i++) {
        snprintf(steps, sizeof(steps), "%d-%d", at[i].first, at[i].last);
        const char *name = td_node_name(at[i].node);
        printf("  %9.3f  %-11s  %-26s %-18s %s\n", (double)at[i].bytes / 1e6, steps,
               td_node_op_name(at[i].node),
               td_shape_format(td_node_shape(at[i].node), shape, sizeof(shape)), name ? name : "");
    }
    free(all);
    free(at);
}

/* Compiles one plan, prints its statistics and returns its arena bytes (0
 * when it does not compile). hvp < 0: the forward plan of outs; else the
 * step graph's gradient (0) or gradient+HVP (1) plan with the derivatives
 * written into the parameter store, as the training loop compiles them. */
static size_t print_plan(struct td_graph *g, const char *what, struct td_node **outs, int n,
                         const struct td_step_graph *sgr, int hvp, int threads, int live)
{
    struct td_compile_options co = {.num_threads = threads};
    struct td_plan *p =
        hvp < 0 ? td_compile(g, outs, n, &co) : td_step_graph_compile(sgr, hvp, 1, co);
    if (!p) {
        printf("%-14s cannot compile: %s\n", what, td_graph_error(g));
        return 0;
    }
    struct td_plan_stats s;
    td_plan_get_stats(p, &s);
    printf("%-14s %5d nodes %5d steps %5d concurrent %4d in place   arena %10zu B  "
           "(no reuse %10zu B, %.1fx)   scratch %zu B   %.3f GFLOP\n",
           what, s.num_nodes, s.num_steps, s.num_concurrent, s.num_inplace, s.arena_bytes,
           s.no_reuse_bytes, s.arena_bytes ? (double)s.no_reuse_bytes / (double)s.arena_bytes : 0,
           s.scratch_bytes, 1e-9 * s.flops);
    if (live > 0) print_live(g, p, live);
    td_plan_free(p);
    return s.arena_bytes;
}

int td_cmd_inspect(int argc, char **argv)
{
    const char *model = "mlp", *which = "forward", *dot = NULL;
    long long batch = 128, threads = 0, live = 0;
    int remat = 0;
    struct td_model_config mc = {.dropout = -1};
    const struct td_opt opts[] = {
        TD_MODEL_OPTS(mc),
        {"--model", TD_OPT_STR, &model, 0, 0},
        {"--batch", TD_OPT_INT, &batch, 1, 1 << 20},
        {"--graph", TD_OPT_STR, &which, 0, 0},
        {"--dot", TD_OPT_STR, &dot, 0, 0},
        {"--threads", TD_OPT_INT, &threads, 1, 1024},
        {"--live", TD_OPT_INT, &live, 1, 1 << 20},
        {"--remat", TD_OPT_FLAG, &remat, 0, 0},
    };
    int r = td_cli_parse("inspect", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) {
        print_models(r == 0 ? stdout : stderr);
        return r == 0 ? 0 : 2;
    }
    const struct td_model_info *info = td_model_find(model);
    if (!info || (strcmp(which, "forward") && strcmp(which, "grad") && strcmp(which, "hvp"))) {
        fprintf(stderr, "tandem inspect: unknown %s '%s'\n", info ? "graph" : "model",
                info ? which : model);
        fputs(usage, stderr);
        print_models(stderr);
        return 2;
    }
    struct td_graph *g = td_graph_new(1);
    struct td_model m;
    struct td_data_desc data = td_model_synthetic_data(info);
    struct td_params *p = td_graph_params(g);
    struct td_step_graph sgr = {0};
    td_graph_set_remat(g, remat);
    enum td_status st = td_model_build(info, g, (int)batch, &data, &mc, &m);
    if (st == TD_OK) st = td_step_graph_init(&sgr, g, m.loss);
    if (st != TD_OK) {
        fprintf(stderr, "tandem inspect: %s\n",
                st == TD_ERR_NOMEM ? "out of memory" : td_graph_error(g));
        td_step_graph_free(&sgr);
        td_graph_free(g);
        return 1;
    }
    struct td_node *forward[2] = {m.loss, m.logits};
    int n_roots =
        !strcmp(which, "forward") ? 2 : td_step_graph_num_outputs(&sgr, !strcmp(which, "hvp"));
    struct td_node **roots = !strcmp(which, "forward") ? forward : sgr.outs;
    unsigned char *mark = needed(g, roots, n_roots);
    if (!mark) return 1;
    printf("model %s (%s), batch %lld, %s graph\n\n", info->name, info->summary, batch, which);
    print_nodes(g, mark);
    char buf[96];
    printf("\nparameters: %d tensors, %zu values (%.2f MiB)\n", p->count, p->total,
           (double)p->total * 4 / (1 << 20));
    for (int i = 0; i < p->count; i++)
        printf("  %-20s %-12s %zu\n", p->info[i].name,
               td_shape_format(&p->info[i].shape, buf, sizeof(buf)), p->info[i].numel);
    printf("\nplans (gradient and HVP written into the parameter store, as in training):\n");
    /* --live lists the chosen graph's plan. */
    int lf = !strcmp(which, "forward") ? (int)live : 0, lg = !strcmp(which, "grad") ? (int)live : 0;
    int lh = !strcmp(which, "hvp") ? (int)live : 0;
    print_plan(g, "forward", forward, 2, &sgr, -1, (int)threads, lf);
    size_t ga = print_plan(g, "gradient", NULL, 0, &sgr, 0, (int)threads, lg);
    size_t ha = print_plan(g, "gradient+HVP", NULL, 0, &sgr, 1, (int)threads, lh);
    if (ga > 0 && ha > 0)
        printf("arena of the gradient+HVP plan / the gradient plan's: %.2fx\n",
               (double)ha / (double)ga);
    int ok = !dot || write_dot(g, mark, dot);
    if (dot && ok) printf("\nwrote %s\n", dot);
    free(mark);
    td_step_graph_free(&sgr);
    td_graph_free(g);
    return ok ? 0 : 1;
}
