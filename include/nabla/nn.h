/* nabla: layers for composing models (like torch.nn).
 *
 * A module is a forward function plus named parameters, buffers and child
 * modules. Layers are built from ops only, so the tape differentiates them;
 * there is no backward code here. Parameters are persistent float32 tensors
 * owned by their module; nb_module_free frees a module, its parameters and
 * its children.
 *
 * Names follow PyTorch's state_dict: a child added as "conv1" makes its
 * parameters "conv1.weight", "conv1.bias"; a sequential container names
 * its children "0", "1", ... unless given names. So a model saved here
 * loads into the same PyTorch architecture and the reverse. */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "nabla/export.h"

#include <stdbool.h>

#include "nabla/io.h"
#include "nabla/meprop.h"
#include "nabla/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { NB_MODULE_NAME_CAPACITY = 128 };

typedef struct nb_module nb_module;
typedef nb_tensor *(*nb_module_forward_fn)(nb_module *self, nb_tape *tape, nb_tensor *x);

struct nb_module {
    const char *kind;                      /* "Linear", "Conv2d", ...: a static string */
    nb_module_forward_fn forward;
    bool training;
    /* Parameters and buffers in the order added (buffers: is_buffer, no
     * gradient); the arrays grow as tensors are added. */
    int n_tensors, tensors_capacity;
    nb_tensor **tensors;
    char (*tensor_names)[NB_MODULE_NAME_CAPACITY];   /* "weight" */
    bool *is_buffer;
    char (*full_names)[NB_MODULE_NAME_CAPACITY];     /* "conv1.weight" */
    char prefix[NB_MODULE_NAME_CAPACITY];            /* "conv1" */
    /* The hyper-parameters nb_module_print shows inside Kind(...), as
     * PyTorch's repr: "1, 6, kernel_size=(5, 5), stride=(1, 1)". */
    char description[NB_MODULE_NAME_CAPACITY];
    /* A user layer's own state, freed with free_user (may be NULL). */
    void *user;
    void (*free_user)(void *user);
    /* Children, in order. */
    int n_children;
    int children_capacity;
    nb_module **children;
    char (*child_names)[NB_MODULE_NAME_CAPACITY];
    /* Layer settings (op params), by kind. */
    union {
        nb_conv2d_params conv2d;
        nb_conv_transpose2d_params conv_transpose2d;
        nb_conv1d_params conv1d;
        nb_max_pool2d_params max_pool2d;
        struct {
            nb_conv2d_params conv2d;    /* first: reads as config.conv2d */
            nb_max_pool2d_params max_pool2d;
        } conv_pool;
        nb_avg_pool2d_params avg_pool2d;
        nb_batch_norm_params batch_norm;
        struct {
            double p;
            uint64_t seed;           /* bumped every training step */
        } dropout;
        double slope;
        int flatten_dims[2];
        nb_layer_norm_params layer_norm;
        struct {
            int num_groups;
            double eps;
        } group_norm;
        nb_embedding_params embedding;
        int gelu_approximate;
        struct {
            int64_t embed_dim;
            int num_heads;
            bool is_causal;
        } attention;
        struct {
            int64_t input_size, hidden_size;
            int num_layers, gates;     /* gates: 4 (LSTM) or 3 (GRU) */
            bool bias, batch_first;
        } recurrent;
    } config;
    /* Linear and Conv2d: the layer's meProp setting (nb_module_set_meprop);
     * zeroed, it follows the tape's. */
    nb_meprop meprop;
    /* Matrix-product precision inside this module's forward (and its
     * children's, unless they set their own); NB_PRECISION_INHERIT (zero)
     * follows the tape. nb_module_set_precision. */
    nb_precision precision;
};

/* ---- layers (float32, PyTorch's default init from the global RNG, which
 * nb_manual_seed seeds) ----------------------------------------------- */
/* y = x W^T + b; W [out,in] */
NB_API nb_module *nb_nn_linear(int64_t in_features, int64_t out_features, bool bias);
/* y = conv2d(x, W, b); W [out, in/groups, kh, kw]; p NULL: stride 1, pad 0 */
NB_API nb_module *nb_nn_conv2d(int64_t in_channels, int64_t out_channels, int kernel_h, int kernel_w,
                        const nb_conv2d_params *p, bool bias);
/* y = max(conv2d(x, W, b), 0) as one node (nb_conv2d_relu; PyTorch's
 * ConvReLU2d): Conv2d's parameters, names and init, followed by a ReLU. */
