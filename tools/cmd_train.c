/* `tandem train` and `tandem eval`: the command-line front end of the
 * training loop (optim/train.h) for the models of the zoo. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "graph/taylor.h"
#include "io/idx.h"
#include "optim/grad_sum.h"
#include "tools/cli.h"
#include "tools/curv_track.h"
#include "tools/setup.h"

static const char train_usage[] =
    "usage: tandem train [options]\n"
    "  --model NAME        model from the zoo (default mlp: 784-128-64-10, ReLU)\n"
    "  --data PATH         Fashion-MNIST IDX directory (default " TD_FASHION_MNIST_DIR ")\n"
    "                      or an HDF5 file with datasets x [N,...] and y [N]\n"
    "  --test-data FILE    HDF5 test set when --data is HDF5\n"
    "  --text FILE         text models (gpt): a file of bytes (tools/kjv.sh writes the KJV)\n"
    "  --val-fraction X    text: the last fraction held out for validation (default 0.1)\n"
    "  --layers N, --d-model N, --heads N, --context N, --dropout X\n"
    "                      the model's shape (gpt: 4, 256, 4, 128, 0)\n"
    "  --optimizer NAME    sgd, momentum, nesterov, adam, adamw, tangent-sgd, curv-sgd,\n"
    "                      adahessian, sophia, hessian-free (default tangent-sgd)\n"
    "  --lr X              base learning rate (default: the optimizer's)\n"
    "  --momentum X        momentum (sgd family, tangent-sgd, curv-sgd)\n"
    "  --beta1 X, --beta2 X  Adam-family moment decay rates (default 0.9, 0.999)\n"
    "  --weight-decay X    weight decay (L2, or decoupled for adamw and the Hutchinson methods)\n"
    "  --clip X            clip the gradient's global norm to X (0: off)\n"
    "  --lookahead MODE    tangent-sgd's direction: momentum (Nesterov-style, default)\n"
    "                      or gradient (extragradient-style)\n"
    "  --hessian-interval N  adahessian, sophia: refresh the Hutchinson diagonal every\n"
    "                      N steps (default 1 and 10)\n"
    "  --damping X         damping: curv-sgd's (default 0.001), hessian-free's initial\n"
    "                      Levenberg-Marquardt lambda (default 1)\n"
    "  --cg-iters N        hessian-free's cap on Gauss-Newton products per step (default 50)\n"
    "  --cg-decay X        hessian-free's CG warm start, the previous solution times X\n"
    "                      (default 0.95)\n"
    "  --linearize         train the network linearised at its initialisation,\n"
    "                      f(theta0) + J(theta0) (theta - theta0)\n"
    "  --remat             recompute GELU outputs in the backward pass instead of keeping\n"
    "                      them from the forward pass: less memory, one GELU pass more\n"
    "                      per layer (td_graph_set_remat)\n"
    "  --track-curvature N every N steps, write the top Hessian eigenvalue, the Hessian's\n"
    "                      trace and the NTK's trace on a probe batch to curvature.h5\n"
    "  --probe-batch N     the probe batch: the first N training samples (default 256)\n"
    "  --schedule NAME     constant, cosine or step (default cosine)\n"
    "  --warmup N          linear warmup steps (default 0)\n"
    "  --min-lr X          the cosine schedule's final rate (default 0)\n"
    "  --epochs N          length of the run in passes over the data (default 10)\n"
    "  --steps N           length of the run in steps (overrides --epochs)\n"
    "  --batch N           batch size (default 64); per rank under mpirun, where the\n"
    "                      global batch is N times the number of ranks\n"
    "  --eval-every N      evaluate, save weights and checkpoint every N steps\n"
    "                      (default: every epoch)\n"
    "  --eval-batches N    evaluate on at most N batches (default: all)\n"
    "  --threads N         threads (default: all cores)\n"
    "  --bucket-mb X       under mpirun: sum gradients over ranks in buckets of X MiB,\n"
    "                      each as soon as the backward pass has finished it (default 1)\n"
    "  --seed N            seed of initialisation, batch order and probes (default 1)\n"
    "  --checkpoint-every N  also checkpoint every N steps\n"
    "  --resume FILE       continue from a checkpoint written by an earlier run\n"
    "  --out DIR           output directory (default out): weights.h5, checkpoint.h5,\n"
    "                      train_log.csv (per step), evals.csv (per evaluation)\n";

static const char eval_usage[] =
    "usage: tandem eval --weights FILE [--model NAME] [--data PATH] [--test-data FILE]\n"
    "                   [--text FILE] [--val-fraction X] [--batch N] [--threads N]\n"
    "  --batch N defaults to 1000 images or 16 text windows.\n"
    "  Evaluates saved weights: image models on the test set (Fashion-MNIST's t10k\n"
    "  by default), text models on the validation part of --text. The model and\n"
    "  its options are read from the weights file when it records them.\n";

/* A text model's weights hold the vocabulary it was trained with: the text
 * it is evaluated on must tokenize the same way. */
