/* Shared pieces of the `tandem` command: option parsing and the
 * subcommands' entry points. Each td_cmd_* returns the process exit status
 * (0 success, 1 failure, 2 usage error). */
#ifndef TD_CLI_H
#define TD_CLI_H

enum td_opt_kind {
    TD_OPT_STR,   /* const char ** */
    TD_OPT_INT,   /* long long *, within [lo, hi] */
    TD_OPT_INT32, /* int *, within [lo, hi] */
    TD_OPT_FLOAT, /* double *, within [lo, hi] */
    TD_OPT_FLAG,  /* int *, set to 1; takes no value */
};

struct td_opt {
    const char *name; /* "--batch" */
    enum td_opt_kind kind;
    void *out;
    double lo, hi;
};

/* Parses argv[1..] against opts. --help/-h prints usage to stdout and
 * returns 0; an unknown option, a missing or bad value prints the problem
 * and the usage to stderr and returns -1; otherwise returns 1. */
int td_cli_parse(const char *cmd, const char *usage, int argc, char **argv,
                 const struct td_opt *opts, int n_opts);

/* Seconds on a monotonic clock. */
double td_cli_now(void);

/* qsort comparison of doubles, ascending: for the medians of timed runs. */
int td_cli_cmp_double(const void *a, const void *b);

int td_cmd_train(int argc, char **argv);
int td_cmd_eval(int argc, char **argv);
int td_cmd_inspect(int argc, char **argv);
int td_cmd_check(int argc, char **argv);
int td_cmd_sample(int argc, char **argv);
int td_cmd_ntk(int argc, char **argv);
int td_cmd_curvature(int argc, char **argv);
int td_cmd_ntk_predict(int argc, char **argv);

#endif
