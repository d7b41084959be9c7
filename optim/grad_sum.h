/* The data-parallel sum of one training step, overlapped with its plan: the
 * gradient (and H*dir) that a step plan writes into the parameter store, and
 * the loss after them, form one buffer (td_params: grad, tangent, spare
 * float). The buffer is cut into buckets at parameter boundaries; each
 * bucket's ring sum starts as soon as the plan has written every value in it,
 * while the rest of the backward pass runs (td_run_hooked), and the run
 * returns once every bucket is summed. */
#ifndef TD_GRAD_SUM_H
#define TD_GRAD_SUM_H

#include <stddef.h>

#include "graph/plan.h"
#include "optim/dist.h"
#include "optim/step_graph.h"

/* Default bucket size: 1 MiB of floats. */
#define TD_GRAD_SUM_BUCKET_FLOATS ((size_t)1 << 18)

struct td_grad_sum;

/* The sum for `plan`, compiled by td_step_graph_compile(s, hvp, bind = 1,
 * ...). Buckets hold at least bucket_floats floats each (a larger parameter
 * makes a larger bucket; 0: TD_GRAD_SUM_BUCKET_FLOATS), except the one that
 * ends the buffer. d, s and plan must outlive the result. NULL with a message
 * in err when memory runs out or plan does not compute s's outputs. */
struct td_grad_sum *td_grad_sum_new(struct td_dist *d, const struct td_step_graph *s,
                                    const struct td_plan *plan, int hvp, size_t bucket_floats,
                                    char *err, size_t errlen);
void td_grad_sum_free(struct td_grad_sum *gs);

/* Runs the plan with the feeds; on TD_OK the store's gradient (and tangent,
 * for an HVP plan) holds the sum over ranks, *loss the summed loss (not yet
 * divided by the ranks) and *waited the seconds spent after the plan's last
 * step waiting for the sums: the reduction not hidden behind the plan. Errors: the plan's (message
 * from td_plan_error, copied into err) or a failed message (TD_ERR_BACKEND). After an error the sum
 * is abandoned half-way, and the other ranks wait for this one's buckets: the job must stop (as
 * td_trainer_run does). */
enum td_status td_grad_sum_run(struct td_grad_sum *gs, struct td_plan *plan,
                               const struct td_feed *feeds, int n_feeds, double *loss,
                               double *waited, char *err, size_t errlen);

#endif
