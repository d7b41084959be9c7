#include "optim/train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph/plan.h"
#include "io/checkpoint.h"
#include "io/ioutil.h"
#include "optim/curvature.h"
#include "optim/grad_sum.h"
#include "optim/reduce.h"
#include "optim/step_graph.h"

#define TD_PATH_MAX 4096
/* Checkpoint entries besides the parameters and the optimizer's blocks. */
#define TD_TRAIN_STATE_ENTRIES 6
/* Optimizer scalars a checkpoint keeps (under /state/optim/<name>). */
#define TD_TRAIN_MAX_SCALARS 4

struct td_trainer {
    const struct td_train_model *m;
    const struct td_source *src;
    struct td_train_options o;
    struct td_params *p;
    struct td_step_graph step;
    struct td_plan *grad_plan, *hvp_plan, *eval_plan;
    /* With several ranks: the sums overlapped with grad_plan and hvp_plan. */
    struct td_grad_sum *grad_sum, *hvp_sum;
    struct td_optim *opt;
    void *bufs[TD_SOURCE_MAX_BUFS];
    struct td_feed feeds[TD_SOURCE_MAX_BUFS + 1];
    int n_feeds;
    int32_t step_value;      /* what the step input reads */
    double plan_seconds;     /* in td_run for training steps since the last evaluation */
    double sum_wait_seconds; /* of plan_seconds, waiting for sums over ranks after the plan */
    /* For optimizers that ask for Gauss-Newton products (hessian-free). */
    struct td_curv_op *ggn;
    struct td_optim_oracle oracle;
    char scalar_names[TD_TRAIN_MAX_SCALARS][64];
    int num_threads;
    int rank, ranks;
    uint64_t *hashes; /* one per rank, for checkpoints */
    int64_t ranks64;  /* ranks, as the checkpoint stores it */
    /* Running sums since the last evaluation, saved in checkpoints so that a
     * resumed run reports the same train_loss. */
    double loss_sum;
    int64_t loss_count;
    uint64_t seed;
};

void td_metric_cross_entropy(const float *logits, const struct td_shape *shape,
                             const int32_t *labels, int64_t samples, double sums[3])
{
    int64_t classes = shape->dim[shape->rank - 1];
    int64_t rows = td_shape_numel(shape) / classes / shape->dim[0] * samples;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = logits + r * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (row[c] > row[best]) best = c;
        double sum = 0;
        for (int64_t c = 0; c < classes; c++) sum += exp((double)row[c] - row[best]);
        int32_t y = labels[r];
        sums[0] += y >= 0 && y < classes ? log(sum) + row[best] - row[y] : INFINITY;
        sums[1] += best == y;
    }
    sums[2] += (double)rows;
}

static int64_t epoch_steps(const struct td_trainer *t)
{
    return t->src->steps_per_epoch;
}

/* Passes over the training data after `step` steps. */
static double epoch_of(const struct td_trainer *t, int64_t step)
{
    if (epoch_steps(t) > 0) return (double)step / (double)epoch_steps(t);
    return (double)step * (double)t->src->items_per_batch * t->ranks / (double)t->src->train_items;
}

