#include "base/parallel.h"
#include "ops/elementwise/unary.h"

typedef struct unary_job {
    const nb_unary_kernels *kernels;
    const void *params;
    const float *x, *y, *dy;
    float *out;                 /* y in the forward, dx in the backward */
    int64_t n, chunk;
} unary_job;

static int64_t chunk_length(const unary_job *job, int64_t begin)
{
    return job->n - begin < job->chunk ? job->n - begin : job->chunk;
}

static void forward_chunk(void *context, int64_t chunk, int worker)
{
    (void)worker;
    const unary_job *job = context;
    int64_t begin = chunk * job->chunk;
    job->kernels->forward_f32(job->x + begin, job->out + begin, chunk_length(job, begin),
                              job->params);
}

static void backward_chunk(void *context, int64_t chunk, int worker)
{
    (void)worker;
    const unary_job *job = context;
    int64_t begin = chunk * job->chunk;
    job->kernels->backward_f32(job->x + begin, job->y + begin, job->dy + begin, job->out + begin,
                               chunk_length(job, begin), job->params);
}

static void run(unary_job *job, nb_task_fn fn)
{
    int64_t chunks = nb_balanced_tasks((job->n + NB_ELEMENTWISE_GRAIN - 1) / NB_ELEMENTWISE_GRAIN);
    if (chunks < 1) return;
    job->chunk = (job->n + chunks - 1) / chunks;
    nb_parallel_tasks((job->n + job->chunk - 1) / job->chunk, nb_parallel_slots(), fn, job);
}

int nb_unary_forward(nb_op_ctx *ctx, const nb_unary_kernels *kernels)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT64) {
        kernels->forward_f64(x->data, ctx->output->data, x->numel, ctx->params);
        return NB_OK;
    }
    unary_job job = {.kernels = kernels, .params = ctx->params, .x = x->data,
                     .out = ctx->output->data, .n = x->numel};
    run(&job, forward_chunk);
    return NB_OK;
}

int nb_unary_backward(nb_op_ctx *ctx, const nb_unary_kernels *kernels)
{
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (x->dtype == NB_FLOAT64) {
        kernels->backward_f64(x->data, y->data, dy->data, dx->data, x->numel, ctx->params);
        return NB_OK;
    }
    unary_job job = {.kernels = kernels, .params = ctx->params, .x = x->data, .y = y->data,
                     .dy = dy->data,
                     .out = dx->data, .n = x->numel};
    run(&job, backward_chunk);
    return NB_OK;
}
