/* The empirical NTK (optim/ntk.h) and NTK-vector products (optim/ntvp.h):
 * the three methods against a float64 reference written out by hand for a
 * small MLP, against each other on models with positions, shared and
 * sliced weights, an embedding and a parameter the structure does not
 * cover, and on the tiny zoo GPT; symmetry and positive semi-definiteness;
 * tiles; the output modes; errors before any work. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/tandem.h"
#include "optim/ntk.h"
#include "optim/ntvp.h"
#include "tests/testutil.h"
#include "tools/models/models.h"

#define IN 5
#define HID 7
#define OUT 3

/* ---- a one-hidden-layer tanh MLP and its Jacobian in double ---- */

static enum td_status mlp_build(void *ctx, struct td_graph *g, int64_t batch,
                                struct td_tangent_net *net)
{
    (void)ctx;
    struct td_node *x = td_input(g, "x", TD_SHAPE(batch, IN), TD_F32);
    struct td_node *h = td_tanh(g, td_dense(g, x, HID, "fc1"));
    net->inputs[0] = x;
    net->n_inputs = 1;
    net->output = td_dense(g, h, OUT, "fc2");
    return td_graph_status(g);
}

/* J [OUT][P] of one sample, parameters in store order: fc1/weight [HID, IN],
 * fc1/bias, fc2/weight [OUT, HID], fc2/bias. mask (may be NULL) zeroes
 * the parameters not in theta. */
#define P_MLP (HID * IN + HID + OUT * HID + OUT)
static void mlp_jacobian(const float *theta, const float *x, const int *mask, double *J)
{
    const float *w1 = theta, *b1 = w1 + HID * IN, *w2 = b1 + HID;
    double h[HID];
    for (int j = 0; j < HID; j++) {
        double s = b1[j];
        for (int i = 0; i < IN; i++) s += (double)w1[j * IN + i] * x[i];
        h[j] = tanh(s);
    }
    memset(J, 0, sizeof(double) * OUT * P_MLP);
    for (int k = 0; k < OUT; k++) {
        double *row = J + k * P_MLP;
        for (int j = 0; j < HID; j++) {
            double d = (double)w2[k * HID + j] * (1 - h[j] * h[j]);
            for (int i = 0; i < IN; i++) row[j * IN + i] = d * x[i];
            row[HID * IN + j] = d;
            row[HID * IN + HID + k * HID + j] = h[j];
        }
        row[HID * IN + HID + OUT * HID + k] = 1;
        for (int p = 0; mask && p < P_MLP; p++)
            if (!mask[p]) row[p] = 0;
    }
}

/* Theta [n1][n2][OUT][OUT] in double. */
static void mlp_reference(const float *theta, const float *x1, int n1, const float *x2, int n2,
                          const int *mask, double *ref)
{
    double *J1 = malloc(sizeof(double) * OUT * P_MLP), *J2 = malloc(sizeof(double) * OUT * P_MLP);
    for (int n = 0; n < n1; n++) {
        mlp_jacobian(theta, x1 + n * IN, mask, J1);
        for (int m = 0; m < n2; m++) {
            mlp_jacobian(theta, x2 + m * IN, mask, J2);
            for (int k = 0; k < OUT; k++)
                for (int l = 0; l < OUT; l++) {
                    double s = 0;
                    for (int p = 0; p < P_MLP; p++) s += J1[k * P_MLP + p] * J2[l * P_MLP + p];
                    ref[((n * n2 + m) * OUT + k) * OUT + l] = s;
                }
        }
    }
    free(J1), free(J2);
}

/* Max |got - want| relative to max |want|. */
static double rel_err_d(const float *got, const double *want, size_t n)
{
    double e = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return e / fmax(scale, 1e-30);
}

static double rel_err_f(const float *got, const float *want, size_t n)
{
    double e = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return e / fmax(scale, 1e-30);
}

struct mlp_case {
    struct td_graph *g; /* holds the values the builds copy */
    struct td_tangent_model m;
    float theta[P_MLP];
    float x1[9 * IN], x2[4 * IN];
};

