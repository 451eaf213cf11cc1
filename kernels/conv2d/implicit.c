/* conv2d's implicit-GEMM float32 path (layout and determinism in
 * kernels/conv2d/implicit.h; the register tiles in kernels/conv2d/tiles.c). */
#include "kernels/conv2d/implicit.h"

#include <string.h>

#include "kernels/bf16.h"
#include "kernels/conv2d/rows.h"
#include "kernels/conv2d/tiles.h"
#include "kernels/conv2d/winograd.h"
#include "base/parallel.h"

enum {
    LANES = 16,
    /* Images per weight-gradient partition: at most this many, fewer when
     * their padded inputs and gradients would pass PARTITION_FLOATS (2 MB,
     * about L2). A function of the geometry alone, so the sum order of dW
     * and db never depends on the thread count. */
    PARTITION_IMAGES = 8,
    PARTITION_FLOATS = 1 << 19,
    /* Scratch blocks start on a cache line. */
    ALIGN_FLOATS = 16,
    /* Largest unfolded input gradient (floats, 128 KB) worth computing. */
    UNFOLD_MAX_FLOATS = 1 << 15
};

/* One implicit GEMM: a stride-1 convolution of an image [channels, height,
 * width] zero-padded by (pad_h, pad_w) with a kh x kw kernel, giving
 * [outputs, out_h, out_w]. */
typedef struct plan {
    int64_t channels, height, width, pad_h, pad_w, kh, kw, outputs;
    int64_t padded_h, padded_w, out_h, out_w;
    int64_t wide;               /* out_h * padded_w: outputs on the padded grid */
    int64_t wide_rounded;       /* rounded up to whole tiles */
    int64_t depth;              /* channels * kh * kw */
    int64_t input_length;       /* floats of a padded image, tail included */
    int rows, vectors;          /* forward tile: rows x 16*vectors */
    int64_t row_blocks;         /* ceil(outputs / rows) */
    int64_t *offset;            /* [depth]: tap (c,i,j) -> c*Hp*Wp + i*Wp + j */
    uint16_t *lane_mask;        /* [wide_rounded/16]: lanes that are real outputs */
    int64_t *lane_dense;        /* [wide_rounded/16]: output index of the first one */
    float *packed;              /* [row_blocks][depth][rows], zero past outputs */
    bool winograd;              /* 3x3 with enough channels: F(2x2,3x3) instead */
    nb_winograd wg;
} plan;

static int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Rows of the forward tile: a divisor of the channel count if possible. */
static int forward_rows(int64_t outputs)
{
    if (outputs % 8 == 0) return 8;
    if (outputs % 6 == 0) return 6;
    if (outputs % 4 == 0 || outputs < 4) return 4;
    return outputs <= 6 ? 6 : 8;
}

bool nb_conv2d_implicit_applies(const nb_conv2d_geometry *g)
{
    return g->groups == 1 && g->stride_h == 1 && g->stride_w == 1 && g->dil_h == 1 &&
           g->dil_w == 1 && g->pad_h <= g->kh - 1 && g->pad_w <= g->kw - 1 && g->N > 0 &&
           g->OH > 0 && g->OW > 0;
}

