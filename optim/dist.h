/* Data-parallel training over MPI (Open MPI): the processes of one job
 * ("ranks") each run the same model on their own shard of every global
 * batch and sum gradients and tangents before every optimizer step.
 *
 * Sums are computed by a ring all-reduce written here on MPI point-to-point
 * messages, so every element is summed in a fixed order: a job with N ranks
 * gives bitwise the same result on every rank and from run to run. The
 * library is usable without MPI (meson option mpi=disabled, or a process
 * not started by mpirun): td_dist_init then returns a single-rank
 * communicator and every collective is a no-op. */
#ifndef TD_DIST_H
#define TD_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

struct td_dist;

/* Joins the job this process was started in (MPI_Init when mpirun or
 * another MPI launcher started it, otherwise a single-rank communicator).
 * Call once, before any thread is started; pair with td_dist_finalize.
 * Returns TD_OK with *out set, or TD_ERR_BACKEND / TD_ERR_NOMEM with a
 * message in err. */
enum td_status td_dist_init(struct td_dist **out, char *err, size_t errlen);

/* Leaves the job (MPI_Finalize) and frees d. NULL is a no-op. */
void td_dist_finalize(struct td_dist *d);

/* This process's rank in [0, size) and the number of ranks. NULL counts as
 * a single rank 0. */
int td_dist_rank(const struct td_dist *d);
int td_dist_size(const struct td_dist *d);

/* 1 when Tandem was built with MPI support. */
int td_dist_available(void);

/* Replaces x[0..n) on every rank by the sum over ranks, summed in a fixed
 * ring order (the same bits on every rank and every run). Every rank must
 * call it with the same n. Allocates nothing. TD_ERR_BACKEND with a message
 * when a message fails (a rank died). */
enum td_status td_dist_sum_f32(struct td_dist *d, float *x, size_t n, char *err, size_t errlen);

/* all[r] = v of rank r, for r in [0, size), on every rank. all holds size
 * entries. */
enum td_status td_dist_gather_u64(struct td_dist *d, uint64_t v, uint64_t *all, char *err,
                                  size_t errlen);

/* x[0..n) (n <= 8) summed over ranks in rank order, on every rank. */
enum td_status td_dist_sum_f64(struct td_dist *d, double *x, int n, char *err, size_t errlen);

#endif
