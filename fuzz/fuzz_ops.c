/* Fuzz target: every registered op (nb_op_at) through nb_apply and
 * nb_backward, with random arity, dtypes, ranks, shapes, values (NaN, Inf,
 * huge, tiny), int32 label tensors, aliased, persistent, NULL inputs and
 * random params bytes. Each run must give a well-formed output (and
 * gradients) or a clean error on the tape; never a crash or a sanitizer
 * report.
 *
 * Input layout (fuzz_reader returns 0 past the end):
 *   op index, flags, input-count selector,
 *   per input: kind byte, ndim byte, ndim dim bytes,
 *   op->params_size params bytes, then (batch_norm only) a running-stats
 *   mode byte and two tensor descriptions, (cross_entropy, nll_loss, the
 *   binary cross-entropies) a weight mode byte and its tensor descriptions,
 *   and the rest: a stream of value bytes used cyclically for every element.
 * Setting NABLA_FUZZ_WRITE_SEEDS=<dir> writes one seed per gradcheck sample
 * of every op into <dir> (fuzz/corpus/ops was made that way) and exits. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fuzz/fuzz_common.h"
#include "ops/activations/dropout.h"
#include "ops/conv2d/path.h"
#include "ops/meprop/meprop.h"
#include "ops/reductions/reduce.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    MAX_INPUTS = 8,
    MAX_TENSOR_ELEMENTS = 1024,    /* keeps each run fast under ASan */
    MAX_TOTAL_ELEMENTS = 4096,
    MAX_SPAN = 1 << 16,            /* product of the non-zero dims */
    MAX_STATS = 2
};

/* Flag bits of the second byte. */
enum {
    FLAG_NO_GRAD = 1, FLAG_ANOMALY = 2, FLAG_NULL_SEED = 4, FLAG_TWICE = 8, FLAG_RECORDED = 16,
    /* Input kind bits. */
    KIND_DTYPE = 3, KIND_REQUIRES_GRAD = 4, KIND_PERSISTENT = 8, KIND_ALIAS = 16, KIND_NULL = 32
};

/* reshape's private params (ops/shape/reshape.c), mirrored only to keep its bool
 * valid; used when the sizes agree. */
typedef struct reshape_params_mirror {
    int ndim;
    bool shape_missing;
    int64_t shape[NB_MAX_DIMS];
} reshape_params_mirror;

/* ops/shape/squeeze.c's params. */
typedef struct squeeze_params_mirror {
    int dim;
    bool all;
} squeeze_params_mirror;

typedef struct run_state {
    fuzz_reader reader;
    const uint8_t *values;   /* the value stream */
    size_t value_count, value_next;
    nb_tape *tape;
    nb_tensor *owned[MAX_INPUTS + MAX_STATS];   /* persistent tensors to free */
    int owned_count;
    nb_tensor *unfilled[MAX_INPUTS + MAX_STATS]; /* filled once the value stream is known */
    int unfilled_count;
    int64_t total_elements;
} run_state;

static double float_value(run_state *s)
{
    static const double special[16] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e-30, -1e-30, 1e30,
                                       -1e30, FLT_MAX, -FLT_MAX, 4.9e-324, 88.8, -88.8, 1e300, 0.5};
    if (s->value_count == 0) {
        double k = (double)s->value_next++;
        return 2.0 * sin(0.7 * k + 0.3);
    }
    uint8_t b = s->values[s->value_next++ % s->value_count];
    return b >= 224 ? special[b % 16] : ((double)b - 112.0) / 16.0;
}

/* Label bytes: 240 and up pick one of these (-100 is PyTorch's ignore
 * index), others give -1..10. */
static const double SPECIAL_INTS[16] = {INT32_MIN, INT32_MAX, -100, 1000, 10, 11, 12, 255,
                                        256, -2, 65536, 9, 7, 5, 3, 1};