NB_API nb_module *nb_nn_conv_relu2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                             int kernel_w, const nb_conv2d_params *p, bool bias);
/* y = max_pool2d(max(conv2d(x, W, b), 0), pool) as one node
 * (nb_conv2d_relu_max_pool2d): Conv2d's parameters, names and init, then a
 * ReLU and a MaxPool2d; pool must not be NULL. */
NB_API nb_module *nb_nn_conv_relu_max_pool2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                                      int kernel_w, const nb_conv2d_params *p,
                                      const nb_max_pool2d_params *pool, bool bias);
/* y = conv_transpose2d(x, W, b); W [in, out/groups, kh, kw] (PyTorch's
 * ConvTranspose2d layout, so its fan_in, like PyTorch's, is
 * out/groups * kh * kw); p NULL: the defaults. */
NB_API nb_module *nb_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, int kernel_h,
                                         int kernel_w, const nb_conv_transpose2d_params *p,
                                         bool bias);
/* y = conv1d(x, W, b); W [out, in/groups, kernel_size]; p NULL: the defaults. */
NB_API nb_module *nb_nn_conv1d(int64_t in_channels, int64_t out_channels, int kernel_size,
                               const nb_conv1d_params *p, bool bias);
NB_API nb_module *nb_nn_max_pool2d(const nb_max_pool2d_params *p);
NB_API nb_module *nb_nn_avg_pool2d(const nb_avg_pool2d_params *p);
/* Per-channel batch norm with gamma/beta and running stats (momentum 0.1, eps 1e-5). */
NB_API nb_module *nb_nn_batch_norm2d(int64_t channels);
/* Inverted dropout; a new mask every training forward, from `seed`. */
NB_API nb_module *nb_nn_dropout(double p, uint64_t seed);
NB_API nb_module *nb_nn_relu(void);
NB_API nb_module *nb_nn_leaky_relu(double slope);
NB_API nb_module *nb_nn_sigmoid(void);
NB_API nb_module *nb_nn_tanh(void);
NB_API nb_module *nb_nn_gelu(nb_gelu_approximate approximate);
NB_API nb_module *nb_nn_silu(void);
/* Layer norm over the last normalized_ndim dims (shape given); weight
 * (ones) and bias (zeros) when elementwise_affine. eps 0: 1e-5. */
NB_API nb_module *nb_nn_layer_norm(int normalized_ndim, const int64_t *normalized_shape,
                                   double eps, bool elementwise_affine);
/* Group norm of num_channels in num_groups; weight ones, bias zeros when affine. */
NB_API nb_module *nb_nn_group_norm(int num_groups, int64_t num_channels, double eps, bool affine);
/* A table [num_embeddings, embedding_dim] ~ N(0, 1) ("weight"); the
 * padding_idx row (p NULL: none) starts at zero and gets no gradient. The
 * forward takes int32 indices of any shape. */
NB_API nb_module *nb_nn_embedding(int64_t num_embeddings, int64_t embedding_dim,
                                  const nb_embedding_params *p);
/* Self-attention over x [B, T, E] (batch first): PyTorch's
 * MultiheadAttention parameters (in_proj_weight [3E,E], in_proj_bias,
 * out_proj.weight, out_proj.bias) and init; the heads run in one fused
 * scaled_dot_product_attention node, causal when is_causal. */
NB_API nb_module *nb_nn_multihead_attention(int64_t embed_dim, int num_heads, bool bias,
                                            bool is_causal);
/* num_layers of LSTM layers (one nb_lstm node each) / GRU cells unrolled
 * over time through the tape:
 * x [B, T, I] (batch_first) or [T, B, I] -> the last layer's h at every
 * step, [B, T, H] or [T, B, H]; zero initial state. Parameters
 * weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... as PyTorch,
 * initialised U(-1/sqrt(H), 1/sqrt(H)). */
NB_API nb_module *nb_nn_lstm(int64_t input_size, int64_t hidden_size, int num_layers, bool bias,
                             bool batch_first);
NB_API nb_module *nb_nn_gru(int64_t input_size, int64_t hidden_size, int num_layers, bool bias,
                            bool batch_first);
/* Merges dims start..end (PyTorch nn.Flatten default: 1, -1). */
NB_API nb_module *nb_nn_flatten(int start_dim, int end_dim);
/* Sets the meProp setting of a Linear or convolution module (include/nabla/
 * meprop.h; NULL: back to unset, i.e. follow the tape). Other kinds fail. */
