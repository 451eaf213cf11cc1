#include "ops/normalization/norm_rows.h"

#include <math.h>

#include "base/cpu.h"
#include "base/parallel.h"

enum {
    LANES = 16,          /* float partial sums: one AVX-512 register */
    COLUMN_BLOCK = 64,   /* weight-gradient columns per task */
};

int64_t nb_norm_channels(const nb_norm_rows *s) { return s->groups * (s->length / s->spread); }

size_t nb_norm_scratch_floats(const nb_norm_rows *s)
{
    return (size_t)nb_parallel_slots() * 2 * (size_t)s->length;
}

NB_KERNEL_BODY int64_t channel_of(const nb_norm_rows *s, int64_t r, int64_t i)
{
    return (r % s->groups) * (s->length / s->spread) + i / s->spread;
}

/* The LANES partial sums added pairwise (a fixed tree, so a fixed order):
 * a few vector adds rather than LANES scalar conversions per row. */
NB_KERNEL_BODY double lanes_total(float *lane)
{
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++) lane[j] += lane[j + width];
    return lane[0];
}

/* sum_i (x[i] - shift)^power over a row, power 1 or 2, in LANES float
 * partial sums (vectorised), the tail added in double. */
NB_KERNEL_BODY double row_sum(const float *x, int64_t n, float shift, int power)
{
    float lane[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = x[i + j] - shift;
            lane[j] += power == 2 ? d * d : d;
        }
    double total = lanes_total(lane);
    for (; i < n; i++) {
        double d = (double)x[i] - shift;
        total += power == 2 ? d * d : d;
    }
    return total;
}

/* sum_i a[i] * b[i] and sum_i a[i], in LANES float partial sums. */
NB_KERNEL_BODY void row_dot(const float *a, const float *b, int64_t n, double *dot, double *sum)
{
    float lane_dot[LANES] = {0}, lane_sum[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            lane_dot[j] += a[i + j] * b[i + j];
            lane_sum[j] += a[i + j];
        }
    *dot = lanes_total(lane_dot);
    *sum = lanes_total(lane_sum);
    for (; i < n; i++) {
        *dot += (double)a[i] * b[i];
        *sum += a[i];
    }
}

typedef struct rows_job {
    const nb_norm_rows *s;
    const float *x, *weight, *bias, *mean, *rstd, *dy;
    float *y, *mean_out, *rstd_out, *dx, *dweight, *dbias, *scratch;
    int64_t rows_per_task;
    bool assign_dx;       /* dx is fresh: assign rather than add */
} rows_job;

/* x [length] -> y [length], one row */
NB_KERNEL_BODY void forward_row(const rows_job *job, int64_t r)
{
    const nb_norm_rows *s = job->s;
    int64_t n = s->length;
    const float *x = job->x + r * n;
    float *y = job->y + r * n;
    float mean = s->center ? (float)(row_sum(x, n, 0.0f, 1) / (double)n) : 0.0f;
    float rstd = (float)(1.0 / sqrt(row_sum(x, n, mean, 2) / (double)n + s->eps));
    job->mean_out[r] = mean;
    job->rstd_out[r] = rstd;
    if (s->spread == 1 && s->groups == 1) {   /* layer norm: channel = i */
        for (int64_t i = 0; i < n; i++) {
            float v = (x[i] - mean) * rstd;
            y[i] = (job->weight ? v * job->weight[i] : v) + (job->bias ? job->bias[i] : 0.0f);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = channel_of(s, r, i);
        float v = (x[i] - mean) * rstd;
        y[i] = (job->weight ? v * job->weight[c] : v) + (job->bias ? job->bias[c] : 0.0f);
    }
}

/* dx [length] += ..., one row; g and xhat go through the worker's scratch */
/* Layer norm's row (channel = i; weight [n] or NULL): the two sums and
 * dx straight from x, dy and the weight, with no scratch passes. */
NB_KERNEL_BODY void backward_row_columns(const rows_job *job, int64_t r)
{
    const nb_norm_rows *s = job->s;
    int64_t n = s->length, i = 0;
    const float *x = job->x + r * n, *dy = job->dy + r * n, *w = job->weight;
    float mean = job->mean[r], rstd = job->rstd[r];
    float lane_g[LANES] = {0}, lane_gx[LANES] = {0};
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float g = w ? dy[i + j] * w[i + j] : dy[i + j];
            lane_g[j] += g;
            lane_gx[j] += g * ((x[i + j] - mean) * rstd);
        }
    double sum = lanes_total(lane_g), dot = lanes_total(lane_gx);
    for (; i < n; i++) {
        float g = w ? dy[i] * w[i] : dy[i];
        sum += g;
        dot += (double)g * ((x[i] - mean) * rstd);
    }
    float mean_g = s->center ? (float)(sum / (double)n) : 0.0f, mean_gx = (float)(dot / (double)n);
    float *dx = job->dx + r * n;
    for (i = 0; i < n; i++) {
        float g = w ? dy[i] * w[i] : dy[i];
        float d = rstd * (g - mean_g - (x[i] - mean) * rstd * mean_gx);
        dx[i] = job->assign_dx ? d : dx[i] + d;   /* a fresh buffer is not read */
    }
}