static double int_value(run_state *s)
{
    if (s->value_count == 0) return (double)(s->value_next++ % 3);
    uint8_t b = s->values[s->value_next++ % s->value_count];
    return b >= 240 ? SPECIAL_INTS[b % 16] : (double)(b % 12) - 1.0;
}

static int64_t decode_dim(uint8_t b) { return b < 200 ? b % 8 : b - 200; }

/* A tensor from a kind byte and a shape description, or NULL when the
 * shape is too big to be worth the time (the whole input is then skipped
 * through *skip) or the kind asks for a NULL input. */
static nb_tensor *read_tensor(run_state *s, nb_dtype float_dtype, uint8_t kind, bool *skip)
{
    int ndim = fuzz_byte(&s->reader) % (NB_MAX_DIMS + 1);
    /* span ignores zero dims: loops over the other dims of an empty
     * tensor can still take time (softmax over dim 0 of [0,50,50,50,50]
     * walks 6 million empty rows), which is not worth fuzzing for. */
    int64_t shape[NB_MAX_DIMS], numel = 1, span = 1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = decode_dim(fuzz_byte(&s->reader));
        numel *= shape[d];
        if (numel > MAX_TENSOR_ELEMENTS) numel = MAX_TENSOR_ELEMENTS + 1;
        span *= shape[d] ? shape[d] : 1;
        if (span > MAX_SPAN) span = MAX_SPAN + 1;
    }
    s->total_elements += numel;
    if (numel > MAX_TENSOR_ELEMENTS || span > MAX_SPAN || s->total_elements > MAX_TOTAL_ELEMENTS) {
        *skip = true;
        return NULL;
    }
    if (kind & KIND_NULL) return NULL;
    int code = kind & KIND_DTYPE;
    nb_dtype dtype = code == 0 ? NB_FLOAT32 : code == 1 ? NB_FLOAT64 : code == 2 ? NB_INT32
                                                                                 : float_dtype;
    nb_tensor *t;
    if (kind & KIND_PERSISTENT) {
        t = nb_tensor_new(dtype, ndim, shape);
        if (t) s->owned[s->owned_count++] = t;
    } else {
        t = nb_tape_tensor(s->tape, dtype, ndim, shape, NULL);
    }
    if (!t) return NULL; /* out of memory in the bounded allocator */
    nb_tensor_set_requires_grad(t, kind & KIND_REQUIRES_GRAD);
    s->unfilled[s->unfilled_count++] = t;
    return t;
}

/* The value stream is what follows the structure bytes, so tensors get
 * their values after everything else has been read. */
static void fill_tensors(run_state *s)
{
    s->values = s->reader.data + s->reader.position;
    s->value_count = s->reader.position < s->reader.size ? s->reader.size - s->reader.position : 0;
    for (int k = 0; k < s->unfilled_count; k++) {
        nb_tensor *t = s->unfilled[k];
        for (int64_t i = 0; i < t->numel; i++)
            nb_tensor_set(t, i, t->dtype == NB_INT32 ? int_value(s) : float_value(s));
    }
}

static void set_bool(unsigned char *params, size_t offset, uint8_t raw)
{
    bool value = raw & 1;
    memcpy(params + offset, &value, sizeof value);
}

/* Ops whose params hold only ints and doubles: random bytes are valid
 * input for them (their shape rules must refuse what makes no sense). */
static bool plain_params(const char *name)
{
    static const char *const NAMES[] = {
        "cat", "add_scalar", "mul_scalar", "pow", "elu", "hardtanh", "gelu", "leaky_relu",
        "softmax", "log_softmax", "flatten", "transpose", "narrow", "select", "slice",
        "unsqueeze", "permute", "expand", "repeat", "stack", "pad", "index_select", "gather",
        "scatter_add", "layer_norm", "rms_norm", "group_norm", "cumsum", "softplus",
        "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "margin_ranking_loss",
        "cosine_similarity",
        "conv_transpose2d", "conv1d", "adaptive_avg_pool2d", "split", "chunk",
    };
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(NAMES[i], name) == 0) return true;
    return false;
}

