/* Injected faults, with tests/faultshim.c preloaded.
 *
 * Allocations: each operation is run with its 1st, 2nd, 3rd ... allocation
 * by libtandem failing, until a run makes no more allocations than that.
 * Every failing run must return a clear error (TD_ERR_NOMEM with a message
 * saying "out of memory"), crash nothing, and leave nothing open; leaks are
 * found by the sanitizer or valgrind runs of this suite (tools/sanitize.sh,
 * tools/valgrind.sh).
 *
 * Writes: each save is run with its 1st, 2nd ... write or fsync to the
 * temporary file failing: it must return TD_ERR_IO naming the system's
 * reason, remove the temporary and leave the previous file as it was.
 *
 * Exits 77 (skipped) when the shim is not preloaded. */
#include <dlfcn.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/autodiff.h"
#include "graph/graph.h"
#include "graph/plan.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/h5data.h"
#include "io/idx.h"
#include "io/weights.h"
#include "ops/layers.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "testutil.h"

static int (*arm)(long n, int every);
static long (*disarm)(void);
static long (*failed_count)(void);
static long (*arm_write)(long n);
static char dir[64];

/* One operation under test: setup and teardown run with the shim disarmed,
 * run with it armed; run returns a status and fills msg on failure. */
struct op {
    const char *name;
    void (*setup)(void *ctx);
    enum td_status (*run)(void *ctx, char *msg, size_t len);
    void (*teardown)(void *ctx);
};

/* Fails allocation 1, 2, ... of op.run in turn, once that allocation alone
 * and once it and every later one; returns the number of allocations op.run
 * makes when none fails. */
static long sweep(const struct op *op, void *ctx)
{
    for (long n = 1, every = 0;; n += every, every = !every) {
        char msg[TD_MSG_MAX] = "";
        if (op->setup) op->setup(ctx);
        ck_assert_int_eq(arm(n, (int)every), 0);
        enum td_status st = op->run(ctx, msg, sizeof(msg));
        long made = disarm();
        long failed = failed_count();
        if (op->teardown) op->teardown(ctx);
        ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
        if (failed == 0) {
            ck_assert_msg(st == TD_OK, "%s: failed with no allocation failing: %s (%s)", op->name,
                          td_status_name(st), msg);
            printf("%s: %ld allocations, each failing alone and with all after it: clean "
                   "TD_ERR_NOMEM\n",
                   op->name, made);
            return made;
        }
        ck_assert_msg(st == TD_ERR_NOMEM, "%s: allocation %ld%s failed: status %s (%s)", op->name,
                      n, every ? " and later" : "", td_status_name(st), msg);
        ck_assert_msg(strstr(msg, "out of memory") != NULL,
                      "%s: allocation %ld%s failed: message \"%s\" does not say out of memory",
                      op->name, n, every ? " and later" : "", msg);
    }
}

/* ---- builders, autodiff, compile, run ---- */

struct model {
    struct td_graph *g;
    struct td_node *x, *y, *loss, *outs[13];
    struct td_plan *plan;
};

static enum td_status graph_status(struct td_graph *g, char *msg, size_t len)
{
    if (!g) {
        snprintf(msg, len, "td_graph_new: out of memory");
        return TD_ERR_NOMEM;
    }
    snprintf(msg, len, "%s", td_graph_error(g));
    return td_graph_status(g);
}

/* 12-16-8-4 MLP with ReLU and softmax cross-entropy. */
static void build(struct model *m)
{
    m->x = td_input(m->g, "x", TD_SHAPE(6, 12), TD_F32);
    m->y = td_input(m->g, "labels", TD_SHAPE(6), TD_I32);
    struct td_node *h = td_relu(m->g, td_dense(m->g, m->x, 16, "fc1"));
    h = td_relu(m->g, td_dense(m->g, h, 8, "fc2"));
    m->loss = td_softmax_cross_entropy(m->g, td_dense(m->g, h, 4, "fc3"), m->y);
}

