/* tandem-peak: this machine's fp32 FMA peak, measured rather than assumed,
 * so benchmarks can state efficiency as counted FLOPs / (time x peak).
 *
 * Each thread runs a loop of 12 independent vfmadd231ps chains on 512-bit
 * (zmm) or 256-bit (ymm) registers, written in inline assembly: a compiler
 * would merge or shorten accumulator loops written in C. Twelve chains cover
 * the FMA latency (4 cycles) times two FMA pipes with room to spare. The
 * operands are zero, so no denormal or NaN path is taken. Measured on one
 * thread and on all of them together; the best of several repetitions.
 * Prints `key value` lines (GFLOP/s, a multiply-add counted as 2 FLOPs).
 * The rates are taken over each thread's CPU time, so another process
 * holding a core for a while does not lower them; peak_wall_gflops is the
 * wall-clock rate, which shows how quiet the machine was.
 *
 * core_round_trip_ns: two threads hand a cache line back and forth; the
 * median time of one round trip. On the same virtual machine it moves
 * between about 55 ns (the two cores one cache hop apart) and 300 ns (two
 * hops: another core complex), for minutes at a time, and with it every
 * time that hands data between cores. --round-trip measures only that. */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tools/cli.h"

static const char usage[] = "usage: tandem-peak [--threads N] [--seconds S] [--round-trip]\n";

enum { CHAINS = 12 };

/* iters x CHAINS FMAs on zmm registers (16 floats each). */
static void fma_zmm(long iters)
{
    __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n\t"
                     "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\t"
                     "vmovaps %%zmm0, %%zmm3\n\tvmovaps %%zmm0, %%zmm4\n\t"
                     "vmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\t"
                     "vmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\t"
                     "vmovaps %%zmm0, %%zmm9\n\tvmovaps %%zmm0, %%zmm10\n\t"
                     "vmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"
                     "vmovaps %%zmm0, %%zmm13\n\t"
                     "1:\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\t"
                     "vfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
                     "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper"
                     : "+r"(iters)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc");
}

/* The same on ymm registers (8 floats each). */
static void fma_ymm(long iters)
{
    __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vmovaps %%ymm0, %%ymm1\n\tvmovaps %%ymm0, %%ymm2\n\t"
                     "vmovaps %%ymm0, %%ymm3\n\tvmovaps %%ymm0, %%ymm4\n\t"
                     "vmovaps %%ymm0, %%ymm5\n\tvmovaps %%ymm0, %%ymm6\n\t"
                     "vmovaps %%ymm0, %%ymm7\n\tvmovaps %%ymm0, %%ymm8\n\t"
                     "vmovaps %%ymm0, %%ymm9\n\tvmovaps %%ymm0, %%ymm10\n\t"
                     "vmovaps %%ymm0, %%ymm11\n\tvmovaps %%ymm0, %%ymm12\n\t"
                     "vmovaps %%ymm0, %%ymm13\n\t"
                     "1:\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\t"
                     "vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
                     "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper"
                     : "+r"(iters)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc");
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* GFLOP/s of `threads` threads each running kernel(iters), timed from one
 * barrier to the next, best of `reps`. *cpu gets the rate by the threads'
 * own CPU time (what the cores do while they hold the threads: the same as
 * the wall-clock rate on a quiet machine, higher when others share it). */
static double measure(void (*kernel)(long), int lanes, int threads, long iters, int reps,
                      double *cpu)
{
    double best = 0, best_cpu = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = 0, t1 = 0, cpu_sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : cpu_sum)
        {
#pragma omp barrier
#pragma omp master
            t0 = omp_get_wtime();
            double c0 = thread_cpu_seconds();
            kernel(iters);
            cpu_sum = thread_cpu_seconds() - c0;
#pragma omp barrier
#pragma omp master
            t1 = omp_get_wtime();
        }
        double flops = 2.0 * CHAINS * lanes * (double)iters;
        if (t1 > t0 && flops * threads / (t1 - t0) > best) best = flops * threads / (t1 - t0);
        double rate_cpu = cpu_sum > 0 ? flops * threads * threads / cpu_sum : 0;
        if (rate_cpu > best_cpu) best_cpu = rate_cpu;
    }
    *cpu = best_cpu * 1e-9;
    return best * 1e-9;
}

