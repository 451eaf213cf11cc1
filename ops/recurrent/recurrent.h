/* Internal: what the recurrent cells share. Both compute their gates as
 *   gates = x W_ih^T + b_ih + h W_hh^T + b_hh   ([B, G*H], PyTorch's layout)
 * and, in the backward, push the gates' gradient back through the same
 * products. The products run on nabla's GEMM (float32) or its exact
 * float64 loops. */
#ifndef NABLA_OPS_RECURRENT_H
#define NABLA_OPS_RECURRENT_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/op.h"

/* C = op(A) op(B) + beta C with strides, on nabla's GEMM (float32, in bf16
 * when the node's precision asks: nb_op_bf16) or its float64 loops
 * (kernels/gemm.h's arguments); the dtype is that of the node's input 0. */
void nb_cell_gemm(const nb_op_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                  int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                  void *C, int64_t ldc);
/* C [M,N] (+)= A [M,K] B^T where B is [N,K] (accumulate: beta 1); dtype
 * and precision as nb_cell_gemm. */
void nb_cell_linear(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *A,
                    const void *B, void *C, bool accumulate);
/* C [M,K] += A [M,N] B [N,K] (the gradient of an input of nb_cell_linear) */
void nb_cell_linear_input_grad(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K,
                               const void *A, const void *B, void *C);
/* C [N,K] += A^T B with A [M,N], B [M,K] (the weight's gradient) */
void nb_cell_linear_weight_grad(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K,
                                const void *A, const void *B, void *C);
/* rows [M,N] += bias [N] */
void nb_cell_add_bias(const nb_tensor *like, int64_t M, int64_t N, const void *bias, void *rows);
/* dbias [N] += sum over rows of d [M,N] */
void nb_cell_bias_grad(const nb_tensor *like, int64_t M, int64_t N, const void *d, void *dbias);
/* Checks the shapes of x [B,I], h [B,H], W_ih [G*H,I], W_hh [G*H,H] and
 * the biases [G*H] (inputs first_bias.. when present); G is the gate count. */
int nb_cell_check(nb_op_ctx *ctx, int gates, int h_input, int first_weight);

/* Gradcheck case `index` of a cell with `gates` gates: x, h, (c when
 * with_c), W_ih, W_hh and, in two of the three cases, both biases. */
int nb_cell_sample(int index, nb_sample *s, nb_rng *rng, int gates, bool with_c);

/* ---- backward_ops (recurrent_grad.c): the cells' gradients written with
 * ops on ctx->tape, so nb_grad can record and differentiate them again. */

/* Input i, or NULL when the op was given fewer (the optional biases) */
nb_tensor *nb_cell_input(const nb_op_ctx *ctx, int i);
/* 1 - t */
nb_tensor *nb_cell_one_minus(nb_tape *tape, nb_tensor *t);
/* The derivatives of the activations from their outputs: s (1 - s) for
 * s = sigmoid(a), 1 - t^2 for t = tanh(a). */
nb_tensor *nb_cell_sigmoid_slope(nb_tape *tape, nb_tensor *s);
nb_tensor *nb_cell_tanh_slope(nb_tape *tape, nb_tensor *t);
/* Gate k of G-gate rows t [..., G*H]: t[..., k*H : (k+1)*H] */
nb_tensor *nb_cell_gate(nb_tape *tape, nb_tensor *t, int k, int64_t H);
/* The gates' gradients back through gates = x W_ih^T + b_ih (d_in, rows
 * like x's) and h W_hh^T + b_hh (d_hidden, rows like h's): sets grads of
 * x (input 0), h (input h_input, or none when h_input < 0), the weights
 * (inputs first_weight, first_weight + 1) and the biases after them when
 * present, each where nb_grad_wanted. h is the hidden state the products
 * read. */
void nb_cell_products_backward_ops(nb_op_ctx *ctx, nb_tensor *d_in, nb_tensor *d_hidden,
                                   nb_tensor *h, int h_input, int first_weight, nb_tensor **grads);
/* lstm's backward_ops (lstm.c is long enough without it). */
int nb_lstm_backward_ops(nb_op_ctx *ctx, nb_tensor *grad_output, nb_tensor **grads);

#endif