static enum td_status run_build(void *ctx, char *msg, size_t len)
{
    struct model *m = ctx;
    m->g = td_graph_new(1);
    if (m->g) build(m);
    return graph_status(m->g, msg, len);
}

static void free_model(void *ctx)
{
    struct model *m = ctx;
    td_plan_free(m->plan);
    td_graph_free(m->g);
    memset(m, 0, sizeof(*m));
}

static void setup_built(void *ctx)
{
    struct model *m = ctx;
    m->g = td_graph_new(1);
    build(m);
    tu_assert_graph_ok(m->g, "build");
}

static enum td_status run_grad_hvp(void *ctx, char *msg, size_t len)
{
    struct model *m = ctx;
    m->outs[0] = m->loss;
    td_grad_hvp(m->g, m->loss, m->outs + 1, m->outs + 7, NULL);
    return graph_status(m->g, msg, len);
}

static void setup_differentiated(void *ctx)
{
    setup_built(ctx);
    struct model *m = ctx;
    char msg[TD_MSG_MAX];
    ck_assert_int_eq(run_grad_hvp(m, msg, sizeof(msg)), TD_OK);
}

static enum td_status run_compile(void *ctx, char *msg, size_t len)
{
    struct model *m = ctx;
    struct td_compile_options co = {.num_threads = 2};
    m->plan = td_compile(m->g, m->outs, 13, &co);
    if (m->plan) return TD_OK;
    return graph_status(m->g, msg, len);
}

START_TEST(builders_autodiff_compile)
{
    struct model m = {0};
    struct op build_op = {"build an MLP", NULL, run_build, free_model};
    struct op ad = {"td_grad_hvp", setup_built, run_grad_hvp, free_model};
    struct op comp = {"td_compile (gradient + HVP)", setup_differentiated, run_compile, free_model};
    ck_assert_int_gt(sweep(&build_op, &m), 0);
    ck_assert_int_gt(sweep(&ad, &m), 0);
    ck_assert_int_gt(sweep(&comp, &m), 0);
}
END_TEST

/* td_run allocates nothing in Tandem's code: with every allocation failing
 * it still succeeds. */
START_TEST(run_allocates_nothing)
{
    struct model m = {0};
    setup_differentiated(&m);
    char msg[TD_MSG_MAX];
    ck_assert_int_eq(run_compile(&m, msg, sizeof(msg)), TD_OK);
    static float x[6 * 12];
    static int32_t y[6] = {0, 1, 2, 3, 0, 1};
    for (int i = 0; i < 6 * 12; i++) x[i] = 0.01f * (float)i;
    struct td_feed feeds[2] = {{m.x, x}, {m.y, y}};
    ck_assert_int_eq(arm(1, 1), 0);
    enum td_status st = td_run(m.plan, feeds, 2);
    long made = disarm();
    ck_assert_msg(st == TD_OK, "%s", td_plan_error(m.plan));
    ck_assert_int_eq(made, 0);
    free_model(&m);
}
END_TEST

/* ---- optimizers ---- */

struct optim_ctx {
    struct model m;
    struct td_optim *o;
    const char *name;
};

static void setup_optim(void *ctx)
{
    setup_built(&((struct optim_ctx *)ctx)->m);
}

static enum td_status run_optim(void *ctx, char *msg, size_t len)
{
    struct optim_ctx *c = ctx;
    c->o = td_optim_new(c->name, NULL, td_graph_params(c->m.g), msg, len);
    return c->o ? TD_OK : TD_ERR_NOMEM;
}

static void free_optim(void *ctx)
{
    struct optim_ctx *c = ctx;
    td_optim_free(c->o);
    c->o = NULL;
    free_model(&c->m);
}

START_TEST(optimizers)
{
    const char *names[] = {"sgd", "adam", "tangent-sgd", "sophia"};
    for (int i = 0; i < 4; i++) {
        struct optim_ctx c = {.name = names[i]};
        struct op op = {names[i], setup_optim, run_optim, free_optim};
        sweep(&op, &c);
    }
}
END_TEST