static enum td_status check_model(const struct td_train_model *m, const struct td_source *src,
                                  char *err, size_t errlen)
{
    if (!m->g || !m->loss)
        return td_io_errf(TD_ERR_ARG, err, errlen, "train: the model has no graph or loss");
    if (td_shape_numel(td_node_shape(m->loss)) != 1)
        return td_io_errf(TD_ERR_ARG, err, errlen, "train: the loss is not a scalar");
    if (m->n_inputs != src->n_bufs)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "train: the model has %d inputs but the source fills %d buffers",
                          m->n_inputs, src->n_bufs);
    for (int i = 0; i < m->n_inputs; i++) {
        const struct td_node *in = m->inputs[i];
        char a[96], b[96];
        if (!in) return td_io_errf(TD_ERR_ARG, err, errlen, "train: input %d is NULL", i);
        if (!td_shape_equal(td_node_shape(in), &src->shape[i]) ||
            td_node_dtype(in) != src->dtype[i])
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "train: input '%s' is %s%s but the source gives %s%s",
                              td_node_name(in) ? td_node_name(in) : "?",
                              td_node_dtype(in) == TD_I32 ? "int32 " : "",
                              td_shape_format(td_node_shape(in), a, sizeof(a)),
                              src->dtype[i] == TD_I32 ? "int32 " : "",
                              td_shape_format(&src->shape[i], b, sizeof(b)));
    }
    if (m->step_input && (td_node_dtype(m->step_input) != TD_I32 ||
                          td_shape_numel(td_node_shape(m->step_input)) != 1))
        return td_io_errf(TD_ERR_ARG, err, errlen, "train: the step input must be int32 [1]");
    if (!src->train_batch || (src->eval_batches > 0 && !src->eval_batch))
        return td_io_errf(TD_ERR_ARG, err, errlen, "train: the source lacks a callback");
    if (src->items_per_batch < 1 || (src->steps_per_epoch < 1 && src->train_items < 1))
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "train: the source gives no items per batch or training size");
    if (!m->metric && m->eval_output && src->eval_batches > 0 &&
        (src->dtype[src->n_bufs - 1] != TD_I32 ||
         td_shape_numel(&src->shape[src->n_bufs - 1]) *
                 td_node_shape(m->eval_output)->dim[td_node_shape(m->eval_output)->rank - 1] !=
             td_shape_numel(td_node_shape(m->eval_output))))
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "train: the default metric needs integer targets in the source's last "
                          "buffer, one per row of the evaluation output");
    return TD_OK;
}

/* A zeroed batch buffer, 64-byte aligned: rows of whole cache lines are
 * then written by streaming stores (see io/dataset.c). NULL when out of
 * memory. */
static void *alloc_batch_buf(size_t bytes)
{
    void *b = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (b) memset(b, 0, bytes);
    return b;
}

static enum td_status alloc_buffers(struct td_trainer *t, char *err, size_t errlen)
{
    const struct td_source *src = t->src;
    for (int i = 0; i < src->n_bufs; i++) {
        size_t bytes = (size_t)td_shape_numel(&src->shape[i]) * td_dtype_size(src->dtype[i]);
        t->bufs[i] = alloc_batch_buf(bytes);
        if (!t->bufs[i]) return td_io_errf(TD_ERR_NOMEM, err, errlen, "train: out of memory");
        t->feeds[t->n_feeds++] = (struct td_feed){t->m->inputs[i], t->bufs[i]};
    }
    if (t->m->step_input)
        t->feeds[t->n_feeds++] = (struct td_feed){t->m->step_input, &t->step_value};
    return TD_OK;
}

static struct td_plan *compile_step(struct td_trainer *t, int hvp, int check)
{
    struct td_compile_options co = {.num_threads = t->num_threads, .check_numerics = check};
    return td_step_graph_compile(&t->step, hvp, 1, co);
}

static enum td_status graph_err(struct td_trainer *t, char *err, size_t errlen)
{
    enum td_status st = td_graph_status(t->m->g);
    return td_io_errf(st != TD_OK ? st : TD_ERR_NOMEM, err, errlen, "%s",
                      st != TD_OK ? td_graph_error(t->m->g) : "out of memory");
}

static enum td_status compile_plans(struct td_trainer *t, char *err, size_t errlen)
{
    if (td_step_graph_init(&t->step, t->m->g, t->m->loss) != TD_OK)
        return graph_err(t, err, errlen);
    t->grad_plan = compile_step(t, 0, 0);
    if (!t->grad_plan) return graph_err(t, err, errlen);
    struct td_plan_stats s;
    td_plan_get_stats(t->grad_plan, &s);
    t->num_threads = s.num_threads;
    if (t->src->eval_batches > 0 && t->m->eval_output) {
        struct td_node *out = t->m->eval_output;
        struct td_compile_options co = {.num_threads = t->num_threads};
        t->eval_plan = td_compile(t->m->g, &out, 1, &co);
        if (!t->eval_plan) return graph_err(t, err, errlen);
    }
    return TD_OK;
}

