/* td_weights_import into a small model (fz_small_model). Input: one byte of
 * flags (bit 0: give the file a valid Tandem header, so that the fuzzer
 * reaches HDF5 through the integrity check; bit 1: TD_WEIGHTS_ALLOW_EXTRA),
 * then the file. Plain HDF5 files (no header) reach HDF5 without bit 0, as
 * other programs' weights do. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/weights.h"

static struct td_graph *graph;
static float *initial;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_hdf5_init();
    graph = fz_small_model(1);
    struct td_params *p = td_graph_params(graph);
    initial = malloc(p->total * sizeof(float));
    memcpy(initial, p->value, p->total * sizeof(float));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static struct fz_file file;
    int flags = fz_file_input(&file, "weights.h5", data, n, "weights");
    if (flags < 0) return 0;
    struct td_params *p = td_graph_params(graph);
    char err[512] = "";
    unsigned allow = flags & 2 ? TD_WEIGHTS_ALLOW_EXTRA : 0;
    if (td_weights_import(p, file.path, allow, err, sizeof(err)) == TD_OK) {
        memcpy(p->value, initial, p->total * sizeof(float));
    } else {
        /* On error the values are untouched. */
        FZ_ASSERT(memcmp(p->value, initial, p->total * sizeof(float)) == 0);
        fz_assert_message(err, file.path);
    }
    fz_assert_hdf5_closed();
    return 0;
}
