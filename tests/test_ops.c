/* The op-table suite: every case of every op in td_op_table is checked for
 *   forward  vs the op's own naive reference,
 *   JVP      vs central finite differences of the forward plan,
 *   VJP      vs JVP through <u, J v> = sum_i <J_i^T u, v_i>.
 * Adding a TD_OP line to ops/op_list.h adds the op here. Every failing case
 * is printed; the test fails at the end with the first failure. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/op.h"
#include "tests/testutil.h"

#define FWD_RTOL 1e-5
#define FWD_ATOL 1e-6
#define VJP_TOL 1e-4

/* Derivatives with respect to a subset of the float operands: all of them,
 * and each alone when there are several, since rules branch on which
 * tangents are zero and which cotangents are needed. */
struct der_set {
    unsigned mask; /* bit i: operand i */
    struct td_node *yt, *ct[TD_MAX_SRC];
    char err[TD_MSG_MAX];
    struct tu_eval ev;
};

/* Everything one case allocates; freed by case_free whatever happened. */
struct case_run {
    const struct td_op_def *op;
    const struct td_op_case *c;
    struct td_graph *g;
    struct td_node *in[TD_MAX_SRC], *tan[TD_MAX_SRC], *u, *y;
    int n_in;
    unsigned float_mask;
    void *x[TD_MAX_SRC];
    float *v[TD_MAX_SRC], *xp[TD_MAX_SRC], *xm[TD_MAX_SRC];
    float *uval, *ref, *yplus, *yminus;
    double *fd;
    size_t numel[TD_MAX_SRC], ny;
    struct td_feed feeds[2 * TD_MAX_SRC + 1];
    int n_feeds;
    struct tu_eval fwd;
    struct der_set set[1 + TD_MAX_SRC];
    int n_sets;
};

static void case_free(struct case_run *r)
{
    tu_eval_free(&r->fwd);
    for (int s = 0; s < r->n_sets; s++) tu_eval_free(&r->set[s].ev);
    for (int i = 0; i < TD_MAX_SRC; i++) {
        free(r->x[i]);
        free(r->v[i]);
        free(r->xp[i]);
        free(r->xm[i]);
    }
    free(r->uval);
    free(r->ref);
    free(r->yplus);
    free(r->yminus);
    free(r->fd);
    td_graph_free(r->g);
}

static const char *set_label(const struct case_run *r, const struct der_set *d, char *buf,
                             size_t len)
{
    if (d->mask == r->float_mask) return snprintf(buf, len, "all operands"), buf;
    for (int i = 0; i < r->n_in; i++)
        if (d->mask == 1u << i) return snprintf(buf, len, "operand %d alone", i), buf;
    return snprintf(buf, len, "operands 0x%x", d->mask), buf;
}

/* td_jvp and td_vjp of y with respect to the operands in d->mask. A failure
 * is kept in d->err and the graph error cleared, so other checks still run. */
static void build_set(struct case_run *r, struct der_set *d)
{
    struct td_node *wrt[TD_MAX_SRC], *tans[TD_MAX_SRC], *cts[TD_MAX_SRC] = {0};
    int n = 0, idx[TD_MAX_SRC];
    for (int i = 0; i < r->n_in; i++)
        if (d->mask & (1u << i)) {
            idx[n] = i;
            wrt[n] = r->in[i];
            tans[n++] = r->tan[i];
        }
    if (td_jvp(r->g, wrt, tans, n, &r->y, 1, &d->yt) != TD_OK || !d->yt) {
        snprintf(d->err, sizeof d->err, "td_jvp: %s", td_graph_error(r->g));
        td_graph_clear_error(r->g);
        return;
    }
    if (!td_shape_equal(&d->yt->shape, &r->y->shape)) {
        snprintf(d->err, sizeof d->err, "td_jvp: tangent shape differs from the output's");
        return;
    }
    if (td_vjp(r->g, r->y, r->u, wrt, n, cts) != TD_OK) {
        snprintf(d->err, sizeof d->err, "td_vjp: %s", td_graph_error(r->g));
        td_graph_clear_error(r->g);
        return;
    }
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        if (!cts[k] || !td_shape_equal(&cts[k]->shape, &r->c->shape[i])) {
            snprintf(d->err, sizeof d->err, "td_vjp: cotangent of operand %d %s", i,
                     cts[k] ? "has the wrong shape" : "is NULL");
            return;
        }
        d->ct[i] = cts[k];
    }
}

