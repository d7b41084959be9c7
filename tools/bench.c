/* tandem-bench: times the plans of one training step of a zoo model on a
 * random batch: the gradient plan, the gradient+HVP plan, the JVP of the
 * logits, and a whole optimizer step (gradient plan plus the update).
 * Prints one `key value` line per measurement so tools/bench.sh can set
 * them beside PyTorch's; FLOP counts are the plans' own (products counted
 * as 2MNK, td_plan_get_stats), so efficiency is computed, not hand-counted.
 * --profile adds the time of every node and of every op, with GFLOP/s and
 * the share of the step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "graph/node.h"
#include "optim/step_graph.h"
#include "tools/bench_product.h"
#include "tools/cli.h"
#include "tools/setup.h"

static const char usage[] =
    "usage: tandem-bench [--model NAME] [--batch N] [--threads N] [--steps N] [--warmup N]\n"
    "                    [--plans LIST] [--optimizer NAME] [--profile] [--top N]\n"
    "                    [--parallel-cost X] [--group-cost X] [--solo-cost X] [--remat]\n"
    "                    [--layers N --d-model N --heads N --context N --dropout P]\n"
    "       tandem-bench --product M,K,N [--threads N] [--steps N] [--warmup N]\n"
    "  --plans    comma-separated, of: grad, hvp, jvp (JVP of the logits), train (the\n"
    "             gradient plan and the optimizer's update); default grad,hvp\n"
    "  --batch    default: 16 for text models, 256 for wide-mlp, 128 otherwise\n"
    "  --optimizer  the update of the train plan (default adamw, with the GPT recipe's\n"
    "             beta2 0.95, weight decay 0.1, clipping at 1)\n"
    "  --parallel-cost, --group-cost, --solo-cost  the scheduler's thresholds "
    "(td_compile_options)\n"
    "  --remat    recompute GELU outputs in the backward pass (td_graph_set_remat)\n"
    "  --product  times one product [M,K] x [K,N] alone in a plan, with each operand\n"
    "             stored plain or transposed (nn, tn, nt, tt), the four alternating\n";

enum { REPS = 7 };

/* What one timed run executes: a plan, then optionally an optimizer step. */
struct timed {
    struct td_plan *plan;
    const struct td_feed *feeds;
    int n_feeds;
    struct td_optim *opt; /* NULL: the plan alone */
    struct td_params *p;
};

