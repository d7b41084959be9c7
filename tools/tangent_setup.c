#include "tools/tangent_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"
#include "io/text.h"
#include "io/weights.h"

/* Bytes of one sample of a batch-first input. */
static size_t sample_bytes(const struct td_node *n)
{
    const struct td_shape *s = td_node_shape(n);
    return (size_t)(td_shape_numel(s) / s->dim[0]) * td_dtype_size(td_node_dtype(n));
}

enum td_status td_zoo_build(void *ctx, struct td_graph *g, int64_t batch,
                            struct td_tangent_net *net)
{
    const struct td_zoo_builder *z = ctx;
    struct td_model m;
    enum td_status st = td_model_build(z->info, g, (int)batch, &z->desc, &z->mc, &m);
    net->inputs[0] = m.x;
    net->n_inputs = 1;
    net->output = m.logits;
    return st;
}

static enum td_status check_vocab(const char *weights, const struct td_vocab *text, char *err,
                                  size_t errlen)
{
    struct td_vocab v;
    enum td_status st = td_vocab_load(weights, &v, err, errlen);
    if (st != TD_OK) return st;
    if (v.size != text->size || memcmp(v.byte, text->byte, (size_t)v.size) != 0)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "%s was trained on a vocabulary of %d bytes, the text has %d other ones",
                          weights, v.size, text->size);
    return TD_OK;
}

enum td_status td_tangent_setup_init(struct td_tangent_setup *t, struct td_setup_config *c,
                                     const char *weights, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    char *model = t->model_name, *config = t->model_config;
    enum td_status st = TD_OK;
    if (weights) {
        st = td_weights_read_meta(weights, model, config, sizeof(t->model_config), err, errlen);
        if (st == TD_OK && !c->model) c->model = model[0] ? model : "mlp";
        if (st == TD_OK && td_model_config_parse(config, &c->mc, err, errlen) != 0)
            st = TD_ERR_FORMAT;
    }
    if (!c->model) c->model = "mlp";
    /* Dropout is a training-time draw: the kernel is of the evaluation model. */
    c->mc.dropout = 0;
    if (st == TD_OK) st = td_setup_init(&t->s, c, err, errlen);
    if (st == TD_OK && weights && t->s.desc.kind == TD_DATA_TEXT)
        st = check_vocab(weights, &t->s.text.vocab, err, errlen);
    if (st == TD_OK && weights)
        st = td_weights_import(td_graph_params(t->s.g), weights, 0, err, errlen);
    if (st != TD_OK) return st;
    t->zb = (struct td_zoo_builder){t->s.info, t->s.desc, t->s.m.config};
    t->tm = (struct td_tangent_model){.build = td_zoo_build,
                                      .ctx = &t->zb,
                                      .values = td_graph_params(t->s.g),
                                      .seed = (uint64_t)c->seed};
    return TD_OK;
}

void td_tangent_setup_free(struct td_tangent_setup *t)
{
    td_setup_free(&t->s);
    memset(t, 0, sizeof(*t));
}

