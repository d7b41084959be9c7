#include "graph/memory.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TD_HUGE_PAGE ((size_t)2 << 20)

void *td_alloc_large(size_t bytes)
{
    size_t align = bytes >= TD_HUGE_PAGE ? TD_HUGE_PAGE : 64;
    if (bytes > SIZE_MAX - align) return NULL; /* rounding up would wrap around */
    size_t size = bytes ? (bytes + align - 1) / align * align : align;
    void *m = aligned_alloc(align, size);
    if (m && align == TD_HUGE_PAGE) madvise(m, size, MADV_HUGEPAGE);
    return m;
}

int td_float_block_grow(void **raw, float **at, size_t had, size_t n, int slot)
{
    const size_t stagger = (size_t)(slot % 4) * 1024;
    if (n > (SIZE_MAX - 64 - stagger) / sizeof(float)) return 0;
    size_t old_off = *raw ? (size_t)((char *)*at - (char *)*raw) : 0;
    char *r = realloc(*raw, n * sizeof(float) + 64 + stagger);
    if (!r) return 0;
    size_t off = (size_t)(-(uintptr_t)r & 63) + stagger;
    if (off != old_off && had) memmove(r + off, r + old_off, had * sizeof(float));
    *raw = r;
    *at = (float *)(r + off);
    memset(*at + had, 0, (n - had) * sizeof(float));
    return 1;
}
