/* Parameter-free layers: pooling, activations, flatten; and BatchNorm2d,
 * Dropout, whose behaviour depends on train/eval mode. */
#include <stdio.h>

#include "nn/module.h"

static nb_tensor *max_pool_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_max_pool2d(tape, x, &m->config.max_pool2d);
}

nb_module *nb_nn_max_pool2d(const nb_max_pool2d_params *p)
{
    if (!p) return nb_fail(NB_ERR_INVALID, "MaxPool2d: params are NULL"), NULL;
    nb_module *m = nb_module_new("MaxPool2d", max_pool_forward);
    if (!m) return NULL;
    m->config.max_pool2d = *p;
    int stride[2] = {p->stride[0] ? p->stride[0] : p->kernel[0], p->stride[1] ? p->stride[1] : p->kernel[1]};
    int dilation[2] = {p->dilation[0] ? p->dilation[0] : 1, p->dilation[1] ? p->dilation[1] : 1};
    char k[32], st[32], pad[32], dil[32];
    nb_module_describe(m, "kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
                       nb_pair_string(p->kernel, k, sizeof k), nb_pair_string(stride, st, sizeof st),
                       nb_pair_string(p->padding, pad, sizeof pad),
                       nb_pair_string(dilation, dil, sizeof dil), p->ceil_mode ? "True" : "False");
    return m;
}

static nb_tensor *avg_pool_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_avg_pool2d(tape, x, &m->config.avg_pool2d);
}

nb_module *nb_nn_avg_pool2d(const nb_avg_pool2d_params *p)
{
    if (!p) return nb_fail(NB_ERR_INVALID, "AvgPool2d: params are NULL"), NULL;
    nb_module *m = nb_module_new("AvgPool2d", avg_pool_forward);
    if (!m) return NULL;
    m->config.avg_pool2d = *p;
    int stride[2] = {p->stride[0] ? p->stride[0] : p->kernel[0], p->stride[1] ? p->stride[1] : p->kernel[1]};
    char k[32], st[32], pad[32];
    nb_module_describe(m, "kernel_size=%s, stride=%s, padding=%s", nb_pair_string(p->kernel, k, sizeof k),
                       nb_pair_string(stride, st, sizeof st), nb_pair_string(p->padding, pad, sizeof pad));
    return m;
}

static nb_tensor *batch_norm_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    nb_batch_norm_params p = m->config.batch_norm;
    p.running_mean = m->tensors[2];
    p.running_var = m->tensors[3];
    p.training = m->training;
    return nb_batch_norm(tape, x, m->tensors[0], m->tensors[1], &p);
}

nb_module *nb_nn_batch_norm2d(int64_t channels)
{
    if (channels < 1) return nb_fail(NB_ERR_INVALID, "BatchNorm2d: channels %lld < 1", (long long)channels), NULL;
    nb_module *m = nb_module_new("BatchNorm2d", batch_norm_forward);
    if (!m) return NULL;
    m->config.batch_norm = (nb_batch_norm_params)NB_BATCH_NORM_PARAMS_DEFAULT;
    int status = nb_module_add_tensor(m, "weight", nb_tensor_ones(NB_FLOAT32, 1, &channels), false);
    if (status == NB_OK) status = nb_module_add_tensor(m, "bias", nb_tensor_zeros(NB_FLOAT32, 1, &channels), false);
    if (status == NB_OK) status = nb_module_add_tensor(m, "running_mean", nb_tensor_zeros(NB_FLOAT32, 1, &channels), true);
    if (status == NB_OK) status = nb_module_add_tensor(m, "running_var", nb_tensor_ones(NB_FLOAT32, 1, &channels), true);
    if (status != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    nb_module_describe(m, "%lld, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True",
                       (long long)channels);
    return m;
}

static nb_tensor *dropout_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    uint64_t seed = m->config.dropout.seed;
    /* A fresh mask for every training step, reproducible from the seed. */
    if (m->training && nb_module_input_ok(m, tape, x)) m->config.dropout.seed++;
    return nb_dropout(tape, x, m->config.dropout.p, m->training, seed);
}

nb_module *nb_nn_dropout(double p, uint64_t seed)
{
    if (!(p >= 0.0 && p <= 1.0)) return nb_fail(NB_ERR_INVALID, "Dropout: p %g outside [0, 1]", p), NULL;
    nb_module *m = nb_module_new("Dropout", dropout_forward);
    if (m) {
        m->config.dropout.p = p;
        m->config.dropout.seed = seed;
    }
    nb_module_describe(m, "p=%g, inplace=False", p);
    return m;
}

static nb_tensor *relu_forward(nb_module *m, nb_tape *tape, nb_tensor *x) { (void)m; return nb_relu(tape, x); }
static nb_tensor *sigmoid_forward(nb_module *m, nb_tape *tape, nb_tensor *x) { (void)m; return nb_sigmoid(tape, x); }
static nb_tensor *tanh_forward(nb_module *m, nb_tape *tape, nb_tensor *x) { (void)m; return nb_tanh(tape, x); }
static nb_tensor *leaky_relu_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_leaky_relu(tape, x, m->config.slope);
}

nb_module *nb_nn_relu(void) { return nb_module_new("ReLU", relu_forward); }
nb_module *nb_nn_sigmoid(void) { return nb_module_new("Sigmoid", sigmoid_forward); }
nb_module *nb_nn_tanh(void) { return nb_module_new("Tanh", tanh_forward); }

nb_module *nb_nn_leaky_relu(double slope)
{
    nb_module *m = nb_module_new("LeakyReLU", leaky_relu_forward);
    if (m) m->config.slope = slope;
    nb_module_describe(m, "negative_slope=%g", slope);
    return m;
}

static nb_tensor *flatten_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_flatten(tape, x, m->config.flatten_dims[0], m->config.flatten_dims[1]);
}

nb_module *nb_nn_flatten(int start_dim, int end_dim)
{
    nb_module *m = nb_module_new("Flatten", flatten_forward);
    if (m) {
        m->config.flatten_dims[0] = start_dim;
        m->config.flatten_dims[1] = end_dim;
    }
    nb_module_describe(m, "start_dim=%d, end_dim=%d", start_dim, end_dim);
    return m;
}

static nb_tensor *sequential_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    for (int c = 0; c < m->n_children; c++) x = nb_module_forward(m->children[c], tape, x);
    return x;
}

nb_module *nb_nn_sequential(int count, nb_module *const *modules)
{
    bool complete = count >= 0 && (count == 0 || modules);
    for (int i = 0; complete && i < count; i++) complete = modules[i] != NULL;
    nb_module *m = complete ? nb_module_new("Sequential", sequential_forward) : NULL;
    if (!complete && nb_last_error()[0] == '\0')
        nb_fail(NB_ERR_INVALID, "Sequential: a module is NULL");
    for (int i = 0; i < count && modules; i++) {
        if (!m) {
            nb_module_free(modules[i]);
            continue;
        }
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        if (!nb_module_add(m, name, modules[i])) {
            nb_module_free(m);
            m = NULL;
        }
    }
    return m;
}

nb_module *nb_nn_container(void) { return nb_module_new("Module", NULL); }
