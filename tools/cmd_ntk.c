/* `tandem ntk`: the empirical NTK of a zoo model (optim/ntk.h) on samples of
 * its data, streamed tile by tile into an HDF5 file (io/ntk_file.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/idx.h"
#include "io/ntk_file.h"
#include "optim/ntk.h"
#include "tools/cli.h"
#include "tools/tangent_setup.h"

static const char usage[] =
    "usage: tandem ntk [options]\n"
    "  The empirical neural tangent kernel Theta(x1, x2) = J(x1) J(x2)^T of a model's\n"
    "  logits, written to an HDF5 file (dataset ntk, x1_index, x2_index).\n"
    "  --model NAME          zoo model (default: the one recorded in --weights, else mlp)\n"
    "  --weights FILE        parameters (default: the model's initialisation from --seed)\n"
    "  --data PATH, --test-data FILE, --text FILE, --val-fraction X   as for train\n"
    "  --layers N, --d-model N, --heads N, --context N   the model's shape (gpt)\n"
    "  --n N                 samples in x1 (default 128)\n"
    "  --from train|test     where x1 comes from (default test; text: validation windows)\n"
    "  --offset K            x1 starts at sample K (default 0)\n"
    "  --n2 M, --from2 S, --offset2 K   x2 (default: x2 = x1; --n2 alone takes M\n"
    "                        samples of x1's set from x1's offset)\n"
    "  --trace               sum over outputs: [n1, n2] instead of [n1, n2, K, K]\n"
    "  --diagonal            only Theta(x1_i, x2_i): [n, K, K] (or [n] with --trace)\n"
    "  --method NAME         auto, jacobian, ntvp or structured (default auto)\n"
    "  --params NAME,...     theta = these parameters or scopes (default: all)\n"
    "  --memory SIZE         working-set budget, e.g. 512M, 2G (default 1G)\n"
    "  --tile N              samples per tile (default: the largest the budget allows)\n"
    "  --repeat N            compute N times on the same plans and report the runs after\n"
    "                        the first (benchmarks; the file holds the last)\n"
    "  --threads N, --seed N\n"
    "  --out FILE            default ntk.h5\n";

struct ntk_flags {
    struct td_setup_config sc;
    const char *weights, *from, *from2, *method, *params, *memory, *out;
    long long n, n2, offset, offset2, tile, threads, repeat;
    int trace, diagonal;
};

struct sink {
    struct td_ntk_file *file;
    int tty;
};

static enum td_status put_tile(void *ctx, const struct td_ntk_tile *t, char *err, size_t errlen)
{
    struct sink *s = ctx;
    return td_ntk_file_write(s->file, t->i0, t->ni, t->j0, t->nj, t->data, err, errlen);
}

static void on_progress(void *ctx, double done)
{
    const struct sink *s = ctx;
    if (!s->tty) return;
    int width = 30, fill = (int)(width * done);
    fprintf(stderr, "\r  [%.*s%*s] %3.0f%%", fill, "##############################", width - fill,
            "", 100 * done);
    if (done >= 1) fputc('\n', stderr);
    fflush(stderr);
}

/* "a,b,c" -> names (pointers into the copy buf). */
static int split_names(char *buf, const char **names, int max)
{
    int n = 0;
    for (char *tok = strtok(buf, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok) names[n++] = tok;
    return n;
}

static int64_t *indices(int64_t offset, int64_t n)
{
    int64_t *idx = malloc((size_t)n * sizeof(int64_t));
    for (int64_t i = 0; idx && i < n; i++) idx[i] = offset + i;
    return idx;
}

static int run(struct ntk_flags *f)
{
    char err[1024];
    struct td_tangent_setup ts;
    struct td_samples x1 = {0}, x2 = {0};
    struct td_ntk_file *file = NULL;
    int64_t *i1 = NULL, *i2 = NULL;
    char params_buf[1024];
    const char *names[64];
    int method = td_ntk_method_from_name(f->method);
    size_t memory = td_parse_bytes(f->memory);
    enum td_status st = TD_OK;
    if (method < 0)
        st = TD_ERR_ARG,
        snprintf(err, sizeof(err), "unknown method '%s' (auto, jacobian, ntvp, structured)",
                 f->method);
    else if (!memory)
        st = TD_ERR_ARG, snprintf(err, sizeof(err), "bad --memory '%s' (e.g. 512M, 2G)", f->memory);
    memset(&ts, 0, sizeof(ts));
    if (st == TD_OK) st = td_tangent_setup_init(&ts, &f->sc, f->weights, err, sizeof(err));
    int sep = f->n2 > 0 || f->from2 || f->offset2 >= 0;
    if (st == TD_OK) st = td_samples_pick(&ts.s, f->from, f->offset, f->n, &x1, err, sizeof(err));
    if (st == TD_OK && sep)
        st = td_samples_pick(&ts.s, f->from2 ? f->from2 : f->from,
                             f->offset2 >= 0 ? f->offset2 : f->offset, f->n2 > 0 ? f->n2 : f->n,
                             &x2, err, sizeof(err));
    struct td_ntk_options o = {
        .method = (enum td_ntk_method)method,
        .trace = f->trace,
        .diagonal = f->diagonal,
        .memory = memory,
        .tile = f->tile,
        .num_threads = (int)f->threads,
    };
    if (f->params) {
        snprintf(params_buf, sizeof(params_buf), "%s", f->params);
        o.params.names = names;
        o.params.n = split_names(params_buf, names, 64);
    }
    const struct td_tangent_data *d2 = sep ? &x2.data : NULL;
    struct td_ntk_report r;
    if (st == TD_OK) st = td_ntk_plan(&ts.tm, &x1.data, d2, &o, &r, err, sizeof(err));
    if (st == TD_OK) {
        const struct td_samples *s2 = sep ? &x2 : &x1;
        struct td_shape shape = {0};
        if (!f->diagonal) shape.dim[shape.rank++] = x1.n;
        if (f->diagonal)
            shape.dim[shape.rank++] = x1.n;
        else
            shape.dim[shape.rank++] = s2->n;
        if (!f->trace) shape.dim[shape.rank++] = r.K, shape.dim[shape.rank++] = r.K;
        i1 = indices(x1.offset, x1.n);
        i2 = indices(s2->offset, s2->n);
        st = i1 && i2
                 ? td_ntk_file_create(&file, f->out, &shape, i1, x1.n, i2, s2->n, err, sizeof(err))
                 : TD_ERR_NOMEM;
        char from[64];
        snprintf(from, sizeof(from), "%s %s", x1.part, s2->part);
        const char *mode = f->diagonal ? (f->trace ? "diagonal trace" : "diagonal")
                                       : (f->trace ? "trace" : "full");
        const char *attrs[][2] = {
            {"method", td_ntk_method_name(r.method)},
            {"model", ts.s.info->name},
            {"weights", f->weights ? f->weights : "initialisation"},
            {"samples", from},
            {"mode", mode},
            {"params", f->params ? f->params : "all"},
        };
        for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]) && st == TD_OK; a++)
            st = td_ntk_file_attr(file, attrs[a][0], attrs[a][1], err, sizeof(err));
        printf("tandem ntk: model %s, %zu parameters in theta, K = %lld outputs; %lld x %lld "
               "samples (%s%s), %s kernel\n",
               ts.s.info->name, r.params, (long long)r.K, (long long)x1.n, (long long)s2->n, from,
               r.symmetric ? ", symmetric" : "", mode);
        printf("  method %s%s, tiles of %lld samples; %s\n", td_ntk_method_name(r.method),
               method == TD_NTK_AUTO ? " (auto)" : "", (long long)r.tile[r.method], r.why);
        fflush(stdout);
    }
    struct sink sk = {file, isatty(fileno(stderr))};
    o.sink = put_tile;
    o.sink_ctx = &sk;
    o.progress = on_progress;
    o.progress_ctx = &sk;
    /* Planning and building once, then the runs; the first run's time with
     * the building is what one kernel costs. */
    double times[1000], t0 = td_cli_now(), build = 0;
    int runs = 0;
    struct td_ntk *k = NULL;
    if (st == TD_OK) st = td_ntk_new(&k, &ts.tm, &x1.data, d2, &o, NULL, err, sizeof(err));
    build = td_cli_now() - t0;
    for (; st == TD_OK && runs < f->repeat; runs++) {
        st = td_ntk_run(k, &x1.data, d2, &r, err, sizeof(err));
        times[runs] = 1e3 * r.seconds;
    }
    if (st == TD_OK) {
        st = td_ntk_file_commit(file, err, sizeof(err));
        file = NULL;
    }
    if (st == TD_OK && runs > 1) {
        qsort(times + 1, (size_t)runs - 1, sizeof(double), td_cli_cmp_double);
        const int w = runs - 1;
        printf("%d more runs on the same plans: median %.1f ms, fastest %.1f ms, slowest %.1f ms\n",
               w, w % 2 ? times[1 + w / 2] : 0.5 * (times[w / 2] + times[1 + w / 2]), times[1],
               times[runs - 1]);
    }
    if (st == TD_OK)
        printf(
            "wrote %s\ncomputed in %.1f ms (planning and building %.1f ms, the kernel %.1f ms)\n",
            f->out, 1e3 * build + times[0], 1e3 * build, times[0]);
    else
        fprintf(stderr, "tandem ntk: %s\n", err);
    td_ntk_free(k);
    td_ntk_file_abort(file);
    free(i1), free(i2);
    td_samples_free(&x1);
    td_samples_free(&x2);
    td_tangent_setup_free(&ts);
    return st == TD_OK ? 0 : 1;
}

