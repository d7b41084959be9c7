#include "io/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ioutil.h"

static const unsigned char seal_magic[8] = {0x89, 'T', 'D', 'M', '\r', '\n', 0x1a, '\n'};
static const unsigned char hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

enum {
    OFF_VERSION = 8,
    OFF_SIZE = 12,
    OFF_LENGTH = 16,
    OFF_CRC = 24,
    OFF_KIND = 32,
    OFF_WRITER = 48,
    OFF_NOTE = 64,
    SEAL_CHUNK = 1 << 16,
};

/* ---- CRC-64/XZ, slicing by 8 ---- */

static uint64_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    const uint64_t poly = 0xC96C5795D7870F42ull; /* ECMA-182, bit-reversed */
    for (int i = 0; i < 256; i++) {
        uint64_t c = (uint64_t)i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ poly : c >> 1;
        crc_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t td_crc64(uint64_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        crc ^= get_le(p, 8);
        crc = crc_table[7][crc & 0xff] ^ crc_table[6][(crc >> 8) & 0xff] ^
              crc_table[5][(crc >> 16) & 0xff] ^ crc_table[4][(crc >> 24) & 0xff] ^
              crc_table[3][(crc >> 32) & 0xff] ^ crc_table[2][(crc >> 40) & 0xff] ^
              crc_table[1][(crc >> 48) & 0xff] ^ crc_table[0][crc >> 56];
    }
    for (; n > 0; n--, p++) crc = crc_table[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- reading and writing the header ---- */

/* pread of up to n bytes at off, retried on EINTR and short reads; returns
 * the bytes read (fewer at the end of the file) or -1 with errno set. */
static ssize_t read_at(int fd, void *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (unsigned char *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* CRC of the header block hdr (its checksum field already zero) followed by
 * the file's bytes from TD_SEAL_SIZE to length. */
static enum td_status file_crc(int fd, const unsigned char *hdr, uint64_t length, uint64_t *crc,
                               const char *path, char *err, size_t errlen)
{
    unsigned char buf[SEAL_CHUNK];
    uint64_t c = td_crc64(0, hdr, TD_SEAL_SIZE);
    for (uint64_t off = TD_SEAL_SIZE; off < length;) {
        size_t want = length - off < SEAL_CHUNK ? (size_t)(length - off) : SEAL_CHUNK;
        ssize_t r = read_at(fd, buf, want, (off_t)off);
        if (r < 0)
            return td_io_errf(TD_ERR_IO, err, errlen, "%s: read failed: %s", path, strerror(errno));
        if ((size_t)r < want)
            return td_io_errf(TD_ERR_FORMAT, err, errlen,
                              "%s: the file shrank while it was being checked", path);
        c = td_crc64(c, buf, (size_t)r);
        off += (uint64_t)r;
    }
    *crc = c;
    return TD_OK;
}

enum td_status td_seal_make(unsigned char *hdr, const void *image, size_t n, const char *kind)
{
    if (strlen(kind) >= TD_SEAL_KIND_MAX) return TD_ERR_ARG;
    memset(hdr, 0, TD_SEAL_SIZE);
    memcpy(hdr, seal_magic, sizeof(seal_magic));
    put_le(hdr + OFF_VERSION, TD_SEAL_VERSION, 4);
    put_le(hdr + OFF_SIZE, TD_SEAL_SIZE, 4);
    put_le(hdr + OFF_LENGTH, (uint64_t)TD_SEAL_SIZE + n, 8);
    memcpy(hdr + OFF_KIND, kind, strlen(kind));
    snprintf((char *)hdr + OFF_WRITER, TD_SEAL_KIND_MAX, "%s", TD_VERSION);
    snprintf((char *)hdr + OFF_NOTE, TD_SEAL_SIZE - OFF_NOTE,
             "\nTandem %s file: an HDF5 file after this %d-byte header (HDF5 and h5py skip it), "
             "which holds a CRC-64 of the file.\n",
             kind, TD_SEAL_SIZE);
    put_le(hdr + OFF_CRC, td_crc64(td_crc64(0, hdr, TD_SEAL_SIZE), image, n), 8);
    return TD_OK;
}

#define CORRUPT "the file is corrupt (truncated or modified)"

enum td_status td_seal_check(int fd, const char *path, enum td_seal_state *state, char *kind,
                             char *err, size_t errlen)
{
    unsigned char hdr[TD_SEAL_SIZE];
    ssize_t got = read_at(fd, hdr, sizeof(hdr), 0);
    if (got < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: read failed: %s", path, strerror(errno));
    *state = TD_SEAL_UNKNOWN;
    if (got < (ssize_t)sizeof(seal_magic) || memcmp(hdr, seal_magic, sizeof(seal_magic)) != 0) {
        if (got >= (ssize_t)sizeof(hdf5_magic) && !memcmp(hdr, hdf5_magic, sizeof(hdf5_magic))) {
            *state = TD_SEAL_NONE;
            return TD_OK;
        }
        /* Where HDF5 looks for its superblock after a user block: 512,
         * 1024, 2048 ... bytes in. */
        unsigned char sig[sizeof(hdf5_magic)];
        for (off_t at = TD_SEAL_SIZE; at <= ((off_t)1 << 40); at *= 2) {
            ssize_t r = read_at(fd, sig, sizeof(sig), at);
            if (r < (ssize_t)sizeof(sig)) break;
            if (!memcmp(sig, hdf5_magic, sizeof(sig))) {
                *state = TD_SEAL_FOREIGN;
                break;
            }
        }
        return TD_OK;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    if (got < TD_SEAL_SIZE)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: %lld bytes, shorter than Tandem's header: " CORRUPT, path,
                          (long long)got);
    uint64_t version = get_le(hdr + OFF_VERSION, 4), size = get_le(hdr + OFF_SIZE, 4);
    uint64_t length = get_le(hdr + OFF_LENGTH, 8), stored = get_le(hdr + OFF_CRC, 8);
    if (version != TD_SEAL_VERSION || size != TD_SEAL_SIZE)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: header format %llu (size %llu) is not format %d (size %d): written "
                          "by a newer Tandem, or " CORRUPT,
                          path, (unsigned long long)version, (unsigned long long)size,
                          TD_SEAL_VERSION, TD_SEAL_SIZE);
    if (length != (uint64_t)sb.st_size)
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "%s: %lld bytes, but its header says %llu: " CORRUPT, path,
                          (long long)sb.st_size, (unsigned long long)length);
    memset(hdr + OFF_CRC, 0, 8);
    uint64_t crc;
    enum td_status st = file_crc(fd, hdr, length, &crc, path, err, errlen);
    if (st != TD_OK) return st;
    if (crc != stored)
        return td_io_errf(TD_ERR_FORMAT, err, errlen, "%s: checksum mismatch: " CORRUPT, path);
    if (kind) {
        memcpy(kind, hdr + OFF_KIND, TD_SEAL_KIND_MAX);
        kind[TD_SEAL_KIND_MAX - 1] = '\0';
    }
    *state = TD_SEAL_VALID;
    return TD_OK;
}
