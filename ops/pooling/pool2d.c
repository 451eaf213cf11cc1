/* Window geometry and validation shared by the 2-D pools, and the plane
 * maps' adjoint (ops/pooling/pool2d.h). */
#include "ops/pooling/pool2d.h"

#include <stdio.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* Floor division for a possibly negative numerator (PyTorch's div_rtn). */
static int64_t floor_divide(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t nb_pool2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                              int64_t dilation, bool ceil_mode)
{
    int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    int64_t out = floor_divide(span, stride) + 1;
    /* The last window must start inside the input or the left padding. */
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

int nb_pool2d_geometry_init(nb_op_ctx *ctx, const int kernel[2], const int stride[2],
                            const int padding[2], const int *dilation, bool ceil_mode,
                            nb_pool2d_geometry *g)
{
    const nb_tensor *x = ctx->inputs[0];
    char shape[96], sx[104];
    snprintf(sx, sizeof sx, "input %s", nb_input_shape(ctx, 0, shape, sizeof shape));
    if (x->ndim != 4) return nb_op_error(ctx, "%s must be 4-D [N,C,H,W]", sx);
    return nb_pool2d_geometry_of(ctx, x->shape, sx, kernel, stride, padding, dilation, ceil_mode, g);
}

int nb_pool2d_geometry_of(nb_op_ctx *ctx, const int64_t dims[4], const char *sx,
                          const int kernel[2], const int stride[2], const int padding[2],
                          const int *dilation, bool ceil_mode, nb_pool2d_geometry *g)
{
    int64_t k[2], s[2], p[2], d[2], out[2];
    for (int a = 0; a < 2; a++) {
        if (kernel[a] < 1)
            return nb_op_error(ctx, "%s: kernel [%d,%d] must be >= 1", sx, kernel[0],
                               kernel[1]);
        if (stride[a] < 0)
            return nb_op_error(ctx, "%s: stride [%d,%d] must be >= 1 (0: = kernel)", sx,
                               stride[0], stride[1]);
        if (padding[a] < 0)
            return nb_op_error(ctx, "%s: negative padding [%d,%d]", sx, padding[0],
                               padding[1]);
        if (dilation && dilation[a] < 0)
            return nb_op_error(ctx, "%s: dilation [%d,%d] must be >= 1 (0: 1)", sx,
                               dilation[0], dilation[1]);
        if (padding[a] > kernel[a] / 2)
            return nb_op_error(ctx, "%s: padding [%d,%d] must be at most half of kernel "
                               "[%d,%d]", sx, padding[0], padding[1], kernel[0], kernel[1]);
        k[a] = kernel[a];
        s[a] = stride[a] ? stride[a] : kernel[a];
        p[a] = padding[a];
        d[a] = dilation && dilation[a] ? dilation[a] : 1;
        out[a] = nb_pool2d_output_size(dims[2 + a], k[a], s[a], p[a], d[a], ceil_mode);
    }
    if (out[0] < 1 || out[1] < 1)
        return nb_op_error(ctx, "%s padded by [%lld,%lld] is smaller than the (dilated) "
                           "kernel %lldx%lld: output would be %lldx%lld", sx, (long long)p[0],
                           (long long)p[1], (long long)(d[0] * (k[0] - 1) + 1),
                           (long long)(d[1] * (k[1] - 1) + 1), (long long)out[0],
                           (long long)out[1]);
    *g = (nb_pool2d_geometry){
        .N = dims[0], .C = dims[1], .H = dims[2], .W = dims[3],
        .OH = out[0], .OW = out[1], .kernel_h = k[0], .kernel_w = k[1],
        .stride_h = s[0], .stride_w = s[1], .pad_h = p[0], .pad_w = p[1],
        .dil_h = d[0], .dil_w = d[1],
    };
    return NB_OK;
}

nb_tensor *nb_plane_map_matrix(nb_tape *tape, nb_dtype dtype, int64_t rows, int64_t cols)
{
    return nb_tape_tensor(tape, dtype, 2, (const int64_t[]){rows, cols}, NULL);
}

nb_tensor *nb_plane_map_adjoint(nb_tape *tape, nb_tensor *g, nb_tensor *a, nb_tensor *b)
{
    if (!g || !a || !b || g->numel == 0) return NULL;
    int64_t OH = a->shape[0], H = a->shape[1], OW = b->shape[0], W = b->shape[1];
    /* columns: g B, rows [planes*OH, W]; then A^T on each plane's columns */
    nb_tensor *t = nb_matmul(tape, nb_reshape(tape, g, 2, (const int64_t[]){-1, OW}), b);
    t = nb_transpose(tape, nb_reshape(tape, t, 3, (const int64_t[]){-1, OH, W}), 1, 2);
    t = nb_transpose(tape, nb_matmul(tape, t, a), 1, 2);
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < g->ndim - 2; d++) shape[d] = g->shape[d];
    shape[g->ndim - 2] = H;
    shape[g->ndim - 1] = W;
    return nb_reshape(tape, t, g->ndim, shape);
}
