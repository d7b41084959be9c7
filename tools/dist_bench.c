/* tandem-dist-bench: the time of the data-parallel step's one collective
 * (td_dist_sum_f32 over the fused gradient + tangent + loss buffer) for the
 * zoo models' sizes, measured under mpirun, and a projection of the step time
 * on N nodes of a cluster from the measured single-node step time.
 *
 *   mpirun -np 2 ... tandem-dist-bench [--floats N]... [--reps R]
 *   tandem-dist-bench --project STEP_MS --floats N [--flops GFLOP --peak GFLOPS]
 *
 * The projection is a model, not a measurement: a ring all-reduce moves
 * 2 (N-1)/N of the buffer through every node's link, plus 2 (N-1) message
 * latencies, and is added to the step's compute time (no overlap). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/dist.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: tandem-dist-bench [--floats N] [--reps R]          (under mpirun: measures)\n"
    "       tandem-dist-bench --project STEP_MS --floats N [--gflop X --peak Y]\n"
    "  --floats N     floats summed per step (default: the seed MLP's and the GPT's\n"
    "                 gradient + tangent + loss: 218773 and 6459393)\n";

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int measure(struct td_dist *d, long long floats, long long reps)
{
    float *buf = malloc((size_t)floats * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    char err[256];
    if (!buf || !t) return 1;
    for (long long i = 0; i < floats; i++) buf[i] = 1e-3f * (float)(i % 97);
    for (long long r = -3; r < reps; r++) {
        double t0 = td_cli_now();
        if (td_dist_sum_f32(d, buf, (size_t)floats, err, sizeof(err)) != TD_OK) {
            fprintf(stderr, "tandem-dist-bench: %s\n", err);
            return 1;
        }
        if (r >= 0) t[r] = td_cli_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(*t), cmp);
    if (td_dist_rank(d) == 0)
        printf("allreduce_floats %lld  ranks %d  median_ms %.3f  min_ms %.3f  max_ms %.3f  "
               "GB/s_per_rank %.2f\n",
               floats, td_dist_size(d), 1e3 * t[reps / 2], 1e3 * t[0], 1e3 * t[reps - 1],
               2.0 * (td_dist_size(d) - 1) / td_dist_size(d) * (double)floats * 4 / t[reps / 2] /
                   1e9);
    free(buf);
    free(t);
    return 0;
}

/* Ring all-reduce on N nodes with link bandwidth bw (bytes/s) and latency
 * lat (s): 2 (N-1)/N * bytes / bw + 2 (N-1) lat. */
static double ring_seconds(int n, double bytes, double bw, double lat)
{
    return 2.0 * (n - 1) / n * bytes / bw + 2.0 * (n - 1) * lat;
}

static void project(double step_ms, long long floats, double gflop, double peak)
{
    const int nodes[] = {8, 32, 64};
    const double gbps[] = {25, 100};
    const double lat = 20e-6; /* per message on Ethernet with MPI over TCP */
    double bytes = (double)floats * 4;
    printf("projection (a model, not a measurement): compute %.1f ms per step, %lld floats "
           "(%.1f MB) summed per step, latency %.0f us per message, no overlap\n",
           step_ms, floats, bytes / 1e6, lat * 1e6);
    printf("%8s %10s %14s %14s %12s%s\n", "nodes", "link", "allreduce_ms", "step_ms", "scaling_eff",
           gflop > 0 ? "  %peak" : "");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            double ar = 1e3 * ring_seconds(nodes[i], bytes, gbps[j] * 1e9 / 8, lat);
            double step = step_ms + ar;
            printf("%8d %7.0fGb/s %14.2f %14.2f %11.1f%%", nodes[i], gbps[j], ar, step,
                   100 * step_ms / step);
            if (gflop > 0) printf("  %5.1f%%", 100 * gflop / (step / 1e3) / peak);
            printf("\n");
        }
}

int main(int argc, char **argv)
{
    long long floats = 0, reps = 50;
    double step_ms = 0, gflop = 0, peak = 0;
    const struct td_opt opts[] = {
        {"--floats", TD_OPT_INT, &floats, 1, 1e10},       {"--reps", TD_OPT_INT, &reps, 1, 1e6},
        {"--project", TD_OPT_FLOAT, &step_ms, 1e-6, 1e9}, {"--gflop", TD_OPT_FLOAT, &gflop, 0, 1e9},
        {"--peak", TD_OPT_FLOAT, &peak, 0, 1e9},
    };
    int r =
        td_cli_parse("dist-bench", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r <= 0) return r < 0 ? 2 : 0;
    if (step_ms > 0) {
        if (floats < 1) {
            fprintf(stderr, "tandem-dist-bench: --project needs --floats\n%s", usage);
            return 2;
        }
        project(step_ms, floats, gflop, peak);
        return 0;
    }
    char err[256];
    struct td_dist *d = NULL;
    if (td_dist_init(&d, err, sizeof(err)) != TD_OK) {
        fprintf(stderr, "tandem-dist-bench: %s\n", err);
        return 1;
    }
    /* The seed MLP has 109,386 parameters, the default GPT 3,229,696. */
    long long sizes[2] = {2 * 109386 + 1, 2 * 3229696 + 1};
    int status = 0;
    if (floats > 0)
        status = measure(d, floats, reps);
    else
        for (int i = 0; i < 2 && !status; i++) status = measure(d, sizes[i], reps);
    td_dist_finalize(d);
    return status;
}