/* Iterations of one kernel call lasting about `seconds` on one thread. */
static long calibrate(void (*kernel)(long), double seconds)
{
    long iters = 1 << 16;
    for (;;) {
        double t0 = omp_get_wtime();
        kernel(iters);
        double t = omp_get_wtime() - t0;
        if (t > 0.02 || iters > (1L << 40))
            return (long)((double)iters * seconds / (t > 0 ? t : 1e-9)) + 1;
        iters *= 4;
    }
}

/* Median over bursts of the time two threads take to pass a counter there
 * and back through one cache line, in ns; NAN with fewer than 2 cores
 * (two threads spinning on one core would wait out time slices). */
static double core_round_trip_ns(void)
{
    enum { BURSTS = 9, TRIPS = 20000 };
    if (omp_get_num_procs() < 2) return 0.0 / 0.0;
    static _Alignas(64) atomic_long turn;
    double t[BURSTS];
    for (int b = 0; b < BURSTS; b++) {
        int team = 0;
        double t0 = 0, t1 = 0;
        atomic_store(&turn, 0);
#pragma omp parallel num_threads(2)
        {
            long me = omp_get_thread_num();
#pragma omp master
            team = omp_get_num_threads();
#pragma omp barrier
            if (team == 2) {
#pragma omp master
                t0 = omp_get_wtime();
                for (long i = 0; i < TRIPS; i++) {
                    while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + me)
                        ;
                    atomic_store_explicit(&turn, 2 * i + me + 1, memory_order_release);
                }
#pragma omp master
                t1 = omp_get_wtime();
            }
        }
        if (team != 2) return 0.0 / 0.0;
        t[b] = (t1 - t0) / TRIPS * 1e9;
    }
    qsort(t, BURSTS, sizeof(t[0]), td_cli_cmp_double);
    return t[BURSTS / 2];
}

int main(int argc, char **argv)
{
    long long threads = 0;
    double seconds = 0.1;
    int round_trip_only = 0;
    const struct td_opt opts[] = {
        {"--threads", TD_OPT_INT, &threads, 1, 1024},
        {"--seconds", TD_OPT_FLOAT, &seconds, 1e-3, 60},
        {"--round-trip", TD_OPT_FLAG, &round_trip_only, 0, 0},
    };
    int r = td_cli_parse("peak", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    printf("core_round_trip_ns %.1f\n", core_round_trip_ns());
    if (round_trip_only) return 0;
    int all = threads > 0 ? (int)threads : omp_get_max_threads();
    __builtin_cpu_init();
    int has_ymm = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
    int has_zmm = has_ymm && __builtin_cpu_supports("avx512f");
    if (!has_ymm) {
        fprintf(stderr, "tandem-peak: this CPU has no AVX2 FMA\n");
        return 1;
    }
    enum { REPS = 5 };
    double best1 = 0, best_all = 0, best_wall = 0;
    printf("threads %d\n", all);
    struct {
        const char *name;
        void (*kernel)(long);
        int lanes, ok;
    } widths[] = {{"zmm", fma_zmm, 16, has_zmm}, {"ymm", fma_ymm, 8, 1}};
    for (int w = 0; w < 2; w++) {
        if (!widths[w].ok) {
            printf("peak_%s_1thr_gflops nan\npeak_%s_all_gflops nan\n", widths[w].name,
                   widths[w].name);
            continue;
        }
        long iters = calibrate(widths[w].kernel, seconds);
        double one, many;
        measure(widths[w].kernel, widths[w].lanes, 1, iters, REPS, &one);
        double wall = measure(widths[w].kernel, widths[w].lanes, all, iters, REPS, &many);
        printf("peak_%s_1thr_gflops %.1f\npeak_%s_all_gflops %.1f\n", widths[w].name, one,
               widths[w].name, many);
        if (one > best1) best1 = one;
        if (many > best_all) best_all = many;
        if (wall > best_wall) best_wall = wall;
    }
    /* The peaks above are the cores' rates while they run the threads (by
     * thread CPU time), what percent-of-peak figures divide by. The
     * wall-clock rate of all threads shows what other processes left to
     * this one: equal on a quiet machine, lower on a shared one. */
    printf("peak_1thr_gflops %.1f\npeak_gflops %.1f\npeak_wall_gflops %.1f\n", best1, best_all,
           best_wall);
    return 0;
}