static enum td_status check_vocab(const char *weights, const struct td_vocab *text, char *err,
                                  size_t errlen)
{
    struct td_vocab v;
    enum td_status st = td_vocab_load(weights, &v, err, errlen);
    if (st != TD_OK) return st;
    if (v.size != text->size || memcmp(v.byte, text->byte, (size_t)v.size) != 0) {
        snprintf(err, errlen,
                 "%s was trained on a vocabulary of %d bytes, the text has %d other ones: "
                 "its token ids would mean other bytes",
                 weights, v.size, text->size);
        return TD_ERR_ARG;
    }
    return TD_OK;
}

struct progress {
    int tty;
    const char *items;
    int text;
    struct td_curv_track *track;
};

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!isfinite(s)) s = 0;
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%.0fs", s);
}

static void on_progress(void *ctx, const struct td_train_progress *p)
{
    struct progress *pr = ctx;
    if (!pr->tty || (p->step % 8 && p->step != p->steps)) return;
    int width = 24, fill = (int)(width * p->step / p->steps);
    char eta[32];
    fmt_eta(p->eta_s, eta, sizeof(eta));
    fprintf(stderr, "\r  [%.*s%*s] step %lld/%lld  loss %.4f  %.0f %s/s  ETA %s   ", fill,
            "########################", width - fill, "", (long long)p->step, (long long)p->steps,
            p->loss, p->items_per_s, pr->items, eta);
    fflush(stderr);
}

static void on_evaluated(void *ctx, const struct td_eval_report *r)
{
    struct progress *pr = ctx;
    if (pr->tty) fprintf(stderr, "\r%*s\r", 100, "");
    if (pr->text)
        printf("step %6lld  train loss %.4f (%.3f bits)  val loss %.4f (%.3f bits)  "
               "%7.0f %s/s  %.1fs\n",
               (long long)r->step, r->train_loss, r->train_loss / log(2), r->val_loss,
               r->val_loss / log(2), r->items_per_s, pr->items, r->seconds);
    else
        printf("step %6lld  epoch %5.2f  train loss %.4f  test loss %.4f  test acc %6.2f%%  "
               "%7.0f %s/s  %.2fs (%.0f%% in plans)\n",
               (long long)r->step, r->epoch, r->train_loss, r->val_loss, 100 * r->val_acc,
               r->items_per_s, pr->items, r->seconds,
               r->seconds > 0 ? 100 * r->plan_seconds / r->seconds : 0);
    fflush(stdout);
}

static enum td_status on_stepped(void *ctx, int64_t step, char *err, size_t errlen)
{
    struct progress *pr = ctx;
    return td_curv_track_stepped(pr->track, step, err, errlen);
}

struct train_flags {
    struct td_setup_config sc;
    const char *optimizer, *lookahead, *schedule, *resume, *out;
    double lr, momentum, beta1, beta2, weight_decay, clip, min_lr, damping, cg_decay, bucket_mb;
    long long warmup, epochs, steps, eval_every, eval_batches, threads, checkpoint_every, cg_iters;
    long long hessian_interval, track_curvature, probe_batch;
    int linearize, remat;
};

