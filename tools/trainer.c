#include "tools/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/checkpoint.h"
#include "io/h5data.h"
#include "io/idx.h"
#include "io/ioutil.h"
#include "io/weights.h"
#include "tools/cli.h"
#include "tools/step_graph.h"

#define TD_PATH_MAX 4096
/* Fixed checkpoint entries besides parameters and optimizer state. */
#define TD_CKPT_STATE_ENTRIES 7

struct td_trainer {
    struct td_train_config cfg;
    struct td_dataset train, test;
    int has_test;
    struct td_graph *g;
    struct td_model m;
    struct td_params *p;
    struct td_step_graph step;
    struct td_plan *grad_plan, *hvp_plan, *eval_plan;
    struct td_optim *opt;
    struct td_schedule sched;
    struct td_batcher batcher;
    float *x;
    int32_t *y;
    int num_threads;
    /* Progress, all saved in checkpoints so a resumed run logs the same. */
    int64_t epochs_done;
    double epoch_loss_sum;
    int64_t epoch_steps;
    uint64_t seed;
};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum td_status load_data(struct td_trainer *t, char *err, size_t errlen)
{
    const struct td_train_config *c = &t->cfg;
    enum td_status st;
    if (ends_with(c->data, ".h5") || ends_with(c->data, ".hdf5")) {
        st = td_h5data_load(c->data, &t->train, err, errlen);
        if (st == TD_OK && c->test_data) {
            st = td_h5data_load(c->test_data, &t->test, err, errlen);
            t->has_test = st == TD_OK;
        }
    } else {
        st = td_dataset_load_fashion_mnist(c->data, 1, &t->train, err, errlen);
        if (st == TD_OK) st = td_dataset_load_fashion_mnist(c->data, 0, &t->test, err, errlen);
        t->has_test = st == TD_OK;
    }
    if (st != TD_OK) return st;
    if (t->has_test && (td_dataset_sample_numel(&t->test) != td_dataset_sample_numel(&t->train)))
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "test samples have %lld values, training samples %lld",
                          (long long)td_dataset_sample_numel(&t->test),
                          (long long)td_dataset_sample_numel(&t->train));
    if (t->has_test && t->test.classes > t->train.classes) t->train.classes = t->test.classes;
    return TD_OK;
}

static int classes_of(const struct td_trainer *t)
{
    return t->train.classes > 1 ? t->train.classes : 2;
}

static enum td_status build(struct td_trainer *t, char *err, size_t errlen)
{
    const struct td_model_info *info = td_model_find(t->cfg.model);
    if (!info) return td_io_errf(TD_ERR_ARG, err, errlen, "unknown model '%s'", t->cfg.model);
    t->g = td_graph_new(t->seed);
    if (!t->g) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    if (td_model_build(info, t->g, (int)t->cfg.batch, &t->train.sample_shape, classes_of(t),
                       &t->m) != TD_OK)
        return td_io_errf(td_graph_status(t->g), err, errlen, "model %s: %s", info->name,
                          td_graph_error(t->g));
    t->p = td_graph_params(t->g);
    int64_t nx = td_shape_numel(td_node_shape(t->m.x));
    t->x = calloc((size_t)nx, sizeof(float));
    t->y = calloc((size_t)t->cfg.batch, sizeof(int32_t));
    if (!t->x || !t->y) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    enum td_status st = td_step_graph_init(&t->step, t->g, t->m.loss);
    if (st == TD_ERR_NOMEM) return td_io_errf(st, err, errlen, "out of memory");
    if (st != TD_OK) return td_io_errf(st, err, errlen, "%s", td_graph_error(t->g));
    return TD_OK;
}

/* Gradient plan (hvp = 0) or gradient+HVP plan, compiled on first use.
 * check = 1 compiles a NaN-checking copy for diagnosis. */
static struct td_plan *compile_train_plan(struct td_trainer *t, int hvp, int check)
{
    struct td_compile_options co = {.num_threads = t->num_threads, .check_numerics = check};
    return td_step_graph_compile(&t->step, hvp, 1, co);
}

