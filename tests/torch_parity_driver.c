/* Driver for tests/torch_parity.py: runs one op (conv2d, max_pool2d,
 * avg_pool2d, batch_norm, dropout, cat, and the element-wise sqrt, rsqrt,
 * abs, square, sin, cos, pow, maximum, minimum, add_scalar, mul_scalar,
 * clamp, where, the activations sigmoid, tanh, silu, logsigmoid, mish, elu,
 * hardtanh, gelu, softplus, the reductions logsumexp, amax, amin, argmax,
 * argmin, max_dim, min_dim, var, std, prod, norm, cumsum, sum_dims,
 * mean_dims, the shape and indexing ops narrow, select, slice, split, chunk,
 * squeeze, unsqueeze, permute, expand, repeat, stack, pad, index_select,
 * gather, scatter_add, embedding, the norms layer_norm, rms_norm,
 * group_norm, scaled_dot_product_attention, lstm_cell, gru_cell, lstm, and the
 * losses and cosine_similarity of tests/torch_parity_losses.c, and
 * conv_transpose2d, conv1d, adaptive_avg_pool2d, interpolate) on inputs read
 * from stdin and prints the output and every input's gradient for a given
 * output seed.
 *
 * Input, whitespace-separated tokens:
 *   dtype f32|f64
 *   op conv2d      stride_h stride_w pad_h pad_w dil_h dil_w groups has_bias
 *   op max_pool2d  kh kw sh sw ph pw dh dw ceil_mode
 *   op avg_pool2d  kh kw sh sw ph pw ceil_mode count_include_pad divisor_override
 *   op batch_norm  training momentum eps affine has_running
 *   op dropout     p training seed
 *   op cat         dim
 *   op conv_transpose2d  sh sw ph pw oph opw dh dw groups has_bias
 *   op conv1d      stride padding dilation groups has_bias
 *   op adaptive_avg_pool2d  out_h out_w
 *   op interpolate size_h size_w scale_h scale_w mode align_corners
 *   op amax|amin|argmax|argmin|prod|norm  dim keepdim all
 *   op max_dim|min_dim|logsumexp          dim keepdim
 *   op var|std     dim correction keepdim all
 *   op cumsum      dim
 *   op sum_dims|mean_dims  keepdim n dim_0 .. dim_(n-1)
 *   op softplus    beta threshold
 *   op NAME COUNT i1 .. iCOUNT [number]   (the shape, indexing, norm and
 *                  attention ops: their int arguments in the C function's
 *                  order; pad adds its value, the norms eps, attention scale)
 *   optionally index_inputs MASK: bit i makes input i an int32 tensor
 *   (class labels; no gradient), besides those the op's descriptor marks,
 *   inputs COUNT, then COUNT tensors; then (batch_norm with has_running)
 *   running_mean and running_var tensors, or a loss's weight tensors;
 *   then the output seed tensor.
 *   A tensor is: ndim d0 .. d(ndim-1) values (row-major).
 * Output lines: "output ndim dims values", "grad I ndim dims values" (or
 * "grad I none"), and for batch_norm "running_mean ..." / "running_var ...".
 * A seed whose size differs from the output's skips the backward, and so
 * does an output without a gradient (argmax's int32 indices).
 * On an op error: "error <message>" and exit code 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla.h"
#include "tests/torch_parity.h"

enum { MAX_INPUTS = 8 };

int parity_read_int(void)
{
    int v;
    if (scanf("%d", &v) != 1) {
        fprintf(stderr, "torch_parity_driver: expected an integer\n");
        exit(3);
    }
    return v;
}

double parity_read_double(void)
{
    double v;
    if (scanf("%lf", &v) != 1) {
        fprintf(stderr, "torch_parity_driver: expected a number\n");
        exit(3);
    }
    return v;
}

/* A persistent tensor (so its gradient outlives nothing but the run). */
nb_tensor *parity_read_tensor(nb_dtype dtype)
{
    int ndim = parity_read_int();
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) shape[d] = parity_read_int();
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    if (!t) {
        fprintf(stderr, "torch_parity_driver: %s\n", nb_last_error());
        exit(3);
    }
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, parity_read_double());
    return t;
}

static int read_int(void) { return parity_read_int(); }
static double read_double(void) { return parity_read_double(); }
static nb_tensor *read_tensor(nb_dtype dtype) { return parity_read_tensor(dtype); }

