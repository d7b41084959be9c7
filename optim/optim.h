/* Optimizers over the parameter store (struct td_params, graph/graph.h).
 *
 * An optimizer is a flat loop over the store's blocks: it reads p->grad (and,
 * on the steps that asked for it, p->tangent = H * p->dir) and updates
 * p->value in place. Its state (momentum buffers, moment estimates) is a few
 * more flat blocks of p->total floats each, owned by the optimizer.
 *
 * One training step:
 *
 *     unsigned need = td_optim_needs(o);          what the coming step reads
 *     td_optim_direction(o, p);                   writes p->dir when it needs H*dir
 *     run a plan giving p->grad (and p->tangent when need & TD_OPTIM_NEEDS_TANGENT)
 *     td_optim_step(o, p, td_schedule_lr(&sched, td_optim_steps(o)));
 *
 * Notation below: k = 1, 2, ... numbers the steps, theta the values, g the
 * gradient, t = H dir the tangent the plan wrote, lr the rate passed to
 * td_optim_step, mu = momentum, wd = weight_decay. Every buffer starts at 0.
 *
 * Clipping (clip_norm > 0): the gradient a method consumes is first scaled by
 * s = min(1, clip_norm / ||.||_2), the norm taken over the whole store: g for
 * every method except tangent-sgd, where it is the corrected gradient g + t.
 * Weight decay is added after clipping.
 *
 *   sgd          theta -= lr (s g + wd theta)
 *   momentum     u = s g + wd theta;  v = mu v + u;  theta -= lr v
 *   nesterov     u = s g + wd theta;  v = mu v + u;  theta -= lr (u + mu v)
 *                (torch.optim.SGD with nesterov=True, dampening 0)
 *   adam         u = s g + wd theta   (L2, as torch.optim.Adam)
 *   adamw        theta *= 1 - lr wd;  u = s g   (decoupled, as torch.optim.AdamW)
 *                then both: m = b1 m + (1-b1) u;  v = b2 v + (1-b2) u^2;
 *                theta -= (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^k) + eps)
 *
 *   tangent-sgd  the first-order lookahead gradient. g + H dir is the Taylor
 *                estimate of grad L(theta + dir), got with one Hessian-vector
 *                product instead of a second gradient evaluation:
 *                  u = s (g + t) + wd (theta + dir)
 *                  v = mu v + u;  theta -= lr v
 *                The direction for step k+1 (a, the "lookahead" state block)
 *                is set at the end of step k:
 *                  TD_LOOKAHEAD_MOMENTUM  a = -lr mu v   (the displacement the
 *                      momentum part of the next update will make: Nesterov's
 *                      lookahead point, PyTorch's v scaled into parameter units)
 *                  TD_LOOKAHEAD_GRADIENT  a = -lr (s g + wd theta_k)   (the
 *                      previous step's gradient: extragradient-style)
 *                Step 1 has a = 0 and runs without a tangent (t = 0, dir = 0);
 *                so does every step in momentum mode when mu = 0 (plain sgd).
 *
 *   curv-sgd     momentum direction with a curvature-aware step length. The
 *                direction of step k >= 2 is d = -v (v as left by step k-1),
 *                and the step moves theta to the minimiser of the damped
 *                quadratic model along d:
 *                  u     = s g + wd theta
 *                  alpha = -u^T d / (d^T t + (wd + damping) |d|^2)
 *                  theta += alpha d;   v = mu v + u
 *                When the denominator is <= 0 or anything is not finite,
 *                alpha = lr (fallback). Then |alpha| is clipped to
 *                max_step_ratio * lr. Step 1 (no direction yet) is a plain
 *                momentum step: v = u; theta -= lr v. With a quadratic loss
 *                0.5 theta^T A theta - b^T theta and no damping or decay,
 *                alpha is the exact line minimiser -g^T d / d^T A d.
 *
 *   adahessian   Hutchinson diagonal: on refresh steps dir = z, a Rademacher
 *   sophia       vector z_i = td_rng_sign(seed, TD_RNG_STREAM_PROBE + k - 1, i)
 *                (graph/rng.h), and
 *                D = z * t = z * (H z), whose expectation is diag(H). Refresh
 *                steps are k = 1, 1 + K, 1 + 2K, ... (K = hessian_interval);
 *                other steps need no tangent and reuse the curvature state.
 *                Weight decay is decoupled for both: theta *= 1 - lr wd first.
 *                m = b1 m + (1-b1) s g  on every step.
 *     adahessian on refresh: v = b2 v + (1-b2) D^2;  with r the number of
 *                refreshes so far,
 *                theta -= (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^r) + eps)
 *                (AdaHessian with hessian power 1 and without its spatial
 *                averaging of |D| over convolution kernels: the store has no
 *                notion of kernels, every element is its own block.)
 *     sophia     on refresh: h = b2 h + (1-b2) D;
 *                theta -= lr clip(m / max(rho h, eps), update_clip), where
 *                clip(x, c) = max(-c, min(c, x)) elementwise (Sophia-H).
 *
 *   hessian-free  truncated Newton on Gauss-Newton products (Martens 2010).
 *                The step needs more than one plan can give: it asks the
 *                caller's oracle (td_optim_set_oracle) for products G v with
 *                the Gauss-Newton matrix of this step's batch loss and for the
 *                loss at trial parameters. With u = s g + wd theta, lambda the
 *                damping (state) and A = G + (lambda + wd) I, conjugate
 *                gradients on A d = -u minimise
 *                  q(d) = u^T d + 1/2 d^T A d,
 *                starting from cg_decay * d_prev (the previous step's d, state)
 *                and stopping after cg_iters products or when q stops falling
 *                (i > j = max(10, i / 10), q_i < 0 and
 *                (q_i - q_{i-j}) / q_i < 5e-4 j). Then, with L0 the oracle's
 *                batch loss at theta and L1 the loss at theta + lr d:
 *                  rho = (L1 - L0) / q(lr d);
 *                  rho < 1/4: lambda *= 1.5;  rho > 3/4: lambda /= 1.5
 *                  (Levenberg-Marquardt). theta moves to the first of
 *                theta + lr d, + lr d / 2, / 4, / 8 whose loss is below L0
 *                (stats.alpha: its length, 0 when none is and theta stays).
 *                lambda starts at `damping`.
 *
 * Determinism: elementwise loops may run on several threads (every element
 * is independent), and every norm or dot product is summed in a fixed order
 * (optim/reduce.h), so a step gives bitwise-same results for any thread
 * count. Nothing is allocated after td_optim_new. */