/* ---- loaders and writers ---- */

struct io_ctx {
    struct td_graph *g;
    struct td_dataset d;
    char images[128], labels[128], data[128], weights[128], ckpt[128], out[128];
    struct td_ckpt_entry e[8];
    int n;
    float m[7];
    int64_t step;
};

static void write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void io_setup(void *ctx)
{
    struct io_ctx *c = ctx;
    c->g = td_graph_new(1);
    struct td_init init = {TD_INIT_NORMAL, 0.0f, 1.0f};
    td_param(c->g, "fc1/weight", TD_SHAPE(4, 3), init);
    td_param(c->g, "fc1/bias", TD_SHAPE(4), init);
    tu_assert_graph_ok(c->g, "params");
    c->n = td_ckpt_param_entries(td_graph_params(c->g), c->e);
    c->e[c->n++] = (struct td_ckpt_entry){"adam/m", TD_CKPT_F32, c->m, 7, NULL};
    c->e[c->n++] = (struct td_ckpt_entry){"step", TD_CKPT_I64, &c->step, 1, NULL};
}

static void io_teardown(void *ctx)
{
    struct io_ctx *c = ctx;
    td_dataset_free(&c->d);
    td_graph_free(c->g);
    c->g = NULL;
    remove(c->out);
}

static enum td_status run_idx(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_idx_load(c->images, c->labels, &c->d, msg, len);
}

static enum td_status run_h5data(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_h5data_load(c->data, &c->d, msg, len);
}

static enum td_status run_weights_import(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_weights_import(td_graph_params(c->g), c->weights, 0, msg, len);
}

static enum td_status run_weights_export(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_weights_export(td_graph_params(c->g), c->out, msg, len);
}

static enum td_status run_ckpt_load(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_ckpt_load(c->ckpt, c->e, c->n, msg, len);
}

static enum td_status run_ckpt_save(void *ctx, char *msg, size_t len)
{
    struct io_ctx *c = ctx;
    return td_ckpt_save(c->out, c->e, c->n, msg, len);
}