static void run_once(const struct timed *t)
{
    if (td_run(t->plan, t->feeds, t->n_feeds) != TD_OK) {
        fprintf(stderr, "tandem-bench: %s\n", td_plan_error(t->plan));
        exit(1);
    }
    if (t->opt && td_optim_step(t->opt, t->p, 1e-4f) != TD_OK) {
        fprintf(stderr, "tandem-bench: %s\n", td_optim_error(t->opt));
        exit(1);
    }
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The median of REPS repetitions of `steps` runs resists noise from the
 * other tenants; *spread gets (max - min) / median of the repetitions and
 * *cpu the median CPU time of the process per run (all threads, spinning
 * included): on one thread, the run's time without the moments another
 * process held the core. */
static double time_runs(const struct timed *t, long long warmup, long long steps, double *spread,
                        double *cpu)
{
    for (long long i = 0; i < warmup; i++) run_once(t);
    double r[REPS], c[REPS];
    for (int k = 0; k < REPS; k++) {
        double t0 = td_cli_now(), c0 = cpu_seconds();
        for (long long i = 0; i < steps; i++) run_once(t);
        r[k] = (td_cli_now() - t0) / (double)steps;
        c[k] = (cpu_seconds() - c0) / (double)steps;
    }
    qsort(r, REPS, sizeof(double), td_cli_cmp_double);
    qsort(c, REPS, sizeof(double), td_cli_cmp_double);
    *spread = (r[REPS - 1] - r[0]) / r[REPS / 2];
    *cpu = c[REPS / 2];
    return r[REPS / 2];
}

struct op_sum {
    const char *name;
    double seconds, cpu, flops;
    int nodes;
};

static int cmp_op_sum(const void *a, const void *b)
{
    const struct op_sum *x = a, *y = b;
    if (x->seconds != y->seconds) return x->seconds > y->seconds ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Every node's time per run (from the profile), the slowest `top` of them
 * with their GFLOP/s and share of the step, then the same summed per op.
 * "cpu us" is the CPU time of the thread that ran the node: on a shared
 * machine and one thread, the time without preemption. */
static void print_profile(const char *what, const struct td_plan *plan, int top)
{
    struct td_plan_stats st;
    td_plan_get_stats(plan, &st);
    struct td_node_time *t = malloc((size_t)st.num_nodes * sizeof(*t));
    struct op_sum *ops = calloc((size_t)st.num_nodes, sizeof(*ops));
    if (!t || !ops) {
        free(t), free(ops);
        return;
    }
    int n = td_plan_profile(plan, t, st.num_nodes), n_ops = 0;
    double total = 0, total_cpu = 0;
    for (int i = 0; i < n; i++) {
        double runs = (double)(t[i].runs ? t[i].runs : 1);
        total += t[i].seconds / runs;
        total_cpu += t[i].cpu_seconds / runs;
    }
    printf("\n%s: %d nodes, %.3f ms per run in kernels (%.3f ms of CPU time), %.2f GFLOP per "
           "run\n",
           what, n, 1e3 * total, 1e3 * total_cpu, 1e-9 * st.flops);
    printf("  %10s %10s %6s %8s  %-26s %-16s %5s %5s  %s\n", "us/run", "cpu us", "share", "GFLOP/s",
           "op", "shape", "step", "thr", "name");
    char buf[64];
    for (int i = 0; i < n; i++) {
        double runs = (double)(t[i].runs ? t[i].runs : 1);
        double s = t[i].seconds / runs, c = t[i].cpu_seconds / runs;
        if (i < top) {
            printf("  %10.1f %10.1f %5.1f%% ", 1e6 * s, 1e6 * c, 100 * s / total);
            if (t[i].flops > 0)
                printf("%8.1f", s > 0 ? 1e-9 * t[i].flops / s : 0);
            else
                printf("%8s", "-");
            printf("  %-26s %-16s %5d %4d%s  %s\n", td_node_op_name(t[i].node),
                   td_shape_format(td_node_shape(t[i].node), buf, sizeof(buf)), t[i].step,
                   t[i].nthreads, t[i].concurrent ? "g" : " ",
                   td_node_name(t[i].node) ? td_node_name(t[i].node) : "");
        }
        const char *name = td_node_op_name(t[i].node);
        int j = 0;
        while (j < n_ops && strcmp(ops[j].name, name) != 0) j++;
        if (j == n_ops) ops[n_ops++].name = name;
        ops[j].seconds += s;
        ops[j].cpu += c;
        ops[j].flops += t[i].flops;
        ops[j].nodes++;
    }
    qsort(ops, (size_t)n_ops, sizeof(*ops), cmp_op_sum);
    printf("\n%s: by op\n  %10s %10s %6s %8s  %-26s %5s\n", what, "us/run", "cpu us", "share",
           "GFLOP/s", "op", "nodes");
    for (int j = 0; j < n_ops; j++) {
        printf("  %10.1f %10.1f %5.1f%% ", 1e6 * ops[j].seconds, 1e6 * ops[j].cpu,
               100 * ops[j].seconds / total);
        if (ops[j].flops > 0)
            printf("%8.1f", 1e-9 * ops[j].flops / ops[j].seconds);
        else
            printf("%8s", "-");
        printf("  %-26s %5d\n", ops[j].name, ops[j].nodes);
    }
    free(t);
    free(ops);
}

/* Whether `name` is one of the comma-separated words of `list`. */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = list; s && *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, name, n) == 0) return 1;
        s = e ? e + 1 : NULL;
    }
    return 0;
}

static long long default_batch(const struct td_model_info *info)
{
    if (info->data == TD_DATA_TEXT) return 16;
    return strcmp(info->name, "wide-mlp") == 0 ? 256 : 128;
}

/* The JVP of the logits in the direction p->dir: outs[0] the logits,
 * outs[1] their tangent. */
static enum td_status jvp_outputs(struct td_graph *g, struct td_node *logits, struct td_node **outs)
{
    struct td_params *p = td_graph_params(g);
    struct td_node **params = malloc((size_t)p->count * sizeof(*params));
    struct td_node **dirs = malloc((size_t)p->count * sizeof(*dirs));
    enum td_status st = params && dirs ? TD_OK : TD_ERR_NOMEM;
    for (int i = 0; st == TD_OK && i < p->count; i++) {
        params[i] = p->info[i].node;
        dirs[i] = td_graph_dir_input(g, i);
    }
    if (st == TD_OK) st = td_graph_status(g);
    outs[0] = logits;
    if (st == TD_OK) st = td_jvp(g, params, dirs, p->count, &logits, 1, &outs[1]);
    free(params), free(dirs);
    return st;
}