/* Sizes and tap offsets; the weights are packed by the caller. */
static int plan_init(const nb_workspace *ws, plan *p, int64_t channels, int64_t height, int64_t width,
                     int64_t pad_h, int64_t pad_w, int64_t kh, int64_t kw, int64_t outputs)
{
    *p = (plan){.channels = channels, .height = height, .width = width, .pad_h = pad_h,
                .pad_w = pad_w, .kh = kh, .kw = kw, .outputs = outputs};
    p->padded_h = height + 2 * pad_h;
    p->padded_w = width + 2 * pad_w;
    p->out_h = p->padded_h - kh + 1;
    p->out_w = p->padded_w - kw + 1;
    p->wide = p->out_h * p->padded_w;
    p->rows = forward_rows(outputs);
    p->vectors = p->rows == 4 ? 6 : p->rows == 6 ? 4 : 3;
    p->wide_rounded = round_up(p->wide, (int64_t)p->vectors * LANES);
    p->depth = channels * kh * kw;
    p->row_blocks = (outputs + p->rows - 1) / p->rows;
    int64_t plane = p->padded_h * p->padded_w;
    int64_t last_offset = (channels - 1) * plane + (kh - 1) * p->padded_w + kw - 1;
    /* Tiles read up to last_offset + wide_rounded: the zero tail covers it. */
    p->input_length = round_up(last_offset + p->wide_rounded, ALIGN_FLOATS);
    int64_t vectors = p->wide_rounded / LANES;
    p->offset = nb_workspace_alloc(ws, (size_t)p->depth * sizeof *p->offset);
    p->packed = nb_workspace_alloc(ws, (size_t)(p->row_blocks * p->depth * p->rows) * sizeof(float));
    p->lane_mask = nb_workspace_alloc(ws, (size_t)vectors * sizeof *p->lane_mask);
    p->lane_dense = nb_workspace_alloc(ws, (size_t)vectors * sizeof *p->lane_dense);
    if (!p->offset || !p->packed || !p->lane_mask || !p->lane_dense) return NB_ERR_NOMEM;
    /* Wide position q is output (q / Wp, q % Wp) when that column is real. */
    for (int64_t v = 0; v < vectors; v++) {
        p->lane_mask[v] = 0;
        p->lane_dense[v] = 0;
        for (int lane = LANES - 1; lane >= 0; lane--) {
            int64_t q = v * LANES + lane, oh = q / p->padded_w, ow = q % p->padded_w;
            if (q >= p->wide || ow >= p->out_w) continue;
            p->lane_mask[v] |= (uint16_t)(1u << lane);
            p->lane_dense[v] = oh * p->out_w + ow;
        }
    }
    for (int64_t c = 0; c < channels; c++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++)
                p->offset[(c * kh + i) * kw + j] = c * plane + i * p->padded_w + j;
    return NB_OK;
}

/* Forward weights: packed[block][d][r] = w[block*rows + r][d], w [K, C*kh*kw]. */
static void pack_forward(plan *p, const float *w)
{
    for (int64_t block = 0; block < p->row_blocks; block++)
        for (int64_t d = 0; d < p->depth; d++)
            for (int r = 0; r < p->rows; r++) {
                int64_t k = block * p->rows + r;
                p->packed[(block * p->depth + d) * p->rows + r] =
                    k < p->outputs ? w[k * p->depth + d] : 0.0f;
            }
}

/* Input-gradient weights: the plan convolves dy [K,...] into dx [C,...]
 * with w'[c][k][i][j] = w[k][c][kh-1-i][kw-1-j]. */
static void pack_transposed(plan *p, const float *w)
{
    int64_t C = p->outputs, taps = p->kh * p->kw;
    for (int64_t block = 0; block < p->row_blocks; block++)
        for (int64_t d = 0; d < p->depth; d++) {
            int64_t k = d / taps, tap = d % taps, flipped = taps - 1 - tap;
            for (int r = 0; r < p->rows; r++) {
                int64_t c = block * p->rows + r;
                p->packed[(block * p->depth + d) * p->rows + r] =
                    c < C ? w[(k * C + c) * taps + flipped] : 0.0f;
            }
        }
}

/* Winograd instead of the direct tiles, for 3x3 kernels with enough
 * channels (kernels/conv2d/winograd.h); w as for pack_forward/pack_transposed. */
static int plan_winograd(const nb_workspace *ws, plan *p, const float *w, bool transposed, bool allowed)
{
    p->winograd = allowed && nb_winograd_applies(p->kh, p->kw, p->channels, p->outputs);
    if (!p->winograd) return NB_OK;
    return nb_winograd_init(ws, &p->wg, p->channels, p->height, p->width, p->pad_h, p->pad_w,
                            p->outputs, p->rows, p->vectors, w, transposed);
}

/* Floats of the per-thread buffer of one plan: the padded image (or the
 * Winograd buffers). */
static int64_t plan_scratch(const plan *p)
{
    int64_t winograd = p->winograd ? round_up(nb_winograd_scratch(&p->wg), ALIGN_FLOATS) : 0;
    return p->input_length > winograd ? p->input_length : winograd;
}

