/* The training loop as a library (optim/train.h): a user's graph and batch
 * source, checked for mismatches; resuming from a checkpoint is bit-exact;
 * NaNs are named; the default metric against a hand computation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/tandem.h"
#include "tests/testutil.h"

#define B 16

/* A linear-softmax model on 4 features, 3 classes. */
struct toy {
    struct td_graph *g;
    struct td_train_model m;
};

static void toy_build(struct toy *t, int log_of_input)
{
    t->g = td_graph_new(3);
    struct td_node *x = td_input(t->g, "x", TD_SHAPE(B, 4), TD_F32);
    struct td_node *y = td_input(t->g, "labels", TD_SHAPE(B), TD_I32);
    struct td_node *h = log_of_input ? td_log(t->g, x) : x;
    struct td_node *logits = td_dense(t->g, td_tanh(t->g, td_dense(t->g, h, 8, "fc1")), 3, "fc2");
    struct td_node *loss = td_softmax_cross_entropy(t->g, logits, y);
    tu_assert_graph_ok(t->g, "toy model");
    t->m = (struct td_train_model){
        .g = t->g, .loss = loss, .inputs = {x, y}, .n_inputs = 2, .eval_output = logits};
}

static void point(uint64_t seed, uint64_t i, float *x, int32_t *y, int negative)
{
    for (int k = 0; k < 4; k++) x[k] = td_rng_uniform(seed, 10 + k, i) - (negative ? 0.5f : 0.f);
    *y = x[0] + x[1] > x[2] + x[3] ? 1 : (x[0] > x[3] ? 2 : 0);
}

static int negative_inputs;

static enum td_status toy_train(void *ctx, int64_t step, void *const *bufs, char *err,
                                size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    for (int b = 0; b < B; b++)
        point(1, (uint64_t)(step * B + b), (float *)bufs[0] + 4 * b, (int32_t *)bufs[1] + b,
              negative_inputs);
    return TD_OK;
}

/* Two evaluation batches, the second with 5 real samples. */
static int64_t toy_eval(void *ctx, int64_t i, void *const *bufs)
{
    (void)ctx;
    for (int b = 0; b < B; b++)
        point(2, (uint64_t)(i * B + b), (float *)bufs[0] + 4 * b, (int32_t *)bufs[1] + b, 0);
    return i == 0 ? B : 5;
}

static struct td_source toy_source(void)
{
    return (struct td_source){
        .n_bufs = 2,
        .shape = {TD_SHAPE(B, 4), TD_SHAPE(B)},
        .dtype = {TD_F32, TD_I32},
        .items_per_batch = B,
        .train_items = 100 * B,
        .item_name = "samples",
        .train_batch = toy_train,
        .eval_batches = 2,
        .eval_batch = toy_eval,
    };
}

static struct td_train_options toy_options(const char *out, int64_t steps, const char *optim)
{
    struct td_train_options o = {
        .optimizer = optim,
        .optim = td_optim_config_default(optim),
        .schedule = td_schedule_constant(0.05f),
        .steps = steps,
        .eval_every = 10,
        .num_threads = 2,
        .out_dir = out,
    };
    o.optim.seed = 5;
    return o;
}

static char tmpdir[64];

