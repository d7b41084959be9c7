/* The NTK methods' cost model: floating-point work and working set of each
 * method for a tile size, the largest tile that fits a memory budget, and
 * the pick. Estimates, not measurements: the tests check that the pick is
 * the structured method where the structure covers the model. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim/ntk_cost.h"

/* Floating-point work a plan run costs besides its arithmetic (scheduler,
 * primitive calls, feeding), counted in flops at about 100 GFLOP/s: some
 * 10 us per run and 2 us per node of a backward pass. */
#define RUN_OVERHEAD (1e6 + 2e5 * s->nodes_per_pass)

static double pairs_of(const struct td_ntk_shape *s)
{
    if (s->diagonal) return (double)s->n1;
    if (s->symmetric) return (double)s->n1 * (double)(s->n1 + 1) / 2.0;
    return (double)s->n1 * (double)s->n2;
}

/* Samples whose per-sample data is computed (each once). */
static double side_samples(const struct td_ntk_shape *s)
{
    return s->symmetric ? (double)s->n1 : (double)(s->n1 + s->n2);
}

static double kk(const struct td_ntk_shape *s)
{
    return s->trace ? (double)s->K : (double)s->K * (double)s->K;
}

/* Bytes of the double accumulator and the float tile handed to the sink. */
static double tile_bytes(const struct td_ntk_shape *s, int64_t b)
{
    double e = s->diagonal ? (double)b : (double)b * (double)b;
    if (!s->trace) e *= (double)s->K * (double)s->K;
    return e * 12.0;
}

/* Work of the fallback Jacobian entries of `samples` samples in tiles of b:
 * rows (a one-sample backward pass per sample and output) or columns
 * (forward-mode passes over the tile, `cols` directions per forward pass). */
static double rows_flops(const struct td_ntk_shape *s, double samples)
{
    return samples * (double)s->K * (3.0 * s->flops_per_sample + RUN_OVERHEAD);
}

static double cols_flops(const struct td_ntk_shape *s, double samples, size_t elems, int64_t b,
                         int64_t cols)
{
    const double runs = ceil((double)elems / (double)cols) * ceil(samples / (double)b);
    return runs * ((double)b * s->flops_per_sample * (1.0 + 2.0 * (double)cols) + RUN_OVERHEAD);
}

int64_t td_ntk_fallback_columns(const struct td_ntk_shape *s, size_t elems, int64_t b)
{
    const int64_t c = elems < TD_NTK_MAX_SEEDS ? (int64_t)elems : TD_NTK_MAX_SEEDS;
    if (elems == 0 || s->jacobian == TD_NTK_JAC_ROWS) return 0;
    if (s->jacobian == TD_NTK_JAC_COLUMNS) return c;
    const double samples = s->symmetric ? (double)s->n1 : (double)(s->n1 + s->n2);
    return cols_flops(s, samples, elems, b, c) < rows_flops(s, samples) ? c : 0;
}

static double fallback_flops(const struct td_ntk_shape *s, size_t elems, int64_t b)
{
    const double samples = s->symmetric ? (double)s->n1 : (double)(s->n1 + s->n2);
    const int64_t c = td_ntk_fallback_columns(s, elems, b);
    return c ? cols_flops(s, samples, elems, b, c) : rows_flops(s, samples);
}

double td_ntk_cost_flops(const struct td_ntk_shape *s, const struct td_ntk_structure *st,
                         enum td_ntk_method m, int64_t b, int64_t seeds)
{
    const double K = (double)s->K, F = s->flops_per_sample, pass = 3.0 * F;
    const double pairs = pairs_of(s), samples = side_samples(s);
    switch (m) {
    case TD_NTK_JACOBIAN:
        return fallback_flops(s, st->fallback_elems, b) +
               2.0 * pairs * kk(s) * (double)st->fallback_elems;
    case TD_NTK_NTVP: {
        /* One VJP and one JVP at batch b per column of each tile pair. */
        double products = s->diagonal ? (double)s->n1 * K : pairs * K / (double)b;
        return products * (2.0 * pass * (double)b + 2.0 * RUN_OVERHEAD);
    }
    case TD_NTK_STRUCTURED: {
        /* A forward pass per ceil(K / seeds) and a backward pass (to the uses,
         * about a forward's work) per output. */
        double runs = ceil(K / (double)seeds);
        double f = samples * (runs * F + K * F) + samples / (double)b * runs * RUN_OVERHEAD;
        if (st->n_fallback) f += fallback_flops(s, st->fallback_elems, b);
        double per_pair = 2.0 * kk(s) * (double)st->width;
        for (int i = 0; i < st->n_uses; i++) {
            const struct td_ntk_use *u = &st->uses[i];
            double R2 = (double)u->R * (double)u->R;
            if (u->route == TD_ROUTE_FACTORED)
                per_pair +=
                    kk(s) * R2 * 2.0 * (double)u->out + 2.0 * R2 * (double)u->in + kk(s) * R2 * 2.0;
            else if (u->kind == TD_USE_LOCAL) /* a small plan per sample and pass */
                f += samples * (K * (4.0 * (double)u->out + 2.0 * (double)u->width) +
                                ceil(K / (double)seeds) * (1e6 + 2e5 * (double)seeds));
            else
                f += samples * K * 2.0 * (double)u->R * (double)u->width;
        }
        return f + pairs * per_pair;
    }
    default:
        return INFINITY;
    }
}

/* The fallback passes' plan and buffers. */
static double fallback_bytes(const struct td_ntk_shape *s, size_t elems, int64_t b)
{
    const int64_t c = td_ntk_fallback_columns(s, elems, b);
    if (elems == 0) return 0;
    if (!c) return s->pass_bytes_per_sample + 4.0 * (double)elems;
    return 2.0 * (double)b * s->pass_bytes_per_sample +
           4.0 * (double)c * ((double)elems + (double)(b * s->K) * 2.0);
}

double td_ntk_cost_bytes(const struct td_ntk_shape *s, const struct td_ntk_structure *st,
                         enum td_ntk_method m, int64_t b, int64_t seeds)
{
    const double pass = s->pass_bytes_per_sample;
    const double sides = s->diagonal && s->symmetric ? 1.0 : 2.0;
    switch (m) {
    case TD_NTK_JACOBIAN:
        return sides * (double)b * (double)s->K * (double)s->params * 4.0 + tile_bytes(s, b) + pass;
    case TD_NTK_NTVP:
        return 2.0 * (double)b * pass + tile_bytes(s, b) + (double)b * (double)s->K * 8.0 +
               (double)s->params * 4.0;
    case TD_NTK_STRUCTURED: {
        double temps = 0, stage = 0;
        for (int i = 0; i < st->n_uses; i++) {
            const struct td_ntk_use *u = &st->uses[i];
            if (u->route == TD_ROUTE_FACTORED) {
                double t = (double)td_ntk_factored_bytes(u, s->K, b, s->trace);
                if (t > temps) temps = t;
            }
            /* The plan's outputs: every seed's deltas and the activations. */
            stage += (double)b * (double)u->R * ((double)seeds * (double)u->out + (double)u->in);
        }
        return sides * (double)td_ntk_side_bytes(st, s->K, b) + tile_bytes(s, b) + temps +
               8.0 * stage + 2.0 * (double)b * pass + fallback_bytes(s, st->fallback_elems, b);
    }
    default:
        return INFINITY;
    }
}