/* Writes image `in` into `padded`, zero border and tail included, so the
 * buffer needs no clearing beforehand. */
static void load_padded(const plan *p, const float *in, float *padded)
{
    int64_t plane = p->padded_h * p->padded_w;
    nb_conv_pad_planes(in, p->channels, p->height, p->width, p->pad_h, p->pad_w, p->padded_h,
                       p->padded_w, padded);
    memset(padded + p->channels * plane, 0,
           (size_t)(p->input_length - p->channels * plane) * sizeof *padded);
}

/* out [outputs, out_h, out_w] = conv(in) + bias, or += conv(in); the tiles
 * store straight into out. padded NULL: the tiles read `in` itself. */
static void plan_image(const plan *p, const float *in, float *padded, float *out,
                       const float *bias, bool accumulate)
{
    if (p->winograd) {
        nb_winograd_image(&p->wg, in, padded, out, bias, accumulate);
        return;
    }
    if (padded) load_padded(p, in, padded);
    else padded = (float *)in; /* read in place (unpadded, not the last image); never written */
    int64_t columns = (int64_t)p->vectors * LANES, plane = p->out_h * p->out_w;
    for (int64_t p0 = 0; p0 < p->wide_rounded; p0 += columns)
        for (int64_t block = 0; block < p->row_blocks; block++) {
            int64_t k0 = block * p->rows;
            nb_conv_tile_output target = {
                .target = out + k0 * plane, .channel_stride = plane,
                .rows_used = (int)min64(p->rows, p->outputs - k0),
                .bias = bias ? bias + k0 : NULL, .accumulate = accumulate,
                .mask = p->lane_mask + p0 / LANES, .dense = p->lane_dense + p0 / LANES,
            };
            nb_conv_tile_forward_output(p->rows, p->vectors, p->depth, p->offset,
                                        p->packed + block * p->depth * p->rows, padded + p0,
                                        &target);
        }
}

/* ---- forward: images split across threads ---------------------------- */
typedef struct forward_job {
    const plan *p;
    int64_t images;
    const float *x, *bias;
    bool relu;
    uint16_t *bits;             /* the ReLU's mask, or NULL */
    int64_t bit_words;
    nb_pool2d_geometry pool;    /* a fused max-pool over one image (N = 1) */
    bool pooled;
    int32_t *argmax;            /* its indices [N,K,PH,PW] */
    float *y, *scratch;
    int64_t per_worker;
    int64_t convolved;          /* with pool: where a worker's conv output starts */
} forward_job;

/* One image, on worker `worker`'s padded buffer. */
static void forward_task(void *context, int64_t n, int worker)
{
    const forward_job *job = context;
    const plan *p = job->p;
    float *padded = job->scratch + worker * job->per_worker;
    int64_t image_in = p->channels * p->height * p->width;
    int64_t image_out = p->outputs * p->out_h * p->out_w;
    /* Without padding, tiles read x in place while their reads (up to
     * input_length floats from the image's start, discarded lanes
     * included) stay inside the tensor: not for the last image, nor for
     * the last few when images are smaller than a tile's overhang. */
    bool in_place = !p->winograd && p->pad_h == 0 && p->pad_w == 0 &&
                    (job->images - n) * image_in >= p->input_length;
    /* A fused pool reads the image's output while it is in cache. */
    float *out = job->pooled ? padded + job->convolved : job->y + n * image_out;
    plan_image(p, job->x + n * image_in, in_place ? NULL : padded, out, job->bias, false);
    if (job->relu && job->bits)
        nb_conv_rectify_bits(out, image_out, job->bits + n * job->bit_words);
    else if (job->relu)
        nb_conv_rectify(out, image_out);
    if (job->pooled) {
        int64_t pooled = p->outputs * job->pool.OH * job->pool.OW;
        nb_max_pool2d_forward_f32(&job->pool, out, job->y + n * pooled, job->argmax + n * pooled);
    }
}

int64_t nb_conv2d_relu_bit_words(const nb_conv2d_geometry *g)
{
    return (g->K * g->OH * g->OW + LANES - 1) / LANES + 1;
}

