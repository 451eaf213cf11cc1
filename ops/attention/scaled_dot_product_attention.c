/* scaled_dot_product_attention: y = softmax(scale q k^T + mask) v, one node
 * (F.scaled_dot_product_attention of PyTorch 2.x). q [..., T, D],
 * k [..., S, D], v [..., S, Dv] with equal leading dims -> y [..., T, Dv];
 * the optional float mask is added to the scores and broadcasts to
 * [..., T, S] (right-aligned, size-1 or missing dims); is_causal hides key
 * j from query i when j > i (PyTorch's top-left causal mask). scale 0
 * means PyTorch's default 1/sqrt(D). The float32 path streams the key
 * tiles (kernels/attention.c) and never stores a [T, S] matrix; float64
 * runs the reference loops. Work is split by head and query block in the
 * forward and by head in the backward, so no two threads add into the
 * same gradient and the bits do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "base/parallel.h"
#include "kernels/attention.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

enum { QUERY_BLOCK = 64 };

/* The whole call: dims, head count and where each head's data starts. */
typedef struct attention_call {
    nb_attention_dims dims;
    int64_t heads;
    const nb_tensor *q, *k, *v, *mask;
    int64_t mask_head_stride[NB_MAX_DIMS];   /* per leading dim, 0 where it broadcasts */
    int64_t lead[NB_MAX_DIMS];
    int lead_ndim;
    int64_t mask_row, mask_col;
    void *out, *lse;
    const void *dout;
    void *dq, *dk, *dv, *dmask;
    bool fresh[3];            /* dq, dk, dv unzeroed: each head zeroes its part */
    float *scratch;
    size_t scratch_per_worker;
} attention_call;

static int64_t mask_offset(const attention_call *c, int64_t head)
{
    int64_t at = 0;
    for (int d = c->lead_ndim - 1; d >= 0; d--) {
        at += (head % c->lead[d]) * c->mask_head_stride[d];
        head /= c->lead[d];
    }
    return at;
}

