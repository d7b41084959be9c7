#include "optim/schedule.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

struct td_schedule td_schedule_constant(float base_lr)
{
    return (struct td_schedule){.kind = TD_SCHEDULE_CONSTANT, .base_lr = base_lr, .gamma = 1.0f};
}

static enum td_status fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum td_status fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return TD_ERR_ARG;
}

enum td_status td_schedule_check(const struct td_schedule *s, char *err, size_t errlen)
{
    if (!s) return fail(err, errlen, "schedule: NULL");
    if (!(s->base_lr >= 0.0f) || !isfinite(s->base_lr))
        return fail(err, errlen, "schedule: base_lr = %g must be finite and >= 0",
                    (double)s->base_lr);
    if (s->warmup_steps < 0)
        return fail(err, errlen, "schedule: warmup_steps = %lld must be >= 0",
                    (long long)s->warmup_steps);
    switch (s->kind) {
    case TD_SCHEDULE_CONSTANT:
        return TD_OK;
    case TD_SCHEDULE_STEP:
        if (s->step_size < 1)
            return fail(err, errlen, "step schedule: step_size = %lld must be >= 1",
                        (long long)s->step_size);
        if (!(s->gamma > 0.0f) || !isfinite(s->gamma))
            return fail(err, errlen, "step schedule: gamma = %g must be finite and > 0",
                        (double)s->gamma);
        return TD_OK;
    case TD_SCHEDULE_COSINE:
        if (s->total_steps < 1)
            return fail(err, errlen, "cosine schedule: total_steps = %lld must be >= 1",
                        (long long)s->total_steps);
        if (!(s->min_lr >= 0.0f && s->min_lr <= s->base_lr))
            return fail(err, errlen, "cosine schedule: min_lr = %g is outside [0, base_lr = %g]",
                        (double)s->min_lr, (double)s->base_lr);
        return TD_OK;
    }
    return fail(err, errlen,
                "schedule: kind = %d is not TD_SCHEDULE_CONSTANT, TD_SCHEDULE_STEP or "
                "TD_SCHEDULE_COSINE",
                (int)s->kind);
}

float td_schedule_lr(const struct td_schedule *s, int64_t step)
{
    if (step < 0) step = 0;
    const double base = s->base_lr;
    if (step < s->warmup_steps) return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
    const int64_t j = step - s->warmup_steps;
    switch (s->kind) {
    case TD_SCHEDULE_CONSTANT:
        break;
    case TD_SCHEDULE_STEP:
        return (float)(base * pow((double)s->gamma, (double)(j / s->step_size)));
    case TD_SCHEDULE_COSINE: {
        const double T = (double)s->total_steps;
        const double x = j < s->total_steps ? (double)j : T;
        const double lo = s->min_lr;
        return (float)(lo + (base - lo) * 0.5 * (1.0 + cos(M_PI * x / T)));
    }
    }
    return (float)base;
}