int nb_conv2d_implicit_forward(const nb_workspace *ws, const nb_conv2d_geometry *g,
                               const nb_conv2d_implicit_options *options, const float *x,
                               const float *w, const float *bias, bool relu, uint16_t *bits,
                               const nb_pool2d_geometry *pool, int32_t *argmax, float *y)
{
    plan p;
    if (plan_init(ws, &p, g->C, g->H, g->W, g->pad_h, g->pad_w, g->kh, g->kw, g->K) != NB_OK)
        return NB_ERR_NOMEM;
    pack_forward(&p, w);
    if (plan_winograd(ws, &p, w, false, options->winograd) != NB_OK) return NB_ERR_NOMEM;
    int workers = nb_parallel_slots();
    forward_job job = {.p = &p, .images = g->N, .x = x, .bias = bias, .relu = relu, .bits = bits,
                       .bit_words = nb_conv2d_relu_bit_words(g), .y = y,
                       .per_worker = plan_scratch(&p)};
    if (pool) {
        job.pooled = true;
        job.pool = *pool;
        job.pool.N = 1;
        job.argmax = argmax;
        job.convolved = round_up(job.per_worker, ALIGN_FLOATS);
        job.per_worker = job.convolved + round_up(g->K * g->OH * g->OW, ALIGN_FLOATS);
    }
    job.scratch = nb_workspace_alloc(ws, (size_t)(workers * job.per_worker) * sizeof(float));
    if (!job.scratch) return NB_ERR_NOMEM;
    nb_parallel_tasks(g->N, workers, forward_task, &job);
    return NB_OK;
}

/* ---- backward: fixed partitions of the batch across threads ----------- */
typedef struct backward_job {
    const nb_conv2d_geometry *g;
    const plan *forward;        /* the layout of padded x (and of dy, wide) */
    const plan *transposed;     /* dx = conv(dy, w'), or NULL */
    const nb_conv_unfold *unfold; /* or dx = col2im(W^T dy), or NULL */
    const float *x, *dy;
    const uint16_t *relu_bits;  /* a fused ReLU's mask, or NULL */
    int64_t bit_words;
    bool pooled;                /* dy is a fused max-pool's: route it */
    nb_pool2d_geometry pool;    /* its windows over one image (N = 1) */
    const int32_t *argmax;
    const float *gate;          /* the pooled output with a ReLU, or NULL */
    bool round_bf16;            /* products read dy rounded to bf16, in each copy */
    bool winograd_weight;       /* dW by Winograd (3x3, channels in lanes) */
    nb_winograd_weight ww;
    float *dx;
    bool assign_dx;             /* dx is fresh: assign, do not add */
    bool weight, bias;
    int weight_rows, weight_taps;
    int64_t gradient_rows;      /* K rounded up to weight_rows */
    int64_t tap_tiles;          /* ceil(depth / weight_taps) */
    int64_t partition_images;   /* images per partition (the last may have fewer) */
    int64_t dx_scratch;         /* where a worker's dx buffers start in its scratch */
    int64_t mask_scratch;       /* where its masked or routed dy starts */
    int64_t *tap_offset;        /* [tap_tiles * weight_taps], the tail repeats */
    float *partial;             /* [partitions][K*depth + K] */
    double *bias_sums;          /* [workers][K]: db of the partition being read */
    float *scratch;
    int64_t per_worker;
} backward_job;

/* dW and db of one partition: dy of each image scattered on the padded
 * grid (zeros in the discarded columns, so they add nothing; pooled_dy: dy
 * is a 2x2 pool's, routed there), then one register tile per (rows of K)
 * x (taps) block over all its images. */
