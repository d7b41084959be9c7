/* `tandem ntk-predict`: what training in the kernel regime would give, from
 * the empirical NTK of a zoo model (optim/ntk.h) and its outputs: kernel
 * regression on one-hot targets (infinite time) and the gradient-flow mean
 * prediction at times eta*t (optim/kernel_predict.h), scored on test
 * samples. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"
#include "io/results.h"
#include "optim/kernel_predict.h"
#include "optim/ntk.h"
#include "tools/cli.h"
#include "tools/tangent_setup.h"

static const char usage[] =
    "usage: tandem ntk-predict [options]\n"
    "  Kernel-regime predictions from the empirical NTK (Neural Tangents' predict for\n"
    "  the mean squared error on one-hot targets): kernel regression (t = infinity)\n"
    "  and the gradient-flow mean at times eta*t, scored on test samples.\n"
    "  --model NAME, --weights FILE, --data PATH, --test-data FILE   as for ntk\n"
    "  --n N               training samples (default 2000), --offset K\n"
    "  --test-n M          test samples (default 10000), --test-offset K\n"
    "  --full              the full [N K, N K] kernel (default: the trace kernel / K,\n"
    "                      one kernel for every output, Neural Tangents' default)\n"
    "  --times T,...       eta*t values besides infinity (e.g. 10,100,1000)\n"
    "  --reg X             Cholesky regulariser times the mean diagonal (default 1e-6)\n"
    "  --f0 model|zero     initial outputs: the network's (default) or zero\n"
    "  --method NAME, --memory SIZE, --threads N, --seed N   as for ntk\n"
    "  --out FILE          default predictions.h5: eta_t, test_accuracy, test_mse,\n"
    "                      train_accuracy per time (infinity as inf)\n";

struct predict_flags {
    struct td_setup_config sc;
    const char *weights, *times, *f0, *method, *memory, *out;
    long long n, offset, test_n, test_offset, threads;
    double reg;
    int full;
};

/* The kernel between a and b as doubles: [na K, nb K] (full, rows
 * (sample, output)) or [na, nb] trace / K (scalar). */
static enum td_status kernel(const struct td_tangent_setup *ts, const struct td_samples *a,
                             const struct td_samples *b, const struct predict_flags *f, int method,
                             size_t memory, int64_t K, double *out, double *seconds, char *err,
                             size_t errlen)
{
    struct td_ntk_options o = {.method = (enum td_ntk_method)method,
                               .trace = !f->full,
                               .memory = memory,
                               .num_threads = (int)f->threads};
    size_t e = (size_t)(a->n * b->n) * (f->full ? (size_t)(K * K) : 1);
    float *k = malloc(e * sizeof(float));
    if (!k) return TD_ERR_NOMEM;
    struct td_ntk_report r;
    enum td_status st =
        td_ntk_dense(&ts->tm, &a->data, a == b ? NULL : &b->data, &o, k, &r, err, errlen);
    if (st == TD_OK) {
        *seconds += r.seconds;
        if (!f->full) {
            for (size_t i = 0; i < e; i++) out[i] = (double)k[i] / (double)K;
        } else {
            const int64_t nb = b->n;
            for (int64_t n = 0; n < a->n; n++)
                for (int64_t m = 0; m < nb; m++)
                    for (int64_t c = 0; c < K; c++)
                        for (int64_t l = 0; l < K; l++)
                            out[(n * K + c) * (nb * K) + m * K + l] =
                                k[((n * nb + m) * K + c) * K + l];
        }
        printf("  kernel %lld x %lld by %s in %.1f ms\n", (long long)a->n, (long long)b->n,
               td_ntk_method_name(r.method), 1e3 * r.seconds);
    }
    free(k);
    return st;
}

static double mse(const double *pred, const double *y, int64_t n, int64_t K)
{
    double s = 0;
    for (int64_t i = 0; i < n * K; i++) s += (pred[i] - y[i]) * (pred[i] - y[i]);
    return s / (double)n;
}

