/* io/: IDX reader, HDF5 datasets, the minibatch iterator, weights export and
 * import, checkpoints. Every file read here is written by the test itself
 * (plain bytes, zlib or the HDF5 C API), so expected values come from the
 * bytes written, never from the code under test. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <hdf5.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "graph/graph.h"
#include "graph/rng.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/h5data.h"
#include "io/h5util.h"
#include "io/idx.h"
#include "io/seal.h"
#include "io/text.h"
#include "io/text_h5.h"
#include "io/weights.h"
#include "testutil.h"

/* ---- scratch files: one directory per run, removed at exit ---- */

#define MAX_FILES 128
static char tmp_dir[64];
static char *made[MAX_FILES];
static int n_made;

/* A path in the scratch directory; remembered so it is removed at exit. */
static const char *tpath(const char *name)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s/%s", tmp_dir, name);
    for (int i = 0; i < n_made; i++)
        if (!strcmp(made[i], buf)) return made[i];
    ck_assert_int_lt(n_made, MAX_FILES);
    made[n_made] = strdup(buf);
    return made[n_made++];
}

static void cleanup(void)
{
    for (int i = 0; i < n_made; i++) {
        unlink(made[i]);
        free(made[i]);
    }
    rmdir(tmp_dir);
}

static void write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        if (n) ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static size_t file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return (size_t)n;
}

static void assert_msg_has(const char *msg, const char *part)
{
    ck_assert_msg(strstr(msg, part) != NULL, "message \"%s\" lacks \"%s\"", msg, part);
}

/* ---- IDX ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX file: magic, ndims big-endian dims, then `payload` bytes of data. */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const unsigned char *data, size_t payload)
{
    size_t hdr = 4 + 4 * (size_t)ndims;
    unsigned char *buf = malloc(hdr + payload + 1);
    put_be32(buf, magic);
    for (int i = 0; i < ndims; i++) put_be32(buf + 4 + 4 * i, dims[i]);
    memcpy(buf + hdr, data, payload);
    write_bytes(path, buf, hdr + payload, gz);
    free(buf);
}

enum { IMG_N = 5, IMG_R = 3, IMG_C = 4 };
static unsigned char img_bytes[IMG_N * IMG_R * IMG_C];
static const unsigned char lab_bytes[IMG_N] = {0, 3, 1, 2, 3};

static void make_images(const char *path, int gz, int n_header, size_t payload_images)
{
    for (size_t i = 0; i < sizeof(img_bytes); i++)
        img_bytes[i] = (unsigned char)((i * 37 + 11) % 256);
    uint32_t dims[3] = {(uint32_t)n_header, IMG_R, IMG_C};
    write_idx(path, gz, 0x803, dims, 3, img_bytes, payload_images * IMG_R * IMG_C);
}

static void make_labels(const char *path, int gz, int n_header, size_t payload)
{
    uint32_t dim = (uint32_t)n_header;
    write_idx(path, gz, 0x801, &dim, 1, lab_bytes, payload);
}

