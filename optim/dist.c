#include "optim/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

#ifdef TD_HAVE_MPI
#include <mpi.h>
#endif

struct td_dist {
    int rank, size;
    int mpi;                     /* MPI_Init was called */
    struct td_dist_buckets *sum; /* td_dist_sum_f32's single bucket */
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
    td_dist_buckets_free(d->sum);
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

/* Ring all-reduce per bucket: a reduce-scatter in which rank r adds the
 * chunk rank r - 1 passes it, then an all-gather of the summed chunks, as
 * 2(N - 1) non-blocking message pairs. Chunk c of a bucket is summed as
 * x_{c+N-1} + (... + (x_{c+1} + x_c)) whatever the timing. Bucket i's
 * messages carry tag i; MPI keeps messages of one tag and sender in order,
 * so successive ring steps and successive sums cannot be confused. */
struct td_dist_buckets {
    struct td_dist *d;
    int n;
    size_t *ends;
    size_t *scratch_at; /* per bucket, into scratch: its largest chunk */
    float *scratch;
    int *step; /* per bucket: -1 not ready, then ring steps done up to 2(N - 1) */
    float *x;  /* the buffer being summed, NULL between sums */
#ifdef TD_HAVE_MPI
    MPI_Request *req; /* per bucket: receive, send */
#endif
};

void td_dist_buckets_free(struct td_dist_buckets *b)
{
    if (!b) return;
    free(b->ends);
    free(b->scratch_at);
    free(b->scratch);
    free(b->step);
#ifdef TD_HAVE_MPI
    free(b->req);
#endif
    free(b);
}

static int ranks_of(const struct td_dist_buckets *b)
{
    return b->d ? b->d->size : 1;
}

struct td_dist_buckets *td_dist_buckets_new(struct td_dist *d, const size_t *ends, int n_buckets,
                                            char *err, size_t errlen)
{
    if (n_buckets < 1 || n_buckets > 32767) {
        td_io_errf(TD_ERR_ARG, err, errlen, "dist: %d buckets (1 to 32767)", n_buckets);
        return NULL;
    }
    for (int i = 0; i < n_buckets; i++)
        if (ends[i] <= (i ? ends[i - 1] : 0) || ends[i] - (i ? ends[i - 1] : 0) > (size_t)INT_MAX) {
            td_io_errf(TD_ERR_ARG, err, errlen, "dist: bucket %d is empty or too large", i);
            return NULL;
        }
    struct td_dist_buckets *b = calloc(1, sizeof(*b));
    size_t n = (size_t)n_buckets;
    if (b) {
        b->d = d;
        b->n = n_buckets;
        b->ends = malloc(n * sizeof(*b->ends));
        b->scratch_at = malloc(n * sizeof(*b->scratch_at));
        b->step = malloc(n * sizeof(*b->step));
#ifdef TD_HAVE_MPI
        b->req = malloc(2 * n * sizeof(*b->req));
#endif
    }
    if (!b || !b->ends || !b->scratch_at || !b->step
#ifdef TD_HAVE_MPI
        || !b->req
#endif
    ) {
        td_dist_buckets_free(b);
        td_io_errf(TD_ERR_NOMEM, err, errlen, "dist: out of memory");
        return NULL;
    }
    size_t scratch = 0;
    for (int i = 0; i < n_buckets; i++) {
        b->ends[i] = ends[i];
        b->scratch_at[i] = scratch;
        b->step[i] = -1;
        scratch += (ends[i] - (i ? ends[i - 1] : 0)) / (size_t)ranks_of(b) + 1;
    }
    if (ranks_of(b) > 1 && !(b->scratch = malloc(scratch * sizeof(float)))) {
        td_dist_buckets_free(b);
        td_io_errf(TD_ERR_NOMEM, err, errlen, "dist: out of memory");
        return NULL;
    }
    return b;
}

enum td_status td_dist_buckets_start(struct td_dist_buckets *b, float *x, char *err, size_t errlen)
{
    if (b->x)
        return td_io_errf(TD_ERR_STATE, err, errlen, "dist: the previous sum was not finished");
    b->x = x;
    for (int i = 0; i < b->n; i++) b->step[i] = -1;
    return TD_OK;
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

/* Where ring step s of bucket i sends from and receives into. The first
 * N - 1 steps receive into scratch (to be added), the rest in place. */
static void ring_step(const struct td_dist_buckets *b, int i, int s, size_t *so, size_t *sc,
                      size_t *ro, size_t *rc)
{
    int r = b->d->rank, N = b->d->size;
    size_t first = i ? b->ends[i - 1] : 0, n = b->ends[i] - first;
    if (s < N - 1) {
        chunk(n, N, (r - s + N) % N, so, sc);
        chunk(n, N, (r - s - 1 + 2 * N) % N, ro, rc);
    } else {
        s -= N - 1;
        chunk(n, N, (r + 1 - s + N) % N, so, sc);
        chunk(n, N, (r - s + N) % N, ro, rc);
    }
    *so += first;
    *ro += first;
}

static enum td_status post(struct td_dist_buckets *b, int i, char *err, size_t errlen)
{
    int N = b->d->size, s = b->step[i];
    size_t so, sc, ro, rc_;
    ring_step(b, i, s, &so, &sc, &ro, &rc_);
    float *into = s < N - 1 ? b->scratch + b->scratch_at[i] : b->x + ro;
    int rc = MPI_Irecv(into, (int)rc_, MPI_FLOAT, (b->d->rank + N - 1) % N, i, MPI_COMM_WORLD,
                       &b->req[2 * i]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Isend(b->x + so, (int)sc, MPI_FLOAT, (b->d->rank + 1) % N, i, MPI_COMM_WORLD,
                       &b->req[2 * i + 1]);
    return rc == MPI_SUCCESS ? TD_OK : mpi_fail(rc, "a send or receive", err, errlen);
}

/* Completes bucket i's ring steps whose messages have arrived (wait = 0) or
 * all of them (wait = 1). */
static enum td_status advance(struct td_dist_buckets *b, int i, int wait, char *err, size_t errlen)
{
    int N = b->d->size, total = 2 * (N - 1);
    while (b->step[i] >= 0 && b->step[i] < total) {
        int flag = 1, rc = wait ? MPI_Waitall(2, b->req + 2 * i, MPI_STATUSES_IGNORE)
                                : MPI_Testall(2, b->req + 2 * i, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "the gradient sum", err, errlen);
        if (!flag) return TD_OK;
        int s = b->step[i];
        if (s < N - 1) {
            size_t so, sc, ro, rc_;
            ring_step(b, i, s, &so, &sc, &ro, &rc_);
            const float *in = b->scratch + b->scratch_at[i];
            float *x = b->x + ro;
            for (size_t k = 0; k < rc_; k++) x[k] += in[k];
        }
        if (++b->step[i] == total) return TD_OK;
        enum td_status st = post(b, i, err, errlen);
        if (st != TD_OK) return st;
    }
    return TD_OK;
}
#endif

enum td_status td_dist_buckets_ready(struct td_dist_buckets *b, int i, char *err, size_t errlen)
{
    if (!b->x) return td_io_errf(TD_ERR_STATE, err, errlen, "dist: no sum was started");
    if (i < 0 || i >= b->n || b->step[i] >= 0)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "dist: bucket %d is out of range or was "
                          "already made ready",
                          i);
    b->step[i] = 0;
    if (ranks_of(b) == 1) return TD_OK;
#ifdef TD_HAVE_MPI
    enum td_status st = post(b, i, err, errlen);
    return st == TD_OK ? advance(b, i, 0, err, errlen) : st;
#else
    return TD_OK;
#endif
}

/* Moves every started bucket on: as far as arrived messages allow (wait =
 * 0) or to its end (wait = 1). */
static enum td_status advance_all(struct td_dist_buckets *b, int wait, char *err, size_t errlen)
{
#ifdef TD_HAVE_MPI
    if (ranks_of(b) > 1)
        for (int i = 0; i < b->n; i++) {
            enum td_status st = advance(b, i, wait, err, errlen);
            if (st != TD_OK) return st;
        }
#else
    (void)b, (void)wait, (void)err, (void)errlen;
#endif
    return TD_OK;
}

enum td_status td_dist_buckets_progress(struct td_dist_buckets *b, char *err, size_t errlen)
{
    return b->x ? advance_all(b, 0, err, errlen) : TD_OK;
}

enum td_status td_dist_buckets_finish(struct td_dist_buckets *b, char *err, size_t errlen)
{
    if (!b->x) return td_io_errf(TD_ERR_STATE, err, errlen, "dist: no sum was started");
    for (int i = 0; i < b->n; i++)
        if (b->step[i] < 0)
            return td_io_errf(TD_ERR_STATE, err, errlen, "dist: bucket %d was never made ready", i);
    enum td_status st = advance_all(b, 1, err, errlen);
    if (st == TD_OK) b->x = NULL;
    return st;
}

enum td_status td_dist_sum_f32(struct td_dist *d, float *x, size_t n, char *err, size_t errlen)
{
    if (!d || d->size == 1 || n == 0) return TD_OK;
    if (!d->sum || d->sum->ends[0] != n) {
        td_dist_buckets_free(d->sum);
        d->sum = td_dist_buckets_new(d, &n, 1, err, errlen);
        if (!d->sum) return TD_ERR_NOMEM;
    }
    enum td_status st = td_dist_buckets_start(d->sum, x, err, errlen);
    if (st == TD_OK) st = td_dist_buckets_ready(d->sum, 0, err, errlen);
    if (st == TD_OK) st = td_dist_buckets_finish(d->sum, err, errlen);
    return st;
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
