/* `tandem train` and `tandem eval`: the command-line front end of the
 * training loop in tools/trainer.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/idx.h"
#include "tools/cli.h"
#include "tools/trainer.h"

static const char train_usage[] =
    "usage: tandem train [options]\n"
    "  --model NAME        model from the zoo (default mlp: 784-128-64-10, ReLU)\n"
    "  --data PATH         Fashion-MNIST IDX directory (default " TD_FASHION_MNIST_DIR ")\n"
    "                      or an HDF5 file with datasets x [N,...] and y [N]\n"
    "  --test-data FILE    HDF5 test set when --data is HDF5\n"
    "  --optimizer NAME    sgd, momentum, nesterov, adam, adamw, tangent-sgd, curv-sgd,\n"
    "                      adahessian, sophia (default tangent-sgd)\n"
    "  --lr X              base learning rate (default: the optimizer's)\n"
    "  --momentum X        momentum (sgd family, tangent-sgd, curv-sgd)\n"
    "  --weight-decay X    weight decay (L2, or decoupled for adamw and the Hutchinson methods)\n"
    "  --clip X            clip the gradient's global norm to X (0: off)\n"
    "  --lookahead MODE    tangent-sgd's direction: momentum (Nesterov-style, default)\n"
    "                      or gradient (extragradient-style)\n"
    "  --schedule NAME     constant, cosine or step (default cosine)\n"
    "  --warmup N          linear warmup steps (default 0)\n"
    "  --epochs N          epochs in total (default 10)\n"
    "  --batch N           batch size (default 64)\n"
    "  --threads N         threads (default: all cores)\n"
    "  --seed N            seed of initialisation, shuffling and probes (default 1)\n"
    "  --checkpoint-every N  also checkpoint every N steps (default: each epoch)\n"
    "  --resume FILE       continue from a checkpoint written by an earlier run\n"
    "  --out DIR           output directory (default out): weights.h5, checkpoint.h5,\n"
    "                      train_log.csv (per step), epochs.csv (per epoch)\n";

static const char eval_usage[] =
    "usage: tandem eval --weights FILE [--model NAME] [--data PATH] [--test-data FILE]\n"
    "                   [--batch N] [--threads N]\n"
    "  Evaluates saved weights on the test set (Fashion-MNIST's t10k by default).\n";

struct progress {
    int tty;
    double start;
    long long last_epoch;
};

static void on_progress(void *ctx, long long done, long long total, double loss)
{
    struct progress *pr = ctx;
    if (!pr->tty || (done % 8 && done != total)) return;
    double el = td_cli_now() - pr->start;
    double eta = done ? el / (double)done * (double)(total - done) : 0;
    int width = 30, fill = (int)(width * done / total);
    fprintf(stderr, "\r  epoch %lld [%.*s%*s] %lld/%lld  loss %.4f  ETA %4.0fs ",
            pr->last_epoch + 1, fill, "##############################", width - fill, "", done,
            total, loss, eta);
    fflush(stderr);
}

static void on_epoch(void *ctx, const struct td_epoch_report *r)
{
    struct progress *pr = ctx;
    if (pr->tty) fprintf(stderr, "\r%*s\r", 80, "");
    printf("epoch %3lld  train loss %.4f  test loss %.4f  test acc %6.2f%%  %7.0f samples/s  "
           "%.1fs\n",
           r->epoch, r->train_loss, r->test_loss, 100 * r->test_acc, r->samples_per_s, r->seconds);
    fflush(stdout);
    pr->start = td_cli_now();
    pr->last_epoch = r->epoch;
}

int td_cmd_train(int argc, char **argv)
{
    struct td_train_config c = {
        .model = "mlp",
        .data = TD_FASHION_MNIST_DIR,
        .optimizer = "tangent-sgd",
        .lr = -1,
        .momentum = -1,
        .weight_decay = -1,
        .clip_norm = -1,
        .schedule = "cosine",
        .epochs = 10,
        .batch = 64,
        .seed = 1,
        .out = "out",
    };
    const struct td_opt opts[] = {
        {"--model", TD_OPT_STR, &c.model, 0, 0},
        {"--data", TD_OPT_STR, &c.data, 0, 0},
        {"--test-data", TD_OPT_STR, &c.test_data, 0, 0},
        {"--optimizer", TD_OPT_STR, &c.optimizer, 0, 0},
        {"--lr", TD_OPT_FLOAT, &c.lr, 1e-12, 1e9},
        {"--momentum", TD_OPT_FLOAT, &c.momentum, 0, 0.999999},
        {"--weight-decay", TD_OPT_FLOAT, &c.weight_decay, 0, 1e3},
        {"--clip", TD_OPT_FLOAT, &c.clip_norm, 0, 1e9},
        {"--lookahead", TD_OPT_STR, &c.lookahead, 0, 0},
        {"--schedule", TD_OPT_STR, &c.schedule, 0, 0},
        {"--warmup", TD_OPT_INT, &c.warmup_steps, 0, 1e12},
        {"--epochs", TD_OPT_INT, &c.epochs, 1, 1e6},
        {"--batch", TD_OPT_INT, &c.batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &c.threads, 1, 1024},
        {"--seed", TD_OPT_INT, &c.seed, 0, 9e15},
        {"--checkpoint-every", TD_OPT_INT, &c.checkpoint_every, 1, 1e12},
        {"--resume", TD_OPT_STR, &c.resume, 0, 0},
        {"--out", TD_OPT_STR, &c.out, 0, 0},
    };
    int r =
        td_cli_parse("train", train_usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    char err[1024];
    struct td_trainer *t = td_trainer_new(&c, err, sizeof(err));
    if (!t) {
        fprintf(stderr, "tandem train: %s\n", err);
        return 1;
    }
    const struct td_dataset *tr = td_trainer_train_set(t), *te = td_trainer_test_set(t);
    printf("tandem train: model %s, %zu parameters; %lld training samples", c.model,
           td_trainer_num_params(t), (long long)tr->n);
    if (te) printf(", %lld test samples", (long long)te->n);
    printf(
        "\n  optimizer %s, lr %g (%s schedule), batch %lld, %lld epochs, %d threads, seed %lld\n",
        td_trainer_optimizer(t), (double)td_trainer_base_lr(t), c.schedule, c.batch, c.epochs,
        td_trainer_num_threads(t), c.seed);
    printf("  %lld steps per epoch; the last %lld samples of each shuffled epoch are skipped\n",
           td_trainer_steps_per_epoch(t), td_trainer_dropped_per_epoch(t));
    if (c.resume)
        printf("  resumed from %s after %lld epochs\n", c.resume, td_trainer_epochs_done(t));
    fflush(stdout);
    struct progress pr = {isatty(fileno(stderr)), td_cli_now(), td_trainer_epochs_done(t)};
    double t0 = td_cli_now();
    enum td_status st = td_trainer_run(t, on_progress, &pr, on_epoch, err, sizeof(err));
    if (st != TD_OK) {
        if (pr.tty) fputc('\n', stderr);
        fprintf(stderr, "tandem train: %s\n", err);
        td_trainer_free(t);
        return 1;
    }
    printf("done in %.1fs; wrote %s/weights.h5, %s/checkpoint.h5, %s/train_log.csv, "
           "%s/epochs.csv\n",
           td_cli_now() - t0, c.out, c.out, c.out, c.out);
    td_trainer_free(t);
    return 0;
}

int td_cmd_eval(int argc, char **argv)
{
    struct td_train_config c = {.model = "mlp",
                                .data = TD_FASHION_MNIST_DIR,
                                .optimizer = "sgd",
                                .lr = -1,
                                .momentum = -1,
                                .weight_decay = -1,
                                .clip_norm = -1,
                                .schedule = "constant",
                                .epochs = 1,
                                .batch = 1000,
                                .seed = 1,
                                .out = "out"};
    const char *weights = NULL;
    const struct td_opt opts[] = {
        {"--weights", TD_OPT_STR, &weights, 0, 0},
        {"--model", TD_OPT_STR, &c.model, 0, 0},
        {"--data", TD_OPT_STR, &c.data, 0, 0},
        {"--test-data", TD_OPT_STR, &c.test_data, 0, 0},
        {"--batch", TD_OPT_INT, &c.batch, 1, 1 << 20},
        {"--threads", TD_OPT_INT, &c.threads, 1, 1024},
    };
    int r =
        td_cli_parse("eval", eval_usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    if (!weights) {
        fprintf(stderr, "tandem eval: --weights is required\n%s", eval_usage);
        return 2;
    }
    char err[1024];
    struct td_trainer *t = td_trainer_new(&c, err, sizeof(err));
    if (!t) {
        fprintf(stderr, "tandem eval: %s\n", err);
        return 1;
    }
    const struct td_dataset *te = td_trainer_test_set(t);
    double loss, acc;
    enum td_status st = td_trainer_load_weights(t, weights, err, sizeof(err));
    if (st == TD_OK && !te) {
        snprintf(err, sizeof(err), "no test set: give --test-data with an HDF5 --data");
        st = TD_ERR_ARG;
    }
    if (st == TD_OK) st = td_trainer_evaluate(t, te, &loss, &acc, err, sizeof(err));
    if (st == TD_OK)
        printf("%s on %lld test samples: loss %.4f, accuracy %.2f%%\n", weights, (long long)te->n,
               loss, 100 * acc);
    else
        fprintf(stderr, "tandem eval: %s\n", err);
    td_trainer_free(t);
    return st == TD_OK ? 0 : 1;
}
