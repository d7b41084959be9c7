/* tandem-bench: times one training step of a zoo model (default the seed
 * MLP at batch 128) with the gradient plan and with the gradient+HVP plan,
 * and the optimizer update. Prints one `key value` line per measurement so
 * tools/bench.sh can set them beside PyTorch's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/models/models.h"
#include "tools/step_graph.h"

static const char usage[] =
    "usage: tandem-bench [--model NAME] [--batch N] [--threads N] [--steps N] [--warmup N]\n";

static double time_plan(struct td_plan *plan, const struct td_feed *feeds, long long warmup,
                        long long steps)
{
    for (long long i = 0; i < warmup; i++) td_run(plan, feeds, 2);
    /* The median of several repetitions resists noise from the other tenant. */
    enum { REPS = 7 };
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = td_cli_now();
        for (long long i = 0; i < steps; i++) td_run(plan, feeds, 2);
        t[r] = (td_cli_now() - t0) / (double)steps;
    }
    for (int i = 1; i < REPS; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[REPS / 2];
}

static void print_profile(const char *what, const struct td_plan *plan)
{
    struct td_node_time t[24];
    int n = td_plan_profile(plan, t, 24);
    char buf[64];
    printf("\n%s: slowest nodes (us per run)\n", what);
    for (int i = 0; i < n; i++)
        printf("  %8.2f  %-22s %-14s step %3d  %d thr%s  %s\n",
               1e6 * t[i].seconds / (double)(t[i].runs ? t[i].runs : 1), td_node_op_name(t[i].node),
               td_shape_format(td_node_shape(t[i].node), buf, sizeof(buf)), t[i].step,
               t[i].nthreads, t[i].concurrent ? " (group)" : "",
               td_node_name(t[i].node) ? td_node_name(t[i].node) : "");
}

int main(int argc, char **argv)
{
    const char *model = "mlp";
    long long batch = 128, threads = 0, steps = 50, warmup = 20;
    int profile = 0;
    const struct td_opt opts[] = {
        {"--model", TD_OPT_STR, &model, 0, 0},        {"--batch", TD_OPT_INT, &batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &threads, 1, 1024}, {"--steps", TD_OPT_INT, &steps, 1, 1e9},
        {"--warmup", TD_OPT_INT, &warmup, 0, 1e9},    {"--profile", TD_OPT_FLAG, &profile, 0, 0},
    };
    int r = td_cli_parse("bench", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    const struct td_model_info *info = td_model_find(model);
    if (!info) {
        fprintf(stderr, "tandem-bench: unknown model '%s'\n", model);
        return 2;
    }
    struct td_graph *g = td_graph_new(1);
    struct td_model m;
    struct td_shape sample = TD_SHAPE(28, 28); /* a Fashion-MNIST image, as train feeds it */
    td_model_build(info, g, (int)batch, &sample, 10, &m);
    struct td_params *p = td_graph_params(g);
    struct td_step_graph sgr;
    struct td_plan *gp = NULL, *hp = NULL;
    if (td_graph_status(g) == TD_OK && td_step_graph_init(&sgr, g, m.loss) == TD_OK) {
        struct td_compile_options co = {.num_threads = (int)threads, .profile = profile};
        gp = td_step_graph_compile(&sgr, 0, 1, co);
        hp = gp ? td_step_graph_compile(&sgr, 1, 1, co) : NULL;
    }
    if (!hp) {
        fprintf(stderr, "tandem-bench: %s\n", td_graph_error(g));
        return 1;
    }
    int64_t nx = td_shape_numel(td_node_shape(m.x));
    float *x = malloc((size_t)nx * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    for (int64_t i = 0; i < nx; i++) x[i] = td_rng_uniform(7, 1, (uint64_t)i);
    for (int64_t i = 0; i < batch; i++) y[i] = (int32_t)(td_rng_u64(7, 2, (uint64_t)i) % 10);
    for (size_t i = 0; i < p->total; i++) p->dir[i] = 1e-3f * td_rng_normal(7, 3, i);
    struct td_feed feeds[2] = {{m.x, x}, {m.labels, y}};
    double tg = time_plan(gp, feeds, warmup, steps);
    double th = time_plan(hp, feeds, warmup, steps);
    struct td_plan_stats sg, sh;
    td_plan_get_stats(gp, &sg);
    td_plan_get_stats(hp, &sh);
    printf("model %s\nbatch %lld\nthreads %d\nparameters %zu\n", info->name, batch, sg.num_threads,
           p->total);
    printf("grad_step_ms %.4f\ngrad_hvp_step_ms %.4f\nhvp_over_grad %.3f\n", tg * 1e3, th * 1e3,
           th / tg);
    printf("grad_samples_per_s %.0f\ngrad_hvp_samples_per_s %.0f\n", (double)batch / tg,
           (double)batch / th);
    printf("grad_arena_bytes %zu\ngrad_no_reuse_bytes %zu\n", sg.arena_bytes, sg.no_reuse_bytes);
    printf("hvp_arena_bytes %zu\nhvp_no_reuse_bytes %zu\n", sh.arena_bytes, sh.no_reuse_bytes);
    if (profile) print_profile("gradient plan", gp);
    if (profile) print_profile("gradient+HVP plan", hp);
    td_plan_free(gp);
    td_plan_free(hp);
    td_graph_free(g);
    td_step_graph_free(&sgr);
    free(x), free(y);
    return 0;
}
