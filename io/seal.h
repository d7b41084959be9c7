/* The integrity header of every file Tandem writes (not installed).
 *
 * Weights and checkpoints are HDF5 files with a 512-byte user block, which
 * HDF5, h5py and PyTorch skip: HDF5 finds its superblock at offset 512. The
 * user block holds Tandem's header, little-endian:
 *
 *   offset size
 *        0    8  magic "\x89TDM\r\n\x1a\n" (the first byte is not ASCII and the
 *                line ends catch text-mode transfers, as in PNG)
 *        8    4  format version, TD_SEAL_VERSION
 *       12    4  header size, TD_SEAL_SIZE (where HDF5's superblock starts)
 *       16    8  length of the whole file in bytes
 *       24    8  CRC-64/XZ of the whole file, read with these 8 bytes as zeros
 *       32   16  kind, NUL-padded: "weights", "checkpoint", ...
 *       48   16  Tandem version that wrote it, NUL-padded
 *       64  448  a line of text for people who look, then zeros
 *
 * The checksum covers every byte of the file except its own field, so any
 * change to the header, its padding or the HDF5 data is seen, and it is
 * checked before HDF5 parses anything: HDF5 1.10 does not defend itself
 * against corrupt files (a changed byte in its global heap can crash or hang
 * it), so a loader must not hand it a damaged file. CRC-64 detects every
 * error burst of up to 64 bits and misses other damage with probability
 * 2^-64; it guards against storage and transfer errors, not against someone
 * who rewrites the file and its checksum on purpose. */
#ifndef TD_SEAL_H
#define TD_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

#define TD_SEAL_SIZE 512
#define TD_SEAL_VERSION 1
#define TD_SEAL_KIND_MAX 16

/* CRC-64/XZ (ECMA-182 polynomial, reflected, initial value and final XOR
 * all ones; the check value of "123456789" is 0x995DC9BBDF1939FA). Start
 * with crc = 0 and feed the bytes in any number of pieces:
 * td_crc64(td_crc64(0, a, n), b, m) is the CRC of a followed by b. */
uint64_t td_crc64(uint64_t crc, const void *buf, size_t n);

/* Fills hdr with the header of a file made of hdr followed by the n bytes
 * of image (an HDF5 file image, whose superblock then sits at offset
 * TD_SEAL_SIZE), of the given kind. TD_ERR_ARG when kind has
 * TD_SEAL_KIND_MAX or more characters. */
enum td_status td_seal_make(unsigned char *hdr, const void *image, size_t n, const char *kind);

/* What td_seal_check found at the start of a file. */
enum td_seal_state {
    TD_SEAL_VALID,   /* Tandem's header, and the checksum matches */
    TD_SEAL_NONE,    /* no Tandem header; the file starts with HDF5's signature */
    TD_SEAL_FOREIGN, /* no Tandem header, but HDF5's signature after a user block
                        (512, 1024, 2048 ... bytes): a damaged Tandem header, or
                        another program's user block */
    TD_SEAL_UNKNOWN, /* neither Tandem's header nor HDF5's signature anywhere HDF5
                        looks for it */
};

/* Reads the start of the open file fd (path is for messages) and, when it
 * carries Tandem's header, checks the header, the file's length and its
 * checksum. On TD_OK *state says what was found and, for TD_SEAL_VALID, kind
 * (TD_SEAL_KIND_MAX bytes, may be NULL) receives the kind. Errors, with a
 * message naming path: TD_ERR_FORMAT for a Tandem header whose version is
 * unknown, whose length differs from the file's or whose checksum does not
 * match ("checksum mismatch: the file is corrupt (truncated or modified)"),
 * TD_ERR_IO when reading fails. */
enum td_status td_seal_check(int fd, const char *path, enum td_seal_state *state, char *kind,
                             char *err, size_t errlen);

#endif