static enum td_status make_optimizer(struct td_trainer *t, char *err, size_t errlen)
{
    const struct td_train_config *c = &t->cfg;
    struct td_optim_config oc = td_optim_config_default(c->optimizer);
    if (c->lr > 0) oc.lr = (float)c->lr;
    if (c->momentum >= 0) oc.momentum = (float)c->momentum;
    if (c->weight_decay >= 0) oc.weight_decay = (float)c->weight_decay;
    if (c->clip_norm >= 0) oc.clip_norm = (float)c->clip_norm;
    if (c->lookahead && !strcmp(c->lookahead, "gradient"))
        oc.lookahead = TD_LOOKAHEAD_GRADIENT;
    else if (c->lookahead && strcmp(c->lookahead, "momentum"))
        return td_io_errf(TD_ERR_ARG, err, errlen, "unknown lookahead '%s' (momentum or gradient)",
                          c->lookahead);
    oc.seed = t->seed;
    oc.num_threads = t->num_threads;
    t->opt = td_optim_new(c->optimizer, &oc, t->p, err, errlen);
    if (!t->opt) return TD_ERR_ARG;
    int64_t steps = td_batcher_num_batches(&t->batcher) * c->epochs;
    t->sched = td_schedule_constant(oc.lr);
    t->sched.warmup_steps = c->warmup_steps;
    if (!strcmp(c->schedule, "cosine")) {
        t->sched.kind = TD_SCHEDULE_COSINE;
        t->sched.total_steps = steps - c->warmup_steps > 0 ? steps - c->warmup_steps : 1;
        t->sched.min_lr = 0;
    } else if (!strcmp(c->schedule, "step")) {
        t->sched.kind = TD_SCHEDULE_STEP;
        t->sched.step_size = steps / 3 > 0 ? steps / 3 : 1;
        t->sched.gamma = 0.1f;
    } else if (strcmp(c->schedule, "constant")) {
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "unknown schedule '%s' (constant, cosine or step)", c->schedule);
    }
    return td_schedule_check(&t->sched, err, errlen);
}

/* The checkpoint's entries, pointing into the trainer. e holds P + optimizer
 * blocks + TD_CKPT_STATE_ENTRIES entries; vals holds the integer state. */
static int ckpt_entries(struct td_trainer *t, struct td_ckpt_entry *e, int64_t *ints,
                        uint64_t *uints)
{
    int n = td_ckpt_param_entries(t->p, e);
    for (int i = 0; i < td_optim_state_count(t->opt); i++) {
        const char *name;
        float *data;
        size_t count;
        td_optim_state_block(t->opt, i, &name, &data, &count);
        e[n++] = (struct td_ckpt_entry){name, TD_CKPT_F32, data, count, NULL};
    }
    e[n++] = (struct td_ckpt_entry){"step", TD_CKPT_I64, &ints[0], 1, NULL};
    e[n++] = (struct td_ckpt_entry){"epochs_done", TD_CKPT_I64, &t->epochs_done, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"epoch_steps", TD_CKPT_I64, &t->epoch_steps, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"batch_index", TD_CKPT_I64, &ints[1], 1, NULL};
    e[n++] = (struct td_ckpt_entry){"batch_epoch", TD_CKPT_U64, &uints[0], 1, NULL};
    e[n++] = (struct td_ckpt_entry){"seed", TD_CKPT_U64, &t->seed, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"epoch_loss_sum", TD_CKPT_F64, &t->epoch_loss_sum, 1, NULL};
    return n;
}

static void out_path(const struct td_trainer *t, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", t->cfg.out, file);
}

static enum td_status save_checkpoint(struct td_trainer *t, char *err, size_t errlen)
{
    struct td_ckpt_entry *e = calloc((size_t)t->p->count + 4 + TD_CKPT_STATE_ENTRIES, sizeof(*e));
    if (!e) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    struct td_batch_pos pos = td_batcher_tell(&t->batcher);
    int64_t ints[2] = {td_optim_steps(t->opt), pos.index};
    uint64_t uints[1] = {pos.epoch};
    int n = ckpt_entries(t, e, ints, uints);
    char path[TD_PATH_MAX];
    out_path(t, "checkpoint.h5", path, sizeof(path));
    enum td_status st = td_ckpt_save(path, e, n, err, errlen);
    free(e);
    return st;
}

