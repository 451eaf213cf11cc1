/* The recurrent ops' gradients written with ops (their backward_ops): the
 * gate products' shared part, and lstm's rule, which recomputes the cell
 * states step by step from the recorded hidden states. */
#include "nabla/ops.h"
#include "ops/recurrent/recurrent.h"

nb_tensor *nb_cell_input(const nb_op_ctx *ctx, int i)
{
    return i < ctx->n_inputs ? ctx->inputs[i] : NULL;
}

nb_tensor *nb_cell_one_minus(nb_tape *tape, nb_tensor *t)
{
    return nb_add_scalar(tape, nb_neg(tape, t), 1.0);
}

nb_tensor *nb_cell_sigmoid_slope(nb_tape *tape, nb_tensor *s)
{
    return nb_mul(tape, s, nb_cell_one_minus(tape, s));
}

nb_tensor *nb_cell_tanh_slope(nb_tape *tape, nb_tensor *t)
{
    return nb_cell_one_minus(tape, nb_square(tape, t));
}

nb_tensor *nb_cell_gate(nb_tape *tape, nb_tensor *t, int k, int64_t H)
{
    return nb_narrow(tape, t, -1, k * H, H);
}

/* t [..., n] as rows [-1, n] */
static nb_tensor *rows_of(nb_tape *tape, nb_tensor *t)
{
    if (!t) return NULL;
    const int64_t dims[2] = {-1, t->shape[t->ndim - 1]};
    return nb_reshape(tape, t, 2, dims);
}

void nb_cell_products_backward_ops(nb_op_ctx *ctx, nb_tensor *d_in, nb_tensor *d_hidden,
                                   nb_tensor *h, int h_input, int first_weight, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_tensor *w_ih = ctx->inputs[first_weight], *w_hh = ctx->inputs[first_weight + 1];
    nb_tensor *d_in_rows = rows_of(tape, d_in), *d_hidden_rows = rows_of(tape, d_hidden);
    if (nb_grad_wanted(ctx, 0))
        grads[0] = nb_reshape(tape, nb_matmul(tape, d_in_rows, w_ih), x->ndim, x->shape);
    if (h_input >= 0 && nb_grad_wanted(ctx, h_input))
        grads[h_input] = nb_reshape(tape, nb_matmul(tape, d_hidden_rows, w_hh), h->ndim, h->shape);
    if (nb_grad_wanted(ctx, first_weight))
        grads[first_weight] = nb_matmul(tape, nb_transpose(tape, d_in_rows, 0, 1), rows_of(tape, x));
    if (nb_grad_wanted(ctx, first_weight + 1))
        grads[first_weight + 1] =
            nb_matmul(tape, nb_transpose(tape, d_hidden_rows, 0, 1), rows_of(tape, h));
    if (ctx->n_inputs > first_weight + 2 && nb_grad_wanted(ctx, first_weight + 2))
        grads[first_weight + 2] = nb_sum_dim(tape, d_in_rows, 0, false);
    if (ctx->n_inputs > first_weight + 3 && nb_grad_wanted(ctx, first_weight + 3))
        grads[first_weight + 3] = nb_sum_dim(tape, d_hidden_rows, 0, false);
}

/* t [B,T,H] one step later: zeros at step 0, t's step s-1 at step s (the
 * previous state beside each step). */
static nb_tensor *shifted(nb_tape *tape, nb_tensor *t)
{
    if (!t) return NULL;
    int64_t B = t->shape[0], T = t->shape[1], H = t->shape[2];
    nb_tensor *zeros = nb_tape_tensor(tape, t->dtype, 3, (const int64_t[]){B, 1, H}, NULL);
    if (T == 1) return zeros;
    nb_tensor *parts[2] = {zeros, nb_narrow(tape, t, 1, 0, T - 1)};
    return nb_cat(tape, 2, parts, 1);
}

