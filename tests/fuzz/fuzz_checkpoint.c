/* td_ckpt_load of parameters, an optimizer block and one scalar of each
 * other kind (fz_ckpt_init). Input: one byte of flags (bit 0: give the file
 * a valid Tandem header, so that the fuzzer reaches HDF5 through the
 * integrity check), then the file. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static struct fz_ckpt ck;
static size_t state_bytes;
static unsigned char *initial, *now;

/* Everything a load may write, in one block, to compare after errors. */
static void snapshot(unsigned char *out)
{
    for (int i = 0; i < ck.n; i++) {
        size_t b = ck.e[i].count * (ck.e[i].kind <= TD_CKPT_F32 ? 4 : 8);
        if (out)
            memcpy(out, ck.e[i].data, b), out += b;
        else
            state_bytes += b;
    }
}

static void restore(const unsigned char *in)
{
    for (int i = 0; i < ck.n; i++) {
        size_t b = ck.e[i].count * (ck.e[i].kind <= TD_CKPT_F32 ? 4 : 8);
        memcpy(ck.e[i].data, in, b), in += b;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_hdf5_init();
    fz_ckpt_init(&ck, 1);
    snapshot(NULL);
    initial = malloc(state_bytes);
    now = malloc(state_bytes);
    snapshot(initial);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static struct fz_file file;
    int flags = fz_file_input(&file, "checkpoint.h5", data, n, "checkpoint");
    if (flags < 0) return 0;
    char err[512] = "";
    if (td_ckpt_load(file.path, ck.e, ck.n, err, sizeof(err)) == TD_OK) {
        restore(initial);
    } else {
        snapshot(now);
        FZ_ASSERT(memcmp(now, initial, state_bytes) == 0);
        fz_assert_message(err, file.path);
    }
    fz_assert_hdf5_closed();
    return 0;
}