/* Leaves, the node under test and its derivative sets. */
static int case_build(struct case_run *r, uint64_t seed, char *msg, size_t len)
{
    const struct td_op_case *c = r->c;
    char name[16];
    r->g = td_graph_new(seed);
    if (!r->g) return snprintf(msg, len, "td_graph_new failed"), 0;
    r->n_in = c->n_in;
    for (int i = 0; i < c->n_in; i++) {
        snprintf(name, sizeof name, "x%d", i);
        r->in[i] = td_input(r->g, name, c->shape[i], c->dtype[i]);
        if (c->dtype[i] == TD_F32) r->float_mask |= 1u << i;
    }
    r->y = c->build ? c->build(r->g, r->in) : td_node_new(r->g, r->op, r->in, c->n_in, NULL);
    if (td_graph_status(r->g) != TD_OK || !r->y)
        return snprintf(msg, len, "build failed: %s", td_graph_error(r->g)), 0;
    if (r->y->op != r->op)
        return snprintf(msg, len, "case build returned a '%s' node", td_node_op_name(r->y)), 0;
    r->ny = (size_t)td_shape_numel(&r->y->shape);
    for (int i = 0; i < c->n_in; i++) {
        if (!(r->float_mask & (1u << i))) continue;
        snprintf(name, sizeof name, "t%d", i);
        r->tan[i] = td_input(r->g, name, c->shape[i], TD_F32);
    }
    r->u = td_input(r->g, "u", r->y->shape, TD_F32);
    r->set[r->n_sets++].mask = r->float_mask;
    if (__builtin_popcount(r->float_mask) > 1)
        for (int i = 0; i < c->n_in; i++)
            if (r->float_mask & (1u << i)) r->set[r->n_sets++].mask = 1u << i;
    for (int s = 0; s < r->n_sets; s++) build_set(r, &r->set[s]);
    if (td_graph_status(r->g) != TD_OK)
        return snprintf(msg, len, "graph error after derivatives: %s", td_graph_error(r->g)), 0;
    return 1;
}

/* Random operands, tangents, u and the feeds binding them. */
static void case_data(struct case_run *r, uint64_t seed)
{
    const struct td_op_test *t = &r->op->test;
    for (int i = 0; i < r->n_in; i++) {
        size_t n = (size_t)td_shape_numel(&r->c->shape[i]);
        r->numel[i] = n;
        if (r->c->dtype[i] == TD_I32) {
            r->x[i] = malloc(n * sizeof(int32_t));
            ck_assert_ptr_nonnull(r->x[i]);
            tu_fill_int(r->x[i], n, t->int_hi > 0 ? t->int_hi : 1, seed, 10 + i);
        } else {
            r->x[i] = malloc(n * sizeof(float));
            r->v[i] = malloc(n * sizeof(float));
            r->xp[i] = malloc(n * sizeof(float));
            r->xm[i] = malloc(n * sizeof(float));
            ck_assert(r->x[i] && r->v[i] && r->xp[i] && r->xm[i]);
            tu_fill_uniform(r->x[i], n, t->lo, t->hi, seed, 10 + i);
            tu_fill_uniform(r->v[i], n, -1, 1, seed, 20 + i);
            for (size_t k = 0; k < n; k++) {
                float *x = r->x[i];
                r->xp[i][k] = x[k] + t->fd_eps * r->v[i][k];
                r->xm[i][k] = x[k] - t->fd_eps * r->v[i][k];
            }
        }
        r->feeds[r->n_feeds++] = (struct td_feed){r->in[i], r->x[i]};
        if (r->tan[i]) r->feeds[r->n_feeds++] = (struct td_feed){r->tan[i], r->v[i]};
    }
    r->uval = malloc(r->ny * sizeof(float));
    r->yplus = malloc(r->ny * sizeof(float));
    r->yminus = malloc(r->ny * sizeof(float));
    r->fd = malloc(r->ny * sizeof(double));
    ck_assert(r->uval && r->yplus && r->yminus && r->fd);
    tu_fill_uniform(r->uval, r->ny, -1, 1, seed, 30);
    r->feeds[r->n_feeds++] = (struct td_feed){r->u, r->uval};
}

