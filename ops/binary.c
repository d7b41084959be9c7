#include "ops/binary.h"

#include <stdio.h>

#include "ops/dnnl/prim.h"
#include "ops/ops.h"

/* Dimension d of s once s is aligned on the right to `rank` dimensions. */
static int64_t aligned_dim(const struct td_shape *s, int rank, int d)
{
    int k = d - (rank - s->rank);
    return k < 0 ? 1 : s->dim[k];
}

static const char *dtype_name(enum td_dtype t)
{
    return t == TD_F32 ? "float32" : "int32";
}

enum td_status td_binary_shape(struct td_node *n)
{
    const struct td_node *a = n->src[0], *b = n->src[1];
    char sa[64], sb[64];
    td_shape_format(&a->shape, sa, sizeof(sa));
    td_shape_format(&b->shape, sb, sizeof(sb));
    if (a->dtype != TD_F32 || b->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got %s %s and %s %s", dtype_name(a->dtype),
                            sa, dtype_name(b->dtype), sb);
    int rank = a->shape.rank > b->shape.rank ? a->shape.rank : b->shape.rank;
    struct td_shape s = {.rank = rank};
    for (int d = 0; d < rank; d++) {
        int64_t da = aligned_dim(&a->shape, rank, d), db = aligned_dim(&b->shape, rank, d);
        if (da != db && da != 1 && db != 1)
            return td_node_fail(n, "cannot broadcast %s with %s", sa, sb);
        s.dim[d] = da == 1 ? db : da;
    }
    n->shape = s;
    n->dtype = TD_F32;
    return TD_OK;
}

enum td_status td_binary_prepare(struct td_prep *p, dnnl_alg_kind_t alg)
{
    const struct td_node *n = p->node;
    int commutes = alg == dnnl_binary_add || alg == dnnl_binary_mul;
    int first;
    if (td_shape_equal(&n->src[0]->shape, &n->shape))
        first = 0;
    else if (commutes && td_shape_equal(&n->src[1]->shape, &n->shape))
        first = 1;
    else
        return TD_OK;
    /* oneDNN 2.6's jit kernels take an operand broadcast along leading axes
     * (a bias row); a per-row scalar ([.., R, 1] against [.., R, C]) falls
     * to its reference kernel, 500x slower than the loop below. */
    const struct td_shape *small = &n->src[1 - first]->shape;
    if (small->rank > 0 && small->dim[small->rank - 1] == 1 &&
        n->shape.dim[n->shape.rank - 1] > 1 && td_shape_numel(small) > 1)
        return TD_OK;
    /* oneDNN wants equal ranks: pad the other operand with leading 1s. */
    const struct td_shape *other = &n->src[1 - first]->shape;
    struct td_shape padded = {.rank = n->shape.rank};
    for (int d = 0; d < padded.rank; d++) padded.dim[d] = aligned_dim(other, padded.rank, d);
    struct td_prim_arg args[3] = {{.dnnl_arg = DNNL_ARG_SRC_0, .buf = TD_BUF_IN0 + first},
                                  {.dnnl_arg = DNNL_ARG_SRC_1, .buf = TD_BUF_IN0 + 1 - first},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_binary_desc_t desc;
    dnnl_status_t st = td_md_plain(&args[0].md, &n->shape, TD_F32);
    args[2].md = args[0].md;
    if (st == dnnl_success) st = td_md_plain(&args[1].md, &padded, TD_F32);
    if (st == dnnl_success)
        st = dnnl_binary_desc_init(&desc, alg, &args[0].md, &args[1].md, &args[2].md);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "%s: oneDNN binary descriptor failed (status %d)", n->op->name,
                 (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(p, &desc, args, 3);
}

/* Element strides of operand s read through the output's index space
 * (rank dims, row-major): 0 along the axes that broadcasting stretches. */
static void broadcast_strides(const struct td_shape *s, int rank, int64_t *st)
{
    int64_t step = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int64_t dim = aligned_dim(s, rank, d);
        st[d] = dim == 1 ? 0 : step;
        step *= dim;
    }
}

/* One output row o[0..n) = a op b, where each operand either runs along the
 * row (stride 1) or holds one value for it (stride 0). */
#define TD_BINARY_ROW(op)                                                                          \
    do {                                                                                           \
        if (ca && cb) {                                                                            \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) o[j] = a[j] op b[j];               \
        } else if (ca) {                                                                           \
            const float y = b[0];                                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) o[j] = a[j] op y;                  \
        } else if (cb) {                                                                           \
            const float x = a[0];                                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) o[j] = x op b[j];                  \
        } else {                                                                                   \
            const float v = a[0] op b[0];                                                          \
            for (int64_t j = 0; j < n; j++) o[j] = v;                                              \
        }                                                                                          \
    } while (0)

