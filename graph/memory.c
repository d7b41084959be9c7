#include "graph/memory.h"

#include <stdint.h>
#include <stdlib.h>
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