/* The optimizer's configuration: its defaults with the flags that were given. */
static int optim_config(const struct train_flags *f, struct td_optim_config *oc, char *err,
                        size_t errlen)
{
    *oc = td_optim_config_default(f->optimizer);
    if (f->lr > 0) oc->lr = (float)f->lr;
    if (f->momentum >= 0) oc->momentum = (float)f->momentum;
    if (f->beta1 >= 0) oc->beta1 = (float)f->beta1;
    if (f->beta2 >= 0) oc->beta2 = (float)f->beta2;
    if (f->weight_decay >= 0) oc->weight_decay = (float)f->weight_decay;
    if (f->clip >= 0) oc->clip_norm = (float)f->clip;
    if (f->damping > 0) oc->damping = (float)f->damping;
    if (f->cg_iters > 0) oc->cg_iters = (int)f->cg_iters;
    if (f->cg_decay >= 0) oc->cg_decay = (float)f->cg_decay;
    if (f->lookahead && !strcmp(f->lookahead, "gradient"))
        oc->lookahead = TD_LOOKAHEAD_GRADIENT;
    else if (f->lookahead && strcmp(f->lookahead, "momentum")) {
        snprintf(err, errlen, "unknown lookahead '%s' (momentum or gradient)", f->lookahead);
        return -1;
    }
    if (f->hessian_interval > 0) oc->hessian_interval = (int)f->hessian_interval;
    oc->seed = (uint64_t)f->sc.seed;
    return 0;
}

static int make_schedule(const struct train_flags *f, float lr, int64_t steps,
                         struct td_schedule *s, char *err, size_t errlen)
{
    *s = td_schedule_constant(lr);
    s->warmup_steps = f->warmup;
    if (!strcmp(f->schedule, "cosine")) {
        s->kind = TD_SCHEDULE_COSINE;
        s->total_steps = steps - f->warmup > 0 ? steps - f->warmup : 1;
        s->min_lr = (float)f->min_lr;
    } else if (!strcmp(f->schedule, "step")) {
        s->kind = TD_SCHEDULE_STEP;
        s->step_size = steps / 3 > 0 ? steps / 3 : 1;
        s->gamma = 0.1f;
    } else if (strcmp(f->schedule, "constant")) {
        snprintf(err, errlen, "unknown schedule '%s' (constant, cosine or step)", f->schedule);
        return -1;
    }
    return td_schedule_check(s, err, errlen) == TD_OK ? 0 : -1;
}

/* What the run is, on stdout before the first step. */
static void print_header(const struct train_flags *f, const struct td_setup *s,
                         const struct td_trainer *t, const struct td_train_options *o,
                         int64_t steps, int tracking)
{
    const struct td_params *p = td_graph_params(s->g);
    printf("tandem train: model %s%s%s, %zu parameters; %lld training %s", s->info->name,
           s->model_config[0] ? " " : "", s->model_config, p->total, (long long)s->src.train_items,
           s->src.item_name);
    if (s->has_test) printf(", %lld test samples", (long long)s->test.n);
    printf("\n  optimizer %s, lr %g (%s schedule), batch %lld, %lld steps, %d threads, seed %lld\n",
           f->optimizer, (double)o->optim.lr, f->schedule, f->sc.batch, (long long)steps,
           td_trainer_num_threads(t), f->sc.seed);
    if (f->sc.ranks > 1)
        printf("  %d ranks (MPI): global batch %lld, gradients summed in one buffer per step, "
               "in buckets of %g MiB as the backward pass finishes them\n",
               f->sc.ranks, f->sc.batch * f->sc.ranks,
               f->bucket_mb > 0 ? f->bucket_mb
                                : (double)(TD_GRAD_SUM_BUCKET_FLOATS * sizeof(float)) / (1 << 20));
    if (f->linearize) printf("  training the network linearised at its initialisation\n");
    if (tracking)
        printf("  curvature of %lld probe samples every %lld steps into %s/curvature.h5\n",
               f->probe_batch, f->track_curvature, f->out);
    if (s->src.steps_per_epoch > 0 && s->train.n % (f->sc.batch * f->sc.ranks))
        printf("  %lld steps per epoch; the last %lld samples of each shuffled epoch are skipped\n",
               (long long)s->src.steps_per_epoch,
               (long long)(s->train.n % (f->sc.batch * f->sc.ranks)));
    if (f->resume)
        printf("  resumed from %s at step %lld\n", f->resume, (long long)td_trainer_step(t));
    fflush(stdout);
}