NB_API int nb_module_set_meprop(nb_module *m, const nb_meprop *config);
/* Sets a module's precision (nabla/tape.h): NB_PRECISION_FP32 or _BF16
 * override the tape's for the ops its forward records (children included,
 * unless they set their own); NB_PRECISION_INHERIT follows the tape. A
 * forward called through nb_module_forward applies it. */
NB_API int nb_module_set_precision(nb_module *m, nb_precision precision);

/* ---- your own layers ------------------------------------------------------- */
/* An empty module of `kind` (a static string) whose forward is `forward`
 * (NULL: a container whose children you call). */
NB_API nb_module *nb_module_new(const char *kind, nb_module_forward_fn forward);
/* Adds a named parameter (requires_grad set) or buffer (no gradient, saved
 * in the state_dict) and takes ownership of t, also on failure. Names are
 * unique within a module; there is no limit on the count. Returns t or
 * NULL (nb_last_error). */
NB_API nb_tensor *nb_module_add_parameter(nb_module *m, const char *name, nb_tensor *t);
NB_API nb_tensor *nb_module_add_buffer(nb_module *m, const char *name, nb_tensor *t);
/* The module's own parameter or buffer `name` ("weight"), or NULL. */
NB_API nb_tensor *nb_module_tensor(const nb_module *m, const char *name);
/* Converts every parameter and buffer of m and its children to `dtype`
 * (float32 or float64; PyTorch's module.double() / .float()), keeping
 * values, names and requires_grad; gradients are dropped. Build the
 * optimizer after converting: it holds the tensors it was given. */
NB_API int nb_module_to_dtype(nb_module *m, nb_dtype dtype);

/* ---- containers ---------------------------------------------------------- */
/* Runs children in order. Takes ownership of the modules (also on failure).
 * The list may hold NULLs only if creating a module failed: the container
 * is then not made and the error is kept. */
NB_API nb_module *nb_nn_sequential(int count, nb_module *const *modules);
/* An empty container for models with custom forward code: add named
 * children, then call them (nb_module_forward) and ops in any order. */
NB_API nb_module *nb_nn_container(void);
/* Adds `child` under `name` (takes ownership); returns child or NULL. */
NB_API nb_module *nb_module_add(nb_module *parent, const char *name, nb_module *child);
NB_API nb_module *nb_module_child(const nb_module *parent, const char *name);

/* ---- using modules ------------------------------------------------------- */
NB_API nb_tensor *nb_module_forward(nb_module *m, nb_tape *tape, nb_tensor *x);
/* Train (true) or eval (false) mode, recursively. */
NB_API void nb_module_train(nb_module *m, bool training);
/* Parameters (trainable tensors) in order, with full names. Returns the
 * number found; writes at most `capacity`. */
NB_API int nb_module_parameters(nb_module *m, nb_named_tensor *out, int capacity);
/* Parameters and buffers (PyTorch's state_dict). */
NB_API int nb_module_state(nb_module *m, nb_named_tensor *out, int capacity);
/* Number of trainable scalars. */
NB_API int64_t nb_module_parameter_count(nb_module *m);
NB_API void nb_module_zero_grad(nb_module *m);
/* Prints the module tree like PyTorch's repr. */
NB_API void nb_module_print(const nb_module *m, FILE *out);
/* Safetensors, keyed by full parameter and buffer names. A NULL module is
 * an error (NB_ERR_INVALID; save then creates no file). */
NB_API int nb_module_save(nb_module *m, const char *path);
NB_API int nb_module_load(nb_module *m, const char *path);
NB_API void nb_module_free(nb_module *m);

/* ---- initialisation (torch.nn.init; fan_in = size(1) * receptive field,
 * fan_out = size(0) * receptive field) ------------------------------------ */
/* U(-b, b), b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) */
NB_API int nb_init_kaiming_uniform(nb_tensor *w, double a, nb_rng *rng);
/* N(0, std^2), std = gain / sqrt(fan_in) */
NB_API int nb_init_kaiming_normal(nb_tensor *w, double a, nb_rng *rng);
/* U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) */
NB_API int nb_init_xavier_uniform(nb_tensor *w, double gain, nb_rng *rng);
/* N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) */
NB_API int nb_init_xavier_normal(nb_tensor *w, double gain, nb_rng *rng);
NB_API int nb_init_uniform(nb_tensor *w, double low, double high, nb_rng *rng);
/* fan_in and fan_out as PyTorch computes them (>= 2 dims). */
NB_API int nb_init_fans(const nb_tensor *w, int64_t *fan_in, int64_t *fan_out);

#ifdef __cplusplus
}
#endif
#endif