static void partition_weight(const backward_job *job, int64_t n0, int64_t count, const float *dy,
                             const uint16_t *bits, bool pooled_dy, float *images,
                             float *gradients, double *bias_sums, float *partial)
{
    const nb_conv2d_geometry *g = job->g;
    const plan *p = job->forward;
    int64_t plane = g->OH * g->OW, ld = p->wide_rounded;
    int64_t gradient_stride = job->gradient_rows * ld;
    /* Without padding the padded layout is x's own: the tile reads x in
     * place (its masked loads never reach past a real output's taps). */
    bool in_place = p->pad_h == 0 && p->pad_w == 0;
    int64_t image = g->C * g->H * g->W;
    const float *x_images = in_place ? job->x + n0 * image : images;
    int64_t x_stride = in_place ? image : p->input_length;
    for (int64_t b = 0; b < count; b++) {
        if (job->weight && !in_place)
            load_padded(p, job->x + (n0 + b) * image, images + b * p->input_length);
        /* Each row: OW values then zeros to the padded width; then zeros
         * to the end of the rounded row, and zero rows up to gradient_rows.
         * With bits, a fused ReLU's mask on the way. */
        float *grid = gradients + b * gradient_stride;
        if (pooled_dy) { /* the pool's dy, routed to the grid (2x2 windows) */
            int64_t pooled = g->K * job->pool.OH * job->pool.OW, at = (n0 + b) * pooled;
            nb_max_pool2d_fast_unpool(&job->pool, 0, g->K, job->argmax + at, dy + b * pooled,
                                      job->gate ? job->gate + at : NULL, grid, p->padded_w, ld);
        }
        for (int64_t k = 0; k < g->K; k++) {
            const float *source = dy + (b * g->K + k) * plane;
            if (pooled_dy)
                memset(grid + k * ld + p->wide, 0, (size_t)(ld - p->wide) * sizeof *grid);
            else if (bits)
                nb_conv_rows_pad_bits(source, g->OW, g->OW, grid + k * ld, p->padded_w, g->OH,
                                      bits + b * job->bit_words, k * plane);
            else
                nb_conv_rows_pad(source, g->OW, g->OW, grid + k * ld, p->padded_w, 0, g->OH);
            memset(grid + k * ld + p->wide, 0, (size_t)(ld - p->wide) * sizeof *grid);
        }
        memset(grid + g->K * ld, 0, (size_t)((job->gradient_rows - g->K) * ld) * sizeof *grid);
        /* db from the grid, which holds dy masked or not (its zeros add
         * nothing), before a bf16 node's rounding: only products round. */
        for (int64_t k = 0; job->bias && k < g->K; k++)
            bias_sums[k] = (b == 0 ? 0.0 : bias_sums[k]) + nb_conv_sum(grid + k * ld, p->wide);
        if (job->round_bf16) nb_bf16_round_array(grid, g->K * ld, grid);
    }
    int64_t depth = p->depth;
    if (job->weight) {
        float tile[8 * 8];
        int rows = job->weight_rows, taps = job->weight_taps;
        for (int64_t k0 = 0; k0 < g->K; k0 += rows)
            for (int64_t tile_index = 0; tile_index < job->tap_tiles; tile_index++) {
                nb_conv_tile_weight(rows, taps, count, gradients + k0 * ld, gradient_stride, ld,
                                    x_images, x_stride, job->tap_offset + tile_index * taps, ld,
                                    p->lane_mask, tile);
                for (int r = 0; r < rows && k0 + r < g->K; r++)
                    for (int t = 0; t < taps && tile_index * taps + t < depth; t++)
                        partial[(k0 + r) * depth + tile_index * taps + t] = tile[r * taps + t];
            }
    }
    for (int64_t k = 0; job->bias && k < g->K; k++) partial[g->K * depth + k] = (float)bias_sums[k];
}

/* Whether the convolution's output gradient is formed in scratch (a
 * consumer reads it as a plain tensor, or a pool's windows overlap); else
 * a fused ReLU's mask is applied on the way into the weights' grid, and a
 * 2x2 pool's routing on the way into the grid and into the unfolding's
 * copy of dy. */
static bool masks_into_scratch(const backward_job *job)
{
    /* A bf16 node's dx reads dy rounded: from a rounded copy in scratch
     * (a 2x2 pool's routing into the unfolding's copy rounds that copy). */
    bool dx = job->transposed || job->unfold;
    if (job->round_bf16 && dx && !job->pooled) return true;
    if (job->pooled) /* 2x2 routing goes straight to the grid and the unfolding */
        return job->transposed || job->winograd_weight || !(job->weight || job->bias) ||
               !nb_max_pool2d_fast_applies(&job->pool);
    return job->relu_bits && (job->transposed || job->unfold || job->winograd_weight ||
                              !(job->weight || job->bias));
}

