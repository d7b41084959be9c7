/* Writes what tests/test_torch_gpt.py checks against tools/gpt_torch.py: a
 * tiny zoo GPT (2 layers, d 32, 2 heads, context 16, 11 tokens) whose
 * parameters are all perturbed away from their initial values (so that a
 * layer norm loaded into the wrong place shows), exported to
 * <dir>/weights.h5 with its model options and vocabulary, and
 * <dir>/reference.h5 with token ids [3, 16] and Tandem's logits [3, 16, 11].
 * Usage: export_gpt <dir>. Exit status 0 on success, 1 with a message. */
#include <hdf5.h>
#include <stdio.h>

#include "graph/tandem.h"
#include "tools/models/models.h"

enum { BATCH = 3, T = 16, V = 11 };

static int write_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
                         const hsize_t *dims, const void *data)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 1;
    }
    struct td_graph *g = td_graph_new(11);
    const struct td_model_info *info = td_model_find("gpt");
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = V};
    struct td_model_config mc = {
        .layers = 2, .d_model = 32, .heads = 2, .context = T, .dropout = -1};
    struct td_model m;
    struct td_plan *plan = NULL;
    if (td_model_build(info, g, BATCH, &d, &mc, &m) == TD_OK)
        plan = td_compile(g, &m.logits, 1, NULL);
    if (!plan) {
        fprintf(stderr, "export_gpt: %s\n", td_graph_error(g));
        td_graph_free(g);
        return 1;
    }
    struct td_params *p = td_graph_params(g);
    for (size_t i = 0; i < p->total; i++) p->value[i] += 0.1f * td_rng_normal(5, 0, i);
    static int32_t ids[BATCH * T];
    for (int i = 0; i < BATCH * T; i++) ids[i] = (int32_t)(td_rng_u64(5, 1, (uint64_t)i) % V);
    struct td_feed feed = {m.x, ids};
    char path[4096], err[512], config[256];
    uint8_t vocab[V];
    for (int i = 0; i < V; i++) vocab[i] = (uint8_t)('a' + i);
    struct td_weights_meta meta = {
        "gpt", td_model_config_format(info, &m.config, config, sizeof(config)), vocab, V};
    int rc = 1;
    if (td_run(plan, &feed, 1) != TD_OK) {
        fprintf(stderr, "export_gpt: %s\n", td_plan_error(plan));
    } else {
        snprintf(path, sizeof(path), "%s/weights.h5", argv[1]);
        if (td_weights_export_meta(p, &meta, path, err, sizeof(err)) != TD_OK) {
            fprintf(stderr, "export_gpt: %s\n", err);
        } else {
            snprintf(path, sizeof(path), "%s/reference.h5", argv[1]);
            hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
            hsize_t di[2] = {BATCH, T}, dl[3] = {BATCH, T, V};
            rc = f < 0 || write_dataset(f, "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, di, ids) ||
                 write_dataset(f, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dl,
                               td_plan_output(plan, 0));
            if (f >= 0 && H5Fclose(f) < 0) rc = 1;
            if (rc) fprintf(stderr, "export_gpt: cannot write %s\n", path);
        }
    }
    td_plan_free(plan);
    td_graph_free(g);
    return rc;
}