/* Forward plan: y and its operands (the reference reads the operands as the
 * node sees them, which covers case builders that insert constants). */
static int check_forward(struct case_run *r, char *msg, size_t len)
{
    struct td_node *outs[1 + TD_MAX_SRC];
    int n = 0;
    outs[n++] = r->y;
    for (int j = 0; j < r->y->n_src; j++) outs[n++] = r->y->src[j];
    if (tu_eval_init(&r->fwd, r->g, outs, n, NULL) != TD_OK)
        return snprintf(msg, len, "td_compile: %s", td_graph_error(r->g)), 0;
    if (tu_eval_run(&r->fwd, r->feeds, r->n_feeds) != TD_OK)
        return snprintf(msg, len, "td_run: %s", td_plan_error(r->fwd.plan)), 0;
    const void *src[TD_MAX_SRC] = {0};
    for (int j = 0; j < r->y->n_src; j++) src[j] = tu_eval_output(&r->fwd, 1 + j);
    r->ref = calloc(r->ny, sizeof(float));
    ck_assert_ptr_nonnull(r->ref);
    r->op->test.reference(r->y, src, r->ref);
    char detail[256];
    double rtol = r->op->test.fwd_tol > 0 ? r->op->test.fwd_tol : FWD_RTOL;
    /* An element that sums terms of either sign can land near zero with the
     * rounding error of the terms: the absolute tolerance scales with the
     * output's largest magnitude (a conv2d output of 1.2e-3 among outputs
     * near 4, off by 1.5e-6 in float, failed a fixed 1e-6). */
    double scale = 1.0;
    for (size_t k = 0; k < r->ny; k++) scale = fmax(scale, fabs((double)r->ref[k]));
    if (!tu_close_f(tu_eval_output(&r->fwd, 0), r->ref, r->ny, rtol, FWD_ATOL * scale, detail,
                    sizeof detail))
        return snprintf(msg, len, "forward vs reference: %s", detail), 0;
    return 1;
}

/* y at the operands in `mask` shifted to xs (xp or xm), into out. */
static int run_shifted(struct case_run *r, unsigned mask, float *const *xs, float *out, char *msg,
                       size_t len)
{
    struct td_feed f[2 * TD_MAX_SRC + 1];
    memcpy(f, r->feeds, sizeof f);
    for (int k = 0; k < r->n_feeds; k++)
        for (int i = 0; i < r->n_in; i++)
            if (f[k].node == r->in[i] && (mask & (1u << i))) f[k].data = xs[i];
    if (tu_eval_run(&r->fwd, f, r->n_feeds) != TD_OK)
        return snprintf(msg, len, "td_run (shifted): %s", td_plan_error(r->fwd.plan)), 0;
    memcpy(out, tu_eval_output(&r->fwd, 0), r->ny * sizeof(float));
    return 1;
}

static int all_zero(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0) return 0;
    return 1;
}

