/* The four layouts alternate round by round, so a machine whose speed moves
 * for minutes at a time (a shared VM's cores changing distance) moves all
 * four medians alike and their ratios stay meaningful. */
#include "tools/bench_product.h"

#include <stdio.h>
#include <stdlib.h>

#include "graph/rng.h"
#include "graph/tandem.h"
#include "tools/cli.h"

enum { LAYOUTS = 4 };

int bench_product_run(const char *spec, int threads, long long warmup, long long steps, int reps)
{
    long long m, k, n;
    char end;
    if (sscanf(spec, "%lld,%lld,%lld%c", &m, &k, &n, &end) != 3 || m < 1 || k < 1 || n < 1 ||
        m > (1 << 20) || k > (1 << 20) || n > (1 << 20)) {
        fprintf(stderr, "tandem-bench: --product wants M,K,N (positive, at most 2^20), got '%s'\n",
                spec);
        return 2;
    }
    struct td_graph *g = td_graph_new(1);
    struct td_node *out[LAYOUTS];
    struct td_feed feeds[2 * LAYOUTS];
    float *a = malloc((size_t)(m * k) * sizeof(float)),
          *b = malloc((size_t)(k * n) * sizeof(float));
    for (long long i = 0; a && i < m * k; i++) a[i] = td_rng_normal(3, 1, (uint64_t)i);
    for (long long i = 0; b && i < k * n; i++) b[i] = td_rng_normal(3, 2, (uint64_t)i);
    for (int l = 0; l < LAYOUTS && g; l++) {
        int ta = l & 1, tb = l >> 1;
        struct td_node *x = td_input(g, "a", ta ? TD_SHAPE(k, m) : TD_SHAPE(m, k), TD_F32);
        struct td_node *y = td_input(g, "b", tb ? TD_SHAPE(n, k) : TD_SHAPE(k, n), TD_F32);
        out[l] = td_matmul(g, x, y, ta, tb);
        /* The same values whichever layout: only the bytes' order differs,
         * which does not change the time. */
        feeds[2 * l] = (struct td_feed){x, a};
        feeds[2 * l + 1] = (struct td_feed){y, b};
    }
    struct td_plan *plan[LAYOUTS] = {NULL}, *failed = NULL;
    struct td_compile_options co = {.num_threads = threads};
    int ok = g && a && b && td_graph_status(g) == TD_OK;
    for (int l = 0; l < LAYOUTS && ok; l++) ok = (plan[l] = td_compile(g, &out[l], 1, &co)) != NULL;
    double *t = ok ? malloc(sizeof(double) * LAYOUTS * (size_t)reps) : NULL;
    ok = t != NULL;
    for (int l = 0; l < LAYOUTS && ok; l++)
        for (long long i = 0; i < warmup && ok; i++)
            if (!(ok = td_run(plan[l], &feeds[2 * l], 2) == TD_OK)) failed = plan[l];
    for (int r = 0; r < reps && ok; r++)
        for (int l = 0; l < LAYOUTS && ok; l++) {
            double t0 = td_cli_now();
            for (long long i = 0; i < steps && ok; i++)
                if (!(ok = td_run(plan[l], &feeds[2 * l], 2) == TD_OK)) failed = plan[l];
            t[l * reps + r] = (td_cli_now() - t0) / (double)steps;
        }
    if (ok) {
        static const char *const name[LAYOUTS] = {"nn", "tn", "nt", "tt"};
        struct td_plan_stats s;
        td_plan_get_stats(plan[0], &s);
        printf("product %lld,%lld,%lld\nthreads %d\n", m, k, n, s.num_threads);
        for (int l = 0; l < LAYOUTS; l++) {
            double *tl = t + l * reps;
            qsort(tl, (size_t)reps, sizeof(double), td_cli_cmp_double);
            double med = tl[reps / 2];
            double flop = 2.0 * (double)m * (double)k * (double)n;
            printf("product_%s_ms %.4f\nproduct_%s_spread %.3f\nproduct_%s_gflop %.4f\n"
                   "product_%s_gflops %.1f\n",
                   name[l], 1e3 * med, name[l], (tl[reps - 1] - tl[0]) / med, name[l], flop * 1e-9,
                   name[l], flop / med * 1e-9);
        }
    } else {
        fprintf(stderr, "tandem-bench: --product %s: %s\n", spec,
                failed        ? td_plan_error(failed)
                : g && a && b ? td_graph_error(g)
                              : "out of memory");
    }
    for (int l = 0; l < LAYOUTS; l++) td_plan_free(plan[l]);
    td_graph_free(g);
    free(a), free(b), free(t);
    return ok ? 0 : 2;
}
