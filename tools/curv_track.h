/* `tandem train --track-curvature N`: every N steps, on a fixed probe batch
 * (the first samples of the training set), the top Hessian eigenvalue
 * (Lanczos, optim/lanczos.h), Hutchinson's estimate of the Hessian's trace
 * with its 95% interval, and the trace of the network's NTK on the probe
 * batch (sum over samples and outputs of Theta(x, x), optim/ntk.h). Rows
 * go to <out>/curvature.h5 (arrays step, top_eigenvalue, hessian_trace,
 * hessian_trace_ci95, ntk_trace, seconds), rewritten whole after each
 * measurement; a resumed run keeps the rows up to its checkpoint's step. */
#ifndef TD_CURV_TRACK_H
#define TD_CURV_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "tools/setup.h"

struct td_curv_track_options {
    int64_t every;        /* steps between measurements (>= 1) */
    int64_t probe_n;      /* samples in the probe batch */
    int lanczos_steps;    /* Lanczos iterations per measurement */
    int probes;           /* Hutchinson probes per measurement */
    int linearize;        /* the trained model is td_linearize of the zoo model */
    int num_threads;      /* 0: OpenMP's default */
    uint64_t seed;        /* Lanczos start and Hutchinson probes */
    const char *out_dir;  /* where curvature.h5 goes */
    int64_t resumed_step; /* >= 0: keep the rows of an existing file up to it; < 0: start fresh */
};

struct td_curv_track;

/* Builds the probe graph (the model of s at probe_n samples, with s's
 * options and seed) and measures step resumed_step (or 0). s must outlive
 * the tracker; its graph's parameters are read at each measurement.
 * Returns TD_OK or an error with a message in err (probe_n larger than the
 * training data, a compile failure, an unreadable curvature.h5). */
enum td_status td_curv_track_new(struct td_curv_track **t, const struct td_setup *s,
                                 const struct td_curv_track_options *o, char *err, size_t errlen);
void td_curv_track_free(struct td_curv_track *t);

/* The trainer's `stepped` callback (ctx: the tracker): measures on the
 * steps that are multiples of `every`. */
enum td_status td_curv_track_stepped(void *ctx, int64_t step, char *err, size_t errlen);

#endif