/* A persistent tensor that params point at: a dtype byte and a shape. */
static nb_tensor *read_params_tensor(run_state *s, bool *skip)
{
    return read_tensor(s, NB_FLOAT32, (fuzz_byte(&s->reader) & KIND_DTYPE) | KIND_PERSISTENT, skip);
}

/* Random bytes are fine for ints and doubles (ops must validate them) but
 * not for bools and pointers, which no caller could produce: those fields
 * are made valid here, by op name. */
/* The ops whose params are nb_reduce_params (two bools). */
static bool reduce_params_op(const char *name)
{
    static const char *const NAMES[] = {"sum", "mean", "logsumexp", "amax", "amin", "argmax",
                                        "argmin", "max_dim", "min_dim", "prod", "norm"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(name, NAMES[i]) == 0) return true;
    return false;
}

static bool fix_params(run_state *s, const nb_op *op, unsigned char *params, bool *skip)
{
    const char *name = op->name;
    if (strcmp(name, "max_pool2d") == 0 && op->params_size == sizeof(nb_max_pool2d_params)) {
        set_bool(params, offsetof(nb_max_pool2d_params, ceil_mode), params[offsetof(nb_max_pool2d_params, ceil_mode)]);
    } else if (strcmp(name, "avg_pool2d") == 0 && op->params_size == sizeof(nb_avg_pool2d_params)) {
        set_bool(params, offsetof(nb_avg_pool2d_params, ceil_mode), params[offsetof(nb_avg_pool2d_params, ceil_mode)]);
        set_bool(params, offsetof(nb_avg_pool2d_params, exclude_pad),
                 params[offsetof(nb_avg_pool2d_params, exclude_pad)]);
    } else if (strcmp(name, "dropout") == 0 && op->params_size == sizeof(dropout_params)) {
        set_bool(params, offsetof(dropout_params, training), params[offsetof(dropout_params, training)]);
    } else if (reduce_params_op(name) && op->params_size == sizeof(nb_reduce_params)) {
        set_bool(params, offsetof(nb_reduce_params, keepdim), params[offsetof(nb_reduce_params, keepdim)]);
        set_bool(params, offsetof(nb_reduce_params, all), params[offsetof(nb_reduce_params, all)]);
    } else if ((strcmp(name, "var") == 0 || strcmp(name, "std") == 0) &&
               op->params_size == sizeof(nb_variance_params)) {
        size_t reduce = offsetof(nb_variance_params, reduce);
        set_bool(params, reduce + offsetof(nb_reduce_params, keepdim),
                 params[reduce + offsetof(nb_reduce_params, keepdim)]);
        set_bool(params, reduce + offsetof(nb_reduce_params, all),
                 params[reduce + offsetof(nb_reduce_params, all)]);
    } else if ((strcmp(name, "sum_dims") == 0 || strcmp(name, "mean_dims") == 0) &&
               op->params_size == sizeof(nb_reduce_dims_params)) {
        set_bool(params, offsetof(nb_reduce_dims_params, keepdim),
                 params[offsetof(nb_reduce_dims_params, keepdim)]);
    } else if (strcmp(name, "reshape") == 0 && op->params_size == sizeof(reshape_params_mirror)) {
        set_bool(params, offsetof(reshape_params_mirror, shape_missing),
                 params[offsetof(reshape_params_mirror, shape_missing)]);
    } else if (strcmp(name, "batch_norm") == 0 && op->params_size == sizeof(nb_batch_norm_params)) {
        nb_batch_norm_params p;
        memcpy(&p, params, sizeof p);
        set_bool((unsigned char *)&p, offsetof(nb_batch_norm_params, training),
                 params[offsetof(nb_batch_norm_params, training)]);
        /* Mode: 0 none, 1 both, 2 mean only, 3 one tensor for both. */
        uint8_t mode = fuzz_byte(&s->reader) % 4;
        p.running_mean = p.running_var = NULL;
        for (int i = 0; i < MAX_STATS && mode; i++) {
            nb_tensor *t = read_params_tensor(s, skip);
            if (i == 0) p.running_mean = t;
            else if (mode != 2) p.running_var = mode == 3 ? p.running_mean : t;
        }
        memcpy(params, &p, sizeof p);
    } else if (strcmp(name, "conv2d") == 0 && op->params_size == sizeof(nb_conv2d_node_params)) {
        /* Mostly valid activation codes (else nearly every conv2d run would
         * stop at the shape rule), one in three unknown to reach that error. */
        int activation = params[offsetof(nb_conv2d_node_params, activation)] % 3;
        memcpy(params + offsetof(nb_conv2d_node_params, activation), &activation, sizeof activation);
        /* The fused max-pool: its window's ints stay random (validated). */
        size_t pool = offsetof(nb_conv2d_node_params, pool);
        set_bool(params, offsetof(nb_conv2d_node_params, pooled),
                 params[offsetof(nb_conv2d_node_params, pooled)]);
        set_bool(params, pool + offsetof(nb_max_pool2d_params, ceil_mode),
                 params[pool + offsetof(nb_max_pool2d_params, ceil_mode)]);
    } else if (strcmp(name, "kl_div") == 0 && op->params_size == sizeof(nb_kl_div_params)) {
        set_bool(params, offsetof(nb_kl_div_params, log_target), params[offsetof(nb_kl_div_params, log_target)]);
    } else if ((strcmp(name, "cross_entropy") == 0 || strcmp(name, "nll_loss") == 0) &&
               op->params_size == sizeof(nb_cross_entropy_params)) {
        nb_cross_entropy_params p;
        memcpy(&p, params, sizeof p);
        set_bool((unsigned char *)&p, offsetof(nb_cross_entropy_params, has_ignore_index),
                 params[offsetof(nb_cross_entropy_params, has_ignore_index)]);
        /* A weight byte: bit 0 gives a class-weight tensor (any shape). */
        p.weight = fuzz_byte(&s->reader) & 1 ? read_params_tensor(s, skip) : NULL;
        memcpy(params, &p, sizeof p);
    } else if ((strcmp(name, "binary_cross_entropy") == 0 ||
                strcmp(name, "binary_cross_entropy_with_logits") == 0) &&
               op->params_size == sizeof(nb_bce_params)) {
        nb_bce_params p;
        memcpy(&p, params, sizeof p);
        /* A weight byte: bit 0 a weight, bit 1 a pos_weight, bit 2 the same tensor for both. */
        uint8_t mode = fuzz_byte(&s->reader);
        p.weight = p.pos_weight = NULL;
        for (int i = 0; i < MAX_STATS; i++) {
            if (!(mode >> i & 1)) continue;
            if (i == 1 && (mode & 4) && p.weight) {
                p.pos_weight = p.weight;
                continue;
            }
            nb_tensor *t = read_params_tensor(s, skip);
            if (i == 0) p.weight = t;
            else p.pos_weight = t;
        }
        memcpy(params, &p, sizeof p);
    } else if (strcmp(name, "clamp") == 0 && op->params_size == sizeof(nb_clamp_params)) {
        set_bool(params, offsetof(nb_clamp_params, has_min), params[offsetof(nb_clamp_params, has_min)]);
        set_bool(params, offsetof(nb_clamp_params, has_max), params[offsetof(nb_clamp_params, has_max)]);
    } else if (strcmp(name, "squeeze") == 0 && op->params_size == sizeof(squeeze_params_mirror)) {
        set_bool(params, offsetof(squeeze_params_mirror, all), params[offsetof(squeeze_params_mirror, all)]);
    } else if (strcmp(name, "embedding") == 0 && op->params_size == sizeof(nb_embedding_params)) {
        set_bool(params, offsetof(nb_embedding_params, has_padding_idx),
                 params[offsetof(nb_embedding_params, has_padding_idx)]);
    } else if (strcmp(name, "scaled_dot_product_attention") == 0 &&
               op->params_size == sizeof(nb_attention_params)) {
        set_bool(params, offsetof(nb_attention_params, is_causal),
                 params[offsetof(nb_attention_params, is_causal)]);
    } else if (strcmp(name, "interpolate") == 0 && op->params_size == sizeof(nb_interpolate_params)) {
        set_bool(params, offsetof(nb_interpolate_params, align_corners),
                 params[offsetof(nb_interpolate_params, align_corners)]);
    } else if (op->params_size > 0 && !plain_params(name)) {
        return false; /* a params struct we do not know: bools or pointers may hide in it */
    }
    return true;
}