/* Checks one derivative set; *jvp_err and *vjp_err receive its errors. */
static int check_set(struct case_run *r, struct der_set *d, double *jvp_err, double *vjp_err,
                     char *msg, size_t len)
{
    const struct td_op_test *t = &r->op->test;
    if (d->err[0]) return snprintf(msg, len, "%s", d->err), 0;
    struct td_node *outs[1 + TD_MAX_SRC];
    int n = 0, slot[TD_MAX_SRC];
    outs[n++] = d->yt;
    for (int i = 0; i < r->n_in; i++)
        if (d->mask & (1u << i)) {
            slot[i] = n;
            outs[n++] = d->ct[i];
        }
    if (tu_eval_init(&d->ev, r->g, outs, n, NULL) != TD_OK)
        return snprintf(msg, len, "td_compile (derivatives): %s", td_graph_error(r->g)), 0;
    if (tu_eval_run(&d->ev, r->feeds, r->n_feeds) != TD_OK)
        return snprintf(msg, len, "td_run (derivatives): %s", td_plan_error(d->ev.plan)), 0;
    const float *yt = tu_eval_output(&d->ev, 0);

    if (r->op->traits & TD_TRAIT_NONDIFF) {
        if (!all_zero(yt, r->ny)) return snprintf(msg, len, "non-differentiable op: JVP not 0"), 0;
        for (int i = 0; i < r->n_in; i++)
            if ((d->mask & (1u << i)) && !all_zero(tu_eval_output(&d->ev, slot[i]), r->numel[i]))
                return snprintf(msg, len, "non-differentiable op: VJP of operand %d not 0", i), 0;
        *jvp_err = *vjp_err = 0;
        return 1;
    }

    /* JVP vs central differences, compared as vectors so that one element
     * near a float rounding step does not dominate. The differences carry
     * the rounding of y itself, |y| * FLT_EPSILON / (2 fd_eps) per element:
     * an error below that says nothing about the JVP (a derivative much
     * smaller than y, whose float rounding changes with the kernels: AVX2
     * against AVX-512), so it is allowed too. */
    if (!run_shifted(r, d->mask, r->xp, r->yplus, msg, len) ||
        !run_shifted(r, d->mask, r->xm, r->yminus, msg, len))
        return 0;
    double noise = 0;
    for (size_t k = 0; k < r->ny; k++) {
        r->fd[k] = ((double)r->yplus[k] - r->yminus[k]) / (2.0 * t->fd_eps);
        const double nk =
            (fabs(r->yplus[k]) + fabs(r->yminus[k])) * FLT_EPSILON / (2.0 * t->fd_eps);
        noise += nk * nk;
    }
    double scale = fmax(fmax(tu_norm(yt, r->ny), tu_norm_d(r->fd, r->ny)), 1e-3);
    *jvp_err = tu_norm_diff_d(yt, r->fd, r->ny) / fmax(scale, sqrt(noise) / t->tol);
    if (!(*jvp_err <= t->tol)) {
        size_t worst = 0;
        for (size_t k = 0; k < r->ny; k++)
            if (fabs(yt[k] - r->fd[k]) > fabs(yt[worst] - r->fd[worst])) worst = k;
        return snprintf(msg, len,
                        "JVP vs finite differences: relative error %.3g > tol %g "
                        "(worst index %zu: jvp %.7g, fd %.7g)",
                        *jvp_err, t->tol, worst, (double)yt[worst], r->fd[worst]),
               0;
    }

    /* <u, J v> against sum_i <J_i^T u, v_i>; the rounding scale is the sum of
     * the absolute products. */
    double a = tu_dot(r->uval, yt, r->ny), b = 0;
    double sa = tu_dot_abs(r->uval, yt, r->ny), sb = 0;
    for (int i = 0; i < r->n_in; i++) {
        if (!(d->mask & (1u << i))) continue;
        const float *ct = tu_eval_output(&d->ev, slot[i]);
        b += tu_dot(ct, r->v[i], r->numel[i]);
        sb += tu_dot_abs(ct, r->v[i], r->numel[i]);
    }
    *vjp_err = fabs(a - b) / fmax(fmax(sa, sb), 1e-30);
    if (!(*vjp_err <= VJP_TOL))
        return snprintf(msg, len, "VJP vs JVP: <u, J v> = %.9g but sum <J^T u, v> = %.9g", a, b), 0;
    return 1;
}

