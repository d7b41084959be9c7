#include "tools/setup.h"

#include <stdio.h>
#include <string.h>

#include "io/h5data.h"
#include "io/idx.h"
#include "io/ioutil.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum td_status load_images(struct td_setup *s, const struct td_setup_config *c, char *err,
                                  size_t errlen)
{
    enum td_status st;
    if (ends_with(c->data, ".h5") || ends_with(c->data, ".hdf5")) {
        st = td_h5data_load(c->data, &s->train, err, errlen);
        if (st == TD_OK && c->test_data) {
            st = td_h5data_load(c->test_data, &s->test, err, errlen);
            s->has_test = st == TD_OK;
        }
    } else {
        st = td_dataset_load_fashion_mnist(c->data, 1, &s->train, err, errlen);
        if (st == TD_OK) st = td_dataset_load_fashion_mnist(c->data, 0, &s->test, err, errlen);
        s->has_test = st == TD_OK;
    }
    if (st != TD_OK) return st;
    if (s->has_test && td_dataset_sample_numel(&s->test) != td_dataset_sample_numel(&s->train))
        return td_io_errf(TD_ERR_FORMAT, err, errlen,
                          "test samples have %lld values, training samples %lld",
                          (long long)td_dataset_sample_numel(&s->test),
                          (long long)td_dataset_sample_numel(&s->train));
    if (s->has_test && s->test.classes > s->train.classes) s->train.classes = s->test.classes;
    s->desc.kind = TD_DATA_IMAGES;
    s->desc.sample = s->train.sample_shape;
    s->desc.classes = s->train.classes > 1 ? s->train.classes : 2;
    return td_source_images(&s->train, s->has_test ? &s->test : NULL, c->batch, (uint64_t)c->seed,
                            c->rank, c->ranks > 0 ? c->ranks : 1, &s->src, err, errlen);
}

static enum td_status load_text(struct td_setup *s, const struct td_setup_config *c, char *err,
                                size_t errlen)
{
    if (!c->text)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "model %s trains on text: give --text FILE (tools/kjv.sh FILE writes "
                          "the King James Bible)",
                          s->info->name);
    struct td_model_config mc = td_model_defaults(s->info, &c->mc);
    enum td_status st = td_text_load(c->text, c->val_fraction, mc.context, &s->text, err, errlen);
    if (st != TD_OK) return st;
    s->desc.kind = TD_DATA_TEXT;
    s->desc.classes = s->text.vocab.size;
    return td_source_text(&s->text, c->batch, mc.context, (uint64_t)c->seed, c->rank,
                          c->ranks > 0 ? c->ranks : 1, &s->src, err, errlen);
}

enum td_status td_setup_init(struct td_setup *s, const struct td_setup_config *c, char *err,
                             size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->info = td_model_find(c->model);
    if (!s->info) {
        char names[256] = "";
        for (int i = 0; td_models[i]; i++) {
            size_t at = strlen(names);
            snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "", td_models[i]->name);
        }
        return td_io_errf(TD_ERR_ARG, err, errlen, "unknown model '%s' (models: %s)", c->model,
                          names);
    }
    enum td_status st = s->info->data == TD_DATA_TEXT ? load_text(s, c, err, errlen)
                                                      : load_images(s, c, err, errlen);
    if (st != TD_OK) return st;
    s->g = td_graph_new((uint64_t)c->seed);
    if (!s->g) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    if (td_model_build(s->info, s->g, (int)c->batch, &s->desc, &c->mc, &s->m) != TD_OK)
        return td_io_errf(td_graph_status(s->g), err, errlen, "model %s: %s", s->info->name,
                          td_graph_error(s->g));
    td_model_config_format(s->info, &s->m.config, s->model_config, sizeof(s->model_config));
    s->tm = (struct td_train_model){
        .g = s->g,
        .loss = s->m.loss,
        .inputs = {s->m.x, s->m.labels},
        .n_inputs = 2,
        .eval_output = s->m.logits,
        .step_input = s->m.step,
    };
    return TD_OK;
}

void td_setup_free(struct td_setup *s)
{
    td_source_free(&s->src);
    td_graph_free(s->g);
    td_dataset_free(&s->train);
    td_dataset_free(&s->test);
    td_text_free(&s->text);
    memset(s, 0, sizeof(*s));
}

struct td_weights_meta td_setup_meta(const struct td_setup *s)
{
    struct td_weights_meta meta = {.model = s->info->name,
                                   .model_config = s->model_config[0] ? s->model_config : NULL};
    if (s->desc.kind == TD_DATA_TEXT) {
        meta.vocab = s->text.vocab.byte;
        meta.vocab_size = s->text.vocab.size;
    }
    return meta;
}
