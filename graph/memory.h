/* Large buffers (arenas, scratch, data sets). Library-internal. */
#ifndef TD_MEMORY_H
#define TD_MEMORY_H

#include <stddef.h>

/* A block of `bytes` for data that is touched at once and kept: from 2 MiB
 * up it is 2 MiB-aligned and advised to use huge pages, since the first touch
 * of each fresh 4 KiB page costs about 13 us on these VMs; below, it is
 * 64-byte aligned. Contents are undefined. Free with free(). NULL when out
 * of memory; bytes == 0 gives a valid minimal block. */
void *td_alloc_large(size_t bytes);

#endif
