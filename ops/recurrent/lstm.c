/* lstm: one LSTM layer over a whole sequence as one node (what PyTorch's
 * nn.LSTM runs per layer), batch first, zero initial state:
 *   gates_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,  [i, f, g, o]
 *   c_t = sig(f) c_{t-1} + sig(i) tanh(g),  h_t = sig(o) tanh(c_t)
 * x [B,T,I], W_ih [4H,I], W_hh [4H,H], b_ih and b_hh [4H] (both or
 * neither) -> h [B,T,H]. The same math as nb_lstm_cell step by step, but
 * the input projections of all T steps are one GEMM (B*T rows), and the
 * backward sweeps the steps in reverse with only h's product per step,
 * then forms dW_ih, dW_hh, the biases' and x's gradients as one GEMM or
 * sum each over all B*T rows. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "kernels/gemm.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/recurrent/recurrent.h"

enum { X, W_IH, W_HH, B_IH, B_HH };

typedef struct lstm_saved {
    void *gates;      /* [B,T,4H] after their activations */
    void *cells;      /* [B,T,H] c_t */
    void *tanh_c;     /* [B,T,H] tanh(c_t) */
} lstm_saved;

/* Step t's activations: gates rows [B] (stride gs) activated in place;
 * c_prev rows (stride ps: 0 with one row of zeros at t = 0, so the loop
 * has no branch and vectorises), c, tanh_c, h rows [B] of H (stride ss). */
NB_KERNEL_BODY void lstm_step_forward_body(float *restrict gates, int64_t gs,
                                           const float *restrict c_prev, int64_t ps, float *restrict c,
                                           float *restrict tanh_c, float *restrict h, int64_t ss,
                                           int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        float *g = gates + b * gs;
        for (int64_t j = 0; j < H; j++) {
            float in = sigmoid_branch_free(g[j]), forget = sigmoid_branch_free(g[H + j]);
            float cell = tanh_branch_free(g[2 * H + j]), output = sigmoid_branch_free(g[3 * H + j]);
            g[j] = in, g[H + j] = forget, g[2 * H + j] = cell, g[3 * H + j] = output;
            float c_next = forget * c_prev[b * ps + j] + in * cell, t = tanh_branch_free(c_next);
            c[b * ss + j] = c_next;
            tanh_c[b * ss + j] = t;
            h[b * ss + j] = output * t;
        }
    }
}

/* Step t's backward: dh = dout_t + dh_next, dc~ = dc_next + dh o (1 -
 * tanh^2 c); dgates rows (stride gs) = the pre-activation gradients;
 * dc_next [B,H] becomes dc~ f (the gradient reaching c_{t-1}). */
NB_KERNEL_BODY void lstm_step_backward_body(const float *restrict gates, int64_t gs,
                                            const float *restrict c_prev, int64_t ps,
                                            const float *restrict tanh_c,
                                            const float *restrict dout, int64_t ss,
                                            const float *restrict dh_next,
                                            float *restrict dc_next, float *restrict dgates,
                                            int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const float *g = gates + b * gs;
        float *d = dgates + b * gs;
        for (int64_t j = 0; j < H; j++) {
            float in = g[j], forget = g[H + j], cell = g[2 * H + j], output = g[3 * H + j];
            float t = tanh_c[b * ss + j], dh = dout[b * ss + j] + dh_next[b * H + j];
            float dct = dc_next[b * H + j] + dh * output * (1.0f - t * t);
            d[j] = dct * cell * in * (1.0f - in);
            d[H + j] = dct * c_prev[b * ps + j] * forget * (1.0f - forget);
            d[2 * H + j] = dct * in * (1.0f - cell * cell);
            d[3 * H + j] = dh * t * output * (1.0f - output);
            dc_next[b * H + j] = dct * forget;
        }
    }
}

#define STEP_FORWARD_ARGS float *gates, int64_t gs, const float *c_prev, int64_t ps, float *c, \
                          float *tanh_c, float *h, int64_t ss, int64_t B, int64_t H
