/* The training loop behind `tandem train` and `tandem eval`: data, model,
 * plans, optimizer, evaluation, checkpoints and logs, for one run.
 *
 * Every step runs one compiled plan: the gradient plan, or the
 * gradient+HVP plan when the optimizer asks for H*dir on that step. Both
 * write straight into the parameter store's grad/tangent blocks. */
#ifndef TD_TRAINER_H
#define TD_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "graph/tandem.h"
#include "io/dataset.h"
#include "optim/optim.h"
#include "optim/schedule.h"
#include "tools/models/models.h"

struct td_train_config {
    const char *model;     /* name in the model zoo */
    const char *data;      /* IDX directory (Fashion-MNIST layout) or an HDF5 file (x, y) */
    const char *test_data; /* HDF5 test file when data is HDF5; NULL: no test set */
    const char *optimizer; /* td_optim_names() */
    double lr;             /* <= 0: the optimizer's default */
    double momentum;       /* < 0: the optimizer's default */
    double weight_decay;   /* < 0: the optimizer's default */
    double clip_norm;      /* < 0: the optimizer's default */
    const char *lookahead; /* tangent-sgd: "momentum" or "gradient"; NULL: default */
    const char *schedule;  /* constant, cosine or step */
    long long warmup_steps;
    long long epochs; /* total epochs of the run (a resumed run goes on to this) */
    long long batch;
    long long threads; /* 0: OpenMP's default */
    long long seed;
    long long checkpoint_every; /* steps between checkpoints; 0: at the end of each epoch */
    const char *resume;         /* checkpoint to continue from, or NULL */
    const char *out;            /* output directory */
};

struct td_trainer;

/* Loads data, builds and compiles the model, creates the optimizer and, when
 * cfg->resume is set, restores the checkpoint. Returns NULL with a message
 * in err on failure (missing dataset, bad option, corrupt checkpoint ...).
 * cfg's strings must outlive the trainer. */
struct td_trainer *td_trainer_new(const struct td_train_config *cfg, char *err, size_t errlen);
void td_trainer_free(struct td_trainer *t);

/* Per-epoch results. */
struct td_epoch_report {
    long long epoch;            /* 1-based */
    double train_loss;          /* mean over the epoch's steps */
    double test_loss, test_acc; /* NaN when there is no test set */
    double seconds;             /* training time of the epoch (excluding evaluation) */
    double samples_per_s;
};

/* Called after every step with (steps done in this epoch, steps per epoch,
 * current mean loss); may be NULL. */
typedef void (*td_progress_fn)(void *ctx, long long done, long long total, double loss);

/* Trains until cfg->epochs epochs are done, calling on_epoch after each.
 * Writes out/weights.h5, out/checkpoint.h5, out/train_log.csv and
 * out/epochs.csv. Returns TD_OK or an error with the message in err; on a
 * NaN the message names the first node that produced it, and neither the
 * parameters of the last good step nor the last checkpoint are lost. */
enum td_status td_trainer_run(struct td_trainer *t, td_progress_fn progress, void *ctx,
                              void (*on_epoch)(void *ctx, const struct td_epoch_report *r),
                              char *err, size_t errlen);

/* Mean loss and accuracy of the current parameters over a dataset. */
enum td_status td_trainer_evaluate(struct td_trainer *t, const struct td_dataset *d, double *loss,
                                   double *acc, char *err, size_t errlen);

/* Replaces the parameters with those of an HDF5 weights file. */
enum td_status td_trainer_load_weights(struct td_trainer *t, const char *path, char *err,
                                       size_t errlen);

/* Accessors for the command-line front end. */
const struct td_dataset *td_trainer_test_set(const struct td_trainer *t);
const struct td_dataset *td_trainer_train_set(const struct td_trainer *t);
long long td_trainer_epochs_done(const struct td_trainer *t);
long long td_trainer_steps_per_epoch(const struct td_trainer *t);
long long td_trainer_dropped_per_epoch(const struct td_trainer *t);
const char *td_trainer_optimizer(const struct td_trainer *t);
float td_trainer_base_lr(const struct td_trainer *t);
size_t td_trainer_num_params(const struct td_trainer *t);
int td_trainer_num_threads(const struct td_trainer *t);

#endif