#ifndef TD_OPTIM_H
#define TD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "graph/status.h"

struct td_optim;

enum td_lookahead {
    TD_LOOKAHEAD_MOMENTUM = 0, /* dir = -lr mu v: Nesterov-style */
    TD_LOOKAHEAD_GRADIENT = 1, /* dir = -lr g_prev: extragradient-style */
};

/* Hyperparameters. Each method reads only the fields it uses and td_optim_new
 * checks only those, so unused fields may hold anything. */
struct td_optim_config {
    float lr;                    /* base rate (>= 0): where the caller's schedule starts */
    float momentum;              /* mu in [0, 1): momentum, nesterov, tangent-sgd, curv-sgd */
    float beta1, beta2;          /* in [0, 1): adam, adamw, adahessian, sophia */
    float eps;                   /* >= 0; > 0 for sophia */
    float weight_decay;          /* >= 0: L2 for the sgd family and adam, decoupled otherwise */
    float clip_norm;             /* >= 0: global gradient-norm clipping, 0 = off (all methods) */
    enum td_lookahead lookahead; /* tangent-sgd */
    float damping;               /* >= 0: curv-sgd, added to H as damping * I */
    float max_step_ratio;        /* > 0: curv-sgd, |alpha| <= max_step_ratio * lr */
    int hessian_interval;        /* >= 1: adahessian, sophia refresh D every K steps */
    float rho;                   /* > 0: sophia */
    float update_clip;           /* > 0: sophia's elementwise clip threshold */
    uint64_t seed;               /* adahessian, sophia: Rademacher vectors */
    int cg_iters;                /* in [1, 500]: hessian-free's cap on products per step */
    float cg_decay;              /* in [0, 1]: hessian-free's warm start, d0 = cg_decay d_prev */
    int num_threads;             /* >= 0: OpenMP team size for the loops, 0 = OpenMP default */
};

/* Bits of td_optim_needs. */
#define TD_OPTIM_NEEDS_GRAD 1u
#define TD_OPTIM_NEEDS_TANGENT 2u
#define TD_OPTIM_NEEDS_PRODUCTS 4u /* the step calls the oracle (td_optim_set_oracle) */

/* What a step may ask of its caller beyond p->grad and p->tangent: products
 * with the Gauss-Newton matrix and losses, on the batch the gradient was
 * taken on. The training loop (optim/train.h) provides one when
 * td_optim_needs has TD_OPTIM_NEEDS_PRODUCTS. */
struct td_optim_oracle {
    void *ctx;
    /* The batch loss at the parameters p->grad was computed at; the caller
     * sets it before each td_optim_step. */
    double loss;
    /* out = G v at the current p->value, v and out of p->total floats
     * (the call may overwrite p->dir). TD_OK or an error that stops the step. */
    enum td_status (*ggn)(void *ctx, const float *v, float *out);
    /* The batch loss at the current p->value. */
    enum td_status (*eval)(void *ctx, double *loss);
};

/* What a step did, for logging and tests. */
struct td_optim_stats {
    int products;      /* hessian-free: oracle products this step */
    double model_drop; /* hessian-free: q(lr d), the quadratic model's change */
    double rho;        /* hessian-free: the reduction ratio (NaN: not evaluated) */
    double grad_norm;  /* ||.||_2 of the gradient the step consumed, before clipping */
    double clip_scale; /* the factor s applied to it (1 when not clipped) */
    double alpha;      /* curv-sgd: the step length used; other methods: lr */
    double curvature;  /* curv-sgd: d^T t / |d|^2 (undamped); NaN when no tangent was used */
    int fallback;      /* curv-sgd: 0 exact minimiser, 1 fell back to lr, 2 clipped */
    int used_tangent;  /* 1 when the step read p->tangent */
};

