/* Library-internal pieces of the NTK methods (optim/ntk.h): the structure
 * found in a graph, the per-tile data each method derives from its passes
 * and the contractions that turn two tiles' data into a kernel tile. Not
 * installed. */
#ifndef TD_NTK_IMPL_H
#define TD_NTK_IMPL_H

#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/node.h"
#include "graph/plan.h"
#include "optim/ntk.h"
#include "optim/tangent_impl.h"

/* Threads for a loop touching `work` elements: one below TD_NTK_PAR_MIN
 * (starting a team costs more than such a loop, and far more when other
 * processes share the cores), else num_threads (0: OpenMP's default). */
#define TD_NTK_PAR_MIN 262144.0
static inline int td_ntk_team(int num_threads, double work)
{
    if (work < TD_NTK_PAR_MIN) return 1;
    return num_threads > 0 ? num_threads : omp_get_max_threads();
}

/* How a parameter use enters the kernel. */
enum td_use_kind {
    TD_USE_DENSE,     /* y = a W^T (+ b) over positions: linear, matmul with a shared matrix */
    TD_USE_EMBEDDING, /* y = W[ids] */
    TD_USE_LOCAL,     /* any other op taking parameters and per-sample operands (layer
                         norm's gains, an added position table, a convolution's kernel):
                         its per-sample gradient is the op's own VJP on one sample,
                         run on that sample's operands and deltas */
};
enum td_use_route {
    TD_ROUTE_FACTORED, /* (delta delta'^T) * (a a'^T + bias) summed over position pairs */
    TD_ROUTE_EXPLICIT, /* per-sample gradients sum_t delta_t a_t^T as Jacobian columns */
};

struct td_ntk_use {
    enum td_use_kind kind;
    enum td_use_route route;
    struct td_node *y;      /* the consuming node: delta is its cotangent */
    struct td_node *a;      /* dense: the activation operand; embedding: the ids */
    int w_param, b_param;   /* store indices of weight and bias (-1: none or not in theta) */
    int lparam[TD_MAX_SRC]; /* local: operand i's parameter (-1: none or not in theta) */
    unsigned batch_ops;     /* local: bit i set when operand i is per-sample data */
    int64_t R, in, out;     /* positions per sample; input features (embedding: rows V); out
                               (local: elements of y per sample) */
    size_t col;             /* explicit: first column in the explicit rows */
    size_t width;           /* explicit: columns (out * in, plus out with a bias) */
};

/* What the graph holds: uses found and the parameters left to Jacobian rows. */
struct td_ntk_structure {
    int n_uses;
    struct td_ntk_use *uses;
    int n_fallback;
    int *fallback; /* store indices */
    size_t fallback_elems;
    size_t width;        /* explicit columns: explicit uses, then fallback parameters */
    size_t fallback_col; /* first fallback column */
};

/* Finds the uses of the selected parameters of t's graph. Never fails
 * except out of memory (TD_ERR_NOMEM); a parameter used any other way, or
 * by uses whose rows overlap, goes to the fallback list. */
enum td_status td_ntk_find_structure(const struct td_tinst *t, int jacobian_only,
                                     struct td_ntk_structure *s);
void td_ntk_structure_free(struct td_ntk_structure *s);

/* Picks each use's route for tiles of `tile` samples (full or trace
 * kernels) and assigns the explicit columns. */
void td_ntk_choose_routes(struct td_ntk_structure *s, int64_t K, int64_t tile, int trace,
                          size_t factored_bytes_max);

/* Per-tile data of the structured and Jacobian methods, for up to `cap`
 * samples: delta [cap][K][R][out] and a [cap][R][in] per factored use, and
 * the explicit rows E [cap][K][width]. */
struct td_ntk_side {
    int64_t count, cap;
    float **delta, **act;
    float *E;
};
enum td_status td_ntk_side_alloc(struct td_ntk_side *d, const struct td_ntk_structure *s, int64_t K,
                                 int64_t cap);
void td_ntk_side_free(struct td_ntk_side *d, const struct td_ntk_structure *s);
size_t td_ntk_side_bytes(const struct td_ntk_structure *s, int64_t K, int64_t cap);

/* The passes that fill side data.
 * Seeded backward passes (structured): one plan on the model at batch
 * `tile` runs the forward pass once and then `seeds` backward passes, seed
 * j of pass q being output q * seeds + j on every sample. A batched VJP
 * sums parameter cotangents over the batch, but the cotangents at the uses
 * stay per-sample: each backward pass gives one output's deltas for every
 * sample. Fills delta and act of factored uses and the explicit columns of
 * explicit uses.
 * The fallback columns (all of the Jacobian for the jacobian method) come
 * either as rows, from one-sample backward passes (one per sample and
 * output), or as columns, from forward-mode passes of the tile along
 * parameter basis vectors, `col_dirs` of them sharing one forward pass:
 * whichever the cost model finds cheaper (few parameters and many outputs
 * favour columns). */