static void check_idx_round_trip(int gz_images, int gz_labels)
{
    const char *ip = tpath(gz_images ? "rt-images.gz" : "rt-images");
    const char *lp = tpath(gz_labels ? "rt-labels.gz" : "rt-labels");
    make_images(ip, gz_images, IMG_N, IMG_N);
    make_labels(lp, gz_labels, IMG_N, IMG_N);
    struct td_dataset d;
    char err[512] = "";
    ck_assert_msg(td_idx_load(ip, lp, &d, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(d.n, IMG_N);
    ck_assert_int_eq(d.sample_shape.rank, 2);
    ck_assert_int_eq(d.sample_shape.dim[0], IMG_R);
    ck_assert_int_eq(d.sample_shape.dim[1], IMG_C);
    ck_assert_int_eq(d.classes, 4);
    for (size_t i = 0; i < sizeof(img_bytes); i++)
        ck_assert_msg(td_dataset_value(&d, (int64_t)i) == (float)img_bytes[i] / 255.0f,
                      "pixel %zu: %g", i, td_dataset_value(&d, (int64_t)i));
    /* Kept as bytes: a quarter of the memory of floats. */
    ck_assert_ptr_null(d.x);
    ck_assert_mem_eq(d.pixels, img_bytes, sizeof(img_bytes));
    for (int i = 0; i < IMG_N; i++) ck_assert_int_eq(d.y[i], lab_bytes[i]);
    td_dataset_free(&d);
    ck_assert_ptr_null(d.pixels);
    ck_assert_int_eq(d.n, 0);
}

START_TEST(idx_round_trip)
{
    check_idx_round_trip(1, 1);
    check_idx_round_trip(0, 0);
    check_idx_round_trip(1, 0);
}
END_TEST

/* Loads and expects failure: status, zeroed dataset, message parts. */
static void expect_idx_error(const char *ip, const char *lp, enum td_status want, const char *p1,
                             const char *p2)
{
    struct td_dataset d;
    char err[512] = "";
    enum td_status st = td_idx_load(ip, lp, &d, err, sizeof(err));
    ck_assert_msg(st == want, "status %s, expected %s (%s)", td_status_name(st),
                  td_status_name(want), err);
    ck_assert_ptr_null(d.x);
    ck_assert_ptr_null(d.pixels);
    ck_assert_ptr_null(d.y);
    if (p1) assert_msg_has(err, p1);
    if (p2) assert_msg_has(err, p2);
}

/* Writes bytes into a FIFO from another thread. */
struct fifo_feed {
    const char *path;
    unsigned char bytes[512];
    size_t n;
};

static void *feed_fifo(void *arg)
{
    struct fifo_feed *f = arg;
    FILE *out = fopen(f->path, "wb");
    if (out) {
        fwrite(f->bytes, 1, f->n, out);
        fclose(out);
    }
    return NULL;
}

START_TEST(idx_bad_inputs)
{
    const char *good_i = tpath("good-images.gz"), *good_l = tpath("good-labels.gz");
    make_images(good_i, 1, IMG_N, IMG_N);
    make_labels(good_l, 1, IMG_N, IMG_N);

    /* A labels file where images are expected. */
    expect_idx_error(good_l, good_l, TD_ERR_FORMAT, good_l, "0x00000801 is not 0x00000803");
    expect_idx_error(good_i, good_i, TD_ERR_FORMAT, good_i, "0x00000803 is not 0x00000801");

    /* 3 of 5 images present: 36 of 60 bytes. */
    for (int gz = 0; gz <= 1; gz++) {
        const char *p = tpath(gz ? "short-images.gz" : "short-images");
        make_images(p, gz, IMG_N, 3);
        expect_idx_error(p, good_l, TD_ERR_FORMAT, p, "expected 60 bytes");
        expect_idx_error(p, good_l, TD_ERR_FORMAT, "found 36", NULL);
    }

    const char *sl = tpath("short-labels");
    make_labels(sl, 0, IMG_N, 2);
    expect_idx_error(good_i, sl, TD_ERR_FORMAT, sl, "expected 5 labels, found 2");

    const char *hdr = tpath("short-header");
    unsigned char half[6] = {0, 0, 8, 3, 0, 0};
    write_bytes(hdr, half, sizeof(half), 0);
    expect_idx_error(hdr, good_l, TD_ERR_FORMAT, hdr, "expected 16 bytes, found 6");

    /* A header claiming 2^32 - 1 images is refused before any allocation. */
    for (int gz = 0; gz <= 1; gz++) {
        const char *p = tpath(gz ? "huge-images.gz" : "huge-images");
        const char *l = tpath(gz ? "huge-labels.gz" : "huge-labels");
        uint32_t huge[3] = {0xffffffffu, 28, 28};
        write_idx(p, gz, 0x803, huge, 3, img_bytes, sizeof(img_bytes));
        write_idx(l, gz, 0x801, huge, 1, lab_bytes, sizeof(lab_bytes));
        expect_idx_error(p, l, TD_ERR_FORMAT, p, "expected 3367254359280 bytes of pixels");
        expect_idx_error(p, l, TD_ERR_FORMAT, gz ? "more than a gzip file of" : "found 60", NULL);
        expect_idx_error(good_i, l, TD_ERR_FORMAT, "5 images", "4294967295 labels");
    }

    /* Through a pipe the size is unknown: no bound, the data is read. */
    struct fifo_feed feed = {tpath("images-fifo"), {0}, 0};
    const char *src = tpath("fifo-src.gz");
    make_images(src, 1, IMG_N, IMG_N);
    FILE *in = fopen(src, "rb");
    feed.n = fread(feed.bytes, 1, sizeof(feed.bytes), in);
    fclose(in);
    ck_assert_int_eq(mkfifo(feed.path, 0600), 0);
    pthread_t writer;
    ck_assert_int_eq(pthread_create(&writer, NULL, feed_fifo, &feed), 0);
    struct td_dataset d;
    char err[512] = "";
    enum td_status fst = td_idx_load(feed.path, good_l, &d, err, sizeof(err));
    pthread_join(writer, NULL);
    ck_assert_msg(fst == TD_OK, "%s", err);
    ck_assert_int_eq(d.n, IMG_N);
    td_dataset_free(&d);

    const char *fewer = tpath("four-labels.gz");
    make_labels(fewer, 1, 4, 4);
    expect_idx_error(good_i, fewer, TD_ERR_FORMAT, "5 images", "4 labels");

    const char *missing = tpath("no-such-file.gz");
    expect_idx_error(missing, good_l, TD_ERR_IO, missing, NULL);
    expect_idx_error(good_i, missing, TD_ERR_IO, missing, NULL);

    /* A gzip stream cut in the middle. */
    const char *big = tpath("big-images.gz"), *cut = tpath("cut-images.gz");
    enum { BN = 2000 };
    unsigned char *px = malloc((size_t)BN * 28 * 28);
    for (size_t i = 0; i < (size_t)BN * 28 * 28; i++) px[i] = (unsigned char)td_rng_u64(1, 0, i);
    uint32_t dims[3] = {BN, 28, 28};
    write_idx(big, 1, 0x803, dims, 3, px, (size_t)BN * 28 * 28);
    free(px);
    size_t n = file_size(big);
    FILE *f = fopen(big, "rb");
    unsigned char *gzb = malloc(n);
    ck_assert_uint_eq(fread(gzb, 1, n, f), n);
    fclose(f);
    write_bytes(cut, gzb, n / 2, 0);
    free(gzb);
    const char *bl = tpath("big-labels");
    unsigned char *lb = calloc(BN, 1);
    uint32_t ldim = BN;
    write_idx(bl, 0, 0x801, &ldim, 1, lb, BN);
    free(lb);
    expect_idx_error(cut, bl, TD_ERR_FORMAT, cut, NULL);
}
END_TEST

START_TEST(fashion_mnist_missing_dir)
{
    struct td_dataset d;
    char err[512] = "";
    const char *dir = tpath("no-fashion-here");
    ck_assert_int_eq(td_dataset_load_fashion_mnist(dir, 1, &d, err, sizeof(err)), TD_ERR_IO);
    assert_msg_has(err, "apt-get install dataset-fashion-mnist");
    assert_msg_has(err, dir);
}
END_TEST

START_TEST(fashion_mnist_installed)
{
    if (access(TD_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) != 0) {
        printf("fashion_mnist_installed: %s not installed, nothing to check\n",
               TD_FASHION_MNIST_DIR);
        return;
    }
    struct td_dataset d;
    char err[512] = "";
    ck_assert_msg(td_dataset_load_fashion_mnist(NULL, 0, &d, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(d.n, 10000);
    ck_assert_int_eq(d.sample_shape.rank, 2);
    ck_assert_int_eq(d.sample_shape.dim[0], 28);
    ck_assert_int_eq(d.sample_shape.dim[1], 28);
    ck_assert_int_eq(d.classes, 10);
    /* The test split is balanced: 1000 of each class. */
    int count[10] = {0};
    for (int64_t i = 0; i < d.n; i++) count[d.y[i]]++;
    for (int c = 0; c < 10; c++) ck_assert_int_eq(count[c], 1000);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < d.n * 784; i++) {
        float v = td_dataset_value(&d, i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    ck_assert(lo == 0.0f && hi == 1.0f);
    td_dataset_free(&d);
}
END_TEST

/* ---- HDF5 datasets ---- */

static hid_t h5_new(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    return f;
}

/* Writes dataset name (rank dims) of file type ft from memory type mt. */
static void h5_put(hid_t loc, const char *name, hid_t ft, hid_t mt, int rank, const hsize_t *dims,
                   const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, ft, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    ck_assert_int_ge(H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
}

START_TEST(h5data_good)
{
    const char *p = tpath("data-f32.h5");
    float x[4 * 2 * 3];
    int16_t y[4] = {2, 0, 6, 1};
    for (int i = 0; i < 24; i++) x[i] = 0.25f * (float)i - 1.0f;
    hsize_t xd[3] = {4, 2, 3}, yd[1] = {4};
    hid_t f = h5_new(p);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, xd, x);
    h5_put(f, "y", H5T_STD_I16BE, H5T_NATIVE_INT16, 1, yd, y);
    H5Fclose(f);
    struct td_dataset d;
    char err[512] = "";
    ck_assert_msg(td_h5data_load(p, &d, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(d.n, 4);
    ck_assert_int_eq(d.sample_shape.rank, 2);
    ck_assert_int_eq(d.sample_shape.dim[0], 2);
    ck_assert_int_eq(d.sample_shape.dim[1], 3);
    ck_assert_int_eq(d.classes, 7);
    ck_assert_mem_eq(d.x, x, sizeof(x));
    for (int i = 0; i < 4; i++) ck_assert_int_eq(d.y[i], y[i]);
    td_dataset_free(&d);

    /* uint8 pixels scaled to [0, 1]; uint64 labels; float64 converted. */
    const char *p8 = tpath("data-u8.h5");
    unsigned char xb[3 * 2] = {0, 255, 51, 102, 1, 254};
    uint64_t yl[3] = {1, 0, 1};
    double xf[3 * 2] = {0.5, -1.25, 3.0, 1e-3, 7.0, -2.0};
    hsize_t xbd[2] = {3, 2}, yld[1] = {3};
    f = h5_new(p8);
    h5_put(f, "x", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 2, xbd, xb);
    h5_put(f, "y", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, yld, yl);
    H5Fclose(f);
    ck_assert_msg(td_h5data_load(p8, &d, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.sample_shape.rank, 1);
    ck_assert_int_eq(d.classes, 2);
    for (int i = 0; i < 6; i++) ck_assert(td_dataset_value(&d, i) == (float)xb[i] / 255.0f);
    ck_assert_ptr_null(d.x);
    ck_assert_mem_eq(d.pixels, xb, sizeof(xb));
    td_dataset_free(&d);

    const char *p64 = tpath("data-f64.h5");
    f = h5_new(p64);
    h5_put(f, "x", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, xbd, xf);
    h5_put(f, "y", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, yld, yl);
    H5Fclose(f);
    ck_assert_msg(td_h5data_load(p64, &d, err, sizeof(err)) == TD_OK, "%s", err);
    for (int i = 0; i < 6; i++) ck_assert(d.x[i] == (float)xf[i]);
    td_dataset_free(&d);
}
END_TEST

static void expect_h5data_error(const char *p, enum td_status want, const char *p1, const char *p2)
{
    struct td_dataset d;
    char err[512] = "";
    enum td_status st = td_h5data_load(p, &d, err, sizeof(err));
    ck_assert_msg(st == want, "%s: status %s, expected %s (%s)", p, td_status_name(st),
                  td_status_name(want), err);
    ck_assert_ptr_null(d.x);
    ck_assert_ptr_null(d.y);
    assert_msg_has(err, p);
    if (p1) assert_msg_has(err, p1);
    if (p2) assert_msg_has(err, p2);
}

START_TEST(h5data_bad)
{
    float x[6] = {0};
    int32_t y[3] = {0, 1, 2};
    int64_t xi[6] = {0};
    hsize_t xd[2] = {3, 2}, yd[1] = {3}, y2d[1] = {2};

    const char *no_y = tpath("no-y.h5");
    hid_t f = h5_new(no_y);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
    H5Fclose(f);
    expect_h5data_error(no_y, TD_ERR_FORMAT, "no dataset 'y'", NULL);

    const char *no_x = tpath("no-x.h5");
    f = h5_new(no_x);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
    H5Fclose(f);
    expect_h5data_error(no_x, TD_ERR_FORMAT, "no dataset 'x'", NULL);

    const char *x64 = tpath("x-int64.h5");
    f = h5_new(x64);
    h5_put(f, "x", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, xd, xi);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
    H5Fclose(f);
    expect_h5data_error(x64, TD_ERR_FORMAT, "'x' is int64", NULL);

    const char *xs = tpath("x-string.h5");
    f = h5_new(xs);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 4);
    char strs[3][4] = {"abc", "def", "ghi"};
    h5_put(f, "x", st, st, 1, yd, strs);
    H5Tclose(st);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
    H5Fclose(f);
    expect_h5data_error(xs, TD_ERR_FORMAT, "'x' is string", NULL);

    const char *yf = tpath("y-float.h5");
    f = h5_new(yf);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
    h5_put(f, "y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, yd, x);
    H5Fclose(f);
    expect_h5data_error(yf, TD_ERR_FORMAT, "'y' is float32", NULL);

    const char *mis = tpath("n-mismatch.h5");
    f = h5_new(mis);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, y2d, y);
    H5Fclose(f);
    expect_h5data_error(mis, TD_ERR_FORMAT, "3 samples", "2 labels");

    const char *scalar = tpath("x-scalar.h5");
    f = h5_new(scalar);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, NULL, x);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
    H5Fclose(f);
    expect_h5data_error(scalar, TD_ERR_FORMAT, "rank 0", NULL);

    const char *neg = tpath("y-negative.h5");
    int32_t yn[3] = {0, -1, 2};
    f = h5_new(neg);
    h5_put(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
    h5_put(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, yn);
    H5Fclose(f);
    expect_h5data_error(neg, TD_ERR_FORMAT, "y[1] = -1", NULL);

    /* Shapes of 10^12 floats with nothing stored (contiguous, and chunked
     * and compressed) are refused before memory is allocated for them. */
    for (int chunked = 0; chunked <= 1; chunked++) {
        const char *huge = tpath(chunked ? "x-huge-chunked.h5" : "x-huge.h5");
        f = h5_new(huge);
        hsize_t hd[2] = {1000000000, 1000}, cd[2] = {1000, 1000};
        hid_t space = H5Screate_simple(2, hd, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (chunked) H5Pset_chunk(dcpl, 2, cd), H5Pset_deflate(dcpl, 6);
        hid_t d = H5Dcreate2(f, "x", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        ck_assert_int_ge(d, 0);
        H5Dclose(d), H5Pclose(dcpl), H5Sclose(space);
        H5Fclose(f);
        expect_h5data_error(huge, TD_ERR_FORMAT, "'x' has 1000000000000 elements of 4 bytes",
                            "stores 0 bytes");
    }

    const char *text = tpath("not-hdf5.h5");
    write_bytes(text, "hello, world\n", 13, 0);
    expect_h5data_error(text, TD_ERR_FORMAT, "not a readable HDF5 file", NULL);

    expect_h5data_error(tpath("missing.h5"), TD_ERR_IO, NULL, NULL);
}
END_TEST

/* ---- batcher ---- */

enum { BD_N = 10, BD_F = 2 };
static float bd_x[BD_N * BD_F];
static int32_t bd_y[BD_N];

/* Sample i is (i, -i) with label 100 + i, so each copy names its source. */
static struct td_dataset batch_data(void)
{
    for (int i = 0; i < BD_N; i++) {
        bd_x[2 * i] = (float)i;
        bd_x[2 * i + 1] = (float)-i;
        bd_y[i] = 100 + i;
    }
    struct td_dataset d = {BD_N, td_shape_from((const int64_t[]){BD_F}, 1), bd_x, bd_y, 110, NULL};
    return d;
}

/* Runs one epoch; writes the sample order to order[] and batch sizes to
 * sizes[]; returns the number of batches. Checks each copy is consistent. */
static int run_epoch(struct td_batcher *b, int64_t *order, int64_t *sizes)
{
    float x[BD_N * BD_F];
    int32_t y[BD_N];
    int nb = 0, pos = 0;
    int64_t c;
    while ((c = td_batcher_next(b, x, y)) > 0) {
        for (int64_t k = 0; k < c; k++) {
            int64_t s = (int64_t)x[2 * k];
            ck_assert(x[2 * k + 1] == (float)-s);
            ck_assert_int_eq(y[k], 100 + s);
            order[pos++] = s;
        }
        sizes[nb++] = c;
        ck_assert_int_le(nb, BD_N + 1);
    }
    return nb;
}

/* The documented order: Fisher-Yates with td_rng_u64(seed, TD_RNG_STREAM_SHUFFLE + epoch, i). */
static void reference_perm(uint64_t seed, uint64_t epoch, int64_t *perm)
{
    for (int i = 0; i < BD_N; i++) perm[i] = i;
    for (int i = BD_N - 1; i > 0; i--) {
        int j =
            (int)(td_rng_u64(seed, TD_RNG_STREAM_SHUFFLE + epoch, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

START_TEST(batcher_partial_covers_all)
{
    struct td_dataset d = batch_data();
    struct td_batcher b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&b, &d, 3, TD_BATCH_PARTIAL, 1, 42, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_num_batches(&b), 4);
    ck_assert_int_eq(td_batcher_dropped(&b), 0);
    int64_t prev[BD_N], ref[BD_N];
    for (int e = 0; e < 3; e++) {
        int64_t order[BD_N], sizes[BD_N + 1];
        ck_assert_int_eq(run_epoch(&b, order, sizes), 4);
        ck_assert_int_eq(sizes[0], 3);
        ck_assert_int_eq(sizes[2], 3);
        ck_assert_int_eq(sizes[3], 1);
        int seen[BD_N] = {0};
        for (int i = 0; i < BD_N; i++) seen[order[i]]++;
        for (int i = 0; i < BD_N; i++) ck_assert_int_eq(seen[i], 1);
        reference_perm(42, (uint64_t)e, ref);
        ck_assert_mem_eq(order, ref, sizeof(ref));
        if (e > 0) ck_assert_msg(memcmp(order, prev, sizeof(prev)) != 0, "epoch %d repeats", e);
        memcpy(prev, order, sizeof(prev));
        ck_assert_int_eq(td_batcher_tell(&b).epoch, (uint64_t)e + 1);
    }
    td_batcher_free(&b);
}
END_TEST

START_TEST(batcher_drop_last)
{
    struct td_dataset d = batch_data();
    struct td_batcher b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&b, &d, 4, TD_BATCH_DROP_LAST, 1, 7, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_num_batches(&b), 2);
    ck_assert_int_eq(td_batcher_dropped(&b), 2);
    int64_t order[BD_N], sizes[BD_N + 1], ref[BD_N];
    ck_assert_int_eq(run_epoch(&b, order, sizes), 2);
    ck_assert_int_eq(sizes[0], 4);
    ck_assert_int_eq(sizes[1], 4);
    reference_perm(7, 0, ref);
    ck_assert_mem_eq(order, ref, 8 * sizeof(int64_t));
    td_batcher_free(&b);

    /* Without shuffling the order is 0..n-1 every epoch. */
    ck_assert_int_eq(td_batcher_init(&b, &d, 4, TD_BATCH_DROP_LAST, 0, 7, err, sizeof(err)), TD_OK);
    for (int e = 0; e < 2; e++) {
        ck_assert_int_eq(run_epoch(&b, order, sizes), 2);
        for (int i = 0; i < 8; i++) ck_assert_int_eq(order[i], i);
    }
    td_batcher_free(&b);
}
END_TEST

START_TEST(batcher_seed_reproducible)
{
    struct td_dataset d = batch_data();
    struct td_batcher a, b, c;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&a, &d, 5, TD_BATCH_PARTIAL, 1, 3, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_init(&b, &d, 5, TD_BATCH_PARTIAL, 1, 3, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_init(&c, &d, 5, TD_BATCH_PARTIAL, 1, 4, err, sizeof(err)), TD_OK);
    int64_t oa[BD_N], ob[BD_N], oc[BD_N], s[BD_N + 1];
    run_epoch(&a, oa, s);
    run_epoch(&b, ob, s);
    run_epoch(&c, oc, s);
    ck_assert_mem_eq(oa, ob, sizeof(oa));
    ck_assert_msg(memcmp(oa, oc, sizeof(oa)) != 0, "seeds 3 and 4 give one order");
    td_batcher_free(&a);
    td_batcher_free(&b);
    td_batcher_free(&c);
}
END_TEST

/* A dataset of pixel bytes gives the batches of the same dataset held as
 * floats b / 255, bit for bit, in the same shuffled order. */
START_TEST(batcher_pixels)
{
    enum { N = 7, F = 33 };
    static uint8_t px[N * F];
    static float fx[N * F];
    static int32_t y[N];
    for (int i = 0; i < N * F; i++) {
        px[i] = (uint8_t)((i * 37 + 11) % 256);
        fx[i] = (float)px[i] / 255.0f;
    }
    for (int i = 0; i < N; i++) y[i] = i % 3;
    struct td_dataset dp = {N, td_shape_from((const int64_t[]){F}, 1), NULL, y, 3, px};
    struct td_dataset df = {N, td_shape_from((const int64_t[]){F}, 1), fx, y, 3, NULL};
    struct td_batcher a, b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&a, &dp, 3, TD_BATCH_PARTIAL, 1, 5, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_init(&b, &df, 3, TD_BATCH_PARTIAL, 1, 5, err, sizeof(err)), TD_OK);
    float xa[3 * F], xb[3 * F];
    int32_t ya[3], yb[3];
    int batches = 0;
    for (int k = 0; k < 8; k++) {
        int64_t na = td_batcher_next(&a, xa, ya), nb = td_batcher_next(&b, xb, yb);
        ck_assert_int_eq(na, nb);
        ck_assert_mem_eq(xa, xb, (size_t)na * F * sizeof(float));
        ck_assert_mem_eq(ya, yb, (size_t)na * sizeof(int32_t));
        batches += na > 0;
    }
    ck_assert_int_eq(batches, 6);
    ck_assert(td_dataset_value(&dp, 5) == fx[5]);
    /* A run of samples, as the tangent tools take them, the same bits. */
    float ca[3 * F], cb[3 * F];
    td_dataset_copy_samples(&dp, 2, 3, ca);
    td_dataset_copy_samples(&df, 2, 3, cb);
    ck_assert_mem_eq(ca, fx + 2 * F, sizeof(ca));
    ck_assert_mem_eq(cb, fx + 2 * F, sizeof(cb));
    td_batcher_free(&a);
    td_batcher_free(&b);
}
END_TEST

/* Pixel rows become b / 255 with the division's bits for every byte value,
 * whether the destination is 64-byte aligned (rows of whole cache lines,
 * streamed out) or not (ordinary stores), tails of a row included. */
START_TEST(pixels_every_byte)
{
    enum { F = 260 }; /* two rows: 520 floats, 32 vectors of 16 and a tail of 8 */
    static uint8_t px[2 * F];
    static int32_t y[2];
    for (int i = 0; i < 2 * F; i++) px[i] = (uint8_t)(i * 7 + 3);
    struct td_dataset d = {2, td_shape_from((const int64_t[]){F}, 1), NULL, y, 3, px};
    float *buf = aligned_alloc(64, ((2 * F + 16) * sizeof(float) + 63) / 64 * 64);
    ck_assert_ptr_nonnull(buf);
    for (int shift = 0; shift < 2; shift++) {
        float *x = buf + shift;
        td_dataset_copy_samples(&d, 0, 2, x);
        for (int i = 0; i < 2 * F; i++) {
            float want = (float)px[i] / 255.0f;
            ck_assert_msg(memcmp(&x[i], &want, sizeof(float)) == 0,
                          "byte %d at offset %d: %a, want %a", px[i], shift, (double)x[i],
                          (double)want);
        }
    }
    int seen[256] = {0};
    for (int i = 0; i < 2 * F; i++) seen[px[i]] = 1;
    for (int v = 0; v < 256; v++) ck_assert_msg(seen[v], "byte %d not covered", v);
    free(buf);
}
END_TEST

/* A batch large enough to be copied by several threads holds the same
 * bits as one thread's copy and as the rows copied one by one, in the
 * shuffled order. */
START_TEST(batcher_threads)
{
    enum { N = 300, F = 784, B = 120 };
    uint8_t *px = malloc((size_t)N * F);
    int32_t *y = malloc(N * sizeof(int32_t));
    float *x1 = malloc((size_t)B * F * sizeof(float)), *x2 = malloc((size_t)B * F * sizeof(float));
    float *row = malloc(F * sizeof(float));
    int32_t y1[B], y2[B];
    ck_assert(px && y && x1 && x2 && row);
    for (int i = 0; i < N * F; i++) px[i] = (uint8_t)((i * 131 + 7) % 251);
    for (int i = 0; i < N; i++) y[i] = i % 10;
    struct td_dataset d = {N, td_shape_from((const int64_t[]){F}, 1), NULL, y, 10, px};
    struct td_batcher a, b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&a, &d, B, TD_BATCH_DROP_LAST, 1, 4, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_init(&b, &d, B, TD_BATCH_DROP_LAST, 1, 4, err, sizeof(err)), TD_OK);
    int saved = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        struct td_batch_pos at = td_batcher_tell(&a);
        omp_set_num_threads(1);
        ck_assert_int_eq(td_batcher_take(&a, B, x1, y1), B);
        omp_set_num_threads(2);
        ck_assert_int_eq(td_batcher_take(&b, B, x2, y2), B);
        ck_assert_mem_eq(x1, x2, (size_t)B * F * sizeof(float));
        ck_assert_mem_eq(y1, y2, sizeof(y1));
        for (int i = 0; i < B; i++) {
            int64_t s = a.perm[at.index + i];
            td_dataset_copy_samples(&d, s, 1, row);
            ck_assert_mem_eq(x2 + (size_t)i * F, row, F * sizeof(float));
            ck_assert_int_eq(y2[i], y[s]);
        }
    }
    omp_set_num_threads(saved);
    td_batcher_free(&a);
    td_batcher_free(&b);
    free(px);
    free(y);
    free(x1);
    free(x2);
    free(row);
}
END_TEST

START_TEST(batcher_restore_position)
{
    struct td_dataset d = batch_data();
    struct td_batcher a, b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&a, &d, 3, TD_BATCH_PARTIAL, 1, 9, err, sizeof(err)), TD_OK);
    float x[3 * BD_F], xb[3 * BD_F];
    int32_t y[3], yb[3];
    int64_t o[BD_N], s[BD_N + 1];
    run_epoch(&a, o, s);
    td_batcher_next(&a, x, y);
    td_batcher_next(&a, x, y);
    struct td_batch_pos pos = td_batcher_tell(&a);
    ck_assert_int_eq(pos.epoch, 1);
    ck_assert_int_eq(pos.index, 6);

    ck_assert_int_eq(td_batcher_init(&b, &d, 3, TD_BATCH_PARTIAL, 1, 9, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_seek(&b, pos, err, sizeof(err)), TD_OK);
    /* The rest of epoch 1 and all of epoch 2 match batch for batch. */
    for (int k = 0; k < 2 + 1 + 4; k++) {
        int64_t ca = td_batcher_next(&a, x, y), cb = td_batcher_next(&b, xb, yb);
        ck_assert_int_eq(ca, cb);
        ck_assert_mem_eq(x, xb, (size_t)ca * BD_F * sizeof(float));
        ck_assert_mem_eq(y, yb, (size_t)ca * sizeof(int32_t));
    }
    struct td_batch_pos bad = {0, BD_N + 1};
    ck_assert_int_eq(td_batcher_seek(&b, bad, err, sizeof(err)), TD_ERR_ARG);
    assert_msg_has(err, "11");
    ck_assert_int_eq(td_batcher_tell(&b).index, td_batcher_tell(&a).index);
    td_batcher_free(&a);
    td_batcher_free(&b);
}
END_TEST

START_TEST(batcher_bad_args)
{
    struct td_dataset d = batch_data();
    struct td_batcher b;
    char err[256] = "";
    ck_assert_int_eq(td_batcher_init(&b, &d, 0, TD_BATCH_PARTIAL, 1, 1, err, sizeof(err)),
                     TD_ERR_ARG);
    assert_msg_has(err, "batch size 0");
    ck_assert_int_eq(td_batcher_init(&b, &d, 11, TD_BATCH_DROP_LAST, 1, 1, err, sizeof(err)),
                     TD_ERR_ARG);
    assert_msg_has(err, "every epoch");
    ck_assert_int_eq(td_batcher_init(&b, &d, 11, TD_BATCH_PARTIAL, 1, 1, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_batcher_num_batches(&b), 1);
    td_batcher_free(&b);
}
END_TEST

/* ---- weights ---- */

/* Three parameters; `out_in` sets the second dim of out/weight. */
static struct td_graph *small_model(uint64_t seed, int out_in, int with_out, int with_extra)
{
    struct td_graph *g = td_graph_new(seed);
    ck_assert_ptr_nonnull(g);
    struct td_init init = {TD_INIT_NORMAL, 0.0f, 1.0f};
    td_param(g, "fc1/weight", TD_SHAPE(4, 3), init);
    td_param(g, "fc1/bias", TD_SHAPE(4), init);
    if (with_out) td_param(g, "out/weight", TD_SHAPE(2, out_in), init);
    if (with_extra) td_param(g, "fc2/weight", TD_SHAPE(3, 3), init);
    ck_assert_msg(td_graph_status(g) == TD_OK, "%s", td_graph_error(g));
    return g;
}

static float *copy_values(const struct td_params *p)
{
    float *v = malloc(p->total * sizeof(float));
    memcpy(v, p->value, p->total * sizeof(float));
    return v;
}

/* Reads a string attribute, which must be fixed-length UTF-8 (no global
 * heap), with HDF5's own API; returns its element size. */
static size_t read_fixed_attr(hid_t f, const char *name, char *buf, size_t len)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    hid_t t = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_class(t), H5T_STRING);
    ck_assert_int_eq(H5Tis_variable_str(t), 0);
    ck_assert_int_eq(H5Tget_cset(t), H5T_CSET_UTF8);
    size_t size = H5Tget_size(t);
    hid_t s = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    ck_assert_uint_le((size_t)n * size, len);
    ck_assert_int_ge(H5Aread(a, t, buf), 0);
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    return size;
}

START_TEST(weights_round_trip)
{
    struct td_graph *ga = small_model(1, 4, 1, 0), *gb = small_model(2, 4, 1, 0);
    struct td_params *pa = td_graph_params(ga), *pb = td_graph_params(gb);
    ck_assert_int_eq(pa->count, 3);
    ck_assert_msg(memcmp(pa->value, pb->value, pa->total * sizeof(float)) != 0,
                  "two seeds gave the same initial values");
    const char *path = tpath("weights.h5");
    char err[512] = "";
    ck_assert_msg(td_weights_export(pa, path, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_ne(access(tpath("weights.h5.tmp"), F_OK), 0);

    /* The layout h5py users see. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "fc1/weight", H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t s = H5Dget_space(d);
    hsize_t dims[4];
    ck_assert_int_eq(H5Sget_simple_extent_ndims(s), 2);
    H5Sget_simple_extent_dims(s, dims, NULL);
    ck_assert(dims[0] == 4 && dims[1] == 3);
    hid_t t = H5Dget_type(d);
    ck_assert(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4);
    float w[12];
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w), 0);
    ck_assert_mem_eq(w, pa->value + pa->info[0].offset, sizeof(w));
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    char buf[128] = "";
    read_fixed_attr(f, "framework", buf, sizeof(buf));
    ck_assert_str_eq(buf, "tandem");
    read_fixed_attr(f, "version", buf, sizeof(buf));
    ck_assert_str_eq(buf, TD_VERSION);
    /* Three names, each padded to the longest ("fc1/weight" and its NUL). */
    hid_t a = H5Aopen(f, "param_order", H5P_DEFAULT);
    hid_t as = H5Aget_space(a);
    ck_assert_int_eq(H5Sget_simple_extent_npoints(as), 3);
    H5Sclose(as);
    H5Aclose(a);
    ck_assert_uint_eq(read_fixed_attr(f, "param_order", buf, sizeof(buf)), 11);
    ck_assert_str_eq(buf, "fc1/weight");
    ck_assert_str_eq(buf + 11, "fc1/bias");
    ck_assert_str_eq(buf + 22, "out/weight");
    H5Fclose(f);

    ck_assert_msg(td_weights_import(pb, path, 0, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_mem_eq(pb->value, pa->value, pa->total * sizeof(float));
    td_graph_free(ga);
    td_graph_free(gb);
}
END_TEST

static void expect_import_error(struct td_graph *g, const char *path, unsigned flags,
                                const char *p1, const char *p2)
{
    struct td_params *p = td_graph_params(g);
    float *before = copy_values(p);
    char err[512] = "";
    enum td_status st = td_weights_import(p, path, flags, err, sizeof(err));
    ck_assert_msg(st == TD_ERR_FORMAT, "status %s (%s)", td_status_name(st), err);
    ck_assert_mem_eq(p->value, before, p->total * sizeof(float));
    assert_msg_has(err, path);
    if (p1) assert_msg_has(err, p1);
    if (p2) assert_msg_has(err, p2);
    free(before);
}

START_TEST(weights_import_rejects)
{
    struct td_graph *ga = small_model(1, 4, 1, 0);
    const char *path = tpath("weights-ref.h5");
    char err[512] = "";
    ck_assert_msg(td_weights_export(td_graph_params(ga), path, err, sizeof(err)) == TD_OK, "%s",
                  err);

    /* out/weight is [2,4] in the file, [2,5] in the model; the fc1 parameters come first
     * and match, and must not be written. */
    struct td_graph *g = small_model(5, 5, 1, 0);
    expect_import_error(g, path, 0, "parameter out/weight has shape [2,4]", "expected [2,5]");
    td_graph_free(g);

    g = small_model(5, 4, 1, 1);
    expect_import_error(g, path, 0, "no dataset 'fc2/weight'", NULL);
    td_graph_free(g);

    /* The file has out/weight, which this model lacks. */
    g = small_model(5, 4, 0, 0);
    expect_import_error(g, path, 0, "'out/weight'", "TD_WEIGHTS_ALLOW_EXTRA");
    struct td_params *p = td_graph_params(g), *pa = td_graph_params(ga);
    ck_assert_msg(td_weights_import(p, path, TD_WEIGHTS_ALLOW_EXTRA, err, sizeof(err)) == TD_OK,
                  "%s", err);
    ck_assert_mem_eq(p->value, pa->value, p->total * sizeof(float));
    td_graph_free(g);

    /* fc1/bias stored as float64. */
    const char *f64 = tpath("weights-f64.h5");
    hid_t f = h5_new(f64);
    float w[12] = {0}, w2[8] = {0};
    double bias[4] = {1, 2, 3, 4};
    hsize_t wd[2] = {4, 3}, bd[1] = {4}, od[2] = {2, 4};
    h5_put(f, "fc1/weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, wd, w);
    h5_put(f, "fc1/bias", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, bd, bias);
    h5_put(f, "out/weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, od, w2);
    H5Fclose(f);
    g = small_model(5, 4, 1, 0);
    expect_import_error(g, f64, 0, "parameter fc1/bias is float64, expected float32", NULL);
    td_graph_free(g);

    g = small_model(5, 4, 1, 0);
    ck_assert_int_eq(td_weights_import(td_graph_params(g), tpath("absent.h5"), 0, err, sizeof(err)),
                     TD_ERR_IO);
    assert_msg_has(err, "absent.h5");
    td_graph_free(g);
    td_graph_free(ga);
}
END_TEST

static herr_t count_prints(hid_t stack, void *data)
{
    (void)stack;
    ++*(int *)data;
    return 0;
}

/* Failing loads print nothing and put the caller's HDF5 error printer back. */
START_TEST(h5_error_printer_restored)
{
    int prints = 0;
    H5E_auto2_t saved_f;
    void *saved_d;
    H5Eget_auto2(H5E_DEFAULT, &saved_f, &saved_d);
    H5Eset_auto2(H5E_DEFAULT, count_prints, &prints);
    const char *text = tpath("not-hdf5-2.h5");
    write_bytes(text, "plain text", 10, 0);
    struct td_dataset d;
    char err[512];
    ck_assert_int_eq(td_h5data_load(text, &d, err, sizeof(err)), TD_ERR_FORMAT);
    struct td_graph *g = small_model(1, 4, 1, 0);
    ck_assert_int_eq(td_weights_import(td_graph_params(g), text, 0, err, sizeof(err)),
                     TD_ERR_FORMAT);
    td_graph_free(g);
    ck_assert_int_eq(prints, 0);
    H5E_auto2_t f;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &f, &data);
    ck_assert(f == count_prints && data == &prints);
    H5Eset_auto2(H5E_DEFAULT, saved_f, saved_d);
}
END_TEST

/* ---- checkpoints ---- */

struct ckpt_state {
    struct td_graph *g;
    float m[7];
    int64_t step;
    uint64_t seed;
    double lr;
    struct td_ckpt_entry e[8];
    int n;
};

static void ckpt_state_init(struct ckpt_state *s, uint64_t seed, float base)
{
    s->g = small_model(seed, 4, 1, 0);
    struct td_params *p = td_graph_params(s->g);
    for (int i = 0; i < 7; i++) s->m[i] = base + 0.5f * (float)i;
    s->step = 1000 + (int64_t)base;
    s->seed = 0xfedcba9876543210ull - (uint64_t)base;
    s->lr = 0.001 * base;
    s->n = td_ckpt_param_entries(p, s->e);
    ck_assert_int_eq(s->n, 3);
    s->e[s->n++] = (struct td_ckpt_entry){"adam/m", TD_CKPT_F32, s->m, 7, NULL};
    s->e[s->n++] = (struct td_ckpt_entry){"step", TD_CKPT_I64, &s->step, 1, NULL};
    s->e[s->n++] = (struct td_ckpt_entry){"seed", TD_CKPT_U64, &s->seed, 1, NULL};
    s->e[s->n++] = (struct td_ckpt_entry){"lr", TD_CKPT_F64, &s->lr, 1, NULL};
}

static void ckpt_assert_equal(struct ckpt_state *a, struct ckpt_state *b)
{
    struct td_params *pa = td_graph_params(a->g), *pb = td_graph_params(b->g);
    ck_assert_mem_eq(pa->value, pb->value, pa->total * sizeof(float));
    ck_assert_mem_eq(a->m, b->m, sizeof(a->m));
    ck_assert_int_eq(a->step, b->step);
    ck_assert_uint_eq(a->seed, b->seed);
    ck_assert(a->lr == b->lr);
}

START_TEST(checkpoint_round_trip)
{
    struct ckpt_state a, b;
    ckpt_state_init(&a, 1, 3.0f);
    ckpt_state_init(&b, 2, 8.0f);
    const char *path = tpath("ckpt.h5");
    char err[512] = "";
    ck_assert_msg(td_ckpt_save(path, a.e, a.n, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_ne(access(tpath("ckpt.h5.tmp"), F_OK), 0);
    ck_assert_msg(td_ckpt_load(path, b.e, b.n, err, sizeof(err)) == TD_OK, "%s", err);
    ckpt_assert_equal(&a, &b);

    /* Groups as documented. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    ck_assert_int_gt(H5Lexists(f, "params", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Lexists(f, "params/fc1/weight", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Lexists(f, "optim/adam/m", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Lexists(f, "state/step", H5P_DEFAULT), 0);
    int64_t step = 0;
    hid_t d = H5Dopen2(f, "state/step", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &step), 0);
    ck_assert_int_eq(step, 1003);
    H5Dclose(d);
    H5Fclose(f);
    td_graph_free(a.g);
    td_graph_free(b.g);
}
END_TEST

START_TEST(checkpoint_rejects)
{
    struct ckpt_state a, b;
    ckpt_state_init(&a, 1, 3.0f);
    ckpt_state_init(&b, 2, 8.0f);
    const char *path = tpath("ckpt-rej.h5");
    char err[512] = "";
    ck_assert_msg(td_ckpt_save(path, a.e, a.n, err, sizeof(err)) == TD_OK, "%s", err);
    struct td_params *pb = td_graph_params(b.g);
    float *before = copy_values(pb);

    /* step asked for as uint64: stored as int64. The params come first and
     * must not be written. */
    b.e[4].kind = TD_CKPT_U64;
    ck_assert_int_eq(td_ckpt_load(path, b.e, b.n, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "/state/step is int64, expected uint64");
    ck_assert_mem_eq(pb->value, before, pb->total * sizeof(float));
    b.e[4].kind = TD_CKPT_I64;

    /* Optimizer block of another size. */
    b.e[3].count = 6;
    ck_assert_int_eq(td_ckpt_load(path, b.e, b.n, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "/optim/adam/m holds 7 elements");
    assert_msg_has(err, "expected 6");
    b.e[3].count = 7;

    struct td_ckpt_entry extra = {"epoch", TD_CKPT_U64, &b.seed, 1, NULL};
    struct td_ckpt_entry with_extra[9];
    memcpy(with_extra, b.e, (size_t)b.n * sizeof(extra));
    with_extra[b.n] = extra;
    ck_assert_int_eq(td_ckpt_load(path, with_extra, b.n + 1, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "no dataset '/state/epoch'");
    ck_assert_mem_eq(pb->value, before, pb->total * sizeof(float));
    ck_assert(b.lr == 0.008);

    /* A weights file is HDF5 but not a checkpoint. */
    const char *wp = tpath("ckpt-not.h5");
    ck_assert_int_eq(td_weights_export(pb, wp, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_ckpt_load(wp, b.e, b.n, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "a Tandem weights file, not a checkpoint file");

    /* Bad entries are refused before anything is written. */
    struct td_ckpt_entry dup[2] = {{"x", TD_CKPT_F32, b.m, 7, NULL},
                                   {"x", TD_CKPT_F32, b.m, 7, NULL}};
    ck_assert_int_eq(td_ckpt_save(tpath("dup.h5"), dup, 2, err, sizeof(err)), TD_ERR_ARG);
    assert_msg_has(err, "/optim/x");
    ck_assert_int_ne(access(tpath("dup.h5"), F_OK), 0);
    free(before);
    td_graph_free(a.g);
    td_graph_free(b.g);
}
END_TEST

/* A save that crashed before its rename leaves "<path>.tmp" behind; the
 * previous checkpoint must still load, and the next save must succeed. */
START_TEST(checkpoint_interrupted_save)
{
    struct ckpt_state a, b, c;
    ckpt_state_init(&a, 1, 3.0f);
    ckpt_state_init(&b, 2, 8.0f);
    ckpt_state_init(&c, 3, 5.0f);
    const char *path = tpath("ckpt-crash.h5"), *tmp = tpath("ckpt-crash.h5.tmp");
    char err[512] = "";
    ck_assert_msg(td_ckpt_save(path, a.e, a.n, err, sizeof(err)) == TD_OK, "%s", err);
    write_bytes(tmp, "\x89HDF\r\n\x1a\ngarbage", 15, 0);
    ck_assert_msg(td_ckpt_load(path, b.e, b.n, err, sizeof(err)) == TD_OK, "%s", err);
    ckpt_assert_equal(&a, &b);

    ck_assert_msg(td_ckpt_save(path, c.e, c.n, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_msg(td_ckpt_load(path, b.e, b.n, err, sizeof(err)) == TD_OK, "%s", err);
    ckpt_assert_equal(&c, &b);
    td_graph_free(a.g);
    td_graph_free(b.g);
    td_graph_free(c.g);
}
END_TEST

START_TEST(checkpoint_truncated)
{
    struct ckpt_state a, b;
    ckpt_state_init(&a, 1, 3.0f);
    ckpt_state_init(&b, 2, 8.0f);
    const char *good = tpath("ckpt-good.h5");
    char err[512] = "";
    ck_assert_msg(td_ckpt_save(good, a.e, a.n, err, sizeof(err)) == TD_OK, "%s", err);
    size_t n = file_size(good);
    unsigned char *bytes = malloc(n);
    FILE *f = fopen(good, "rb");
    ck_assert_uint_eq(fread(bytes, 1, n, f), n);
    fclose(f);
    struct td_params *pb = td_graph_params(b.g);
    float *before = copy_values(pb);
    const size_t cuts[] = {0, 7, 100, n / 2, n - 1};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
        const char *cut = tpath("ckpt-cut.h5");
        write_bytes(cut, bytes, n, 0);
        ck_assert_int_eq(truncate(cut, (off_t)cuts[k]), 0);
        enum td_status st = td_ckpt_load(cut, b.e, b.n, err, sizeof(err));
        ck_assert_msg(st == TD_ERR_FORMAT || st == TD_ERR_IO, "cut at %zu: %s (%s)", cuts[k],
                      td_status_name(st), err);
        assert_msg_has(err, cut);
        ck_assert_mem_eq(pb->value, before, pb->total * sizeof(float));
        ck_assert_int_eq(b.step, 1008);
    }
    free(bytes);
    free(before);
    td_graph_free(a.g);
    td_graph_free(b.g);
}
END_TEST

/* ---- the integrity header (io/seal.h) ---- */

/* CRC-64/XZ one bit at a time, straight from its definition, independent of
 * the table-driven code under test. */
static uint64_t ref_crc64(const unsigned char *p, size_t n)
{
    uint64_t c = ~0ull;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xC96C5795D7870F42ull : c >> 1;
    }
    return ~c;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    *n = file_size(path);
    unsigned char *b = malloc(*n + 1);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

START_TEST(crc64_known_values)
{
    /* The catalogue's check value of CRC-64/XZ. */
    ck_assert_uint_eq(td_crc64(0, "123456789", 9), 0x995DC9BBDF1939FAull);
    ck_assert_uint_eq(td_crc64(0, "", 0), 0);
    unsigned char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)td_rng_u64(3, 0, (uint64_t)i);
    /* Every length and alignment of the 8-byte loop, and pieces fed in turn. */
    for (size_t n = 0; n < 40; n++)
        for (size_t off = 0; off < 9; off++)
            ck_assert_uint_eq(td_crc64(0, buf + off, n), ref_crc64(buf + off, n));
    ck_assert_uint_eq(td_crc64(td_crc64(0, buf, 333), buf + 333, 667), ref_crc64(buf, 1000));
}
END_TEST

/* What td_weights_export writes: the header fields as io/seal.h documents
 * them, a CRC-64 over the file, HDF5 after 512 bytes, the same bytes for the
 * same values. */
START_TEST(seal_layout)
{
    struct td_graph *g = small_model(1, 4, 1, 0);
    const char *path = tpath("sealed.h5"), *again = tpath("sealed-again.h5");
    char err[512] = "";
    ck_assert_msg(td_weights_export(td_graph_params(g), path, err, sizeof(err)) == TD_OK, "%s",
                  err);
    ck_assert_msg(td_weights_export(td_graph_params(g), again, err, sizeof(err)) == TD_OK, "%s",
                  err);
    size_t n, n2;
    unsigned char *b = read_file(path, &n), *b2 = read_file(again, &n2);
    ck_assert_uint_eq(n, n2);
    ck_assert_msg(memcmp(b, b2, n) == 0, "two exports of the same values differ");
    ck_assert_mem_eq(b, "\x89TDM\r\n\x1a\n", 8);
    ck_assert_uint_eq(le(b + 8, 4), 1);
    ck_assert_uint_eq(le(b + 12, 4), 512);
    ck_assert_uint_eq(le(b + 16, 8), n);
    ck_assert_str_eq((const char *)b + 32, "weights");
    ck_assert_str_eq((const char *)b + 48, TD_VERSION);
    ck_assert_mem_eq(b + 512, "\x89HDF\r\n\x1a\n", 8);
    uint64_t stored = le(b + 24, 8);
    memset(b + 24, 0, 8);
    ck_assert_uint_eq(stored, ref_crc64(b, n));
    free(b);
    free(b2);

    struct ckpt_state a;
    ckpt_state_init(&a, 1, 3.0f);
    const char *cp = tpath("sealed-ckpt.h5");
    ck_assert_msg(td_ckpt_save(cp, a.e, a.n, err, sizeof(err)) == TD_OK, "%s", err);
    b = read_file(cp, &n);
    ck_assert_str_eq((const char *)b + 32, "checkpoint");
    stored = le(b + 24, 8);
    memset(b + 24, 0, 8);
    ck_assert_uint_eq(stored, ref_crc64(b, n));
    free(b);
    td_graph_free(a.g);
    td_graph_free(g);
}
END_TEST

/* Every byte of a weights file and of a checkpoint, changed one at a time,
 * and the file cut or extended: each load fails with TD_ERR_FORMAT naming
 * the file and leaves the caller's values alone. */
START_TEST(seal_every_byte)
{
    struct ckpt_state a, b;
    ckpt_state_init(&a, 1, 3.0f);
    ckpt_state_init(&b, 2, 8.0f);
    struct td_params *pa = td_graph_params(a.g), *pb = td_graph_params(b.g);
    const char *wp = tpath("flip-src-w.h5"), *cp = tpath("flip-src-c.h5");
    const char *bad = tpath("flip.h5");
    char err[512] = "";
    ck_assert_int_eq(td_weights_export(pa, wp, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_ckpt_save(cp, a.e, a.n, err, sizeof(err)), TD_OK);
    float *before = copy_values(pb);
    for (int kind = 0; kind < 2; kind++) {
        size_t n;
        unsigned char *bytes = read_file(kind ? cp : wp, &n);
        /* Patched in place: rewriting the whole file each time is slow on
         * file systems that discard freed blocks. */
        write_bytes(bad, bytes, n, 0);
        int fd = open(bad, O_RDWR);
        ck_assert_int_ge(fd, 0);
        /* n single-byte changes, then cuts and one appended byte. */
        for (size_t i = 0; i < n + 5; i++) {
            const size_t cuts[] = {0, 8, 511, n - 1, n + 1};
            unsigned char c = (unsigned char)(bytes[i % n] ^ (1 + i % 255));
            if (i < n)
                ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)i), 1);
            else
                ck_assert_int_eq(ftruncate(fd, (off_t)cuts[i - n]), 0);
            enum td_status st = kind ? td_ckpt_load(bad, b.e, b.n, err, sizeof(err))
                                     : td_weights_import(pb, bad, 0, err, sizeof(err));
            ck_assert_msg(st == TD_ERR_FORMAT, "%s: change %zu of %zu: %s (%s)",
                          kind ? "checkpoint" : "weights", i, n, td_status_name(st), err);
            assert_msg_has(err, bad);
            ck_assert_mem_eq(pb->value, before, pb->total * sizeof(float));
            if (i < n) ck_assert_int_eq(pwrite(fd, bytes + i, 1, (off_t)i), 1);
            if (i >= n) ck_assert_int_eq(pwrite(fd, bytes, n, 0), (ssize_t)n);
        }
        close(fd);
        free(bytes);
    }
    ck_assert_int_eq(b.step, 1008);
    /* The one message each kind of damage gives. */
    size_t n;
    unsigned char *bytes = read_file(wp, &n);
    bytes[n / 2] ^= 1;
    write_bytes(bad, bytes, n, 0);
    ck_assert_int_eq(td_weights_import(pb, bad, 0, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "checksum mismatch: the file is corrupt (truncated or modified)");
    bytes[n / 2] ^= 1;
    write_bytes(bad, bytes, n - 100, 0);
    ck_assert_int_eq(td_weights_import(pb, bad, 0, err, sizeof(err)), TD_ERR_FORMAT);
    assert_msg_has(err, "bytes, but its header says");
    assert_msg_has(err, "the file is corrupt (truncated or modified)");
    free(bytes);
    free(before);
    td_graph_free(a.g);
    td_graph_free(b.g);
}
END_TEST

/* Files without Tandem's header: weights from another program (a plain HDF5
 * file) are imported; a checkpoint must be Tandem's; an HDF5 file with some
 * other user block is not taken for weights. */
START_TEST(seal_foreign_files)
{
    struct td_graph *g = small_model(1, 4, 1, 0), *g2 = small_model(2, 4, 1, 0);
    struct td_params *p = td_graph_params(g), *p2 = td_graph_params(g2);
    char err[512] = "";
    for (int ub = 0; ub <= 1; ub++) {
        const char *path = tpath(ub ? "foreign-ub.h5" : "foreign.h5");
        hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
        if (ub) H5Pset_userblock(fcpl, 1024);
        hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
        ck_assert_int_ge(f, 0);
        H5Pclose(fcpl);
        for (int i = 0; i < p->count; i++) {
            hsize_t dims[TD_MAX_DIMS];
            for (int k = 0; k < p->info[i].shape.rank; k++)
                dims[k] = (hsize_t)p->info[i].shape.dim[k];
            h5_put(f, p->info[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->info[i].shape.rank,
                   dims, p->value + p->info[i].offset);
        }
        H5Fclose(f);
        if (!ub) {
            ck_assert_msg(td_weights_import(p2, path, 0, err, sizeof(err)) == TD_OK, "%s", err);
            ck_assert_mem_eq(p2->value, p->value, p->total * sizeof(float));
            struct ckpt_state c;
            ckpt_state_init(&c, 3, 1.0f);
            ck_assert_int_eq(td_ckpt_load(path, c.e, c.n, err, sizeof(err)), TD_ERR_FORMAT);
            assert_msg_has(err, "without Tandem's integrity header");
            td_graph_free(c.g);
        } else {
            expect_import_error(g2, path, 0, "whose user block is not Tandem's integrity header",
                                NULL);
            /* User data is read whatever its user block. */
            struct td_dataset d;
            ck_assert_int_eq(td_h5data_load(path, &d, err, sizeof(err)), TD_ERR_FORMAT);
            assert_msg_has(err, "no dataset 'x'");
        }
    }
    td_graph_free(g);
    td_graph_free(g2);
}
END_TEST

/* td_h5_read_str_attr reads fixed-length strings only, after checking
 * class, size and dataspace: a variable-length one is refused unread. */
START_TEST(str_attr_checked_first)
{
    const char *path = tpath("attrs.h5");
    hid_t f = h5_new(path);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t vt = H5Tcopy(H5T_C_S1), ft = H5Tcopy(H5T_C_S1), big = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    H5Tset_size(ft, 7);
    H5Tset_size(big, 5000);
    const char *v = "variable";
    char *large = calloc(5000, 1);
    int one = 1;
    hid_t a = H5Acreate2(f, "vlen", vt, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vt, &v), H5Aclose(a);
    a = H5Acreate2(f, "fixed", ft, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, ft, "tandem"), H5Aclose(a);
    a = H5Acreate2(f, "large", big, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, big, large), H5Aclose(a);
    a = H5Acreate2(f, "number", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &one), H5Aclose(a);
    H5Tclose(vt), H5Tclose(ft), H5Tclose(big), H5Sclose(scalar);
    free(large);
    char buf[64], err[512];
    ck_assert_int_eq(td_h5_read_str_attr(f, "fixed", buf, sizeof(buf), path, err, sizeof(err)),
                     TD_OK);
    ck_assert_str_eq(buf, "tandem");
    ck_assert_int_eq(td_h5_read_str_attr(f, "vlen", buf, sizeof(buf), path, err, sizeof(err)),
                     TD_ERR_FORMAT);
    assert_msg_has(err, "'vlen' is a variable-length string, which Tandem does not read");
    ck_assert_int_eq(td_h5_read_str_attr(f, "large", buf, sizeof(buf), path, err, sizeof(err)),
                     TD_ERR_FORMAT);
    assert_msg_has(err, "'large' is a string of 5000 bytes (at most 4096 are read)");
    ck_assert_int_eq(td_h5_read_str_attr(f, "number", buf, sizeof(buf), path, err, sizeof(err)),
                     TD_ERR_FORMAT);
    assert_msg_has(err, "'number' is not a string");
    ck_assert_int_eq(td_h5_read_str_attr(f, "absent", buf, sizeof(buf), path, err, sizeof(err)),
                     TD_ERR_FORMAT);
    assert_msg_has(err, "no attribute 'absent'");
    H5Fclose(f);
}
END_TEST

/* ---- text: byte vocabulary, split, training and validation windows,
 * encode/decode, the vocabulary in HDF5, and (when Debian's `bible` is
 * installed) the KJV text of tools/kjv.sh. Expected ids come from texts built
 * here over alphabets whose sorted order the test knows. ---- */

static const char *kjv_script; /* argv[1]: tools/kjv.sh */

static void load_ok(const void *bytes, size_t n, double val, int64_t context, struct td_text *t)
{
    char err[512] = "";
    enum td_status st = td_text_from_bytes(bytes, n, "mem", val, context, t, err, sizeof(err));
    ck_assert_msg(st == TD_OK, "%s: %s", td_status_name(st), err);
}

/* n bytes drawn from the sorted alphabet a (every letter used when n is
 * large): byte i is a[k[i]], so its token id is k[i]. */
static uint8_t *alphabet_text(const char *a, size_t n, uint64_t seed, int32_t *k)
{
    size_t len = strlen(a);
    uint8_t *s = malloc(n);
    for (size_t i = 0; i < n; i++) {
        int32_t j = (int32_t)(td_rng_u64(seed, 0, i) % len);
        s[i] = (uint8_t)a[j];
        if (k) k[i] = j;
    }
    return s;
}

/* ---- vocabulary and split ---- */

START_TEST(text_vocab_of_known_string)
{
    const char *s = "hello, world\n";
    struct td_text t;
    load_ok(s, strlen(s), 0.0, 4, &t);
    /* Distinct bytes in ascending order: \n (10), ' ' (32), ',' (44), d e h l o r w. */
    const uint8_t want[] = {'\n', ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w'};
    ck_assert_int_eq(t.vocab.size, 10);
    ck_assert_mem_eq(t.vocab.byte, want, sizeof(want));
    for (int i = 0; i < 10; i++) ck_assert_int_eq(t.vocab.id[want[i]], i);
    int present = 0;
    for (int b = 0; b < 256; b++) present += t.vocab.id[b] >= 0;
    ck_assert_int_eq(present, 10);
    ck_assert_int_eq(t.vocab.id['a'], -1);
    ck_assert_int_eq(t.vocab.id[0], -1);
    ck_assert_int_eq(t.vocab.id[255], -1);
    /* h e l l o , ' ' w o r l d \n */
    const uint8_t ids[] = {5, 4, 6, 6, 7, 2, 1, 9, 7, 8, 6, 3, 0};
    ck_assert_int_eq(t.n, 13);
    ck_assert_int_eq(t.n_train, 13);
    ck_assert_mem_eq(t.tokens, ids, sizeof(ids));
    td_text_free(&t);
    ck_assert_ptr_null(t.tokens);
    ck_assert_int_eq(t.n, 0);
    td_text_free(&t);

    /* UTF-8 is modelled byte by byte: "né" is n, 0xc3, 0xa9. */
    const uint8_t utf8[] = {'n', 0xc3, 0xa9, 'n', 0xc3, 0xa9};
    load_ok(utf8, sizeof(utf8), 0.0, 2, &t);
    ck_assert_int_eq(t.vocab.size, 3);
    ck_assert_int_eq(t.vocab.byte[0], 'n');
    ck_assert_int_eq(t.vocab.byte[1], 0xa9);
    ck_assert_int_eq(t.vocab.byte[2], 0xc3);
    const uint8_t utf8_ids[] = {0, 2, 1, 0, 2, 1};
    ck_assert_mem_eq(t.tokens, utf8_ids, sizeof(utf8_ids));
    td_text_free(&t);

    /* Every byte value, NUL included: V = 256 and id = byte. */
    uint8_t all[512];
    for (int i = 0; i < 512; i++) all[i] = (uint8_t)(255 - i % 256);
    load_ok(all, sizeof(all), 0.0, 8, &t);
    ck_assert_int_eq(t.vocab.size, 256);
    for (int i = 0; i < 512; i++) ck_assert_int_eq(t.tokens[i], all[i]);
    td_text_free(&t);

    /* One distinct byte: V = 1. */
    load_ok("aaaa", 4, 0.0, 3, &t);
    ck_assert_int_eq(t.vocab.size, 1);
    ck_assert_int_eq(t.tokens[3], 0);
    td_text_free(&t);
}
END_TEST

START_TEST(text_vocab_init_checks_order)
{
    struct td_vocab v, before;
    const uint8_t ok[] = {'a', 'b', 'z'};
    char err[256] = "";
    ck_assert_int_eq(td_vocab_init(&v, ok, 3, err, sizeof(err)), TD_OK);
    ck_assert_int_eq(v.size, 3);
    ck_assert_int_eq(v.id['z'], 2);
    ck_assert_int_eq(v.id['c'], -1);
    before = v;
    const uint8_t dup[] = {'a', 'b', 'b'}, down[] = {'b', 'a'};
    ck_assert_int_eq(td_vocab_init(&v, dup, 3, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_str_eq(err, "byte 0x62 at index 2 does not follow 0x62 (the bytes must be strictly "
                          "increasing)");
    ck_assert_int_eq(td_vocab_init(&v, down, 2, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_str_eq(err, "byte 0x61 at index 1 does not follow 0x62 (the bytes must be strictly "
                          "increasing)");
    ck_assert_int_eq(td_vocab_init(&v, ok, 0, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_str_eq(err, "a vocabulary holds 1 to 256 bytes, not 0");
    ck_assert_int_eq(td_vocab_init(&v, ok, 257, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_mem_eq(&v, &before, sizeof(v));
}
END_TEST

START_TEST(text_split_sizes)
{
    /* n, val_fraction, context, n_train = n - floor(val_fraction * n) */
    static const struct {
        size_t n;
        double val;
        int64_t context, n_train;
    } cases[] = {
        {1000, 0.1, 8, 900},
        {1000, 0.0, 8, 1000},
        {10, 0.25, 1, 8},
        {1000, 0.75, 8, 250},
        /* The smallest texts that fit: each part exactly context + 1 tokens. */
        {10, 0.5, 4, 5},
        {5, 0.0, 4, 5},
    };
    uint8_t *s = alphabet_text("abc", 1000, 1, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct td_text t;
        load_ok(s, cases[i].n, cases[i].val, cases[i].context, &t);
        ck_assert_int_eq(t.n, (int64_t)cases[i].n);
        ck_assert_msg(t.n_train == cases[i].n_train, "case %zu: n_train %lld, expected %lld", i,
                      (long long)t.n_train, (long long)cases[i].n_train);
        td_text_free(&t);
    }
    free(s);
}
END_TEST

/* Expects td_text_from_bytes (path NULL) or td_text_load to fail with
 * status want and exactly message msg, leaving t zeroed. */
static void expect_text_error(const char *path, const void *bytes, size_t n, double val,
                              int64_t context, enum td_status want, const char *msg)
{
    struct td_text t;
    memset(&t, 0xab, sizeof(t));
    char err[512] = "";
    enum td_status st =
        path ? td_text_load(path, val, context, &t, err, sizeof(err))
             : td_text_from_bytes(bytes, n, "mem", val, context, &t, err, sizeof(err));
    ck_assert_msg(st == want, "status %s, expected %s (%s)", td_status_name(st),
                  td_status_name(want), err);
    ck_assert_str_eq(err, msg);
    ck_assert_ptr_null(t.tokens);
    ck_assert_int_eq(t.n, 0);
    ck_assert_int_eq(t.vocab.size, 0);
}

START_TEST(text_load_errors)
{
    char msg[1024];
    const char *empty = tpath("empty.txt");
    write_bytes(empty, "", 0, 0);
    snprintf(msg, sizeof(msg), "%s: empty file, no tokens", empty);
    expect_text_error(empty, NULL, 0, 0.1, 4, TD_ERR_FORMAT, msg);
    expect_text_error(NULL, "", 0, 0.1, 4, TD_ERR_FORMAT, "mem: empty file, no tokens");

    const char *missing = tpath("no-such.txt");
    snprintf(msg, sizeof(msg), "%s: cannot open: No such file or directory", missing);
    expect_text_error(missing, NULL, 0, 0.1, 4, TD_ERR_IO, msg);

    snprintf(msg, sizeof(msg), "%s: is a directory, not a text file", tmp_dir);
    expect_text_error(tmp_dir, NULL, 0, 0.1, 4, TD_ERR_IO, msg);

    /* 9 tokens, half for validation: floor(4.5) = 4 < 5. */
    const char *nine = tpath("nine.txt");
    write_bytes(nine, "abcdefghi", 9, 0);
    snprintf(msg, sizeof(msg),
             "%s: too short for context 4: 9 tokens split into 5 for training and 4 for validation "
             "(val_fraction 0.5); each part needs at least 5 (context + 1)",
             nine);
    expect_text_error(nine, NULL, 0, 0.5, 4, TD_ERR_FORMAT, msg);
    /* The training part short, the validation part long enough. */
    expect_text_error(NULL, "abcdefghi", 9, 0.6, 4, TD_ERR_FORMAT,
                      "mem: too short for context 4: 9 tokens split into 4 for training and 5 for "
                      "validation (val_fraction 0.6); each part needs at least 5 (context + 1)");
    expect_text_error(
        NULL, "abcd", 4, 0.0, 4, TD_ERR_FORMAT,
        "mem: too short for context 4: 4 tokens; training needs at least 5 (context + 1)");
    /* A tiny validation fraction that rounds to no validation tokens. */
    expect_text_error(NULL, "abcdefghi", 9, 0.01, 2, TD_ERR_FORMAT,
                      "mem: too short for context 2: 9 tokens split into 9 for training and 0 for "
                      "validation (val_fraction 0.01); each part needs at least 3 (context + 1)");

    expect_text_error(nine, NULL, 0, 1.0, 4, TD_ERR_ARG,
                      strcat(strcpy(msg, nine), ": val_fraction 1 is not in [0, 1)"));
    expect_text_error(NULL, "abcdefghi", 9, -0.1, 4, TD_ERR_ARG,
                      "mem: val_fraction -0.1 is not in [0, 1)");
    expect_text_error(NULL, "abcdefghi", 9, NAN, 4, TD_ERR_ARG,
                      "mem: val_fraction nan is not in [0, 1)");
    expect_text_error(NULL, "abcdefghi", 9, 0.0, 0, TD_ERR_ARG,
                      "mem: context 0 is not a window length in [1, 2^48]");
    expect_text_error(NULL, NULL, 9, 0.0, 4, TD_ERR_ARG, "mem: NULL bytes");
    char err[256];
    ck_assert_int_eq(td_text_load(nine, 0.1, 4, NULL, err, sizeof(err)), TD_ERR_ARG);
}
END_TEST

START_TEST(text_load_file_matches_bytes)
{
    uint8_t *s = alphabet_text("0123456789 \n", 3000, 2, NULL);
    const char *p = tpath("digits.txt");
    write_bytes(p, s, 3000, 0);
    struct td_text a, b;
    char err[512] = "";
    ck_assert_msg(td_text_load(p, 0.2, 16, &a, err, sizeof(err)) == TD_OK, "%s", err);
    load_ok(s, 3000, 0.2, 16, &b);
    ck_assert_int_eq(a.n, 3000);
    ck_assert_int_eq(a.n_train, 2400);
    ck_assert_mem_eq(&a.vocab, &b.vocab, sizeof(a.vocab));
    ck_assert_mem_eq(a.tokens, b.tokens, 3000);
    td_text_free(&a);
    td_text_free(&b);

    /* A pipe has no size: read to its end. */
    FILE *pipe = popen("printf 'abcabcabc'", "r");
    ck_assert_ptr_nonnull(pipe);
    char dev[64];
    snprintf(dev, sizeof(dev), "/dev/fd/%d", fileno(pipe));
    ck_assert_msg(td_text_load(dev, 0.0, 2, &a, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(a.n, 9);
    ck_assert_int_eq(a.vocab.size, 3);
    td_text_free(&a);
    pclose(pipe);
    free(s);
}
END_TEST

/* ---- training windows ---- */

/* Start of row b as documented: the high half of r * (n_train - context). */
static int64_t expected_start(uint64_t seed, int64_t step, int64_t b, int64_t starts)
{
    uint64_t r = td_rng_u64(seed, TD_RNG_STREAM_TEXT + (uint64_t)step, (uint64_t)b);
    return (int64_t)(((unsigned __int128)r * (uint64_t)starts) >> 64);
}

START_TEST(text_sample_windows_shifted_and_in_range)
{
    /* Training part lowercase, validation part uppercase: a sampled window
     * reaching into validation would show an uppercase id (< 26). */
    enum { N = 4000, C = 33, B = 16 };
    const char *lower = "abcdefghijklmnopqrstuvwxyz", *upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    int32_t k[N];
    uint8_t *s = alphabet_text(lower, N, 3, k);
    uint8_t *val = alphabet_text(upper, N / 4, 4, NULL);
    memcpy(s + N - N / 4, val, N / 4);
    struct td_text t;
    load_ok(s, N, 0.25, C, &t);
    ck_assert_int_eq(t.vocab.size, 52);
    ck_assert_int_eq(t.n_train, N - N / 4);
    int32_t x[B * C], y[B * C];
    for (int64_t step = 0; step < 50; step++) {
        ck_assert_int_eq(td_text_sample(&t, 9, step, B, C, x, y), TD_OK);
        for (int b = 0; b < B; b++) {
            int64_t s0 = expected_start(9, step, b, t.n_train - C);
            ck_assert_int_le(s0 + C, t.n_train - 1);
            for (int j = 0; j < C; j++) {
                /* Uppercase ids are 0..25, lowercase 26..51. */
                ck_assert_int_eq(x[b * C + j], 26 + k[s0 + j]);
                ck_assert_int_eq(y[b * C + j], 26 + k[s0 + j + 1]);
                if (j + 1 < C) ck_assert_int_eq(y[b * C + j], x[b * C + j + 1]);
            }
        }
    }
    td_text_free(&t);
    free(s);
    free(val);
}
END_TEST

START_TEST(text_sample_reaches_every_start)
{
    /* 12 distinct bytes, context 9: starts 0, 1, 2, told apart by x[0]. */
    struct td_text t;
    load_ok("abcdefghijkl", 12, 0.0, 9, &t);
    enum { B = 3000 };
    static int32_t x[B * 9], y[B * 9];
    ck_assert_int_eq(td_text_sample(&t, 1, 0, B, 9, x, y), TD_OK);
    int count[3] = {0};
    for (int b = 0; b < B; b++) {
        ck_assert_int_le(x[b * 9], 2);
        for (int j = 0; j < 9; j++) {
            ck_assert_int_eq(x[b * 9 + j], x[b * 9] + j);
            ck_assert_int_eq(y[b * 9 + j], x[b * 9] + j + 1);
        }
        count[x[b * 9]]++;
    }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(count[i] > 850 && count[i] < 1150, "start %d drawn %d times of %d", i,
                      count[i], B);
    td_text_free(&t);
}
END_TEST

START_TEST(text_sample_is_pure)
{
    enum { N = 5000, C = 16, B = 8 };
    uint8_t *s = alphabet_text("abcdefghijklmnopqrstuvwxyz .,\n", N, 5, NULL);
    struct td_text t;
    load_ok(s, N, 0.1, C, &t);
    int32_t x1[B * C], y1[B * C], x2[B * C], y2[B * C], x3[B * C], y3[B * C];
    ck_assert_int_eq(td_text_sample(&t, 7, 100, B, C, x1, y1), TD_OK);
    /* Other calls in between change nothing: no hidden state. */
    ck_assert_int_eq(td_text_sample(&t, 7, 3, B, C, x3, y3), TD_OK);
    ck_assert_int_eq(td_text_sample(&t, 7, 100, B, C, x2, y2), TD_OK);
    ck_assert_mem_eq(x1, x2, sizeof(x1));
    ck_assert_mem_eq(y1, y2, sizeof(y1));
    ck_assert(memcmp(x1, x3, sizeof(x1)) != 0);
    ck_assert_int_eq(td_text_sample(&t, 7, 101, B, C, x3, y3), TD_OK);
    ck_assert(memcmp(x1, x3, sizeof(x1)) != 0);
    ck_assert_int_eq(td_text_sample(&t, 8, 100, B, C, x3, y3), TD_OK);
    ck_assert(memcmp(x1, x3, sizeof(x1)) != 0);
    /* Row b depends on b alone: a smaller batch is a prefix. */
    ck_assert_int_eq(td_text_sample(&t, 7, 100, 3, C, x3, y3), TD_OK);
    ck_assert_mem_eq(x3, x1, 3 * C * sizeof(int32_t));
    ck_assert_mem_eq(y3, y1, 3 * C * sizeof(int32_t));
    /* Rows of one batch differ (start collisions among 8 of 4484 are rare). */
    ck_assert(memcmp(x1, x1 + C, C * sizeof(int32_t)) != 0);

    /* Bad arguments write nothing. A context of n_train leaves no start;
     * xl and yl hold such a window, so a faulty check cannot overrun them. */
    static int32_t xl[4500], yl[4500], guard[4500];
    ck_assert_int_eq(t.n_train, 4500);
    memset(guard, 0x5a, sizeof(guard));
    memcpy(xl, guard, sizeof(guard));
    ck_assert_int_eq(td_text_sample(&t, 7, 100, 0, C, xl, yl), TD_ERR_ARG);
    ck_assert_int_eq(td_text_sample(&t, 7, 100, B, 0, xl, yl), TD_ERR_ARG);
    ck_assert_int_eq(td_text_sample(&t, 7, 100, 1, t.n_train, xl, yl), TD_ERR_ARG);
    ck_assert_int_eq(td_text_sample(&t, 7, 100, B, C, NULL, yl), TD_ERR_ARG);
    ck_assert_int_eq(td_text_sample(NULL, 7, 100, B, C, xl, yl), TD_ERR_ARG);
    ck_assert_mem_eq(xl, guard, sizeof(guard));
    /* The longest context the training part allows: one start. */
    ck_assert_int_eq(td_text_sample(&t, 7, 100, 1, t.n_train - 1, xl, yl), TD_OK);
    ck_assert_int_eq(xl[0], t.tokens[0]);
    ck_assert_int_eq(yl[t.n_train - 2], t.tokens[t.n_train - 1]);
    td_text_free(&t);
    free(s);
}
END_TEST

/* ---- validation windows ---- */

START_TEST(text_val_windows_cover_once)
{
    /* 900 training bytes from a..z, then 100 validation bytes 0x80 + i: the
     * validation byte at offset i has id 26 + i, so a target names its place. */
    enum { N = 1000, NV = 100, C = 7, B = 4 };
    uint8_t *s = alphabet_text("abcdefghijklmnopqrstuvwxyz", N, 6, NULL);
    for (int i = 0; i < NV; i++) s[N - NV + i] = (uint8_t)(0x80 + i);
    struct td_text t;
    load_ok(s, N, 0.1, C, &t);
    ck_assert_int_eq(t.n_train, N - NV);
    ck_assert_int_eq(t.vocab.size, 26 + NV);
    /* (100 - 1) / 7 = 14 windows: targets at offsets 1..98; offset 99 is
     * the dropped partial window, offset 0 only context. */
    ck_assert_int_eq(td_text_val_windows(&t, C), 14);
    int seen[NV] = {0};
    int32_t x[B * C], y[B * C];
    const int64_t want_count[] = {4, 4, 4, 2};
    for (int64_t i = 0; i < 4; i++) {
        memset(x, 0x5a, sizeof(x));
        memset(y, 0x5a, sizeof(y));
        int64_t got = td_text_val_batch(&t, i, B, C, x, y);
        ck_assert_int_eq(got, want_count[i]);
        for (int64_t r = 0; r < got; r++)
            for (int j = 0; j < C; j++) {
                int32_t off = y[r * C + j] - 26;
                ck_assert_int_ge(off, 1);
                ck_assert_int_lt(off, NV);
                ck_assert_int_eq(off, (i * B + r) * C + j + 1);
                seen[off]++;
                ck_assert_int_eq(x[r * C + j], y[r * C + j] - 1);
            }
        for (int64_t e = got * C; e < B * C; e++) {
            ck_assert_int_eq(x[e], 0);
            ck_assert_int_eq(y[e], 0);
        }
    }
    ck_assert_int_eq(seen[0], 0);
    for (int off = 1; off <= 98; off++) ck_assert_int_eq(seen[off], 1);
    ck_assert_int_eq(seen[99], 0);

    /* Past the end, or bad arguments: 0 and nothing written. */
    memset(x, 0x5a, sizeof(x));
    ck_assert_int_eq(td_text_val_batch(&t, 4, B, C, x, y), 0);
    ck_assert_int_eq(td_text_val_batch(&t, -1, B, C, x, y), 0);
    ck_assert_int_eq(td_text_val_batch(&t, 0, 0, C, x, y), 0);
    ck_assert_int_eq(td_text_val_batch(&t, 0, B, 0, x, y), 0);
    ck_assert_int_eq(td_text_val_batch(&t, 0, B, 100, x, y), 0);
    for (size_t e = 0; e < B * C; e++) ck_assert_int_eq(x[e], 0x5a5a5a5a);
    /* One batch holding every window, and a context that fits exactly once. */
    int32_t xa[14 * C], ya[14 * C];
    ck_assert_int_eq(td_text_val_batch(&t, 0, 14, C, xa, ya), 14);
    ck_assert_int_eq(ya[14 * C - 1] - 26, 98);
    ck_assert_int_eq(td_text_val_windows(&t, 99), 1);
    ck_assert_int_eq(td_text_val_windows(&t, 100), 0);
    td_text_free(&t);

    load_ok(s, N, 0.0, C, &t);
    ck_assert_int_eq(td_text_val_windows(&t, C), 0);
    ck_assert_int_eq(td_text_val_batch(&t, 0, B, C, x, y), 0);
    td_text_free(&t);
    free(s);
}
END_TEST

/* ---- encode and decode ---- */

START_TEST(text_encode_decode)
{
    struct td_text t;
    load_ok("hello, world\n", 13, 0.0, 4, &t);
    const struct td_vocab *v = &t.vocab;
    int32_t ids[16];
    char err[256] = "";
    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)"world", 5, ids, err, sizeof(err)), TD_OK);
    const int32_t want[] = {9, 7, 8, 6, 3};
    ck_assert_mem_eq(ids, want, sizeof(want));
    uint8_t out[16];
    ck_assert_uint_eq(td_vocab_decode(v, ids, 5, out), 0);
    ck_assert_mem_eq(out, "world", 5);
    const char *all = "hello, world\n";
    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)all, 13, ids, err, sizeof(err)), TD_OK);
    for (int i = 0; i < 13; i++) ck_assert_int_eq(ids[i], t.tokens[i]);
    ck_assert_uint_eq(td_vocab_decode(v, ids, 13, out), 0);
    ck_assert_mem_eq(out, all, 13);

    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)"hello!", 6, ids, err, sizeof(err)),
                     TD_ERR_ARG);
    ck_assert_str_eq(err, "byte '!' at offset 5 is not in the vocabulary (10 bytes)");
    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)"w\xe2\x80\x99", 4, ids, err, sizeof(err)),
                     TD_ERR_ARG);
    ck_assert_str_eq(err, "byte '\\xe2' at offset 1 is not in the vocabulary (10 bytes)");
    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)"l'", 2, ids, err, sizeof(err)),
                     TD_ERR_ARG);
    ck_assert_str_eq(err, "byte '\\x27' at offset 1 is not in the vocabulary (10 bytes)");
    ck_assert_int_eq(td_vocab_encode(v, (const uint8_t *)"\t", 1, ids, err, sizeof(err)),
                     TD_ERR_ARG);
    ck_assert_str_eq(err, "byte '\\x09' at offset 0 is not in the vocabulary (10 bytes)");
    ck_assert_int_eq(td_vocab_encode(v, NULL, 0, NULL, err, sizeof(err)), TD_OK);

    /* Ids outside [0, V) decode to '?' and are counted. */
    const int32_t odd[] = {5, -1, 10, 4, 1 << 20};
    ck_assert_uint_eq(td_vocab_decode(v, odd, 5, out), 3);
    ck_assert_mem_eq(out, "h??e?", 5);
    td_text_free(&t);
}
END_TEST

/* ---- the vocabulary in HDF5 ---- */

static enum td_status write_vocab_cb(hid_t file, const void *ctx, char *err, size_t errlen)
{
    return td_vocab_write_h5(file, ctx, "vocab.h5", err, errlen);
}

START_TEST(vocab_h5_round_trip)
{
    struct td_text t;
    load_ok("hello, world\n", 13, 0.0, 4, &t);
    const char *p = tpath("vocab.h5");
    char err[512] = "";
    ck_assert_msg(td_h5_write_atomic(p, "weights", write_vocab_cb, &t.vocab, err, sizeof(err)) ==
                      TD_OK,
                  "%s", err);

    /* What h5py sees: uint8 [10], the bytes in order. */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "vocab", H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    ck_assert(H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 &&
              H5Tget_sign(type) == H5T_SGN_NONE);
    ck_assert_int_eq(H5Sget_simple_extent_ndims(space), 1);
    hsize_t dim;
    H5Sget_simple_extent_dims(space, &dim, NULL);
    ck_assert_uint_eq(dim, 10);
    uint8_t bytes[10];
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes), 0);
    ck_assert_mem_eq(bytes, "\n ,dehlorw", 10);
    H5Tclose(type);
    H5Sclose(space);

    /* From the open file and from the path. */
    struct td_vocab v;
    memset(&v, 0, sizeof(v));
    ck_assert_msg(td_vocab_read_h5(f, &v, p, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_mem_eq(&v, &t.vocab, sizeof(v));
    H5Dclose(d);
    H5Fclose(f);
    memset(&v, 0, sizeof(v));
    ck_assert_msg(td_vocab_load(p, &v, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_mem_eq(&v, &t.vocab, sizeof(v));

    /* A full 256-byte vocabulary. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    struct td_vocab big;
    ck_assert_int_eq(td_vocab_init(&big, all, 256, err, sizeof(err)), TD_OK);
    const char *pb = tpath("vocab256.h5");
    ck_assert_msg(td_h5_write_atomic(pb, "weights", write_vocab_cb, &big, err, sizeof(err)) ==
                      TD_OK,
                  "%s", err);
    ck_assert_msg(td_vocab_load(pb, &v, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_mem_eq(&v, &big, sizeof(v));

    /* Writing refuses an invalid vocabulary, and a second `vocab`. */
    struct td_vocab bad = t.vocab;
    bad.byte[3] = ',';
    f = h5_new(tpath("refused.h5"));
    struct td_h5_quiet q;
    td_h5_quiet_begin(&q);
    ck_assert_int_eq(td_vocab_write_h5(f, &bad, "refused.h5", err, sizeof(err)), TD_ERR_ARG);
    ck_assert_str_eq(err, "refused.h5: not a valid vocabulary: byte 0x2c at index 3 does not "
                          "follow 0x2c (the bytes must be strictly increasing)");
    ck_assert_int_eq(td_vocab_write_h5(f, &t.vocab, "refused.h5", err, sizeof(err)), TD_OK);
    ck_assert_int_eq(td_vocab_write_h5(f, &t.vocab, "refused.h5", err, sizeof(err)),
                     TD_ERR_BACKEND);
    td_h5_quiet_end(&q);
    H5Fclose(f);
    td_text_free(&t);
}
END_TEST

static void expect_vocab_error(const char *path, enum td_status want, const char *msg_after_path)
{
    struct td_vocab v;
    memset(&v, 0x3c, sizeof(v));
    struct td_vocab before = v;
    char err[512] = "", msg[1024];
    enum td_status st = td_vocab_load(path, &v, err, sizeof(err));
    ck_assert_msg(st == want, "%s: status %s, expected %s (%s)", path, td_status_name(st),
                  td_status_name(want), err);
    if (msg_after_path) {
        snprintf(msg, sizeof(msg), "%s: %s", path, msg_after_path);
        ck_assert_str_eq(err, msg);
    } else {
        ck_assert_msg(strstr(err, path), "message \"%s\" lacks the path", err);
    }
    ck_assert_mem_eq(&v, &before, sizeof(v));
}

/* A file holding one dataset `name`, on which td_vocab_load fails with msg. */
static void expect_vocab_file_error(const char *file, const char *name, hid_t ft, hid_t mt,
                                    int rank, const hsize_t *dims, const void *data,
                                    const char *msg)
{
    const char *p = tpath(file);
    hid_t f = h5_new(p);
    h5_put(f, name, ft, mt, rank, dims, data);
    H5Fclose(f);
    expect_vocab_error(p, TD_ERR_FORMAT, msg);
}

START_TEST(vocab_h5_errors)
{
    const uint8_t ok3[3] = {'a', 'b', 'c'}, abb[3] = {'a', 'b', 'b'}, many[300] = {0};
    const int32_t wide[3] = {97, 98, 99};
    const float w[3] = {1, 2, 3};
    const hsize_t d3[1] = {3}, d23[2] = {1, 3}, d300[1] = {300};
    expect_vocab_file_error("vocab-int32.h5", "vocab", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d3, wide,
                            "dataset 'vocab' is int32, expected uint8");
    expect_vocab_file_error("vocab-int8.h5", "vocab", H5T_STD_I8LE, H5T_NATIVE_INT8, 1, d3, ok3,
                            "dataset 'vocab' is int8, expected uint8");
    expect_vocab_file_error("vocab-rank2.h5", "vocab", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d23, ok3,
                            "dataset 'vocab' has shape [1,3], expected [V] with V in 1..256");
    expect_vocab_file_error("vocab-scalar.h5", "vocab", H5T_STD_U8LE, H5T_NATIVE_UINT8, 0, NULL,
                            ok3, "dataset 'vocab' has shape [], expected [V] with V in 1..256");
    expect_vocab_file_error("vocab-300.h5", "vocab", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, d300, many,
                            "dataset 'vocab' has shape [300], expected [V] with V in 1..256");
    expect_vocab_file_error("vocab-dup.h5", "vocab", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, d3, abb,
                            "dataset 'vocab' is not a vocabulary: byte 0x62 at index 2 does not "
                            "follow 0x62 (the bytes must be strictly increasing)");
    expect_vocab_file_error("vocab-none.h5", "weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d3, w,
                            "no vocabulary (dataset 'vocab'): not a text model's weights");

    expect_vocab_error(tpath("vocab-missing.h5"), TD_ERR_IO, NULL);
    const char *text = tpath("vocab-text.h5");
    write_bytes(text, "not hdf5", 8, 0);
    expect_vocab_error(text, TD_ERR_FORMAT, NULL);
}
END_TEST

/* ---- the King James Bible (tools/kjv.sh), when `bible` is installed ---- */

START_TEST(kjv_text)
{
    if (!kjv_script) {
        printf("kjv_text: no path to tools/kjv.sh given, nothing to check\n");
        return;
    }
    /* Without `bible` the script would install it: not from a test. */
    if (system("command -v bible >/dev/null 2>&1") != 0) {
        printf("kjv_text: `bible` (Debian bible-kjv) not installed, nothing to check\n");
        return;
    }
    const char *out = tpath("kjv.txt");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", kjv_script, out);
    ck_assert_int_eq(system(cmd), 0);
    struct td_text t;
    char err[512] = "";
    ck_assert_msg(td_text_load(out, 0.1, 256, &t, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(t.n, 4298239);
    ck_assert_int_eq(t.n_train, 4298239 - 429823);
    const char *bytes = "\n !'(),-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWYZ"
                        "abcdefghijklmnopqrstuvwxyz";
    ck_assert_int_eq(t.vocab.size, 73);
    ck_assert_mem_eq(t.vocab.byte, bytes, 73);
    const char *head =
        "\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n";
    uint8_t dec[80];
    int32_t ids[80];
    size_t hn = strlen(head);
    for (size_t i = 0; i < hn; i++) ids[i] = t.tokens[i];
    ck_assert_uint_eq(td_vocab_decode(&t.vocab, ids, hn, dec), 0);
    ck_assert_mem_eq(dec, head, hn);
    td_text_free(&t);

    /* A second run leaves the file alone. */
    struct stat before, after;
    ck_assert_int_eq(stat(out, &before), 0);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(stat(out, &after), 0);
    ck_assert(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
              before.st_mtim.tv_nsec == after.st_mtim.tv_nsec && after.st_size == 4298239);
    unlink(out);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, idx_round_trip);
    tcase_add_test(tc, idx_bad_inputs);
    tcase_add_test(tc, fashion_mnist_missing_dir);
    tcase_add_test(tc, fashion_mnist_installed);
    tcase_add_test(tc, h5data_good);
    tcase_add_test(tc, h5data_bad);
    tcase_add_test(tc, h5_error_printer_restored);
    tcase_add_test(tc, batcher_partial_covers_all);
    tcase_add_test(tc, batcher_drop_last);
    tcase_add_test(tc, batcher_seed_reproducible);
    tcase_add_test(tc, batcher_restore_position);
    tcase_add_test(tc, batcher_pixels);
    tcase_add_test(tc, pixels_every_byte);
    tcase_add_test(tc, batcher_threads);
    tcase_add_test(tc, batcher_bad_args);
    tcase_add_test(tc, weights_round_trip);
    tcase_add_test(tc, weights_import_rejects);
    tcase_add_test(tc, checkpoint_round_trip);
    tcase_add_test(tc, checkpoint_rejects);
    tcase_add_test(tc, checkpoint_interrupted_save);
    tcase_add_test(tc, checkpoint_truncated);
    tcase_add_test(tc, crc64_known_values);
    tcase_add_test(tc, seal_layout);
    tcase_add_test(tc, seal_every_byte);
    tcase_add_test(tc, seal_foreign_files);
    tcase_add_test(tc, str_attr_checked_first);
    tcase_add_test(tc, text_vocab_of_known_string);
    tcase_add_test(tc, text_vocab_init_checks_order);
    tcase_add_test(tc, text_split_sizes);
    tcase_add_test(tc, text_load_errors);
    tcase_add_test(tc, text_load_file_matches_bytes);
    tcase_add_test(tc, text_sample_windows_shifted_and_in_range);
    tcase_add_test(tc, text_sample_reaches_every_start);
    tcase_add_test(tc, text_sample_is_pure);
    tcase_add_test(tc, text_val_windows_cover_once);
    tcase_add_test(tc, text_encode_decode);
    tcase_add_test(tc, vocab_h5_round_trip);
    tcase_add_test(tc, vocab_h5_errors);
    tcase_add_test(tc, kjv_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    kjv_script = argc > 1 ? argv[1] : NULL;
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/td_test_io_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = tu_run_suite(io_suite());
    cleanup();
    return rc;
}
