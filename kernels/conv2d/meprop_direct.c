/* conv2d's meProp backward without im2col, for stride 1 and dilation 1
 * (LeNet-style layers), float32.
 *
 * With few kept channels the unfolding would cost as much as the products
 * it feeds, so the kept channels are convolved directly. For image n and
 * kept channel c (group g), with x and dx read as zero outside the image:
 *   dW[c,ci,i,j]             += sum_{oh,ow} dy[n,c,oh,ow] x[n,ci,oh-ph+i,ow-pw+j]
 *   dx[n,ci,oh-ph+i,ow-pw+j] += W[c,ci,i,j] dy[n,c,oh,ow]
 * for ci in group g: k/K of the dense multiply-adds and no unfolding. Each
 * (i, j) tap walks whole output rows, so the inner loops run over ow and
 * vectorise; the dW sum is kept per ow lane, then added up in lane order
 * (a fixed order: results do not depend on the machine's thread count).
 * Images are independent for dx, so dx runs in parallel over images; dW
 * sums over images and runs in image order on one thread. */
#include <string.h>

#include "nabla/threads.h"
#include "kernels/meprop_rows.h"
#include "base/cpu.h"

bool nb_meprop_conv2d_direct_applies(const nb_conv2d_geometry *g)
{
    return g->stride_h == 1 && g->stride_w == 1 && g->dil_h == 1 && g->dil_w == 1;
}

/* The output rows [*first, *end) and columns whose tap (i, j) lands inside
 * the image. */
static void tap_range(const nb_conv2d_geometry *g, int64_t i, int64_t j, int64_t *oh0,
                      int64_t *oh1, int64_t *ow0, int64_t *ow1)
{
    *oh0 = g->pad_h - i > 0 ? g->pad_h - i : 0;
    *oh1 = g->H + g->pad_h - i < g->OH ? g->H + g->pad_h - i : g->OH;
    *ow0 = g->pad_w - j > 0 ? g->pad_w - j : 0;
    *ow1 = g->W + g->pad_w - j < g->OW ? g->W + g->pad_w - j : g->OW;
}

/* dW_c [kh,kw] += the taps of one image's kept channel c against input
 * channel ci: dy_c [OH,OW], x_ci [H,W]. lane[ow] collects column ow's
 * terms of a tap, then the lanes are added in order. */
NB_KERNEL_BODY void channel_weight_gradient_body(const nb_conv2d_geometry *g,
                                                     const float *dy_c, const float *x_ci,
                                                     float *dw_c, float *restrict lane)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t oh0, oh1, ow0, ow1;
            tap_range(g, i, j, &oh0, &oh1, &ow0, &ow1);
            if (oh0 >= oh1 || ow0 >= ow1) continue;
            for (int64_t ow = ow0; ow < ow1; ow++) lane[ow] = 0.0f;
            for (int64_t oh = oh0; oh < oh1; oh++) {
                const float *restrict dy_row = dy_c + oh * g->OW;
                const float *restrict x_row = x_ci + (oh - g->pad_h + i) * g->W + (j - g->pad_w);
                for (int64_t ow = ow0; ow < ow1; ow++) lane[ow] += dy_row[ow] * x_row[ow];
            }
            float sum = 0.0f;
            for (int64_t ow = ow0; ow < ow1; ow++) sum += lane[ow];
            dw_c[i * g->kw + j] += sum;
        }
}

NB_TARGET_AVX512 static void channel_weight_gradient_avx512(const nb_conv2d_geometry *g, const float *dy_c, const float *x_ci, float *dw_c, float *restrict lane)
{
    channel_weight_gradient_body(g, dy_c, x_ci, dw_c, lane);
}

NB_TARGET_AVX2 static void channel_weight_gradient_avx2(const nb_conv2d_geometry *g, const float *dy_c, const float *x_ci, float *dw_c, float *restrict lane)
{
    channel_weight_gradient_body(g, dy_c, x_ci, dw_c, lane);
}

static void channel_weight_gradient_portable(const nb_conv2d_geometry *g, const float *dy_c, const float *x_ci, float *dw_c, float *restrict lane)
{
    channel_weight_gradient_body(g, dy_c, x_ci, dw_c, lane);
}

/* The version for the CPU level in force (base/cpu.h). */
static void channel_weight_gradient(const nb_conv2d_geometry *g, const float *dy_c, const float *x_ci, float *dw_c, float *restrict lane)
{
    static void (*const by_level[NB_CPU_LEVELS])(const nb_conv2d_geometry *g, const float *dy_c, const float *x_ci, float *dw_c, float *restrict lane) = {
        channel_weight_gradient_portable, channel_weight_gradient_avx2, channel_weight_gradient_avx512};
    by_level[nb_cpu_level_now()](g, dy_c, x_ci, dw_c, lane);
}