static int train(struct train_flags *f, struct td_dist *dist)
{
    char err[1024];
    struct td_setup s;
    struct td_trainer *t = NULL;
    f->sc.rank = td_dist_rank(dist);
    f->sc.ranks = td_dist_size(dist);
    struct td_curv_track *track = NULL;
    enum td_status st = td_setup_init(&s, &f->sc, err, sizeof(err));
    if (st == TD_OK) td_graph_set_remat(s.g, f->remat);
    if (st == TD_OK && f->linearize) {
        /* The linearised output replaces the logits everywhere: loss,
         * evaluation and the weights' meaning. */
        struct td_node *lin = td_linearize(s.g, s.m.logits);
        s.tm.loss = td_model_loss(s.g, lin, s.m.labels);
        s.tm.eval_output = lin;
        if (td_graph_status(s.g) != TD_OK) {
            snprintf(err, sizeof(err), "--linearize: %s", td_graph_error(s.g));
            st = td_graph_status(s.g);
        }
    }
    int64_t steps = f->steps > 0 ? f->steps : f->epochs * s.src.steps_per_epoch;
    struct td_train_options o = {
        .optimizer = f->optimizer,
        .steps = steps,
        .eval_every = f->eval_every > 0 ? f->eval_every : s.src.steps_per_epoch,
        .eval_batches = f->eval_batches,
        .checkpoint_every = f->checkpoint_every,
        .num_threads = (int)f->threads,
        .out_dir = f->out,
        .resume = f->resume,
        .dist = dist,
        .bucket_floats = (size_t)(f->bucket_mb * (1 << 20) / sizeof(float)),
    };
    if (st == TD_OK && steps < 1) {
        snprintf(err, sizeof(err), "the source has no epochs: give --steps");
        st = TD_ERR_ARG;
    }
    if (st == TD_OK && (optim_config(f, &o.optim, err, sizeof(err)) != 0 ||
                        make_schedule(f, o.optim.lr, steps, &o.schedule, err, sizeof(err)) != 0))
        st = TD_ERR_ARG;
    if (st == TD_OK) {
        o.meta = td_setup_meta(&s);
        t = td_trainer_new(&s.tm, &s.src, &o, err, sizeof(err));
        if (!t) st = TD_ERR_ARG;
    }
    if (st == TD_OK && f->track_curvature > 0) {
        struct td_curv_track_options to = {
            .every = f->track_curvature,
            .probe_n = f->probe_batch,
            .lanczos_steps = 20,
            .probes = 10,
            .linearize = f->linearize,
            .num_threads = td_trainer_num_threads(t),
            .seed = (uint64_t)f->sc.seed,
            .out_dir = f->out,
            .resumed_step = f->resume ? td_trainer_step(t) : -1,
        };
        st = td_curv_track_new(&track, &s, &to, err, sizeof(err));
    }
    if (st != TD_OK) {
        fprintf(stderr, "tandem train: %s%s\n", f->sc.ranks > 1 ? "rank error: " : "", err);
        td_curv_track_free(track);
        td_trainer_free(t);
        td_setup_free(&s);
        return 1;
    }
    int quiet = f->sc.rank != 0;
    if (!quiet) print_header(f, &s, t, &o, steps, track != NULL);
    struct progress pr = {isatty(fileno(stderr)), s.src.item_name, s.desc.kind == TD_DATA_TEXT,
                          track};
    struct td_train_callbacks cb = {.ctx = &pr,
                                    .progress = quiet ? NULL : on_progress,
                                    .evaluated = quiet ? NULL : on_evaluated,
                                    .stepped = track ? on_stepped : NULL};
    double t0 = td_cli_now();
    st = td_trainer_run(t, &cb, err, sizeof(err));
    if (st != TD_OK) {
        if (pr.tty && !quiet) fputc('\n', stderr);
        if (f->sc.ranks > 1)
            fprintf(stderr, "tandem train: rank %d: %s\n", f->sc.rank, err);
        else
            fprintf(stderr, "tandem train: %s\n", err);
    } else if (!quiet) {
        printf("done in %.2fs; wrote %s/weights.h5, %s/checkpoint.h5, %s/train_log.csv, "
               "%s/evals.csv\n",
               td_cli_now() - t0, f->out, f->out, f->out, f->out);
    }
    td_curv_track_free(track);
    td_trainer_free(t);
    td_setup_free(&s);
    return st == TD_OK ? 0 : 1;
}