static void binary_row(dnnl_alg_kind_t alg, float *o, const float *a, int ca, const float *b,
                       int cb, int64_t n)
{
    switch (alg) {
    case dnnl_binary_sub:
        TD_BINARY_ROW(-);
        break;
    case dnnl_binary_mul:
        TD_BINARY_ROW(*);
        break;
    case dnnl_binary_div:
        TD_BINARY_ROW(/);
        break;
    default:
        TD_BINARY_ROW(+);
        break;
    }
}

/* a, b: operands of any broadcastable shapes; out: the broadcast shape
 * [d0, ..., dR-1] row-major, R >= 1, processed one row of dR-1 at a time.
 * A stretched operand 0 never aliases out (in place needs equal shapes). */
static void binary_loop(const struct td_exec *ex, dnnl_alg_kind_t alg)
{
    const struct td_node *n = ex->node;
    const float *a = ex->in[0], *b = ex->in[1];
    float *out = ex->out;
    int rank = n->shape.rank;
    if (rank == 0) {
        binary_row(alg, out, a, 0, b, 0, 1);
        return;
    }
    int64_t sa[TD_MAX_DIMS], sb[TD_MAX_DIMS];
    broadcast_strides(&n->src[0]->shape, rank, sa);
    broadcast_strides(&n->src[1]->shape, rank, sb);
    int64_t cols = n->shape.dim[rank - 1];
    int64_t rows = td_shape_numel(&n->shape) / cols;
    int ca = sa[rank - 1] != 0, cb = sb[rank - 1] != 0;
    TD_PARALLEL_FOR(ex->nthreads, r, rows, {
        int64_t oa = 0, ob = 0, q = r;
        for (int d = rank - 2; d >= 0; d--) {
            int64_t i = q % n->shape.dim[d];
            q /= n->shape.dim[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        binary_row(alg, out + r * cols, a + oa, ca, b + ob, cb, cols);
    });
}

void td_binary_forward(const struct td_exec *ex, dnnl_alg_kind_t alg)
{
    if (ex->state)
        td_prim_execute(ex);
    else
        binary_loop(ex, alg);
}

struct td_node *td_binary_new(struct td_graph *g, const struct td_op_def *op, struct td_node *a,
                              struct td_node *b)
{
    struct td_node *src[2] = {a, b};
    return td_node_new(g, op, src, 2, NULL);
}

struct td_node *td_binary_expand(struct td_graph *g, struct td_node *t, const struct td_node *n)
{
    if (!t || td_shape_equal(&t->shape, &n->shape)) return t;
    return td_broadcast_to(g, t, n->shape);
}

/* Offset in operand s of the output element with multi-index idx. */
static int64_t operand_offset(const struct td_shape *s, const struct td_shape *out,
                              const int64_t *idx)
{
    int64_t off = 0;
    int lead = out->rank - s->rank;
    for (int k = 0; k < s->rank; k++) off = off * s->dim[k] + (s->dim[k] == 1 ? 0 : idx[k + lead]);
    return off;
}

void td_binary_reference(const struct td_node *n, const void *const *in, float *out,
                         double (*f)(double a, double b))
{
    const float *a = in[0], *b = in[1];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) {
        int64_t idx[TD_MAX_DIMS], q = i;
        for (int d = n->shape.rank - 1; d >= 0; d--) {
            idx[d] = q % n->shape.dim[d];
            q /= n->shape.dim[d];
        }
        double va = a[operand_offset(&n->src[0]->shape, &n->shape, idx)];
        double vb = b[operand_offset(&n->src[1]->shape, &n->shape, idx)];
        out[i] = (float)f(va, vb);
    }
}

const struct td_op_case td_binary_cases[TD_BINARY_N_CASES] = {
    {.n_in = 2, .shape = {{.rank = 2, .dim = {3, 4}}, {.rank = 2, .dim = {3, 4}}}},
    {.n_in = 2, .shape = {{.rank = 2, .dim = {3, 4}}, {.rank = 1, .dim = {4}}}},
    {.n_in = 2, .shape = {{.rank = 2, .dim = {3, 1}}, {.rank = 2, .dim = {1, 4}}}},
    {.n_in = 2, .shape = {{.rank = 0}, {.rank = 2, .dim = {2, 3}}}},
    {.n_in = 2, .shape = {{.rank = 2, .dim = {2, 3}}, {.rank = 0}}},
    {.n_in = 2, .shape = {{.rank = 1, .dim = {4}}, {.rank = 3, .dim = {2, 3, 4}}}},
    {.n_in = 2, .shape = {{.rank = 3, .dim = {2, 1, 4}}, {.rank = 2, .dim = {3, 1}}}},
};
