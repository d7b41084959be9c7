/* Writes the fuzzers' seed corpora from real files: IDX pairs (plain and
 * gzip), HDF5 data sets written with HDF5's API, and the weights and
 * checkpoint files Tandem itself writes for the models the targets load.
 *   make_seeds DIR   (creates DIR/<target>/ for each target) */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fuzz.h"
#include "io/weights.h"

static const char *dir;

static void put(const char *target, const char *name, const unsigned char *prefix, size_t np,
                const unsigned char *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    FZ_ASSERT(f && fwrite(prefix, 1, np, f) == np && fwrite(data, 1, n, f) == n);
    FZ_ASSERT(fclose(f) == 0);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    FZ_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    FZ_ASSERT(b && fread(b, 1, *n, f) == *n);
    fclose(f);
    remove(path);
    return b;
}

/* Copies the file at path into DIR/target/name after each prefix byte. */
static void put_file(const char *target, const char *name, const char *path, const char *flags)
{
    size_t n;
    unsigned char *b = slurp(path, &n);
    for (const char *c = flags; *c; c++) {
        char full[256];
        unsigned char flag = (unsigned char)(*c - '0');
        snprintf(full, sizeof(full), "%s-%u", name, flag);
        put(target, full, &flag, 1, b, n);
    }
    free(b);
}

static size_t gzip_bytes(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream z = {0};
    FZ_ASSERT(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (unsigned char *)in, z.avail_in = (uInt)n;
    z.next_out = out, z.avail_out = (uInt)cap;
    FZ_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t got = z.total_out;
    deflateEnd(&z);
    return got;
}

/* Five 3x4 images and their labels; input = split (2 bytes) + images + labels. */
static void idx_seeds(void)
{
    unsigned char img[16 + 60], lab[8 + 5], gi[256], gl[256], in[1024];
    const unsigned char ih[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4};
    const unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, 5};
    memcpy(img, ih, 16);
    for (int i = 0; i < 60; i++) img[16 + i] = (unsigned char)(i * 37 + 11);
    memcpy(lab, lh, 8);
    for (int i = 0; i < 5; i++) lab[8 + i] = (unsigned char)(i % 4);
    for (int gz = 0; gz < 2; gz++) {
        size_t ni = gz ? gzip_bytes(img, sizeof(img), gi, sizeof(gi)) : sizeof(img);
        size_t nl = gz ? gzip_bytes(lab, sizeof(lab), gl, sizeof(gl)) : sizeof(lab);
        in[0] = (unsigned char)ni, in[1] = (unsigned char)(ni >> 8);
        memcpy(in + 2, gz ? gi : img, ni);
        memcpy(in + 2 + ni, gz ? gl : lab, nl);
        put("fuzz_idx", gz ? "pair-gzip" : "pair-plain", NULL, 0, in, 2 + ni + nl);
    }
}

static void h5_put(hid_t f, const char *name, hid_t ft, hid_t mt, int rank, const hsize_t *dims,
                   const void *data, int chunk)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk) H5Pset_chunk(dcpl, rank, dims), H5Pset_deflate(dcpl, 1);
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ft, s, lcpl, dcpl, H5P_DEFAULT);
    FZ_ASSERT(d >= 0 && H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d), H5Sclose(s), H5Pclose(dcpl), H5Pclose(lcpl);
}

/* An HDF5 file with or without a 512-byte user block (for resealing). */
static hid_t h5_new(const char *path, int userblock)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (userblock) H5Pset_userblock(fcpl, 512);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    FZ_ASSERT(f >= 0);
    return f;
}

static void h5data_seeds(const char *tmp)
{
    float x[4 * 2 * 3];
    unsigned char xb[4 * 6];
    int16_t y[4] = {2, 0, 3, 1};
    for (int i = 0; i < 24; i++) x[i] = 0.25f * (float)i, xb[i] = (unsigned char)(i * 10);
    hsize_t xd[3] = {4, 2, 3}, yd[1] = {4};
    for (int v = 0; v < 4; v++) {
        int ub = v & 1, u8 = v & 2;
        hid_t f = h5_new(tmp, ub);
        h5_put(f, "x", u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT,
               3, xd, u8 ? (const void *)xb : x, u8);
        h5_put(f, "y", H5T_STD_I16LE, H5T_NATIVE_INT16, 1, yd, y, 0);
        H5Fclose(f);
        put_file("fuzz_h5data", u8 ? "uint8-chunked" : "float32", tmp, ub ? "1" : "0");
    }
}

static void weights_seeds(const char *tmp)
{
    struct td_graph *g = fz_small_model(2);
    struct td_params *p = td_graph_params(g);
    char err[512];
    FZ_ASSERT(td_weights_export(p, tmp, err, sizeof(err)) == TD_OK);
    put_file("fuzz_weights", "sealed", tmp, "0123");
    /* The same parameters as another program writes them: no user block. */
    hid_t f = h5_new(tmp, 0);
    for (int i = 0; i < p->count; i++) {
        hsize_t dims[TD_MAX_DIMS];
        for (int k = 0; k < p->info[i].shape.rank; k++) dims[k] = (hsize_t)p->info[i].shape.dim[k];
        h5_put(f, p->info[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->info[i].shape.rank, dims,
               p->value + p->info[i].offset, i == 0);
    }
    H5Fclose(f);
    put_file("fuzz_weights", "plain", tmp, "02");
    td_graph_free(g);
}

static void checkpoint_seeds(const char *tmp)
{
    struct fz_ckpt c;
    fz_ckpt_init(&c, 2);
    char err[512];
    FZ_ASSERT(td_ckpt_save(tmp, c.e, c.n, err, sizeof(err)) == TD_OK);
    put_file("fuzz_checkpoint", "sealed", tmp, "01");
    td_graph_free(c.g);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    mkdir(dir, 0755);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/tmp.h5", dir);
    idx_seeds();
    h5data_seeds(tmp);
    weights_seeds(tmp);
    checkpoint_seeds(tmp);
    static const char verses[] = "\nGenesis 1\n\n  1 In the beginning God created the heaven "
                                 "and the earth.\n  2 And the earth was without form, and void."
                                 "\n";
    put("fuzz_text", "kjv", (const unsigned char *)"\x08\x1a", 2, (const unsigned char *)verses,
        sizeof(verses) - 1);
    put("fuzz_text", "utf8", (const unsigned char *)"\x02\x00", 2,
        (const unsigned char *)"na\xc3\xafve caf\xc3\xa9 na\xc3\xafve", 19);
    return 0;
}
