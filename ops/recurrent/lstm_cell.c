/* lstm_cell: one step of PyTorch's LSTMCell, as one node. With gates
 *   [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh   (PyTorch's order),
 *   i, f, o = sigmoid(.), g = tanh(.),
 *   c' = f c + i g,  h' = o tanh(c').
 * x [B,I], h and c [B,H], W_ih [4H,I], W_hh [4H,H], b_ih and b_hh [4H]
 * (both or neither). The node's output packs h' and c' as [2,B,H];
 * nb_lstm_cell returns them as nb_select slices (docs/ops.md: ops with
 * several results). Backward, with dc~ = dc' + dh' o (1 - tanh^2 c'):
 *   d[i,f,g,o] = [dc~ g i(1-i), dc~ c f(1-f), dc~ i (1-g^2), dh' tanh(c') o(1-o)],
 *   dc += dc~ f, and the gates' gradient goes back through both products. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/recurrent/recurrent.h"

enum { X, H_IN, C_IN, W_IH, W_HH, B_IH, B_HH };

typedef struct lstm_saved {
    void *gates;      /* [B,4H] after their activations */
    void *tanh_c;     /* [B,H] tanh(c') */
} lstm_saved;

/* gates [B,4H] activated in place; c [B,H] -> out [2,B,H], tanh_c [B,H].
 * Branch-free sigmoid and tanh (kernels/fast_math.h), so the loop over j
 * vectorises; one version per CPU level. */
NB_KERNEL_BODY void lstm_cell_forward_body(float *restrict gates, const float *restrict c,
                                           float *restrict out, float *restrict tanh_c, int64_t B,
                                           int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        float *g = gates + b * 4 * H;
        for (int64_t j = 0; j < H; j++) {
            float in = sigmoid_branch_free(g[j]), forget = sigmoid_branch_free(g[H + j]);
            float cell = tanh_branch_free(g[2 * H + j]), output = sigmoid_branch_free(g[3 * H + j]);
            g[j] = in, g[H + j] = forget, g[2 * H + j] = cell, g[3 * H + j] = output;
            float c_next = forget * c[b * H + j] + in * cell, t = tanh_branch_free(c_next);
            tanh_c[b * H + j] = t;
            out[b * H + j] = output * t;
            out[B * H + b * H + j] = c_next;
        }
    }
}

NB_TARGET_AVX512 static void lstm_cell_forward_avx512(float *restrict gates,
                                                      const float *restrict c, float *restrict out,
                                                      float *restrict tanh_c, int64_t B, int64_t H)
{
    lstm_cell_forward_body(gates, c, out, tanh_c, B, H);
}

NB_TARGET_AVX2 static void lstm_cell_forward_avx2(float *restrict gates, const float *restrict c,
                                                  float *restrict out, float *restrict tanh_c,
                                                  int64_t B, int64_t H)
{
    lstm_cell_forward_body(gates, c, out, tanh_c, B, H);
}

static void lstm_cell_forward_portable(float *restrict gates, const float *restrict c,
                                       float *restrict out, float *restrict tanh_c, int64_t B,
                                       int64_t H)
{
    lstm_cell_forward_body(gates, c, out, tanh_c, B, H);
}

/* The version for the CPU level in force (base/cpu.h). */
static void lstm_cell_forward(float *gates, const float *c, float *out, float *tanh_c, int64_t B,
                              int64_t H)
{
    static void (*const by_level[NB_CPU_LEVELS])(float *restrict, const float *restrict,
                                                 float *restrict, float *restrict, int64_t,
                                                 int64_t) = {
        lstm_cell_forward_portable, lstm_cell_forward_avx2, lstm_cell_forward_avx512};
    by_level[nb_cpu_level_now()](gates, c, out, tanh_c, B, H);
}

static void lstm_cell_forward_ref(double *gates, const double *c, double *out, double *tanh_c,
                                  int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        double *g = gates + b * 4 * H;
        for (int64_t j = 0; j < H; j++) {
            double in = 1.0 / (1.0 + exp(-g[j])), forget = 1.0 / (1.0 + exp(-g[H + j]));
            double cell = tanh(g[2 * H + j]), output = 1.0 / (1.0 + exp(-g[3 * H + j]));
            g[j] = in, g[H + j] = forget, g[2 * H + j] = cell, g[3 * H + j] = output;
            double c_next = forget * c[b * H + j] + in * cell, t = tanh(c_next);
            tanh_c[b * H + j] = t;
            out[b * H + j] = output * t;
            out[B * H + b * H + j] = c_next;
        }
    }
}