static void mlp_case_init(struct mlp_case *c)
{
    c->g = td_graph_new(5);
    struct td_tangent_net net;
    ck_assert_int_eq(mlp_build(NULL, c->g, 1, &net), TD_OK);
    struct td_params *p = td_graph_params(c->g);
    ck_assert_int_eq((int)p->total, P_MLP);
    /* Values unlike any build's initialisation: the copy by name is tested. */
    for (size_t i = 0; i < p->total; i++) p->value[i] = 0.8f * td_rng_normal(9, 1, i);
    memcpy(c->theta, p->value, sizeof(c->theta));
    tu_fill_uniform(c->x1, 9 * IN, -1, 1, 9, 2);
    tu_fill_uniform(c->x2, 4 * IN, -1, 1, 9, 3);
    c->m = (struct td_tangent_model){.build = mlp_build, .values = p, .seed = 77};
}

static const char *const method_label[] = {"auto", "jacobian", "ntvp", "structured"};

START_TEST(test_mlp_methods_match_reference)
{
    struct mlp_case c;
    mlp_case_init(&c);
    struct td_tangent_data x1 = {{c.x1}, 9}, x2 = {{c.x2}, 4};
    double *ref_s = malloc(sizeof(double) * 81 * OUT * OUT);
    double *ref_n = malloc(sizeof(double) * 36 * OUT * OUT);
    mlp_reference(c.theta, c.x1, 9, c.x1, 9, NULL, ref_s);
    mlp_reference(c.theta, c.x1, 9, c.x2, 4, NULL, ref_n);
    float *got = malloc(sizeof(float) * 81 * OUT * OUT);
    char err[512];
    for (int route = 0; route < 3; route++)
        for (int method = 0; method < 4; method++) {
            if (route && method != TD_NTK_JACOBIAN) continue;
            struct td_ntk_options o = {.method = method, .jacobian = route};
            struct td_ntk_report r;
            ck_assert_msg(td_ntk_dense(&c.m, &x1, NULL, &o, got, &r, err, sizeof(err)) == TD_OK,
                          "%s", err);
            double e = rel_err_d(got, ref_s, 81 * OUT * OUT);
            ck_assert_msg(e < 1e-5, "%s, X1 with itself: relative error %.3g", method_label[method],
                          e);
            ck_assert(r.symmetric);
            ck_assert_int_eq((int)r.K, OUT);
            ck_assert_msg(td_ntk_dense(&c.m, &x1, &x2, &o, got, &r, err, sizeof(err)) == TD_OK,
                          "%s", err);
            e = rel_err_d(got, ref_n, 36 * OUT * OUT);
            ck_assert_msg(e < 1e-5, "%s, X1 against X2: relative error %.3g", method_label[method],
                          e);
            ck_assert(!r.symmetric);
            if (method == TD_NTK_AUTO)
                ck_assert_msg(r.method == TD_NTK_STRUCTURED, "auto picked %s: %s",
                              method_label[r.method], r.why);
            if (method == TD_NTK_STRUCTURED) {
                ck_assert_int_eq(r.uses_factored, 2); /* fc1 and fc2, each with its bias */
                ck_assert_int_eq(r.fallback_params, 0);
            }
        }
    free(ref_s), free(ref_n), free(got);
    td_graph_free(c.g);
}
END_TEST