#define TD_NTK_MAX_SEEDS 32
struct td_ntk_passes {
    int64_t K, tile, seeds;
    int num_threads;
    struct td_tinst multi; /* batch tile; NULL graph when unused */
    struct td_ntk_structure rs;
    struct td_node **seed; /* [seeds] */
    struct td_plan *multi_plan;
    float **stage_delta; /* [seeds * n_uses], into stage_all */
    float **stage_act;   /* [n_uses], into stage_all */
    int32_t **stage_ids;
    float **stage_all; /* the seeded plan's bound outputs */
    int n_stage;
    float **stage_ops;          /* [n_uses * TD_MAX_SRC]: local uses' per-sample operands */
    struct td_ntk_local *local; /* [n_uses]: the one-sample VJP plans of local uses */
    struct td_tinst one;        /* batch 1: rows */
    struct td_node *seed1;
    struct td_plan *row_plan;
    float *row, *seed_buf, *seed1_buf;
    int64_t col_dirs;        /* > 0: columns instead of rows */
    struct td_tinst colb;    /* batch tile: columns */
    struct td_node **col_in; /* [col_dirs][fallback parameters] tangent inputs */
    struct td_plan *col_plan;
    float *col_tan, *col_out; /* [col_dirs][fallback elements], [col_dirs][tile][K] */
};
/* A local use's per-sample gradients: the op rebuilt at batch 1 in a graph
 * of its own, its per-sample operands, parameters and one cotangent per
 * seed of the seeded plan fed, the VJPs to its parameters bound into
 * `grad` ([seeds][width] floats). */
struct td_ntk_local {
    struct td_graph *g;
    struct td_plan *plan;
    struct td_node *in[TD_MAX_SRC], **seed;
    float *grad;
};

/* s was found on `probe` (any build of m with the selection sel). */
enum td_status td_ntk_passes_init(struct td_ntk_passes *ps, const struct td_tangent_model *m,
                                  const struct td_param_select *sel, const struct td_tinst *probe,
                                  const struct td_ntk_structure *s, int64_t K, int64_t tile,
                                  int64_t seeds, int64_t col_dirs, int num_threads, char *err,
                                  size_t errlen);
void td_ntk_passes_free(struct td_ntk_passes *ps);
/* Fills d for samples [first, first + count) of x, count <= tile. */
enum td_status td_ntk_passes_run(struct td_ntk_passes *ps, const struct td_ntk_structure *s,
                                 const struct td_tangent_data *x, int64_t first, int64_t count,
                                 struct td_ntk_side *d, char *err, size_t errlen);

/* Scratch of the contractions, grown on demand and kept across tile
 * pairs; zero it before the first use, free it once. */
#define TD_NTK_WORK_SLOTS 7
struct td_ntk_work {
    float *buf[TD_NTK_WORK_SLOTS];
    size_t cap[TD_NTK_WORK_SLOTS];
};
void td_ntk_work_free(struct td_ntk_work *w);

/* Adds the kernel of two tiles' side data into acc (double):
 * full: acc [(n, k), (m, l)] = [ni * K, nj * K] row-major;
 * trace: acc [ni, nj]; with `lower` (the same tile on both sides) only
 * entries with m <= n are guaranteed.
 * Returns 0, or -1 when out of memory. */
int td_ntk_contract(const struct td_ntk_structure *s, int64_t K, const struct td_ntk_side *a,
                    const struct td_ntk_side *b, int trace, int lower, int num_threads,
                    struct td_ntk_work *w, double *acc);
/* The diagonal pairs (n, n) of two tiles of equal count: acc [n, K, K] or
 * [n] (trace). */
int td_ntk_contract_diag(const struct td_ntk_structure *s, int64_t K, const struct td_ntk_side *a,
                         const struct td_ntk_side *b, int trace, int num_threads, double *acc);

/* NTK-vector products on one build (optim/ntvp.c): the VJP plan writes
 * J^T seed over the selected parameters into the build's dir block, the
 * JVP plan reads the dir block and gives J dir [batch, K]; `both` runs the
 * two on the same samples in one plan. */
struct td_ntvp_core {
    struct td_tinst inst;
    struct td_node *seed;
    struct td_plan *vjp, *jvp, *both;
};
enum td_status td_ntvp_core_init(struct td_ntvp_core *c, const struct td_tangent_model *m,
                                 int64_t batch, const struct td_param_select *sel, int want_both,
                                 int num_threads, char *err, size_t errlen);
void td_ntvp_core_free(struct td_ntvp_core *c);
/* Runs plan (vjp, jvp or both) on the feeds of c->inst plus the seed (may
 * be NULL for jvp). Returns TD_OK or TD_ERR_BACKEND with the message in err. */
enum td_status td_ntvp_core_run(struct td_ntvp_core *c, struct td_plan *plan,
                                const struct td_feed *feeds, const float *seed, char *err,
                                size_t errlen);

/* Bytes of the factored contraction's temporaries for one use at a tile. */
size_t td_ntk_factored_bytes(const struct td_ntk_use *u, int64_t K, int64_t tile, int trace);

#endif
