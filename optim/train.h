/* The training loop as a library: any graph with a scalar loss, its input
 * nodes, a batch source (io/source.h) and an optimizer.
 *
 * One trainer owns the plans (gradient, gradient+HVP when the optimizer asks
 * for H*dir, evaluation), the optimizer and its schedule, and writes to an
 * output directory:
 *   weights.h5     the parameters (io/weights.h), at every evaluation and at the end
 *   checkpoint.h5  parameters, optimizer state, step and running sums: a run
 *                  resumed from it continues bit-exactly (same thread count)
 *   train_log.csv  one line per step: step,epoch,loss,lr,grad_norm,used_tangent
 *   evals.csv      one line per evaluation:
 *                  step,epoch,train_loss,val_loss,val_acc,lr,seconds,items_per_s,
 *                  plan_seconds,eval_seconds
 * `epoch` counts passes over the training data (step / steps per epoch; a
 * fraction of a pass for sources without epochs), train_loss is the mean
 * loss of the steps since the previous evaluation, val_loss the evaluation
 * metric's mean loss (nats per target), val_acc its accuracy (NaN when the
 * metric has none); seconds, plan_seconds and eval_seconds as in struct
 * td_eval_report.
 *
 * Non-finite losses, gradients or tangents stop the run before the step is
 * applied: the message names the first node that produced the value, and the
 * parameters, weights.h5 and the last checkpoint are those before the step.
 *
 * Data-parallel (o->dist with several ranks, optim/dist.h): every rank runs
 * this trainer on its own shard of each global batch (its source built with
 * its rank, io/source.h), and before every optimizer step the gradient, the
 * tangent when the step has one, and the loss are averaged over the ranks
 * in one fused sum (the parameter store keeps them in one buffer). Every
 * rank then applies the same update. Evaluation batches are split between
 * the ranks and their metrics summed. Only rank 0 writes files; each
 * checkpoint records a hash of every rank's parameters and fails when they
 * differ, and resuming needs the same number of ranks. */
#ifndef TD_TRAIN_H
#define TD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "io/source.h"
#include "io/weights.h"
#include "optim/dist.h"
#include "optim/optim.h"
#include "optim/schedule.h"

/* Evaluation metric: adds one evaluation batch to running sums. `out` is the
 * model's eval_output for the batch (shape out_shape), `bufs` the source's
 * buffers, the first `samples` samples of which are real. Adds the summed
 * loss of the real targets to sums[0], the number of correct predictions to
 * sums[1] (NaN when there is no accuracy) and the number of targets to
 * sums[2]; the reported loss is sums[0] / sums[2]. */
typedef void (*td_metric_fn)(void *ctx, const float *out, const struct td_shape *out_shape,
                             const void *const *bufs, int64_t samples, double sums[3]);

/* The default metric's arithmetic: logits [batch, ..., C] against integer
 * targets [batch, ...] (the same leading axes), first `samples` samples:
 * softmax cross-entropy in nats per target, accumulated in double, and
 * argmax accuracy, added to sums as above. A target outside [0, C) adds an
 * infinite loss. */
void td_metric_cross_entropy(const float *logits, const struct td_shape *shape,
                             const int32_t *labels, int64_t samples, double sums[3]);

/* The model to train. The graph and nodes are the caller's and must outlive
 * the trainer; the trainer compiles plans from the graph (after which no
 * parameter may be added). */
struct td_train_model {
    struct td_graph *g;
    struct td_node *loss;                       /* scalar */
    struct td_node *inputs[TD_SOURCE_MAX_BUFS]; /* inputs[i] is fed the source's buffer i */
    int n_inputs;                               /* the source's n_bufs */
    struct td_node *eval_output;                /* computed per evaluation batch (logits);
                                                   NULL: no evaluation */
    td_metric_fn metric;                        /* NULL: td_metric_cross_entropy of eval_output
                                                   against the source's last buffer */
    void *metric_ctx;
    struct td_node *step_input; /* optional TD_I32 [1]: the step while training,
                                   -1 while evaluating (dropout reads it) */
};

