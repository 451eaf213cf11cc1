/* conv2d by GEMMs on gathered rows of the padded image (gathered.h). */
#include "kernels/conv2d/gathered.h"

#include <string.h>

#include "base/parallel.h"
#include "kernels/conv2d/pairs_bf16.h"
#include "kernels/conv2d/rows.h"
#include "kernels/gemm.h"

/* Images per partition of the weight gradient: a constant, so the sum's
 * order depends on the batch size only. */
enum { PARTITION_IMAGES = 8 };

bool nb_conv2d_gathered_applies(const nb_conv2d_geometry *g)
{
    return g->stride_h == 1 && g->stride_w == 1 && g->dil_h == 1 && g->dil_w == 1 &&
           g->groups == 1 && g->pad_h < g->kh && g->pad_w < g->kw && g->OH > 0 && g->OW > 0;
}

/* One image's unfolding: the planes of `channels` x [H,W] padded, and a
 * pointer per row (channel, i, j) into the padded copy. */
typedef struct unfolding {
    int64_t channels, H, W, kh, kw, pad_h, pad_w;
    int64_t Hp, Wp, OH, OW;
    int64_t positions; /* wide positions: (OH-1)*Wp + OW */
} unfolding;

static unfolding unfolding_of(int64_t channels, int64_t H, int64_t W, int64_t kh, int64_t kw,
                              int64_t pad_h, int64_t pad_w)
{
    unfolding u = {.channels = channels, .H = H, .W = W, .kh = kh, .kw = kw, .pad_h = pad_h,
                   .pad_w = pad_w, .Hp = H + 2 * pad_h, .Wp = W + 2 * pad_w};
    u.OH = u.Hp - kh + 1;
    u.OW = u.Wp - kw + 1;
    u.positions = (u.OH - 1) * u.Wp + u.OW;
    return u;
}

/* image [channels,H,W] -> padded [channels,Hp,Wp] */
static void pad_image(const unfolding *u, const float *image, float *padded)
{
    if (u->pad_h == 0 && u->pad_w == 0)
        memcpy(padded, image, sizeof(float) * (size_t)(u->channels * u->H * u->W));
    else
        nb_conv_pad_planes(image, u->channels, u->H, u->W, u->pad_h, u->pad_w, u->Hp, u->Wp,
                           padded);
}

/* The padded image and its unfolding's rows[(c*kh+i)*kw+j]. */
static void unfold_image(const unfolding *u, const float *image, float *padded, const float **rows)
{
    pad_image(u, image, padded);
    for (int64_t c = 0; c < u->channels; c++)
        for (int64_t i = 0; i < u->kh; i++)
            for (int64_t j = 0; j < u->kw; j++)
                rows[(c * u->kh + i) * u->kw + j] = padded + (c * u->Hp + i) * u->Wp + j;
}

/* out [M,OH,OW] (=, or += with accumulate) from wide [M, positions],
 * plus bias [M] (or NULL). */
static void store_wide(const unfolding *u, int64_t M, const float *wide, const float *bias,
                       bool accumulate, float *out)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t oh = 0; oh < u->OH; oh++) {
            const float *from = wide + m * u->positions + oh * u->Wp;
            float *to = out + (m * u->OH + oh) * u->OW;
            float shift = bias ? bias[m] : 0.0f;
            if (accumulate)
                for (int64_t ow = 0; ow < u->OW; ow++) to[ow] += from[ow] + shift;
            else
                for (int64_t ow = 0; ow < u->OW; ow++) to[ow] = from[ow] + shift;
        }
}

/* Per-thread scratch: a padded image, its row pointers, a wide block, an
 * image's dense output before its pool or gradient after its ReLU mask or
 * pool routing; for bf16 products also the image in channel pairs and its
 * pair rows. */
typedef struct scratch {
    float *padded, *wide, *dense;
    const float **rows;
    uint32_t *paired;
    const uint32_t **pair_rows;
} scratch;

static int scratch_new(const nb_workspace *ws, int slots, int64_t padded_floats,
                       int64_t row_count, int64_t wide_floats, int64_t dense_floats,
                       const nb_conv_pairs *pairs, scratch **out)
{
    scratch *s = nb_workspace_alloc(ws, sizeof *s * (size_t)slots);
    if (!s) return NB_ERR_NOMEM;
    for (int t = 0; t < slots; t++) {
        s[t] = (scratch){0};
        s[t].padded = nb_workspace_alloc(ws, sizeof(float) * (size_t)padded_floats);
        s[t].wide = nb_workspace_alloc(ws, sizeof(float) * (size_t)wide_floats);
        s[t].rows = nb_workspace_alloc(ws, sizeof(float *) * (size_t)row_count);
        s[t].dense = dense_floats ? nb_workspace_alloc(ws, sizeof(float) * (size_t)dense_floats) : NULL;
        if (!s[t].padded || !s[t].wide || !s[t].rows || (dense_floats && !s[t].dense))
            return NB_ERR_NOMEM;
        if (!pairs) continue;
        s[t].paired = nb_workspace_alloc(ws, sizeof(uint32_t) *
                                                 (size_t)nb_conv_pairs_image_words(pairs));
        s[t].pair_rows = nb_workspace_alloc(ws, sizeof(uint32_t *) * (size_t)row_count);
        if (!s[t].paired || !s[t].pair_rows) return NB_ERR_NOMEM;
    }
    *out = s;
    return NB_OK;
}