/* dW and db of one partition by Winograd: products summed over its
 * images into `sums`, then transformed back; db from dy itself. */
static void partition_weight_winograd(const backward_job *job, int64_t n0, int64_t count,
                                      const float *dy, float *scratch, float *partial)
{
    const nb_conv2d_geometry *g = job->g;
    int64_t plane = g->OH * g->OW, image = g->C * g->H * g->W, depth = job->forward->depth;
    float *sums = scratch + round_up(nb_winograd_weight_scratch(&job->ww), ALIGN_FLOATS);
    memset(sums, 0, (size_t)nb_winograd_weight_sums(&job->ww) * sizeof *sums);
    for (int64_t b = 0; b < count; b++)
        nb_winograd_weight_image(&job->ww, job->x + (n0 + b) * image, dy + b * g->K * plane,
                                 scratch, sums);
    nb_winograd_weight_finish(&job->ww, sums, partial);
    for (int64_t k = 0; job->bias && k < g->K; k++) {
        double sum = 0.0;
        for (int64_t b = 0; b < count; b++) sum += nb_conv_sum(dy + (b * g->K + k) * plane, plane);
        partial[g->K * depth + k] = (float)sum;
    }
}

/* Image n's 2x2 pool gradient dy (its [K,PH,PW]) routed into the layout
 * nb_conv_unfold_copied reads: row k at copy + k * columns, the OH*OW
 * plane then zeros. */
static void route_into_unfolding(const backward_job *job, int64_t n, const float *dy, float *copy)
{
    const nb_conv2d_geometry *g = job->g;
    int64_t plane = g->OH * g->OW, columns = job->unfold->columns;
    int64_t at = n * g->K * job->pool.OH * job->pool.OW;
    nb_max_pool2d_fast_unpool(&job->pool, 0, g->K, job->argmax + at, dy,
                              job->gate ? job->gate + at : NULL, copy, g->OW, columns);
    for (int64_t k = 0; k < g->K; k++)
        memset(copy + k * columns + plane, 0, (size_t)(columns - plane) * sizeof *copy);
}

/* One partition: its dW and db partial sums, then dx of its images. */
static void backward_task(void *context, int64_t part, int worker)
{
    const backward_job *job = context;
    const nb_conv2d_geometry *g = job->g;
    const plan *p = job->forward, *t = job->transposed;
    float *images = job->scratch + worker * job->per_worker;
    float *gradients = images + job->partition_images * p->input_length;
    float *padded = images + job->dx_scratch;
    int64_t image_in = g->C * g->H * g->W, image_out = g->K * g->OH * g->OW;
    int64_t partial_size = g->K * p->depth + g->K;
    int64_t n0 = part * job->partition_images, count = min64(job->partition_images, g->N - n0);
    /* The partition's dy. A fused ReLU's mask: applied while dy is copied
     * for the weights when that is its only use, else into scratch once (it
     * stays in cache for both gradients). */
    int64_t pooled = g->K * job->pool.OH * job->pool.OW;
    const float *dy = job->dy + n0 * (job->pooled ? pooled : image_out);
    const uint16_t *bits = job->relu_bits ? job->relu_bits + n0 * job->bit_words : NULL;
    bool pooled_dy = job->pooled;
    float *masked = NULL;
    if (masks_into_scratch(job)) {
        masked = job->scratch + worker * job->per_worker + job->mask_scratch;
        for (int64_t b = 0; b < count; b++) {
            float *image = masked + b * image_out;
            if (!job->pooled) {
                if (bits)
                    nb_conv_relu_mask_bits(bits + b * job->bit_words, dy + b * image_out, image,
                                           image_out);
                else
                    memcpy(image, dy + b * image_out, (size_t)image_out * sizeof *image);
                continue;
            }
            int64_t at = (n0 + b) * pooled;
            if (nb_max_pool2d_fast_applies(&job->pool)) {
                nb_max_pool2d_fast_unpool(&job->pool, 0, g->K, job->argmax + at, dy + b * pooled,
                                          job->gate ? job->gate + at : NULL, image, g->OW,
                                          g->OH * g->OW);
                continue;
            }
            memset(image, 0, (size_t)image_out * sizeof *image);
            nb_max_pool2d_route_f32(&job->pool, job->argmax + at, dy + b * pooled,
                                    job->gate ? job->gate + at : NULL, image);
        }
        dy = masked;
        bits = NULL;
        pooled_dy = false;
    }
    if (job->winograd_weight)
        partition_weight_winograd(job, n0, count, dy, images, job->partial + part * partial_size);
    else if (job->weight || job->bias)
        partition_weight(job, n0, count, dy, bits, pooled_dy, images, gradients,
                         job->bias_sums + worker * g->K, job->partial + part * partial_size);
    /* dy in scratch is this worker's own: the weights have read it, so a
     * bf16 node rounds it in place for dx. */
    if (job->round_bf16 && masked && (t || job->unfold))
        nb_bf16_round_array(masked, count * image_out, masked);
    for (int64_t b = 0; (t || job->unfold) && b < count; b++) {
        float *dx = job->dx + (n0 + b) * image_in;
        if (pooled_dy) {
            route_into_unfolding(job, n0 + b, dy + b * pooled, padded);
            if (job->round_bf16)
                nb_bf16_round_array(padded, g->K * job->unfold->columns, padded);
            nb_conv_unfold_copied(job->unfold, dx, padded, job->assign_dx);
            continue;
        }
        const float *dy_image = dy + b * image_out;
        if (t) plan_image(t, dy_image, padded, dx, NULL, !job->assign_dx);
        else nb_conv_unfold_image(job->unfold, dy_image, dx, padded, job->assign_dx);
    }
}

