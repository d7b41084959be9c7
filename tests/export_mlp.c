/* Writes what tests/test_torch_load.py checks against PyTorch: the
 * 784-128-64-10 MLP (fc1, fc2, fc3 with ReLU between) exported to
 * <dir>/weights.h5, and <dir>/reference.h5 holding a fixed input batch `x`
 * [32, 784] and Tandem's `logits` [32, 10] for it.
 * Usage: export_mlp <dir>. Exit status 0 on success, 1 with a message. */
#include <hdf5.h>
#include <stdio.h>

#include "graph/graph.h"
#include "graph/plan.h"
#include "graph/rng.h"
#include "io/weights.h"
#include "ops/layers.h"
#include "ops/ops.h"

enum { BATCH = 32, IN = 784, OUT = 10 };

static int write_reference(const char *path, const float *x, const float *logits)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    const char *names[2] = {"x", "logits"};
    const float *data[2] = {x, logits};
    hsize_t cols[2] = {IN, OUT};
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        hsize_t dims[2] = {BATCH, cols[i]};
        hid_t s = H5Screate_simple(2, dims, NULL);
        hid_t d = H5Dcreate2(f, names[i], H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data[i]) < 0)
            rc = -1;
        if (d >= 0) H5Dclose(d);
        H5Sclose(s);
    }
    return H5Fclose(f) < 0 ? -1 : rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 1;
    }
    struct td_graph *g = td_graph_new(2024);
    if (!g) return 1;
    struct td_node *x = td_input(g, "x", TD_SHAPE(BATCH, IN), TD_F32);
    struct td_node *h = td_relu(g, td_dense(g, x, 128, "fc1"));
    h = td_relu(g, td_dense(g, h, 64, "fc2"));
    struct td_node *logits = td_dense(g, h, OUT, "fc3");
    struct td_plan *plan = td_graph_status(g) == TD_OK ? td_compile(g, &logits, 1, NULL) : NULL;
    if (!plan) {
        fprintf(stderr, "export_mlp: %s\n", td_graph_error(g));
        td_graph_free(g);
        return 1;
    }
    static float input[BATCH * IN];
    for (int i = 0; i < BATCH * IN; i++) input[i] = td_rng_normal(7, 0, (uint64_t)i);
    struct td_feed feed = {x, input};
    char path[4096], err[512];
    int rc = 1;
    if (td_run(plan, &feed, 1) != TD_OK) {
        fprintf(stderr, "export_mlp: %s\n", td_plan_error(plan));
    } else {
        snprintf(path, sizeof(path), "%s/weights.h5", argv[1]);
        if (td_weights_export(td_graph_params(g), path, err, sizeof(err)) != TD_OK) {
            fprintf(stderr, "export_mlp: %s\n", err);
        } else {
            snprintf(path, sizeof(path), "%s/reference.h5", argv[1]);
            rc = write_reference(path, input, td_plan_output(plan, 0)) == 0 ? 0 : 1;
            if (rc) fprintf(stderr, "export_mlp: cannot write %s\n", path);
        }
    }
    td_plan_free(plan);
    td_graph_free(g);
    return rc;
}