static int run(struct predict_flags *f)
{
    char err[1024];
    struct td_tangent_setup ts;
    memset(&ts, 0, sizeof(ts));
    struct td_samples tr = {0}, te = {0};
    int method = td_ntk_method_from_name(f->method);
    size_t memory = td_parse_bytes(f->memory);
    double times[65];
    int n_times = 0;
    enum td_status st = TD_OK;
    times[n_times++] = INFINITY;
    if (f->times) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", f->times);
        for (char *tok = strtok(buf, ","); tok && n_times < 65; tok = strtok(NULL, ",")) {
            char *end;
            double v = strtod(tok, &end);
            if (*end || !(v > 0)) {
                snprintf(err, sizeof(err), "bad time '%s' in --times (positive numbers)", tok);
                st = TD_ERR_ARG;
            }
            times[n_times++] = v;
        }
    }
    if (method < 0 || !memory || (strcmp(f->f0, "model") && strcmp(f->f0, "zero"))) {
        snprintf(err, sizeof(err), "bad --method, --memory or --f0 (model or zero)");
        st = TD_ERR_ARG;
    }
    if (st == TD_OK) st = td_tangent_setup_init(&ts, &f->sc, f->weights, err, sizeof(err));
    if (st == TD_OK && ts.s.desc.kind == TD_DATA_TEXT) {
        snprintf(err, sizeof(err), "ntk-predict classifies images: not for text models");
        st = TD_ERR_ARG;
    }
    if (st == TD_OK) st = td_samples_pick(&ts.s, "train", f->offset, f->n, &tr, err, sizeof(err));
    if (st == TD_OK)
        st = td_samples_pick(&ts.s, "test", f->test_offset, f->test_n, &te, err, sizeof(err));
    const int64_t K = ts.s.desc.classes, n = f->n, m = f->test_n;
    const int64_t dn = f->full ? n * K : n, dm = f->full ? m * K : m;
    double *ktt = NULL, *kst = NULL, *f0 = NULL, *ft0 = NULL, *y = NULL, *yt = NULL, *pred = NULL;
    double *ptr = NULL;
    if (st == TD_OK) {
        ktt = malloc((size_t)(dn * dn) * sizeof(double));
        kst = malloc((size_t)(dm * dn) * sizeof(double));
        f0 = calloc((size_t)(n * K), sizeof(double));
        ft0 = calloc((size_t)(m * K), sizeof(double));
        y = malloc((size_t)(n * K) * sizeof(double));
        yt = malloc((size_t)(m * K) * sizeof(double));
        pred = malloc((size_t)(m * K) * sizeof(double));
        ptr = malloc((size_t)(n * K) * sizeof(double));
        if (!ktt || !kst || !f0 || !ft0 || !y || !yt || !pred || !ptr) {
            snprintf(err, sizeof(err), "out of memory for kernels of %lld and %lld samples",
                     (long long)n, (long long)m);
            st = TD_ERR_NOMEM;
        }
    }
    if (st == TD_OK) {
        printf("tandem ntk-predict: model %s (%s), %lld train and %lld test samples, %s kernel, "
               "K = %lld\n",
               ts.s.info->name, f->weights ? f->weights : "initialisation", (long long)n,
               (long long)m, f->full ? "full" : "trace / K", (long long)K);
        fflush(stdout);
    }
    double seconds = 0, t0 = omp_get_wtime();
    if (st == TD_OK)
        st = kernel(&ts, &tr, &tr, f, method, memory, K, ktt, &seconds, err, sizeof(err));
    if (st == TD_OK)
        st = kernel(&ts, &te, &tr, f, method, memory, K, kst, &seconds, err, sizeof(err));
    if (st == TD_OK && !strcmp(f->f0, "model")) {
        st = td_samples_logits(&ts.s, &tr, (int)f->threads, f0, err, sizeof(err));
        if (st == TD_OK) st = td_samples_logits(&ts.s, &te, (int)f->threads, ft0, err, sizeof(err));
    }
    struct td_kpredict *kp = NULL;
    if (st == TD_OK) {
        td_kpredict_one_hot(tr.labels, n, K, y);
        td_kpredict_one_hot(te.labels, m, K, yt);
        kp = td_kpredict_new(ktt, n, K, f->full, f0, y, f->reg, err, sizeof(err));
        if (!kp) st = TD_ERR_ARG;
    }
    double acc[65], msev[65], tracc[65];
    for (int i = 0; i < n_times && st == TD_OK; i++) {
        st = td_kpredict_test(kp, kst, m, ft0, times[i], pred, err, sizeof(err));
        if (st != TD_OK) break;
        acc[i] = td_kpredict_accuracy(pred, te.labels, m, K);
        msev[i] = mse(pred, yt, m, K);
        if (isinf(times[i])) {
            /* Kernel regression interpolates the training targets. */
            tracc[i] = 1.0;
        } else {
            st = td_kpredict_train(kp, times[i], ptr, err, sizeof(err));
            tracc[i] = td_kpredict_accuracy(ptr, tr.labels, n, K);
        }
        printf("  eta t = %-8g test accuracy %6.2f%%  test MSE %.4f  train accuracy %6.2f%%\n",
               times[i], 100 * acc[i], msev[i], 100 * tracc[i]);
    }
    if (st == TD_OK) {
        struct td_result_array a[4] = {
            {"eta_t", times, NULL, TD_SHAPE(n_times)},
            {"test_accuracy", acc, NULL, TD_SHAPE(n_times)},
            {"test_mse", msev, NULL, TD_SHAPE(n_times)},
            {"train_accuracy", tracc, NULL, TD_SHAPE(n_times)},
        };
        const struct td_result_attr at[] = {{"model", ts.s.info->name},
                                            {"weights", f->weights ? f->weights : "initialisation"},
                                            {"kernel", f->full ? "full" : "trace / K"},
                                            {"f0", f->f0}};
        st = td_results_save(f->out, a, 4, at, 4, err, sizeof(err));
    }
    if (st == TD_OK)
        printf("wrote %s\nkernels computed in %.1f ms; everything in %.1f ms\n", f->out,
               1e3 * seconds, 1e3 * (omp_get_wtime() - t0));
    else
        fprintf(stderr, "tandem ntk-predict: %s\n", err);
    td_kpredict_free(kp);
    free(ktt), free(kst), free(f0), free(ft0), free(y), free(yt), free(pred), free(ptr);
    td_samples_free(&tr);
    td_samples_free(&te);
    td_tangent_setup_free(&ts);
    return st == TD_OK ? 0 : 1;
}