/* Multiply-add lanes per image of the transposed convolution for dx:
 * outputs (rounded to tile rows) x wide positions x depth K*kh*kw. */
static int64_t transposed_cost(const nb_conv2d_geometry *g)
{
    int rows = forward_rows(g->C), vectors = rows == 4 ? 6 : rows == 6 ? 4 : 3;
    int64_t wide = g->H * (g->OW + 2 * (g->kw - 1 - g->pad_w));
    return round_up(g->C, rows) * round_up(wide, (int64_t)vectors * LANES) * g->K * g->kh * g->kw;
}

bool nb_conv2d_unfold_pays(const nb_conv2d_geometry *g)
{
    /* Unfolding only pays while dcol stays in cache (col2im reads it kh*kw
     * times); beyond that the transposed convolution streams less. */
    int64_t dcol_floats = g->C * g->kh * g->kw * g->OH * g->OW;
    return dcol_floats <= UNFOLD_MAX_FLOATS && nb_conv_unfold_cost(g) < transposed_cost(g);
}

int nb_conv2d_implicit_backward(const nb_workspace *ws, const nb_conv2d_geometry *g,
                                const nb_conv2d_implicit_options *options, const float *x,
                                const float *w, const nb_conv_output_gradient *source,
                                float *dx, bool assign_dx, float *dw, float *db)
{
    plan forward, transposed;
    nb_conv_unfold unfold;
    backward_job job = {.g = g, .forward = &forward, .x = x, .dy = source->dy,
                        .relu_bits = source->relu_bits, .bit_words = nb_conv2d_relu_bit_words(g),
                        .pooled = source->pool != NULL, .argmax = source->argmax,
                        .gate = source->gate, .round_bf16 = source->round_bf16,
                        .dx = dx, .assign_dx = assign_dx,
                        .weight = dw != NULL, .bias = db != NULL};
    if (source->pool) {
        job.pool = *source->pool;
        job.pool.N = 1;
    }
    if (plan_init(ws, &forward, g->C, g->H, g->W, g->pad_h, g->pad_w, g->kh, g->kw, g->K) != NB_OK)
        return NB_ERR_NOMEM;
    if (dx && !options->unfold_dx) {
        if (plan_init(ws, &transposed, g->K, g->OH, g->OW, g->kh - 1 - g->pad_h,
                      g->kw - 1 - g->pad_w, g->kh, g->kw, g->C) != NB_OK)
            return NB_ERR_NOMEM;
        pack_transposed(&transposed, w);
        if (plan_winograd(ws, &transposed, w, true, options->winograd) != NB_OK) return NB_ERR_NOMEM;
        job.transposed = &transposed;
    } else if (dx) {
        if (nb_conv_unfold_init(ws, &unfold, g, w) != NB_OK) return NB_ERR_NOMEM;
        job.unfold = &unfold;
    }
    /* The weight tile shape that pads K and the depth least (ties: 4 x 6,
     * which loads least per multiply-add). */
    static const int SHAPES[3][2] = {{4, 6}, {6, 4}, {8, 3}};
    int64_t best_lanes = -1;
    for (int shape = 0; shape < 3; shape++) {
        int64_t lanes = round_up(g->K, SHAPES[shape][0]) * round_up(forward.depth, SHAPES[shape][1]);
        if (best_lanes < 0 || lanes < best_lanes) {
            best_lanes = lanes;
            job.weight_rows = SHAPES[shape][0];
            job.weight_taps = SHAPES[shape][1];
        }
    }
    job.gradient_rows = round_up(g->K, job.weight_rows);
    job.tap_tiles = (forward.depth + job.weight_taps - 1) / job.weight_taps;
    int64_t image_floats = forward.input_length + job.gradient_rows * forward.wide_rounded;
    job.partition_images = PARTITION_FLOATS / image_floats;
    if (job.partition_images > PARTITION_IMAGES) job.partition_images = PARTITION_IMAGES;
    if (job.partition_images < 1) job.partition_images = 1;
    int64_t partitions = (g->N + job.partition_images - 1) / job.partition_images;
    int64_t partial_size = g->K * forward.depth + g->K;
    bool weights = dw || db;
    /* Winograd for dW when it applies (the convnet's 32 -> 32 layer: 2.4x
     * fewer products than the direct tiles over the padded grid); its
     * buffers replace the partition's padded images and grids. */
    job.winograd_weight = options->winograd && dw && nb_winograd_weight_applies(g);
    if (job.winograd_weight) nb_winograd_weight_init(&job.ww, g);
    job.dx_scratch = !weights ? 0
                     : job.winograd_weight ? round_up(nb_winograd_weight_scratch(&job.ww), ALIGN_FLOATS) +
                                                 round_up(nb_winograd_weight_sums(&job.ww), ALIGN_FLOATS)
                                           : job.partition_images * image_floats;
    job.mask_scratch = job.dx_scratch + (job.transposed ? plan_scratch(&transposed) : 0) +
                       (job.unfold ? nb_conv_unfold_scratch(&unfold) : 0);
    job.mask_scratch = round_up(job.mask_scratch, ALIGN_FLOATS);
    job.per_worker = job.mask_scratch +
                     (masks_into_scratch(&job) ? job.partition_images * g->K * g->OH * g->OW : 0);
    int workers = nb_parallel_slots();
    job.tap_offset = nb_workspace_alloc(ws, (size_t)(job.tap_tiles * job.weight_taps) * sizeof(int64_t));
    job.partial = nb_workspace_alloc(ws, (size_t)(partitions * partial_size) * sizeof(float));
    job.bias_sums = nb_workspace_alloc(ws, (size_t)(workers * g->K) * sizeof(double));
    job.scratch = nb_workspace_alloc(ws, (size_t)(workers * job.per_worker + 1) * sizeof(float));
    if (!job.tap_offset || !job.partial || !job.bias_sums || !job.scratch) return NB_ERR_NOMEM;
    for (int64_t i = 0; i < job.tap_tiles * job.weight_taps; i++)
        job.tap_offset[i] = forward.offset[min64(i, forward.depth - 1)];
    nb_parallel_tasks(partitions, workers, backward_task, &job);
    /* Partitions are added in order: the same sums for any thread count. */
    for (int64_t i = 0; weights && i < partial_size; i++) {
        bool is_bias = i >= g->K * forward.depth;
        if ((is_bias && !db) || (!is_bias && !dw)) continue;
        float sum = job.partial[i];
        for (int64_t part = 1; part < partitions; part++) sum += job.partial[part * partial_size + i];
        if (is_bias) db[i - g->K * forward.depth] += sum;
        else dw[i] += sum;
    }
    return NB_OK;
}