int td_cmd_train(int argc, char **argv)
{
    struct train_flags f = {
        .sc = {.model = "mlp",
               .mc = {.dropout = -1},
               .data = TD_FASHION_MNIST_DIR,
               .val_fraction = 0.1,
               .batch = 64,
               .seed = 1},
        .optimizer = "tangent-sgd",
        .schedule = "cosine",
        .out = "out",
        .lr = -1,
        .momentum = -1,
        .beta1 = -1,
        .beta2 = -1,
        .weight_decay = -1,
        .clip = -1,
        .cg_decay = -1,
        .epochs = 10,
        .probe_batch = 256,
    };
    const struct td_opt opts[] = {
        {"--model", TD_OPT_STR, &f.sc.model, 0, 0},
        {"--data", TD_OPT_STR, &f.sc.data, 0, 0},
        {"--test-data", TD_OPT_STR, &f.sc.test_data, 0, 0},
        {"--text", TD_OPT_STR, &f.sc.text, 0, 0},
        {"--val-fraction", TD_OPT_FLOAT, &f.sc.val_fraction, 0, 0.9},
        TD_MODEL_OPTS(f.sc.mc),
        {"--optimizer", TD_OPT_STR, &f.optimizer, 0, 0},
        {"--lr", TD_OPT_FLOAT, &f.lr, 1e-12, 1e9},
        {"--momentum", TD_OPT_FLOAT, &f.momentum, 0, 0.999999},
        {"--beta1", TD_OPT_FLOAT, &f.beta1, 0, 0.999999},
        {"--beta2", TD_OPT_FLOAT, &f.beta2, 0, 0.999999},
        {"--weight-decay", TD_OPT_FLOAT, &f.weight_decay, 0, 1e3},
        {"--clip", TD_OPT_FLOAT, &f.clip, 0, 1e9},
        {"--lookahead", TD_OPT_STR, &f.lookahead, 0, 0},
        {"--hessian-interval", TD_OPT_INT, &f.hessian_interval, 1, 1e6},
        {"--damping", TD_OPT_FLOAT, &f.damping, 1e-12, 1e12},
        {"--cg-iters", TD_OPT_INT, &f.cg_iters, 1, 500},
        {"--cg-decay", TD_OPT_FLOAT, &f.cg_decay, 0, 1},
        {"--linearize", TD_OPT_FLAG, &f.linearize, 0, 0},
        {"--remat", TD_OPT_FLAG, &f.remat, 0, 0},
        {"--track-curvature", TD_OPT_INT, &f.track_curvature, 1, 1e12},
        {"--probe-batch", TD_OPT_INT, &f.probe_batch, 1, 1 << 20},
        {"--schedule", TD_OPT_STR, &f.schedule, 0, 0},
        {"--warmup", TD_OPT_INT, &f.warmup, 0, 1e12},
        {"--min-lr", TD_OPT_FLOAT, &f.min_lr, 0, 1e9},
        {"--epochs", TD_OPT_INT, &f.epochs, 1, 1e6},
        {"--steps", TD_OPT_INT, &f.steps, 1, 1e12},
        {"--batch", TD_OPT_INT, &f.sc.batch, 1, 1 << 20},
        {"--eval-every", TD_OPT_INT, &f.eval_every, 1, 1e12},
        {"--eval-batches", TD_OPT_INT, &f.eval_batches, 1, 1e12},
        {"--threads", TD_OPT_INT, &f.threads, 1, 1024},
        {"--bucket-mb", TD_OPT_FLOAT, &f.bucket_mb, 1e-4, 1e6},
        {"--seed", TD_OPT_INT, &f.sc.seed, 0, 9e15},
        {"--checkpoint-every", TD_OPT_INT, &f.checkpoint_every, 1, 1e12},
        {"--resume", TD_OPT_STR, &f.resume, 0, 0},
        {"--out", TD_OPT_STR, &f.out, 0, 0},
    };
    int r =
        td_cli_parse("train", train_usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    char err[512];
    struct td_dist *dist = NULL;
    if (td_dist_init(&dist, err, sizeof(err)) != TD_OK) {
        fprintf(stderr, "tandem train: %s\n", err);
        return 1;
    }
    int status = train(&f, dist);
    td_dist_finalize(dist);
    return status;
}

int td_cmd_eval(int argc, char **argv)
{
    struct td_setup_config c = {.model = NULL,
                                .mc = {.dropout = -1},
                                .data = TD_FASHION_MNIST_DIR,
                                .val_fraction = 0.1,
                                .seed = 1};
    const char *weights = NULL;
    long long threads = 0;
    const struct td_opt opts[] = {
        {"--weights", TD_OPT_STR, &weights, 0, 0},
        {"--model", TD_OPT_STR, &c.model, 0, 0},
        {"--data", TD_OPT_STR, &c.data, 0, 0},
        {"--test-data", TD_OPT_STR, &c.test_data, 0, 0},
        {"--text", TD_OPT_STR, &c.text, 0, 0},
        {"--val-fraction", TD_OPT_FLOAT, &c.val_fraction, 0, 0.9},
        {"--batch", TD_OPT_INT, &c.batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &threads, 1, 1024},
    };
    int r =
        td_cli_parse("eval", eval_usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    if (!weights) {
        fprintf(stderr, "tandem eval: --weights is required\n%s", eval_usage);
        return 2;
    }
    char err[1024], model[64], config[256];
    enum td_status st =
        td_weights_read_meta(weights, model, config, sizeof(config), err, sizeof(err));
    if (st == TD_OK && !c.model) c.model = model[0] ? model : "mlp";
    if (st == TD_OK && td_model_config_parse(config, &c.mc, err, sizeof(err)) != 0)
        st = TD_ERR_FORMAT;
    struct td_setup s;
    memset(&s, 0, sizeof(s));
    if (st == TD_OK) {
        const struct td_model_info *info = td_model_find(c.model);
        /* A text batch holds whole windows: fewer rows suit it. */
        if (c.batch == 0) c.batch = info && info->data == TD_DATA_TEXT ? 16 : 1000;
        st = td_setup_init(&s, &c, err, sizeof(err));
    }
    if (st == TD_OK && s.desc.kind == TD_DATA_TEXT)
        st = check_vocab(weights, &s.text.vocab, err, sizeof(err));
    double loss = NAN, acc = NAN;
    if (st == TD_OK) st = td_weights_import(td_graph_params(s.g), weights, 0, err, sizeof(err));
    if (st == TD_OK)
        st = td_evaluate(&s.tm, &s.src, 0, (int)threads, &loss, &acc, err, sizeof(err));
    if (st == TD_OK && s.desc.kind == TD_DATA_TEXT)
        printf("%s on %lld validation tokens of %s: loss %.4f nats/token (%.4f bits), "
               "next-token accuracy %.2f%%\n",
               weights, (long long)(s.text.n - s.text.n_train), c.text, loss, loss / log(2),
               100 * acc);
    else if (st == TD_OK)
        printf("%s on %lld test samples: loss %.4f, accuracy %.2f%%\n", weights,
               (long long)s.test.n, loss, 100 * acc);
    else
        fprintf(stderr, "tandem eval: %s\n", err);
    td_setup_free(&s);
    return st == TD_OK ? 0 : 1;
}