/* A float tensor from the input made an int32 one (labels). */
static nb_tensor *as_index(nb_tensor *t)
{
    nb_tensor *index = nb_tensor_new(NB_INT32, t->ndim, t->shape);
    if (!index || nb_tensor_copy(index, t) != NB_OK) {
        fprintf(stderr, "torch_parity_driver: %s\n", nb_last_error());
        exit(3);
    }
    nb_tensor_free(t);
    return index;
}

static void print_tensor(const char *label, const nb_tensor *t)
{
    printf("%s %d", label, t->ndim);
    for (int d = 0; d < t->ndim; d++) printf(" %lld", (long long)t->shape[d]);
    for (int64_t i = 0; i < t->numel; i++) printf(" %.17g", nb_tensor_get(t, i));
    printf("\n");
}

typedef nb_tensor *(*unary_fn)(nb_tape *tape, nb_tensor *x);

/* The element-wise ops that take no params, by name; NULL for others. */
static unary_fn unary_op(const char *name)
{
    static const struct {
        const char *name;
        unary_fn fn;
    } OPS[] = {{"sqrt", nb_sqrt}, {"rsqrt", nb_rsqrt}, {"abs", nb_abs},
               {"square", nb_square}, {"sin", nb_sin}, {"cos", nb_cos},
               {"sigmoid", nb_sigmoid}, {"tanh", nb_tanh}, {"silu", nb_silu},
               {"logsigmoid", nb_logsigmoid}, {"mish", nb_mish}};
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(OPS[i].name, name) == 0) return OPS[i].fn;
    return NULL;
}

typedef nb_tensor *(*binary_fn)(nb_tape *tape, nb_tensor *a, nb_tensor *b);

/* The broadcasting ops of two tensors, by name; NULL for others. */
static binary_fn binary_op(const char *name)
{
    static const struct {
        const char *name;
        binary_fn fn;
    } OPS[] = {{"pow", nb_pow}, {"maximum", nb_maximum}, {"minimum", nb_minimum}};
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(OPS[i].name, name) == 0) return OPS[i].fn;
    return NULL;
}

/* The shape and indexing ops, which take a list of ints. */
static bool int_args_op(const char *name)
{
    static const char *const NAMES[] = {"narrow", "select", "slice", "squeeze", "squeeze_all",
                                        "unsqueeze", "permute", "expand", "repeat", "stack",
                                        "pad", "index_select", "gather", "scatter_add",
                                        "embedding", "split", "chunk", "layer_norm",
                                        "rms_norm", "group_norm",
                                        "scaled_dot_product_attention", "lstm_cell",
                                        "gru_cell", "lstm"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(NAMES[i], name) == 0) return true;
    return false;
}

/* Runs a shape or indexing op with its int arguments (see int_args_op).
 * split and chunk return their pieces joined along the dim again (cat),
 * so every piece's values and gradient are compared. */
