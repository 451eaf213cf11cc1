/* Internal: what cross_entropy and nll_loss share. Scores (logits or
 * log-probabilities) are [C], [N,C] or [N,C,d1,...] with the class dim 1
 * (PyTorch's layout), seen as [N, C, inner]; labels are int32 [], [N] or
 * [N,d1,...], one per (n, i) position. The params are
 * nb_cross_entropy_params: class weights, the reduction, the ignore index
 * and (cross_entropy only) label smoothing. */
#ifndef NABLA_OPS_LOSSES_CLASS_LOSS_H
#define NABLA_OPS_LOSSES_CLASS_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/ops.h"

/* PyTorch's default ignore_index. */
enum { NB_DEFAULT_IGNORE_INDEX = -100 };

typedef struct nb_class_layout {
    int64_t N, C, inner;    /* positions: N * inner */
} nb_class_layout;

nb_class_layout nb_class_layout_of(const nb_tensor *scores);
int nb_class_ignore_index(const nb_cross_entropy_params *p);
/* Validates the shapes, the params (smoothing only when allowed) and that
 * every label is in [0, C) or the ignore index; describes the output ([]
 * or the labels' shape for reduction none). */
int nb_class_loss_shape(nb_op_ctx *ctx, nb_shape *out, bool smoothing);
/* The class weights in the scores' dtype ([C], nb_op_alloc), or NULL when
 * the params have none; *status is NB_ERR_NOMEM when allocation failed. */
void *nb_class_weights(nb_op_ctx *ctx, int *status);
/* sum over non-ignored positions of weight[label] (1 without weights):
 * what the mean divides by, as PyTorch's total_weight. */
double nb_class_total_weight(const nb_op_ctx *ctx);
/* For backward_ops. The output gradient g in the scores' layout: a scalar
 * (reduced) as it is, one per position [N,d1,...] viewed as [N,1,d1,...]
 * so that it broadcasts over the classes. */
nb_tensor *nb_class_grad_view(nb_tape *tape, nb_tensor *g, const nb_tensor *scores);
/* Constants (no gradient) in the scores' dtype built from the labels and
 * params, times scale and 0 at ignored positions: the target distribution
 *   T[n,c,i] = (eps / C) w[c] + (1 - eps) w[y] [c == y]   (the scores' shape)
 * and, when total is not NULL, its sum over the classes
 *   A[n,i] = (1 - eps) w[y] + (eps / C) sum_c w[c]   (the class dim size 1).
 * NULL with the error on the tape. */
nb_tensor *nb_class_target(nb_op_ctx *ctx, double eps, double scale, nb_tensor **total);

/* Gradcheck cases: [N,C] without params as the short forms, then
 * weights, ignored labels (-100 and a class used as ignore_index), [N,C,d]
 * and [C] scores, each reduction, and label smoothing when `smoothing`.
 * Scores in [low, high). */
int nb_class_loss_sample(int index, nb_sample *s, nb_rng *rng, bool smoothing, double low,
                         double high);

#endif