/* Reads every byte of t, so AddressSanitizer sees a buffer shorter than
 * the shape says; checks the header is coherent. */
static void check_tensor(const nb_tensor *t)
{
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= NB_MAX_DIMS);
    FUZZ_CHECK(t->dtype == NB_FLOAT32 || t->dtype == NB_FLOAT64 || t->dtype == NB_INT32);
    int64_t numel = fuzz_numel(t->ndim, t->shape);
    FUZZ_CHECK(numel >= 0 && numel == t->numel);
    const unsigned char *bytes = t->data;
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)numel * nb_dtype_size(t->dtype); i++) sum += bytes[i];
    (void)sum;
}

/* nb_grad with NB_GRAD_CREATE_GRAPH through the op's backward_ops, then a
 * plain backward of the recorded gradients' sum: each result has its
 * input's shape and dtype, or the call fails with a message. */
static void run_recorded(run_state *s, nb_tensor *out, int n, nb_tensor *const *inputs,
                         nb_tensor *seed)
{
    nb_tensor *wrt[MAX_INPUTS], *grads[MAX_INPUTS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad && inputs[i]->dtype != NB_INT32) wrt[k++] = inputs[i];
    if (k == 0) return;
    nb_clear_error();
    int status = nb_grad(s->tape, 1, &out, seed ? &seed : NULL, k, wrt, grads,
                         NB_GRAD_CREATE_GRAPH | NB_GRAD_ALLOW_UNUSED);
    if (status != NB_OK) {
        FUZZ_CHECK(status < 0 && nb_last_error()[0] != '\0');
        return;
    }
    nb_tensor *total = NULL;
    for (int j = 0; j < k; j++) {
        if (!grads[j]) continue;
        FUZZ_CHECK(grads[j]->dtype == wrt[j]->dtype && nb_shape_equal(grads[j], wrt[j]));
        check_tensor(grads[j]);
        if (!grads[j]->requires_grad) continue;
        nb_tensor *part = nb_sum(s->tape, grads[j]);
        total = total && part ? nb_add(s->tape, total, part) : part;
    }
    if (total && total->requires_grad) {
        nb_clear_error();
        status = nb_backward(s->tape, total, NULL);
        FUZZ_CHECK(status == NB_OK || (status < 0 && nb_last_error()[0] != '\0'));
    }
}

