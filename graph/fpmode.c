#include "graph/fpmode.h"

#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* MXCSR bits: flush-to-zero (15) and denormals-are-zero (6). */
#define TD_MXCSR_FTZ_DAZ 0x8040u

static void set_this_thread(void)
{
#if defined(__SSE__)
    unsigned csr = _mm_getcsr();
    if ((csr & TD_MXCSR_FTZ_DAZ) != TD_MXCSR_FTZ_DAZ) _mm_setcsr(csr | TD_MXCSR_FTZ_DAZ);
#endif
}

void td_flush_denormals(int num_threads)
{
    set_this_thread();
    if (num_threads > 1) {
#pragma omp parallel num_threads(num_threads)
        set_this_thread();
    }
}