/* Group norm's row (channel = i / spread): g and xhat through scratch. */
NB_KERNEL_BODY void backward_row(const rows_job *job, int64_t r, float *g, float *xhat)
{
    const nb_norm_rows *s = job->s;
    int64_t n = s->length;
    if (s->spread == 1 && s->groups == 1) {
        backward_row_columns(job, r);
        return;
    }
    const float *x = job->x + r * n, *dy = job->dy + r * n;
    float mean = job->mean[r], rstd = job->rstd[r];
    for (int64_t i = 0; i < n; i++) xhat[i] = (x[i] - mean) * rstd;
    if (!job->weight)
        for (int64_t i = 0; i < n; i++) g[i] = dy[i];
    else
        for (int64_t i = 0; i < n; i++) g[i] = dy[i] * job->weight[channel_of(s, r, i)];
    double dot, sum;
    row_dot(g, xhat, n, &dot, &sum);
    float mean_g = s->center ? (float)(sum / (double)n) : 0.0f, mean_gx = (float)(dot / (double)n);
    float *dx = job->dx + r * n;
    if (job->assign_dx)   /* a fresh buffer: no read of its old contents */
        for (int64_t i = 0; i < n; i++) dx[i] = rstd * (g[i] - mean_g - xhat[i] * mean_gx);
    else
        for (int64_t i = 0; i < n; i++) dx[i] += rstd * (g[i] - mean_g - xhat[i] * mean_gx);
}

NB_KERNEL_BODY void forward_task_body(void *ctx, int64_t task, int worker)
{
    (void)worker;
    const rows_job *job = ctx;
    int64_t end = (task + 1) * job->rows_per_task;
    for (int64_t r = task * job->rows_per_task; r < end && r < job->s->rows; r++) forward_row(job, r);
}

NB_KERNEL_BODY void backward_task_body(void *ctx, int64_t task, int worker)
{
    const rows_job *job = ctx;
    float *g = job->scratch + (int64_t)worker * 2 * job->s->length, *xhat = g + job->s->length;
    int64_t end = (task + 1) * job->rows_per_task;
    for (int64_t r = task * job->rows_per_task; r < end && r < job->s->rows; r++)
        backward_row(job, r, g, xhat);
}

/* Weight and bias gradients for the channels of one task: the sums over
 * rows run in row order whatever thread runs the task. */
NB_KERNEL_BODY void affine_task_body(void *ctx, int64_t task, int worker)
{
    (void)worker;
    const rows_job *job = ctx;
    const nb_norm_rows *s = job->s;
    int64_t n = s->length, per_group = n / s->spread;
    int64_t first = task * COLUMN_BLOCK, channels = nb_norm_channels(s);
    int64_t last = first + COLUMN_BLOCK < channels ? first + COLUMN_BLOCK : channels;
    if (s->spread == 1 && s->groups == 1) {
        /* Channel = column: rows outer, the block's columns inner, so the
         * reads are contiguous and the sums vectorise (still row order). */
        float dw[COLUMN_BLOCK] = {0}, db[COLUMN_BLOCK] = {0};
        int64_t width = last - first;
        for (int64_t r = 0; r < s->rows; r++) {
            const float *x = job->x + r * n + first, *dy = job->dy + r * n + first;
            float mean = job->mean[r], rstd = job->rstd[r];
            for (int64_t c = 0; c < width; c++) {
                dw[c] += dy[c] * ((x[c] - mean) * rstd);
                db[c] += dy[c];
            }
        }
        for (int64_t c = 0; c < width; c++) {
            if (job->dweight) job->dweight[first + c] += dw[c];
            if (job->dbias) job->dbias[first + c] += db[c];
        }
        return;
    }
    for (int64_t c = first; c < last; c++) {
        int64_t group = c / per_group, begin = (c % per_group) * s->spread;
        double dw = 0.0, db = 0.0;
        for (int64_t r = group; r < s->rows; r += s->groups) {
            const float *x = job->x + r * n, *dy = job->dy + r * n;
            for (int64_t i = begin; i < begin + s->spread; i++) {
                dw += (double)dy[i] * ((x[i] - job->mean[r]) * job->rstd[r]);
                db += dy[i];
            }
        }
        if (job->dweight) job->dweight[c] += (float)dw;
        if (job->dbias) job->dbias[c] += (float)db;
    }
}

