#include "tools/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int set_value(const char *cmd, const struct td_opt *o, const char *text)
{
    char *end;
    errno = 0;
    if (o->kind == TD_OPT_STR) {
        *(const char **)o->out = text;
        return 1;
    }
    if (o->kind == TD_OPT_INT || o->kind == TD_OPT_INT32) {
        long long v = strtoll(text, &end, 10);
        if (!errno && end != text && !*end && v >= o->lo && v <= o->hi) {
            if (o->kind == TD_OPT_INT)
                *(long long *)o->out = v;
            else
                *(int *)o->out = (int)v;
            return 1;
        }
        fprintf(stderr, "tandem %s: bad value for %s: '%s' (an integer from %.0f to %.0f)\n", cmd,
                o->name, text, o->lo, o->hi);
        return 0;
    }
    double v = strtod(text, &end);
    if (!errno && end != text && !*end && v >= o->lo && v <= o->hi) {
        *(double *)o->out = v;
        return 1;
    }
    fprintf(stderr, "tandem %s: bad value for %s: '%s' (a number from %g to %g)\n", cmd, o->name,
            text, o->lo, o->hi);
    return 0;
}

int td_cli_parse(const char *cmd, const char *usage, int argc, char **argv,
                 const struct td_opt *opts, int n_opts)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        const struct td_opt *o = NULL;
        for (int k = 0; k < n_opts && !o; k++)
            if (!strcmp(a, opts[k].name)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "tandem %s: unknown option '%s'\n%s", cmd, a, usage);
            return -1;
        }
        if (o->kind == TD_OPT_FLAG) {
            *(int *)o->out = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tandem %s: %s needs a value\n%s", cmd, a, usage);
            return -1;
        }
        if (!set_value(cmd, o, argv[++i])) {
            fputs(usage, stderr);
            return -1;
        }
    }
    return 1;
}

double td_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int td_cli_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
