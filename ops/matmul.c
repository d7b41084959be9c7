/* matmul: y = op(a) op(b) over the last two axes; attr i[0] = transpose_a,
 * i[1] = transpose_b (op = transpose when set).
 * a [..., M, K] ([..., K, M] when transposed), b [..., K, N] ([..., N, K]),
 * y [..., M, N]. The leading (batch) axes broadcast as in NumPy: aligned on
 * the right, a missing axis or a batch dim of 1 stretches (a 2-D operand is
 * shared by every batch of the other). oneDNN broadcasts batch dims of 1
 * itself once both descriptors have the output's rank. Transposes are
 * strides of the oneDNN memory descriptors, so nothing is copied. Rules are
 * matmuls with other transpose flags; the cotangent of a broadcast operand
 * is summed over the axes it was stretched along; a JVP in both operands
 * is one matmul_add. */
#include <stdio.h>

#include "ops/matmul_common.h"
#include "ops/rules.h"

/* Rows and columns of op(x) for x of shape s. */
static int64_t op_rows(const struct td_shape *s, int t)
{
    return s->dim[s->rank - (t ? 1 : 2)];
}

static int64_t op_cols(const struct td_shape *s, int t)
{
    return s->dim[s->rank - (t ? 2 : 1)];
}

static const char *flags_note(int ta, int tb)
{
    return ta && tb ? " (transpose_a, transpose_b)"
           : ta     ? " (transpose_a)"
           : tb     ? " (transpose_b)"
                    : "";
}

/* Dimension d of s aligned on the right to `rank` dimensions (1 where s has
 * no such axis). */
static int64_t aligned_dim(const struct td_shape *s, int rank, int d)
{
    int k = d - (rank - s->rank);
    return k < 0 ? 1 : s->dim[k];
}

static enum td_status matmul_shape(struct td_node *n)
{
    const struct td_shape *a = &n->src[0]->shape, *b = &n->src[1]->shape;
    int ta = n->attr.i[0], tb = n->attr.i[1];
    char sa[128], sb[128];
    td_shape_format(a, sa, sizeof(sa));
    td_shape_format(b, sb, sizeof(sb));
    if (n->src[0]->dtype != TD_F32 || n->src[1]->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got %s%s x %s%s",
                            n->src[0]->dtype == TD_I32 ? "int32 " : "", sa,
                            n->src[1]->dtype == TD_I32 ? "int32 " : "", sb);
    if (a->rank < 2 || b->rank < 2)
        return td_node_fail(n, "operands need rank >= 2: %s x %s", sa, sb);
    if (op_cols(a, ta) != op_rows(b, tb))
        return td_node_fail(n, "inner dimensions differ: %s x %s%s", sa, sb, flags_note(ta, tb));
    int rank = a->rank > b->rank ? a->rank : b->rank;
    n->shape.rank = rank;
    for (int d = 0; d < rank - 2; d++) {
        int64_t da = aligned_dim(a, rank, d), db = aligned_dim(b, rank, d);
        if (da != db && da != 1 && db != 1)
            return td_node_fail(n, "batch dimensions differ: %s x %s", sa, sb);
        n->shape.dim[d] = da == 1 ? db : da;
    }
    n->shape.dim[rank - 2] = op_rows(a, ta);
    n->shape.dim[rank - 1] = op_cols(b, tb);
    n->dtype = TD_F32;
    return TD_OK;
}

static enum td_status matmul_prepare(struct td_prep *p)
{
    return td_matmul_prepare(p, NULL);
}

/* Elements of the batch axes of x [..., R, C]: 1 when x is shared whole by
 * every batch of the other operand. */
static int64_t batch_numel(const struct td_shape *x)
{
    return td_shape_numel(x) / (x->dim[x->rank - 2] * x->dim[x->rank - 1]);
}

/* x [..., R, C] viewed as [(...) * R, C]. */
static struct td_node *flatten_rows(struct td_graph *g, struct td_node *x)
{
    int64_t c = x->shape.dim[x->shape.rank - 1];
    return td_reshape(g, x, TD_SHAPE(td_shape_numel(&x->shape) / c, c));
}

static struct td_node *matmul_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    int ta = n->attr.i[0], tb = n->attr.i[1];
    struct td_node *db = t[1] ? td_matmul(g, a, t[1], ta, tb) : NULL;
    if (!t[0]) return db;
    return db ? td_matmul_add(g, t[0], b, ta, tb, db) : td_matmul(g, t[0], b, ta, tb);
}

/* With A = op(a), B = op(b), G = ct: dA = G B^T and dB = A^T G, transposed
 * back when the operand itself was used transposed, then summed over the
 * batch axes the operand was broadcast along. */
static void matmul_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    int ta = n->attr.i[0], tb = n->attr.i[1];
    if (need & 1u) {
        struct td_node *da = ta ? td_matmul(g, b, ct, tb, 1) : td_matmul(g, ct, b, 0, !tb);
        cts[0] = td_rule_unbroadcast(g, da, &a->shape);
    }
    if (!(need & 2u)) return;
    if (batch_numel(&b->shape) == 1 && batch_numel(&a->shape) > 1 && !ta) {
        /* b is one matrix shared by every batch: the batch folds into the
         * rows of A, so one 2-D product and no batched intermediate to sum. */
        struct td_node *a2 = flatten_rows(g, a), *ct2 = flatten_rows(g, ct);
        struct td_node *db = tb ? td_matmul(g, ct2, a2, 1, 0) : td_matmul(g, a2, ct2, 1, 0);
        cts[1] = b->shape.rank == 2 ? db : td_reshape(g, db, b->shape);
        return;
    }
    struct td_node *db = tb ? td_matmul(g, ct, a, 1, ta) : td_matmul(g, a, ct, !ta, 0);
    cts[1] = td_rule_unbroadcast(g, db, &b->shape);
}