static enum td_status load_checkpoint(struct td_trainer *t, const char *path, char *err,
                                      size_t errlen)
{
    struct td_ckpt_entry *e = calloc((size_t)t->p->count + 4 + TD_CKPT_STATE_ENTRIES, sizeof(*e));
    if (!e) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    int64_t ints[2] = {0, 0};
    uint64_t uints[1] = {0};
    int n = ckpt_entries(t, e, ints, uints);
    enum td_status st = td_ckpt_load(path, e, n, err, errlen);
    free(e);
    if (st != TD_OK) return st;
    st = td_optim_set_steps(t->opt, ints[0]);
    td_batcher_free(&t->batcher);
    if (st == TD_OK)
        st = td_batcher_init(&t->batcher, &t->train, t->cfg.batch, TD_BATCH_DROP_LAST, 1, t->seed,
                             err, errlen);
    if (st == TD_OK)
        st = td_batcher_seek(&t->batcher, (struct td_batch_pos){uints[0], ints[1]}, err, errlen);
    return st;
}

/* Opens a CSV log for appending. A fresh run starts it with its header; a
 * resumed run first keeps only the complete lines whose first field is at
 * most `limit` (what the checkpoint covers), so steps or epochs that a killed
 * run logged after its last checkpoint are not logged twice. */
static FILE *open_log(const struct td_trainer *t, const char *file, const char *header, int resumed,
                      long long limit)
{
    char path[TD_PATH_MAX], tmp[TD_PATH_MAX + 8];
    out_path(t, file, path, sizeof(path));
    if (!resumed) {
        FILE *f = fopen(path, "w");
        if (f) fputs(header, f);
        return f;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *old = fopen(path, "r"), *f = fopen(tmp, "w");
    if (!f) {
        if (old) fclose(old);
        return NULL;
    }
    fputs(header, f);
    char line[512];
    long long key;
    while (old && fgets(line, sizeof(line), old))
        if (strchr(line, '\n') && sscanf(line, "%lld,", &key) == 1 && key <= limit) fputs(line, f);
    if (old) fclose(old);
    int ok = fclose(f) == 0 && td_io_commit(tmp, path, NULL, 0) == TD_OK;
    return ok ? fopen(path, "a") : NULL;
}

struct td_trainer *td_trainer_new(const struct td_train_config *cfg, char *err, size_t errlen)
{
    struct td_trainer *t = calloc(1, sizeof(*t));
    if (!t) {
        td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        return NULL;
    }
    t->cfg = *cfg;
    t->seed = (uint64_t)cfg->seed;
    t->num_threads = cfg->threads > 0 ? (int)cfg->threads : 0;
    enum td_status st = load_data(t, err, errlen);
    if (st == TD_OK) st = build(t, err, errlen);
    if (st == TD_OK)
        st = td_batcher_init(&t->batcher, &t->train, cfg->batch, TD_BATCH_DROP_LAST, 1, t->seed,
                             err, errlen);
    if (st == TD_OK) st = make_optimizer(t, err, errlen);
    if (st == TD_OK) {
        t->grad_plan = compile_train_plan(t, 0, 0);
        struct td_node *logits = t->m.logits;
        struct td_compile_options co = {.num_threads = t->num_threads};
        t->eval_plan = t->grad_plan ? td_compile(t->g, &logits, 1, &co) : NULL;
        if (!t->eval_plan)
            st = td_io_errf(td_graph_status(t->g), err, errlen, "%s", td_graph_error(t->g));
        else {
            struct td_plan_stats s;
            td_plan_get_stats(t->grad_plan, &s);
            t->num_threads = s.num_threads;
        }
    }
    if (st == TD_OK && cfg->resume) {
        char msg[TD_MSG_MAX];
        st = load_checkpoint(t, cfg->resume, msg, sizeof(msg));
        if (st != TD_OK) td_io_errf(st, err, errlen, "cannot resume: %s", msg);
    }
    if (st != TD_OK) {
        td_trainer_free(t);
        return NULL;
    }
    return t;
}

void td_trainer_free(struct td_trainer *t)
{
    if (!t) return;
    td_plan_free(t->grad_plan);
    td_plan_free(t->hvp_plan);
    td_plan_free(t->eval_plan);
    td_optim_free(t->opt);
    td_batcher_free(&t->batcher);
    td_graph_free(t->g);
    td_dataset_free(&t->train);
    td_dataset_free(&t->test);
    td_step_graph_free(&t->step);
    free(t->x), free(t->y);
    free(t);
}

/* Mean cross-entropy and correct count of one batch of logits, first n rows. */
static void score(const float *logits, const int32_t *y, int64_t n, int classes, double *loss,
                  int64_t *correct)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits + i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (row[c] > row[best]) best = c;
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += exp((double)row[c] - row[best]);
        *loss += log(sum) + row[best] - row[y[i]];
        *correct += best == y[i];
    }
}