/* With h_{t-1} taken from the recorded output, the gates and activations of
 * every step come at once; c_t = f_t c_{t-1} + i_t g_t is recomputed step
 * by step. Then, as lstm's backward, from t = T-1 down to 0:
 *   dh = dy_t + dgates_{t+1} W_hh,  dc~ = dc~_{t+1} f_{t+1} + dh o (1 - tanh^2 c),
 *   dgates_t = [dc~ g i(1-i), dc~ c_{t-1} f(1-f), dc~ i (1-g^2), dh tanh(c) o(1-o)],
 * and the gates' gradients of all steps go back through both products. */
int nb_lstm_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *w_ih = ctx->inputs[1], *w_hh = ctx->inputs[2];
    nb_tensor *b_ih = nb_cell_input(ctx, 3), *b_hh = nb_cell_input(ctx, 4);
    int64_t T = x->shape[1], H = w_hh->shape[1];
    nb_tensor **steps = nb_tape_alloc(tape, (size_t)T * sizeof *steps);
    if (!steps) return NB_ERR_NOMEM;
    nb_tensor *h_prev = shifted(tape, ctx->output);
    nb_tensor *gates = nb_add(tape, nb_linear(tape, x, w_ih, b_ih),
                              nb_linear(tape, h_prev, w_hh, b_hh));
    nb_tensor *in = nb_sigmoid(tape, nb_cell_gate(tape, gates, 0, H));
    nb_tensor *forget = nb_sigmoid(tape, nb_cell_gate(tape, gates, 1, H));
    nb_tensor *cell = nb_tanh(tape, nb_cell_gate(tape, gates, 2, H));
    nb_tensor *out = nb_sigmoid(tape, nb_cell_gate(tape, gates, 3, H));
    nb_tensor *in_cell = nb_mul(tape, in, cell);
    for (int64_t t = 0; t < T; t++) {
        steps[t] = nb_select(tape, in_cell, 1, t);
        if (t)
            steps[t] = nb_add(tape, nb_mul(tape, nb_select(tape, forget, 1, t), steps[t - 1]),
                              steps[t]);
    }
    nb_tensor *c = nb_stack(tape, (int)T, steps, 1), *tanh_c = nb_tanh(tape, c);
    /* dc~ = dh * dc_dh + ..., and dgates_t = [dc~, dc~, dc~, dh] * coefficient_t */
    nb_tensor *dc_dh = nb_mul(tape, out, nb_cell_tanh_slope(tape, tanh_c));
    nb_tensor *factors[4] = {
        nb_mul(tape, cell, nb_cell_sigmoid_slope(tape, in)),
        nb_mul(tape, shifted(tape, c), nb_cell_sigmoid_slope(tape, forget)),
        nb_mul(tape, in, nb_cell_tanh_slope(tape, cell)),
        nb_mul(tape, tanh_c, nb_cell_sigmoid_slope(tape, out))};
    nb_tensor *coefficient = nb_cat(tape, 4, factors, 2);
    nb_tensor *dh_next = NULL, *dc_next = NULL;
    for (int64_t t = T - 1; t >= 0; t--) {
        nb_tensor *dh = nb_select(tape, g, 1, t);
        if (dh_next) dh = nb_add(tape, dh, dh_next);
        nb_tensor *dc = nb_mul(tape, dh, nb_select(tape, dc_dh, 1, t));
        if (dc_next) dc = nb_add(tape, dc, dc_next);
        nb_tensor *spread[4] = {dc, dc, dc, dh};
        steps[t] = nb_mul(tape, nb_cat(tape, 4, spread, 1), nb_select(tape, coefficient, 1, t));
        if (t == 0) break;
        dc_next = nb_mul(tape, dc, nb_select(tape, forget, 1, t));
        dh_next = nb_matmul(tape, steps[t], w_hh);
    }
    nb_tensor *dgates = nb_stack(tape, (int)T, steps, 1);
    nb_cell_products_backward_ops(ctx, dgates, dgates, h_prev, -1, 1, grads);
    return NB_OK;
}
