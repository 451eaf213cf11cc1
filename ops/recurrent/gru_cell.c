/* gru_cell: one step of PyTorch's GRUCell, as one node. With
 *   gi = x W_ih^T + b_ih,  gh = h W_hh^T + b_hh   ([B,3H] each, order r, z, n),
 *   r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),
 *   n = tanh(gi_n + r gh_n),   h' = (1 - z) n + z h.
 * x [B,I], h [B,H], W_ih [3H,I], W_hh [3H,H], b_ih and b_hh [3H] (both or
 * neither) -> h' [B,H]. Backward, with dn~ = dh' (1-z) (1-n^2):
 *   dgi = [dn~ gh_n r(1-r), dh' (h-n) z(1-z), dn~],
 *   dgh = [same r, same z, dn~ r],  dh += dh' z,
 * then both through their products. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/recurrent/recurrent.h"

enum { X, H_IN, W_IH, W_HH, B_IH, B_HH };

typedef struct gru_saved {
    void *gi, *gh;    /* [B,3H] each; gi keeps r, z, n after the forward */
} gru_saved;

/* gi [B,3H] becomes [r, z, n]; gh [B,3H] kept; h [B,H] -> y [B,H].
 * Branch-free sigmoid and tanh (kernels/fast_math.h), so the loop over j
 * vectorises; one version per CPU level. */
NB_KERNEL_BODY void gru_cell_forward_body(float *restrict gi, const float *restrict gh,
                                          const float *restrict h, float *restrict y, int64_t B,
                                          int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        float *a = gi + b * 3 * H;
        const float *c = gh + b * 3 * H;
        for (int64_t j = 0; j < H; j++) {
            float r = sigmoid_branch_free(a[j] + c[j]);
            float z = sigmoid_branch_free(a[H + j] + c[H + j]);
            float n = tanh_branch_free(a[2 * H + j] + r * c[2 * H + j]);
            a[j] = r, a[H + j] = z, a[2 * H + j] = n;
            y[b * H + j] = (1.0f - z) * n + z * h[b * H + j];
        }
    }
}

NB_TARGET_AVX512 static void gru_cell_forward_avx512(float *restrict gi, const float *restrict gh,
                                                     const float *restrict h, float *restrict y,
                                                     int64_t B, int64_t H)
{
    gru_cell_forward_body(gi, gh, h, y, B, H);
}

NB_TARGET_AVX2 static void gru_cell_forward_avx2(float *restrict gi, const float *restrict gh,
                                                 const float *restrict h, float *restrict y,
                                                 int64_t B, int64_t H)
{
    gru_cell_forward_body(gi, gh, h, y, B, H);
}

static void gru_cell_forward_portable(float *restrict gi, const float *restrict gh,
                                      const float *restrict h, float *restrict y, int64_t B,
                                      int64_t H)
{
    gru_cell_forward_body(gi, gh, h, y, B, H);
}

/* The version for the CPU level in force (base/cpu.h). */
static void gru_cell_forward(float *gi, const float *gh, const float *h, float *y, int64_t B,
                             int64_t H)
{
    static void (*const by_level[NB_CPU_LEVELS])(float *restrict, const float *restrict,
                                                 const float *restrict, float *restrict, int64_t,
                                                 int64_t) = {
        gru_cell_forward_portable, gru_cell_forward_avx2, gru_cell_forward_avx512};
    by_level[nb_cpu_level_now()](gi, gh, h, y, B, H);
}

static void gru_cell_forward_ref(double *gi, const double *gh, const double *h, double *y,
                                 int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        double *a = gi + b * 3 * H;
        const double *c = gh + b * 3 * H;
        for (int64_t j = 0; j < H; j++) {
            double r = 1.0 / (1.0 + exp(-(a[j] + c[j])));
            double z = 1.0 / (1.0 + exp(-(a[H + j] + c[H + j])));
            double n = tanh(a[2 * H + j] + r * c[2 * H + j]);
            a[j] = r, a[H + j] = z, a[2 * H + j] = n;
            y[b * H + j] = (1.0 - z) * n + z * h[b * H + j];
        }
    }
}