/* dgates [B,4H] = the pre-activation gradients; dc [B,H] += dc~ f (dc may be NULL) */
static void lstm_cell_backward(const float *gates, const float *tanh_c, const float *c,
                               const float *dout, float *dgates, float *dc, int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const float *g = gates + b * 4 * H;
        float *d = dgates + b * 4 * H;
        for (int64_t j = 0; j < H; j++) {
            float in = g[j], forget = g[H + j], cell = g[2 * H + j], output = g[3 * H + j];
            float t = tanh_c[b * H + j], dh = dout[b * H + j];
            float dct = dout[B * H + b * H + j] + dh * output * (1.0f - t * t);
            d[j] = dct * cell * in * (1.0f - in);
            d[H + j] = dct * c[b * H + j] * forget * (1.0f - forget);
            d[2 * H + j] = dct * in * (1.0f - cell * cell);
            d[3 * H + j] = dh * t * output * (1.0f - output);
            if (dc) dc[b * H + j] += dct * forget;
        }
    }
}

static void lstm_cell_backward_ref(const double *gates, const double *tanh_c, const double *c,
                                   const double *dout, double *dgates, double *dc, int64_t B,
                                   int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const double *g = gates + b * 4 * H;
        double *d = dgates + b * 4 * H;
        for (int64_t j = 0; j < H; j++) {
            double in = g[j], forget = g[H + j], cell = g[2 * H + j], output = g[3 * H + j];
            double t = tanh_c[b * H + j], dh = dout[b * H + j];
            double dct = dout[B * H + b * H + j] + dh * output * (1.0 - t * t);
            d[j] = dct * cell * in * (1.0 - in);
            d[H + j] = dct * c[b * H + j] * forget * (1.0 - forget);
            d[2 * H + j] = dct * in * (1.0 - cell * cell);
            d[3 * H + j] = dh * t * output * (1.0 - output);
            if (dc) dc[b * H + j] += dct * forget;
        }
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int status = nb_cell_check(ctx, 4, H_IN, W_IH);
    if (status != NB_OK) return status;
    const nb_tensor *h = ctx->inputs[H_IN], *c = ctx->inputs[C_IN];
    if (!nb_shape_equal(h, c)) {
        char hs[96], cs[96];
        return nb_op_error(ctx, "h %s and c %s differ", nb_input_shape(ctx, H_IN, hs, sizeof hs),
                           nb_input_shape(ctx, C_IN, cs, sizeof cs));
    }
    *out = (nb_shape){.dtype = h->dtype, .ndim = 3, .dims = {2, h->shape[0], h->shape[1]}};
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs;
    int64_t B = in[X]->shape[0], I = in[X]->shape[1], H = in[H_IN]->shape[1];
    size_t element = nb_dtype_size(in[X]->dtype);
    lstm_saved *saved = nb_op_alloc(ctx, sizeof *saved);
    if (!saved) return NB_ERR_NOMEM;
    saved->gates = nb_op_alloc(ctx, (size_t)(B * 4 * H + 1) * element);
    saved->tanh_c = nb_op_alloc(ctx, (size_t)(B * H + 1) * element);
    if (!saved->gates || !saved->tanh_c) return NB_ERR_NOMEM;
    ctx->saved = saved;
    nb_cell_linear(ctx, B, 4 * H, I, in[X]->data, in[W_IH]->data, saved->gates, false);
    nb_cell_linear(ctx, B, 4 * H, H, in[H_IN]->data, in[W_HH]->data, saved->gates, true);
    if (ctx->n_inputs > B_IH) {
        nb_cell_add_bias(in[X], B, 4 * H, in[B_IH]->data, saved->gates);
        nb_cell_add_bias(in[X], B, 4 * H, in[B_HH]->data, saved->gates);
    }
    if (in[X]->dtype == NB_FLOAT32)
        lstm_cell_forward(saved->gates, in[C_IN]->data, ctx->output->data, saved->tanh_c, B, H);
    else lstm_cell_forward_ref(saved->gates, in[C_IN]->data, ctx->output->data, saved->tanh_c, B, H);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs, *const *grad = ctx->input_grads;
    const lstm_saved *saved = ctx->saved;
    int64_t B = in[X]->shape[0], I = in[X]->shape[1], H = in[H_IN]->shape[1];
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *dgates = nb_op_alloc(ctx, (size_t)(B * 4 * H + 1) * nb_dtype_size(in[X]->dtype));
    if (!dgates) return NB_ERR_NOMEM;
    void *dc = grad[C_IN] ? grad[C_IN]->data : NULL;
    if (in[X]->dtype == NB_FLOAT32)
        lstm_cell_backward(saved->gates, saved->tanh_c, in[C_IN]->data, ctx->output_grad->data,
                           dgates, dc, B, H);
    else lstm_cell_backward_ref(saved->gates, saved->tanh_c, in[C_IN]->data,
                                ctx->output_grad->data, dgates, dc, B, H);
    if (grad[X]) nb_cell_linear_input_grad(ctx, B, 4 * H, I, dgates, in[W_IH]->data, grad[X]->data);
    if (grad[H_IN])
        nb_cell_linear_input_grad(ctx, B, 4 * H, H, dgates, in[W_HH]->data, grad[H_IN]->data);
    if (grad[W_IH])
        nb_cell_linear_weight_grad(ctx, B, 4 * H, I, dgates, in[X]->data, grad[W_IH]->data);
    if (grad[W_HH])
        nb_cell_linear_weight_grad(ctx, B, 4 * H, H, dgates, in[H_IN]->data, grad[W_HH]->data);
    for (int b = B_IH; b < ctx->n_inputs; b++)
        if (grad[b]) nb_cell_bias_grad(in[X], B, 4 * H, dgates, grad[b]->data);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_cell_sample(index, s, rng, 4, true);
}