/* dx_ci [H,W] += every tap of w_c [kh,kw] applied to dy_c [OH,OW]. */
NB_KERNEL_BODY void channel_input_gradient_body(const nb_conv2d_geometry *g,
                                                    const float *w_c, const float *dy_c,
                                                    float *dx_ci)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t oh0, oh1, ow0, ow1;
            tap_range(g, i, j, &oh0, &oh1, &ow0, &ow1);
            float weight = w_c[i * g->kw + j];
            for (int64_t oh = oh0; oh < oh1; oh++) {
                const float *restrict dy_row = dy_c + oh * g->OW;
                float *restrict dx_row = dx_ci + (oh - g->pad_h + i) * g->W + (j - g->pad_w);
                for (int64_t ow = ow0; ow < ow1; ow++) dx_row[ow] += weight * dy_row[ow];
            }
        }
}

NB_TARGET_AVX512 static void channel_input_gradient_avx512(const nb_conv2d_geometry *g, const float *w_c, const float *dy_c, float *dx_ci)
{
    channel_input_gradient_body(g, w_c, dy_c, dx_ci);
}

NB_TARGET_AVX2 static void channel_input_gradient_avx2(const nb_conv2d_geometry *g, const float *w_c, const float *dy_c, float *dx_ci)
{
    channel_input_gradient_body(g, w_c, dy_c, dx_ci);
}

static void channel_input_gradient_portable(const nb_conv2d_geometry *g, const float *w_c, const float *dy_c, float *dx_ci)
{
    channel_input_gradient_body(g, w_c, dy_c, dx_ci);
}

/* The version for the CPU level in force (base/cpu.h). */
static void channel_input_gradient(const nb_conv2d_geometry *g, const float *w_c, const float *dy_c, float *dx_ci)
{
    static void (*const by_level[NB_CPU_LEVELS])(const nb_conv2d_geometry *g, const float *w_c, const float *dy_c, float *dx_ci) = {
        channel_input_gradient_portable, channel_input_gradient_avx2, channel_input_gradient_avx512};
    by_level[nb_cpu_level_now()](g, w_c, dy_c, dx_ci);
}

typedef struct direct_job {
    const nb_conv2d_geometry *g;
    const int32_t *index;
    int64_t index_step, k;
    const float *w, *dy;
    float *dx;
} direct_job;

/* dx for images [begin, end): each image's slice of dx is its own. */
static void input_gradient_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const direct_job *job = context;
    const nb_conv2d_geometry *g = job->g;
    int64_t plane = g->OH * g->OW, Cg = g->C / g->groups, Kg = g->K / g->groups;
    for (int64_t n = begin; n < end; n++) {
        const int32_t *S = job->index + n * job->index_step;
        for (int64_t t = 0; t < job->k; t++) {
            int64_t c = S[t], first = c / Kg * Cg;
            const float *dy_c = job->dy + (n * g->K + c) * plane;
            for (int64_t cc = 0; cc < Cg; cc++) {
                float *dx_ci = job->dx + (n * g->C + first + cc) * g->H * g->W;
                channel_input_gradient(g, job->w + (c * Cg + cc) * g->kh * g->kw, dy_c, dx_ci);
            }
        }
    }
}

void nb_meprop_conv2d_direct(const nb_conv2d_geometry *g, const int32_t *index,
                             int64_t index_step, int64_t k, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *lane)
{
    int64_t plane = g->OH * g->OW, Cg = g->C / g->groups, Kg = g->K / g->groups;
    for (int64_t n = 0; dw && n < g->N; n++) {
        const int32_t *S = index + n * index_step;
        for (int64_t t = 0; t < k; t++) {
            int64_t c = S[t], first = c / Kg * Cg;
            const float *dy_c = dy + (n * g->K + c) * plane;
            for (int64_t cc = 0; cc < Cg; cc++) {
                const float *x_ci = x + (n * g->C + first + cc) * g->H * g->W;
                channel_weight_gradient(g, dy_c, x_ci, dw + (c * Cg + cc) * g->kh * g->kw, lane);
            }
        }
    }
    if (!dx) return;
    direct_job job = {g, index, index_step, k, w, dy, dx};
    int64_t work = k * Cg * g->kh * g->kw * plane;
    nb_parallel_for(g->N, work >= 32768 ? 1 : 32768 / (work > 0 ? work : 1),
                    input_gradient_range, &job);
}