/* dgi, dgh [B,3H] from dy [B,H]; dh [B,H] += dy z (dh may be NULL) */
static void gru_cell_backward(const float *act, const float *gh, const float *h, const float *dy,
                              float *dgi, float *dgh, float *dh, int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const float *a = act + b * 3 * H, *c = gh + b * 3 * H;
        float *di = dgi + b * 3 * H, *dq = dgh + b * 3 * H;
        for (int64_t j = 0; j < H; j++) {
            float r = a[j], z = a[H + j], n = a[2 * H + j], g = dy[b * H + j];
            float dn = g * (1.0f - z) * (1.0f - n * n);
            float dr = dn * c[2 * H + j] * r * (1.0f - r);
            float dz = g * (h[b * H + j] - n) * z * (1.0f - z);
            di[j] = dq[j] = dr;
            di[H + j] = dq[H + j] = dz;
            di[2 * H + j] = dn;
            dq[2 * H + j] = dn * r;
            if (dh) dh[b * H + j] += g * z;
        }
    }
}

static void gru_cell_backward_ref(const double *act, const double *gh, const double *h,
                                  const double *dy, double *dgi, double *dgh, double *dh,
                                  int64_t B, int64_t H)
{
    for (int64_t b = 0; b < B; b++) {
        const double *a = act + b * 3 * H, *c = gh + b * 3 * H;
        double *di = dgi + b * 3 * H, *dq = dgh + b * 3 * H;
        for (int64_t j = 0; j < H; j++) {
            double r = a[j], z = a[H + j], n = a[2 * H + j], g = dy[b * H + j];
            double dn = g * (1.0 - z) * (1.0 - n * n);
            double dr = dn * c[2 * H + j] * r * (1.0 - r);
            double dz = g * (h[b * H + j] - n) * z * (1.0 - z);
            di[j] = dq[j] = dr;
            di[H + j] = dq[H + j] = dz;
            di[2 * H + j] = dn;
            dq[2 * H + j] = dn * r;
            if (dh) dh[b * H + j] += g * z;
        }
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int status = nb_cell_check(ctx, 3, H_IN, W_IH);
    if (status != NB_OK) return status;
    const nb_tensor *h = ctx->inputs[H_IN];
    *out = (nb_shape){.dtype = h->dtype, .ndim = 2, .dims = {h->shape[0], h->shape[1]}};
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs;
    int64_t B = in[X]->shape[0], I = in[X]->shape[1], H = in[H_IN]->shape[1];
    size_t bytes = (size_t)(B * 3 * H + 1) * nb_dtype_size(in[X]->dtype);
    gru_saved *saved = nb_op_alloc(ctx, sizeof *saved);
    if (!saved) return NB_ERR_NOMEM;
    saved->gi = nb_op_alloc(ctx, bytes);
    saved->gh = nb_op_alloc(ctx, bytes);
    if (!saved->gi || !saved->gh) return NB_ERR_NOMEM;
    ctx->saved = saved;
    nb_cell_linear(ctx, B, 3 * H, I, in[X]->data, in[W_IH]->data, saved->gi, false);
    nb_cell_linear(ctx, B, 3 * H, H, in[H_IN]->data, in[W_HH]->data, saved->gh, false);
    if (ctx->n_inputs > B_IH) {
        nb_cell_add_bias(in[X], B, 3 * H, in[B_IH]->data, saved->gi);
        nb_cell_add_bias(in[X], B, 3 * H, in[B_HH]->data, saved->gh);
    }
    if (in[X]->dtype == NB_FLOAT32)
        gru_cell_forward(saved->gi, saved->gh, in[H_IN]->data, ctx->output->data, B, H);
    else gru_cell_forward_ref(saved->gi, saved->gh, in[H_IN]->data, ctx->output->data, B, H);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs, *const *grad = ctx->input_grads;
    const gru_saved *saved = ctx->saved;
    int64_t B = in[X]->shape[0], I = in[X]->shape[1], H = in[H_IN]->shape[1];
    size_t bytes = (size_t)(B * 3 * H + 1) * nb_dtype_size(in[X]->dtype);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *dgi = nb_op_alloc(ctx, bytes), *dgh = nb_op_alloc(ctx, bytes);
    if (!dgi || !dgh) return NB_ERR_NOMEM;
    void *dh = grad[H_IN] ? grad[H_IN]->data : NULL;
    if (in[X]->dtype == NB_FLOAT32)
        gru_cell_backward(saved->gi, saved->gh, in[H_IN]->data, ctx->output_grad->data, dgi, dgh,
                          dh, B, H);
    else gru_cell_backward_ref(saved->gi, saved->gh, in[H_IN]->data, ctx->output_grad->data, dgi,
                               dgh, dh, B, H);
    if (grad[X]) nb_cell_linear_input_grad(ctx, B, 3 * H, I, dgi, in[W_IH]->data, grad[X]->data);
    if (dh) nb_cell_linear_input_grad(ctx, B, 3 * H, H, dgh, in[W_HH]->data, dh);
    if (grad[W_IH]) nb_cell_linear_weight_grad(ctx, B, 3 * H, I, dgi, in[X]->data, grad[W_IH]->data);
    if (grad[W_HH])
        nb_cell_linear_weight_grad(ctx, B, 3 * H, H, dgh, in[H_IN]->data, grad[W_HH]->data);
    if (ctx->n_inputs > B_IH && grad[B_IH]) nb_cell_bias_grad(in[X], B, 3 * H, dgi, grad[B_IH]->data);
    if (ctx->n_inputs > B_HH && grad[B_HH]) nb_cell_bias_grad(in[X], B, 3 * H, dgh, grad[B_HH]->data);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_cell_sample(index, s, rng, 3, false);
}

/* Both products and the gates recomputed with ops, then the backward
 * above: with dn~ = dh' (1-z) (1-n^2),
 *   dgi = [dn~ gh_n r(1-r), dh' (h-n) z(1-z), dn~],  dgh = [same, same, dn~ r],
 *   dh = dgh W_hh + dh' z. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *const *in = ctx->inputs;
    int64_t H = in[H_IN]->shape[1];
    nb_tensor *gi = nb_linear(tape, in[X], in[W_IH], nb_cell_input(ctx, B_IH));
    nb_tensor *gh = nb_linear(tape, in[H_IN], in[W_HH], nb_cell_input(ctx, B_HH));
    nb_tensor *gh_n = nb_cell_gate(tape, gh, 2, H);
    nb_tensor *r = nb_sigmoid(tape, nb_add(tape, nb_cell_gate(tape, gi, 0, H),
                                           nb_cell_gate(tape, gh, 0, H)));
    nb_tensor *z = nb_sigmoid(tape, nb_add(tape, nb_cell_gate(tape, gi, 1, H),
                                           nb_cell_gate(tape, gh, 1, H)));
    nb_tensor *n = nb_tanh(tape, nb_add(tape, nb_cell_gate(tape, gi, 2, H), nb_mul(tape, r, gh_n)));
    nb_tensor *dn = nb_mul(tape, g, nb_mul(tape, nb_cell_one_minus(tape, z),
                                           nb_cell_tanh_slope(tape, n)));
    nb_tensor *dr = nb_mul(tape, dn, nb_mul(tape, gh_n, nb_cell_sigmoid_slope(tape, r)));
    nb_tensor *dz = nb_mul(tape, g, nb_mul(tape, nb_sub(tape, in[H_IN], n),
                                           nb_cell_sigmoid_slope(tape, z)));
    nb_tensor *d_in[3] = {dr, dz, dn}, *d_hidden[3] = {dr, dz, nb_mul(tape, dn, r)};
    nb_cell_products_backward_ops(ctx, nb_cat(tape, 3, d_in, 1), nb_cat(tape, 3, d_hidden, 1),
                                  in[H_IN], H_IN, W_IH, grads);
    if (nb_grad_wanted(ctx, H_IN)) grads[H_IN] = nb_add(tape, grads[H_IN], nb_mul(tape, g, z));
    return NB_OK;
}

const nb_op nb_op_gru_cell = {
    .name = "gru_cell", .min_inputs = 4, .max_inputs = 6,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_gru_cell(nb_tape *tape, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih,
                       nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh)
{
    if ((b_ih == NULL) != (b_hh == NULL)) {
        nb_tape_fail(tape, NB_ERR_INVALID, "gru_cell: give both biases or neither");
        return NULL;
    }
    nb_tensor *inputs[6] = {x, h, w_ih, w_hh, b_ih, b_hh};
    return nb_apply(tape, &nb_op_gru_cell, b_ih ? 6 : 4, inputs, NULL);
}