struct td_train_options {
    const char *optimizer;        /* td_optim_names() */
    struct td_optim_config optim; /* its hyperparameters (num_threads is set by the trainer) */
    struct td_schedule schedule;  /* rate of each step */
    int64_t steps;                /* steps of the whole run; a resumed run continues to it */
    int64_t eval_every;           /* evaluate, write weights and a checkpoint every N steps
                                     (and at the end); 0: at the end only */
    int64_t eval_batches;         /* evaluate on at most N of the source's batches; 0: all */
    int64_t checkpoint_every;     /* also checkpoint every N steps; 0: only at evaluations */
    int num_threads;              /* 0: OpenMP's default */
    const char *out_dir;          /* created when missing */
    const char *resume;           /* a checkpoint of an earlier run with the same model, or NULL */
    struct td_dist *dist;         /* the data-parallel job, or NULL for a single process */
    size_t bucket_floats;         /* with several ranks: gradients are summed in buckets of at
                                     least this many floats, each as soon as the backward pass
                                     has finished it (0: TD_GRAD_SUM_BUCKET_FLOATS, 1 MiB) */
    struct td_weights_meta meta;  /* written into weights.h5 beside the parameters */
};

/* What the progress callback sees after every step. */
struct td_train_progress {
    int64_t step, steps; /* steps done, steps of the run */
    double loss;         /* mean loss since the last evaluation */
    double items_per_s;  /* since the last evaluation (source->item_name) */
    double eta_s;        /* remaining training time at that rate */
};

/* One evaluation. */
struct td_eval_report {
    int64_t step;
    double epoch;
    double train_loss; /* mean over the steps since the previous evaluation */
    double val_loss;   /* NaN without evaluation batches */
    double val_acc;
    double lr;               /* the rate of the last step */
    double seconds;          /* training time since the previous evaluation */
    double items_per_s;      /* over that time */
    double plan_seconds;     /* of `seconds`, the time the steps' plans ran (td_run): the rest is
                                the loop's own (batches, checks, the optimizer, logs) */
    double eval_seconds;     /* the evaluation's time (not part of `seconds`) */
    double sum_wait_seconds; /* of plan_seconds, the time spent after the steps' plans waiting
                                for their sums over ranks: the reduction that the backward
                                pass did not hide (0 with one rank) */
};

struct td_train_callbacks {
    void *ctx;
    void (*progress)(void *ctx, const struct td_train_progress *p); /* may be NULL */
    void (*evaluated)(void *ctx, const struct td_eval_report *r);   /* may be NULL */
    /* May be NULL: called after every step with the steps done, before the
     * progress report, for measurements along the run (curvature tracking);
     * its time is left out of the throughput. An error stops the run with
     * its status and the message it wrote into err. */
    enum td_status (*stepped)(void *ctx, int64_t step, char *err, size_t errlen);
};

struct td_trainer;

/* Compiles the plans, creates the optimizer (and, for one that asks for
 * Gauss-Newton products, such as hessian-free, a product plan of the loss
 * in the model's eval_output on each step's batch) and, with o->resume, restores
 * the checkpoint. m, src and o (and their strings) must outlive the trainer.
 * Returns NULL with a message in err: a model whose inputs do not match the
 * source's buffers (shapes, dtypes), a bad option, an unknown optimizer, a
 * compile failure, a checkpoint of another model or a corrupt one. */
struct td_trainer *td_trainer_new(const struct td_train_model *m, const struct td_source *src,
                                  const struct td_train_options *o, char *err, size_t errlen);

/* Frees the trainer (not the model, source or graph). NULL is a no-op. */
void td_trainer_free(struct td_trainer *t);

/* Trains from the current step to o->steps. Returns TD_OK or an error with
 * a message in err (I/O, a non-finite value, a source failure); completed
 * steps stay applied and the files on disk stay consistent. While it runs,
 * OpenMP's default thread count on the calling thread is the trainer's (the
 * source's batch copies use it); it is restored on return. */
enum td_status td_trainer_run(struct td_trainer *t, const struct td_train_callbacks *cb, char *err,
                              size_t errlen);

/* Evaluates the current parameters on the source's evaluation batches (at
 * most o->eval_batches): loss (nats per target) and accuracy (NaN when the
 * metric has none) into *loss and *acc. TD_ERR_STATE when the source has no
 * evaluation batches or the model no eval_output. */
enum td_status td_trainer_evaluate(struct td_trainer *t, double *loss, double *acc, char *err,
                                   size_t errlen);

/* The same without a trainer: compiles an evaluation plan for m (the
 * gradient is not needed), runs it over src's evaluation batches (at most
 * max_batches, 0: all) on num_threads threads (0: OpenMP's default) and
 * frees it. Errors as td_trainer_new's and td_trainer_evaluate's. */
enum td_status td_evaluate(const struct td_train_model *m, const struct td_source *src,
                           int64_t max_batches, int num_threads, double *loss, double *acc,
                           char *err, size_t errlen);

/* Steps done (restored ones included). */
int64_t td_trainer_step(const struct td_trainer *t);

/* Threads the plans run on. */
int td_trainer_num_threads(const struct td_trainer *t);

#endif
