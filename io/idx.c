#include "io/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "graph/memory.h"
#include "io/ioutil.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
/* Bytes converted per read; also bounds what one gzread may lose of its
 * count when a gzip stream ends early (zlib then reports 0 for that call). */
#define IDX_CHUNK (1u << 16)

/* Deflate's largest compression ratio: a gzip file of S bytes never holds
 * more than S * 1032 bytes of data. */
#define DEFLATE_MAX_RATIO 1032u

struct idx_file {
    gzFile f;
    const char *path;
    int64_t dim[3];
    int rank;
    int plain;          /* not gzip'ed */
    int regular;        /* a regular file, whose size is known (not a pipe) */
    uint64_t file_size; /* bytes on disk */
    uint64_t max_data;  /* most bytes the data after the header can hold */
};

/* Reads up to n bytes; *got is what arrived. TD_ERR_FORMAT on corrupt gzip
 * data. A short count is not an error here: callers name what was expected. */
static enum td_status read_bytes(struct idx_file *h, void *buf, size_t n, size_t *got, char *err,
                                 size_t errlen)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_CHUNK ? n - *got : IDX_CHUNK;
        int r = gzread(h->f, (unsigned char *)buf + *got, (unsigned)want);
        if (r < 0) {
            int code;
            const char *msg = gzerror(h->f, &code);
            if (code == Z_ERRNO)
                return td_io_errf(TD_ERR_IO, err, errlen, "%s: read failed: %s", h->path,
                                  strerror(errno));
            return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: corrupt gzip data: %s", h->path,
                              msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    return TD_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens path and reads its header, which must carry `magic` (whose low byte
 * is the rank). */
static enum td_status idx_open(struct idx_file *h, const char *path, uint32_t magic,
                               const char *what, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    h->path = path;
    h->rank = (int)(magic & 0xff);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        enum td_status st =
            td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    h->file_size = (uint64_t)sb.st_size;
    h->regular = S_ISREG(sb.st_mode);
    h->f = gzdopen(fd, "rb");
    if (!h->f) {
        close(fd);
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    }
    gzbuffer(h->f, 1u << 17);
    unsigned char hdr[16];
    size_t want = 4 + 4 * (size_t)h->rank, got;
    enum td_status st = read_bytes(h, hdr, want, &got, err, errlen);
    if (st != TD_OK) return st;
    if (got >= 4 && be32(hdr) != magic)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: magic number 0x%08" PRIx32 " is not 0x%08" PRIx32
                          " (an IDX %s file)",
                          path, be32(hdr), magic, what);
    if (got < want)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: truncated header: expected %zu bytes, found %zu", path, want, got);
    for (int i = 0; i < h->rank; i++) {
        h->dim[i] = be32(hdr + 4 + 4 * i);
        if (h->dim[i] == 0)
            return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: dimension %d is 0", path, i);
    }
    /* Bound what the header may claim by what the file can hold, so a
     * damaged header is caught before memory is allocated for it. */
    h->plain = gzdirect(h->f);
    if (!h->regular || h->file_size < want)
        h->max_data = UINT64_MAX; /* unknown: reading finds out */
    else if (h->plain)
        h->max_data = h->file_size - want;
    else
        h->max_data = h->file_size > UINT64_MAX / DEFLATE_MAX_RATIO
                          ? UINT64_MAX
                          : h->file_size * DEFLATE_MAX_RATIO;
    return TD_OK;
}

/* TD_ERR_FORMAT when the header asks for more data than the file can hold. */
static enum td_status check_room(const struct idx_file *h, uint64_t need, const char *what,
                                 char *err, size_t errlen)
{
    if (need <= h->max_data) return TD_OK;
    if (h->plain)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: truncated: expected %" PRIu64 " %s, found %" PRIu64, h->path, need,
                          what, h->max_data);
    return td_io_errf(TD_ERR_FORMAT, err, errlen,
                      "%s: truncated or corrupt: expected %" PRIu64 " %s, more than a gzip "
                      "file of %" PRIu64 " bytes can hold",
                      h->path, need, what, h->file_size);
}

static void idx_close(struct idx_file *h)
{
    if (h->f) gzclose(h->f);
    h->f = NULL;
}

static enum td_status read_images(struct idx_file *h, uint8_t *x, char *err, size_t errlen)
{
    size_t total = (size_t)(h->dim[0] * h->dim[1] * h->dim[2]), done = 0;
    while (done < total) {
        size_t want = total - done < IDX_CHUNK ? total - done : IDX_CHUNK, got;
        enum td_status st = read_bytes(h, x + done, want, &got, err, errlen);
        if (st != TD_OK) return st;
        done += got;
        if (got < want)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: truncated: expected %zu bytes of pixels (%" PRId64
                              " images of %" PRId64 "x%" PRId64 "), found %zu",
                              h->path, total, h->dim[0], h->dim[1], h->dim[2], done);
    }
    return TD_OK;
}