static int check_case(const struct td_op_def *op, int ci, uint64_t seed, char *msg, size_t len)
{
    struct case_run r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.c = &op->test.cases[ci];
    double jvp_max = 0, vjp_max = 0;
    int ok = case_build(&r, seed, msg, len);
    if (ok) {
        case_data(&r, seed);
        ok = check_forward(&r, msg, len);
    }
    for (int s = 0; ok && s < r.n_sets; s++) {
        double je = 0, ve = 0;
        char detail[TD_MSG_MAX], label[32];
        ok = check_set(&r, &r.set[s], &je, &ve, detail, sizeof detail);
        if (!ok)
            snprintf(msg, len, "d/d %s: %s", set_label(&r, &r.set[s], label, sizeof label), detail);
        jvp_max = fmax(jvp_max, je);
        vjp_max = fmax(vjp_max, ve);
    }
    char shapes[128] = "", buf[48];
    for (int i = 0; i < r.c->n_in; i++) {
        size_t used = strlen(shapes);
        snprintf(shapes + used, sizeof shapes - used, "%s%s%s", i ? " " : "",
                 td_shape_format(&r.c->shape[i], buf, sizeof buf),
                 r.c->dtype[i] == TD_I32 ? "i32" : "");
    }
    if (ok)
        printf("op %-22s case %-2d %-26s ok  (%d derivative sets; jvp-fd %.2e, vjp-jvp %.2e)\n",
               op->name, ci, shapes, r.n_sets, jvp_max, vjp_max);
    else
        printf("op %-22s case %-2d %-26s FAIL: %s\n", op->name, ci, shapes, msg);
    fflush(stdout);
    case_free(&r);
    return ok;
}

START_TEST(test_op_table_complete)
{
    ck_assert_int_gt(td_op_count, 0);
    ck_assert_ptr_null(td_op_table[td_op_count]);
    for (int i = 0; i < td_op_count; i++) {
        const struct td_op_def *op = td_op_table[i];
        ck_assert_ptr_nonnull(op);
        ck_assert_msg(op->name && op->name[0], "op %d has no name", i);
        ck_assert_msg(op->shape && op->forward && op->jvp && op->vjp,
                      "op %s lacks a shape, forward, jvp or vjp function", op->name);
        ck_assert_msg(op->test.reference, "op %s has no reference", op->name);
        ck_assert_msg(op->test.n_cases > 0 && op->test.cases, "op %s has no test case", op->name);
        ck_assert_msg(op->test.hi >= op->test.lo, "op %s: test domain [%g, %g] is empty", op->name,
                      op->test.lo, op->test.hi);
        ck_assert_msg(op->test.fd_eps > 0 && op->test.tol > 0,
                      "op %s: fd_eps %g and tol %g must be > 0", op->name, op->test.fd_eps,
                      op->test.tol);
        for (int c = 0; c < op->test.n_cases; c++) {
            const struct td_op_case *tc = &op->test.cases[c];
            ck_assert_msg(tc->n_in >= 1 && tc->n_in <= TD_MAX_SRC, "op %s case %d: n_in %d",
                          op->name, c, tc->n_in);
            ck_assert_msg(tc->build || tc->n_in == op->n_src,
                          "op %s case %d: %d operands without a build function, op takes %d",
                          op->name, c, tc->n_in, op->n_src);
            for (int k = 0; k < tc->n_in; k++)
                ck_assert_msg(tc->dtype[k] != TD_I32 || op->test.int_hi > 0,
                              "op %s case %d: integer operand but int_hi is %d", op->name, c,
                              op->test.int_hi);
        }
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(td_op_table[j]->name, op->name) != 0,
                          "op name %s registered twice", op->name);
    }
}
END_TEST

START_TEST(test_op_cases)
{
    char msg[TD_MSG_MAX + 128], first[TD_MSG_MAX + 192] = "";
    int checked = 0, failed = 0;
    for (int i = 0; i < td_op_count; i++) {
        const struct td_op_def *op = td_op_table[i];
        for (int c = 0; c < op->test.n_cases; c++) {
            msg[0] = 0;
            uint64_t seed = 1000 + 97 * (uint64_t)i + (uint64_t)c;
            if (!check_case(op, c, seed, msg, sizeof msg)) {
                if (!failed++) snprintf(first, sizeof first, "op %s case %d: %s", op->name, c, msg);
            }
            checked++;
        }
    }
    printf("op table: %d ops, %d cases checked, %d failed\n", td_op_count, checked, failed);
    ck_assert_msg(failed == 0, "%d of %d op cases failed; first: %s", failed, checked, first);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("op_table");
    tcase_add_test(tc, test_op_table_complete);
    tcase_add_test(tc, test_op_cases);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