enum td_status td_samples_pick(const struct td_setup *s, const char *part, int64_t offset,
                               int64_t n, struct td_samples *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int train = !strcmp(part, "train");
    if (!train && strcmp(part, "test"))
        return td_io_errf(TD_ERR_ARG, err, errlen, "unknown sample set '%s' (train or test)", part);
    if (n < 1 || offset < 0)
        return td_io_errf(TD_ERR_ARG, err, errlen, "need at least one sample from offset >= 0");
    int64_t avail;
    int64_t ctx = s->m.config.context;
    if (s->desc.kind == TD_DATA_TEXT)
        avail = train ? (s->text.n_train - 1) / ctx : td_text_val_windows(&s->text, ctx);
    else if (!train && !s->has_test)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "the data has no test set: give --test-data or pick --from train");
    else
        avail = train ? s->train.n : s->test.n;
    if (offset + n > avail)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "%lld samples from offset %lld need %lld %s %s; there are %lld",
                          (long long)n, (long long)offset, (long long)(offset + n),
                          s->desc.kind == TD_DATA_TEXT ? "windows of" : "samples in", part,
                          (long long)avail);
    out->n = n;
    out->offset = offset;
    out->part = train ? "train" : "test";
    out->data.n = n;
    if (s->desc.kind != TD_DATA_TEXT) {
        const struct td_dataset *d = train ? &s->train : &s->test;
        int64_t numel = td_dataset_sample_numel(d);
        float *x = malloc((size_t)(n * numel) * sizeof(float));
        if (!x)
            return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory for %lld samples",
                              (long long)n);
        td_dataset_copy_samples(d, offset, n, x);
        out->owned_x = x;
        out->data.x[0] = x;
        out->labels = d->y + offset;
        return TD_OK;
    }
    int32_t *x = malloc((size_t)(n * ctx) * sizeof(int32_t));
    int32_t *y = malloc((size_t)(n * ctx) * sizeof(int32_t));
    if (!x || !y) {
        free(x), free(y);
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    }
    int64_t base = train ? 0 : s->text.n_train;
    for (int64_t w = 0; w < n; w++)
        for (int64_t i = 0; i < ctx; i++) {
            int64_t at = base + (offset + w) * ctx + i;
            x[w * ctx + i] = s->text.tokens[at];
            y[w * ctx + i] = s->text.tokens[at + 1];
        }
    out->owned_x = x;
    out->owned_y = y;
    out->data.x[0] = x;
    out->labels = y;
    return TD_OK;
}

void td_samples_free(struct td_samples *s)
{
    free(s->owned_x);
    free(s->owned_y);
    memset(s, 0, sizeof(*s));
}

enum td_status td_samples_logits(const struct td_setup *s, const struct td_samples *x,
                                 int num_threads, double *out, char *err, size_t errlen)
{
    const int64_t B = x->n < 1000 ? x->n : 1000;
    struct td_graph *g = td_graph_new(td_graph_seed(s->g));
    struct td_model m;
    struct td_model_config mc = s->m.config;
    mc.dropout = 0;
    struct td_plan *plan = NULL;
    unsigned char *buf = NULL;
    enum td_status st = TD_OK;
    if (!g || td_model_build(s->info, g, (int)B, &s->desc, &mc, &m) != TD_OK) {
        st = td_io_errf(TD_ERR_ARG, err, errlen, "outputs: %s",
                        g ? td_graph_error(g) : "out of memory");
    } else {
        const struct td_params *from = td_graph_params(s->g);
        memcpy(td_graph_params(g)->value, from->value, from->total * sizeof(float));
        struct td_compile_options co = {.num_threads = num_threads};
        plan = td_compile(g, &m.logits, 1, &co);
        if (!plan) st = td_io_errf(TD_ERR_ARG, err, errlen, "outputs: %s", td_graph_error(g));
    }
    const size_t sb = st == TD_OK ? sample_bytes(m.x) : 0;
    if (st == TD_OK && !(buf = malloc(sb * (size_t)B)))
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    const int64_t K = st == TD_OK ? td_shape_numel(td_node_shape(m.logits)) / B : 0;
    for (int64_t at = 0; at < x->n && st == TD_OK; at += B) {
        int64_t rows = x->n - at < B ? x->n - at : B;
        const unsigned char *src = (const unsigned char *)x->data.x[0] + (size_t)at * sb;
        memcpy(buf, src, (size_t)rows * sb);
        for (int64_t r = rows; r < B; r++) memcpy(buf + (size_t)r * sb, src, sb);
        struct td_feed feed = {m.x, buf};
        if (td_run(plan, &feed, 1) != TD_OK) {
            st = td_io_errf(TD_ERR_BACKEND, err, errlen, "outputs: %s", td_plan_error(plan));
            break;
        }
        const float *y = td_plan_output(plan, 0);
        for (int64_t i = 0; i < rows * K; i++) out[at * K + i] = y[i];
    }
    free(buf);
    td_plan_free(plan);
    td_graph_free(g);
    return st;
}

size_t td_parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    double unit = 1;
    if (*end == 'K' || *end == 'k')
        unit = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        unit = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        unit = 1024.0 * 1024 * 1024, end++;
    else if (*end == 'T' || *end == 't')
        unit = 1024.0 * 1024 * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'i') end++;
    if (end == s || *end || !(v > 0) || v * unit > 1e18) return 0;
    return (size_t)(v * unit);
}