static void run_backward(run_state *s, const nb_op *op, nb_tensor *out, int n,
                         nb_tensor *const *inputs, uint8_t flags)
{
    nb_tensor *seed = NULL;
    if (!(flags & FLAG_NULL_SEED) || out->numel != 1) {
        seed = nb_tape_tensor(s->tape, out->dtype, out->ndim, out->shape, NULL);
        if (!seed) return;
        for (int64_t i = 0; i < seed->numel; i++) nb_tensor_set(seed, i, float_value(s));
    }
    if (flags & FLAG_RECORDED) {
        run_recorded(s, out, n, inputs, seed);
        return;
    }
    int sweeps = flags & FLAG_TWICE ? 2 : 1;
    for (int sweep = 0; sweep < sweeps; sweep++) {
        nb_clear_error();
        int status = nb_backward(s->tape, out, seed);
        if (status != NB_OK) {
            FUZZ_CHECK(status < 0 && nb_last_error()[0] != '\0');
            return;
        }
        for (int i = 0; i < n; i++) {
            const nb_tensor *x = inputs[i];
            bool index = i < 32 && (op->index_inputs >> i) & 1u;
            if (!x || !x->requires_grad || index) continue;
            FUZZ_CHECK(x->grad != NULL);
            FUZZ_CHECK(x->grad->dtype == x->dtype && nb_shape_equal(x->grad, x));
            check_tensor(x->grad);
        }
    }
}