static attention_call call_of(const nb_op_ctx *ctx)
{
    const nb_attention_params *p = ctx->params;
    const nb_tensor *q = ctx->inputs[0], *k = ctx->inputs[1], *v = ctx->inputs[2];
    const nb_tensor *mask = ctx->n_inputs > 3 ? ctx->inputs[3] : NULL;
    attention_call c = {.q = q, .k = k, .v = v, .mask = mask, .heads = 1, .lead_ndim = q->ndim - 2};
    c.dims = (nb_attention_dims){.T = q->shape[q->ndim - 2], .S = k->shape[k->ndim - 2],
                                 .D = q->shape[q->ndim - 1], .Dv = v->shape[v->ndim - 1],
                                 .causal = p->is_causal, .bf16 = nb_op_bf16(ctx)};
    c.dims.scale = p->scale != 0.0 ? p->scale : 1.0 / sqrt((double)(c.dims.D ? c.dims.D : 1));
    for (int d = 0; d < c.lead_ndim; d++) c.heads *= c.lead[d] = q->shape[d];
    if (mask) {
        /* Strides of the mask seen as [lead..., T, S], 0 where it broadcasts. */
        int64_t stride = 1, strides[NB_MAX_DIMS] = {0};
        int shift = q->ndim - mask->ndim;
        for (int d = mask->ndim - 1; d >= 0; d--) {
            strides[d + shift] = mask->shape[d] == 1 ? 0 : stride;
            stride *= mask->shape[d];
        }
        for (int d = 0; d < c.lead_ndim; d++) c.mask_head_stride[d] = strides[d];
        c.mask_row = strides[q->ndim - 2];
        c.mask_col = strides[q->ndim - 1];
    }
    return c;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *q = ctx->inputs[0], *k = ctx->inputs[1], *v = ctx->inputs[2];
    char qs[96], ks[96], vs[96], ms[96];
    nb_input_shape(ctx, 0, qs, sizeof qs);
    nb_input_shape(ctx, 1, ks, sizeof ks);
    nb_input_shape(ctx, 2, vs, sizeof vs);
    if (q->ndim < 2 || k->ndim != q->ndim || v->ndim != q->ndim)
        return nb_op_error(ctx, "q %s, k %s, v %s: expected [..., T, D], [..., S, D], "
                           "[..., S, Dv] of one rank >= 2", qs, ks, vs);
    int n = q->ndim;
    bool fits = k->shape[n - 1] == q->shape[n - 1] && v->shape[n - 2] == k->shape[n - 2];
    for (int d = 0; fits && d < n - 2; d++)
        fits = k->shape[d] == q->shape[d] && v->shape[d] == q->shape[d];
    if (!fits)
        return nb_op_error(ctx, "q %s, k %s, v %s: expected [..., T, D], [..., S, D], "
                           "[..., S, Dv] with equal leading dims", qs, ks, vs);
    if (ctx->n_inputs > 3) {
        const nb_tensor *mask = ctx->inputs[3];
        nb_input_shape(ctx, 3, ms, sizeof ms);
        bool broadcasts = mask->ndim <= n;
        for (int d = 0; broadcasts && d < mask->ndim; d++) {
            int64_t want = d == mask->ndim - 1 ? k->shape[n - 2] : q->shape[d + n - mask->ndim];
            broadcasts = mask->shape[d] == 1 || mask->shape[d] == want;
        }
        if (!broadcasts)
            return nb_op_error(ctx, "mask %s does not broadcast to the scores [..., %lld, %lld] of q %s",
                               ms, (long long)q->shape[n - 2], (long long)k->shape[n - 2], qs);
    }
    *out = (nb_shape){.dtype = q->dtype, .ndim = n};
    for (int d = 0; d < n - 1; d++) out->dims[d] = q->shape[d];
    out->dims[n - 1] = v->shape[n - 1];
    return NB_OK;
}

static nb_attention_head_f32 head_f32(const attention_call *c, int64_t b)
{
    const nb_attention_dims *d = &c->dims;
    return (nb_attention_head_f32){
        .q = (const float *)c->q->data + b * d->T * d->D,
        .k = (const float *)c->k->data + b * d->S * d->D,
        .v = (const float *)c->v->data + b * d->S * d->Dv,
        .mask = c->mask ? (const float *)c->mask->data + mask_offset(c, b) : NULL,
        .mask_row = c->mask_row, .mask_col = c->mask_col,
        .o = (float *)c->out + b * d->T * d->Dv, .lse = (float *)c->lse + b * d->T};
}

static nb_attention_head_f64 head_f64(const attention_call *c, int64_t b)
{
    const nb_attention_dims *d = &c->dims;
    return (nb_attention_head_f64){
        .q = (const double *)c->q->data + b * d->T * d->D,
        .k = (const double *)c->k->data + b * d->S * d->D,
        .v = (const double *)c->v->data + b * d->S * d->Dv,
        .mask = c->mask ? (const double *)c->mask->data + mask_offset(c, b) : NULL,
        .mask_row = c->mask_row, .mask_col = c->mask_col,
        .o = (double *)c->out + b * d->T * d->Dv, .lse = (double *)c->lse + b * d->T};
}

static void forward_task(void *ctx, int64_t task, int worker)
{
    const attention_call *c = ctx;
    int64_t blocks = (c->dims.T + QUERY_BLOCK - 1) / QUERY_BLOCK;
    int64_t b = task / blocks, r0 = task % blocks * QUERY_BLOCK;
    int64_t r1 = r0 + QUERY_BLOCK < c->dims.T ? r0 + QUERY_BLOCK : c->dims.T;
    nb_attention_head_f32 h = head_f32(c, b);
    nb_attention_forward_f32(&c->dims, &h, r0, r1, c->scratch + (size_t)worker * c->scratch_per_worker);
}