/* Default hyperparameters for `name` (valid for it). An unknown name gets the
 * sgd defaults; td_optim_new then reports the name. */
struct td_optim_config td_optim_config_default(const char *name);

/* The valid names, comma separated: "sgd, momentum, nesterov, ...". Static. */
const char *td_optim_names(void);

/* A new optimizer `name` (see the table above) for the store p, with zeroed
 * state and step counter 0. cfg NULL means td_optim_config_default(name); it
 * is copied. p is only read for its size; later calls must pass a store of
 * the same size. Returns NULL on failure and writes a message to err (when
 * err is not NULL and errlen > 0): an unknown name (the message lists the
 * valid names), a hyperparameter out of range (the message names it and its
 * value), NULL p, or out of memory. Free with td_optim_free. */
struct td_optim *td_optim_new(const char *name, const struct td_optim_config *cfg,
                              const struct td_params *p, char *err, size_t errlen);

/* Frees o and its state blocks. NULL is a no-op. */
void td_optim_free(struct td_optim *o);

/* The method's name and a pointer to its configuration (owned by o). */
const char *td_optim_name(const struct td_optim *o);
const struct td_optim_config *td_optim_config_of(const struct td_optim *o);

/* TD_OPTIM_NEEDS_GRAD, plus TD_OPTIM_NEEDS_TANGENT when the coming step
 * reads t = H * p->dir. Depends on the step counter, so ask every step. */
unsigned td_optim_needs(const struct td_optim *o);

/* Call before the run of every step: when the coming step needs a tangent,
 * writes the direction into p->dir (all p->total floats); otherwise leaves
 * p->dir alone. Returns TD_OK, or TD_ERR_ARG (message on o) when p's size
 * differs from the one o was made for. */
enum td_status td_optim_direction(struct td_optim *o, struct td_params *p);

/* Call after the run: reads p->grad (and p->tangent, p->dir when the step
 * needs a tangent), updates p->value and the state, and counts the step.
 * lr is this step's rate (from a schedule). p->grad and p->tangent are not
 * modified. Returns TD_OK or, leaving everything untouched, with the message
 * on o: TD_ERR_ARG for a store of another size or an lr that is negative or
 * not finite; TD_ERR_STATE when the step needs a tangent and
 * td_optim_direction was not called since the previous step, or needs
 * products and no oracle was set. An oracle's error fails the step with its
 * status; p->value is then restored, the state unchanged. */
enum td_status td_optim_step(struct td_optim *o, struct td_params *p, float lr);

/* The sum of squares of p->grad that the next td_optim_step will read, when
 * the caller has already computed it with td_vec_sumsq (any thread count:
 * the same bits): the step then takes its gradient norm from it instead of
 * reading the gradient once more. Used by the next td_optim_step only,
 * successful or not. The training loop computes it to check the gradient
 * for NaN and Inf (a sum of squares of floats, in double, is finite exactly
 * when every element is). */
void td_optim_set_grad_sumsq(struct td_optim *o, double sumsq);

/* Gives the optimizer the caller's oracle for methods that need products
 * (the pointer is kept: the oracle must outlive o, and its loss field is
 * read at every step). NULL forgets it. Returns TD_OK. */
enum td_status td_optim_set_oracle(struct td_optim *o, const struct td_optim_oracle *oracle);

/* The message of the last failed call ("" when none). Owned by o. */
const char *td_optim_error(const struct td_optim *o);

/* What the last td_optim_step did (zeroes before the first). Owned by o. */
const struct td_optim_stats *td_optim_last_stats(const struct td_optim *o);

/* Steps taken (the k of the next step is td_optim_steps + 1). */
int64_t td_optim_steps(const struct td_optim *o);

/* Restores the step counter from a checkpoint (steps >= 0, else TD_ERR_ARG).
 * A direction written before this call is forgotten: call
 * td_optim_direction again. */
enum td_status td_optim_set_steps(struct td_optim *o, int64_t steps);

/* State blocks for checkpoints: their number, fixed per method (sgd 0,
 * momentum/nesterov/curv-sgd 1, the others 2), and block i's name (static,
 * e.g. "exp_avg"), data (owned by o, writable for restoring, valid until
 * td_optim_free) and length (p->total). Together with td_optim_steps they
 * are the whole state: restoring them continues a run bitwise. Returns TD_OK
 * or TD_ERR_ARG for i out of range (outputs untouched). */
int td_optim_state_count(const struct td_optim *o);
enum td_status td_optim_state_block(struct td_optim *o, int i, const char **name, float **data,
                                    size_t *n);

/* Scalars of the state besides the blocks (hessian-free: its damping), for
 * checkpoints: their number (0 for the other methods) and scalar i's name
 * (static) and value (owned by o, writable for restoring). TD_ERR_ARG for i
 * out of range. */
int td_optim_scalar_count(const struct td_optim *o);
enum td_status td_optim_scalar(struct td_optim *o, int i, const char **name, double **value);

#endif
