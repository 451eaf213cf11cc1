/* Shared by the reliability tests (determinism, thread safety, memory): a
 * LeNet-5 built from nn layers, trained on random 28x28 images so that no
 * dataset is needed, and snapshots of its parameters and gradients for
 * bitwise comparison. */
#ifndef NABLA_TEST_RELIABILITY_MODEL_H
#define NABLA_TEST_RELIABILITY_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "nabla.h"

enum { MODEL_MAX_PARAMS = 32, MODEL_SIDE = 28, MODEL_CLASSES = 10 };

typedef struct model {
    nb_module *net;
    nb_optimizer *optimizer;
    nb_tensor *params[MODEL_MAX_PARAMS];
    int count;
    nb_tensor *state[MODEL_MAX_PARAMS];   /* parameters and buffers (running stats) */
    int state_count;
    nb_tape *tape;
    nb_rng data_rng;       /* the batches: a model's own stream */
    float *images;         /* [batch, 1, 28, 28] scratch */
    int32_t *labels;       /* [batch] */
    int64_t batch;
    double last_loss;
} model;

/* LeNet-5 as in models/lenet5.c: conv 6@5x5 pad 2, ReLU, maxpool 2,
 * conv 16@5x5, ReLU, maxpool 2, flatten, linear 120, ReLU, linear 84, ReLU,
 * linear 10. Layers take their init from the global RNG (not thread-safe),
 * so models are made on one thread; `kind` 1 swaps in batch norm, average
 * pooling, dropout and tanh to cover more ops. */
static inline nb_module *model_network(int kind)
{
    const nb_conv2d_params pad2 = {{1, 1}, {2, 2}, {1, 1}, 1};
    const nb_max_pool2d_params max_pool = NB_MAX_POOL2D_PARAMS(2, 2);
    const nb_avg_pool2d_params avg_pool = NB_AVG_POOL2D_PARAMS(2, 2);
    if (kind == 0) {
        nb_module *layers[] = {
            nb_nn_conv2d(1, 6, 5, 5, &pad2, true), nb_nn_relu(), nb_nn_max_pool2d(&max_pool),
            nb_nn_conv2d(6, 16, 5, 5, NULL, true), nb_nn_relu(), nb_nn_max_pool2d(&max_pool),
            nb_nn_flatten(1, -1), nb_nn_linear(16 * 5 * 5, 120, true), nb_nn_relu(),
            nb_nn_linear(120, 84, true), nb_nn_relu(), nb_nn_linear(84, MODEL_CLASSES, true)};
        return nb_nn_sequential((int)(sizeof layers / sizeof layers[0]), layers);
    }
    nb_module *layers[] = {
        nb_nn_conv2d(1, 8, 3, 3, &pad2, true), nb_nn_batch_norm2d(8), nb_nn_tanh(),
        nb_nn_avg_pool2d(&avg_pool), nb_nn_conv2d(8, 12, 3, 3, NULL, false),
        nb_nn_leaky_relu(0.1), nb_nn_max_pool2d(&max_pool), nb_nn_dropout(0.2, 7),
        nb_nn_flatten(1, -1), nb_nn_linear(12 * 6 * 6, 64, true), nb_nn_sigmoid(),
        nb_nn_linear(64, MODEL_CLASSES, true)};
    return nb_nn_sequential((int)(sizeof layers / sizeof layers[0]), layers);
}

/* Returns 0 on success. The weights depend only on `seed`, the batches
 * only on `data_seed`. Kind 0 trains with SGD (momentum, Nesterov, weight
 * decay, as examples/lenet5), kind 1 with Adam. */
static inline int model_init(model *m, int kind, uint64_t seed, uint64_t data_seed,
                             int64_t batch)
{
    memset(m, 0, sizeof *m);
    nb_manual_seed(seed);
    m->net = model_network(kind);
    if (!m->net) return -1;
    nb_named_tensor named[MODEL_MAX_PARAMS];
    m->count = nb_module_parameters(m->net, named, MODEL_MAX_PARAMS);
    if (m->count > MODEL_MAX_PARAMS) return -1;
    for (int i = 0; i < m->count; i++) m->params[i] = named[i].tensor;
    m->state_count = nb_module_state(m->net, named, MODEL_MAX_PARAMS);
    if (m->state_count > MODEL_MAX_PARAMS) return -1;
    for (int i = 0; i < m->state_count; i++) m->state[i] = named[i].tensor;
    if (kind == 0) {
        nb_sgd_options o = nb_sgd_defaults(0.05);
        o.momentum = 0.9;
        o.nesterov = true;
        o.weight_decay = 5e-4;
        m->optimizer = nb_sgd_new(m->params, m->count, &o);
    } else {
        m->optimizer = nb_adam_new(m->params, m->count, NULL);
    }
    m->tape = nb_tape_new();
    m->batch = batch;
    m->images = malloc((size_t)batch * MODEL_SIDE * MODEL_SIDE * sizeof *m->images);
    m->labels = malloc((size_t)batch * sizeof *m->labels);
    nb_rng_seed(&m->data_rng, data_seed);
    return m->optimizer && m->tape && m->images && m->labels ? 0 : -1;
}

static inline void model_free(model *m)
{
    nb_optimizer_free(m->optimizer);
    nb_module_free(m->net);
    nb_tape_free(m->tape);
    free(m->images);
    free(m->labels);
    memset(m, 0, sizeof *m);
}

/* One training step on a fresh random batch; returns NB_OK or an error. */
static inline int model_step(model *m)
{
    for (int64_t i = 0; i < m->batch * MODEL_SIDE * MODEL_SIDE; i++)
        m->images[i] = (float)nb_rng_normal(&m->data_rng);
    for (int64_t i = 0; i < m->batch; i++)
        m->labels[i] = (int32_t)nb_rng_below(&m->data_rng, MODEL_CLASSES);
    nb_tape_reset(m->tape);
    const int64_t shape[4] = {m->batch, 1, MODEL_SIDE, MODEL_SIDE};
    nb_tensor *x = nb_tape_tensor(m->tape, NB_FLOAT32, 4, shape, m->images);
    nb_tensor *y = nb_tape_labels(m->tape, m->batch, m->labels);
    nb_tensor *loss = nb_cross_entropy(m->tape, nb_module_forward(m->net, m->tape, x), y);
    nb_optimizer_zero_grad(m->optimizer);
    if (!loss) return NB_ERR_INVALID;
    int status = nb_backward(m->tape, loss, NULL);
    if (status == NB_OK) status = nb_optimizer_step(m->optimizer);
    m->last_loss = nb_tensor_get(loss, 0);
    return status;
}

/* The bytes of every parameter and buffer, every gradient, then the loss,
 * in one malloc'd buffer (*size set) for memcmp. */
static inline unsigned char *model_snapshot(const model *m, size_t *size)
{
    size_t total = sizeof m->last_loss;
    for (int i = 0; i < m->state_count; i++)
        total += 2 * (size_t)m->state[i]->numel * nb_dtype_size(m->state[i]->dtype);
    unsigned char *buffer = malloc(total), *at = buffer;
    if (!buffer) return NULL;
    for (int i = 0; i < m->state_count; i++) {
        const nb_tensor *t = m->state[i];
        size_t bytes = (size_t)t->numel * nb_dtype_size(t->dtype);
        memcpy(at, t->data, bytes);
        at += bytes;
        if (t->grad) memcpy(at, t->grad->data, bytes);
        else memset(at, 0xAB, bytes); /* buffers have no gradient */
        at += bytes;
    }
    memcpy(at, &m->last_loss, sizeof m->last_loss);
    *size = total;
    return buffer;
}

#endif
