#include "optim/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

#ifdef TD_HAVE_MPI
#include <mpi.h>
#endif

struct td_dist {
    int rank, size;
    int mpi; /* MPI_Init was called */
    float *scratch;
    size_t scratch_n;
};

int td_dist_available(void)
{
#ifdef TD_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* Started by mpirun (Open MPI) or another PMI launcher. A plain process
 * stays single: MPI's singleton start-up is slow and needs no sharing. */
static int launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

enum td_status td_dist_init(struct td_dist **out, char *err, size_t errlen)
{
    struct td_dist *d = calloc(1, sizeof(*d));
    if (!d) return td_io_errf(TD_ERR_NOMEM, err, errlen, "dist: out of memory");
    d->size = 1;
    if (launched_by_mpi()) {
#ifdef TD_HAVE_MPI
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(d);
            return td_io_errf(TD_ERR_BACKEND, err, errlen, "dist: MPI_Init failed");
        }
        d->mpi = 1;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
#else
        free(d);
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "dist: started by an MPI launcher, but this Tandem was built without "
                          "MPI (meson option mpi)");
#endif
    }
    *out = d;
    return TD_OK;
}

void td_dist_finalize(struct td_dist *d)
{
    if (!d) return;
#ifdef TD_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    free(d->scratch);
    free(d);
}

int td_dist_rank(const struct td_dist *d)
{
    return d ? d->rank : 0;
}

int td_dist_size(const struct td_dist *d)
{
    return d ? d->size : 1;
}

#ifdef TD_HAVE_MPI
/* Chunk c of n elements split in `size` near-equal parts. */
static void chunk(size_t n, int size, int c, size_t *first, size_t *count)
{
    *first = n * (size_t)c / (size_t)size;
    *count = n * (size_t)(c + 1) / (size_t)size - *first;
}

static enum td_status mpi_fail(int rc, const char *what, char *err, size_t errlen)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return td_io_errf(TD_ERR_BACKEND, err, errlen, "dist: %s failed: %s (did a rank die?)", what,
                      msg);
}

/* Ring all-reduce: a reduce-scatter in which rank r adds the chunk rank
 * r - 1 passes it, then an all-gather of the summed chunks. Chunk c is
 * summed as x_{c+N-1} + (... + (x_{c+1} + x_c)) whatever the timing. */
static enum td_status ring_sum(struct td_dist *d, float *x, size_t n, char *err, size_t errlen)
{
    int r = d->rank, N = d->size, next = (r + 1) % N, prev = (r + N - 1) % N;
    size_t most = n / (size_t)N + 1;
    if (d->scratch_n < most) {
        float *s = realloc(d->scratch, most * sizeof(float));
        if (!s) return td_io_errf(TD_ERR_NOMEM, err, errlen, "dist: out of memory");
        d->scratch = s;
        d->scratch_n = most;
    }
    for (int s = 0; s < N - 1; s++) {
        size_t so, sc, ro, rc_;
        chunk(n, N, (r - s + N) % N, &so, &sc);
        chunk(n, N, (r - s - 1 + 2 * N) % N, &ro, &rc_);
        int rc = MPI_Sendrecv(x + so, (int)sc, MPI_FLOAT, next, 0, d->scratch, (int)rc_, MPI_FLOAT,
                              prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "reduce-scatter", err, errlen);
        for (size_t i = 0; i < rc_; i++) x[ro + i] += d->scratch[i];
    }
    for (int s = 0; s < N - 1; s++) {
        size_t so, sc, ro, rc_;
        chunk(n, N, (r + 1 - s + N) % N, &so, &sc);
        chunk(n, N, (r - s + N) % N, &ro, &rc_);
        int rc = MPI_Sendrecv(x + so, (int)sc, MPI_FLOAT, next, 1, x + ro, (int)rc_, MPI_FLOAT,
                              prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-gather", err, errlen);
    }
    return TD_OK;
}
#endif

enum td_status td_dist_sum_f32(struct td_dist *d, float *x, size_t n, char *err, size_t errlen)
{
    if (!d || d->size == 1 || n == 0) return TD_OK;
#ifdef TD_HAVE_MPI
    return ring_sum(d, x, n, err, errlen);
#else
    (void)x, (void)err, (void)errlen;
    return TD_OK;
#endif
}

enum td_status td_dist_gather_u64(struct td_dist *d, uint64_t v, uint64_t *all, char *err,
                                  size_t errlen)
{
    if (!d || d->size == 1) {
        all[0] = v;
        return TD_OK;
    }
#ifdef TD_HAVE_MPI
    int rc = MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? TD_OK : mpi_fail(rc, "all-gather", err, errlen);
#else
    (void)err, (void)errlen;
    all[0] = v;
    return TD_OK;
#endif
}

enum td_status td_dist_sum_f64(struct td_dist *d, double *x, int n, char *err, size_t errlen)
{
    if (!d || d->size == 1) return TD_OK;
    if (n < 1 || n > 8) return td_io_errf(TD_ERR_ARG, err, errlen, "dist: %d values", n);
#ifdef TD_HAVE_MPI
    double all[8 * 64], local[8];
    if (d->size > 64) return td_io_errf(TD_ERR_ARG, err, errlen, "dist: more than 64 ranks");
    memcpy(local, x, (size_t)n * sizeof(double));
    int rc = MPI_Allgather(local, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-gather", err, errlen);
    for (int i = 0; i < n; i++) {
        x[i] = 0;
        for (int r = 0; r < d->size; r++) x[i] += all[r * n + i];
    }
    return TD_OK;
#else
    (void)x, (void)err, (void)errlen;
    return TD_OK;
#endif
}
