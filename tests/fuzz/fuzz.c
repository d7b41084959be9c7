#include "fuzz.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/seal.h"

void fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

void fz_hdf5_init(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
}

void fz_file_init(struct fz_file *f, const char *name)
{
    f->fd = memfd_create(name, 0);
    FZ_ASSERT(f->fd >= 0);
    snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

void fz_file_set(struct fz_file *f, const uint8_t *data, size_t n)
{
    FZ_ASSERT(ftruncate(f->fd, 0) == 0);
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(f->fd, data + done, n - done, (off_t)done);
        FZ_ASSERT(w > 0);
        done += (size_t)w;
    }
}

int fz_file_input(struct fz_file *f, const char *name, const uint8_t *data, size_t n,
                  const char *kind)
{
    if (!f->path[0]) fz_file_init(f, name);
    if (n < 1) return -1;
    fz_file_set(f, data + 1, n - 1);
    if ((data[0] & 1) && n - 1 >= TD_SEAL_SIZE) {
        unsigned char hdr[TD_SEAL_SIZE];
        FZ_ASSERT(td_seal_make(hdr, data + 1 + TD_SEAL_SIZE, n - 1 - TD_SEAL_SIZE, kind) == TD_OK);
        FZ_ASSERT(pwrite(f->fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    }
    return data[0];
}

void fz_assert_hdf5_closed(void)
{
    FZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

void fz_assert_message(const char *err, const char *path)
{
    FZ_ASSERT(err[0] != '\0');
    FZ_ASSERT(strstr(err, path) != NULL);
}

struct td_graph *fz_small_model(uint64_t seed)
{
    struct td_graph *g = td_graph_new(seed);
    FZ_ASSERT(g != NULL);
    struct td_init init = {TD_INIT_NORMAL, 0.0f, 1.0f};
    td_param(g, "fc1/weight", TD_SHAPE(4, 3), init);
    td_param(g, "fc1/bias", TD_SHAPE(4), init);
    td_param(g, "out/weight", TD_SHAPE(2, 4), init);
    FZ_ASSERT(td_graph_status(g) == TD_OK);
    return g;
}

void fz_ckpt_init(struct fz_ckpt *c, uint64_t seed)
{
    c->g = fz_small_model(seed);
    for (int i = 0; i < 7; i++) c->moments[i] = 0.5f * (float)i;
    c->step = 7;
    c->seed = seed;
    c->lr = 0.5;
    c->n = td_ckpt_param_entries(td_graph_params(c->g), c->e);
    c->e[c->n++] = (struct td_ckpt_entry){"adam/m", TD_CKPT_F32, c->moments, 7, NULL};
    c->e[c->n++] = (struct td_ckpt_entry){"step", TD_CKPT_I64, &c->step, 1, NULL};
    c->e[c->n++] = (struct td_ckpt_entry){"seed", TD_CKPT_U64, &c->seed, 1, NULL};
    c->e[c->n++] = (struct td_ckpt_entry){"lr", TD_CKPT_F64, &c->lr, 1, NULL};
}
