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

/* Grows the float block *at, inside the allocation *raw (both NULL at
 * first), to n floats, keeping the first `had` and zeroing the rest; free
 * *raw with free(). realloc keeps large blocks from being copied (or held
 * twice) as parameters are added.
 *
 * The block is 64-byte aligned (vector loops split blocks at 64-byte
 * boundaries, so no access straddles two cache lines; see optim/par.h),
 * then moved slot x 1 KiB further, modulo 4 KiB. Blocks of different slots
 * are read and written side by side in one loop (the parameter store's
 * value, gradient and direction, an optimizer's moments); large heap blocks
 * all start at the same offset in their pages, where the loads of one alias
 * the stores to another in the processor's 4 KiB address check. Measured on
 * the seed MLP's epoch with Adam at batch 128: 42-45 ms outside the plans in
 * most processes (28-30 in some) with the blocks at one offset, 26-28 in
 * every process staggered by 1 KiB (6 alternating runs of 3 epochs; a 512
 * byte stagger still gave 36-37 in some). Returns 1, or 0 with the block as
 * it was when memory runs out. */
int td_float_block_grow(void **raw, float **at, size_t had, size_t n, int slot);

#endif