/* The gates recomputed with ops, c' read from the recorded output, then
 * the backward above: with dc~ = dc' + dh' o (1 - tanh^2 c'),
 *   dgates = [dc~ g i(1-i), dc~ c f(1-f), dc~ i (1-g^2), dh' tanh(c') o(1-o)],
 *   dc = dc~ f, and dgates back through both products. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *const *in = ctx->inputs;
    int64_t H = in[H_IN]->shape[1];
    nb_tensor *gates = nb_add(tape, nb_linear(tape, in[X], in[W_IH], nb_cell_input(ctx, B_IH)),
                              nb_linear(tape, in[H_IN], in[W_HH], nb_cell_input(ctx, B_HH)));
    nb_tensor *input = nb_sigmoid(tape, nb_cell_gate(tape, gates, 0, H));
    nb_tensor *forget = nb_sigmoid(tape, nb_cell_gate(tape, gates, 1, H));
    nb_tensor *cell = nb_tanh(tape, nb_cell_gate(tape, gates, 2, H));
    nb_tensor *output = nb_sigmoid(tape, nb_cell_gate(tape, gates, 3, H));
    nb_tensor *tanh_c = nb_tanh(tape, nb_select(tape, ctx->output, 0, 1));
    nb_tensor *dh = nb_select(tape, g, 0, 0);
    nb_tensor *dc_dh = nb_mul(tape, output, nb_cell_tanh_slope(tape, tanh_c));
    nb_tensor *dc = nb_add(tape, nb_select(tape, g, 0, 1), nb_mul(tape, dh, dc_dh));
    nb_tensor *dgates[4] = {
        nb_mul(tape, dc, nb_mul(tape, cell, nb_cell_sigmoid_slope(tape, input))),
        nb_mul(tape, dc, nb_mul(tape, in[C_IN], nb_cell_sigmoid_slope(tape, forget))),
        nb_mul(tape, dc, nb_mul(tape, input, nb_cell_tanh_slope(tape, cell))),
        nb_mul(tape, dh, nb_mul(tape, tanh_c, nb_cell_sigmoid_slope(tape, output)))};
    nb_tensor *d = nb_cat(tape, 4, dgates, 1);
    nb_cell_products_backward_ops(ctx, d, d, in[H_IN], H_IN, W_IH, grads);
    if (nb_grad_wanted(ctx, C_IN)) grads[C_IN] = nb_mul(tape, dc, forget);
    return NB_OK;
}

const nb_op nb_op_lstm_cell = {
    .name = "lstm_cell", .min_inputs = 5, .max_inputs = 7,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

int nb_lstm_cell(nb_tape *tape, nb_tensor *x, nb_tensor *h, nb_tensor *c, nb_tensor *w_ih,
                 nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **h_next,
                 nb_tensor **c_next)
{
    if (!h_next || !c_next)
        return nb_tape_fail(tape, NB_ERR_INVALID, "lstm_cell: h_next and c_next must not be NULL");
    *h_next = *c_next = NULL;
    nb_tensor *inputs[7] = {x, h, c, w_ih, w_hh, b_ih, b_hh};
    int n = b_ih || b_hh ? 7 : 5;
    if ((b_ih == NULL) != (b_hh == NULL))
        return nb_tape_fail(tape, NB_ERR_INVALID, "lstm_cell: give both biases or neither");
    nb_tensor *packed = nb_apply(tape, &nb_op_lstm_cell, n, inputs, NULL);
    *h_next = nb_select(tape, packed, 0, 0);
    *c_next = nb_select(tape, packed, 0, 1);
    return *h_next && *c_next ? NB_OK : NB_ERR_INVALID;
}