/* Image n's gradient at the convolution itself, [channels, plane]: dy's
 * own, or in `dense`, masked by the ReLU or routed through the pool. */
static const float *image_gradient(const nb_conv_gathered_gradient *d, int64_t channels,
                                   int64_t plane, int64_t n, float *dense)
{
    const int64_t size = channels * plane;
    if (!d->pool) {
        if (!d->relu_output) return d->dy + n * size;
        nb_conv_relu_mask(d->relu_output + n * size, d->dy + n * size, dense, size);
        return dense;
    }
    nb_pool2d_geometry pool = *d->pool;
    pool.N = 1;
    const int64_t at = n * channels * pool.OH * pool.OW;
    const float *gate = d->gate ? d->gate + at : NULL;
    if (nb_max_pool2d_fast_applies(&pool)) {
        nb_max_pool2d_fast_unpool(&pool, 0, channels, d->argmax + at, d->dy + at, gate, dense,
                                  pool.W, plane);
    } else {
        memset(dense, 0, sizeof(float) * (size_t)size);
        nb_max_pool2d_route_f32(&pool, d->argmax + at, d->dy + at, gate, dense);
    }
    return dense;
}

/* Whether image_gradient needs its dense buffer. */
static bool gradient_is_dense(const nb_conv_gathered_gradient *d)
{
    return d->pool || d->relu_output;
}

/* A convolution of images [N, channels, H, W] by A [M, channels*kh*kw]
 * into out [N, M, OH, OW]: the forward (with pool: pooled into out
 * [N, M, PH, PW] and argmax), and the input gradient as the transposed
 * convolution (images from `gradient`). */
typedef struct image_job {
    const unfolding *u;
    bool bf16, relu, accumulate;
    int64_t M, depth;
    const float *images, *A, *bias;
    const nb_conv_gathered_gradient *gradient;
    const nb_pool2d_geometry *pool;
    int32_t *argmax;
    float *out;
    scratch *scratch;
    nb_conv_pairs pairs; /* bf16: the channel-pair product (pairs_bf16.h) */
} image_job;

static void image_task(void *context, int64_t n, int worker)
{
    const image_job *job = context;
    const unfolding *u = job->u;
    scratch *s = &job->scratch[worker];
    const int64_t plane = u->H * u->W;
    const float *image = job->gradient ? image_gradient(job->gradient, u->channels, plane, n, s->dense)
                                       : job->images + n * u->channels * plane;
    if (job->bf16) {
        /* Padding in float32 first (none to do without padding) lets the
         * conversion run over whole planes. */
        const float *padded = image;
        if (u->pad_h || u->pad_w) {
            pad_image(u, image, s->padded);
            padded = s->padded;
        }
        nb_conv_pairs_image(&job->pairs, u->channels, padded, s->paired);
        nb_conv_pairs_product(&job->pairs, s->paired, s->pair_rows, s->wide);
    } else {
        unfold_image(u, image, s->padded, s->rows);
        nb_sgemm_rows(false, false, job->M, u->positions, job->depth, 1.0f, job->A, job->depth,
                      s->rows, 0.0f, s->wide, u->positions);
    }
    float *out = job->pool ? s->dense : job->out + n * job->M * u->OH * u->OW;
    store_wide(u, job->M, s->wide, job->bias, job->accumulate, out);
    if (job->relu) nb_conv_rectify(out, job->M * u->OH * u->OW);
    if (!job->pool) return;
    nb_pool2d_geometry pool = *job->pool;
    pool.N = 1;
    const int64_t at = n * job->M * pool.OH * pool.OW;
    nb_max_pool2d_forward_f32(&pool, out, job->out + at, job->argmax + at);
}

