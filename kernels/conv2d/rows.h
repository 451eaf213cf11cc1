/* Internal: row helpers of conv2d's implicit-GEMM path
 * (kernels/conv2d/implicit.c, kernels/conv2d/unfold.c). */
#ifndef NABLA_OPS_CONV2D_ROWS_H
#define NABLA_OPS_CONV2D_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv2d/im2col.h"

/* col2im for one image: dx [C,H,W] += the fold of dcol [C*kh*kw, OH*OW]
 * (row stride `columns`), or dx = the fold with `assign` (dx may then hold
 * anything), for stride 1 and dilation 1. Each dx vector is
 * summed in registers over the kh*kw taps that reach it, then stored once
 * (adding rows one tap at a time would stall on store forwarding). */
void nb_conv_col2im(const nb_conv2d_geometry *g, const float *dcol, int64_t columns, float *dx,
                    bool assign);

/* Writes `rows` rows of target (row stride target_stride): each is `left`
 * zeros, then `width` floats of source (row stride source_stride), then
 * zeros up to target_stride. Every target element of those rows is
 * written, so the buffer needs no clearing first. */
void nb_conv_rows_pad(const float *source, int64_t source_stride, int64_t width, float *target,
                      int64_t target_stride, int64_t left, int64_t rows);

/* in [channels, height, width] into out [channels, padded_h, padded_w]:
 * pad_h zero rows, then each row with pad_w zeros before it and zeros up
 * to padded_w, then zero rows up to padded_h. Every element of out is
 * written, so it needs no clearing first. */
void nb_conv_pad_planes(const float *in, int64_t channels, int64_t height, int64_t width,
                        int64_t pad_h, int64_t pad_w, int64_t padded_h, int64_t padded_w,
                        float *out);

/* Sum of x[0..n) in double over 32 interleaved partial sums added in a
 * fixed order (the result depends on n and the values only). */
double nb_conv_sum(const float *x, int64_t n);

/* A fused ReLU (nb_conv2d_relu): y[i] = max(y[i], 0) in place, on an
 * image's output while it is still in cache. */
void nb_conv_rectify(float *y, int64_t n);
/* Its gradient mask: masked[i] = y[i] > 0 ? dy[i] : 0 for the rectified
 * output y (positive exactly where the pre-activation is). */
void nb_conv_relu_mask(const float *y, const float *dy, float *masked, int64_t n);

/* The same mask kept as bits, 1/32 of y to read back in the backward:
 * bit i % 16 of bits[i / 16] is y[i] > 0. nb_conv_rectify_bits rectifies
 * y [n] and writes its ceil(n/16) words; nb_conv_relu_mask_bits is
 * nb_conv_relu_mask from the bits. */
void nb_conv_rectify_bits(float *y, int64_t n, uint16_t *bits);
void nb_conv_relu_mask_bits(const uint16_t *bits, const float *dy, float *masked, int64_t n);
/* nb_conv_rows_pad with no left zeros, each value counted only where its
 * bit is set: element r*source_stride + i of source has bit first_bit +
 * r*source_stride + i. Reads the word after the last bit's. */
void nb_conv_rows_pad_bits(const float *source, int64_t source_stride, int64_t width,
                           float *target, int64_t target_stride, int64_t rows,
                           const uint16_t *bits, int64_t first_bit);

#endif