enum td_status td_trainer_evaluate(struct td_trainer *t, const struct td_dataset *d, double *loss,
                                   double *acc, char *err, size_t errlen)
{
    struct td_batcher b;
    enum td_status st = td_batcher_init(&b, d, t->cfg.batch, TD_BATCH_PARTIAL, 0, 0, err, errlen);
    if (st != TD_OK) return st;
    double total = 0;
    int64_t correct = 0, n;
    struct td_feed feeds[1] = {{t->m.x, t->x}};
    int classes = classes_of(t);
    while ((n = td_batcher_next(&b, t->x, t->y)) > 0) {
        if (td_run(t->eval_plan, feeds, 1) != TD_OK) {
            st = td_io_errf(TD_ERR_NUMERIC, err, errlen, "%s", td_plan_error(t->eval_plan));
            break;
        }
        score(td_plan_output(t->eval_plan, 0), t->y, n, classes, &total, &correct);
    }
    td_batcher_free(&b);
    *loss = total / (double)d->n;
    *acc = (double)correct / (double)d->n;
    return st;
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* Reruns the failed step with a NaN-checking plan to name the culprit. */
static enum td_status diagnose(struct td_trainer *t, int hvp, const struct td_feed *feeds,
                               char *err, size_t errlen)
{
    long long step = td_optim_steps(t->opt) + 1;
    struct td_plan *check = compile_train_plan(t, hvp, 1);
    if (!check)
        return td_io_errf(TD_ERR_NUMERIC, err, errlen, "step %lld: non-finite loss or gradient",
                          step);
    enum td_status st = td_run(check, feeds, 2);
    td_io_errf(TD_ERR_NUMERIC, err, errlen, "step %lld: %s; parameters are those before this step",
               step, st == TD_ERR_NUMERIC ? td_plan_error(check) : "non-finite loss or gradient");
    td_plan_free(check);
    return TD_ERR_NUMERIC;
}

static enum td_status train_step(struct td_trainer *t, double *loss, FILE *log, char *err,
                                 size_t errlen)
{
    unsigned need = td_optim_needs(t->opt);
    int hvp = (need & TD_OPTIM_NEEDS_TANGENT) != 0;
    if (hvp && !t->hvp_plan) {
        t->hvp_plan = compile_train_plan(t, 1, 0);
        if (!t->hvp_plan)
            return td_io_errf(td_graph_status(t->g), err, errlen, "%s", td_graph_error(t->g));
    }
    if (td_optim_direction(t->opt, t->p) != TD_OK)
        return td_io_errf(TD_ERR_STATE, err, errlen, "%s", td_optim_error(t->opt));
    struct td_feed feeds[2] = {{t->m.x, t->x}, {t->m.labels, t->y}};
    struct td_plan *plan = hvp ? t->hvp_plan : t->grad_plan;
    if (td_run(plan, feeds, 2) != TD_OK)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s", td_plan_error(plan));
    *loss = td_plan_output(plan, 0)[0];
    if (!isfinite(*loss) || !all_finite(t->p->grad, t->p->total) ||
        (hvp && !all_finite(t->p->tangent, t->p->total)))
        return diagnose(t, hvp, feeds, err, errlen);
    float lr = td_schedule_lr(&t->sched, td_optim_steps(t->opt));
    if (td_optim_step(t->opt, t->p, lr) != TD_OK)
        return td_io_errf(TD_ERR_STATE, err, errlen, "%s", td_optim_error(t->opt));
    const struct td_optim_stats *s = td_optim_last_stats(t->opt);
    if (log)
        fprintf(log, "%lld,%lld,%.7g,%.7g,%.7g,%d\n", (long long)td_optim_steps(t->opt),
                (long long)t->epochs_done + 1, *loss, (double)lr, s->grad_norm, s->used_tangent);
    return TD_OK;
}

static enum td_status export_weights(struct td_trainer *t, char *err, size_t errlen)
{
    char path[TD_PATH_MAX];
    out_path(t, "weights.h5", path, sizeof(path));
    return td_weights_export(t->p, path, err, errlen);
}

enum td_status td_trainer_run(struct td_trainer *t, td_progress_fn progress, void *ctx,
                              void (*on_epoch)(void *ctx, const struct td_epoch_report *r),
                              char *err, size_t errlen)
{
    if (mkdir(t->cfg.out, 0755) != 0 && errno != EEXIST)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create directory: %s", t->cfg.out,
                          strerror(errno));
    int resumed = t->cfg.resume != NULL;
    FILE *log = open_log(t, "train_log.csv", "step,epoch,loss,lr,grad_norm,used_tangent\n", resumed,
                         td_optim_steps(t->opt));
    FILE *epochs =
        open_log(t, "epochs.csv", "epoch,train_loss,test_loss,test_acc,seconds,samples_per_s\n",
                 resumed, t->epochs_done);
    if (!log || !epochs) {
        if (log) fclose(log);
        if (epochs) fclose(epochs);
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write the training logs", t->cfg.out);
    }
    enum td_status st = TD_OK;
    long long per_epoch = td_batcher_num_batches(&t->batcher);
    while (st == TD_OK && t->epochs_done < t->cfg.epochs) {
        double t0 = td_cli_now();
        long long steps_at_start = t->epoch_steps;
        double loss = 0;
        while (st == TD_OK && t->epoch_steps < per_epoch &&
               td_batcher_next(&t->batcher, t->x, t->y) > 0) {
            st = train_step(t, &loss, log, err, errlen);
            if (st != TD_OK) break;
            t->epoch_loss_sum += loss;
            t->epoch_steps++;
            if (progress)
                progress(ctx, t->epoch_steps, per_epoch,
                         t->epoch_loss_sum / (double)t->epoch_steps);
            if (t->cfg.checkpoint_every > 0 &&
                td_optim_steps(t->opt) % t->cfg.checkpoint_every == 0) {
                /* The log must hold every step the checkpoint covers. */
                fflush(log);
                st = save_checkpoint(t, err, errlen);
            }
        }
        if (st != TD_OK) break;
        /* The batcher ends an epoch with one empty call; take it so the
         * position saved below is the start of the next epoch. */
        if (td_batcher_tell(&t->batcher).index >= t->train.n - td_batcher_dropped(&t->batcher))
            td_batcher_next(&t->batcher, t->x, t->y);
        double seconds = td_cli_now() - t0;
        struct td_epoch_report r = {.epoch = t->epochs_done + 1,
                                    .train_loss = t->epoch_loss_sum / (double)t->epoch_steps,
                                    .test_loss = NAN,
                                    .test_acc = NAN,
                                    .seconds = seconds,
                                    .samples_per_s = (double)(t->epoch_steps - steps_at_start) *
                                                     (double)t->cfg.batch / seconds};
        if (t->has_test)
            st = td_trainer_evaluate(t, &t->test, &r.test_loss, &r.test_acc, err, errlen);
        if (st != TD_OK) break;
        t->epochs_done++;
        t->epoch_steps = 0;
        t->epoch_loss_sum = 0;
        fprintf(epochs, "%lld,%.6f,%.6f,%.6f,%.3f,%.1f\n", r.epoch, r.train_loss, r.test_loss,
                r.test_acc, r.seconds, r.samples_per_s);
        fflush(epochs);
        fflush(log);
        st = export_weights(t, err, errlen);
        if (st == TD_OK) st = save_checkpoint(t, err, errlen);
        if (st == TD_OK && on_epoch) on_epoch(ctx, &r);
    }
    fclose(log);
    fclose(epochs);
    return st;
}

enum td_status td_trainer_load_weights(struct td_trainer *t, const char *path, char *err,
                                       size_t errlen)
{
    return td_weights_import(t->p, path, 0, err, errlen);
}

const struct td_dataset *td_trainer_test_set(const struct td_trainer *t)
{
    return t->has_test ? &t->test : NULL;
}

const struct td_dataset *td_trainer_train_set(const struct td_trainer *t)
{
    return &t->train;
}

long long td_trainer_epochs_done(const struct td_trainer *t)
{
    return t->epochs_done;
}

long long td_trainer_steps_per_epoch(const struct td_trainer *t)
{
    return td_batcher_num_batches(&t->batcher);
}

long long td_trainer_dropped_per_epoch(const struct td_trainer *t)
{
    return td_batcher_dropped(&t->batcher);
}

const char *td_trainer_optimizer(const struct td_trainer *t)
{
    return td_optim_name(t->opt);
}

float td_trainer_base_lr(const struct td_trainer *t)
{
    return t->sched.base_lr;
}

size_t td_trainer_num_params(const struct td_trainer *t)
{
    return t->p->total;
}

int td_trainer_num_threads(const struct td_trainer *t)
{
    return t->num_threads;
}
