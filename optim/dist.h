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

/* A sum of one buffer over ranks in contiguous buckets, each summed as soon
 * as the caller says it is final, so the reduction of finished gradients
 * overlaps the rest of the backward pass. Every element is summed in the
 * same fixed ring order as td_dist_sum_f32 within its bucket, so results are
 * the same bits on every rank and from run to run whatever the timing or the
 * order in which buckets become final (with 2 ranks, also the same bits as
 * td_dist_sum_f32). All MPI calls happen on the thread calling these
 * functions, which must be the thread that called td_dist_init.
 *
 * Use per step: td_dist_buckets_start, td_dist_buckets_ready for each bucket
 * as it becomes final (in any order, each once), with
 * td_dist_buckets_progress in between to move the started ones on, then
 * td_dist_buckets_finish. Every rank must use the same buckets. */
struct td_dist_buckets;

/* Buckets [ends[b-1], ends[b]) of a buffer of ends[n_buckets-1] floats
 * (ends increasing, the first bucket starting at 0). Allocates its scratch
 * here, nothing per step. NULL with a message in err when memory runs out or
 * the ends are invalid. d may be NULL or single-rank: every call then only
 * checks its arguments. */
struct td_dist_buckets *td_dist_buckets_new(struct td_dist *d, const size_t *ends, int n_buckets,
                                            char *err, size_t errlen);
void td_dist_buckets_free(struct td_dist_buckets *b);

/* Begins the sum of x (ends[n_buckets-1] floats, owned by the caller, not
 * to be touched until td_dist_buckets_finish returns). TD_ERR_STATE when the
 * previous sum was not finished. */
enum td_status td_dist_buckets_start(struct td_dist_buckets *b, float *x, char *err, size_t errlen);

/* Bucket i of x is final on this rank: its sum starts. TD_ERR_ARG for an
 * index out of range or given twice; TD_ERR_BACKEND when a message fails. */
enum td_status td_dist_buckets_ready(struct td_dist_buckets *b, int i, char *err, size_t errlen);

/* Moves every started bucket on as far as messages that have arrived allow,
 * without waiting. TD_ERR_BACKEND when a message fails. */
enum td_status td_dist_buckets_progress(struct td_dist_buckets *b, char *err, size_t errlen);

/* Waits until every bucket is summed: x then holds the sum over ranks.
 * TD_ERR_STATE when a bucket was never made ready (after which the sum
 * cannot complete: stop the job); TD_ERR_BACKEND when a message fails. */
enum td_status td_dist_buckets_finish(struct td_dist_buckets *b, char *err, size_t errlen);

/* all[r] = v of rank r, for r in [0, size), on every rank. all holds size
 * entries. */
enum td_status td_dist_gather_u64(struct td_dist *d, uint64_t v, uint64_t *all, char *err,
                                  size_t errlen);

/* x[0..n) (n <= 8) summed over ranks in rank order, on every rank. */
enum td_status td_dist_sum_f64(struct td_dist *d, double *x, int n, char *err, size_t errlen);

#endif
