/* The empirical neural tangent kernel of a model output f (logits):
 *
 *     Theta(x, x')_{kl} = sum_p  df_k(x)/dtheta_p  df_l(x')/dtheta_p,
 *
 * for every pair of a sample set X1 (n1 samples) and X2 (n2), with respect
 * to all parameters or a chosen subset, by one of three methods:
 *
 *   jacobian    the per-sample Jacobian J_n = df(x_n)/dtheta, by rows from
 *               one-sample backward passes (one per sample and output) or by
 *               columns from forward-mode passes along parameter basis
 *               vectors, whichever is cheaper (td_ntk_options.jacobian),
 *               contracted by GEMMs (float products, double sums).
 *   ntvp        columns of the kernel as NTK-vector products: a batched
 *               backward pass of f(X2) seeded with one (sample, output)
 *               gives J2^T e, a forward-mode pass of f(X1) in that
 *               direction gives the column (optim/ntvp.h).
 *   structured  read from the graph: a parameter that enters only as the
 *               weight (or bias) of a linear, as the shared matrix of a
 *               matmul or as an embedding table has per-sample derivatives
 *               that factor, df_k(x_n)/dW = sum_t delta^k_{n,t} a_{n,t}^T, so
 *               its block of the kernel is (delta delta'^T) * (a a'^T) summed
 *               over positions, or per-sample gradients formed from delta and
 *               a, whichever is cheaper. The deltas come from backward passes
 *               seeded with one output on every sample, up to 32 sharing one
 *               forward pass (intermediate cotangents stay per-sample;
 *               parameter cotangents would be summed over the batch). Other
 *               parameters fall back to the jacobian method's entries.
 *   auto        the cheapest by a cost model (floating-point operations,
 *               with the memory of each method checked against the budget);
 *               the report says which it took and why.
 *
 * Outputs (K = outputs per sample, struct td_tangent_net):
 *   full         [n1, n2, K, K]
 *   trace        [n1, n2]: sum_k Theta_kk
 *   diagonal     [n, K, K]: Theta(x1_n, x2_n) only (n1 == n2 == n)
 *   diag+trace   [n]
 * The kernel is made in tiles of at most `tile` samples per side and handed
 * to a sink tile by tile, so it never has to fit in memory. When X1 and X2
 * are the same samples (x2 NULL, or the same arrays and n), only tiles on
 * and below the diagonal are computed, within a diagonal tile only the
 * lower triangle, and the sink also receives the mirror images.
 *
 * Every method computes the same kernel up to float rounding (the tests
 * hold them to each other and to a float64 reference). Models must treat
 * samples independently (optim/tangent_model.h). */
#ifndef TD_NTK_H
#define TD_NTK_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"
#include "optim/tangent_model.h"

enum td_ntk_method {
    TD_NTK_AUTO = 0,
    TD_NTK_JACOBIAN = 1,
    TD_NTK_NTVP = 2,
    TD_NTK_STRUCTURED = 3,
};

/* "auto", "jacobian", "ntvp", "structured"; static. */
const char *td_ntk_method_name(enum td_ntk_method m);
/* The method of that name; -1 when unknown. */
int td_ntk_method_from_name(const char *name);

/* One tile as the sink receives it: samples [i0, i0 + ni) of X1 against
 * [j0, j0 + nj) of X2, laid out [ni, nj, K, K] (full), [ni, nj] (trace),
 * [ni, K, K] or [ni] (diagonal: j0 == i0, nj == ni). Valid during the
 * sink call only. */
struct td_ntk_tile {
    int64_t i0, ni, j0, nj;
    const float *data;
};

/* How the Jacobian entries the jacobian method (and the structured
 * method's fallback) contracts are made: rows by one-sample backward
 * passes (one per sample and output), or columns by forward-mode passes of
 * a tile along parameter basis vectors (up to 32 directions per forward
 * pass), whichever is cheaper; or forced. */
enum td_ntk_jacobian {
    TD_NTK_JAC_AUTO = 0,
    TD_NTK_JAC_ROWS = 1,
    TD_NTK_JAC_COLUMNS = 2,
};

