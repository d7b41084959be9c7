/* Library-internal: one build of a struct td_tangent_model at one batch
 * size, with its parameter values copied in, its selected parameters
 * resolved and staging buffers for feeding a range of samples. Shared by
 * the NTK methods (optim/ntk*.c) and the NTK-vector products. Not
 * installed. */
#ifndef TD_TANGENT_IMPL_H
#define TD_TANGENT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "graph/plan.h"
#include "optim/tangent_model.h"

struct td_tinst {
    struct td_graph *g;
    struct td_tangent_net net;
    int64_t batch;
    int64_t K;                                  /* outputs per sample */
    size_t sample_bytes[TD_TANGENT_MAX_INPUTS]; /* bytes of one sample of input i */
    int n_sel;                                  /* selected parameters, store order */
    int *sel;                                   /* their indices in g's store */
    size_t sel_total;                           /* floats they hold together */
    void *stage[TD_TANGENT_MAX_INPUTS];         /* batch samples of each input */
    struct td_feed feeds[TD_TANGENT_MAX_INPUTS];
};

/* Builds m at `batch`, copies the values in, resolves the selection.
 * Returns TD_OK or an error with a message in err (the builder's graph
 * error, a parameter missing from or differing from m->values, an output
 * or input whose axis 0 is not the batch, a selection naming nothing).
 * Free with td_tinst_free, also after a failure. */
enum td_status td_tinst_init(struct td_tinst *t, const struct td_tangent_model *m, int64_t batch,
                             const struct td_param_select *sel, char *err, size_t errlen);
void td_tinst_free(struct td_tinst *t);

/* Copies m->values into the build's store again (nothing when m->values is
 * NULL or t holds no build). */
void td_tinst_refresh(struct td_tinst *t, const struct td_tangent_model *m);

/* Feeds for samples [first, first + count) of d, count <= batch / copies,
 * each input laid out as `copies` consecutive copies of the count samples,
 * padded by repeating the first sample up to batch / copies. Points the
 * feeds straight at d when no copy is needed. Returns t->feeds (n_inputs
 * entries). */
const struct td_feed *td_tinst_feed(struct td_tinst *t, const struct td_tangent_data *d,
                                    int64_t first, int64_t count, int copies);

/* A selected parameter's slice of a flat vector of sel_total floats:
 * parameter t->sel[i] occupies [td_tinst_sel_offset(t, i), + numel). */
size_t td_tinst_sel_offset(const struct td_tinst *t, int i);

/* Writes the K outputs' shape as text ("10", "16x11") for messages. */
void td_tinst_describe(const struct td_tinst *t, char *buf, size_t len);

/* Forward FLOPs of one sample (matmul-like nodes: 2 per multiply-add;
 * other nodes: elements read and written), for the cost models. */
double td_tinst_flops_per_sample(const struct td_tinst *t);

#endif
