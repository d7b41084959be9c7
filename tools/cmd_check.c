/* `tandem check`: builds a model on a random batch, computes loss, gradient
 * and H*dir for a random direction in one gradient+HVP plan, and checks the
 * directional derivative and H*dir against central finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/setup.h"
#include "optim/step_graph.h"

static const char usage[] =
    "usage: tandem check [--model NAME] [--batch N] [--threads N] [--seed N] [--eps X]\n"
    "                    [--all-params]\n"
    "  Checks gradient and Hessian-vector product of a model's loss on a random\n"
    "  batch against central finite differences. Exit status 0 when both agree.\n"
    "  The random direction dir covers the output layer's parameters: the loss is\n"
    "  smooth there even for ReLU networks, whose gradient jumps wherever a unit\n"
    "  changes sign, which makes finite differences over all parameters meaningless\n"
    "  in float32. H*dir is still compared on every parameter. --all-params spreads\n"
    "  dir over all parameters (use it for smooth models such as mlp-gelu).\n";

struct check_opts {
    const char *model;
    struct td_model_config mc;
    long long batch, threads, seed;
    double eps;
    int all_params;
};

static int parse(int argc, char **argv, struct check_opts *o)
{
    *o = (struct check_opts){"mlp", {.dropout = -1}, 128, 0, 1, 1e-2, 0};
    const struct td_opt opts[] = {
        {"--model", TD_OPT_STR, &o->model, 0, 0},
        {"--batch", TD_OPT_INT, &o->batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &o->threads, 1, 1024},
        {"--seed", TD_OPT_INT, &o->seed, 0, 9e15},
        {"--eps", TD_OPT_FLOAT, &o->eps, 1e-6, 1},
        {"--all-params", TD_OPT_FLAG, &o->all_params, 0, 0},
        TD_MODEL_OPTS(o->mc),
    };
    return td_cli_parse("check", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
}

int td_cmd_check(int argc, char **argv)
{
    struct check_opts o;
    int r = parse(argc, argv, &o);
    if (r <= 0) return r < 0 ? 2 : 0;
    const struct td_model_info *info = td_model_find(o.model);
    if (!info) {
        fprintf(stderr, "tandem check: unknown model '%s'\n", o.model);
        return 2;
    }
    struct td_graph *g = td_graph_new((uint64_t)o.seed);
    struct td_model m;
    struct td_data_desc data = td_model_synthetic_data(info);
    td_model_build(info, g, (int)o.batch, &data, &o.mc, &m);
    struct td_params *p = td_graph_params(g);
    struct td_step_graph sgr = {0};
    struct td_plan *plan = NULL;
    if (td_graph_status(g) == TD_OK && td_step_graph_init(&sgr, g, m.loss) == TD_OK) {
        struct td_compile_options co = {.num_threads = (int)o.threads};
        plan = td_step_graph_compile(&sgr, 1, 1, co);
    }
    if (!plan) {
        fprintf(stderr, "tandem check: %s\n", td_graph_error(g));
        return 1;
    }
    int64_t nx = td_shape_numel(td_node_shape(m.x)), ny = td_shape_numel(td_node_shape(m.labels));
    void *x = malloc((size_t)nx * 4);
    int32_t *y = malloc((size_t)ny * sizeof(int32_t));
    size_t P = p->total;
    float *theta = malloc(P * sizeof(float)), *g0 = malloc(P * sizeof(float));
    float *hd = malloc(P * sizeof(float)), *gp = malloc(P * sizeof(float));
    td_model_random_batch(&m, &data, (uint64_t)o.seed, x, y);
    /* The output layer is the last dense layer: its weight and bias. */
    size_t first = o.all_params ? 0 : p->info[p->count >= 2 ? p->count - 2 : 0].offset;
    for (size_t i = 0; i < P; i++)
        p->dir[i] = i < first ? 0 : td_rng_normal((uint64_t)o.seed, 3, i);
    double dnorm = sqrt(td_vec_dot(p->dir, p->dir, P, 1));
    for (size_t i = 0; i < P; i++) p->dir[i] = (float)(p->dir[i] / dnorm);
    memcpy(theta, p->value, P * sizeof(float));

    /* Dropout draws the mask of step 0 on every run, so the differences
     * below compare one function. */
    int32_t step = 0;
    struct td_feed feeds[3] = {{m.x, x}, {m.labels, y}, {m.step, &step}};
    int n_feeds = m.step ? 3 : 2;
    if (td_run(plan, feeds, n_feeds) != TD_OK) {
        fprintf(stderr, "tandem check: %s\n", td_plan_error(plan));
        return 1;
    }
    double loss = td_plan_output(plan, 0)[0];
    memcpy(g0, p->grad, P * sizeof(float));
    memcpy(hd, p->tangent, P * sizeof(float));
    double lpm[2];
    for (int side = 0; side < 2; side++) {
        double s = side ? -o.eps : o.eps;
        for (size_t i = 0; i < P; i++) p->value[i] = (float)(theta[i] + s * p->dir[i]);
        td_run(plan, feeds, n_feeds);
        lpm[side] = td_plan_output(plan, 0)[0];
        for (size_t i = 0; i < P; i++)
            gp[i] = side ? (float)((gp[i] - p->grad[i]) / (2 * o.eps)) : p->grad[i];
    }
    memcpy(p->value, theta, P * sizeof(float));
    double gd = td_vec_dot(g0, p->dir, P, 1), fd = (lpm[0] - lpm[1]) / (2 * o.eps);
    double hn = sqrt(td_vec_dot(hd, hd, P, 1)), diff = 0;
    for (size_t i = 0; i < P; i++) diff += ((double)gp[i] - hd[i]) * ((double)gp[i] - hd[i]);
    double g_err = fabs(gd - fd) / fmax(fabs(gd), 1e-6), h_err = sqrt(diff) / fmax(hn, 1e-6);
    struct td_plan_stats st;
    td_plan_get_stats(plan, &st);
    printf("model %s, batch %lld, %zu parameters, %d threads; dir over %s\n", info->name, o.batch,
           P, st.num_threads, o.all_params ? "all parameters" : "the output layer");
    printf("loss                 %.6f\n", loss);
    printf("|g|                  %.6f\n", sqrt(td_vec_dot(g0, g0, P, 1)));
    printf("g.dir                %.6e   finite difference %.6e   rel. error %.2e\n", gd, fd, g_err);
    printf("|H dir|              %.6e   |fd - H dir| / |H dir| = %.2e\n", hn, h_err);
    printf("plan arena           %zu bytes (%zu without reuse), %d nodes in %d steps\n",
           st.arena_bytes, st.no_reuse_bytes, st.num_nodes, st.num_steps);
    int ok = g_err < 1e-2 && h_err < 5e-2;
    printf("%s\n", ok ? "derivatives agree with finite differences"
                      : "MISMATCH between derivatives and finite differences");
    td_plan_free(plan);
    td_graph_free(g);
    td_step_graph_free(&sgr);
    free(x), free(y);
    free(theta), free(g0), free(hd), free(gp);
    return ok ? 0 : 1;
}
