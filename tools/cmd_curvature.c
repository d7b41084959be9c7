/* `tandem curvature`: the top eigenvalues (and eigenvectors) of the Hessian,
 * the Gauss-Newton matrix or the NTK of a zoo model on a fixed batch of its
 * data, by Lanczos (optim/lanczos.h), and optionally Hutchinson's trace. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"
#include "io/results.h"
#include "optim/curvature.h"
#include "optim/lanczos.h"
#include "optim/ntvp.h"
#include "tools/cli.h"
#include "tools/tangent_setup.h"

static const char usage[] =
    "usage: tandem curvature [options]\n"
    "  Top eigenvalues of a model's Hessian, Gauss-Newton matrix or NTK on a fixed batch,\n"
    "  by Lanczos with full reorthogonalisation, written to an HDF5 file (eigenvalues,\n"
    "  residuals, optionally eigenvectors and a Hutchinson trace).\n"
    "  --model NAME, --weights FILE, --data PATH, --test-data FILE, --text FILE,\n"
    "  --val-fraction X, --layers N, --d-model N, --heads N, --context N   as for ntk\n"
    "  --matrix NAME       hessian, ggn or ntk (default hessian)\n"
    "  --top-k K           eigenvalues wanted (default 10)\n"
    "  --steps N           Lanczos steps (default 60)\n"
    "  --n N               samples in the batch (default 1000)\n"
    "  --from train|test   where they come from (default train), --offset K\n"
    "  --params NAME,...   ntk: theta = these parameters or scopes (default: all)\n"
    "  --hutchinson M      also estimate the trace with M Rademacher probes\n"
    "  --vectors           also write the eigenvectors\n"
    "  --threads N, --seed N (the start vector and probes)\n"
    "  --out FILE          default curvature.h5\n";

struct curv_flags {
    struct td_setup_config sc;
    const char *weights, *matrix, *from, *params, *out;
    long long top_k, steps, n, offset, hutchinson, threads;
    int vectors;
};

static enum td_status curv_mv(void *ctx, const float *v, float *out)
{
    return td_curv_op_apply(ctx, v, out);
}

static enum td_status ntk_mv(void *ctx, const float *v, float *out)
{
    return td_ntvp_apply(ctx, v, out);
}

static int run(struct curv_flags *f)
{
    char err[1024];
    int which = !strcmp(f->matrix, "hessian") ? 0
                : !strcmp(f->matrix, "ggn")   ? 1
                : !strcmp(f->matrix, "ntk")   ? 2
                                              : -1;
    struct td_tangent_setup ts;
    memset(&ts, 0, sizeof(ts));
    struct td_samples x = {0};
    struct td_curv_op *op = NULL;
    struct td_ntvp *nt = NULL;
    struct td_lanczos_result r = {0};
    enum td_status st = TD_OK;
    char params_buf[1024];
    const char *names[64];
    struct td_param_select sel = {0};
    if (which < 0) {
        snprintf(err, sizeof(err), "unknown matrix '%s' (hessian, ggn or ntk)", f->matrix);
        st = TD_ERR_ARG;
    }
    if (st == TD_OK && f->top_k > f->steps) {
        snprintf(err, sizeof(err), "--top-k %lld needs at least as many --steps (%lld)", f->top_k,
                 f->steps);
        st = TD_ERR_ARG;
    }
    f->sc.batch = 1;
    if (st == TD_OK) st = td_tangent_setup_init(&ts, &f->sc, f->weights, err, sizeof(err));
    if (st == TD_OK) st = td_samples_pick(&ts.s, f->from, f->offset, f->n, &x, err, sizeof(err));
    if (f->params) {
        snprintf(params_buf, sizeof(params_buf), "%s", f->params);
        for (char *tok = strtok(params_buf, ","); tok && sel.n < 64; tok = strtok(NULL, ","))
            if (*tok) names[sel.n++] = tok;
        sel.names = names;
    }
    double t0 = omp_get_wtime();
    size_t n = 0;
    td_matvec_fn mv = curv_mv;
    void *ctx = NULL;
    struct td_feed feeds[2];
    /* The Hessian's and G's graph: the model at the batch, with the values. */
    struct td_graph *g = NULL;
    struct td_model m;
    if (st == TD_OK && which < 2) {
        g = td_graph_new((uint64_t)f->sc.seed);
        if (!g ||
            td_model_build(ts.s.info, g, (int)f->n, &ts.s.desc, &ts.s.m.config, &m) != TD_OK) {
            snprintf(err, sizeof(err), "%s", g ? td_graph_error(g) : "out of memory");
            st = TD_ERR_ARG;
        } else {
            const struct td_params *from = td_graph_params(ts.s.g);
            memcpy(td_graph_params(g)->value, from->value, from->total * sizeof(float));
        }
    }
    if (st == TD_OK && which < 2) {
        feeds[0] = (struct td_feed){m.x, x.data.x[0]};
        feeds[1] = (struct td_feed){m.labels, x.labels};
        op = td_curv_op_new(g, m.loss, m.logits, (enum td_curv_matrix)which, feeds, 2,
                            (int)f->threads, err, sizeof(err));
        if (!op)
            st = TD_ERR_ARG;
        else
            n = td_curv_op_size(op), ctx = op;
    } else if (st == TD_OK) {
        nt = td_ntvp_new(&ts.tm, &x.data, NULL, &sel, (int)f->threads, err, sizeof(err));
        if (!nt)
            st = TD_ERR_ARG;
        else
            n = (size_t)td_ntvp_rows(nt), ctx = nt, mv = ntk_mv;
    }
    if (st == TD_OK) {
        printf("tandem curvature: %s of %s (%zu %s) on %lld %s samples, %lld Lanczos steps\n",
               f->matrix, ts.s.info->name, n, which == 2 ? "sample-outputs" : "parameters", f->n,
               x.part, f->steps);
        fflush(stdout);
        st = td_lanczos(mv, ctx, n, (int)f->steps, (int)f->top_k, (uint64_t)f->sc.seed, f->vectors,
                        1, &r, err, sizeof(err));
    }
    double trace = NAN, ci = NAN;
    if (st == TD_OK && f->hutchinson > 0)
        st = td_hutchinson_trace(mv, ctx, n, (int)f->hutchinson, (uint64_t)f->sc.seed, &trace, &ci,
                                 err, sizeof(err));
    double seconds = omp_get_wtime() - t0;
    if (st == TD_OK) {
        for (int i = 0; i < r.k; i++)
            printf("  eigenvalue %2d  %14.6g   residual %.2e\n", i + 1, r.values[i],
                   r.residuals[i]);
        printf("  smallest Ritz value %.6g (%d steps)\n", r.smallest, r.steps);
        if (f->hutchinson > 0)
            printf("  trace %.6g +- %.3g (Hutchinson, %lld probes, 95%%)\n", trace, ci,
                   f->hutchinson);
        struct td_result_array a[5] = {
            {"eigenvalues", r.values, NULL, TD_SHAPE(r.k)},
            {"residuals", r.residuals, NULL, TD_SHAPE(r.k)},
            {"trace", &trace, NULL, TD_SHAPE(1)},
            {"trace_ci95", &ci, NULL, TD_SHAPE(1)},
            {"eigenvectors", NULL, r.vectors, TD_SHAPE(r.k, (int64_t)n)},
        };
        char samples[64], steps[32], secs[32];
        snprintf(samples, sizeof(samples), "%lld %s from %lld", f->n, x.part, f->offset);
        snprintf(steps, sizeof(steps), "%d", r.steps);
        snprintf(secs, sizeof(secs), "%.3f", seconds);
        const struct td_result_attr at[] = {{"matrix", f->matrix},
                                            {"model", ts.s.info->name},
                                            {"weights", f->weights ? f->weights : "initialisation"},
                                            {"samples", samples},
                                            {"lanczos_steps", steps},
                                            {"seconds", secs}};
        st = td_results_save(f->out, a, f->vectors ? 5 : (f->hutchinson > 0 ? 4 : 2), at,
                             (int)(sizeof(at) / sizeof(at[0])), err, sizeof(err));
    }
    if (st == TD_OK)
        printf("wrote %s\ncomputed in %.1f ms\n", f->out, 1e3 * seconds);
    else
        fprintf(stderr, "tandem curvature: %s\n", err);
    td_lanczos_result_free(&r);
    td_curv_op_free(op);
    td_graph_free(g);
    td_ntvp_free(nt);
    td_samples_free(&x);
    td_tangent_setup_free(&ts);
    return st == TD_OK ? 0 : 1;
}

