/* How the optimizers' elementwise loops split a parameter vector over
 * threads. */
#ifndef TD_PAR_H
#define TD_PAR_H

#include <stddef.h>

/* The chunk of schedule(static, chunk) that gives each of `threads` threads
 * one contiguous range starting on a multiple of 16 floats. OpenMP's plain
 * static schedule starts the second thread's range wherever n / threads
 * falls: with the vectors 64-byte aligned, a start 16 or 20 bytes into a
 * line makes every vector access of that thread straddle two cache lines,
 * and Adam's update over the seed MLP's 109,386 parameters took 48 us on
 * two threads instead of 26 (one thread: 40). The result is the same bits:
 * each element is computed alone. */
static inline long td_par_chunk(size_t n, int threads)
{
    const size_t t = threads > 0 ? (size_t)threads : 1;
    const size_t per = ((n + t - 1) / t + 15) / 16 * 16;
    return per > 0 ? (long)per : 16;
}

#endif
