/* Linear, Conv2d, ConvReLU2d, ConvReLUMaxPool2d, ConvTranspose2d and
 * Conv1d: PyTorch's default init, kaiming_uniform(a = sqrt(5)) for the
 * weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias, with
 * fan_in = weight.size(1) * kernel elements (for ConvTranspose2d that is
 * out/groups * kh * kw, as in PyTorch). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/module.h"

static const double DEFAULT_INIT_A = 2.2360679774997896964; /* sqrt(5) */

static int default_init(nb_module *m, bool has_bias)
{
    int64_t fan_in, fan_out;
    int status = nb_init_kaiming_uniform(m->tensors[0], DEFAULT_INIT_A, NULL);
    if (status == NB_OK) status = nb_init_fans(m->tensors[0], &fan_in, &fan_out);
    if (status == NB_OK && has_bias) {
        double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
        status = nb_init_uniform(m->tensors[1], -bound, bound, NULL);
    }
    return status;
}

/* Adds weight (of `shape`) and bias [bias_size] when asked, then the
 * default init; frees m on failure. */
static nb_module *with_parameters(nb_module *m, int ndim, const int64_t *shape, bool bias,
                                  int64_t bias_size)
{
    if (!m) return NULL;
    int status = nb_module_add_tensor(m, "weight", nb_tensor_new(NB_FLOAT32, ndim, shape), false);
    if (status == NB_OK && bias)
        status = nb_module_add_tensor(m, "bias", nb_tensor_new(NB_FLOAT32, 1, &bias_size), false);
    if (status == NB_OK) status = default_init(m, bias);
    if (status != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

static nb_tensor *bias_of(nb_module *m) { return m->n_tensors > 1 ? m->tensors[1] : NULL; }

static nb_tensor *linear_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    nb_linear_params params = {m->meprop};
    return nb_linear_ex(tape, x, m->tensors[0], bias_of(m), &params);
}

nb_module *nb_nn_linear(int64_t in_features, int64_t out_features, bool bias)
{
    if (in_features < 1 || out_features < 1) {
        nb_fail(NB_ERR_INVALID, "Linear: features must be >= 1 (in %lld, out %lld)",
                (long long)in_features, (long long)out_features);
        return NULL;
    }
    const int64_t shape[2] = {out_features, in_features};
    nb_module *m = with_parameters(nb_module_new("Linear", linear_forward), 2, shape, bias,
                                   out_features);
    nb_module_describe(m, "in_features=%lld, out_features=%lld, bias=%s", (long long)in_features,
                       (long long)out_features, bias ? "True" : "False");
    return m;
}

static nb_tensor *conv2d_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_conv2d_ex(tape, x, m->tensors[0], bias_of(m), &m->config.conv2d, &m->meprop);
}

static nb_tensor *conv_relu2d_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_conv2d_relu_ex(tape, x, m->tensors[0], bias_of(m), &m->config.conv2d, &m->meprop);
}

static nb_tensor *conv_relu_max_pool2d_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_conv2d_relu_max_pool2d_ex(tape, x, m->tensors[0], bias_of(m),
                                        &m->config.conv_pool.conv2d,
                                        &m->config.conv_pool.max_pool2d, &m->meprop);
}

/* Conv2d and the fused layers: the same parameters and init, kind names
 * the layer in messages. */
static nb_module *conv_module(const char *kind, nb_module_forward_fn forward, int64_t in_channels,
                              int64_t out_channels, int kernel_h, int kernel_w,
                              const nb_conv2d_params *p, bool bias)
{
    nb_conv2d_params params = NB_CONV2D_PARAMS_DEFAULT;
    if (p) params = *p;
    /* conv2d reads a zero stride, dilation or groups as 1 (PyTorch's
     * defaults); the layer keeps and prints the values in force. */
    for (int a = 0; a < 2; a++) {
        if (params.stride[a] == 0) params.stride[a] = 1;
        if (params.dilation[a] == 0) params.dilation[a] = 1;
    }
    if (params.groups == 0) params.groups = 1;
    if (in_channels < 1 || out_channels < 1 || kernel_h < 1 || kernel_w < 1 || params.groups < 1 ||
        in_channels % params.groups || out_channels % params.groups) {
        nb_fail(NB_ERR_INVALID, "%s: bad configuration (in %lld, out %lld, kernel %dx%d, groups %d)",
                kind, (long long)in_channels, (long long)out_channels, kernel_h, kernel_w,
                params.groups);
        return NULL;
    }
    nb_module *m = nb_module_new(kind, forward);
    if (m) m->config.conv2d = params;
    const int64_t shape[4] = {out_channels, in_channels / params.groups, kernel_h, kernel_w};
    m = with_parameters(m, 4, shape, bias, out_channels);
    if (!m) return NULL;
    /* PyTorch's Conv2d repr: padding, dilation, groups and bias only when
     * they differ from the defaults. */
    char stride[32], pad[48] = "", dil[48] = "", groups[32] = "";
    if (params.padding[0] || params.padding[1])
        snprintf(pad, sizeof pad, ", padding=(%d, %d)", params.padding[0], params.padding[1]);
    if (params.dilation[0] != 1 || params.dilation[1] != 1)
        snprintf(dil, sizeof dil, ", dilation=(%d, %d)", params.dilation[0], params.dilation[1]);
    if (params.groups != 1) snprintf(groups, sizeof groups, ", groups=%d", params.groups);
    snprintf(stride, sizeof stride, "(%d, %d)", params.stride[0], params.stride[1]);
    nb_module_describe(m, "%lld, %lld, kernel_size=(%d, %d), stride=%s%s%s%s%s",
                       (long long)in_channels, (long long)out_channels, kernel_h, kernel_w, stride,
                       pad, dil, groups, bias ? "" : ", bias=False");
    return m;
}