static nb_tensor *run_int_args_op(nb_tape *tape, const char *op, nb_tensor **in, int n,
                                  const int64_t *a, int count, double value)
{
    int dims[NB_MAX_DIMS], pads[4];
    for (int i = 0; i < count && i < NB_MAX_DIMS; i++) dims[i] = (int)a[i];
    for (int i = 0; i < count && i < 4; i++) pads[i] = (int)a[i];
    if (strcmp(op, "narrow") == 0) return nb_narrow(tape, in[0], (int)a[0], a[1], a[2]);
    if (strcmp(op, "select") == 0) return nb_select(tape, in[0], (int)a[0], a[1]);
    if (strcmp(op, "slice") == 0) return nb_slice(tape, in[0], (int)a[0], a[1], a[2], a[3]);
    if (strcmp(op, "squeeze") == 0) return nb_squeeze(tape, in[0], (int)a[0]);
    if (strcmp(op, "squeeze_all") == 0) return nb_squeeze_all(tape, in[0]);
    if (strcmp(op, "unsqueeze") == 0) return nb_unsqueeze(tape, in[0], (int)a[0]);
    if (strcmp(op, "permute") == 0) return nb_permute(tape, in[0], count, dims);
    if (strcmp(op, "expand") == 0) return nb_expand(tape, in[0], count, a);
    if (strcmp(op, "repeat") == 0) return nb_repeat(tape, in[0], count, a);
    if (strcmp(op, "stack") == 0) return nb_stack(tape, n, in, (int)a[0]);
    if (strcmp(op, "pad") == 0) return nb_pad(tape, in[0], count, pads, value);
    if (strcmp(op, "index_select") == 0) return nb_index_select(tape, in[0], (int)a[0], in[1]);
    if (strcmp(op, "gather") == 0) return nb_gather(tape, in[0], (int)a[0], in[1]);
    if (strcmp(op, "scatter_add") == 0) return nb_scatter_add(tape, in[0], (int)a[0], in[1], in[2]);
    if (strcmp(op, "embedding") == 0) {
        nb_embedding_params p = {(int)a[1], a[0] != 0};
        return nb_embedding(tape, in[0], in[1], &p);
    }
    if (strcmp(op, "layer_norm") == 0 || strcmp(op, "rms_norm") == 0) {
        /* a: affine bits (1 weight, 2 bias), then normalized_shape */
        nb_layer_norm_params p = {count - 1, {0}, value};
        for (int d = 1; d < count; d++) p.shape[d - 1] = a[d];
        nb_tensor *weight = a[0] & 1 ? in[1] : NULL, *bias = a[0] & 2 ? in[n - 1] : NULL;
        return op[0] == 'l' ? nb_layer_norm(tape, in[0], weight, bias, &p)
                            : nb_rms_norm(tape, in[0], weight, &p);
    }
    if (strcmp(op, "group_norm") == 0)
        return nb_group_norm(tape, in[0], (int)a[0], n == 3 ? in[1] : NULL, n == 3 ? in[2] : NULL, value);
    if (strcmp(op, "scaled_dot_product_attention") == 0) {
        /* a: is_causal, then whether a mask (the fourth input) is given */
        const nb_attention_params p = {value, a[0] != 0};
        return nb_scaled_dot_product_attention_ex(tape, in[0], in[1], in[2], n > 3 ? in[3] : NULL, &p);
    }
    if (strcmp(op, "lstm_cell") == 0) {   /* h' and c' stacked: [2,B,H] */
        nb_tensor *next[2];
        if (nb_lstm_cell(tape, in[0], in[1], in[2], in[3], in[4], n > 5 ? in[5] : NULL,
                         n > 5 ? in[6] : NULL, &next[0], &next[1]) != NB_OK)
            return NULL;
        return nb_stack(tape, 2, next, 0);
    }
    if (strcmp(op, "lstm") == 0)
        return nb_lstm(tape, in[0], in[1], in[2], n > 3 ? in[3] : NULL, n > 3 ? in[4] : NULL);
    if (strcmp(op, "gru_cell") == 0)
        return nb_gru_cell(tape, in[0], in[1], in[2], in[3], n > 4 ? in[4] : NULL, n > 4 ? in[5] : NULL);
    nb_tensor *pieces[64];
    int got = strcmp(op, "split") == 0 ? nb_split(tape, in[0], a[0], (int)a[1], 64, pieces)
                                       : nb_chunk(tape, in[0], (int)a[0], (int)a[1], pieces);
    return got < 0 ? NULL : nb_cat(tape, got, pieces, (int)a[1]);
}