static enum td_status oracle_ggn(void *ctx, const float *v, float *out)
{
    struct td_trainer *t = ctx;
    return td_curv_op_apply(t->ggn, v, out);
}

static enum td_status oracle_eval(void *ctx, double *loss)
{
    struct td_trainer *t = ctx;
    return td_curv_op_loss(t->ggn, loss, NULL);
}

/* Gauss-Newton products of the model's output (eval_output) on the step's
 * batch, for an optimizer that asks for them. */
static enum td_status make_oracle(struct td_trainer *t, char *err, size_t errlen)
{
    if (!(td_optim_needs(t->opt) & TD_OPTIM_NEEDS_PRODUCTS)) return TD_OK;
    /* The products of one step would be of this rank's shard only. */
    if (t->ranks > 1)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "train: %s does not run data-parallel (its Gauss-Newton products "
                          "are not summed over ranks)",
                          td_optim_name(t->opt));
    if (!t->m->eval_output)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "train: %s needs the model's output (eval_output) for its "
                          "Gauss-Newton products",
                          td_optim_name(t->opt));
    t->ggn = td_curv_op_new(t->m->g, t->m->loss, t->m->eval_output, TD_CURV_GGN, t->feeds,
                            t->n_feeds, t->num_threads, err, errlen);
    if (!t->ggn) return TD_ERR_ARG;
    t->oracle = (struct td_optim_oracle){.ctx = t, .ggn = oracle_ggn, .eval = oracle_eval};
    return td_optim_set_oracle(t->opt, &t->oracle);
}

/* The checkpoint's entries, pointing into the trainer; e holds P +
 * optimizer blocks and scalars + TD_TRAIN_STATE_ENTRIES entries. */
static int ckpt_entries(struct td_trainer *t, struct td_ckpt_entry *e, int64_t *step)
{
    int n = td_ckpt_param_entries(t->p, e);
    for (int i = 0; i < td_optim_state_count(t->opt); i++) {
        const char *name;
        float *data;
        size_t count;
        td_optim_state_block(t->opt, i, &name, &data, &count);
        e[n++] = (struct td_ckpt_entry){name, TD_CKPT_F32, data, count, NULL};
    }
    for (int i = 0; i < td_optim_scalar_count(t->opt) && i < TD_TRAIN_MAX_SCALARS; i++) {
        const char *name;
        double *value;
        td_optim_scalar(t->opt, i, &name, &value);
        snprintf(t->scalar_names[i], sizeof(t->scalar_names[i]), "optim/%s", name);
        e[n++] = (struct td_ckpt_entry){t->scalar_names[i], TD_CKPT_F64, value, 1, NULL};
    }
    e[n++] = (struct td_ckpt_entry){"step", TD_CKPT_I64, step, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"seed", TD_CKPT_U64, &t->seed, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"loss_sum", TD_CKPT_F64, &t->loss_sum, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"loss_count", TD_CKPT_I64, &t->loss_count, 1, NULL};
    e[n++] = (struct td_ckpt_entry){"ranks", TD_CKPT_I64, &t->ranks64, 1, NULL};
    return n;
}

/* FNV-1a over the parameter values' bytes: ranks that applied the same
 * updates hold the same bits. */