int td_cmd_curvature(int argc, char **argv)
{
    struct curv_flags f = {
        .sc = {.mc = {.dropout = -1}, .data = TD_FASHION_MNIST_DIR, .val_fraction = 0.1, .seed = 1},
        .matrix = "hessian",
        .from = "train",
        .out = "curvature.h5",
        .top_k = 10,
        .steps = 60,
        .n = 1000,
    };
    const struct td_opt opts[] = {
        TD_TANGENT_DATA_OPTS(f.sc, f.weights),
        {"--matrix", TD_OPT_STR, &f.matrix, 0, 0},
        {"--top-k", TD_OPT_INT, &f.top_k, 1, 1000},
        {"--steps", TD_OPT_INT, &f.steps, 1, 10000},
        {"--n", TD_OPT_INT, &f.n, 1, 1e9},
        {"--from", TD_OPT_STR, &f.from, 0, 0},
        {"--offset", TD_OPT_INT, &f.offset, 0, 1e12},
        {"--params", TD_OPT_STR, &f.params, 0, 0},
        {"--hutchinson", TD_OPT_INT, &f.hutchinson, 1, 1e6},
        {"--vectors", TD_OPT_FLAG, &f.vectors, 0, 0},
        {"--threads", TD_OPT_INT, &f.threads, 1, 1024},
        {"--seed", TD_OPT_INT, &f.sc.seed, 0, 9e15},
        {"--out", TD_OPT_STR, &f.out, 0, 0},
    };
    int r =
        td_cli_parse("curvature", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    return run(&f);
}