static enum td_status read_labels(struct idx_file *h, int32_t *y, int *classes, char *err,
                                  size_t errlen)
{
    unsigned char buf[IDX_CHUNK];
    size_t total = (size_t)h->dim[0], done = 0;
    int top = 0;
    while (done < total) {
        size_t want = total - done < IDX_CHUNK ? total - done : IDX_CHUNK, got;
        enum td_status st = read_bytes(h, buf, want, &got, err, errlen);
        if (st != TD_OK) return st;
        for (size_t i = 0; i < got; i++) {
            y[done + i] = buf[i];
            if (buf[i] > top) top = buf[i];
        }
        done += got;
        if (got < want)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: truncated: expected %zu labels, found %zu", h->path, total,
                              done);
    }
    *classes = top + 1;
    return TD_OK;
}

static enum td_status load_pair(struct idx_file *img, struct idx_file *lab, const char *images_path,
                                const char *labels_path, struct td_dataset *out, char *err,
                                size_t errlen)
{
    enum td_status st = idx_open(img, images_path, IDX_IMAGES_MAGIC, "images", err, errlen);
    if (st != TD_OK) return st;
    st = idx_open(lab, labels_path, IDX_LABELS_MAGIC, "labels", err, errlen);
    if (st != TD_OK) return st;
    if (img->dim[0] != lab->dim[0])
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s holds %" PRId64 " images but %s holds %" PRId64 " labels",
                          images_path, img->dim[0], labels_path, lab->dim[0]);
    /* Dims are below 2^32 each; keep rows * cols * n within size_t. */
    uint64_t pixels = (uint64_t)img->dim[1] * (uint64_t)img->dim[2];
    if (pixels > SIZE_MAX / (uint64_t)img->dim[0])
        return td_io_errf(TD_ERR_NOMEM, err, errlen,
                          "%s: %" PRId64 " images of %" PRId64 "x%" PRId64 " do not fit in memory",
                          images_path, img->dim[0], img->dim[1], img->dim[2]);
    st = check_room(img, pixels * (uint64_t)img->dim[0], "bytes of pixels", err, errlen);
    if (st == TD_OK) st = check_room(lab, (uint64_t)lab->dim[0], "labels", err, errlen);
    if (st != TD_OK) return st;
    out->n = img->dim[0];
    out->sample_shape = td_shape_from(img->dim + 1, 2);
    out->pixels = td_alloc_large((size_t)(pixels * (uint64_t)out->n));
    out->y = malloc((size_t)out->n * sizeof(int32_t));
    if (!out->pixels || !out->y)
        return td_io_errf(TD_ERR_NOMEM, err, errlen,
                          "%s: out of memory for %" PRId64 " images of %" PRId64 "x%" PRId64,
                          images_path, img->dim[0], img->dim[1], img->dim[2]);
    st = read_images(img, out->pixels, err, errlen);
    if (st != TD_OK) return st;
    return read_labels(lab, out->y, &out->classes, err, errlen);
}

enum td_status td_idx_load(const char *images_path, const char *labels_path, struct td_dataset *out,
                           char *err, size_t errlen)
{
    if (!out) return td_io_errf(TD_ERR_ARG, err, errlen, "idx: NULL dataset");
    memset(out, 0, sizeof(*out));
    if (!images_path || !labels_path) return td_io_errf(TD_ERR_ARG, err, errlen, "idx: NULL path");
    struct idx_file img = {0}, lab = {0};
    enum td_status st = load_pair(&img, &lab, images_path, labels_path, out, err, errlen);
    idx_close(&img);
    idx_close(&lab);
    if (st != TD_OK) td_dataset_free(out);
    return st;
}

/* Sets path to dir/name.gz, or dir/name when only that exists; returns 0
 * when neither exists. */
static int find_file(char *path, size_t len, const char *dir, const char *name)
{
    FILE *f;
    snprintf(path, len, "%s/%s.gz", dir, name);
    if ((f = fopen(path, "rb"))) {
        fclose(f);
        return 1;
    }
    snprintf(path, len, "%s/%s", dir, name);
    if ((f = fopen(path, "rb"))) {
        fclose(f);
        return 1;
    }
    return 0;
}

enum td_status td_dataset_load_fashion_mnist(const char *dir, int train, struct td_dataset *out,
                                             char *err, size_t errlen)
{
    if (!out) return td_io_errf(TD_ERR_ARG, err, errlen, "fashion-mnist: NULL dataset");
    memset(out, 0, sizeof(*out));
    if (!dir) dir = TD_FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    char name[64], images[4096], labels[4096];
    snprintf(name, sizeof(name), "%s-images-idx3-ubyte", split);
    int have_images = find_file(images, sizeof(images), dir, name);
    snprintf(name, sizeof(name), "%s-labels-idx1-ubyte", split);
    int have_labels = find_file(labels, sizeof(labels), dir, name);
    if (!have_images || !have_labels)
        return td_io_errf(TD_ERR_IO, err, errlen,
                          "Fashion-MNIST not found: no %s-%s-ubyte[.gz] in %s; install it with "
                          "`apt-get install dataset-fashion-mnist`",
                          split, have_images ? "labels-idx1" : "images-idx3", dir);
    return td_idx_load(images, labels, out, err, errlen);
}