static uint64_t params_hash(const struct td_params *p)
{
    const unsigned char *b = (const unsigned char *)p->value;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < p->total * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static struct td_ckpt_entry *ckpt_alloc(const struct td_trainer *t)
{
    return calloc((size_t)t->p->count + (size_t)td_optim_state_count(t->opt) +
                      (size_t)td_optim_scalar_count(t->opt) + TD_TRAIN_STATE_ENTRIES,
                  sizeof(struct td_ckpt_entry));
}

static void out_path(const struct td_trainer *t, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", t->o.out_dir, file);
}

static enum td_status save_checkpoint(struct td_trainer *t, char *err, size_t errlen)
{
    enum td_status st = td_dist_gather_u64(t->o.dist, params_hash(t->p), t->hashes, err, errlen);
    if (st != TD_OK) return st;
    for (int r = 1; r < t->ranks; r++)
        if (t->hashes[r] != t->hashes[0])
            return td_io_errf(TD_ERR_STATE, err, errlen,
                              "step %lld: the parameters of rank %d differ from rank 0's",
                              (long long)td_optim_steps(t->opt), r);
    if (t->rank != 0) return TD_OK;
    struct td_ckpt_entry *e = ckpt_alloc(t);
    if (!e) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    int64_t step = td_optim_steps(t->opt);
    int n = ckpt_entries(t, e, &step);
    e[n++] = (struct td_ckpt_entry){"param_hash", TD_CKPT_U64, t->hashes, (size_t)t->ranks, NULL};
    char path[TD_PATH_MAX];
    out_path(t, "checkpoint.h5", path, sizeof(path));
    st = td_ckpt_save(path, e, n, err, errlen);
    free(e);
    return st;
}

static enum td_status load_checkpoint(struct td_trainer *t, const char *path, char *err,
                                      size_t errlen)
{
    struct td_ckpt_entry *e = ckpt_alloc(t);
    if (!e) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    uint64_t seed = t->seed;
    int64_t step = 0, ranks = t->ranks64;
    int n = ckpt_entries(t, e, &step);
    enum td_status st = td_ckpt_load(path, e, n, err, errlen);
    free(e);
    if (st != TD_OK) return st;
    if (t->ranks64 != ranks) {
        st = td_io_errf(TD_ERR_ARG, err, errlen,
                        "%s was written by a run of %lld ranks, this run has %lld: resume with "
                        "the same number",
                        path, (long long)t->ranks64, (long long)ranks);
        t->ranks64 = ranks;
        return st;
    }
    if (t->seed != seed) {
        st = td_io_errf(TD_ERR_ARG, err, errlen,
                        "%s was written with seed %llu, this run has seed %llu: the batches "
                        "would differ",
                        path, (unsigned long long)t->seed, (unsigned long long)seed);
        t->seed = seed;
        return st;
    }
    if (step > t->o.steps)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "%s is at step %lld, beyond the %lld steps of this run", path,
                          (long long)step, (long long)t->o.steps);
    return td_optim_set_steps(t->opt, step) == TD_OK
               ? TD_OK
               : td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: negative step", path);
}