/* One head's gradients, at `head`'s offsets of each buffer. */
static void backward_task(void *ctx, int64_t b, int worker)
{
    const attention_call *c = ctx;
    const nb_attention_dims *d = &c->dims;
    nb_attention_head_f32 h = head_f32(c, b);
    float *dq = c->dq ? (float *)c->dq + b * d->T * d->D : NULL;
    float *dk = c->dk ? (float *)c->dk + b * d->S * d->D : NULL;
    float *dv = c->dv ? (float *)c->dv + b * d->S * d->Dv : NULL, *dmask = c->dmask;
    /* The kernel adds tile by tile: a fresh buffer starts at zero, here
     * where the head's thread uses it next. */
    if (dq && c->fresh[0]) memset(dq, 0, (size_t)(d->T * d->D) * sizeof(float));
    if (dk && c->fresh[1]) memset(dk, 0, (size_t)(d->S * d->D) * sizeof(float));
    if (dv && c->fresh[2]) memset(dv, 0, (size_t)(d->S * d->Dv) * sizeof(float));
    nb_attention_backward_f32(d, &h, (const float *)c->dout + b * d->T * d->Dv, dq, dk, dv,
                              dmask ? dmask + mask_offset(c, b) : NULL,
                              c->scratch + (size_t)worker * c->scratch_per_worker);
}