static int convolve_images(const nb_workspace *ws, image_job *job, int64_t N)
{
    const unfolding *u = job->u;
    int slots = nb_parallel_slots();
    if (job->bf16) {
        job->pairs = (nb_conv_pairs){.M = job->M, .pairs = (u->channels + 1) / 2, .kh = u->kh,
                                     .kw = u->kw, .Wp = u->Wp, .plane = u->Hp * u->Wp,
                                     .positions = u->positions};
        uint32_t *weights = nb_workspace_alloc(
            ws, sizeof(uint32_t) * (size_t)nb_conv_pairs_weight_words(&job->pairs));
        if (!weights) return NB_ERR_NOMEM;
        nb_conv_pairs_pack_weights(&job->pairs, u->channels, job->A, weights);
        job->pairs.weights = weights;
    }
    /* The dense buffer: the output before its pool, or dy after its mask
     * or routing. */
    int64_t dense = job->pool ? job->M * u->OH * u->OW
                    : job->gradient && gradient_is_dense(job->gradient) ? u->channels * u->H * u->W
                                                                        : 0;
    if (scratch_new(ws, slots, u->channels * u->Hp * u->Wp, job->depth, job->M * u->positions,
                    dense, job->bf16 ? &job->pairs : NULL, &job->scratch) != NB_OK)
        return NB_ERR_NOMEM;
    nb_parallel_tasks(N, slots, image_task, job);
    return NB_OK;
}

int nb_conv2d_gathered_forward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                               const float *x, const float *w, const float *bias, bool relu,
                               const nb_pool2d_geometry *pool, int32_t *argmax, float *y)
{
    unfolding u = unfolding_of(g->C, g->H, g->W, g->kh, g->kw, g->pad_h, g->pad_w);
    image_job job = {.u = &u, .bf16 = bf16, .relu = relu, .M = g->K,
                     .depth = g->C * g->kh * g->kw, .images = x, .A = w, .bias = bias,
                     .pool = pool, .argmax = argmax, .out = y};
    return convolve_images(ws, &job, g->N);
}

/* dW and db of one partition of images, into its own [K, depth] (bf16:
 * transposed, [depth, columns]) and [K]. */
typedef struct weight_job {
    const nb_conv2d_geometry *g;
    const unfolding *u;
    bool bf16;
    const float *x;
    const nb_conv_gathered_gradient *gradient;
    float *partial_dw;  /* [partitions][K][depth], bf16: [partitions][depth][columns] */
    double *partial_db; /* [partitions][K] */
    scratch *scratch;
    nb_conv_pairs_grad pairs; /* bf16: the position-pair product (pairs_bf16.h) */
    uint16_t **pair_image;    /* bf16: per thread */
    uint32_t **pair_dy;
    const uint16_t ***grad_rows;
} weight_job;

static void weight_task(void *context, int64_t part, int worker)
{
    const weight_job *job = context;
    const nb_conv2d_geometry *g = job->g;
    const unfolding *u = job->u;
    scratch *s = &job->scratch[worker];
    const int64_t depth = g->C * g->kh * g->kw, plane = g->OH * g->OW;
    const int64_t partial_floats = job->bf16 ? depth * job->pairs.columns : g->K * depth;
    float *dw = job->partial_dw ? job->partial_dw + part * partial_floats : NULL;
    if (dw && job->bf16) memset(dw, 0, sizeof(float) * (size_t)partial_floats);
    double *db = job->partial_db ? job->partial_db + part * g->K : NULL;
    int64_t first = part * PARTITION_IMAGES;
    int64_t last = first + PARTITION_IMAGES < g->N ? first + PARTITION_IMAGES : g->N;
    for (int64_t n = first; n < last; n++) {
        const float *dy = image_gradient(job->gradient, g->K, plane, n, s->dense);
        if (db)
            for (int64_t k = 0; k < g->K; k++)
                db[k] = (n == first ? 0.0 : db[k]) + nb_conv_sum(dy + k * plane, plane);
        if (!dw) continue;
        /* dy in the wide layout, zero between output rows. */
        memset(s->wide, 0, sizeof(float) * (size_t)(g->K * u->positions));
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                memcpy(s->wide + k * u->positions + oh * u->Wp, dy + (k * g->OH + oh) * g->OW,
                       sizeof(float) * (size_t)g->OW);
        if (job->bf16) {
            pad_image(u, job->x + n * g->C * g->H * g->W, s->padded);
            nb_conv_pairs_grad_image(&job->pairs, s->padded, job->pair_image[worker]);
            nb_conv_pairs_grad_dy(&job->pairs, s->wide, job->pair_dy[worker]);
            nb_conv_pairs_grad_accumulate(&job->pairs, job->pair_image[worker],
                                          job->pair_dy[worker], job->grad_rows[worker], dw);
            continue;
        }
        unfold_image(u, job->x + n * g->C * g->H * g->W, s->padded, s->rows);
        nb_sgemm_rows(false, true, g->K, depth, u->positions, 1.0f, s->wide, u->positions,
                      s->rows, n == first ? 0.0f : 1.0f, dw, depth);
    }
}

/* Per-thread buffers of the bf16 weight gradient: the converted image and
 * dy, and the row pointers (in the scratch's pair_rows). */