struct td_trainer *td_trainer_new(const struct td_train_model *m, const struct td_source *src,
                                  const struct td_train_options *o, char *err, size_t errlen)
{
    if (!m || !src || !o || !o->out_dir) {
        td_io_errf(TD_ERR_ARG, err, errlen, "train: NULL argument");
        return NULL;
    }
    enum td_status st = check_model(m, src, err, errlen);
    if (st == TD_OK && o->steps < 1)
        st = td_io_errf(TD_ERR_ARG, err, errlen, "train: %lld steps: nothing to do",
                        (long long)o->steps);
    if (st == TD_OK) st = td_schedule_check(&o->schedule, err, errlen);
    struct td_trainer *t = st == TD_OK ? calloc(1, sizeof(*t)) : NULL;
    if (!t) {
        if (st == TD_OK) td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        return NULL;
    }
    t->m = m;
    t->src = src;
    t->o = *o;
    t->p = td_graph_params(m->g);
    t->seed = o->optim.seed;
    t->num_threads = o->num_threads;
    t->rank = td_dist_rank(o->dist);
    t->ranks = td_dist_size(o->dist);
    t->ranks64 = t->ranks;
    t->hashes = calloc((size_t)t->ranks, sizeof(*t->hashes));
    if (!t->hashes) st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    if (st == TD_OK) st = alloc_buffers(t, err, errlen);
    if (st == TD_OK) st = compile_plans(t, err, errlen);
    if (st == TD_OK) {
        struct td_optim_config oc = o->optim;
        oc.num_threads = t->num_threads;
        t->opt = td_optim_new(o->optimizer, &oc, t->p, err, errlen);
        if (!t->opt) st = TD_ERR_ARG;
    }
    if (st == TD_OK) st = make_oracle(t, err, errlen);
    if (st == TD_OK && o->resume) {
        char msg[TD_MSG_MAX];
        st = load_checkpoint(t, o->resume, msg, sizeof(msg));
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
    td_grad_sum_free(t->grad_sum);
    td_grad_sum_free(t->hvp_sum);
    td_plan_free(t->grad_plan);
    td_plan_free(t->hvp_plan);
    td_plan_free(t->eval_plan);
    td_optim_free(t->opt);
    td_curv_op_free(t->ggn);
    td_step_graph_free(&t->step);
    for (int i = 0; i < TD_SOURCE_MAX_BUFS; i++) free(t->bufs[i]);
    free(t->hashes);
    free(t);
}

int64_t td_trainer_step(const struct td_trainer *t)
{
    return td_optim_steps(t->opt);
}

int td_trainer_num_threads(const struct td_trainer *t)
{
    return t->num_threads;
}

/* Runs the evaluation batches through `plan` and the metric. bufs and
 * feeds are the caller's (the model's inputs fed from bufs). */
static enum td_status evaluate_plan(struct td_plan *plan, const struct td_train_model *m,
                                    const struct td_source *src, int64_t max_batches,
                                    struct td_dist *dist, void *const *bufs,
                                    const struct td_feed *feeds, int n_feeds, int32_t *step_value,
                                    double *loss, double *acc, char *err, size_t errlen)
{
    int64_t n = src->eval_batches;
    if (max_batches > 0 && max_batches < n) n = max_batches;
    double sums[3] = {0, 0, 0};
    *step_value = -1;
    /* Rank r evaluates batches r, r + ranks, ...; the sums are added up. */
    for (int64_t i = td_dist_rank(dist); i < n; i += td_dist_size(dist)) {
        int64_t real = src->eval_batch(src->ctx, i, bufs);
        if (td_run(plan, feeds, n_feeds) != TD_OK)
            return td_io_errf(TD_ERR_NUMERIC, err, errlen, "evaluate: %s", td_plan_error(plan));
        const float *y = td_plan_output(plan, 0);
        const struct td_shape *shape = td_node_shape(m->eval_output);
        if (m->metric)
            m->metric(m->metric_ctx, y, shape, (const void *const *)bufs, real, sums);
        else
            td_metric_cross_entropy(y, shape, bufs[src->n_bufs - 1], real, sums);
    }
    enum td_status st = td_dist_sum_f64(dist, sums, 3, err, errlen);
    if (st != TD_OK) return st;
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *acc = sums[2] > 0 ? sums[1] / sums[2] : NAN;
    return TD_OK;
}

enum td_status td_trainer_evaluate(struct td_trainer *t, double *loss, double *acc, char *err,
                                   size_t errlen)
{
    if (!t->eval_plan)
        return td_io_errf(TD_ERR_STATE, err, errlen,
                          "evaluate: no evaluation data or no evaluation output");
    return evaluate_plan(t->eval_plan, t->m, t->src, t->o.eval_batches, t->o.dist, t->bufs,
                         t->feeds, t->n_feeds, &t->step_value, loss, acc, err, errlen);
}

enum td_status td_evaluate(const struct td_train_model *m, const struct td_source *src,
                           int64_t max_batches, int num_threads, double *loss, double *acc,
                           char *err, size_t errlen)
{
    if (!m || !src || !loss || !acc)
        return td_io_errf(TD_ERR_ARG, err, errlen, "evaluate: NULL argument");
    enum td_status st = check_model(m, src, err, errlen);
    if (st != TD_OK) return st;
    if (!m->eval_output || src->eval_batches < 1)
        return td_io_errf(TD_ERR_STATE, err, errlen,
                          "evaluate: no evaluation data or no evaluation output");
    void *bufs[TD_SOURCE_MAX_BUFS] = {0};
    struct td_feed feeds[TD_SOURCE_MAX_BUFS + 1];
    int n_feeds = 0;
    int32_t step_value = -1;
    for (int i = 0; i < src->n_bufs && st == TD_OK; i++) {
        bufs[i] =
            alloc_batch_buf((size_t)td_shape_numel(&src->shape[i]) * td_dtype_size(src->dtype[i]));
        if (!bufs[i]) st = td_io_errf(TD_ERR_NOMEM, err, errlen, "evaluate: out of memory");
        feeds[n_feeds++] = (struct td_feed){m->inputs[i], bufs[i]};
    }
    if (m->step_input) feeds[n_feeds++] = (struct td_feed){m->step_input, &step_value};
    struct td_compile_options co = {.num_threads = num_threads};
    struct td_node *out = m->eval_output;
    struct td_plan *plan = st == TD_OK ? td_compile(m->g, &out, 1, &co) : NULL;
    if (st == TD_OK && !plan)
        st = td_io_errf(td_graph_status(m->g), err, errlen, "%s", td_graph_error(m->g));
    if (st == TD_OK)
        st = evaluate_plan(plan, m, src, max_batches, NULL, bufs, feeds, n_feeds, &step_value, loss,
                           acc, err, errlen);
    td_plan_free(plan);
    for (int i = 0; i < TD_SOURCE_MAX_BUFS; i++) free(bufs[i]);
    return st;
}

/* Reruns the failed step with a NaN-checking plan to name the culprit. */
static enum td_status diagnose(struct td_trainer *t, int hvp, char *err, size_t errlen)
{
    long long step = td_optim_steps(t->opt) + 1;
    struct td_plan *check = compile_step(t, hvp, 1);
    if (!check)
        return td_io_errf(TD_ERR_NUMERIC, err, errlen, "step %lld: non-finite loss or gradient",
                          step);
    enum td_status st = td_run(check, t->feeds, t->n_feeds);
    td_io_errf(TD_ERR_NUMERIC, err, errlen, "step %lld: %s; parameters are those before this step",
               step, st == TD_ERR_NUMERIC ? td_plan_error(check) : "non-finite loss or gradient");
    td_plan_free(check);
    return TD_ERR_NUMERIC;
}

/* Runs the step's plan. With several ranks, the gradient, the tangent when
 * this step has one, and the loss after them are summed in one buffer while
 * the plan runs (td_grad_sum), then divided by the ranks: the mean over the
 * global batch. */
static enum td_status run_step_plan(struct td_trainer *t, int hvp, double *loss, char *err,
                                    size_t errlen)
{
    struct td_plan *plan = hvp ? t->hvp_plan : t->grad_plan;
    if (t->ranks == 1) {
        enum td_status st = td_run(plan, t->feeds, t->n_feeds);
        if (st != TD_OK) return td_io_errf(st, err, errlen, "%s", td_plan_error(plan));
        *loss = td_plan_output(plan, 0)[0];
        return TD_OK;
    }
    struct td_grad_sum **gs = hvp ? &t->hvp_sum : &t->grad_sum;
    if (!*gs)
        *gs = td_grad_sum_new(t->o.dist, &t->step, plan, hvp, t->o.bucket_floats, err, errlen);
    if (!*gs) return TD_ERR_NOMEM;
    double waited = 0;
    enum td_status st =
        td_grad_sum_run(*gs, plan, t->feeds, t->n_feeds, loss, &waited, err, errlen);
    t->sum_wait_seconds += waited;
    if (st != TD_OK) return st;
    size_t n = t->p->total * (hvp ? 2 : 1);
    float *buf = t->p->grad;
    const float inv = 1.0f / (float)t->ranks;
#pragma omp simd
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
    *loss = (float)*loss * inv;
    return TD_OK;
}

static enum td_status train_step(struct td_trainer *t, double *loss, double *lr_used, FILE *log,
                                 char *err, size_t errlen)
{
    int64_t k = td_optim_steps(t->opt);
    enum td_status st = t->src->train_batch(t->src->ctx, k, t->bufs, err, errlen);
    if (st != TD_OK) return st;
    t->step_value = (int32_t)(k < INT32_MAX ? k : INT32_MAX);
    int hvp = (td_optim_needs(t->opt) & TD_OPTIM_NEEDS_TANGENT) != 0;
    if (hvp && !t->hvp_plan) {
        t->hvp_plan = compile_step(t, 1, 0);
        if (!t->hvp_plan) return graph_err(t, err, errlen);
    }
    if (td_optim_direction(t->opt, t->p) != TD_OK)
        return td_io_errf(TD_ERR_STATE, err, errlen, "%s", td_optim_error(t->opt));
    double t0 = omp_get_wtime();
    char why[TD_MSG_MAX];
    st = run_step_plan(t, hvp, loss, why, sizeof(why));
    t->plan_seconds += omp_get_wtime() - t0;
    if (st != TD_OK) return td_io_errf(st, err, errlen, "step %lld: %s", (long long)k + 1, why);
    /* One pass over the gradient checks it and gives the optimizer its norm. */
    const double sumsq = td_vec_sumsq(t->p->grad, t->p->total, t->num_threads);
    if (!isfinite(*loss) || !isfinite(sumsq) ||
        (hvp && !td_vec_all_finite(t->p->tangent, t->p->total, t->num_threads)))
        return diagnose(t, hvp, err, errlen);
    td_optim_set_grad_sumsq(t->opt, sumsq);
    float lr = td_schedule_lr(&t->o.schedule, k);
    t->oracle.loss = *loss;
    st = td_optim_step(t->opt, t->p, lr);
    if (st != TD_OK && !t->ggn)
        return td_io_errf(TD_ERR_STATE, err, errlen, "%s", td_optim_error(t->opt));
    if (st != TD_OK)
        return td_io_errf(st, err, errlen, "%s: %s", td_optim_error(t->opt),
                          td_curv_op_error(t->ggn));
    *lr_used = lr;
    const struct td_optim_stats *s = td_optim_last_stats(t->opt);
    if (log)
        fprintf(log, "%lld,%.6g,%.7g,%.7g,%.7g,%d\n", (long long)k + 1, epoch_of(t, k + 1), *loss,
                (double)lr, s->grad_norm, s->used_tangent);
    return TD_OK;
}

static enum td_status export_weights(struct td_trainer *t, char *err, size_t errlen)
{
    char path[TD_PATH_MAX];
    out_path(t, "weights.h5", path, sizeof(path));
    return td_weights_export_meta(t->p, &t->o.meta, path, err, errlen);
}

/* Opens a CSV log for appending. A fresh run starts it with its header; a
 * resumed run first keeps only the complete lines whose first field is at
 * most `limit` (what the checkpoint covers), so lines that a killed run
 * wrote after its last checkpoint are not written twice. */
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

/* The logs must hold every line a checkpoint covers. Ranks other than 0
 * have none. */
static void flush_logs(FILE *log, FILE *evals)
{
    if (log) fflush(log);
    if (evals) fflush(evals);
}

/* Evaluation, evals.csv, weights and checkpoint at the end of an interval. */
static enum td_status finish_interval(struct td_trainer *t, double seconds, int64_t steps_done,
                                      double lr, FILE *log, FILE *evals,
                                      const struct td_train_callbacks *cb, char *err, size_t errlen)
{
    struct td_eval_report r = {
        .step = td_optim_steps(t->opt),
        .epoch = epoch_of(t, td_optim_steps(t->opt)),
        .train_loss = t->loss_count ? t->loss_sum / (double)t->loss_count : NAN,
        .val_loss = NAN,
        .val_acc = NAN,
        .lr = lr,
        .seconds = seconds,
        .items_per_s =
            seconds > 0 ? (double)steps_done * (double)t->src->items_per_batch * t->ranks / seconds
                        : NAN,
        .plan_seconds = t->plan_seconds,
        .sum_wait_seconds = t->sum_wait_seconds,
    };
    enum td_status st = TD_OK;
    double t0 = omp_get_wtime();
    if (t->eval_plan) st = td_trainer_evaluate(t, &r.val_loss, &r.val_acc, err, errlen);
    if (st != TD_OK) return st;
    r.eval_seconds = omp_get_wtime() - t0;
    t->loss_sum = 0;
    t->loss_count = 0;
    t->plan_seconds = 0;
    t->sum_wait_seconds = 0;
    if (evals)
        fprintf(evals, "%lld,%.6g,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f,%.3f,%.3f,%.4f\n",
                (long long)r.step, r.epoch, r.train_loss, r.val_loss, r.val_acc, r.lr, r.seconds,
                r.items_per_s, r.plan_seconds, r.eval_seconds, r.sum_wait_seconds);
    flush_logs(log, evals);
    if (t->rank == 0) st = export_weights(t, err, errlen);
    if (st == TD_OK) st = save_checkpoint(t, err, errlen);
    if (st == TD_OK && cb && cb->evaluated) cb->evaluated(cb->ctx, &r);
    return st;
}

static enum td_status make_out_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create directory: %s", dir,
                          strerror(errno));
    return TD_OK;
}

