/* nabla: the built-in ops, named after PyTorch's functional API.
 *
 * Every op takes the tape first, returns an arena tensor, and follows the
 * error convention of nabla/status.h: NULL on failure with the message on
 * the tape; a NULL input or a tape that already failed gives NULL back.
 * Float inputs of one op must share a dtype (float32 or float64). */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include <stdbool.h>

#include "nabla/op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- element-wise, NumPy broadcasting ---------------------------------- */
nb_tensor *nb_add(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a + b */
nb_tensor *nb_sub(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a - b */
nb_tensor *nb_mul(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a * b */
nb_tensor *nb_div(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a / b */
nb_tensor *nb_neg(nb_tape *tape, nb_tensor *x);                      /* y = -x */
nb_tensor *nb_exp(nb_tape *tape, nb_tensor *x);                      /* y = e^x */
nb_tensor *nb_log(nb_tape *tape, nb_tensor *x);                      /* y = ln x */

/* ---- activations -------------------------------------------------------- */
nb_tensor *nb_relu(nb_tape *tape, nb_tensor *x);                     /* y = max(x, 0) */
nb_tensor *nb_leaky_relu(nb_tape *tape, nb_tensor *x, double slope); /* y = x > 0 ? x : slope*x */
nb_tensor *nb_sigmoid(nb_tape *tape, nb_tensor *x);                  /* y = 1 / (1 + e^-x) */
nb_tensor *nb_tanh(nb_tape *tape, nb_tensor *x);                     /* y = tanh x */

/* ---- reductions ----------------------------------------------------------- */
nb_tensor *nb_sum(nb_tape *tape, nb_tensor *x);                      /* y = sum_i x_i (scalar) */
nb_tensor *nb_mean(nb_tape *tape, nb_tensor *x);                     /* y = sum_i x_i / n */
/* Over one dim (negative counts from the end); keepdim keeps it as size 1. */
nb_tensor *nb_sum_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
nb_tensor *nb_mean_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);

/* ---- shape ----------------------------------------------------------------- */
/* y = x viewed as `shape` (one entry may be -1: inferred). */
nb_tensor *nb_reshape(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *shape);
/* y = x with dims start_dim..end_dim merged into one (PyTorch flatten). */
nb_tensor *nb_flatten(nb_tape *tape, nb_tensor *x, int start_dim, int end_dim);
/* y = x with dims dim0 and dim1 swapped (copied, contiguous). */
nb_tensor *nb_transpose(nb_tape *tape, nb_tensor *x, int dim0, int dim1);

/* ---- linear algebra -------------------------------------------------------- */
/* y = a b: [M,K] x [K,N] -> [M,N]; [B,M,K] x [B,K,N] -> [B,M,N];
 * [B,M,K] x [K,N] -> [B,M,N] (b broadcast over the batch). */
nb_tensor *nb_matmul(nb_tape *tape, nb_tensor *a, nb_tensor *b);
/* y = x W^T + b: x [N,in], W [out,in], b [out] or NULL -> [N,out]. */
nb_tensor *nb_linear(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias);

/* ---- softmax (numerically stable: the row max is subtracted) -------------- */
nb_tensor *nb_softmax(nb_tape *tape, nb_tensor *x, int dim);         /* y = e^x / sum e^x */
nb_tensor *nb_log_softmax(nb_tape *tape, nb_tensor *x, int dim);     /* y = x - log sum e^x */

/* ---- losses (reduction: mean over all elements / the batch) --------------- */
/* y = mean((x - target)^2) */
nb_tensor *nb_mse_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target);
/* y = mean_n -log softmax(logits)[n, labels[n]]; logits [N,C], labels int32 [N] */
nb_tensor *nb_cross_entropy(nb_tape *tape, nb_tensor *logits, nb_tensor *labels);
/* y = mean_n -logp[n, labels[n]]; logp [N,C] log-probabilities, labels int32 [N] */
nb_tensor *nb_nll_loss(nb_tape *tape, nb_tensor *logp, nb_tensor *labels);
/* y = mean -(t log p + (1-t) log(1-p)); logs clamped at -100 as in PyTorch */
nb_tensor *nb_binary_cross_entropy(nb_tape *tape, nb_tensor *p, nb_tensor *target);
/* y = mean max(x,0) - x t + log(1 + e^-|x|)  (stable for large |x|) */
nb_tensor *nb_binary_cross_entropy_with_logits(nb_tape *tape, nb_tensor *x, nb_tensor *target);

/* Label tensors for the losses: int32 [n] copied from `labels`. */
nb_tensor *nb_tape_labels(nb_tape *tape, int64_t n, const int32_t *labels);

#ifdef __cplusplus
}
#endif
#endif
