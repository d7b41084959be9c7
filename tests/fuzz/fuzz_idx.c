/* td_idx_load on an images file and a labels file, gzip'ed or plain (zlib
 * reads both). Input: two bytes giving where the images end, then the
 * images file, then the labels file. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static struct fz_file images, labels;
    if (!images.path[0]) {
        fz_file_init(&images, "images");
        fz_file_init(&labels, "labels");
    }
    if (n < 2) return 0;
    size_t split = ((size_t)data[0] | (size_t)data[1] << 8) % (n - 1);
    fz_file_set(&images, data + 2, split);
    fz_file_set(&labels, data + 2 + split, n - 2 - split);
    struct td_dataset d;
    char err[512] = "";
    if (td_idx_load(images.path, labels.path, &d, err, sizeof(err)) == 0) {
        FZ_ASSERT(d.n > 0 && (d.x || d.pixels) && d.y && d.classes >= 1 && d.classes <= 256);
        for (int64_t i = 0; i < d.n; i++) FZ_ASSERT(d.y[i] >= 0 && d.y[i] < d.classes);
        td_dataset_free(&d);
    } else {
        FZ_ASSERT(!d.x && !d.pixels && !d.y && d.n == 0);
        FZ_ASSERT(err[0] != '\0');
    }
    return 0;
}