int td_cmd_ntk(int argc, char **argv)
{
    struct ntk_flags f = {
        .sc = {.mc = {.dropout = -1},
               .data = TD_FASHION_MNIST_DIR,
               .val_fraction = 0.1,
               .batch = 1,
               .seed = 1},
        .from = "test",
        .method = "auto",
        .memory = "1G",
        .out = "ntk.h5",
        .n = 128,
        .offset2 = -1,
        .repeat = 1,
    };
    const struct td_opt opts[] = {
        TD_TANGENT_DATA_OPTS(f.sc, f.weights),
        {"--n", TD_OPT_INT, &f.n, 1, 1e9},
        {"--n2", TD_OPT_INT, &f.n2, 1, 1e9},
        {"--from", TD_OPT_STR, &f.from, 0, 0},
        {"--from2", TD_OPT_STR, &f.from2, 0, 0},
        {"--offset", TD_OPT_INT, &f.offset, 0, 1e12},
        {"--offset2", TD_OPT_INT, &f.offset2, 0, 1e12},
        {"--trace", TD_OPT_FLAG, &f.trace, 0, 0},
        {"--diagonal", TD_OPT_FLAG, &f.diagonal, 0, 0},
        {"--method", TD_OPT_STR, &f.method, 0, 0},
        {"--params", TD_OPT_STR, &f.params, 0, 0},
        {"--memory", TD_OPT_STR, &f.memory, 0, 0},
        {"--tile", TD_OPT_INT, &f.tile, 1, 1e9},
        {"--threads", TD_OPT_INT, &f.threads, 1, 1024},
        {"--repeat", TD_OPT_INT, &f.repeat, 1, 1000},
        {"--seed", TD_OPT_INT, &f.sc.seed, 0, 9e15},
        {"--out", TD_OPT_STR, &f.out, 0, 0},
    };
    int r = td_cli_parse("ntk", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    return run(&f);
}
