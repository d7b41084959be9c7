#include "optim/lanczos.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/rng.h"
#include "io/ioutil.h"

void td_lanczos_result_free(struct td_lanczos_result *r)
{
    free(r->values);
    free(r->residuals);
    free(r->vectors);
    memset(r, 0, sizeof(*r));
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* w -= Q Q^T w over the first j basis vectors, twice (classical
 * Gram-Schmidt needs the second pass to stay orthogonal in floating point). */
static void reorthogonalise(const double *Q, int j, size_t n, double *w, double *c)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < j; i++) c[i] = dot(Q + (size_t)i * n, w, n);
        for (int i = 0; i < j; i++) {
            const double *q = Q + (size_t)i * n;
            for (size_t e = 0; e < n; e++) w[e] -= c[i] * q[e];
        }
    }
}

/* out = A q in double, through the float product. */
static enum td_status apply(td_matvec_fn mv, void *ctx, const double *q, float *vf, float *of,
                            double *out, size_t n)
{
    for (size_t e = 0; e < n; e++) vf[e] = (float)q[e];
    enum td_status st = mv(ctx, vf, of);
    for (size_t e = 0; st == TD_OK && e < n; e++) out[e] = of[e];
    return st;
}

enum td_status td_lanczos(td_matvec_fn mv, void *ctx, size_t n, int steps, int k, uint64_t seed,
                          int want_vectors, int true_residuals, struct td_lanczos_result *r,
                          char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (n < 1 || k < 1 || steps < k)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "lanczos: need n >= 1 and steps (%d) >= k (%d) >= 1", steps, k);
    if ((size_t)steps > n) steps = (int)n;
    if (k > steps) k = steps;
    double *Q = td_alloc_large((size_t)(steps + 1) * n * sizeof(double));
    double *w = malloc(n * sizeof(double)), *c = malloc((size_t)(steps + 1) * sizeof(double));
    double *alpha = malloc((size_t)steps * sizeof(double));
    double *beta = malloc((size_t)(steps + 1) * sizeof(double));
    float *vf = malloc(n * sizeof(float)), *of = malloc(n * sizeof(float));
    enum td_status st = TD_OK;
    double *d = NULL, *e = NULL, *z = NULL;
    if (!Q || !w || !c || !alpha || !beta || !vf || !of) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "lanczos: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        Q[i] = td_rng_normal(seed, TD_RNG_STREAM_TRACE + (1ull << 59), i);
    double q0 = sqrt(dot(Q, Q, n));
    for (size_t i = 0; i < n; i++) Q[i] /= q0;
    int m = 0;
    double scale = 0;
    for (int j = 0; j < steps; j++) {
        double *q = Q + (size_t)j * n;
        st = apply(mv, ctx, q, vf, of, w, n);
        if (st != TD_OK) {
            td_io_errf(st, err, errlen, "lanczos: the product failed at step %d", j + 1);
            goto done;
        }
        alpha[j] = dot(q, w, n);
        reorthogonalise(Q, j + 1, n, w, c);
        beta[j] = sqrt(dot(w, w, n));
        m = j + 1;
        scale = fmax(scale, fabs(alpha[j]) + beta[j]);
        /* The Krylov space closed: T's eigenvalues are A's on it. */
        if (beta[j] <= 1e-10 * scale) break;
        double *next = Q + (size_t)(j + 1) * n;
        for (size_t i = 0; i < n; i++) next[i] = w[i] / beta[j];
    }
    if (k > m) k = m;
    d = malloc((size_t)m * sizeof(double));
    e = malloc((size_t)m * sizeof(double));
    z = malloc((size_t)m * (size_t)m * sizeof(double));
    r->values = malloc((size_t)k * sizeof(double));
    r->residuals = malloc((size_t)k * sizeof(double));
    r->vectors = want_vectors ? td_alloc_large((size_t)k * n * sizeof(float)) : NULL;
    if (!d || !e || !z || !r->values || !r->residuals || (want_vectors && !r->vectors)) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "lanczos: out of memory");
        goto done;
    }
    memcpy(d, alpha, (size_t)m * sizeof(double));
    memcpy(e, beta, (size_t)m * sizeof(double));
    lapack_int info = LAPACKE_dstev(LAPACK_ROW_MAJOR, 'V', (lapack_int)m, d, e, z, (lapack_int)m);
    if (info != 0) {
        st = td_io_errf(TD_ERR_BACKEND, err, errlen, "lanczos: dstev failed (%d)", (int)info);
        goto done;
    }
    r->k = k;
    r->steps = m;
    r->smallest = d[0];
    for (int i = 0; i < k; i++) {
        int col = m - 1 - i; /* dstev sorts ascending */
        r->values[i] = d[col];
        r->residuals[i] = fabs(beta[m - 1] * z[(size_t)(m - 1) * m + col]);
        if (!want_vectors && !true_residuals) continue;
        /* u = Q s, accumulated in w. */
        memset(w, 0, n * sizeof(double));
        for (int j = 0; j < m; j++) {
            const double s = z[(size_t)j * m + col], *q = Q + (size_t)j * n;
            for (size_t x = 0; x < n; x++) w[x] += s * q[x];
        }
        if (want_vectors)
            for (size_t x = 0; x < n; x++) r->vectors[(size_t)i * n + x] = (float)w[x];
        if (true_residuals) {
            double *au = Q + (size_t)m * n; /* the spare basis slot */
            st = apply(mv, ctx, w, vf, of, au, n);
            if (st != TD_OK) {
                td_io_errf(st, err, errlen, "lanczos: the product failed for a residual");
                goto done;
            }
            double res = 0;
            for (size_t x = 0; x < n; x++) res += pow(au[x] - d[col] * w[x], 2);
            r->residuals[i] = sqrt(res);
        }
    }
done:
    free(Q), free(w), free(c), free(alpha), free(beta), free(vf), free(of), free(d), free(e),
        free(z);
    if (st != TD_OK) td_lanczos_result_free(r);
    return st;
}

enum td_status td_hutchinson_trace(td_matvec_fn mv, void *ctx, size_t n, int probes, uint64_t seed,
                                   double *mean, double *ci95, char *err, size_t errlen)
{
    if (probes < 1 || n < 1)
        return td_io_errf(TD_ERR_ARG, err, errlen, "hutchinson: need probes >= 1 and n >= 1");
    float *z = malloc(n * sizeof(float)), *az = malloc(n * sizeof(float));
    if (!z || !az) {
        free(z), free(az);
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "hutchinson: out of memory");
    }
    double sum = 0, sumsq = 0;
    enum td_status st = TD_OK;
    for (int i = 0; i < probes && st == TD_OK; i++) {
        for (size_t e = 0; e < n; e++)
            z[e] = td_rng_sign(seed, TD_RNG_STREAM_TRACE + (uint64_t)i, e);
        st = mv(ctx, z, az);
        if (st != TD_OK) {
            td_io_errf(st, err, errlen, "hutchinson: the product failed for probe %d", i + 1);
            break;
        }
        double q = 0;
        for (size_t e = 0; e < n; e++) q += (double)z[e] * az[e];
        sum += q;
        sumsq += q * q;
    }
    if (st == TD_OK) {
        *mean = sum / probes;
        double var = probes > 1 ? (sumsq - probes * *mean * *mean) / (probes - 1) : NAN;
        *ci95 = 1.96 * sqrt(fmax(var, 0) / probes);
    }
    free(z), free(az);
    return st;
}