/* A fresh temporary directory; the previous one is removed. */
static void make_tmpdir(void)
{
    if (tmpdir[0]) tu_remove_tree(tmpdir);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/td_train.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

START_TEST(test_mismatch_is_named)
{
    struct toy t;
    toy_build(&t, 0);
    struct td_source src = toy_source();
    src.shape[0] = TD_SHAPE(B, 5);
    make_tmpdir();
    struct td_train_options o = toy_options(tmpdir, 10, "sgd");
    char err[512] = "";
    ck_assert_ptr_null(td_trainer_new(&t.m, &src, &o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "input 'x' is [16,4] but the source gives [16,5]"), "%s", err);
    src = toy_source();
    src.n_bufs = 1;
    ck_assert_ptr_null(td_trainer_new(&t.m, &src, &o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "the model has 2 inputs but the source fills 1 buffers"), "%s", err);
    src = toy_source();
    o.optimizer = "nope";
    ck_assert_ptr_null(td_trainer_new(&t.m, &src, &o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "sgd, momentum"), "%s", err);
    td_graph_free(t.g);
}
END_TEST

/* Trains `steps` steps (resuming from `resume` when given) and copies the
 * parameters out. */
static void run_toy(const char *out, int64_t steps, const char *resume, const char *optim,
                    float *params, size_t *n)
{
    struct toy t;
    toy_build(&t, 0);
    struct td_source src = toy_source();
    struct td_train_options o = toy_options(out, steps, optim);
    o.resume = resume;
    o.checkpoint_every = 7;
    char err[512];
    struct td_trainer *tr = td_trainer_new(&t.m, &src, &o, err, sizeof(err));
    ck_assert_msg(tr != NULL, "%s", err);
    ck_assert_msg(td_trainer_run(tr, NULL, err, sizeof(err)) == TD_OK, "%s", err);
    ck_assert_int_eq(td_trainer_step(tr), steps);
    const struct td_params *p = td_graph_params(t.g);
    memcpy(params, p->value, p->total * sizeof(float));
    *n = p->total;
    td_trainer_free(tr);
    td_graph_free(t.g);
}

START_TEST(test_resume_is_bit_exact)
{
    /* tangent-sgd carries a lookahead direction between steps, adam two
     * moment blocks: both must come back from the checkpoint. */
    const char *optims[] = {"tangent-sgd", "adam"};
    for (int k = 0; k < 2; k++) {
        make_tmpdir();
        char a[128], b[128], c[128], ck[160];
        snprintf(a, sizeof(a), "%s/straight", tmpdir);
        snprintf(b, sizeof(b), "%s/at21", tmpdir);
        snprintf(c, sizeof(c), "%s/at20", tmpdir);
        float straight[512], resumed[512];
        size_t n1, n2;
        run_toy(a, 40, NULL, optims[k], straight, &n1);
        /* Stopped between evaluations (the checkpoint of the run's end). */
        run_toy(b, 21, NULL, optims[k], resumed, &n2);
        ck_assert_msg(memcmp(straight, resumed, n1 * sizeof(float)) != 0,
                      "21 steps should differ from 40");
        snprintf(ck, sizeof(ck), "%s/checkpoint.h5", b);
        run_toy(b, 40, ck, optims[k], resumed, &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_msg(memcmp(straight, resumed, n1 * sizeof(float)) == 0,
                      "%s: resumed parameters differ from an uninterrupted run", optims[k]);
        /* Stopped at an evaluation: the resumed run's evaluation log is the
         * straight run's (but for the timing columns). */
        run_toy(c, 20, NULL, optims[k], resumed, &n2);
        snprintf(ck, sizeof(ck), "%s/checkpoint.h5", c);
        run_toy(c, 40, ck, optims[k], resumed, &n2);
        ck_assert(memcmp(straight, resumed, n1 * sizeof(float)) == 0);
        char path[200], line_a[256], line_b[256];
        snprintf(path, sizeof(path), "%s/evals.csv", a);
        FILE *fa = fopen(path, "r");
        snprintf(path, sizeof(path), "%s/evals.csv", c);
        FILE *fb = fopen(path, "r");
        ck_assert(fa && fb);
        int lines = 0;
        while (fgets(line_a, sizeof(line_a), fa)) {
            ck_assert_ptr_nonnull(fgets(line_b, sizeof(line_b), fb));
            /* step, epoch, train_loss, val_loss, val_acc */
            char *ca = line_a, *cb = line_b;
            for (int col = 0; col < 5 && lines > 0; col++)
                ca = strchr(ca, ',') + 1, cb = strchr(cb, ',') + 1;
            if (lines == 0) ca += strlen(ca), cb += strlen(cb);
            ck_assert_msg(ca - line_a == cb - line_b &&
                              strncmp(line_a, line_b, (size_t)(ca - line_a)) == 0,
                          "%s vs %s", line_a, line_b);
            lines++;
        }
        ck_assert_ptr_null(fgets(line_b, sizeof(line_b), fb));
        ck_assert_int_eq(lines, 1 + 4);
        fclose(fa), fclose(fb);
    }
}
END_TEST

START_TEST(test_resume_of_another_model_fails)
{
    make_tmpdir();
    float params[512];
    size_t n;
    run_toy(tmpdir, 10, NULL, "sgd", params, &n);
    char ck[160];
    snprintf(ck, sizeof(ck), "%s/checkpoint.h5", tmpdir);
    struct td_graph *g = td_graph_new(3);
    struct td_node *x = td_input(g, "x", TD_SHAPE(B, 4), TD_F32);
    struct td_node *y = td_input(g, "labels", TD_SHAPE(B), TD_I32);
    struct td_node *logits = td_dense(g, x, 3, "fc1");
    struct td_train_model m = {.g = g,
                               .loss = td_softmax_cross_entropy(g, logits, y),
                               .inputs = {x, y},
                               .n_inputs = 2,
                               .eval_output = logits};
    struct td_source src = toy_source();
    struct td_train_options o = toy_options(tmpdir, 20, "sgd");
    o.resume = ck;
    char err[512] = "";
    ck_assert_ptr_null(td_trainer_new(&m, &src, &o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "cannot resume") && strstr(err, "fc1/weight"), "%s", err);
    td_graph_free(g);
}
END_TEST

START_TEST(test_nan_names_the_node)
{
    struct toy t;
    toy_build(&t, 1);
    negative_inputs = 1;
    struct td_source src = toy_source();
    make_tmpdir();
    struct td_train_options o = toy_options(tmpdir, 5, "sgd");
    char err[512];
    struct td_trainer *tr = td_trainer_new(&t.m, &src, &o, err, sizeof(err));
    ck_assert_msg(tr != NULL, "%s", err);
    const struct td_params *p = td_graph_params(t.g);
    float *before = malloc(p->total * sizeof(float));
    memcpy(before, p->value, p->total * sizeof(float));
    ck_assert_int_eq(td_trainer_run(tr, NULL, err, sizeof(err)), TD_ERR_NUMERIC);
    ck_assert_msg(strstr(err, "step 1: run: log") && strstr(err, "produced NaN") &&
                      strstr(err, "parameters are those before this step"),
                  "%s", err);
    ck_assert_int_eq(memcmp(before, p->value, p->total * sizeof(float)), 0);
    negative_inputs = 0;
    free(before);
    td_trainer_free(tr);
    td_graph_free(t.g);
}
END_TEST

START_TEST(test_metric_cross_entropy)
{
    /* Two samples of two rows each over 3 classes; only the first sample is
     * real, and the second row's target is out of range in the padding. */
    const float logits[12] = {1, 2, 3, 0, 0, 0, 9, 9, 9, 9, 9, 9};
    const int32_t labels[4] = {2, 1, 7, 7};
    struct td_shape s = TD_SHAPE(2, 2, 3);
    double sums[3] = {0, 0, 0};
    td_metric_cross_entropy(logits, &s, labels, 1, sums);
    double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0, l1 = log(3.0);
    tu_assert_rel("summed loss", sums[0], l0 + l1, 1e-12, 1e-12);
    /* Row 0 is right (argmax 2), row 1 ties and picks class 0. */
    ck_assert(sums[1] == 1.0 && sums[2] == 2.0);
}
END_TEST

START_TEST(test_evaluate_without_trainer)
{
    struct toy t;
    toy_build(&t, 0);
    struct td_source src = toy_source();
    double loss, acc;
    char err[256];
    ck_assert_msg(td_evaluate(&t.m, &src, 0, 1, &loss, &acc, err, sizeof(err)) == TD_OK, "%s", err);
    /* 21 real samples of 3 classes, an untrained model: loss near log 3. */
    ck_assert_msg(loss > 0.5 && loss < 2.0 && acc >= 0 && acc <= 1, "loss %g acc %g", loss, acc);
    double loss1;
    ck_assert(td_evaluate(&t.m, &src, 1, 2, &loss1, &acc, err, sizeof(err)) == TD_OK);
    ck_assert_msg(loss1 != loss, "one batch should differ from two");
    td_graph_free(t.g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mismatch_is_named);
    tcase_add_test(tc, test_resume_is_bit_exact);
    tcase_add_test(tc, test_resume_of_another_model_fails);
    tcase_add_test(tc, test_nan_names_the_node);
    tcase_add_test(tc, test_metric_cross_entropy);
    tcase_add_test(tc, test_evaluate_without_trainer);
    suite_add_tcase(s, tc);
    int status = tu_run_suite(s);
    if (tmpdir[0]) tu_remove_tree(tmpdir);
    return status;
}