#define STEP_BACKWARD_ARGS const float *gates, int64_t gs, const float *c_prev, int64_t ps, \
                           const float *tanh_c, const float *dout, int64_t ss, \
                           const float *dh_next, float *dc_next, float *dgates, int64_t B, \
                           int64_t H

NB_TARGET_AVX512 static void step_forward_avx512(STEP_FORWARD_ARGS)
{
    lstm_step_forward_body(gates, gs, c_prev, ps, c, tanh_c, h, ss, B, H);
}

NB_TARGET_AVX2 static void step_forward_avx2(STEP_FORWARD_ARGS)
{
    lstm_step_forward_body(gates, gs, c_prev, ps, c, tanh_c, h, ss, B, H);
}

static void step_forward_portable(STEP_FORWARD_ARGS)
{
    lstm_step_forward_body(gates, gs, c_prev, ps, c, tanh_c, h, ss, B, H);
}

NB_TARGET_AVX512 static void step_backward_avx512(STEP_BACKWARD_ARGS)
{
    lstm_step_backward_body(gates, gs, c_prev, ps, tanh_c, dout, ss, dh_next, dc_next, dgates, B, H);
}

NB_TARGET_AVX2 static void step_backward_avx2(STEP_BACKWARD_ARGS)
{
    lstm_step_backward_body(gates, gs, c_prev, ps, tanh_c, dout, ss, dh_next, dc_next, dgates, B, H);
}

static void step_backward_portable(STEP_BACKWARD_ARGS)
{
    lstm_step_backward_body(gates, gs, c_prev, ps, tanh_c, dout, ss, dh_next, dc_next, dgates, B, H);
}

typedef void (*step_forward_fn)(STEP_FORWARD_ARGS);
typedef void (*step_backward_fn)(STEP_BACKWARD_ARGS);

static const step_forward_fn STEP_FORWARD[NB_CPU_LEVELS] = {
    step_forward_portable, step_forward_avx2, step_forward_avx512};
static const step_backward_fn STEP_BACKWARD[NB_CPU_LEVELS] = {
    step_backward_portable, step_backward_avx2, step_backward_avx512};

/* The float64 references of the two step kernels. */
static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

static void step_forward_ref(double *gates, int64_t gs, const double *c_prev, int64_t ps,
                             double *c, double *tanh_c, double *h, int64_t ss, int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        double *g = gates + b * gs;
        for (int64_t j = 0; j < H; j++) {
            double in = sigmoid_ref(g[j]), forget = sigmoid_ref(g[H + j]);
            double cell = tanh(g[2 * H + j]), output = sigmoid_ref(g[3 * H + j]);
            g[j] = in, g[H + j] = forget, g[2 * H + j] = cell, g[3 * H + j] = output;
            double c_next = forget * c_prev[b * ps + j] + in * cell;
            c[b * ss + j] = c_next;
            tanh_c[b * ss + j] = tanh(c_next);
            h[b * ss + j] = output * tanh_c[b * ss + j];
        }
    }
}

static void step_backward_ref(const double *gates, int64_t gs, const double *c_prev, int64_t ps,
                              const double *tanh_c, const double *dout, int64_t ss,
                              const double *dh_next, double *dc_next, double *dgates, int64_t B,
                              int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const double *g = gates + b * gs;
        double *d = dgates + b * gs;
        for (int64_t j = 0; j < H; j++) {
            double in = g[j], forget = g[H + j], cell = g[2 * H + j], output = g[3 * H + j];
            double t = tanh_c[b * ss + j], dh = dout[b * ss + j] + dh_next[b * H + j];
            double dct = dc_next[b * H + j] + dh * output * (1.0 - t * t);
            d[j] = dct * cell * in * (1.0 - in);
            d[H + j] = dct * c_prev[b * ps + j] * forget * (1.0 - forget);
            d[2 * H + j] = dct * in * (1.0 - cell * cell);
            d[3 * H + j] = dh * t * output * (1.0 - output);
            dc_next[b * H + j] = dct * forget;
        }
    }
}