static enum td_status run_loop(struct td_trainer *t, const struct td_train_callbacks *cb, char *err,
                               size_t errlen);

/* The loop's own parallel work (batch copies, checks) uses the trainer's
 * threads, as its plans do. */
enum td_status td_trainer_run(struct td_trainer *t, const struct td_train_callbacks *cb, char *err,
                              size_t errlen)
{
    int saved = omp_get_max_threads();
    omp_set_num_threads(t->num_threads);
    enum td_status st = run_loop(t, cb, err, errlen);
    omp_set_num_threads(saved);
    return st;
}

static enum td_status run_loop(struct td_trainer *t, const struct td_train_callbacks *cb, char *err,
                               size_t errlen)
{
    enum td_status st = TD_OK;
    FILE *log = NULL, *evals = NULL;
    if (t->rank == 0) {
        st = make_out_dir(t->o.out_dir, err, errlen);
        if (st != TD_OK) return st;
        int resumed = t->o.resume != NULL;
        long long done = td_optim_steps(t->opt);
        log = open_log(t, "train_log.csv", "step,epoch,loss,lr,grad_norm,used_tangent\n", resumed,
                       done);
        evals = open_log(t, "evals.csv",
                         "step,epoch,train_loss,val_loss,val_acc,lr,seconds,items_per_s,"
                         "plan_seconds,eval_seconds,sum_wait_seconds\n",
                         resumed, done);
    }
    if (t->rank == 0 && (!log || !evals)) {
        if (log) fclose(log);
        if (evals) fclose(evals);
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write the training logs",
                          t->o.out_dir);
    }
    double t0 = omp_get_wtime(), lr = 0;
    int64_t steps_at_t0 = td_optim_steps(t->opt);
    while (st == TD_OK && td_optim_steps(t->opt) < t->o.steps) {
        double loss = 0;
        st = train_step(t, &loss, &lr, log, err, errlen);
        if (st != TD_OK) break;
        t->loss_sum += loss;
        t->loss_count++;
        int64_t k = td_optim_steps(t->opt);
        if (cb && cb->stepped) {
            double c0 = omp_get_wtime();
            st = cb->stepped(cb->ctx, k, err, errlen);
            t0 += omp_get_wtime() - c0;
            if (st != TD_OK) break;
        }
        double elapsed = omp_get_wtime() - t0;
        if (cb && cb->progress) {
            double rate = (double)(k - steps_at_t0) / elapsed;
            struct td_train_progress pr = {
                .step = k,
                .steps = t->o.steps,
                .loss = t->loss_sum / (double)t->loss_count,
                .items_per_s = rate * (double)t->src->items_per_batch * t->ranks,
                .eta_s = (double)(t->o.steps - k) / rate,
            };
            cb->progress(cb->ctx, &pr);
        }
        if (k == t->o.steps || (t->o.eval_every > 0 && k % t->o.eval_every == 0)) {
            st = finish_interval(t, elapsed, k - steps_at_t0, lr, log, evals, cb, err, errlen);
            t0 = omp_get_wtime();
            steps_at_t0 = k;
        } else if (t->o.checkpoint_every > 0 && k % t->o.checkpoint_every == 0) {
            flush_logs(log, evals);
            st = save_checkpoint(t, err, errlen);
        }
    }
    if (log) fclose(log);
    if (evals) fclose(evals);
    return st;
}
