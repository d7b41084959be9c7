/* td_h5data_load, the reader of user datasets (any HDF5 file). Input: one
 * byte of flags (bit 0: give the file a valid Tandem header, so that sealed
 * files reach HDF5 too), then the file. */
#include <hdf5.h>

#include "fuzz.h"
#include "io/h5data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_hdf5_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static struct fz_file file;
    int flags = fz_file_input(&file, "data.h5", data, n, "data");
    if (flags < 0) return 0;
    struct td_dataset d;
    char err[512] = "";
    if (td_h5data_load(file.path, &d, err, sizeof(err)) == 0) {
        FZ_ASSERT(d.n > 0 && (d.x || d.pixels) && d.y && d.classes >= 1);
        for (int64_t i = 0; i < d.n; i++) FZ_ASSERT(d.y[i] >= 0 && d.y[i] < d.classes);
        td_dataset_free(&d);
    } else {
        FZ_ASSERT(!d.x && !d.pixels && !d.y && d.n == 0);
        fz_assert_message(err, file.path);
    }
    fz_assert_hdf5_closed();
    return 0;
}
