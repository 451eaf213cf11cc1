/* relu: y = max(x, 0). The gradient at exactly 0 is taken as 0, as in
 * PyTorch. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "base/parallel.h"
#include "base/cpu.h"

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

/* Float32 work in chunks of about NB_ELEMENTWISE_GRAIN elements, as many
 * for each thread, handed out to the threads (each element is computed
 * alone, so the split never changes a result). */
typedef struct relu_job {
    const float *x, *dy;
    float *y, *dx;
    int64_t n, chunk;
    bool assign;
} relu_job;

static int64_t chunk_length(const relu_job *job, int64_t begin)
{
    return job->n - begin < job->chunk ? job->n - begin : job->chunk;
}

static void forward_chunk(void *context, int64_t chunk, int worker)
{
    (void)worker;
    const relu_job *job = context;
    int64_t begin = chunk * job->chunk;
    relu_forward(job->x + begin, job->y + begin, chunk_length(job, begin));
}

static void backward_chunk(void *context, int64_t chunk, int worker)
{
    (void)worker;
    const relu_job *job = context;
    int64_t begin = chunk * job->chunk;
    relu_backward(job->x + begin, job->dy + begin, job->dx + begin, chunk_length(job, begin),
                  job->assign);
}

static void run(relu_job *job, nb_task_fn fn)
{
    int64_t chunks = nb_balanced_tasks((job->n + NB_ELEMENTWISE_GRAIN - 1) / NB_ELEMENTWISE_GRAIN);
    if (chunks < 1) return;
    job->chunk = (job->n + chunks - 1) / chunks;
    nb_parallel_tasks((job->n + job->chunk - 1) / job->chunk, nb_parallel_slots(), fn, job);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    relu_job job = {.x = x->data, .y = ctx->output->data, .n = x->numel};
    if (x->dtype == NB_FLOAT32) run(&job, forward_chunk);
    else relu_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    relu_job job = {.x = x->data, .dy = ctx->output_grad->data, .dx = dx->data, .n = x->numel,
                    .assign = nb_grad_fresh(ctx, 0)};
    if (x->dtype == NB_FLOAT32) run(&job, backward_chunk);
    else relu_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel, job.assign);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "|x| >= 0.1, away from the kink at 0";
    return nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.1);
}

const nb_op nb_op_relu = {
    .name = "relu", .min_inputs = 1, .max_inputs = 1, .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_relu(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_relu, 1, &x, NULL); }