/* trace, diagonal and diagonal-trace against the full kernel's entries. */
START_TEST(test_mlp_modes)
{
    struct mlp_case c;
    mlp_case_init(&c);
    struct td_tangent_data x1 = {{c.x1}, 9}, x2 = {{c.x1 + IN}, 9};
    double *ref = malloc(sizeof(double) * 81 * OUT * OUT);
    mlp_reference(c.theta, c.x1, 9, c.x1 + IN, 9, NULL, ref);
    double tr[81], dg[9 * OUT * OUT], dgt[9];
    for (int n = 0; n < 9; n++) {
        dgt[n] = 0;
        for (int m = 0; m < 9; m++) {
            tr[n * 9 + m] = 0;
            for (int k = 0; k < OUT; k++) tr[n * 9 + m] += ref[((n * 9 + m) * OUT + k) * OUT + k];
        }
        for (int k = 0; k < OUT * OUT; k++)
            dg[n * OUT * OUT + k] = ref[(n * 9 + n) * OUT * OUT + k];
        dgt[n] = tr[n * 9 + n];
    }
    float got[81 * OUT * OUT];
    char err[512];
    for (int method = 1; method < 4; method++)
        for (int tile = 0; tile <= 4; tile += 4) {
            struct td_ntk_options o = {.method = method, .trace = 1, .tile = tile};
            ck_assert_msg(td_ntk_dense(&c.m, &x1, &x2, &o, got, NULL, err, sizeof(err)) == TD_OK,
                          "%s", err);
            ck_assert_msg(rel_err_d(got, tr, 81) < 1e-5, "%s trace", method_label[method]);
            o.trace = 0, o.diagonal = 1;
            ck_assert_msg(td_ntk_dense(&c.m, &x1, &x2, &o, got, NULL, err, sizeof(err)) == TD_OK,
                          "%s", err);
            ck_assert_msg(rel_err_d(got, dg, 9 * OUT * OUT) < 1e-5, "%s diagonal",
                          method_label[method]);
            o.trace = 1;
            ck_assert_msg(td_ntk_dense(&c.m, &x1, &x2, &o, got, NULL, err, sizeof(err)) == TD_OK,
                          "%s", err);
            ck_assert_msg(rel_err_d(got, dgt, 9) < 1e-5, "%s diagonal trace", method_label[method]);
        }
    free(ref);
    td_graph_free(c.g);
}
END_TEST

/* Tiles of 2 and 4 samples (partial last tiles, mirrored tiles) give the
 * single-tile kernel; the symmetric kernel is exactly symmetric and PSD. */
START_TEST(test_mlp_tiles_symmetry_psd)
{
    struct mlp_case c;
    mlp_case_init(&c);
    struct td_tangent_data x1 = {{c.x1}, 9};
    const int NK = 9 * OUT;
    float *one = malloc(sizeof(float) * NK * NK), *tiled = malloc(sizeof(float) * NK * NK);
    char err[512];
    for (int method = 1; method < 4; method++) {
        struct td_ntk_options o = {.method = method};
        ck_assert(td_ntk_dense(&c.m, &x1, NULL, &o, one, NULL, err, sizeof(err)) == TD_OK);
        for (int tile = 2; tile <= 4; tile += 2) {
            o.tile = tile;
            ck_assert_msg(td_ntk_dense(&c.m, &x1, NULL, &o, tiled, NULL, err, sizeof(err)) == TD_OK,
                          "%s", err);
            ck_assert_msg(rel_err_f(tiled, one, (size_t)NK * NK) < 1e-6, "%s tile %d",
                          method_label[method], tile);
        }
        /* [n][m][k][l] == [m][n][l][k], bit for bit. */
        for (int n = 0; n < 9; n++)
            for (int m = 0; m < 9; m++)
                for (int k = 0; k < OUT; k++)
                    for (int l = 0; l < OUT; l++)
                        ck_assert(tiled[((n * 9 + m) * OUT + k) * OUT + l] ==
                                  tiled[((m * 9 + n) * OUT + l) * OUT + k]);
        /* As an [NK, NK] matrix (rows (n, k)) the kernel is a Gram matrix. */
        double *a = malloc(sizeof(double) * NK * NK), w[NK], top = 0;
        for (int n = 0; n < 9; n++)
            for (int k = 0; k < OUT; k++)
                for (int m = 0; m < 9; m++)
                    for (int l = 0; l < OUT; l++)
                        a[(n * OUT + k) * NK + m * OUT + l] =
                            tiled[((n * 9 + m) * OUT + k) * OUT + l];
        ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', NK, a, NK, w), 0);
        for (int i = 0; i < NK; i++) top = fmax(top, w[i]);
        for (int i = 0; i < NK; i++)
            ck_assert_msg(w[i] > -1e-5 * top, "%s: eigenvalue %g of a kernel whose top is %g",
                          method_label[method], w[i], top);
        free(a);
    }
    free(one), free(tiled);
    td_graph_free(c.g);
}
END_TEST

