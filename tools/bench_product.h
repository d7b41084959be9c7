/* tandem-bench --product: one matrix product alone in a plan, the ceiling
 * the products of a model's plans can be held against. */
#ifndef TD_BENCH_PRODUCT_H
#define TD_BENCH_PRODUCT_H

/* Parses spec "M,K,N", times op(a) op(b) of [M, K] by [K, N] (td_matmul)
 * with each of the four operand layouts (a or b stored transposed or not),
 * the four plans alternating within each of `reps` rounds of `steps` runs
 * after `warmup` runs of each, and prints `product_<ab>_ms` (median over
 * the rounds), `_spread` ((max - min) / median), `_gflop` (2MKN) and
 * `_gflops` lines, with <ab> one of nn, tn, nt, tt (t: that operand stored
 * transposed).
 * threads <= 0: the library's default. Returns 0, or 2 with a message on
 * stderr for a bad spec or a plan that does not build or run. */
int bench_product_run(const char *spec, int threads, long long warmup, long long steps, int reps);

#endif