START_TEST(loaders_and_writers)
{
    struct io_ctx c = {0};
    snprintf(c.images, sizeof(c.images), "%s/images", dir);
    snprintf(c.labels, sizeof(c.labels), "%s/labels", dir);
    snprintf(c.data, sizeof(c.data), "%s/data.h5", dir);
    snprintf(c.weights, sizeof(c.weights), "%s/weights.h5", dir);
    snprintf(c.ckpt, sizeof(c.ckpt), "%s/checkpoint.h5", dir);
    snprintf(c.out, sizeof(c.out), "%s/out.h5", dir);
    unsigned char img[16 + 2 * 3 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
    unsigned char lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    write_file(c.images, img, sizeof(img));
    write_file(c.labels, lab, sizeof(lab));
    hid_t f = H5Fcreate(c.data, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float x[6] = {0};
    int32_t y[3] = {0, 1, 2};
    hsize_t xd[2] = {3, 2}, yd[1] = {3};
    hid_t sx = H5Screate_simple(2, xd, NULL), sy = H5Screate_simple(1, yd, NULL);
    hid_t dx = H5Dcreate2(f, "x", H5T_IEEE_F32LE, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dy = H5Dcreate2(f, "y", H5T_STD_I32LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dwrite(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(dx), H5Dclose(dy), H5Sclose(sx), H5Sclose(sy), H5Fclose(f);
    io_setup(&c);
    char msg[TD_MSG_MAX];
    ck_assert_int_eq(td_weights_export(td_graph_params(c.g), c.weights, msg, sizeof(msg)), TD_OK);
    ck_assert_int_eq(td_ckpt_save(c.ckpt, c.e, c.n, msg, sizeof(msg)), TD_OK);
    io_teardown(&c);

    const struct op ops[] = {
        {"td_idx_load", io_setup, run_idx, io_teardown},
        {"td_h5data_load", io_setup, run_h5data, io_teardown},
        {"td_weights_import", io_setup, run_weights_import, io_teardown},
        {"td_weights_export", io_setup, run_weights_export, io_teardown},
        {"td_ckpt_load", io_setup, run_ckpt_load, io_teardown},
        {"td_ckpt_save", io_setup, run_ckpt_save, io_teardown},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) sweep(&ops[i], &c);
    remove(c.images), remove(c.labels), remove(c.data), remove(c.weights), remove(c.ckpt);
}
END_TEST

/* ---- failing writes during a save ---- */

/* The file at c->out loads, and its first value is `first`. */
static void expect_file_holds(struct io_ctx *c, int ckpt, float first, long n)
{
    char msg[TD_MSG_MAX] = "";
    struct td_params *p = td_graph_params(c->g);
    p->value[0] = -1.0f;
    enum td_status st = ckpt ? td_ckpt_load(c->out, c->e, c->n, msg, sizeof(msg))
                             : td_weights_import(p, c->out, 0, msg, sizeof(msg));
    ck_assert_msg(st == TD_OK, "write %ld failed: then: %s", n, msg);
    ck_assert_msg(p->value[0] == first, "write %ld failed: the file holds %g, expected %g", n,
                  (double)p->value[0], (double)first);
}

START_TEST(failing_writes)
{
    struct io_ctx c = {0};
    snprintf(c.out, sizeof(c.out), "%s/saved.h5", dir);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c.out);
    for (int ckpt = 0; ckpt <= 1; ckpt++) {
        io_setup(&c);
        struct td_params *p = td_graph_params(c.g);
        long n = 1;
        for (;; n++) {
            char msg[TD_MSG_MAX] = "";
            p->value[0] = 1.0f;
            ck_assert_int_eq(ckpt ? run_ckpt_save(&c, msg, sizeof(msg))
                                  : run_weights_export(&c, msg, sizeof(msg)),
                             TD_OK);
            p->value[0] = 2.0f;
            arm_write(n);
            enum td_status st = ckpt ? run_ckpt_save(&c, msg, sizeof(msg))
                                     : run_weights_export(&c, msg, sizeof(msg));
            long writes = arm_write(0);
            ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
            ck_assert_int_ne(access(tmp, F_OK), 0);
            if (writes < n) {
                ck_assert_msg(st == TD_OK, "failed with no write failing: %s", msg);
                expect_file_holds(&c, ckpt, 2.0f, n);
                break;
            }
            ck_assert_msg(st == TD_ERR_IO, "write %ld failed: %s (%s)", n, td_status_name(st), msg);
            ck_assert_msg(strstr(msg, "Input/output error") && strstr(msg, c.out),
                          "write %ld failed: message \"%s\"", n, msg);
            expect_file_holds(&c, ckpt, 1.0f, n);
        }
        printf("%s: %ld writes and syncs of the temporary, each failure a TD_ERR_IO that kept the "
               "previous file\n",
               ckpt ? "td_ckpt_save" : "td_weights_export", n - 1);
        io_teardown(&c);
    }
}
END_TEST

int main(void)
{
    arm = (int (*)(long, int))dlsym(RTLD_DEFAULT, "tdf_arm");
    disarm = (long (*)(void))dlsym(RTLD_DEFAULT, "tdf_disarm");
    failed_count = (long (*)(void))dlsym(RTLD_DEFAULT, "tdf_failed");
    arm_write = (long (*)(long))dlsym(RTLD_DEFAULT, "tdf_arm_write");
    if (!arm || !disarm || !failed_count || !arm_write) {
        printf("skipped: tests/faultshim.c (libtdfault.so) is not preloaded\n");
        return 77;
    }
    snprintf(dir, sizeof(dir), "/tmp/td_faults_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, builders_autodiff_compile);
    tcase_add_test(tc, run_allocates_nothing);
    tcase_add_test(tc, optimizers);
    tcase_add_test(tc, loaders_and_writers);
    tcase_add_test(tc, failing_writes);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    rmdir(dir);
    return rc;
}