nb_module *nb_nn_conv2d(int64_t in_channels, int64_t out_channels, int kernel_h, int kernel_w,
                        const nb_conv2d_params *p, bool bias)
{
    return conv_module("Conv2d", conv2d_forward, in_channels, out_channels, kernel_h, kernel_w, p,
                       bias);
}

nb_module *nb_nn_conv_relu2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                             int kernel_w, const nb_conv2d_params *p, bool bias)
{
    return conv_module("ConvReLU2d", conv_relu2d_forward, in_channels, out_channels, kernel_h,
                       kernel_w, p, bias);
}

nb_module *nb_nn_conv_relu_max_pool2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                                      int kernel_w, const nb_conv2d_params *p,
                                      const nb_max_pool2d_params *pool, bool bias)
{
    if (!pool) {
        nb_fail(NB_ERR_INVALID, "ConvReLUMaxPool2d: max-pool params are NULL");
        return NULL;
    }
    nb_module *m = conv_module("ConvReLUMaxPool2d", conv_relu_max_pool2d_forward, in_channels,
                               out_channels, kernel_h, kernel_w, p, bias);
    if (m) m->config.conv_pool.max_pool2d = *pool;
    return m;
}

static nb_tensor *conv_transpose2d_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_conv_transpose2d(tape, x, m->tensors[0], bias_of(m), &m->config.conv_transpose2d);
}

nb_module *nb_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                                  int kernel_w, const nb_conv_transpose2d_params *p, bool bias)
{
    nb_conv_transpose2d_params params = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 0};
    if (p) params = *p;
    int groups = params.groups ? params.groups : 1;
    if (in_channels < 1 || out_channels < 1 || kernel_h < 1 || kernel_w < 1 || groups < 1 ||
        in_channels % groups || out_channels % groups) {
        nb_fail(NB_ERR_INVALID, "ConvTranspose2d: bad configuration (in %lld, out %lld, kernel "
                "%dx%d, groups %d)", (long long)in_channels, (long long)out_channels, kernel_h,
                kernel_w, groups);
        return NULL;
    }
    nb_module *m = nb_module_new("ConvTranspose2d", conv_transpose2d_forward);
    if (m) m->config.conv_transpose2d = params;
    const int64_t shape[4] = {in_channels, out_channels / groups, kernel_h, kernel_w};
    m = with_parameters(m, 4, shape, bias, out_channels);
    int stride[2] = {params.stride[0] ? params.stride[0] : 1, params.stride[1] ? params.stride[1] : 1};
    nb_module_describe(m, "%lld, %lld, kernel_size=(%d, %d), stride=(%d, %d)%s",
                       (long long)in_channels, (long long)out_channels, kernel_h, kernel_w,
                       stride[0], stride[1], bias ? "" : ", bias=False");
    return m;
}

static nb_tensor *conv1d_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_conv1d(tape, x, m->tensors[0], bias_of(m), &m->config.conv1d);
}

nb_module *nb_nn_conv1d(int64_t in_channels, int64_t out_channels, int kernel_size,
                        const nb_conv1d_params *p, bool bias)
{
    nb_conv1d_params params = {0, 0, 0, 0};
    if (p) params = *p;
    int groups = params.groups ? params.groups : 1;
    if (in_channels < 1 || out_channels < 1 || kernel_size < 1 || groups < 1 ||
        in_channels % groups || out_channels % groups) {
        nb_fail(NB_ERR_INVALID, "Conv1d: bad configuration (in %lld, out %lld, kernel %d, "
                "groups %d)", (long long)in_channels, (long long)out_channels, kernel_size, groups);
        return NULL;
    }
    nb_module *m = nb_module_new("Conv1d", conv1d_forward);
    if (m) m->config.conv1d = params;
    const int64_t shape[3] = {out_channels, in_channels / groups, kernel_size};
    m = with_parameters(m, 3, shape, bias, out_channels);
    nb_module_describe(m, "%lld, %lld, kernel_size=(%d,), stride=(%d,)%s", (long long)in_channels,
                       (long long)out_channels, kernel_size, params.stride ? params.stride : 1,
                       bias ? "" : ", bias=False");
    return m;
}

int nb_module_set_meprop(nb_module *m, const nb_meprop *config)
{
    if (!m) return nb_fail(NB_ERR_INVALID, "nb_module_set_meprop: module is NULL");
    if (strcmp(m->kind, "Linear") != 0 && strcmp(m->kind, "Conv2d") != 0 &&
        strcmp(m->kind, "ConvReLU2d") != 0 && strcmp(m->kind, "ConvReLUMaxPool2d") != 0)
        return nb_fail(NB_ERR_INVALID, "nb_module_set_meprop: a %s module has no meProp setting "
                       "(only Linear, Conv2d, ConvReLU2d and ConvReLUMaxPool2d)", m->kind);
    if (!config) {
        memset(&m->meprop, 0, sizeof m->meprop);
        return NB_OK;
    }
    char who[NB_MODULE_NAME_CAPACITY + 64];
    snprintf(who, sizeof who, "nb_module_set_meprop: %s%s%s", m->kind, m->prefix[0] ? " " : "",
             m->prefix);
    int status = nb_meprop_check(config, who);
    if (status == NB_OK) m->meprop = *config;
    return status;
}
