/* Internal: the window geometry of 2-D pooling, max-pooling's general loops
 * (kernels/max_pool2d.c) and the float32 fast path for 2x2 windows with
 * stride 2 (kernels/pool2d_fast.c). Kernels only: the
 * geometry's validation with PyTorch's rules is the ops' side,
 * ops/pooling/pool2d.h. */
#ifndef NABLA_KERNELS_POOL2D_H
#define NABLA_KERNELS_POOL2D_H

#include <stdbool.h>
#include <stdint.h>

typedef struct nb_pool2d_geometry {
    int64_t N, C, H, W;          /* input [N,C,H,W] */
    int64_t OH, OW;              /* output [N,C,OH,OW] */
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
} nb_pool2d_geometry;

/* max_pool2d's forward on one thread (kernels/max_pool2d.c), for callers that
 * pool a slice in their own task: x [N,C,H,W] -> y, argmax [N,C,OH,OW]
 * (argmax: flat index in the H*W plane, -1 for a window without a real
 * cell). The 2x2 fast kernel when it applies, else the general loop. */
void nb_max_pool2d_forward_f32(const nb_pool2d_geometry *g, const float *x, float *y,
                               int32_t *argmax);
/* The general loop alone, float32, even where the fast path applies. */
void nb_max_pool2d_general_f32(const nb_pool2d_geometry *g, const float *x, float *y,
                               int32_t *argmax);
void nb_max_pool2d_forward_f64(const nb_pool2d_geometry *g, const double *x, double *y,
                               int32_t *argmax);
/* The backward's routing, on one thread: dx[plane, argmax] += dy for every
 * output, or with `gate` (not NULL) only where gate > 0 (a ReLU before the
 * pool: its gradient passes where the pooled value is positive). */
void nb_max_pool2d_route_f32(const nb_pool2d_geometry *g, const int32_t *argmax,
                             const float *dy, const float *gate, float *dx);
void nb_max_pool2d_route_f64(const nb_pool2d_geometry *g, const int32_t *argmax,
                             const double *dy, const double *gate, double *dx);

/* The float32 fast path for 2x2 windows with stride 2, no padding and no
 * dilation (kernels/pool2d_fast.c): vectorised, threaded over planes, with the
 * same values, argmax indices and tie/NaN rules as the general loop. */
bool nb_max_pool2d_fast_applies(const nb_pool2d_geometry *g);
void nb_max_pool2d_fast_forward(const nb_pool2d_geometry *g, const float *x, float *y,
                                int32_t *argmax);
/* Planes [begin, end) of that forward on the calling thread. */
void nb_max_pool2d_fast_planes(const nb_pool2d_geometry *g, int64_t begin, int64_t end,
                               const float *x, float *y, int32_t *argmax);
/* The backward of planes [begin, end) on the calling thread, assigning:
 * dy at each window's argmax (with gate, only where gate > 0), zeros
 * elsewhere. Plane p of dx starts at dx + p * plane_stride and has
 * H rows of row_stride (>= W) elements, all written (zeros past W). */
void nb_max_pool2d_fast_unpool(const nb_pool2d_geometry *g, int64_t begin, int64_t end,
                               const int32_t *argmax, const float *dy, const float *gate,
                               float *dx, int64_t row_stride, int64_t plane_stride);
/* dx[argmax] += dy, or with `assign` (a fresh dx) each plane zeroed first. */
void nb_max_pool2d_fast_backward(const nb_pool2d_geometry *g, const int32_t *argmax,
                                 const float *dy, float *dx, bool assign);

#endif