static void run(run_state *s)
{
    int count = nb_op_count();
    const nb_op *op = nb_op_at(fuzz_byte(&s->reader) % count);
    uint8_t flags = fuzz_byte(&s->reader);
    uint8_t selector = fuzz_byte(&s->reader);
    int range = op->max_inputs < 0 ? 4 : op->max_inputs - op->min_inputs;
    int n = selector >= 240 ? selector % (MAX_INPUTS + 1) : op->min_inputs + selector % (range + 1);
    if (n > MAX_INPUTS) n = MAX_INPUTS;

    nb_tape_set_grad_enabled(s->tape, !(flags & FLAG_NO_GRAD));
    nb_tape_set_anomaly_mode(s->tape, flags & FLAG_ANOMALY);
    nb_tensor *inputs[MAX_INPUTS] = {0};
    bool skip = false;
    nb_dtype float_dtype = NB_FLOAT32;
    for (int i = 0; i < n && !skip; i++) {
        uint8_t kind = fuzz_byte(&s->reader);
        if ((kind & KIND_ALIAS) && i > 0 && !(kind & KIND_NULL)) {
            inputs[i] = inputs[i - 1];
            continue;
        }
        inputs[i] = read_tensor(s, float_dtype, kind, &skip);
        if (i == 0 && inputs[0] && inputs[0]->dtype != NB_INT32) float_dtype = inputs[0]->dtype;
    }
    _Alignas(16) unsigned char params[NB_MAX_PARAMS_SIZE] = {0};
    size_t params_size = op->params_size <= NB_MAX_PARAMS_SIZE ? op->params_size : 0;
    for (size_t i = 0; i < params_size; i++) params[i] = fuzz_byte(&s->reader);
    if (skip || !fix_params(s, op, params, &skip) || skip) return;

    fill_tensors(s);
    nb_clear_error();
    nb_tensor *out = nb_apply(s->tape, op, n, inputs, params_size ? params : NULL);
    if (!out) {
        const char *error = nb_tape_error(s->tape);
        FUZZ_CHECK(error != NULL && error[0] != '\0');
        /* Sticky: the tape refuses further ops and keeps the first message. */
        FUZZ_CHECK(nb_apply(s->tape, op, n, inputs, params_size ? params : NULL) == NULL);
        FUZZ_CHECK(nb_tape_error(s->tape) == error || strcmp(nb_tape_error(s->tape), error) == 0);
        return;
    }
    FUZZ_CHECK(nb_tape_error(s->tape) == NULL);
    check_tensor(out);
    if (out->requires_grad) run_backward(s, op, out, n, inputs, flags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_state s = {.reader = {data, size, 0}};
    s.tape = nb_tape_new();
    if (!s.tape) return 0;
    run(&s);
    nb_tape_free(s.tape);
    for (int i = 0; i < s.owned_count; i++) nb_tensor_free(s.owned[i]);
    return 0;
}

/* ---- seeds from the gradcheck samples ------------------------------------- */

/* The byte int_value turns into v (v + 1, or a special value's). */
static uint8_t encode_int(double v)
{
    if (v >= -1.0 && v <= 10.0) return (uint8_t)(v + 1.0);
    for (int i = 0; i < 16; i++)
        if (SPECIAL_INTS[i] == v) return (uint8_t)(240 + i);
    return 0;
}

static uint8_t encode_float(double v)
{
    double b = round(v * 16.0) + 112.0;
    return (uint8_t)(b < 0 ? 0 : b > 223 ? 223 : b);
}

static void put_tensor_shape(uint8_t *out, size_t *used, const nb_tensor *t)
{
    out[(*used)++] = (uint8_t)t->ndim;
    for (int d = 0; d < t->ndim; d++)
        out[(*used)++] = (uint8_t)(t->shape[d] < 8 ? t->shape[d] : 200 + (t->shape[d] < 55 ? t->shape[d] : 55));
}

/* What read_params_tensor reads back: float64 and the shape. */
static void put_params_tensor(uint8_t *out, size_t *used, const nb_tensor *t)
{
    out[(*used)++] = 1;
    put_tensor_shape(out, used, t);
}

static void write_seed(const char *dir, int op_index, int case_index, const nb_sample *sample)
{
    const nb_op *op = nb_op_at(op_index);
    uint8_t out[4096];
    size_t used = 0;
    out[used++] = (uint8_t)op_index;
    out[used++] = 0;
    out[used++] = (uint8_t)(sample->n_inputs - op->min_inputs);
    for (int i = 0; i < sample->n_inputs; i++) {
        const nb_tensor *t = sample->inputs[i];
        out[used++] = (uint8_t)((t->dtype == NB_INT32 ? 2 : 1) | (t->requires_grad ? KIND_REQUIRES_GRAD : 0));
        put_tensor_shape(out, &used, t);
    }
    size_t params_size = op->params_size <= NB_MAX_PARAMS_SIZE ? op->params_size : 0;
    memcpy(out + used, sample->params, params_size);
    used += params_size;
    if (strcmp(op->name, "batch_norm") == 0) {
        nb_batch_norm_params p;
        memcpy(&p, sample->params, sizeof p);
        out[used++] = p.running_mean ? 1 : 0;
        for (int i = 0; i < MAX_STATS && p.running_mean; i++)
            put_params_tensor(out, &used, i == 0 ? p.running_mean : p.running_var);
    }
    if (strcmp(op->name, "cross_entropy") == 0 || strcmp(op->name, "nll_loss") == 0) {
        nb_cross_entropy_params p;
        memcpy(&p, sample->params, sizeof p);
        out[used++] = p.weight ? 1 : 0;
        if (p.weight) put_params_tensor(out, &used, p.weight);
    }
    if (strncmp(op->name, "binary_cross_entropy", 20) == 0) {
        nb_bce_params p;
        memcpy(&p, sample->params, sizeof p);
        out[used++] = (uint8_t)((p.weight ? 1 : 0) | (p.pos_weight ? 2 : 0));
        if (p.weight) put_params_tensor(out, &used, p.weight);
        if (p.pos_weight) put_params_tensor(out, &used, p.pos_weight);
    }
    for (int i = 0; i < sample->n_inputs; i++) {
        const nb_tensor *t = sample->inputs[i];
        for (int64_t k = 0; k < t->numel && used < sizeof out; k++)
            out[used++] = t->dtype == NB_INT32 ? encode_int(nb_tensor_get(t, k)) : encode_float(nb_tensor_get(t, k));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%d", dir, op->name, case_index);
    if (fuzz_write_file(path, out, used) != 0) fprintf(stderr, "fuzz_ops: cannot write %s\n", path);
}

static void write_seeds(const char *dir)
{
    for (int i = 0; i < nb_op_count(); i++) {
        const nb_op *op = nb_op_at(i);
        nb_rng rng;
        nb_rng_seed(&rng, 1);
        for (int index = 0; op->sample && index < 16; index++) {
            nb_sample sample;
            memset(&sample, 0, sizeof sample);
            int produced = op->sample(index, &sample, &rng);
            if (produced > 0) write_seed(dir, i, index, &sample);
            nb_sample_release(&sample);
            if (produced <= 0) break;
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *seeds = getenv("NABLA_FUZZ_WRITE_SEEDS");
    if (seeds && *seeds) {
        write_seeds(seeds);
        exit(0);
    }
    fuzz_install_allocator((size_t)16 << 20, (size_t)512 << 20);
    nb_set_num_threads(2);
    return 0;
}
