/* A model the tangent tools (optim/ntk.h, optim/ntvp.h) can rebuild at any
 * batch size.
 *
 * Per-sample quantities (rows of the Jacobian J_n = df(x_n)/dtheta, kernels
 * between two sample sets) need the model at batch sizes other than the one
 * it trains at: one sample at a time, a tile of samples, or a tile repeated
 * once per output so that one batched backward pass carries a different
 * cotangent for every output. A graph is built for one batch size, so the
 * tools take a builder callback and call it for each size they need, each
 * time in a fresh graph, then copy the parameter values in by name.
 *
 * The builder must treat samples independently (no op that mixes the
 * batch, such as batch normalisation, and no dropout: build the model in
 * evaluation form), and create the same parameters (names, shapes) at every
 * batch size. */
#ifndef TD_TANGENT_MODEL_H
#define TD_TANGENT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

#define TD_TANGENT_MAX_INPUTS 4

/* What the builder returns for one batch size. */
struct td_tangent_net {
    /* The per-sample inputs: axis 0 of each is the batch. They are fed
     * from the caller's sample arrays (struct td_tangent_data). */
    struct td_node *inputs[TD_TANGENT_MAX_INPUTS];
    int n_inputs;
    /* The model output f [batch, ...] (logits). Each sample has
     * K = numel(f) / batch outputs, flattened in row-major order. */
    struct td_node *output;
};

struct td_tangent_model {
    /* Builds the model for `batch` samples in the empty graph g (seeded with
     * `seed` below) and fills *net. Returns TD_OK or the graph's error
     * status; the message is then read from g. Called several times, from
     * one thread, with batch >= 1. */
    enum td_status (*build)(void *ctx, struct td_graph *g, int64_t batch,
                            struct td_tangent_net *net);
    void *ctx;
    /* Parameter values copied by name into every build; each build must
     * have exactly these parameters, with the same shapes. NULL: every
     * build keeps its own initial values (the same for every batch size
     * when initialisers depend only on the seed and the parameter order). */
    const struct td_params *values;
    uint64_t seed;
};

/* The samples of one side of a kernel: input i of sample s starts at
 * x[i] + s * (bytes of one sample of input i). Not copied: the arrays must
 * outlive the call that reads them. */
struct td_tangent_data {
    const void *x[TD_TANGENT_MAX_INPUTS];
    int64_t n;
};

/* Which parameters theta covers. Each name selects the parameter of that
 * name or, as a scope, every parameter below it ("fc1" selects fc1/weight
 * and fc1/bias). n == 0 selects every parameter. A name that selects
 * nothing is an error (TD_ERR_ARG) naming it and the parameters there are. */
struct td_param_select {
    const char *const *names;
    int n;
};

#endif
