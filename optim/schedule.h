/* Learning-rate schedules: a pure function from the step index to a rate.
 *
 * `step` is the number of steps already taken (0 for the first step), so a
 * training loop calls td_schedule_lr(&s, td_optim_steps(o)). With W =
 * warmup_steps > 0, steps 0 .. W-1 ramp linearly,
 *     lr = base_lr * (step + 1) / W        (the first step is not wasted on 0),
 * and the main schedule then runs on its own clock j = step - W:
 *     TD_SCHEDULE_CONSTANT  lr = base_lr
 *     TD_SCHEDULE_STEP      lr = base_lr * gamma ^ floor(j / step_size)
 *     TD_SCHEDULE_COSINE    lr = min_lr + (base_lr - min_lr) (1 + cos(pi min(j, T) / T)) / 2,
 *                           T = total_steps; min_lr from then on.
 * Without warmup j = step. A schedule is a plain value: no allocation, no
 * state, safe to share between threads. */
#ifndef TD_SCHEDULE_H
#define TD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

enum td_schedule_kind {
    TD_SCHEDULE_CONSTANT = 0,
    TD_SCHEDULE_STEP = 1,
    TD_SCHEDULE_COSINE = 2,
};

struct td_schedule {
    enum td_schedule_kind kind;
    float base_lr;        /* >= 0 */
    int64_t warmup_steps; /* >= 0; 0 = no warmup */
    int64_t step_size;    /* TD_SCHEDULE_STEP: >= 1 */
    float gamma;          /* TD_SCHEDULE_STEP: > 0 */
    int64_t total_steps;  /* TD_SCHEDULE_COSINE: T >= 1 */
    float min_lr;         /* TD_SCHEDULE_COSINE: in [0, base_lr] */
};

/* A constant schedule at base_lr without warmup. */
struct td_schedule td_schedule_constant(float base_lr);

/* TD_OK, or TD_ERR_ARG with a message in err (when err is not NULL and
 * errlen > 0) naming the first field out of range and its value. */
enum td_status td_schedule_check(const struct td_schedule *s, char *err, size_t errlen);

/* The rate for step index `step` (negative counts as 0). The schedule must
 * pass td_schedule_check; an unchecked bad one gives an unspecified rate. */
float td_schedule_lr(const struct td_schedule *s, int64_t step);

#endif
