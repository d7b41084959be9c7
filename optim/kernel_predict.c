#include "optim/kernel_predict.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "io/ioutil.h"

struct td_kpredict {
    int64_t n, K, dim; /* dim: the kernel's order, n K (full) or n (scalar) */
    int full;
    double *chol;  /* Cholesky factor of Theta + reg (lower, row-major) */
    double *theta; /* the kernel, kept for the eigendecomposition */
    double *evec, *eval;
    double *r; /* f0 - y, [n, K]: full: one right-hand side of n K; scalar: K of n */
    double *y;
    double *w; /* coefficients for the last time asked, [n, K] */
};

void td_kpredict_free(struct td_kpredict *p)
{
    if (!p) return;
    free(p->chol), free(p->theta), free(p->evec), free(p->eval), free(p->r), free(p->y), free(p->w);
    free(p);
}

struct td_kpredict *td_kpredict_new(const double *theta, int64_t n, int64_t K, int full,
                                    const double *f0, const double *y, double reg, char *err,
                                    size_t errlen)
{
    if (!theta || !f0 || !y || n < 1 || K < 1 || !(reg >= 0)) {
        td_io_errf(TD_ERR_ARG, err, errlen, "kernel predictions: bad argument");
        return NULL;
    }
    struct td_kpredict *p = calloc(1, sizeof(*p));
    if (!p) goto nomem;
    p->n = n, p->K = K, p->full = full != 0;
    p->dim = full ? n * K : n;
    size_t dd = (size_t)(p->dim * p->dim);
    p->chol = td_alloc_large(dd * sizeof(double));
    p->theta = td_alloc_large(dd * sizeof(double));
    p->r = malloc((size_t)(n * K) * sizeof(double));
    p->y = malloc((size_t)(n * K) * sizeof(double));
    p->w = malloc((size_t)(n * K) * sizeof(double));
    if (!p->chol || !p->theta || !p->r || !p->y || !p->w) goto nomem;
    memcpy(p->theta, theta, dd * sizeof(double));
    memcpy(p->chol, theta, dd * sizeof(double));
    memcpy(p->y, y, (size_t)(n * K) * sizeof(double));
    for (int64_t i = 0; i < n * K; i++) p->r[i] = f0[i] - y[i];
    double tr = 0;
    for (int64_t i = 0; i < p->dim; i++) tr += theta[i * p->dim + i];
    /* Full kernels sum K diagonal entries per sample, scalar ones one. */
    double shift = reg * tr / (double)p->dim;
    for (int64_t i = 0; i < p->dim; i++) p->chol[i * p->dim + i] += shift;
    lapack_int info =
        LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)p->dim, p->chol, (lapack_int)p->dim);
    if (info != 0) {
        td_io_errf(TD_ERR_ARG, err, errlen,
                   "kernel predictions: the train kernel plus %g * mean diagonal is not positive "
                   "definite (dpotrf: leading minor %d); raise the regulariser",
                   reg, (int)info);
        td_kpredict_free(p);
        return NULL;
    }
    return p;
nomem:
    td_io_errf(TD_ERR_NOMEM, err, errlen, "kernel predictions: out of memory");
    td_kpredict_free(p);
    return NULL;
}

static enum td_status eigen(struct td_kpredict *p, char *err, size_t errlen)
{
    if (p->evec) return TD_OK;
    size_t dd = (size_t)(p->dim * p->dim);
    p->evec = td_alloc_large(dd * sizeof(double));
    p->eval = malloc((size_t)p->dim * sizeof(double));
    if (!p->evec || !p->eval) {
        free(p->evec), free(p->eval);
        p->evec = p->eval = NULL;
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "kernel predictions: out of memory");
    }
    memcpy(p->evec, p->theta, dd * sizeof(double));
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)p->dim, p->evec,
                                     (lapack_int)p->dim, p->eval);
    if (info != 0) {
        free(p->evec), free(p->eval);
        p->evec = p->eval = NULL;
        return td_io_errf(TD_ERR_BACKEND, err, errlen,
                          "kernel predictions: the eigendecomposition failed (dsyevd %d)",
                          (int)info);
    }
    return TD_OK;
}

/* w = U diag(g(lambda)) U^T r, for every right-hand side (columns of r
 * viewed as [dim, nrhs]). */
static enum td_status spectral(struct td_kpredict *p, double c, int train, double *w, char *err,
                               size_t errlen)
{
    enum td_status st = eigen(p, err, errlen);
    if (st != TD_OK) return st;
    const int64_t d = p->dim, nrhs = p->full ? 1 : p->K;
    double *t = malloc((size_t)(d * nrhs) * sizeof(double));
    if (!t) return td_io_errf(TD_ERR_NOMEM, err, errlen, "kernel predictions: out of memory");
    /* t = U^T r */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)nrhs, (int)d, 1.0, p->evec,
                (int)d, p->r, (int)nrhs, 0.0, t, (int)nrhs);
    for (int64_t i = 0; i < d; i++) {
        double lam = p->eval[i], g;
        if (train)
            g = exp(-c * lam); /* exp(-c Theta) */
        else
            g = fabs(lam) * c > 1e-12 ? -expm1(-c * lam) / lam : c; /* (1 - e^{-c lam}) / lam */
        for (int64_t j = 0; j < nrhs; j++) t[i * nrhs + j] *= g;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)nrhs, (int)d, 1.0, p->evec,
                (int)d, t, (int)nrhs, 0.0, w, (int)nrhs);
    free(t);
    return TD_OK;
}

enum td_status td_kpredict_test(struct td_kpredict *p, const double *theta_st, int64_t m,
                                const double *f0_test, double eta_t, double *out, char *err,
                                size_t errlen)
{
    const int64_t d = p->dim, nrhs = p->full ? 1 : p->K, K = p->K;
    enum td_status st = TD_OK;
    if (isinf(eta_t)) {
        memcpy(p->w, p->r, (size_t)(p->n * K) * sizeof(double));
        lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, (lapack_int)nrhs,
                                         p->chol, (lapack_int)d, p->w, (lapack_int)nrhs);
        if (info != 0)
            return td_io_errf(TD_ERR_BACKEND, err, errlen, "kernel predictions: dpotrs %d",
                              (int)info);
    } else {
        st = spectral(p, eta_t / (double)p->n, 0, p->w, err, errlen);
        if (st != TD_OK) return st;
    }
    /* out = f0_test - Theta_st w; Theta_st is [m K, d] (full) or [m, d]. */
    memcpy(out, f0_test, (size_t)(m * K) * sizeof(double));
    const int64_t rows = p->full ? m * K : m;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)nrhs, (int)d, -1.0,
                theta_st, (int)d, p->w, (int)nrhs, 1.0, out, (int)nrhs);
    return TD_OK;
}

enum td_status td_kpredict_train(struct td_kpredict *p, double eta_t, double *out, char *err,
                                 size_t errlen)
{
    enum td_status st = spectral(p, eta_t / (double)p->n, 1, out, err, errlen);
    if (st != TD_OK) return st;
    for (int64_t i = 0; i < p->n * p->K; i++) out[i] += p->y[i];
    return TD_OK;
}

void td_kpredict_one_hot(const int32_t *labels, int64_t n, int64_t K, double *y)
{
    memset(y, 0, (size_t)(n * K) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= 0 && labels[i] < K) y[i * K + labels[i]] = 1.0;
}

double td_kpredict_accuracy(const double *pred, const int32_t *labels, int64_t n, int64_t K)
{
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (pred[i * K + k] > pred[i * K + best]) best = k;
        right += best == labels[i];
    }
    return n > 0 ? (double)right / (double)n : NAN;
}
