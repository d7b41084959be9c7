#include "ops/cross_entropy.h"

#include <string.h>

enum td_status td_cross_entropy_check(struct td_node *n)
{
    const struct td_node *logits = n->src[0], *labels = n->src[1];
    char sl[128], sy[128];
    td_shape_format(&logits->shape, sl, sizeof(sl));
    td_shape_format(&labels->shape, sy, sizeof(sy));
    if (logits->dtype != TD_F32) return td_node_fail(n, "expects float logits, got int32 %s", sl);
    if (labels->dtype != TD_I32) return td_node_fail(n, "expects int32 labels, got float %s", sy);
    if (logits->shape.rank != 2)
        return td_node_fail(n, "expects logits of rank 2 [batch, classes], got %s", sl);
    if (labels->shape.rank != 1 || labels->shape.dim[0] != logits->shape.dim[0])
        return td_node_fail(n, "labels %s do not match logits %s: expected [%lld]", sy, sl,
                            (long long)logits->shape.dim[0]);
    return TD_OK;
}

void td_row_blocks_run(const struct td_exec *ex, int64_t rows,
                       void (*block)(const struct td_exec *ex, int64_t b0, int64_t n))
{
    int64_t blocks = (rows + TD_ROW_EXP_BLOCK - 1) / TD_ROW_EXP_BLOCK;
    TD_PARALLEL_FOR(ex->nthreads, k, blocks, int64_t b0 = k * TD_ROW_EXP_BLOCK;
                    block(ex, b0, rows - b0 < TD_ROW_EXP_BLOCK ? rows - b0 : TD_ROW_EXP_BLOCK););
}

/* exp(d) for d <= 0, relative error below 1e-12: d = k ln2 + r with
 * |r| <= ln2/2 (ln2 split in two so k ln2 is exact), exp(r) by its Taylor
 * series to degree 10, times 2^k built in the exponent bits. Arguments
 * below -708 are clamped (exp(-708) ~ 3e-308, zero against the row's
 * maximum term 1); NaN stays NaN. No branches, no calls: it vectorizes. */
static inline double exp_nonpositive(double d)
{
    const double shift = 0x1.8p52; /* adding it rounds to an integer in the low bits */
    d = d < -708.0 ? -708.0 : d;
    double kd = d * 0x1.71547652b82fep0 + shift;
    uint64_t bits;
    memcpy(&bits, &kd, sizeof(bits));
    kd -= shift;
    double r = d - kd * 0x1.62e42fefa3800p-1 - kd * 0x1.ef35793c76730p-45;
    double p = 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t scale_bits = (bits + 1023u) << 52;
    double scale;
    memcpy(&scale, &scale_bits, sizeof(scale));
    return p * scale;
}

void td_row_exp(const float *x, int64_t rows, int64_t c, float *mx, double *e, double *sum)
{
    for (int64_t b = 0; b < rows; b++) {
        const float *xb = x + b * c;
        float m = xb[0];
        for (int64_t j = 1; j < c; j++) m = xb[j] > m ? xb[j] : m;
        mx[b] = m;
        for (int64_t j = 0; j < c; j++) e[b * c + j] = (double)xb[j] - (double)m;
    }
    /* One flat loop over the block: rows of 10 classes are too short to
     * vectorize one at a time. */
    for (int64_t i = 0; i < rows * c; i++) e[i] = exp_nonpositive(e[i]);
    for (int64_t b = 0; b < rows; b++) {
        double s = 0;
        for (int64_t j = 0; j < c; j++) s += e[b * c + j];
        sum[b] = s;
    }
}

const struct td_op_case td_cross_entropy_cases[TD_CROSS_ENTROPY_N_CASES] = {
    {.n_in = 2, .shape = {{2, {5, 7}}, {1, {5}}}, .dtype = {TD_F32, TD_I32}},
    {.n_in = 2, .shape = {{2, {12, 7}}, {1, {12}}}, .dtype = {TD_F32, TD_I32}},
    {.n_in = 2, .shape = {{2, {37, 7}}, {1, {37}}}, .dtype = {TD_F32, TD_I32}},
};