typedef struct reduce_fns {
    const char *name;
    nb_tensor *(*dim)(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
    nb_tensor *(*all)(nb_tape *tape, nb_tensor *x);
} reduce_fns;

/* The reductions over one dim or every element, by name; NULL for others. */
static const reduce_fns *reduce_op(const char *name)
{
    static const reduce_fns OPS[] = {
        {"amax", nb_amax, nb_amax_all}, {"amin", nb_amin, nb_amin_all},
        {"argmax", nb_argmax, nb_argmax_all}, {"argmin", nb_argmin, nb_argmin_all},
        {"prod", nb_prod, nb_prod_all}, {"norm", nb_norm, nb_norm_all}};
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
    return NULL;
}

int main(void)
{
    char word[32], dtype_name[8], op[48];
    if (scanf("%31s %7s %31s %47s", word, dtype_name, word, op) != 4) return 3;
    nb_dtype dtype = strcmp(dtype_name, "f32") == 0 ? NB_FLOAT32 : NB_FLOAT64;
    nb_conv2d_params conv = NB_CONV2D_PARAMS_DEFAULT;
    nb_max_pool2d_params max_pool = NB_MAX_POOL2D_PARAMS(1, 1);
    nb_avg_pool2d_params avg_pool = NB_AVG_POOL2D_PARAMS(1, 1);
    nb_batch_norm_params norm = NB_BATCH_NORM_PARAMS_DEFAULT;
    double dropout_p = 0.5;
    int dropout_training = 1;
    uint64_t dropout_seed = 0;
    nb_conv_transpose2d_params transpose = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 0};
    nb_conv1d_params conv1 = {0, 0, 0, 0};
    nb_interpolate_params resample = {{0, 0}, {0.0, 0.0}, 0, false};
    int adaptive[2] = {0, 0};
    int cat_dim = 0, has_bias = 0, affine = 1, has_running = 0, has_min = 0, has_max = 0;
    double scalar = 0.0, clamp_min = 0.0, clamp_max = 0.0, beta = 0.0, threshold = 0.0;
    int reduce_dim = 0, keepdim = 0, reduce_all = 0, correction = 0, n_dims = 0, int_count = 0;
    int dims[NB_MAX_DIMS] = {0};
    int64_t int_args[NB_MAX_DIMS] = {0};
    parity_loss loss;
    bool is_loss = parity_loss_read_header(op, &loss);
    if (is_loss) {
        /* arguments read */
    } else if (strcmp(op, "conv2d") == 0) {
        for (int a = 0; a < 2; a++) conv.stride[a] = read_int();
        for (int a = 0; a < 2; a++) conv.padding[a] = read_int();
        for (int a = 0; a < 2; a++) conv.dilation[a] = read_int();
        conv.groups = read_int();
        has_bias = read_int();
    } else if (strcmp(op, "conv_transpose2d") == 0) {
        for (int a = 0; a < 2; a++) transpose.stride[a] = read_int();
        for (int a = 0; a < 2; a++) transpose.padding[a] = read_int();
        for (int a = 0; a < 2; a++) transpose.output_padding[a] = read_int();
        for (int a = 0; a < 2; a++) transpose.dilation[a] = read_int();
        transpose.groups = read_int();
        has_bias = read_int();
    } else if (strcmp(op, "conv1d") == 0) {
        conv1.stride = read_int();
        conv1.padding = read_int();
        conv1.dilation = read_int();
        conv1.groups = read_int();
        has_bias = read_int();
    } else if (strcmp(op, "adaptive_avg_pool2d") == 0) {
        adaptive[0] = read_int();
        adaptive[1] = read_int();
    } else if (strcmp(op, "interpolate") == 0) {
        for (int a = 0; a < 2; a++) resample.size[a] = read_int();
        for (int a = 0; a < 2; a++) resample.scale_factor[a] = read_double();
        resample.mode = read_int();
        resample.align_corners = read_int();
    } else if (strcmp(op, "max_pool2d") == 0) {
        for (int a = 0; a < 2; a++) max_pool.kernel[a] = read_int();
        for (int a = 0; a < 2; a++) max_pool.stride[a] = read_int();
        for (int a = 0; a < 2; a++) max_pool.padding[a] = read_int();
        for (int a = 0; a < 2; a++) max_pool.dilation[a] = read_int();
        max_pool.ceil_mode = read_int();
    } else if (strcmp(op, "avg_pool2d") == 0) {
        for (int a = 0; a < 2; a++) avg_pool.kernel[a] = read_int();
        for (int a = 0; a < 2; a++) avg_pool.stride[a] = read_int();
        for (int a = 0; a < 2; a++) avg_pool.padding[a] = read_int();
        avg_pool.ceil_mode = read_int();
        avg_pool.exclude_pad = !read_int();   /* the header carries torch's count_include_pad */
        avg_pool.divisor_override = read_int();
    } else if (strcmp(op, "batch_norm") == 0) {
        norm.training = read_int();
        norm.momentum = read_double();
        norm.eps = read_double();
        affine = read_int();
        has_running = read_int();
    } else if (strcmp(op, "dropout") == 0) {
        dropout_p = read_double();
        dropout_training = read_int();
        dropout_seed = (uint64_t)read_int();
    } else if (strcmp(op, "cat") == 0) {
        cat_dim = read_int();
    } else if (strcmp(op, "add_scalar") == 0 || strcmp(op, "mul_scalar") == 0 ||
               strcmp(op, "pow_scalar") == 0) {
        scalar = read_double();
    } else if (strcmp(op, "logsumexp") == 0 || strcmp(op, "max_dim") == 0 ||
               strcmp(op, "min_dim") == 0 || reduce_op(op)) {
        reduce_dim = read_int();
        keepdim = read_int();
        reduce_all = reduce_op(op) && read_int();
    } else if (strcmp(op, "var") == 0 || strcmp(op, "std") == 0) {
        reduce_dim = read_int();
        correction = read_int();
        keepdim = read_int();
        reduce_all = read_int();
    } else if (strcmp(op, "cumsum") == 0) {
        reduce_dim = read_int();
    } else if (strcmp(op, "sum_dims") == 0 || strcmp(op, "mean_dims") == 0) {
        keepdim = read_int();
        n_dims = read_int();
        if (n_dims < 0 || n_dims > NB_MAX_DIMS) return 3;
        for (int k = 0; k < n_dims; k++) dims[k] = read_int();
    } else if (strcmp(op, "softplus") == 0) {
        beta = read_double();
        threshold = read_double();
    } else if (strcmp(op, "elu") == 0 || strcmp(op, "gelu") == 0) {
        scalar = read_double();
    } else if (strcmp(op, "hardtanh") == 0) {
        clamp_min = read_double();
        clamp_max = read_double();
    } else if (strcmp(op, "clamp") == 0) {
        has_min = read_int();
        clamp_min = read_double();
        has_max = read_int();
        clamp_max = read_double();
    } else if (int_args_op(op)) {
        int_count = read_int();
        if (int_count < 0 || int_count > NB_MAX_DIMS) return 3;
        for (int i = 0; i < int_count; i++) int_args[i] = read_int();
        if (strcmp(op, "pad") == 0 || strstr(op, "norm") || strstr(op, "attention"))
            scalar = read_double();
    } else if (!unary_op(op) && !binary_op(op) && strcmp(op, "where") != 0) {
        fprintf(stderr, "torch_parity_driver: unknown op %s\n", op);
        return 3;
    }

    if (scanf("%31s", word) != 1) return 3;
    unsigned index_inputs = 0;
    if (strcmp(word, "index_inputs") == 0) {
        index_inputs = (unsigned)read_int();
        if (scanf("%31s", word) != 1) return 3;
    }
    int n = read_int();
    if (n < 0 || n > MAX_INPUTS) return 3;
    nb_tensor *inputs[MAX_INPUTS];
    const nb_op *descriptor = nb_op_find(op);
    if (descriptor) index_inputs |= descriptor->index_inputs;
    for (int i = 0; i < n; i++) {
        bool index = index_inputs >> i & 1u;
        inputs[i] = read_tensor(dtype);
        if (index) inputs[i] = as_index(inputs[i]);
        else nb_tensor_set_requires_grad(inputs[i], true);
    }
    if (has_running) {
        norm.running_mean = read_tensor(dtype);
        norm.running_var = read_tensor(dtype);
    }
    if (is_loss) parity_loss_read_tensors(&loss, dtype);
    nb_tensor *seed = read_tensor(dtype);

    nb_tape *tape = nb_tape_new();
    nb_tensor *y = NULL;
    if (is_loss) y = parity_loss_apply(tape, &loss, inputs, n);
    else if (strcmp(op, "conv2d") == 0) y = nb_conv2d(tape, inputs[0], inputs[1], has_bias ? inputs[2] : NULL, &conv);
    else if (strcmp(op, "conv_transpose2d") == 0)
        y = nb_conv_transpose2d(tape, inputs[0], inputs[1], has_bias ? inputs[2] : NULL, &transpose);
    else if (strcmp(op, "conv1d") == 0)
        y = nb_conv1d(tape, inputs[0], inputs[1], has_bias ? inputs[2] : NULL, &conv1);
    else if (strcmp(op, "adaptive_avg_pool2d") == 0)
        y = nb_adaptive_avg_pool2d(tape, inputs[0], adaptive[0], adaptive[1]);
    else if (strcmp(op, "interpolate") == 0) y = nb_interpolate(tape, inputs[0], &resample);
    else if (strcmp(op, "max_pool2d") == 0) y = nb_max_pool2d(tape, inputs[0], &max_pool);
    else if (strcmp(op, "avg_pool2d") == 0) y = nb_avg_pool2d(tape, inputs[0], &avg_pool);
    else if (strcmp(op, "batch_norm") == 0)
        y = nb_batch_norm(tape, inputs[0], affine ? inputs[1] : NULL, affine ? inputs[2] : NULL, &norm);
    else if (strcmp(op, "dropout") == 0) y = nb_dropout(tape, inputs[0], dropout_p, dropout_training != 0, dropout_seed);
    else if (unary_op(op)) y = unary_op(op)(tape, inputs[0]);
    else if (binary_op(op)) y = binary_op(op)(tape, inputs[0], inputs[1]);
    else if (strcmp(op, "add_scalar") == 0) y = nb_add_scalar(tape, inputs[0], scalar);
    else if (strcmp(op, "mul_scalar") == 0) y = nb_mul_scalar(tape, inputs[0], scalar);
    else if (strcmp(op, "pow_scalar") == 0) y = nb_pow_scalar(tape, inputs[0], scalar);
    else if (strcmp(op, "logsumexp") == 0) y = nb_logsumexp(tape, inputs[0], reduce_dim, keepdim);
    else if (reduce_op(op))
        y = reduce_all ? reduce_op(op)->all(tape, inputs[0])
                       : reduce_op(op)->dim(tape, inputs[0], reduce_dim, keepdim);
    else if (strcmp(op, "max_dim") == 0) y = nb_max_dim(tape, inputs[0], reduce_dim, keepdim, NULL);
    else if (strcmp(op, "min_dim") == 0) y = nb_min_dim(tape, inputs[0], reduce_dim, keepdim, NULL);
    else if (strcmp(op, "var") == 0)
        y = reduce_all ? nb_var_all(tape, inputs[0], correction)
                       : nb_var(tape, inputs[0], reduce_dim, correction, keepdim);
    else if (strcmp(op, "std") == 0)
        y = reduce_all ? nb_std_all(tape, inputs[0], correction)
                       : nb_std(tape, inputs[0], reduce_dim, correction, keepdim);
    else if (strcmp(op, "cumsum") == 0) y = nb_cumsum(tape, inputs[0], reduce_dim);
    else if (strcmp(op, "sum_dims") == 0) y = nb_sum_dims(tape, inputs[0], n_dims, dims, keepdim);
    else if (strcmp(op, "mean_dims") == 0) y = nb_mean_dims(tape, inputs[0], n_dims, dims, keepdim);
    else if (strcmp(op, "where") == 0) y = nb_where(tape, inputs[0], inputs[1], inputs[2]);
    else if (strcmp(op, "softplus") == 0) y = nb_softplus(tape, inputs[0], beta, threshold);
    else if (strcmp(op, "elu") == 0) y = nb_elu(tape, inputs[0], scalar);
    else if (strcmp(op, "gelu") == 0) y = nb_gelu(tape, inputs[0], (nb_gelu_approximate)scalar);
    else if (strcmp(op, "hardtanh") == 0) y = nb_hardtanh(tape, inputs[0], clamp_min, clamp_max);
    else if (strcmp(op, "clamp") == 0)
        y = nb_clamp(tape, inputs[0], has_min ? &clamp_min : NULL, has_max ? &clamp_max : NULL);
    else if (int_args_op(op)) y = run_int_args_op(tape, op, inputs, n, int_args, int_count, scalar);
    else y = nb_cat(tape, n, inputs, cat_dim);

    int status = 0;
    if (!y) {
        printf("error %s\n", nb_tape_error(tape));
        status = 2;
    } else {
        nb_tensor *arena_seed = nb_tape_tensor(tape, dtype, y->ndim, y->shape, NULL);
        if (seed->numel != y->numel) {
            /* The caller expected a rejection: report the output only. */
            print_tensor("output", y);
        } else if (!y->requires_grad) {
            print_tensor("output", y);
            for (int i = 0; i < n; i++) printf("grad %d none\n", i);
        } else if (!arena_seed || nb_tensor_copy(arena_seed, seed) != NB_OK ||
                   nb_backward(tape, y, arena_seed) != NB_OK) {
            printf("error backward: %s\n", nb_last_error());
            status = 2;
        } else {
            print_tensor("output", y);
            for (int i = 0; i < n; i++) {
                char label[32];
                snprintf(label, sizeof label, "grad %d", i);
                if (inputs[i]->grad) print_tensor(label, inputs[i]->grad);
                else printf("%s none\n", label);
            }
            if (has_running) {
                print_tensor("running_mean", norm.running_mean);
                print_tensor("running_var", norm.running_var);
            }
        }
    }
    nb_tape_free(tape);
    for (int i = 0; i < n; i++) nb_tensor_free(inputs[i]);
    nb_tensor_free(norm.running_mean);
    nb_tensor_free(norm.running_var);
    if (is_loss) parity_loss_free(&loss);
    nb_tensor_free(seed);
    return status;
}