/* Offset of the matrix of x [..., R, C] that output batch `s` reads: the
 * batch index is split on the output's batch axes, and an axis x lacks or
 * holds with size 1 contributes nothing. */
static int64_t batch_offset(const struct td_shape *x, const struct td_shape *y, int64_t s)
{
    int64_t off = 0, stride = x->dim[x->rank - 2] * x->dim[x->rank - 1];
    for (int d = y->rank - 3; d >= 0; d--) {
        int64_t i = s % y->dim[d], xd = aligned_dim(x, y->rank, d);
        s /= y->dim[d];
        off += xd == 1 ? 0 : i * stride;
        stride *= xd;
    }
    return off;
}

/* The test reference: a plain triple loop per output batch in double. */
static void matmul_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *sa = &n->src[0]->shape, *sb = &n->src[1]->shape;
    const float *a = in[0], *b = in[1];
    int ta = n->attr.i[0], tb = n->attr.i[1];
    int64_t m = n->shape.dim[n->shape.rank - 2], nn = n->shape.dim[n->shape.rank - 1];
    int64_t k = op_cols(sa, ta);
    int64_t batches = td_shape_numel(&n->shape) / (m * nn);
    for (int64_t s = 0; s < batches; s++) {
        const float *ab = a + batch_offset(sa, &n->shape, s);
        const float *bb = b + batch_offset(sb, &n->shape, s);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < nn; j++) {
                double acc = 0;
                for (int64_t l = 0; l < k; l++)
                    acc += (double)(ta ? ab[l * m + i] : ab[i * k + l]) *
                           (tb ? bb[j * k + l] : bb[l * nn + j]);
                out[(s * m + i) * nn + j] = (float)acc;
            }
    }
}

static struct td_node *build_nn(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul(g, in[0], in[1], 0, 0);
}

static struct td_node *build_tn(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul(g, in[0], in[1], 1, 0);
}

static struct td_node *build_nt(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul(g, in[0], in[1], 0, 1);
}

static struct td_node *build_tt(struct td_graph *g, struct td_node *const *in)
{
    return td_matmul(g, in[0], in[1], 1, 1);
}

static const struct td_op_case matmul_cases[] = {
    {.n_in = 2, .shape = {{2, {4, 6}}, {2, {6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{2, {6, 4}}, {2, {6, 5}}}, .build = build_tn},
    {.n_in = 2, .shape = {{2, {4, 6}}, {2, {5, 6}}}, .build = build_nt},
    {.n_in = 2, .shape = {{2, {6, 4}}, {2, {5, 6}}}, .build = build_tt},
    {.n_in = 2, .shape = {{3, {3, 4, 6}}, {3, {3, 6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{4, {2, 2, 6, 4}}, {4, {2, 2, 5, 6}}}, .build = build_tt},
    {.n_in = 2, .shape = {{3, {3, 4, 6}}, {2, {6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{3, {3, 4, 6}}, {2, {5, 6}}}, .build = build_nt},
    {.n_in = 2, .shape = {{3, {3, 6, 4}}, {2, {5, 6}}}, .build = build_tt},
    {.n_in = 2, .shape = {{2, {4, 6}}, {3, {3, 6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{2, {6, 4}}, {3, {3, 5, 6}}}, .build = build_tt},
    /* NumPy broadcasting of the batch axes */
    {.n_in = 2, .shape = {{3, {3, 4, 6}}, {3, {1, 6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{3, {1, 6, 4}}, {3, {3, 5, 6}}}, .build = build_tt},
    {.n_in = 2, .shape = {{4, {2, 3, 4, 4}}, {4, {1, 3, 4, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{4, {2, 3, 4, 6}}, {4, {1, 3, 5, 6}}}, .build = build_nt},
    {.n_in = 2, .shape = {{3, {3, 4, 6}}, {4, {2, 3, 6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{4, {2, 1, 6, 4}}, {3, {3, 6, 5}}}, .build = build_tn},
    {.n_in = 2, .shape = {{4, {1, 3, 6, 4}}, {4, {2, 1, 5, 6}}}, .build = build_tt},
    {.n_in = 2, .shape = {{4, {2, 3, 4, 6}}, {4, {1, 1, 6, 5}}}, .build = build_nn},
    {.n_in = 2, .shape = {{4, {2, 3, 4, 6}}, {4, {1, 1, 5, 6}}}, .build = build_nt},
    {.n_in = 2, .shape = {{2, {1, 6}}, {4, {2, 1, 6, 1}}}, .build = build_nn},
    /* attention: scores q k^T, then probabilities times values */
    {.n_in = 2, .shape = {{4, {2, 2, 5, 3}}, {4, {2, 2, 5, 3}}}, .build = build_nt},
    {.n_in = 2, .shape = {{4, {2, 2, 5, 5}}, {4, {2, 2, 5, 3}}}, .build = build_nn},
};

const struct td_op_def td_op_matmul = {
    .name = "matmul",
    .n_src = 2,
    .shape = matmul_shape,
    .prepare = matmul_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = matmul_jvp,
    .vjp = matmul_vjp,
    .cost = td_matmul_cost,
    .flops = td_matmul_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(matmul_cases) / sizeof(matmul_cases[0])),
            .cases = matmul_cases,
            .reference = matmul_reference,
        },
};

struct td_node *td_matmul(struct td_graph *g, struct td_node *a, struct td_node *b, int transpose_a,
                          int transpose_b)
{
    struct td_attr attr = {.i = {transpose_a != 0, transpose_b != 0}};
    struct td_node *src[2] = {a, b};
    return td_node_new(g, &td_op_matmul, src, 2, &attr);
}
