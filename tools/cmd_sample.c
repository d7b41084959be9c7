/* `tandem sample`: text from a trained text model. The model, its options
 * and its vocabulary come from the weights file; each new token is drawn
 * from the softmax of the last position's logits (temperature, top-k) with
 * a counter-based generator, so a seed gives the same text every time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/rng.h"
#include "io/text.h"
#include "tools/cli.h"
#include "tools/models/models.h"

static const char usage[] =
    "usage: tandem sample --weights FILE [--prompt TEXT] [--tokens N] [--temperature X]\n"
    "                     [--top-k N] [--seed N] [--threads N]\n"
    "  Continues the prompt (default: a newline) with N tokens (default 300) drawn\n"
    "  from a text model's weights. --temperature (default 1) divides the logits;\n"
    "  --top-k keeps the k most likely tokens (default: all). The same seed gives\n"
    "  the same text.\n";

struct sample_opts {
    const char *weights, *prompt;
    long long tokens, top_k, seed, threads;
    double temperature;
};

/* Index of the token drawn from softmax(logits / temperature) restricted to
 * the k largest logits, with u uniform in [0, 1). Ties in the top k keep
 * the lower id. */
static int draw(const float *logits, int v, double temperature, int k, float u, double *w,
                int *order)
{
    for (int i = 0; i < v; i++) order[i] = i;
    for (int i = 1; i < v; i++)
        for (int j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (k <= 0 || k > v) k = v;
    double sum = 0, top = logits[order[0]];
    for (int i = 0; i < k; i++) sum += w[i] = exp(((double)logits[order[i]] - top) / temperature);
    double target = u * sum, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += w[i];
        if (target < acc) return order[i];
    }
    return order[k - 1];
}

static int parse(int argc, char **argv, struct sample_opts *o)
{
    *o = (struct sample_opts){.prompt = "\n", .tokens = 300, .seed = 1, .temperature = 1.0};
    const struct td_opt opts[] = {
        {"--weights", TD_OPT_STR, &o->weights, 0, 0},
        {"--prompt", TD_OPT_STR, &o->prompt, 0, 0},
        {"--tokens", TD_OPT_INT, &o->tokens, 1, 1e9},
        {"--temperature", TD_OPT_FLOAT, &o->temperature, 1e-3, 1e3},
        {"--top-k", TD_OPT_INT, &o->top_k, 1, 256},
        {"--seed", TD_OPT_INT, &o->seed, 0, 9e15},
        {"--threads", TD_OPT_INT, &o->threads, 1, 1024},
    };
    int r = td_cli_parse("sample", usage, argc, argv, opts, (int)(sizeof(opts) / sizeof(opts[0])));
    if (r > 0 && !o->weights) {
        fprintf(stderr, "tandem sample: --weights is required\n%s", usage);
        return -1;
    }
    return r;
}

/* The model recorded in the weights file, built for one window and loaded. */
static enum td_status load_model(const struct sample_opts *o, struct td_graph **g,
                                 struct td_model *m, struct td_vocab *vocab, char *err,
                                 size_t errlen)
{
    char name[64], config[256];
    enum td_status st = td_weights_read_meta(o->weights, name, config, sizeof(config), err, errlen);
    if (st != TD_OK) return st;
    const struct td_model_info *info = td_model_find(name);
    if (!info || info->data != TD_DATA_TEXT) {
        snprintf(err, errlen, "%s: not a text model's weights (model '%s')", o->weights, name);
        return TD_ERR_ARG;
    }
    st = td_vocab_load(o->weights, vocab, err, errlen);
    struct td_model_config mc = {.dropout = -1};
    if (st == TD_OK && td_model_config_parse(config, &mc, err, errlen) != 0) st = TD_ERR_FORMAT;
    if (st != TD_OK) return st;
    *g = td_graph_new(1);
    struct td_data_desc d = {.kind = TD_DATA_TEXT, .classes = vocab->size};
    if (td_model_build(info, *g, 1, &d, &mc, m) != TD_OK) {
        snprintf(err, errlen, "%s", td_graph_error(*g));
        return td_graph_status(*g);
    }
    return td_weights_import(td_graph_params(*g), o->weights, 0, err, errlen);
}

int td_cmd_sample(int argc, char **argv)
{
    struct sample_opts o;
    int r = parse(argc, argv, &o);
    if (r <= 0) return r < 0 ? 2 : 0;
    char err[1024];
    struct td_graph *g = NULL;
    struct td_model m;
    struct td_vocab vocab;
    struct td_plan *plan = NULL;
    enum td_status st = load_model(&o, &g, &m, &vocab, err, sizeof(err));
    int64_t t = st == TD_OK ? td_node_shape(m.x)->dim[1] : 0;
    size_t np = strlen(o.prompt), total = np + (size_t)o.tokens;
    int32_t *ids = malloc(total * sizeof(int32_t)), *window = malloc((size_t)(t > 0 ? t : 1) * 4);
    uint8_t *text = malloc(total);
    double *w = malloc(256 * sizeof(double));
    int order[256];
    if (st == TD_OK && (!ids || !text || !w || !window)) {
        snprintf(err, sizeof(err), "out of memory");
        st = TD_ERR_NOMEM;
    }
    if (st == TD_OK && np == 0) {
        snprintf(err, sizeof(err), "the prompt is empty");
        st = TD_ERR_ARG;
    }
    if (st == TD_OK)
        st = td_vocab_encode(&vocab, (const uint8_t *)o.prompt, np, ids, err, sizeof(err));
    if (st == TD_OK) {
        struct td_compile_options co = {.num_threads = (int)o.threads};
        plan = td_compile(g, &m.logits, 1, &co);
        if (!plan) {
            snprintf(err, sizeof(err), "%s", td_graph_error(g));
            st = td_graph_status(g);
        }
    }
    int32_t step = -1;
    struct td_feed feeds[2] = {{m.x, window}, {m.step, &step}};
    int v = vocab.size;
    for (size_t n = np; st == TD_OK && n < total; n++) {
        /* The last t tokens, left-aligned: with causal attention the
         * logits at position len - 1 do not see the padding after it. */
        size_t len = n < (size_t)t ? n : (size_t)t;
        memset(window, 0, (size_t)t * sizeof(int32_t));
        memcpy(window, ids + n - len, len * sizeof(int32_t));
        st = td_run(plan, feeds, m.step ? 2 : 1);
        if (st != TD_OK) {
            snprintf(err, sizeof(err), "%s", td_plan_error(plan));
            break;
        }
        const float *logits = td_plan_output(plan, 0) + (len - 1) * (size_t)v;
        float u = td_rng_uniform((uint64_t)o.seed, TD_RNG_STREAM_SAMPLE, n - np);
        ids[n] = draw(logits, v, o.temperature, (int)o.top_k, u, w, order);
    }
    if (st == TD_OK) {
        td_vocab_decode(&vocab, ids, total, text);
        fwrite(text, 1, total, stdout);
        putchar('\n');
    } else {
        fprintf(stderr, "tandem sample: %s\n", err);
    }
    td_plan_free(plan);
    td_graph_free(g);
    free(ids), free(text), free(w), free(window);
    return st == TD_OK ? 0 : 1;
}