static int forward(nb_op_ctx *ctx)
{
    attention_call c = call_of(ctx);
    size_t lse_bytes = (size_t)(c.heads * c.dims.T + 1) * nb_dtype_size(ctx->output->dtype);
    void *lse = nb_op_alloc(ctx, lse_bytes);
    if (!lse) return NB_ERR_NOMEM;
    ctx->saved = lse;
    c.out = ctx->output->data;
    c.lse = lse;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    if (ctx->output->dtype == NB_FLOAT64) {
        double *row = nb_op_alloc(ctx, (size_t)(c.dims.S + 1) * sizeof(double));
        if (!row) return NB_ERR_NOMEM;
        for (int64_t b = 0; b < c.heads; b++) {
            nb_attention_head_f64 h = head_f64(&c, b);
            nb_attention_forward_f64(&c.dims, &h, row);
        }
    } else {
        int slots = nb_parallel_slots();
        c.scratch_per_worker = nb_attention_forward_scratch(&c.dims);
        c.scratch = nb_op_alloc(ctx, (size_t)slots * c.scratch_per_worker * sizeof(float));
        if (!c.scratch) return NB_ERR_NOMEM;
        int64_t blocks = (c.dims.T + QUERY_BLOCK - 1) / QUERY_BLOCK;
        nb_parallel_tasks(c.heads * blocks, slots, forward_task, &c);
    }
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    attention_call c = call_of(ctx);
    c.out = ctx->output->data;
    c.lse = ctx->saved;
    c.dout = ctx->output_grad->data;
    for (int i = 0; i < ctx->n_inputs; i++) {
        void *grad = ctx->input_grads[i] ? ctx->input_grads[i]->data : NULL;
        *(i == 0 ? &c.dq : i == 1 ? &c.dk : i == 2 ? &c.dv : &c.dmask) = grad;
    }
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    const nb_attention_dims *d = &c.dims;
    /* float32 heads zero their own fresh dq, dk, dv; the rest here. */
    for (int i = 0; i < ctx->n_inputs; i++) {
        if (i < 3 && ctx->output->dtype == NB_FLOAT32) c.fresh[i] = nb_grad_fresh(ctx, i);
        else nb_grad_zero_fresh(ctx, i);
    }
    if (ctx->output->dtype == NB_FLOAT64) {
        double *row = nb_op_alloc(ctx, (size_t)(d->S + 1) * sizeof(double));
        if (!row) return NB_ERR_NOMEM;
        double *dq = c.dq, *dk = c.dk, *dv = c.dv, *dmask = c.dmask;
        for (int64_t b = 0; b < c.heads; b++) {
            nb_attention_head_f64 h = head_f64(&c, b);
            nb_attention_backward_f64(d, &h, (const double *)c.dout + b * d->T * d->Dv,
                                      dq ? dq + b * d->T * d->D : NULL,
                                      dk ? dk + b * d->S * d->D : NULL,
                                      dv ? dv + b * d->S * d->Dv : NULL,
                                      dmask ? dmask + mask_offset(&c, b) : NULL, row);
        }
    } else {
        /* A mask shared by several heads would take their gradients from
         * several threads at once: one thread then. */
        int slots = c.dmask && c.mask->numel < c.heads * d->T * d->S ? 1 : nb_parallel_slots();
        c.scratch_per_worker = nb_attention_backward_scratch(d);
        c.scratch = nb_op_alloc(ctx, (size_t)slots * c.scratch_per_worker * sizeof(float));
        if (!c.scratch) return NB_ERR_NOMEM;
        if (slots == 1)
            for (int64_t b = 0; b < c.heads; b++) backward_task(&c, b, 0);
        else nb_parallel_tasks(c.heads, slots, backward_task, &c);
    }
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int ndim, mask_ndim;
        int64_t q[4], k[4], v[4], mask[4];
        nb_attention_params params;
    } cases[] = {
        {"q [2,3,4], k [2,5,4], v [2,5,3]", 3, 0, {2, 3, 4}, {2, 5, 4}, {2, 5, 3}, {0}, {0.0, false}},
        {"causal self-attention [1,2,4,3]", 4, 0, {1, 2, 4, 3}, {1, 2, 4, 3}, {1, 2, 4, 3}, {0},
         {0.0, true}},
        {"mask [3,5] over 2 heads, scale 0.7", 3, 2, {2, 3, 4}, {2, 5, 4}, {2, 5, 2}, {3, 5},
         {0.7, false}},
        {"causal with mask [2,1,4] (one row for all queries)", 3, 3, {2, 4, 2}, {2, 4, 2},
         {2, 4, 3}, {2, 1, 4}, {0.0, true}},
        {"2-D q [5,3], k [6,3], v [6,2]", 2, 0, {5, 3}, {6, 3}, {6, 2}, {0}, {0.0, false}},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth: a softmax of bilinear scores";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    int n = cases[index].ndim;
    if (!nb_sample_tensor(s, rng, n, cases[index].q, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, n, cases[index].k, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, n, cases[index].v, -1.0, 1.0, 0.0, true))
        return -1;
    if (cases[index].mask_ndim &&
        !nb_sample_tensor(s, rng, cases[index].mask_ndim, cases[index].mask, -1.0, 1.0, 0.0, true))
        return -1;
    return 1;
}

/* t viewed as [heads, rows, cols]: its last two dims behind one batch dim. */
static nb_tensor *as_heads(nb_tape *tape, nb_tensor *t)
{
    const int64_t dims[3] = {-1, t->shape[t->ndim - 2], t->shape[t->ndim - 1]};
    return nb_reshape(tape, t, 3, dims);
}

/* The [T,S] constant added to the scores for is_causal: 0 where query i
 * sees key j (j <= i), -inf where it is hidden. */
static nb_tensor *causal_mask(nb_tape *tape, nb_dtype dtype, int64_t T, int64_t S)
{
    nb_tensor *m = nb_tape_tensor(tape, dtype, 2, (const int64_t[]){T, S}, NULL);
    for (int64_t i = 0; m && i < T; i++)
        for (int64_t j = i + 1; j < S; j++) nb_tensor_set(m, i * S + j, -INFINITY);
    return m;
}