int td_cmd_ntk_predict(int argc, char **argv)
{
    struct predict_flags f = {
        .sc = {.mc = {.dropout = -1},
               .data = TD_FASHION_MNIST_DIR,
               .val_fraction = 0.1,
               .batch = 1,
               .seed = 1},
        .f0 = "model",
        .method = "auto",
        .memory = "2G",
        .out = "predictions.h5",
        .n = 2000,
        .test_n = 10000,
        .reg = 1e-6,
    };
    const struct td_opt opts[] = {
        {"--model", TD_OPT_STR, &f.sc.model, 0, 0},
        {"--weights", TD_OPT_STR, &f.weights, 0, 0},
        {"--data", TD_OPT_STR, &f.sc.data, 0, 0},
        {"--test-data", TD_OPT_STR, &f.sc.test_data, 0, 0},
        {"--n", TD_OPT_INT, &f.n, 1, 1e9},
        {"--offset", TD_OPT_INT, &f.offset, 0, 1e12},
        {"--test-n", TD_OPT_INT, &f.test_n, 1, 1e9},
        {"--test-offset", TD_OPT_INT, &f.test_offset, 0, 1e12},
        {"--full", TD_OPT_FLAG, &f.full, 0, 0},
        {"--times", TD_OPT_STR, &f.times, 0, 0},
        {"--reg", TD_OPT_FLOAT, &f.reg, 0, 1},
        {"--f0", TD_OPT_STR, &f.f0, 0, 0},
        {"--method", TD_OPT_STR, &f.method, 0, 0},
        {"--memory", TD_OPT_STR, &f.memory, 0, 0},
        {"--threads", TD_OPT_INT, &f.threads, 1, 1024},
        {"--seed", TD_OPT_INT, &f.sc.seed, 0, 9e15},
        {"--out", TD_OPT_STR, &f.out, 0, 0},
    };
    int r =
        td_cli_parse("ntk-predict", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    return run(&f);
}
