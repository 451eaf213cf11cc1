/* Internal: the row normalisation that layer_norm, rms_norm and
 * group_norm share. x is [rows, length]; each row is normalised alone:
 *   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps)   (center)
 *   xhat = x * rstd,           rstd = 1 / sqrt(mean(x^2) + eps)   (rms)
 *   y = xhat * weight[c] + bias[c]   (weight, bias optional)
 * with the channel c of element i of row r = (r % groups) * (length /
 * spread) + i / spread: layer_norm and rms_norm have groups 1, spread 1
 * (c = i); group_norm has rows N*G, groups G, spread = the spatial size.
 * Backward, with g = dy * weight[c]:
 *   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))   (center)
 *   dx += rstd * (g - xhat * mean(g * xhat))             (rms)
 *   dweight[c] += sum dy * xhat,  dbias[c] += sum dy
 * Statistics are per row in the input's dtype (float32 rows accumulate
 * in 16 float lanes added pairwise); rows run across the threads and
 * each channel's sums run over rows in order, so the bits do not depend
 * on the thread count. */
#ifndef NABLA_OPS_NORM_ROWS_H
#define NABLA_OPS_NORM_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla/op.h"

typedef struct nb_norm_rows {
    int64_t rows, length;
    int64_t groups, spread;     /* the channel map above */
    bool center;                /* false: rms */
    double eps;
} nb_norm_rows;

/* The number of weight/bias channels: groups * length / spread. */
int64_t nb_norm_channels(const nb_norm_rows *s);

/* y [rows, length]; mean and rstd [rows] are written (mean 0 for rms).
 * weight, bias [channels] or NULL. */
void nb_norm_rows_forward(const nb_norm_rows *s, const float *x, const float *weight,
                          const float *bias, float *y, float *mean, float *rstd);
void nb_norm_rows_forward_ref(const nb_norm_rows *s, const double *x, const double *weight,
                              const double *bias, double *y, double *mean, double *rstd);
/* Any of dx, dweight, dbias may be NULL (not needed). scratch holds
 * nb_norm_scratch_floats(s) floats. assign_dx: dx is a fresh buffer, so
 * it is assigned rather than added to. */
size_t nb_norm_scratch_floats(const nb_norm_rows *s);
void nb_norm_rows_backward(const nb_norm_rows *s, const float *x, const float *weight,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           float *dweight, float *dbias, float *scratch, bool assign_dx);
void nb_norm_rows_backward_ref(const nb_norm_rows *s, const double *x, const double *weight,
                               const double *mean, const double *rstd, const double *dy,
                               double *dx, double *dweight, double *dbias);

/* The op glue layer_norm, rms_norm and group_norm share: run the rows on
 * ctx's inputs (x is input 0; weight_input and bias_input are input
 * numbers, or -1 when absent), keeping mean and rstd for the backward. */
int nb_norm_op_forward(nb_op_ctx *ctx, const nb_norm_rows *s, int weight_input, int bias_input);
int nb_norm_op_backward(nb_op_ctx *ctx, const nb_norm_rows *s, int weight_input, int bias_input);

/* backward_ops of the normalisations (norm_grad.c): the backward above
 * written with ops. x (input 0) is viewed as dims[ndim]; its statistics
 * run over the `stat` dims and weight/bias index the dims outside `param`
 * (they are x's view with those dims 1). The statistics are recomputed
 * from x with ops, so the rule differentiates again through mean and
 * variance; batch_norm's eval mode passes its running statistics as
 * constants (mean, rstd in the view with the stat dims 1) instead, and
 * then dx = rstd weight dy. */
typedef struct nb_norm_view {
    int ndim;
    int64_t dims[4];
    int n_stat, stat[3];
    int n_param, param[3];
    bool center;            /* false: rms (no mean taken out) */
    double eps;
    nb_tensor *mean, *rstd; /* constants, or NULL: the batch's, recorded */
} nb_norm_view;
/* The rows above as a view [rows/groups, groups, length/spread, spread]. */
nb_norm_view nb_norm_rows_view(const nb_norm_rows *s);
int nb_norm_backward_ops(nb_op_ctx *ctx, const nb_norm_view *v, int weight_input, int bias_input,
                         nb_tensor *g, nb_tensor **grads);

#endif
