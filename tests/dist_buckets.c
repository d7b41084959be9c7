/* The bucketed sum over ranks (td_dist_buckets), run under mpirun with any
 * number of ranks (test_mpi.sh uses 3, where the ring's chunks differ from
 * rank to rank): exact sums of integers, bitwise the same result whatever
 * the order in which each rank makes its buckets ready, agreement with a
 * double-precision sum, buckets smaller than the number of ranks, and clear
 * errors for misuse. Prints one line per check on rank 0; exits 1 when any
 * check fails on any rank.
 *   dist_buckets */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/dist.h"

#define N_FLOATS 10007
#define N_BUCKETS 7

static int failures;

static void check(int rank, int ok, const char *what)
{
    if (!ok) failures++;
    if (rank == 0 || !ok) printf("%s: %s (rank %d)\n", ok ? "ok" : "FAIL", what, rank);
}

/* A value in [-1, 1) that every rank can compute for every rank. */
static float value(int rank, size_t i)
{
    unsigned long long h =
        (unsigned long long)rank * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return (float)((double)(h >> 11) / 9007199254740992.0 * 2 - 1);
}

/* Sums x with the buckets made ready in `order`, moving the started ones on
 * between two readies as a training step does. */
static enum td_status sum(struct td_dist_buckets *b, float *x, const int *order, char *err,
                          size_t errlen)
{
    enum td_status st = td_dist_buckets_start(b, x, err, errlen);
    for (int k = 0; k < N_BUCKETS && st == TD_OK; k++) {
        st = td_dist_buckets_ready(b, order[k], err, errlen);
        if (st == TD_OK) st = td_dist_buckets_progress(b, err, errlen);
    }
    return st == TD_OK ? td_dist_buckets_finish(b, err, errlen) : st;
}

int main(void)
{
    char err[512] = "";
    struct td_dist *d;
    if (td_dist_init(&d, err, sizeof(err)) != TD_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rank = td_dist_rank(d), ranks = td_dist_size(d);
    /* Sizes 1 and 2 leave some ranks' chunks empty. */
    const size_t ends[N_BUCKETS] = {1, 3, 1000, 1001, 5000, 9000, N_FLOATS};
    struct td_dist_buckets *b = td_dist_buckets_new(d, ends, N_BUCKETS, err, sizeof(err));
    float *x = malloc(N_FLOATS * sizeof(float)), *y = malloc(N_FLOATS * sizeof(float));
    if (!b || !x || !y) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    int in_order[N_BUCKETS], mixed[N_BUCKETS];
    for (int k = 0; k < N_BUCKETS; k++) {
        in_order[k] = k;
        mixed[k] = (k * 3 + rank * 2) % N_BUCKETS; /* a permutation that differs per rank */
    }

    for (size_t i = 0; i < N_FLOATS; i++) x[i] = (float)((rank * 7 + (int)i) % 13);
    enum td_status st = sum(b, x, mixed, err, sizeof(err));
    int exact = st == TD_OK;
    for (size_t i = 0; i < N_FLOATS && exact; i++) {
        long want = 0;
        for (int r = 0; r < ranks; r++) want += (r * 7 + (long)i) % 13;
        exact = x[i] == (float)want;
    }
    check(rank, exact, "integer sums are exact");

    for (size_t i = 0; i < N_FLOATS; i++) x[i] = y[i] = value(rank, i);
    st = sum(b, x, in_order, err, sizeof(err));
    if (st == TD_OK) st = sum(b, y, mixed, err, sizeof(err));
    check(rank, st == TD_OK && memcmp(x, y, N_FLOATS * sizeof(float)) == 0,
          "the same bits whatever order each rank makes its buckets ready in");
    double worst = 0;
    for (size_t i = 0; i < N_FLOATS; i++) {
        double want = 0;
        for (int r = 0; r < ranks; r++) want += value(r, i);
        worst = fmax(worst, fabs(x[i] - want));
    }
    check(rank, st == TD_OK && worst <= 4e-7 * ranks, "within float rounding of a double sum");

    /* The same bits on every rank. */
    uint64_t h = 1469598103934665603ull, hashes[64];
    for (size_t i = 0; i < N_FLOATS * sizeof(float); i++)
        h = (h ^ ((const unsigned char *)x)[i]) * 1099511628211ull;
    int same = ranks <= 64 && td_dist_gather_u64(d, h, hashes, err, sizeof(err)) == TD_OK;
    for (int r = 0; r < ranks && same; r++) same = hashes[r] == h;
    check(rank, same, "every rank holds the same bits");

    /* Misuse, on a single-rank sum so the job's messages stay matched. */
    struct td_dist_buckets *solo = td_dist_buckets_new(NULL, ends, N_BUCKETS, err, sizeof(err));
    check(rank, solo != NULL, "a single-rank sum");
    check(rank, td_dist_buckets_ready(solo, 0, err, sizeof(err)) == TD_ERR_STATE,
          "ready before start is refused");
    td_dist_buckets_start(solo, x, err, sizeof(err));
    check(rank, td_dist_buckets_start(solo, x, err, sizeof(err)) == TD_ERR_STATE,
          "a second start before finish is refused");
    td_dist_buckets_ready(solo, 2, err, sizeof(err));
    check(rank,
          td_dist_buckets_ready(solo, 2, err, sizeof(err)) == TD_ERR_ARG &&
              td_dist_buckets_ready(solo, N_BUCKETS, err, sizeof(err)) == TD_ERR_ARG,
          "a bucket made ready twice or out of range is refused");
    check(rank,
          td_dist_buckets_finish(solo, err, sizeof(err)) == TD_ERR_STATE &&
              strstr(err, "bucket 0 was never made ready") != NULL,
          "finish names a bucket never made ready");
    const size_t bad[2] = {5, 5};
    check(rank, td_dist_buckets_new(d, bad, 2, err, sizeof(err)) == NULL && strstr(err, "empty"),
          "an empty bucket is refused");
    td_dist_buckets_free(solo);

    td_dist_buckets_free(b);
    free(x);
    free(y);
    double failed = failures;
    td_dist_sum_f64(d, &failed, 1, err, sizeof(err));
    if (rank == 0) printf("%d ranks: %s\n", ranks, failed == 0 ? "all passed" : "FAILED");
    td_dist_finalize(d);
    return failed == 0 ? 0 : 1;
}