static int pair_scratch_new(const nb_workspace *ws, int slots, weight_job *job)
{
    job->pair_image = nb_workspace_alloc(ws, sizeof(uint16_t *) * (size_t)slots);
    job->pair_dy = nb_workspace_alloc(ws, sizeof(uint32_t *) * (size_t)slots);
    job->grad_rows = nb_workspace_alloc(ws, sizeof(const uint16_t **) * (size_t)slots);
    if (!job->pair_image || !job->pair_dy || !job->grad_rows) return NB_ERR_NOMEM;
    const int64_t depth = job->g->C * job->g->kh * job->g->kw;
    for (int t = 0; t < slots; t++) {
        job->pair_image[t] = nb_workspace_alloc(
            ws, sizeof(uint16_t) * (size_t)nb_conv_pairs_grad_image_values(&job->pairs));
        job->pair_dy[t] = nb_workspace_alloc(
            ws, sizeof(uint32_t) * (size_t)nb_conv_pairs_grad_dy_words(&job->pairs));
        job->grad_rows[t] = nb_workspace_alloc(ws, sizeof(const uint16_t *) * (size_t)depth);
        if (!job->pair_image[t] || !job->pair_dy[t] || !job->grad_rows[t]) return NB_ERR_NOMEM;
    }
    return NB_OK;
}

/* W'[c, (k,i,j)] = W[k, c, kh-1-i, kw-1-j]: the transposed convolution's weight. */
static void flip_weight(const nb_conv2d_geometry *g, const float *w, float *flipped)
{
    const int64_t taps = g->kh * g->kw;
    for (int64_t k = 0; k < g->K; k++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t t = 0; t < taps; t++)
                flipped[(c * g->K + k) * taps + t] = w[(k * g->C + c) * taps + taps - 1 - t];
}

int nb_conv2d_gathered_backward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                                const float *x, const float *w,
                                const nb_conv_gathered_gradient *gradient, float *dx,
                                bool assign_dx, float *dw, float *db)
{
    if (dw || db) {
        unfolding u = unfolding_of(g->C, g->H, g->W, g->kh, g->kw, g->pad_h, g->pad_w);
        const int64_t depth = g->C * g->kh * g->kw;
        const int64_t parts = (g->N + PARTITION_IMAGES - 1) / PARTITION_IMAGES;
        weight_job job = {.g = g, .u = &u, .bf16 = bf16, .x = x, .gradient = gradient};
        job.pairs = nb_conv_pairs_grad_of(g->K, g->C, g->kh, g->kw, u.Hp, u.Wp, u.positions);
        const int64_t partial_floats = bf16 ? depth * job.pairs.columns : g->K * depth;
        if (dw) job.partial_dw = nb_workspace_alloc(ws, sizeof(float) * (size_t)(parts * partial_floats));
        if (db) job.partial_db = nb_workspace_alloc(ws, sizeof(double) * (size_t)(parts * g->K));
        int slots = nb_parallel_slots();
        if ((dw && !job.partial_dw) || (db && !job.partial_db) ||
            scratch_new(ws, slots, g->C * u.Hp * u.Wp, depth, g->K * u.positions,
                        gradient_is_dense(gradient) ? g->K * g->OH * g->OW : 0, NULL,
                        &job.scratch) != NB_OK ||
            (bf16 && pair_scratch_new(ws, slots, &job) != NB_OK))
            return NB_ERR_NOMEM;
        nb_parallel_tasks(parts, slots, weight_task, &job);
        for (int64_t part = 0; part < parts; part++) {
            const float *partial = dw ? job.partial_dw + part * partial_floats : NULL;
            for (int64_t k = 0; dw && k < g->K; k++)
                for (int64_t r = 0; r < depth; r++)
                    dw[k * depth + r] += bf16 ? partial[r * job.pairs.columns + k]
                                              : partial[k * depth + r];
            for (int64_t k = 0; db && k < g->K; k++) db[k] += (float)job.partial_db[part * g->K + k];
        }
    }
    if (!dx) return NB_OK;
    unfolding u = unfolding_of(g->K, g->OH, g->OW, g->kh, g->kw, g->kh - 1 - g->pad_h,
                               g->kw - 1 - g->pad_w);
    float *flipped = nb_workspace_alloc(ws, sizeof(float) * (size_t)(g->C * g->K * g->kh * g->kw));
    if (!flipped) return NB_ERR_NOMEM;
    flip_weight(g, w, flipped);
    image_job job = {.u = &u, .bf16 = bf16, .accumulate = !assign_dx, .M = g->C,
                     .depth = g->K * g->kh * g->kw, .gradient = gradient, .A = flipped,
                     .out = dx};
    return convolve_images(ws, &job, g->N);
}