/* theta = the fc2 parameters only (a scope name selects both). */
START_TEST(test_mlp_parameter_subset)
{
    struct mlp_case c;
    mlp_case_init(&c);
    int mask[P_MLP];
    for (int p = 0; p < P_MLP; p++) mask[p] = p >= HID * IN + HID;
    double *ref = malloc(sizeof(double) * 81 * OUT * OUT);
    mlp_reference(c.theta, c.x1, 9, c.x1, 9, mask, ref);
    float got[81 * OUT * OUT];
    const char *names[] = {"fc2"};
    struct td_tangent_data x1 = {{c.x1}, 9};
    char err[512];
    for (int method = 1; method < 4; method++) {
        struct td_ntk_options o = {.method = method, .params = {names, 1}};
        struct td_ntk_report r;
        ck_assert_msg(td_ntk_dense(&c.m, &x1, NULL, &o, got, &r, err, sizeof(err)) == TD_OK, "%s",
                      err);
        ck_assert_int_eq((int)r.params, OUT * HID + OUT);
        ck_assert_msg(rel_err_d(got, ref, 81 * OUT * OUT) < 1e-5, "%s", method_label[method]);
    }
    free(ref);
    td_graph_free(c.g);
}
END_TEST

START_TEST(test_errors_before_work)
{
    struct mlp_case c;
    mlp_case_init(&c);
    struct td_tangent_data x1 = {{c.x1}, 9}, x2 = {{c.x2}, 4};
    char err[512];
    const char *names[] = {"fc9"};
    struct td_ntk_options o = {.params = {names, 1}};
    struct td_ntk_report r;
    ck_assert_int_eq(td_ntk_plan(&c.m, &x1, NULL, &o, &r, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_msg(strstr(err, "unknown parameter 'fc9'") && strstr(err, "fc1/weight"), "%s", err);
    o = (struct td_ntk_options){.memory = 512};
    ck_assert_int_eq(td_ntk_plan(&c.m, &x1, NULL, &o, &r, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_msg(strstr(err, "memory budget of 512 B is too small for one tile of even 1 sample"),
                  "%s", err);
    o = (struct td_ntk_options){.diagonal = 1};
    ck_assert_int_eq(td_ntk_plan(&c.m, &x1, &x2, &o, &r, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_msg(strstr(err, "as many samples on both sides (9 and 4)"), "%s", err);
    o = (struct td_ntk_options){0};
    ck_assert_int_eq(td_ntk_compute(&c.m, &x1, NULL, &o, &r, err, sizeof(err)), TD_ERR_ARG);
    ck_assert_msg(strstr(err, "no sink"), "%s", err);
    td_graph_free(c.g);
}
END_TEST

/* A plan's mistake in the builder is reported with the graph's message. */
static enum td_status bad_build(void *ctx, struct td_graph *g, int64_t batch,
                                struct td_tangent_net *net)
{
    (void)ctx;
    struct td_node *x = td_input(g, "x", TD_SHAPE(batch, 4), TD_F32);
    net->inputs[0] = x;
    net->n_inputs = 1;
    net->output = td_dense(g, td_reshape(g, x, TD_SHAPE(batch, 3)), 2, "fc");
    return td_graph_status(g);
}

START_TEST(test_builder_error)
{
    float x[8] = {0};
    struct td_tangent_model m = {.build = bad_build};
    struct td_tangent_data d = {{x}, 2};
    struct td_ntk_options o = {0};
    char err[512];
    ck_assert_int_ne(td_ntk_plan(&m, &d, NULL, &o, NULL, err, sizeof(err)), TD_OK);
    ck_assert_msg(strstr(err, "building the model at batch 2") && strstr(err, "reshape"), "%s",
                  err);
}
END_TEST

/* ---- a sequence model: embedding, a position parameter added (no
 * structure: falls back), two linears on disjoint rows of one parameter,
 * a shared head matrix over positions, output [B, T, V] ---- */

#define SEQ_T 2
#define SEQ_V 5
#define SEQ_D 8
#define SEQ_H 10

static enum td_status seq_build(void *ctx, struct td_graph *g, int64_t batch,
                                struct td_tangent_net *net)
{
    (void)ctx;
    struct td_node *ids = td_input(g, "ids", TD_SHAPE(batch, SEQ_T), TD_I32);
    struct td_init nrm = {TD_INIT_NORMAL, 0, 0.7f};
    struct td_node *e = td_embedding(g, ids, SEQ_V, SEQ_D, &nrm, "emb");
    struct td_node *pos = td_param(g, "pos", TD_SHAPE(SEQ_T, SEQ_D), nrm);
    struct td_node *h = td_add(g, e, pos);
    struct td_node *w = td_param(g, "w", TD_SHAPE(2 * SEQ_H, SEQ_D), nrm);
    struct td_node *b = td_param(g, "b", TD_SHAPE(2 * SEQ_H), nrm);
    struct td_node *u = td_linear(g, h, td_slice(g, w, 0, 0, SEQ_H), td_slice(g, b, 0, 0, SEQ_H));
    struct td_node *v =
        td_linear(g, h, td_slice(g, w, 0, SEQ_H, SEQ_H), td_slice(g, b, 0, SEQ_H, SEQ_H));
    struct td_node *z = td_mul(g, td_gelu(g, u), td_tanh(g, v));
    struct td_node *head = td_param(g, "head", TD_SHAPE(SEQ_V, SEQ_H), nrm);
    net->inputs[0] = ids;
    net->n_inputs = 1;
    net->output = td_matmul(g, z, head, 0, 1);
    return td_graph_status(g);
}

/* f [B, T, V] at the store's values for ids of one sample, in double via
 * the float plan (used only by the finite-difference check). */
static void seq_outputs(struct td_plan *plan, struct td_node *in, const int32_t *ids, double *f)
{
    struct td_feed feed = {in, ids};
    ck_assert(td_run(plan, &feed, 1) == TD_OK);
    const float *y = td_plan_output(plan, 0);
    for (int i = 0; i < SEQ_T * SEQ_V; i++) f[i] = y[i];
}

START_TEST(test_structure_fallback_and_positions)
{
    struct td_tangent_model m = {.build = seq_build, .seed = 3};
    int32_t ids[6 * SEQ_T];
    tu_fill_int(ids, 6 * SEQ_T, SEQ_V, 4, 1);
    ids[0] = ids[1]; /* a repeated id within a sample */
    struct td_tangent_data x = {{ids}, 6};
    const int K = SEQ_T * SEQ_V, NK = 6 * K;
    float *k[4];
    char err[512];
    struct td_ntk_report r;
    for (int method = 1; method < 4; method++) {
        k[method] = malloc(sizeof(float) * NK * NK);
        struct td_ntk_options o = {.method = method, .tile = method == 2 ? 4 : 0};
        ck_assert_msg(td_ntk_dense(&m, &x, NULL, &o, k[method], &r, err, sizeof(err)) == TD_OK,
                      "%s", err);
    }
    /* The Jacobian by rows and by columns. */
    float *k0 = malloc(sizeof(float) * NK * NK);
    for (int route = TD_NTK_JAC_ROWS; route <= TD_NTK_JAC_COLUMNS; route++) {
        struct td_ntk_options o = {.method = TD_NTK_JACOBIAN, .jacobian = route, .tile = 4};
        ck_assert(td_ntk_dense(&m, &x, NULL, &o, k0, NULL, err, sizeof(err)) == TD_OK);
        ck_assert_msg(rel_err_f(k0, k[3], (size_t)NK * NK) < 1e-5, "route %d", route);
    }
    free(k0);
    /* Over 2 positions the two halves of w (with b) and the head factor;
     * the embedding and the added position table go through per-sample
     * gradients, the latter as the add's own VJP on one sample. */
    ck_assert_msg(r.uses_factored == 3 && r.uses_explicit == 2, "%s", r.why);
    ck_assert_int_eq(r.fallback_params, 0);
    ck_assert_int_eq((int)r.K, K);
    double e1 = rel_err_f(k[2], k[1], (size_t)NK * NK), e3 = rel_err_f(k[3], k[1], (size_t)NK * NK);
    ck_assert_msg(e1 < 1e-5 && e3 < 1e-5, "ntvp %.3g, structured %.3g against jacobian", e1, e3);

    /* An independent check of the Jacobian: the trace of Theta(x_0, x_0)
     * is sum_p |df(x_0)/dtheta_p|^2, which central differences of the
     * float forward pass give parameter by parameter. */
    struct td_graph *g = td_graph_new(3);
    struct td_tangent_net net;
    ck_assert_int_eq(seq_build(NULL, g, 1, &net), TD_OK);
    struct td_compile_options co = {.num_threads = 1};
    struct td_plan *plan = td_compile(g, &net.output, 1, &co);
    ck_assert_ptr_nonnull(plan);
    struct td_params *p = td_graph_params(g);
    double fp[SEQ_T * SEQ_V], fm[SEQ_T * SEQ_V], trace = 0;
    const double h = 1e-2;
    for (size_t q = 0; q < p->total; q++) {
        float keep = p->value[q];
        p->value[q] = (float)(keep + h);
        seq_outputs(plan, net.inputs[0], ids, fp);
        p->value[q] = (float)(keep - h);
        seq_outputs(plan, net.inputs[0], ids, fm);
        p->value[q] = keep;
        for (int i = 0; i < K; i++) trace += pow((fp[i] - fm[i]) / (2 * h), 2);
    }
    double got = 0;
    for (int i = 0; i < K; i++) got += k[3][i * K + i]; /* [0][0][k][k] */
    tu_assert_rel("trace of Theta(x_0, x_0) against finite differences", got, trace, 2e-3, 1e-9);
    td_plan_free(plan);
    td_graph_free(g);

    /* Against another sample set in tiles of 2 (X2's per-sample data are
     * cached across X1's tiles), in every output mode. */
    int32_t ids2[6 * SEQ_T];
    tu_fill_int(ids2, 6 * SEQ_T, SEQ_V, 4, 2);
    struct td_tangent_data x2 = {{ids2}, 6};
    for (int mode = 0; mode < 4; mode++) {
        struct td_ntk_options o = {.trace = mode & 1, .diagonal = mode >> 1, .tile = 2};
        for (int method = 1; method < 4; method += 2) {
            o.method = method;
            ck_assert_msg(td_ntk_dense(&m, &x, &x2, &o, k[method], &r, err, sizeof(err)) == TD_OK,
                          "%s", err);
        }
        size_t n = (mode >> 1 ? 6 : 36) * (mode & 1 ? 1 : (size_t)K * K);
        double e = rel_err_f(k[3], k[1], n);
        ck_assert_msg(e < 1e-5, "mode %d: structured against jacobian %.3g", mode, e);
    }
    for (int method = 1; method < 4; method++) free(k[method]);
}
END_TEST

/* A weight tied between two layers: its uses' Jacobians add up, so it
 * falls back to Jacobian entries (rows and columns both tried). */
static enum td_status tied_build(void *ctx, struct td_graph *g, int64_t batch,
                                 struct td_tangent_net *net)
{
    (void)ctx;
    struct td_node *x = td_input(g, "x", TD_SHAPE(batch, 6), TD_F32);
    struct td_node *w =
        td_param(g, "tied", TD_SHAPE(6, 6), (struct td_init){TD_INIT_NORMAL, 0, 0.5f});
    struct td_node *b = td_param(g, "b", TD_SHAPE(6), (struct td_init){TD_INIT_NORMAL, 0, 0.5f});
    struct td_node *h = td_tanh(g, td_linear(g, x, w, b));
    net->inputs[0] = x;
    net->n_inputs = 1;
    net->output = td_dense(g, td_tanh(g, td_matmul(g, h, w, 0, 1)), 2, "out");
    return td_graph_status(g);
}

START_TEST(test_tied_weight_falls_back)
{
    struct td_tangent_model m = {.build = tied_build, .seed = 8};
    float xs[5 * 6];
    tu_fill_uniform(xs, 5 * 6, -1, 1, 8, 1);
    struct td_tangent_data x = {{xs}, 5};
    float a[100], b[100];
    char err[512];
    struct td_ntk_report r;
    struct td_ntk_options o = {.method = TD_NTK_JACOBIAN};
    ck_assert(td_ntk_dense(&m, &x, NULL, &o, a, NULL, err, sizeof(err)) == TD_OK);
    for (int route = TD_NTK_JAC_ROWS; route <= TD_NTK_JAC_COLUMNS; route++) {
        o = (struct td_ntk_options){.method = TD_NTK_STRUCTURED, .jacobian = route};
        ck_assert_msg(td_ntk_dense(&m, &x, NULL, &o, b, &r, err, sizeof(err)) == TD_OK, "%s", err);
        ck_assert_msg(r.fallback_params == 1 && r.uses_factored == 2, "%s", r.why);
        ck_assert_msg(rel_err_f(b, a, 100) < 1e-5, "route %d", route);
    }
}
END_TEST

/* ---- the tiny zoo GPT: 2 layers, d 32, 2 heads, context 16 ---- */

static enum td_status gpt_build(void *ctx, struct td_graph *g, int64_t batch,
                                struct td_tangent_net *net)
{
    (void)ctx;
    const struct td_model_info *info = td_model_find("gpt");
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = 11};
    struct td_model_config c = {
        .layers = 2, .d_model = 32, .heads = 2, .context = 16, .dropout = 0};
    struct td_model gpt;
    enum td_status st = td_model_build(info, g, (int)batch, &d, &c, &gpt);
    net->inputs[0] = gpt.x;
    net->n_inputs = 1;
    net->output = gpt.logits;
    return st;
}

START_TEST(test_tiny_gpt_methods_agree)
{
    struct td_tangent_model m = {.build = gpt_build, .seed = 13};
    int32_t ids[3 * 16];
    tu_fill_int(ids, 3 * 16, 11, 13, 1);
    struct td_tangent_data x = {{ids}, 3};
    const size_t NK = 3 * 16 * 11;
    float *k[4];
    char err[512];
    struct td_ntk_report r;
    for (int method = 1; method < 4; method++) {
        k[method] = malloc(sizeof(float) * NK * NK);
        struct td_ntk_options o = {.method = method};
        ck_assert_msg(td_ntk_dense(&m, &x, NULL, &o, k[method], &r, err, sizeof(err)) == TD_OK,
                      "%s", err);
    }
    /* Dense weights and the embedding are structured; the position table
     * and the 5 layer norms' gains are local uses: nothing falls back. */
    ck_assert_msg(r.fallback_params == 0 && r.uses_factored + r.uses_explicit == 2 * 6 + 2 + 1 + 5,
                  "%s", r.why);
    double e1 = rel_err_f(k[2], k[1], NK * NK), e3 = rel_err_f(k[3], k[1], NK * NK);
    ck_assert_msg(e1 < 1e-5 && e3 < 1e-5, "ntvp %.3g, structured %.3g against jacobian", e1, e3);
    for (int method = 1; method < 4; method++) free(k[method]);
}
END_TEST

/* NTK-vector products against the dense kernel, symmetric and not, and
 * their two halves against each other. */
START_TEST(test_ntvp_products)
{
    struct mlp_case c;
    mlp_case_init(&c);
    struct td_tangent_data x1 = {{c.x1}, 9}, x2 = {{c.x2}, 4};
    char err[512];
    for (int sym = 0; sym < 2; sym++) {
        const struct td_tangent_data *b = sym ? NULL : &x2;
        int n2 = sym ? 9 : 4;
        double *ref = malloc(sizeof(double) * 9 * n2 * OUT * OUT);
        mlp_reference(c.theta, c.x1, 9, sym ? c.x1 : c.x2, n2, NULL, ref);
        struct td_ntvp *t = td_ntvp_new(&c.m, &x1, b, NULL, 0, err, sizeof(err));
        ck_assert_msg(t != NULL, "%s", err);
        ck_assert_int_eq((int)td_ntvp_rows(t), 9 * OUT);
        ck_assert_int_eq((int)td_ntvp_cols(t), n2 * OUT);
        float v[9 * OUT], out[9 * OUT], u[P_MLP], out2[9 * OUT];
        double want[9 * OUT];
        tu_fill_normal(v, (size_t)n2 * OUT, 4, 4);
        for (int n = 0; n < 9; n++)
            for (int k = 0; k < OUT; k++) {
                want[n * OUT + k] = 0;
                for (int m = 0; m < n2; m++)
                    for (int l = 0; l < OUT; l++)
                        want[n * OUT + k] +=
                            ref[((n * n2 + m) * OUT + k) * OUT + l] * v[m * OUT + l];
            }
        ck_assert_int_eq(td_ntvp_apply(t, v, out), TD_OK);
        ck_assert_msg(rel_err_d(out, want, 9 * OUT) < 1e-5, "apply, symmetric %d", sym);
        ck_assert_int_eq((int)td_ntvp_params(t), P_MLP);
        ck_assert_int_eq(td_ntvp_vjp(t, v, u), TD_OK);
        ck_assert_int_eq(td_ntvp_jvp(t, u, out2), TD_OK);
        ck_assert_msg(rel_err_f(out2, out, 9 * OUT) < 1e-6, "halves, symmetric %d", sym);
        td_ntvp_free(t);
        free(ref);
    }
    td_graph_free(c.g);
}
END_TEST

/* One and two threads give the same bits. */
START_TEST(test_threads_bitwise)
{
    struct td_tangent_model m = {.build = seq_build, .seed = 3};
    int32_t ids[7 * SEQ_T];
    tu_fill_int(ids, 7 * SEQ_T, SEQ_V, 5, 1);
    struct td_tangent_data x = {{ids}, 7};
    const size_t NK = 7 * SEQ_T * SEQ_V;
    float *a = malloc(sizeof(float) * NK * NK), *b = malloc(sizeof(float) * NK * NK);
    char err[512];
    for (int method = 1; method < 4; method++) {
        struct td_ntk_options o = {.method = method, .num_threads = 1, .tile = 4};
        ck_assert(td_ntk_dense(&m, &x, NULL, &o, a, NULL, err, sizeof(err)) == TD_OK);
        o.num_threads = 2;
        ck_assert(td_ntk_dense(&m, &x, NULL, &o, b, NULL, err, sizeof(err)) == TD_OK);
        ck_assert_msg(!memcmp(a, b, sizeof(float) * NK * NK), "%s", method_label[method]);
    }
    free(a), free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ntk");
    TCase *tc = tcase_create("ntk");
    tcase_add_test(tc, test_mlp_methods_match_reference);
    tcase_add_test(tc, test_mlp_modes);
    tcase_add_test(tc, test_mlp_tiles_symmetry_psd);
    tcase_add_test(tc, test_mlp_parameter_subset);
    tcase_add_test(tc, test_errors_before_work);
    tcase_add_test(tc, test_builder_error);
    tcase_add_test(tc, test_structure_fallback_and_positions);
    tcase_add_test(tc, test_tied_weight_falls_back);
    tcase_add_test(tc, test_tiny_gpt_methods_agree);
    tcase_add_test(tc, test_ntvp_products);
    tcase_add_test(tc, test_threads_bitwise);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
