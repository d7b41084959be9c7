/* Writes a small learnable classification set as HDF5 (x float32 [N, 784],
 * y int32 [N]) for the command-line tests: each class has its own mean
 * pattern plus noise, so a few epochs separate them well.
 *   make_dataset PATH N SEED */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/rng.h"

#define FEATURES 784
#define CLASSES 10

static int write(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                 const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(space);
    return st >= 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: make_dataset PATH N SEED\n");
        return 2;
    }
    long n = atol(argv[2]);
    uint64_t seed = (uint64_t)atol(argv[3]);
    float *x = malloc((size_t)n * FEATURES * sizeof(float));
    int *y = malloc((size_t)n * sizeof(int));
    if (!x || !y || n < 1) return 1;
    for (long i = 0; i < n; i++) {
        y[i] = (int)(td_rng_u64(seed, 0, (uint64_t)i) % CLASSES);
        for (int j = 0; j < FEATURES; j++) {
            /* Class c lights up its own band of features; the band pattern is fixed (seed 99). */
            float mean = td_rng_uniform(99, (uint64_t)y[i], (uint64_t)j) < 0.2f ? 0.6f : 0.1f;
            float v = mean + 0.3f * td_rng_normal(seed, 1 + (uint64_t)i, (uint64_t)j);
            x[i * FEATURES + j] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    hsize_t dx[2] = {(hsize_t)n, FEATURES}, dy[1] = {(hsize_t)n};
    int ok = write(f, "x", H5T_NATIVE_FLOAT, 2, dx, x) && write(f, "y", H5T_NATIVE_INT, 1, dy, y);
    H5Fclose(f);
    free(x), free(y);
    return ok ? 0 : 1;
}