/* Recomputes P = softmax(scale q k^T + mask) with ops, then
 *   dv = P^T dy,  dS = P (dP - sum_j P dP) with dP = dy v^T,
 *   dq = scale dS k,  dk = scale dS^T q,  dmask = dS summed to mask's shape. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    attention_call c = call_of(ctx);
    nb_tensor *q = ctx->inputs[0], *k = ctx->inputs[1], *v = ctx->inputs[2];
    nb_tensor *mask = ctx->n_inputs > 3 ? ctx->inputs[3] : NULL;
    nb_tensor *q3 = as_heads(tape, q), *k3 = as_heads(tape, k), *v3 = as_heads(tape, v);
    nb_tensor *scores = nb_mul_scalar(tape, nb_matmul(tape, q3, nb_transpose(tape, k3, 1, 2)),
                                      c.dims.scale);
    int64_t full[NB_MAX_DIMS];   /* the scores as [lead..., T, S], where mask broadcasts */
    for (int d = 0; d < q->ndim - 1; d++) full[d] = q->shape[d];
    full[q->ndim - 1] = c.dims.S;
    scores = nb_reshape(tape, scores, q->ndim, full);
    if (mask) scores = nb_add(tape, scores, mask);
    if (c.dims.causal)
        scores = nb_add(tape, scores, causal_mask(tape, q->dtype, c.dims.T, c.dims.S));
    nb_tensor *p = as_heads(tape, nb_softmax(tape, scores, -1)), *g3 = as_heads(tape, g);
    if (nb_grad_wanted(ctx, 2))
        grads[2] = nb_reshape(tape, nb_matmul(tape, nb_transpose(tape, p, 1, 2), g3), v->ndim, v->shape);
    bool any = nb_grad_wanted(ctx, 0) || nb_grad_wanted(ctx, 1) || (mask && nb_grad_wanted(ctx, 3));
    if (!any) return NB_OK;
    nb_tensor *dp = nb_matmul(tape, g3, nb_transpose(tape, v3, 1, 2));
    nb_tensor *row = nb_sum_dim(tape, nb_mul(tape, p, dp), -1, true);
    nb_tensor *ds = nb_mul(tape, p, nb_sub(tape, dp, row));
    if (nb_grad_wanted(ctx, 0))
        grads[0] = nb_reshape(tape, nb_mul_scalar(tape, nb_matmul(tape, ds, k3), c.dims.scale),
                              q->ndim, q->shape);
    if (nb_grad_wanted(ctx, 1)) {
        nb_tensor *dk = nb_matmul(tape, nb_transpose(tape, ds, 1, 2), q3);
        grads[1] = nb_reshape(tape, nb_mul_scalar(tape, dk, c.dims.scale), k->ndim, k->shape);
    }
    if (mask && nb_grad_wanted(ctx, 3))
        grads[3] = nb_sum_to_like(tape, nb_reshape(tape, ds, q->ndim, full), mask);
    return NB_OK;
}

_Static_assert(sizeof(nb_attention_params) <= NB_MAX_PARAMS_SIZE, "nb_attention_params must fit");

const nb_op nb_op_scaled_dot_product_attention = {
    .name = "scaled_dot_product_attention", .min_inputs = 3, .max_inputs = 4,
    .params_size = sizeof(nb_attention_params), .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_scaled_dot_product_attention_ex(nb_tape *tape, nb_tensor *q, nb_tensor *k,
                                              nb_tensor *v, nb_tensor *mask,
                                              const nb_attention_params *p)
{
    const nb_attention_params defaults = {0.0, false};
    nb_tensor *inputs[4] = {q, k, v, mask};
    return nb_apply(tape, &nb_op_scaled_dot_product_attention, mask ? 4 : 3, inputs,
                    p ? p : &defaults);
}

nb_tensor *nb_scaled_dot_product_attention(nb_tape *tape, nb_tensor *q, nb_tensor *k,
                                           nb_tensor *v, nb_tensor *mask, bool is_causal)
{
    const nb_attention_params p = {0.0, is_causal};
    return nb_scaled_dot_product_attention_ex(tape, q, k, v, mask, &p);
}
