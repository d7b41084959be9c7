/* A model of your own, trained by the library's training loop: a small
 * GELU network on two interleaved spirals, with the data produced by a
 * batch source written here. The loop brings checkpoints, bit-exact resume,
 * evaluation, logs and NaN reports. Exits 0 when the model separates the
 * spirals (test accuracy above 95%). */
#include <math.h>
#include <stdio.h>
#include <tandem.h>

#define BATCH 128
#define EVAL_BATCHES 8

/* Point i of the two spirals: class i % 2, angle and radius from the
 * position along the arm, a little noise. Every value is a pure function
 * of (seed, i), as a source requires. */
static void spiral_point(uint64_t seed, uint64_t i, float *xy, int32_t *label)
{
    int c = (int)(i % 2);
    float t = 0.25f + 3.0f * td_rng_uniform(seed, 1, i);
    float r = t / 3.25f, a = 2.2f * t + (float)M_PI * (float)c;
    xy[0] = r * cosf(a) + 0.02f * td_rng_normal(seed, 2, i);
    xy[1] = r * sinf(a) + 0.02f * td_rng_normal(seed, 3, i);
    *label = c;
}

/* Training batch of step k: points k * BATCH ... of an endless stream. */
static enum td_status train_batch(void *ctx, int64_t step, void *const *bufs, char *err,
                                  size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    for (int b = 0; b < BATCH; b++)
        spiral_point(1, (uint64_t)(step * BATCH + b), (float *)bufs[0] + 2 * b,
                     (int32_t *)bufs[1] + b);
    return TD_OK;
}

/* Evaluation: a fixed set of points from another seed. */
static int64_t eval_batch(void *ctx, int64_t i, void *const *bufs)
{
    (void)ctx;
    for (int b = 0; b < BATCH; b++)
        spiral_point(2, (uint64_t)(i * BATCH + b), (float *)bufs[0] + 2 * b,
                     (int32_t *)bufs[1] + b);
    return BATCH;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "spiral_out";
    struct td_graph *g = td_graph_new(7);
    struct td_node *x = td_input(g, "x", TD_SHAPE(BATCH, 2), TD_F32);
    struct td_node *y = td_input(g, "labels", TD_SHAPE(BATCH), TD_I32);
    struct td_node *h = td_gelu(g, td_dense(g, x, 64, "fc1"));
    h = td_gelu(g, td_dense(g, h, 64, "fc2"));
    struct td_node *logits = td_dense(g, h, 2, "fc3");
    struct td_node *loss = td_softmax_cross_entropy(g, logits, y);
    if (td_graph_status(g) != TD_OK) return fprintf(stderr, "%s\n", td_graph_error(g)), 1;

    struct td_source src = {
        .n_bufs = 2,
        .shape = {TD_SHAPE(BATCH, 2), TD_SHAPE(BATCH)},
        .dtype = {TD_F32, TD_I32},
        .items_per_batch = BATCH,
        .train_items = 1000 * BATCH, /* what one "epoch" of the endless stream counts */
        .item_name = "points",
        .train_batch = train_batch,
        .eval_batches = EVAL_BATCHES,
        .eval_batch = eval_batch,
    };
    struct td_train_model model = {
        .g = g, .loss = loss, .inputs = {x, y}, .n_inputs = 2, .eval_output = logits};
    struct td_train_options opts = {
        .optimizer = "adam",
        .optim = td_optim_config_default("adam"),
        .schedule = td_schedule_constant(3e-3f),
        .steps = 1500,
        .eval_every = 500,
        .out_dir = out,
    };
    char err[512];
    struct td_trainer *t = td_trainer_new(&model, &src, &opts, err, sizeof(err));
    if (!t) return fprintf(stderr, "%s\n", err), 1;
    if (td_trainer_run(t, NULL, err, sizeof(err)) != TD_OK)
        return fprintf(stderr, "%s\n", err), td_trainer_free(t), td_graph_free(g), 1;
    double test_loss, acc;
    td_trainer_evaluate(t, &test_loss, &acc, err, sizeof(err));
    printf("spirals after %lld steps: test loss %.4f, accuracy %.2f%%; logs in %s/\n",
           (long long)td_trainer_step(t), test_loss, 100 * acc, out);
    td_trainer_free(t);
    td_graph_free(g);
    return acc > 0.95 ? 0 : 1;
}