/* W_hh as the right operand of every step's product (op(W) [K,N]): float32
 * packs it once (kernels/gemm.h), float64 multiplies in place. */
typedef struct recurrent_weight {
    nb_sgemm_packed_b packed;
    bool trans;
    int64_t N, K;
    const void *w;
    int64_t ldw;
} recurrent_weight;

static int recurrent_weight_init(recurrent_weight *r, nb_op_ctx *ctx, const nb_tensor *like,
                                 int64_t M, bool trans, int64_t N, int64_t K, const void *w,
                                 int64_t ldw)
{
    *r = (recurrent_weight){.trans = trans, .N = N, .K = K, .w = w, .ldw = ldw};
    if (like->dtype != NB_FLOAT32) return NB_OK;
    const bool bf16 = nb_op_bf16(ctx);
    float *panels = nb_op_alloc(ctx, (nb_sgemm_packed_b_floats(bf16, M, N, K) + 1) * sizeof(float));
    if (!panels) return NB_ERR_NOMEM;
    nb_sgemm_pack_b_once(&r->packed, bf16, M, trans, N, K, w, ldw, panels);
    return NB_OK;
}

/* C [M,N] = A [M,K] op(W) + beta C */
static void recurrent_weight_product(const recurrent_weight *r, const nb_tensor *like, int64_t M,
                                     const void *A, int64_t lda, double beta, void *C, int64_t ldc)
{
    if (like->dtype == NB_FLOAT32) nb_sgemm_packed(&r->packed, false, M, 1.0f, A, lda, (float)beta, C, ldc);
    else nb_dgemm(false, r->trans, M, r->N, r->K, 1.0, A, lda, r->w, r->ldw, beta, C, ldc);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[X], *w_ih = ctx->inputs[W_IH], *w_hh = ctx->inputs[W_HH];
    char xs[96], wi[96], wh[96], bs[96];
    nb_input_shape(ctx, X, xs, sizeof xs);
    nb_input_shape(ctx, W_IH, wi, sizeof wi);
    nb_input_shape(ctx, W_HH, wh, sizeof wh);
    if (x->ndim != 3) return nb_op_error(ctx, "input %s: expected [B,T,I]", xs);
    if (x->shape[0] < 1 || x->shape[1] < 1)   /* as PyTorch: "Expected sequence length ... > 0" */
        return nb_op_error(ctx, "input %s: expected at least one sequence and one step", xs);
    if (w_hh->ndim != 2 || w_hh->shape[0] != 4 * w_hh->shape[1] || w_hh->shape[1] < 1)
        return nb_op_error(ctx, "weight_hh %s: expected [4H,H]", wh);
    int64_t H = w_hh->shape[1], I = x->shape[2];
    if (w_ih->ndim != 2 || w_ih->shape[0] != 4 * H || w_ih->shape[1] != I)
        return nb_op_error(ctx, "weight_ih %s: expected [%lld,%lld] for input %s and weight_hh %s",
                           wi, (long long)(4 * H), (long long)I, xs, wh);
    if (ctx->n_inputs != 3 && ctx->n_inputs != 5)
        return nb_op_error(ctx, "give both biases or neither (%d inputs)", ctx->n_inputs);
    for (int i = B_IH; i < ctx->n_inputs; i++)
        if (ctx->inputs[i]->ndim != 1 || ctx->inputs[i]->shape[0] != 4 * H)
            return nb_op_error(ctx, "bias %s: expected [%lld]", nb_input_shape(ctx, i, bs, sizeof bs),
                               (long long)(4 * H));
    *out = (nb_shape){.dtype = x->dtype, .ndim = 3, .dims = {x->shape[0], x->shape[1], H}};
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs;
    const nb_tensor *x = in[X];
    int64_t B = x->shape[0], T = x->shape[1], I = x->shape[2], H = in[W_HH]->shape[1], G = 4 * H;
    size_t element = nb_dtype_size(x->dtype);
    lstm_saved *saved = nb_op_alloc(ctx, sizeof *saved);
    if (!saved) return NB_ERR_NOMEM;
    saved->gates = nb_op_alloc(ctx, (size_t)(B * T * G + 1) * element);
    saved->cells = nb_op_alloc(ctx, (size_t)(B * T * H + 1) * element);
    saved->tanh_c = nb_op_alloc(ctx, (size_t)(B * T * H + 1) * element);
    if (!saved->gates || !saved->cells || !saved->tanh_c) return NB_ERR_NOMEM;
    ctx->saved = saved;
    /* Every step's input projection and both biases, as one product. */
    nb_cell_gemm(ctx, false, true, B * T, G, I, x->data, I, in[W_IH]->data, I, 0.0, saved->gates, G);
    if (ctx->n_inputs > B_IH) {
        nb_cell_add_bias(x, B * T, G, in[B_IH]->data, saved->gates);
        nb_cell_add_bias(x, B * T, G, in[B_HH]->data, saved->gates);
    }
    const bool single = x->dtype == NB_FLOAT32;
    const step_forward_fn step = STEP_FORWARD[nb_cpu_level_now()];
    /* c_{-1}: one row of zeros read with row stride 0 */
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *zeros = nb_op_alloc(ctx, (size_t)H * element);
    if (!zeros) return NB_ERR_NOMEM;
    memset(zeros, 0, (size_t)H * element);
    recurrent_weight w_hh;
    if (recurrent_weight_init(&w_hh, ctx, x, B, true, G, H, in[W_HH]->data, H) != NB_OK)
        return NB_ERR_NOMEM;
    for (int64_t t = 0; t < T; t++) {
        size_t gate_offset = (size_t)(t * G) * element, state = (size_t)(t * H) * element;
        void *gates = (char *)saved->gates + gate_offset, *h = (char *)ctx->output->data + state;
        void *c = (char *)saved->cells + state, *tanh_c = (char *)saved->tanh_c + state;
        const void *c_prev = t ? (char *)c - H * element : zeros;
        const int64_t ps = t ? T * H : 0;
        /* gates_t += h_{t-1} W_hh^T; rows of batch b are T steps apart. */
        if (t) recurrent_weight_product(&w_hh, x, B, (char *)h - H * element, T * H, 1.0, gates, T * G);
        if (single) step(gates, T * G, c_prev, ps, c, tanh_c, h, T * H, B, H);
        else step_forward_ref(gates, T * G, c_prev, ps, c, tanh_c, h, T * H, B, H);
    }
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs, *const *grad = ctx->input_grads;
    const nb_tensor *x = in[X];
    const lstm_saved *saved = ctx->saved;
    int64_t B = x->shape[0], T = x->shape[1], I = x->shape[2], H = in[W_HH]->shape[1], G = 4 * H;
    size_t element = nb_dtype_size(x->dtype);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    char *dgates = nb_op_alloc(ctx, (size_t)(B * T * G + 1) * element);
    char *dh_next = nb_op_alloc(ctx, (size_t)(B * H + 1) * element);
    char *dc_next = nb_op_alloc(ctx, (size_t)(B * H + 1) * element);
    char *h_prev = nb_op_alloc(ctx, (size_t)(B * T * H + 1) * element);
    char *zeros = nb_op_alloc(ctx, (size_t)H * element);
    if (!dgates || !dh_next || !dc_next || !h_prev || !zeros) return NB_ERR_NOMEM;
    memset(zeros, 0, (size_t)H * element);
    recurrent_weight w_hh;
    if (recurrent_weight_init(&w_hh, ctx, x, B, false, H, G, in[W_HH]->data, H) != NB_OK)
        return NB_ERR_NOMEM;
    memset(dh_next, 0, (size_t)(B * H) * element);
    memset(dc_next, 0, (size_t)(B * H) * element);
    const bool single = x->dtype == NB_FLOAT32;
    const step_backward_fn step = STEP_BACKWARD[nb_cpu_level_now()];
    const char *dout = ctx->output_grad->data;
    for (int64_t t = T - 1; t >= 0; t--) {
        size_t gate_offset = (size_t)(t * G) * element, state = (size_t)(t * H) * element;
        const void *gates = (const char *)saved->gates + gate_offset;
        const void *c_prev = t ? (const char *)saved->cells + state - H * element : zeros;
        const int64_t ps = t ? T * H : 0;
        const void *tanh_c = (const char *)saved->tanh_c + state, *dout_t = dout + state;
        void *dgates_t = dgates + gate_offset;
        if (single)
            step(gates, T * G, c_prev, ps, tanh_c, dout_t, T * H, (void *)dh_next, (void *)dc_next,
                 dgates_t, B, H);
        else
            step_backward_ref(gates, T * G, c_prev, ps, tanh_c, dout_t, T * H, (void *)dh_next,
                              (void *)dc_next, dgates_t, B, H);
        /* dh_{t-1} = dgates_t W_hh */
        if (t) recurrent_weight_product(&w_hh, x, B, dgates_t, T * G, 0.0, dh_next, H);
    }
    /* h_prev [B*T,H]: h_{t-1} beside each step's row, zeros at t = 0. */
    const char *h = ctx->output->data;
    for (int64_t b = 0; b < B; b++) {
        memset(h_prev + (size_t)(b * T * H) * element, 0, (size_t)H * element);
        memcpy(h_prev + (size_t)((b * T + 1) * H) * element, h + (size_t)(b * T * H) * element,
               (size_t)((T - 1) * H) * element);
    }
    const int64_t rows = B * T;
    if (grad[W_IH])
        nb_cell_gemm(ctx, true, false, G, I, rows, dgates, G, x->data, I, 1.0, grad[W_IH]->data, I);
    if (grad[W_HH])
        nb_cell_gemm(ctx, true, false, G, H, rows, dgates, G, h_prev, H, 1.0, grad[W_HH]->data, H);
    if (grad[X])
        nb_cell_gemm(ctx, false, false, rows, I, G, dgates, G, in[W_IH]->data, I, 1.0, grad[X]->data, I);
    for (int b = B_IH; b < ctx->n_inputs; b++)
        if (grad[b]) nb_cell_bias_grad(x, rows, G, dgates, grad[b]->data);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int64_t B, T, I, H;
        bool bias;
    } cases[] = {
        {"B 2, T 3, I 3, H 2, biases", 2, 3, 3, 2, true},
        {"B 1, T 4, I 2, H 3, no bias", 1, 4, 2, 3, false},
        {"B 3, T 1, I 1, H 2, biases", 3, 1, 1, 2, true},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth: sigmoids and tanh";
    int64_t B = cases[index].B, T = cases[index].T, I = cases[index].I, H = cases[index].H;
    if (!nb_sample_tensor(s, rng, 3, (int64_t[]){B, T, I}, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 2, (int64_t[]){4 * H, I}, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 2, (int64_t[]){4 * H, H}, -1.0, 1.0, 0.0, true))
        return -1;
    for (int i = 0; cases[index].bias && i < 2; i++)
        if (!nb_sample_tensor(s, rng, 1, (int64_t[]){4 * H}, -1.0, 1.0, 0.0, true)) return -1;
    return 1;
}

const nb_op nb_op_lstm = {
    .name = "lstm", .min_inputs = 3, .max_inputs = 5, .params_size = 0,
    .shape = shape, .forward = forward, .backward = backward,
    .backward_ops = nb_lstm_backward_ops, .sample = sample,
};

nb_tensor *nb_lstm(nb_tape *tape, nb_tensor *x, nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih,
                   nb_tensor *b_hh)
{
    nb_tensor *inputs[5] = {x, w_ih, w_hh, b_ih, b_hh};
    int n = b_ih || b_hh ? 5 : 3;
    if (n == 5 && (!b_ih || !b_hh)) {
        /* One bias alone: let the shape rule name it (a NULL input would
         * read as a failed earlier op). */
        inputs[3] = b_ih ? b_ih : b_hh;
        n = 4;
    }
    return nb_apply(tape, &nb_op_lstm, n, inputs, NULL);
}
