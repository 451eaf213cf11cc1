/* Internal: fused float32 attention for one head, streamed over key tiles
 * (the FlashAttention scheme): no [T, S] score matrix is ever stored.
 *
 *   scores[i, j] = scale * q[i] . k[j] + mask[i, j]   (j <= i when causal)
 *   o[i] = sum_j softmax_j(scores[i]) v[j],  lse[i] = log sum_j e^scores[i, j]
 *
 * The forward keeps a running maximum, sum and output per query row and
 * rescales them as each key tile arrives; it saves lse for the backward,
 * which recomputes each tile's probabilities p = e^(scores - lse) and
 * adds (with delta[i] = do[i] . o[i] and ds = p (do . v[j] - delta)):
 *   dv[j] += p do[i],  dq[i] += scale ds k[j],  dk[j] += scale ds q[i],
 *   dmask[i, j] += ds.
 * A row whose keys are all masked gives NaN, as the softmax does.
 * nb_attention_reference_* are the plain float64 loops the tests hold the
 * float32 kernels to. */
#ifndef NABLA_KERNELS_ATTENTION_H
#define NABLA_KERNELS_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nb_attention_dims {
    int64_t T, S, D, Dv;        /* query rows, key rows, q/k width, v width */
    double scale;
    bool causal;
    bool bf16;                  /* float32 products in bf16 (nb_sgemm_bf16) */
} nb_attention_dims;

/* One head's buffers (row-major): q [T,D], k [S,D], v [S,Dv], o [T,Dv],
 * lse [T]; mask element (i, j) at mask[i * mask_row + j * mask_col]
 * (strides 0 where it broadcasts), or mask NULL. */
typedef struct nb_attention_head_f32 {
    const float *q, *k, *v, *mask;
    int64_t mask_row, mask_col;
    float *o, *lse;
} nb_attention_head_f32;

typedef struct nb_attention_head_f64 {
    const double *q, *k, *v, *mask;
    int64_t mask_row, mask_col;
    double *o, *lse;
} nb_attention_head_f64;

/* Floats of scratch one call needs. */
size_t nb_attention_forward_scratch(const nb_attention_dims *d);
size_t nb_attention_backward_scratch(const nb_attention_dims *d);

/* o and lse for query rows [row_begin, row_end). */
void nb_attention_forward_f32(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                              int64_t row_begin, int64_t row_end, float *scratch);
/* Adds the head's gradients; dq, dk, dv, dmask may be NULL (not needed).
 * dmask has the mask's strides. */
void nb_attention_backward_f32(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                               const float *dout, float *dq, float *dk, float *dv, float *dmask,
                               float *scratch);

/* The float64 reference: one row of scores at a time (scratch: S doubles). */
void nb_attention_forward_f64(const nb_attention_dims *d, const nb_attention_head_f64 *h,
                              double *scratch);
void nb_attention_backward_f64(const nb_attention_dims *d, const nb_attention_head_f64 *h,
                               const double *dout, double *dq, double *dk, double *dv,
                               double *dmask, double *scratch);

#endif