static void report(const char *key, double seconds, double spread, double cpu, double flops,
                   long long batch)
{
    printf("%s_ms %.4f\n%s_spread %.3f\n%s_cpu_ms %.4f\n", key, 1e3 * seconds, key, spread, key,
           1e3 * cpu);
    if (flops > 0)
        printf("%s_gflop %.4f\n%s_gflops %.1f\n", key, 1e-9 * flops, key, 1e-9 * flops / seconds);
    printf("%s_samples_per_s %.0f\n", key, (double)batch / seconds);
}

int main(int argc, char **argv)
{
    const char *model = "mlp", *plans = "grad,hvp", *optimizer = "adamw", *product = NULL;
    long long batch = 0, threads = 0, steps = 50, warmup = 20, top = 24;
    double parallel_cost = 0, group_cost = 0, solo_cost = 0;
    int profile = 0, remat = 0;
    struct td_model_config mc = {.dropout = -1};
    const struct td_opt opts[] = {
        TD_MODEL_OPTS(mc),
        {"--model", TD_OPT_STR, &model, 0, 0},
        {"--batch", TD_OPT_INT, &batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &threads, 1, 1024},
        {"--steps", TD_OPT_INT, &steps, 1, 1e9},
        {"--warmup", TD_OPT_INT, &warmup, 0, 1e9},
        {"--plans", TD_OPT_STR, &plans, 0, 0},
        {"--optimizer", TD_OPT_STR, &optimizer, 0, 0},
        {"--profile", TD_OPT_FLAG, &profile, 0, 0},
        {"--top", TD_OPT_INT, &top, 0, 1e9},
        {"--parallel-cost", TD_OPT_FLOAT, &parallel_cost, 0, 1e18},
        {"--group-cost", TD_OPT_FLOAT, &group_cost, 0, 1e18},
        {"--solo-cost", TD_OPT_FLOAT, &solo_cost, 0, 1e18},
        {"--remat", TD_OPT_FLAG, &remat, 0, 0},
        {"--product", TD_OPT_STR, &product, 0, 0},
    };
    int r = td_cli_parse("bench", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    if (product) return bench_product_run(product, (int)threads, warmup, steps, REPS);
    const struct td_model_info *info = td_model_find(model);
    if (!info) {
        fprintf(stderr, "tandem-bench: unknown model '%s'\n", model);
        return 2;
    }
    static const char *const known[] = {"grad", "hvp", "jvp", "train"};
    for (const char *s = plans; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int ok = 0;
        for (int i = 0; i < 4; i++) ok |= strlen(known[i]) == len && !strncmp(s, known[i], len);
        if (!ok) {
            fprintf(stderr, "tandem-bench: unknown plan '%.*s' in --plans\n%s", (int)len, s, usage);
            return 2;
        }
        s = e ? e + 1 : s + len;
    }
    if (batch == 0) batch = default_batch(info);
    struct td_graph *g = td_graph_new(1);
    struct td_model m;
    struct td_data_desc data = td_model_synthetic_data(info);
    td_model_build(info, g, (int)batch, &data, &mc, &m);
    td_graph_set_remat(g, remat);
    struct td_params *p = td_graph_params(g);
    struct td_step_graph sgr = {0};
    struct td_node *jvp_outs[2] = {NULL, NULL};
    struct td_plan *gp = NULL, *hp = NULL, *jp = NULL;
    struct td_compile_options co = {.num_threads = (int)threads,
                                    .profile = profile,
                                    .parallel_cost = parallel_cost,
                                    .group_cost = group_cost,
                                    .solo_cost = solo_cost};
    enum td_status st = td_graph_status(g);
    if (st == TD_OK) st = td_step_graph_init(&sgr, g, m.loss);
    if (st == TD_OK && listed(plans, "jvp")) st = jvp_outputs(g, m.logits, jvp_outs);
    int want_grad = listed(plans, "grad") || listed(plans, "train");
    if (st == TD_OK && want_grad && !(gp = td_step_graph_compile(&sgr, 0, 1, co))) st = TD_ERR_ARG;
    if (st == TD_OK && listed(plans, "hvp") && !(hp = td_step_graph_compile(&sgr, 1, 1, co)))
        st = TD_ERR_ARG;
    if (st == TD_OK && listed(plans, "jvp") && !(jp = td_compile(g, jvp_outs, 2, &co)))
        st = TD_ERR_ARG;
    if (st != TD_OK) {
        fprintf(stderr, "tandem-bench: %s\n", td_graph_error(g));
        return 1;
    }
    int64_t nx = td_shape_numel(td_node_shape(m.x)), ny = td_shape_numel(td_node_shape(m.labels));
    void *x = malloc((size_t)nx * 4);
    int32_t *y = malloc((size_t)ny * sizeof(int32_t));
    int32_t step_value = 0;
    td_model_random_batch(&m, &data, 7, x, y);
    for (size_t i = 0; i < p->total; i++) p->dir[i] = 1e-3f * td_rng_normal(7, 3, i);
    struct td_feed feeds[3] = {{m.x, x}, {m.labels, y}, {m.step, &step_value}};
    int n_feeds = m.step ? 3 : 2;

    struct td_plan *any = gp ? gp : hp ? hp : jp;
    struct td_plan_stats s;
    td_plan_get_stats(any, &s);
    printf("model %s\nbatch %lld\nthreads %d\nparameters %zu\n", info->name, batch, s.num_threads,
           p->total);
    double tg = 0, spread, cpu;
    if (gp && listed(plans, "grad")) {
        td_plan_get_stats(gp, &s);
        tg = time_runs(&(struct timed){gp, feeds, n_feeds, NULL, p}, warmup, steps, &spread, &cpu);
        report("grad_step", tg, spread, cpu, s.flops, batch);
        printf("grad_arena_bytes %zu\ngrad_no_reuse_bytes %zu\n", s.arena_bytes, s.no_reuse_bytes);
    }
    if (hp) {
        td_plan_get_stats(hp, &s);
        double th =
            time_runs(&(struct timed){hp, feeds, n_feeds, NULL, p}, warmup, steps, &spread, &cpu);
        report("grad_hvp_step", th, spread, cpu, s.flops, batch);
        if (tg > 0) printf("hvp_over_grad %.3f\n", th / tg);
        printf("hvp_arena_bytes %zu\nhvp_no_reuse_bytes %zu\n", s.arena_bytes, s.no_reuse_bytes);
    }
    if (jp) {
        td_plan_get_stats(jp, &s);
        double tj =
            time_runs(&(struct timed){jp, feeds, n_feeds, NULL, p}, warmup, steps, &spread, &cpu);
        report("jvp_step", tj, spread, cpu, s.flops, batch);
        printf("jvp_arena_bytes %zu\n", s.arena_bytes);
    }
    if (listed(plans, "train")) {
        struct td_optim_config oc = td_optim_config_default(optimizer);
        if (!strcmp(optimizer, "adamw")) {
            oc.beta2 = 0.95f;
            oc.weight_decay = 0.1f;
        }
        oc.clip_norm = 1.0f;
        oc.num_threads = s.num_threads;
        char err[256];
        struct td_optim *opt = td_optim_new(optimizer, &oc, p, err, sizeof(err));
        if (!opt) {
            fprintf(stderr, "tandem-bench: %s\n", err);
            return 2;
        }
        if (td_optim_needs(opt) & TD_OPTIM_NEEDS_TANGENT) {
            fprintf(stderr, "tandem-bench: --plans train times gradient-only optimizers\n");
            return 2;
        }
        td_plan_get_stats(gp, &s);
        double tt =
            time_runs(&(struct timed){gp, feeds, n_feeds, opt, p}, warmup, steps, &spread, &cpu);
        report("train_step", tt, spread, cpu, s.flops, batch);
        /* The update alone, on the gradient the last run left. */
        double t0 = td_cli_now();
        long long n = steps > 10 ? steps : 10;
        for (long long i = 0; i < n; i++) td_optim_step(opt, p, 1e-4f);
        printf("optim_update_ms %.4f\noptimizer %s\n", 1e3 * (td_cli_now() - t0) / (double)n,
               optimizer);
        td_optim_free(opt);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    if (profile && gp) print_profile("gradient plan", gp, (int)top);
    if (profile && hp) print_profile("gradient+HVP plan", hp, (int)top);
    if (profile && jp) print_profile("JVP plan", jp, (int)top);
    td_plan_free(gp);
    td_plan_free(hp);
    td_plan_free(jp);
    td_graph_free(g);
    td_step_graph_free(&sgr);
    free(x), free(y);
    return 0;
}
