/* Test-only fault injection, loaded with LD_PRELOAD (libtdfault.so; never
 * installed, never linked into Tandem).
 *
 * Allocations: malloc, calloc, realloc, aligned_alloc, posix_memalign and
 * memalign called from libtandem's own code (the caller's return address lies
 * in libtandem.so; allocations inside HDF5, oneDNN or libgomp are left
 * alone) are counted while the test has armed the shim, and the n-th fails
 * with ENOMEM. With TD_FAULT_TRACE set, each counted allocation prints its
 * number and caller (symbol+offset in libtandem, for addr2line) to stderr. A test finds the
 * functions below with dlsym(RTLD_DEFAULT, ...) and skips when they are absent (the shim was not
 * preloaded).
 *
 * Writes: the n-th write, pwrite, fsync or fdatasync on a file whose name
 * ends in ".tmp" (the temporary of an atomic save) fails with EIO, n given by
 * tdf_arm_write or, for whole programs, TD_FAULT_WRITE=n in the environment.
 * With TD_FAULT_WRITE_REPORT set, the number of such calls is printed to
 * stderr at exit, as "tdfault: N tmp writes".
 *
 * Under gcc's AddressSanitizer the shim must come before libasan in
 * LD_PRELOAD with ASAN_OPTIONS=verify_asan_link_order=0: it then forwards
 * to ASan's allocator, which still checks every block. Under valgrind,
 * --soname-synonyms=somalloc=nouserintercepts keeps valgrind from replacing
 * the shim's own malloc (tools/valgrind.sh passes it). */
/* pwrite and pwrite64 are both defined below (x86-64: the same off_t). */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

/* dlsym may allocate before the real functions are known: serve it from a
 * static block, which free() then ignores. */
static _Alignas(64) char boot[1 << 14];
static size_t boot_used;
static int resolving;

static void resolve(void)
{
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    resolving = 0;
}

static void *boot_alloc(size_t n)
{
    size_t at = (boot_used + 63) & ~(size_t)63;
    if (at + n > sizeof(boot)) return NULL;
    boot_used = at + n;
    return boot + at;
}

static int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

/* ---- allocation faults ---- */

static uintptr_t lib_lo, lib_hi; /* libtandem's executable segment */
static long armed_at, counted, failed;
static int armed, persistent;

static int find_lib(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size, (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libtandem.so")) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            lib_lo = info->dlpi_addr + ph->p_vaddr;
            lib_hi = lib_lo + ph->p_memsz;
        }
    }
    return 1;
}

/* The n-th allocation by libtandem from now on fails (n >= 1), and with
 * `every` != 0 every one after it too. Returns 0, or -1 when libtandem is not
 * loaded. */
int tdf_arm(long n, int every)
{
    if (!lib_hi) dl_iterate_phdr(find_lib, NULL);
    if (!lib_hi) return -1;
    __atomic_store_n(&counted, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&failed, 0, __ATOMIC_SEQ_CST);
    armed_at = n;
    persistent = every;
    __atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* Stops failing; returns how many allocations libtandem made while armed. */
long tdf_disarm(void)
{
    __atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&counted, __ATOMIC_SEQ_CST);
}

/* How many allocations failed since the last tdf_arm. */
long tdf_failed(void)
{
    return __atomic_load_n(&failed, __ATOMIC_SEQ_CST);
}

static int fail_here(const void *caller)
{
    uintptr_t a = (uintptr_t)caller;
    if (!__atomic_load_n(&armed, __ATOMIC_SEQ_CST) || a < lib_lo || a >= lib_hi) return 0;
    long k = __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST);
    if (getenv("TD_FAULT_TRACE")) {
        Dl_info info;
        char msg[256];
        int len =
            dladdr(caller, &info) && info.dli_sname
                ? snprintf(msg, sizeof(msg), "tdfault: allocation %ld from %s+0x%lx (0x%lx)\n", k,
                           info.dli_sname, (unsigned long)(a - (uintptr_t)info.dli_saddr),
                           (unsigned long)(a - (uintptr_t)info.dli_fbase))
                : snprintf(msg, sizeof(msg), "tdfault: allocation %ld from 0x%lx\n", k,
                           (unsigned long)(a - lib_lo));
        if (len > 0) real_write(2, msg, (size_t)len);
    }
    if (k == armed_at || (persistent && k > armed_at)) {
        __atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc) return boot_alloc(n);
    if (fail_here(__builtin_return_address(0))) return errno = ENOMEM, NULL;
    return real_malloc(n);
}

void *calloc(size_t n, size_t s)
{
    resolve();
    if (!real_calloc) return n && s > sizeof(boot) / n ? NULL : boot_alloc(n * s);
    if (fail_here(__builtin_return_address(0))) return errno = ENOMEM, NULL;
    return real_calloc(n, s);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (fail_here(__builtin_return_address(0))) return errno = ENOMEM, NULL;
    if (in_boot(p)) {
        void *q = real_malloc(n);
        if (q) memcpy(q, p, n < sizeof(boot) ? n : sizeof(boot));
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p)
{
    resolve();
    if (p && !in_boot(p)) real_free(p);
}

void *aligned_alloc(size_t a, size_t n)
{
    resolve();
    if (fail_here(__builtin_return_address(0))) return errno = ENOMEM, NULL;
    return real_aligned_alloc(a, n);
}

int posix_memalign(void **out, size_t a, size_t n)
{
    resolve();
    if (fail_here(__builtin_return_address(0))) return ENOMEM;
    return real_posix_memalign(out, a, n);
}

void *memalign(size_t a, size_t n)
{
    resolve();
    if (fail_here(__builtin_return_address(0))) return errno = ENOMEM, NULL;
    return real_memalign(a, n);
}

/* ---- write faults ---- */

static long write_target = -1, tmp_writes;

/* The n-th write-type call on a ".tmp" file from now on fails (n >= 1; 0
 * disarms). Returns the number of such calls since the previous arming. */
long tdf_arm_write(long n)
{
    long seen = tmp_writes;
    tmp_writes = 0;
    write_target = n > 0 ? n : -1;
    return seen;
}

__attribute__((constructor)) static void start(void)
{
    resolve();
    const char *w = getenv("TD_FAULT_WRITE");
    if (w) write_target = atol(w);
}

__attribute__((destructor)) static void finish(void)
{
    if (getenv("TD_FAULT_WRITE_REPORT")) {
        char msg[64];
        int len = snprintf(msg, sizeof(msg), "tdfault: %ld tmp writes\n", tmp_writes);
        if (real_write && len > 0) real_write(2, msg, (size_t)len);
    }
}

static int is_tmp(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 4) return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, ".tmp") == 0;
}

static int write_fails(int fd)
{
    if (!is_tmp(fd)) return 0;
    return ++tmp_writes == write_target;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    resolve();
    if (write_fails(fd)) return errno = EIO, -1;
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    resolve();
    if (write_fails(fd)) return errno = EIO, -1;
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

int fsync(int fd)
{
    resolve();
    if (write_fails(fd)) return errno = EIO, -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    resolve();
    if (write_fails(fd)) return errno = EIO, -1;
    return real_fdatasync(fd);
}