/* The task bodies compiled for each CPU level (base/cpu.h). */
NB_TARGET_AVX512 static void forward_avx512(void *c, int64_t t, int w) { forward_task_body(c, t, w); }
NB_TARGET_AVX2 static void forward_avx2(void *c, int64_t t, int w) { forward_task_body(c, t, w); }
static void forward_portable(void *c, int64_t t, int w) { forward_task_body(c, t, w); }
NB_TARGET_AVX512 static void backward_avx512(void *c, int64_t t, int w) { backward_task_body(c, t, w); }
NB_TARGET_AVX2 static void backward_avx2(void *c, int64_t t, int w) { backward_task_body(c, t, w); }
static void backward_portable(void *c, int64_t t, int w) { backward_task_body(c, t, w); }
NB_TARGET_AVX512 static void affine_avx512(void *c, int64_t t, int w) { affine_task_body(c, t, w); }
NB_TARGET_AVX2 static void affine_avx2(void *c, int64_t t, int w) { affine_task_body(c, t, w); }
static void affine_portable(void *c, int64_t t, int w) { affine_task_body(c, t, w); }

static nb_task_fn by_level(nb_task_fn portable, nb_task_fn avx2, nb_task_fn avx512)
{
    nb_cpu_level level = nb_cpu_level_now();
    return level == NB_CPU_AVX512 ? avx512 : level == NB_CPU_AVX2 ? avx2 : portable;
}

static int64_t rows_per_task(const nb_norm_rows *s)
{
    int64_t per = NB_ELEMENTWISE_GRAIN / (s->length ? s->length : 1);
    return per > 0 ? per : 1;
}

void nb_norm_rows_forward(const nb_norm_rows *s, const float *x, const float *weight,
                          const float *bias, float *y, float *mean, float *rstd)
{
    rows_job job = {.s = s, .x = x, .weight = weight, .bias = bias, .y = y, .mean_out = mean,
                    .rstd_out = rstd, .rows_per_task = rows_per_task(s)};
    int64_t tasks = (s->rows + job.rows_per_task - 1) / job.rows_per_task;
    nb_parallel_tasks(tasks, nb_parallel_slots(),
                      by_level(forward_portable, forward_avx2, forward_avx512), &job);
}

void nb_norm_rows_backward(const nb_norm_rows *s, const float *x, const float *weight,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           float *dweight, float *dbias, float *scratch, bool assign_dx)
{
    rows_job job = {.s = s, .x = x, .weight = weight, .mean = mean, .rstd = rstd, .dy = dy,
                    .dx = dx, .dweight = dweight, .dbias = dbias, .scratch = scratch,
                    .rows_per_task = rows_per_task(s), .assign_dx = assign_dx};
    if (dx) {
        int64_t tasks = (s->rows + job.rows_per_task - 1) / job.rows_per_task;
        nb_parallel_tasks(tasks, nb_parallel_slots(),
                          by_level(backward_portable, backward_avx2, backward_avx512), &job);
    }
    if (dweight || dbias) {
        int64_t channels = nb_norm_channels(s);
        nb_parallel_tasks((channels + COLUMN_BLOCK - 1) / COLUMN_BLOCK, nb_parallel_slots(),
                          by_level(affine_portable, affine_avx2, affine_avx512), &job);
    }
}

void nb_norm_rows_forward_ref(const nb_norm_rows *s, const double *x, const double *weight,
                              const double *bias, double *y, double *mean, double *rstd)
{
    int64_t n = s->length;
    for (int64_t r = 0; r < s->rows; r++) {
        const double *xr = x + r * n;
        double sum = 0.0, squares = 0.0;
        for (int64_t i = 0; i < n; i++) sum += xr[i];
        mean[r] = s->center ? sum / (double)n : 0.0;
        for (int64_t i = 0; i < n; i++) squares += (xr[i] - mean[r]) * (xr[i] - mean[r]);
        rstd[r] = 1.0 / sqrt(squares / (double)n + s->eps);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = channel_of(s, r, i);
            double v = (xr[i] - mean[r]) * rstd[r];
            y[r * n + i] = (weight ? v * weight[c] : v) + (bias ? bias[c] : 0.0);
        }
    }
}

