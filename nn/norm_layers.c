/* LayerNorm, GroupNorm, Embedding, GELU and SiLU: PyTorch's parameter
 * names and initial values (norm weights one, biases zero; the embedding
 * table N(0, 1) with its padding row zeroed). */
#include <stdio.h>
#include <string.h>

#include "nn/module.h"

static nb_tensor *layer_norm_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_layer_norm(tape, x, nb_module_tensor(m, "weight"), nb_module_tensor(m, "bias"),
                         &m->config.layer_norm);
}

/* Adds "weight" (ones) and "bias" (zeros) of `shape`; frees m on failure. */
static nb_module *with_affine(nb_module *m, int ndim, const int64_t *shape)
{
    if (m && (!nb_module_add_parameter(m, "weight", nb_tensor_ones(NB_FLOAT32, ndim, shape)) ||
              !nb_module_add_parameter(m, "bias", nb_tensor_zeros(NB_FLOAT32, ndim, shape)))) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_nn_layer_norm(int normalized_ndim, const int64_t *normalized_shape, double eps,
                            bool elementwise_affine)
{
    if (normalized_ndim < 1 || normalized_ndim > NB_MAX_DIMS || !normalized_shape || eps < 0.0)
        return nb_fail(NB_ERR_INVALID, "LayerNorm: normalized_shape needs 1..%d dims and eps >= 0",
                       NB_MAX_DIMS), NULL;
    nb_module *m = nb_module_new("LayerNorm", layer_norm_forward);
    if (!m) return NULL;
    m->config.layer_norm.ndim = normalized_ndim;
    memcpy(m->config.layer_norm.shape, normalized_shape, (size_t)normalized_ndim * sizeof(int64_t));
    m->config.layer_norm.eps = eps != 0.0 ? eps : 1e-5;
    char shape[96] = "(";
    for (int d = 0; d < normalized_ndim; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%lld,%s",
                 (long long)normalized_shape[d], d + 1 < normalized_ndim ? " " : "");
    nb_module_describe(m, "%s), eps=%g, elementwise_affine=%s", shape, m->config.layer_norm.eps,
                       elementwise_affine ? "True" : "False");
    return elementwise_affine ? with_affine(m, normalized_ndim, normalized_shape) : m;
}

static nb_tensor *group_norm_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_group_norm(tape, x, m->config.group_norm.num_groups, nb_module_tensor(m, "weight"),
                         nb_module_tensor(m, "bias"), m->config.group_norm.eps);
}

nb_module *nb_nn_group_norm(int num_groups, int64_t num_channels, double eps, bool affine)
{
    if (num_groups < 1 || num_channels < 1 || num_channels % num_groups || eps < 0.0)
        return nb_fail(NB_ERR_INVALID, "GroupNorm: %d groups do not divide %lld channels (or eps < 0)",
                       num_groups, (long long)num_channels), NULL;
    nb_module *m = nb_module_new("GroupNorm", group_norm_forward);
    if (!m) return NULL;
    m->config.group_norm.num_groups = num_groups;
    m->config.group_norm.eps = eps != 0.0 ? eps : 1e-5;
    nb_module_describe(m, "%d, %lld, eps=%g, affine=%s", num_groups, (long long)num_channels,
                       m->config.group_norm.eps, affine ? "True" : "False");
    return affine ? with_affine(m, 1, &num_channels) : m;
}

static nb_tensor *embedding_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_embedding(tape, x, m->tensors[0], &m->config.embedding);
}

nb_module *nb_nn_embedding(int64_t num_embeddings, int64_t embedding_dim, const nb_embedding_params *p)
{
    nb_embedding_params params = p ? *p : (nb_embedding_params){0, false};
    if (num_embeddings < 1 || embedding_dim < 1 ||
        (params.has_padding_idx && (params.padding_idx < -num_embeddings || params.padding_idx >= num_embeddings)))
        return nb_fail(NB_ERR_INVALID, "Embedding: bad sizes %lld x %lld or padding_idx",
                       (long long)num_embeddings, (long long)embedding_dim), NULL;
    if (params.has_padding_idx && params.padding_idx < 0) params.padding_idx += (int)num_embeddings;
    nb_module *m = nb_module_new("Embedding", embedding_forward);
    if (!m) return NULL;
    m->config.embedding = params;
    nb_tensor *w = nb_module_add_parameter(
        m, "weight", nb_tensor_normal(NB_FLOAT32, 2, (int64_t[]){num_embeddings, embedding_dim}, 0.0, 1.0, NULL));
    if (!w) {
        nb_module_free(m);
        return NULL;
    }
    for (int64_t j = 0; params.has_padding_idx && j < embedding_dim; j++)
        nb_tensor_set(w, params.padding_idx * embedding_dim + j, 0.0);
    char padding[48] = "";
    if (params.has_padding_idx) snprintf(padding, sizeof padding, ", padding_idx=%d", params.padding_idx);
    nb_module_describe(m, "%lld, %lld%s", (long long)num_embeddings, (long long)embedding_dim, padding);
    return m;
}

static nb_tensor *gelu_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    return nb_gelu(tape, x, (nb_gelu_approximate)m->config.gelu_approximate);
}

nb_module *nb_nn_gelu(nb_gelu_approximate approximate)
{
    nb_module *m = nb_module_new("GELU", gelu_forward);
    if (m) m->config.gelu_approximate = approximate;
    nb_module_describe(m, "approximate='%s'", approximate == NB_GELU_TANH ? "tanh" : "none");
    return m;
}

static nb_tensor *silu_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    (void)m;
    return nb_silu(tape, x);
}

nb_module *nb_nn_silu(void) { return nb_module_new("SiLU", silu_forward); }
