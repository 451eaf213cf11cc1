/* relu: y = max(x, 0). The gradient at exactly 0 is taken as 0, as in
 * PyTorch. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "base/parallel.h"
#include "base/cpu.h"
#include "ops/grad_ops.h"

/* x, y: [n]. Branch-free, so it vectorises (signs are random: a branch
 * would mispredict half the time). */
NB_KERNEL_BODY void relu_forward_body(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

NB_TARGET_AVX512 static void relu_forward_avx512(const float *restrict x, float *restrict y, int64_t n)
{
    relu_forward_body(x, y, n);
}

NB_TARGET_AVX2 static void relu_forward_avx2(const float *restrict x, float *restrict y, int64_t n)
{
    relu_forward_body(x, y, n);
}

static void relu_forward_portable(const float *restrict x, float *restrict y, int64_t n)
{
    relu_forward_body(x, y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void relu_forward(const float *restrict x, float *restrict y, int64_t n)
{
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict x, float *restrict y, int64_t n) = {
        relu_forward_portable, relu_forward_avx2, relu_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n);
}

static void relu_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

/* dx += dy * [x > 0], or dx = dy * [x > 0] into a fresh buffer; x, dy,
 * dx: [n] */
NB_KERNEL_BODY void relu_backward_body(const float *restrict x, const float *restrict dy,
                                           float *restrict dx, int64_t n, bool assign)
{
    if (assign)
        for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
    else
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

NB_TARGET_AVX512 static void relu_backward_avx512(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, bool assign)
{
    relu_backward_body(x, dy, dx, n, assign);
}

NB_TARGET_AVX2 static void relu_backward_avx2(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, bool assign)
{
    relu_backward_body(x, dy, dx, n, assign);
}

static void relu_backward_portable(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, bool assign)
{
    relu_backward_body(x, dy, dx, n, assign);
}

/* The version for the CPU level in force (base/cpu.h). */
static void relu_backward(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, bool assign)
{
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, bool assign) = {
        relu_backward_portable, relu_backward_avx2, relu_backward_avx512};
    by_level[nb_cpu_level_now()](x, dy, dx, n, assign);
}

static void relu_backward_ref(const double *x, const double *dy, double *dx, int64_t n,
                              bool assign)
{
    for (int64_t i = 0; i < n; i++) dx[i] = (assign ? 0.0 : dx[i]) + (x[i] > 0.0 ? dy[i] : 0.0);
}

/* Float32 work split across the threads by nb_parallel_ranges (each
 * element is computed alone, so the split never changes a result). */
typedef struct relu_job {
    const float *x, *dy;
    float *y, *dx;
    bool assign;
} relu_job;

static void forward_range(void *context, int64_t begin, int64_t length)
{
    const relu_job *job = context;
    relu_forward(job->x + begin, job->y + begin, length);
}

static void backward_range(void *context, int64_t begin, int64_t length)
{
    const relu_job *job = context;
    relu_backward(job->x + begin, job->dy + begin, job->dx + begin, length, job->assign);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    relu_job job = {.x = x->data, .y = ctx->output->data};
    if (x->dtype == NB_FLOAT32) nb_parallel_ranges(x->numel, forward_range, &job);
    else relu_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    relu_job job = {.x = x->data, .dy = ctx->output_grad->data, .dx = dx->data,
                    .assign = nb_grad_fresh(ctx, 0)};
    if (x->dtype == NB_FLOAT32) nb_parallel_ranges(x->numel, backward_range, &job);
    else relu_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel, job.assign);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "|x| >= 0.1, away from the kink at 0";
    return nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.1);
}

/* [x > 0] as a constant of x's shape and dtype: ReLU's slope, whose own
 * derivative is zero. A plain loop, not nb_pointwise_constant: ReLU nets
 * build this mask in every recorded backward. */
static nb_tensor *relu_mask(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *mask = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    if (!mask) return NULL;
    if (x->dtype == NB_FLOAT32) {
        const float *xd = x->data;
        float *md = mask->data;
        for (int64_t i = 0; i < x->numel; i++) md[i] = xd[i] > 0.0f ? 1.0f : 0.0f;
    } else {
        const double *xd = x->data;
        double *md = mask->data;
        for (int64_t i = 0; i < x->numel; i++) md[i] = xd[i] > 0.0 ? 1.0 : 0.0;
    }
    return mask;
}

/* dx = dy [x > 0] */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, relu_mask(ctx));
    return NB_OK;
}

const nb_op nb_op_relu = {
    .name = "relu", .min_inputs = 1, .max_inputs = 1, .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_relu(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_relu, 1, &x, NULL); }