void nb_norm_rows_backward_ref(const nb_norm_rows *s, const double *x, const double *weight,
                               const double *mean, const double *rstd, const double *dy,
                               double *dx, double *dweight, double *dbias)
{
    int64_t n = s->length;
    for (int64_t r = 0; r < s->rows; r++) {
        const double *xr = x + r * n, *dyr = dy + r * n;
        double sum_g = 0.0, sum_gx = 0.0;
        for (int64_t i = 0; i < n; i++) {
            int64_t c = channel_of(s, r, i);
            double xhat = (xr[i] - mean[r]) * rstd[r], g = dyr[i] * (weight ? weight[c] : 1.0);
            sum_g += g;
            sum_gx += g * xhat;
            if (dweight) dweight[c] += dyr[i] * xhat;
            if (dbias) dbias[c] += dyr[i];
        }
        double mean_g = s->center ? sum_g / (double)n : 0.0, mean_gx = sum_gx / (double)n;
        for (int64_t i = 0; dx && i < n; i++) {
            int64_t c = channel_of(s, r, i);
            double xhat = (xr[i] - mean[r]) * rstd[r], g = dyr[i] * (weight ? weight[c] : 1.0);
            dx[r * n + i] += rstd[r] * (g - mean_g - xhat * mean_gx);
        }
    }
}

typedef struct norm_saved {
    void *mean, *rstd;
} norm_saved;

int nb_norm_op_forward(nb_op_ctx *ctx, const nb_norm_rows *s, int weight_input, int bias_input)
{
    const nb_tensor *x = ctx->inputs[0];
    const void *weight = weight_input >= 0 ? ctx->inputs[weight_input]->data : NULL;
    const void *bias = bias_input >= 0 ? ctx->inputs[bias_input]->data : NULL;
    size_t bytes = (size_t)(s->rows ? s->rows : 1) * nb_dtype_size(x->dtype);
    norm_saved *saved = nb_op_alloc(ctx, sizeof *saved);
    if (!saved) return NB_ERR_NOMEM;
    saved->mean = nb_op_alloc(ctx, bytes);
    saved->rstd = nb_op_alloc(ctx, bytes);
    if (!saved->mean || !saved->rstd) return NB_ERR_NOMEM;
    ctx->saved = saved;
    if (x->dtype == NB_FLOAT32)
        nb_norm_rows_forward(s, x->data, weight, bias, ctx->output->data, saved->mean, saved->rstd);
    else nb_norm_rows_forward_ref(s, x->data, weight, bias, ctx->output->data, saved->mean,
                                  saved->rstd);
    return NB_OK;
}

int nb_norm_op_backward(nb_op_ctx *ctx, const nb_norm_rows *s, int weight_input, int bias_input)
{
    const nb_tensor *x = ctx->inputs[0];
    const norm_saved *saved = ctx->saved;
    const void *weight = weight_input >= 0 ? ctx->inputs[weight_input]->data : NULL;
    nb_tensor *dx = ctx->input_grads[0];
    nb_tensor *dw = weight_input >= 0 ? ctx->input_grads[weight_input] : NULL;
    nb_tensor *db = bias_input >= 0 ? ctx->input_grads[bias_input] : NULL;
    /* The ops assign fresh gradient buffers (NB_OP_ASSIGNS_FRESH_GRADS):
     * the float32 dx loop assigns; every other buffer is zeroed first. */
    bool assign_dx = dx && x->dtype == NB_FLOAT32 && nb_grad_fresh(ctx, 0);
    for (int i = assign_dx ? 1 : 0; i < ctx->n_inputs; i++) nb_grad_zero_fresh(ctx, i);
    if (x->dtype == NB_FLOAT64) {
        nb_norm_rows_backward_ref(s, x->data, weight, saved->mean, saved->rstd,
                                  ctx->output_grad->data, dx ? dx->data : NULL,
                                  dw ? dw->data : NULL, db ? db->data : NULL);
        return NB_OK;
    }
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    float *scratch = nb_op_alloc(ctx, nb_norm_scratch_floats(s) * sizeof(float));
    if (!scratch) return NB_ERR_NOMEM;
    nb_norm_rows_backward(s, x->data, weight, saved->mean, saved->rstd, ctx->output_grad->data,
                          dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL,
                          scratch, assign_dx);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}
