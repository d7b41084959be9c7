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
    "                      [--dot FILE] [--threads N]\n"
    "  Prints the nodes of the chosen graph (default forward), the parameters and\n"
    "  the arena each plan needs; --dot writes that graph for Graphviz.\n"
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

/* Compiles one plan, prints its statistics and returns its arena bytes (0
 * when it does not compile). hvp < 0: the forward plan of outs; else the
 * step graph's gradient (0) or gradient+HVP (1) plan with the derivatives
 * written into the parameter store, as the training loop compiles them. */
static size_t print_plan(struct td_graph *g, const char *what, struct td_node **outs, int n,
                         const struct td_step_graph *sgr, int hvp, int threads)
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
    td_plan_free(p);
    return s.arena_bytes;
}

int td_cmd_inspect(int argc, char **argv)
{
    const char *model = "mlp", *which = "forward", *dot = NULL;
    long long batch = 128, threads = 0;
    struct td_model_config mc = {.dropout = -1};
    const struct td_opt opts[] = {
        TD_MODEL_OPTS(mc),
        {"--model", TD_OPT_STR, &model, 0, 0},
        {"--batch", TD_OPT_INT, &batch, 1, 1 << 20},
        {"--graph", TD_OPT_STR, &which, 0, 0},
        {"--dot", TD_OPT_STR, &dot, 0, 0},
        {"--threads", TD_OPT_INT, &threads, 1, 1024},
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
    print_plan(g, "forward", forward, 2, &sgr, -1, (int)threads);
    size_t ga = print_plan(g, "gradient", NULL, 0, &sgr, 0, (int)threads);
    size_t ha = print_plan(g, "gradient+HVP", NULL, 0, &sgr, 1, (int)threads);
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