struct td_ntk_options {
    enum td_ntk_method method;
    enum td_ntk_jacobian jacobian;
    int trace;                     /* 1: sum over the outputs */
    int diagonal;                  /* 1: only Theta(x1_n, x2_n); needs n1 == n2 */
    struct td_param_select params; /* theta: all (n 0) or a subset */
    size_t memory;                 /* working-set budget in bytes; 0: 1 GiB */
    int64_t tile;                  /* samples per tile; 0: the largest the budget allows */
    int num_threads;               /* 0: OpenMP's default */
    /* Called once per tile, in order of computation; returning an error
     * stops the computation with that status and message. */
    enum td_status (*sink)(void *ctx, const struct td_ntk_tile *t, char *err, size_t errlen);
    void *sink_ctx;
    /* Optional: called after each tile with the fraction of work done. */
    void (*progress)(void *ctx, double done);
    void *progress_ctx;
};

/* What a plan or a computation found. */
struct td_ntk_report {
    enum td_ntk_method method; /* the method used (never AUTO) */
    double flops[4];           /* estimated work of each method (index by enum; [0] unused) */
    double bytes[4];           /* estimated working set of each at its tile size */
    int64_t tile[4];           /* the tile size each would use; 0: does not fit the budget */
    int64_t n1, n2, K;
    size_t params;       /* parameter elements in theta */
    int symmetric;       /* X1 and X2 are the same samples */
    int uses_factored;   /* structured: parameter uses contracted in factored form */
    int uses_explicit;   /* ... through per-sample gradients formed from delta and a */
    int fallback_params; /* ... parameters through Jacobian rows */
    double seconds;      /* td_ntk_compute: compute time, the sink's time excluded */
    char why[256];       /* one line: the pick and the structure found */
};

/* Checks the arguments, analyses the model and estimates every method,
 * without computing the kernel. x2 NULL means X1. Errors (TD_ERR_ARG unless
 * said), each before any kernel work and with a message in err: a builder
 * failure or a model that differs between batch sizes, an unknown
 * parameter name, diagonal with n1 != n2, an empty sample set, a budget too
 * small for one tile of the chosen (or of every, under auto) method, and
 * for compute a NULL sink. */
enum td_status td_ntk_plan(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                           const struct td_tangent_data *x2, const struct td_ntk_options *o,
                           struct td_ntk_report *r, char *err, size_t errlen);

/* Plans as above, then computes the kernel tile by tile into o->sink. r may
 * be NULL. Returns TD_OK, a planning error, the sink's error, TD_ERR_NOMEM,
 * or a run failure of one of the plans (message in err). */
enum td_status td_ntk_compute(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                              const struct td_tangent_data *x2, const struct td_ntk_options *o,
                              struct td_ntk_report *r, char *err, size_t errlen);

/* The same in two steps, for several kernels of one model on sample sets of
 * the same sizes (the next batch, or the same samples as the parameters
 * change): td_ntk_new plans as td_ntk_plan and builds every graph, plan and
 * buffer the method needs (o is copied; its sink is called by runs);
 * td_ntk_run computes the kernel of x1 and x2 (sizes and symmetry as
 * planned: TD_ERR_ARG otherwise) at the model's current parameter values
 * (m->values is read again). r may be NULL; the run's report has seconds.
 * td_ntk_new's errors are td_ntk_plan's and out of memory; *k is NULL on
 * error. m and the sample arrays must outlive the runs that read them. */
struct td_ntk;
enum td_status td_ntk_new(struct td_ntk **k, const struct td_tangent_model *m,
                          const struct td_tangent_data *x1, const struct td_tangent_data *x2,
                          const struct td_ntk_options *o, struct td_ntk_report *r, char *err,
                          size_t errlen);
enum td_status td_ntk_run(struct td_ntk *k, const struct td_tangent_data *x1,
                          const struct td_tangent_data *x2, struct td_ntk_report *r, char *err,
                          size_t errlen);
void td_ntk_free(struct td_ntk *k);

/* The whole kernel into out (the caller's, of the output shape above);
 * o->sink is ignored. */
enum td_status td_ntk_dense(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                            const struct td_tangent_data *x2, const struct td_ntk_options *o,
                            float *out, struct td_ntk_report *r, char *err, size_t errlen);

#endif
