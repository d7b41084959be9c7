/* Helpers shared by the Check suites: deterministic random fills, compiling
 * and running a graph for a few outputs, double-precision reductions and
 * closeness checks with a failure message naming what differs.
 *
 * Functions named tu_assert_* / tu_eval_* fail the current Check test
 * (ck_assert_msg) on error; the others return values and never fail. */
#ifndef TD_TESTUTIL_H
#define TD_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "graph/graph.h"
#include "graph/plan.h"

/* ---- deterministic random fills (graph/rng.h; one stream per array) ---- */

/* x[i] uniform in [lo, hi]. */
void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream);
/* x[i] standard normal. */
void tu_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream);
/* x[i] uniform integer in [0, hi); hi must be >= 1. */
void tu_fill_int(int32_t *x, size_t n, int hi, uint64_t seed, uint64_t stream);

/* ---- reductions in double ---- */

double tu_dot(const float *a, const float *b, size_t n);
/* sum |a[i] b[i]|: the scale of the rounding error of tu_dot. */
double tu_dot_abs(const float *a, const float *b, size_t n);
double tu_norm(const float *a, size_t n);
/* ||a - b|| with b given in double. */
double tu_norm_diff_d(const float *a, const double *b, size_t n);
double tu_norm_d(const double *a, size_t n);

/* ---- comparisons ----
 * tu_close_* return 1 when every element satisfies
 *   |got - want| <= rtol |want| + atol
 * and otherwise 0 with "index i: got G, expected W" (the worst element) in
 * msg. */
int tu_close_d(const float *got, const double *want, size_t n, double rtol, double atol, char *msg,
               size_t msg_len);
int tu_close_f(const float *got, const float *want, size_t n, double rtol, double atol, char *msg,
               size_t msg_len);

/* Fails the test unless got and want are close as above; `what` names the
 * quantity in the message ("softmax case 1 forward"). */
void tu_assert_close(const char *what, const float *got, const float *want, size_t n, double rtol,
                     double atol);

/* Fails the test unless |a - b| <= tol * max(|a|, |b|, floor). */
void tu_assert_rel(const char *what, double a, double b, double tol, double floor);

/* ---- compile and run ----
 * A struct tu_eval is a plan for up to TU_MAX_OUT outputs. Outputs that are
 * leaves (a constant, such as the zero td_jvp returns for a constant
 * function, or a fed input) are read directly, so a derivative that is a
 * symbolic zero can be evaluated like any other node. */
#define TU_MAX_OUT 64

struct tu_eval {
    struct td_graph *graph;
    struct td_plan *plan; /* NULL when every output is a leaf */
    int n_out;
    struct td_node *out[TU_MAX_OUT];
    int slot[TU_MAX_OUT]; /* index among the plan's outputs, or -1 for a leaf */
    const struct td_feed *feeds;
    int n_feeds;
};

/* Compiles; returns TD_OK or the status td_compile recorded on g (the plan
 * is then NULL and g's message says why). opts may be NULL. */
enum td_status tu_eval_init(struct tu_eval *e, struct td_graph *g, struct td_node *const *outs,
                            int n_out, const struct td_compile_options *opts);
/* Runs with the feeds (kept for reading fed outputs); returns td_run's
 * status (the message is td_plan_error(e->plan)). */
enum td_status tu_eval_run(struct tu_eval *e, const struct td_feed *feeds, int n_feeds);
/* Output i after tu_eval_run, numel(out[i]) floats; valid until the next run. */
const float *tu_eval_output(const struct tu_eval *e, int i);
void tu_eval_free(struct tu_eval *e);

/* Asserting versions for tests where any failure is fatal. */
void tu_assert_graph_ok(struct td_graph *g, const char *what);
void tu_assert_eval_init(struct tu_eval *e, struct td_graph *g, struct td_node *const *outs,
                         int n_out, const struct td_compile_options *opts);
void tu_assert_eval_run(struct tu_eval *e, const struct td_feed *feeds, int n_feeds);

/* ---- build errors ---- */

/* n is the result of a build that must fail: n is NULL, the graph's status
 * is `status` and its message exactly `text`. Clears the error. */
void tu_assert_build_fails(struct td_graph *g, const struct td_node *n, enum td_status status,
                           const char *text);

/* The same for a build of an unnamed node: the message must be
 * "<op> #<id>: <text>", the id the rejected node would have had. */
void tu_assert_unnamed_build_fails(struct td_graph *g, const struct td_node *n,
                                   enum td_status status, const char *op, const char *text);

/* Builds `expr` under the scope "bad" (so messages name the node 'bad') and
 * checks it fails as tu_assert_build_fails does. */
#define TU_ASSERT_BUILD_FAILS(g, expr, status, text)                                               \
    do {                                                                                           \
        td_scope_push((g), "bad");                                                                 \
        struct td_node *tu_bad_ = (expr);                                                          \
        td_scope_pop(g);                                                                           \
        tu_assert_build_fails((g), tu_bad_, (status), (text));                                     \
    } while (0)

/* ---- files ---- */

/* Removes path and everything under it (a test's temporary directory).
 * Returns 0, or -1 when something could not be removed. */
int tu_remove_tree(const char *path);

/* ---- suites ---- */

/* Runs one suite without forking (libgomp threads do not survive fork) and
 * returns the process exit status: 0 when every test passed. */
int tu_run_suite(Suite *s);

#endif
