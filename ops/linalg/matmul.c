/* matmul: y = a b for
 *   [M,K]   x [K,N]   -> [M,N]
 *   [B,M,K] x [B,K,N] -> [B,M,N]   (one product per batch entry)
 *   [B,M,K] x [K,N]   -> [B,M,N]   (b shared by the batch; its gradient
 *                                   sums over the batch)
 * Every product runs through the GEMM in kernels/gemm.h. The backward uses
 * its transposition flags (dA += dY B^T, dB += A^T dY) with beta = 1 so
 * nothing is transposed or copied and the += accumulation is free. */
#include <string.h>

#include "kernels/gemm.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* The problem seen as `batches` products [M,K] x [K,N]; b_shared when b
 * is one [K,N] matrix for all of them. */
typedef struct matmul_dims {
    int64_t batches, M, K, N;
    bool b_shared;
    bool bf16;          /* float32 products in bf16 (the node's precision) */
} matmul_dims;

static matmul_dims dims_of(const nb_tensor *a, const nb_tensor *b)
{
    matmul_dims d;
    d.batches = a->ndim == 3 ? a->shape[0] : 1;
    d.M = a->shape[a->ndim - 2];
    d.K = a->shape[a->ndim - 1];
    d.N = b->shape[b->ndim - 1];
    d.b_shared = a->ndim == 3 && b->ndim == 2;
    /* A shared b lets the batch fold into M: [B*M,K] x [K,N] is one GEMM. */
    if (d.b_shared) {
        d.M *= d.batches;
        d.batches = 1;
    }
    return d;
}

/* a: [batches,M,K], b: [batches,K,N] (or [K,N] when shared), y: [batches,M,N] */
static void matmul_forward(const float *a, const float *b, float *y, matmul_dims d)
{
    for (int64_t i = 0; i < d.batches; i++)
        nb_sgemm_at(d.bf16, false, false, d.M, d.N, d.K, 1.0f, a + i * d.M * d.K, d.K, b + i * d.K * d.N, d.N,
                 0.0f, y + i * d.M * d.N, d.N);
}

static void matmul_forward_ref(const double *a, const double *b, double *y, matmul_dims d)
{
    for (int64_t i = 0; i < d.batches; i++)
        nb_dgemm(false, false, d.M, d.N, d.K, 1.0, a + i * d.M * d.K, d.K, b + i * d.K * d.N, d.N,
                 0.0, y + i * d.M * d.N, d.N);
}

/* da[M,K] += dy[M,N] b^T  (b stored [K,N]);  db[K,N] += a^T dy  (a stored [M,K]).
 * da or db is NULL when that input needs no gradient. */
static void matmul_backward(const float *a, const float *b, const float *dy, float *da, float *db,
                            matmul_dims d)
{
    for (int64_t i = 0; i < d.batches; i++) {
        const float *ai = a + i * d.M * d.K, *bi = b + i * d.K * d.N, *dyi = dy + i * d.M * d.N;
        if (da)
            nb_sgemm_at(d.bf16, false, true, d.M, d.K, d.N, 1.0f, dyi, d.N, bi, d.N, 1.0f, da + i * d.M * d.K, d.K);
        if (db)
            nb_sgemm_at(d.bf16, true, false, d.K, d.N, d.M, 1.0f, ai, d.K, dyi, d.N, 1.0f, db + i * d.K * d.N, d.N);
    }
}

static void matmul_backward_ref(const double *a, const double *b, const double *dy, double *da,
                                double *db, matmul_dims d)
{
    for (int64_t i = 0; i < d.batches; i++) {
        const double *ai = a + i * d.M * d.K, *bi = b + i * d.K * d.N, *dyi = dy + i * d.M * d.N;
        if (da)
            nb_dgemm(false, true, d.M, d.K, d.N, 1.0, dyi, d.N, bi, d.N, 1.0, da + i * d.M * d.K, d.K);
        if (db)
            nb_dgemm(true, false, d.K, d.N, d.M, 1.0, ai, d.K, dyi, d.N, 1.0, db + i * d.K * d.N, d.N);
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    char sa[96], sb[96];
    nb_input_shape(ctx, 0, sa, sizeof sa);
    nb_input_shape(ctx, 1, sb, sizeof sb);
    bool supported =
        (a->ndim == 2 && b->ndim == 2) || (a->ndim == 3 && (b->ndim == 3 || b->ndim == 2));
    if (!supported)
        return nb_op_error(ctx, "%s x %s: unsupported ranks %d-D x %d-D (expected 2-D x 2-D, "
                           "3-D x 3-D or 3-D x 2-D)", sa, sb, a->ndim, b->ndim);
    int64_t inner_a = a->shape[a->ndim - 1], inner_b = b->shape[b->ndim - 2];
    if (inner_a != inner_b)
        return nb_op_error(ctx, "%s x %s: inner dims %lld != %lld", sa, sb, (long long)inner_a,
                           (long long)inner_b);
    if (a->ndim == 3 && b->ndim == 3 && a->shape[0] != b->shape[0])
        return nb_op_error(ctx, "%s x %s: batch dims %lld != %lld", sa, sb, (long long)a->shape[0],
                           (long long)b->shape[0]);
    out->dtype = a->dtype;
    out->ndim = a->ndim;
    for (int d = 0; d < a->ndim - 1; d++) out->dims[d] = a->shape[d];
    out->dims[a->ndim - 1] = b->shape[b->ndim - 1];
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    nb_tensor *y = ctx->output;
    matmul_dims d = dims_of(a, b);
    d.bf16 = nb_op_bf16(ctx);
    if (y->numel == 0) return NB_OK;
    /* An empty inner dim makes y all zeros; GEMM is not asked to do K = 0. */
    if (d.K == 0) {
        memset(y->data, 0, (size_t)y->numel * nb_dtype_size(y->dtype));
        return NB_OK;
    }
    if (y->dtype == NB_FLOAT32) matmul_forward(a->data, b->data, y->data, d);
    else matmul_forward_ref(a->data, b->data, y->data, d);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    nb_tensor *da = ctx->input_grads[0], *db = ctx->input_grads[1];
    matmul_dims d = dims_of(a, b);
    d.bf16 = nb_op_bf16(ctx);
    /* Any empty dim leaves nothing to add (an empty sum contributes 0). */
    if ((!da && !db) || d.batches == 0 || d.M == 0 || d.K == 0 || d.N == 0) return NB_OK;
    if (a->dtype == NB_FLOAT32)
        matmul_backward(a->data, b->data, ctx->output_grad->data, da ? da->data : NULL,
                        db ? db->data : NULL, d);
    else
        matmul_backward_ref(a->data, b->data, ctx->output_grad->data, da ? da->data : NULL,
                            db ? db->data : NULL, d);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int a_rank, b_rank;
        int64_t a[3], b[3];
        const char *label;
    } cases[] = {
        {2, 2, {3, 4}, {4, 5}, "[3,4] x [4,5]"},
        {2, 2, {1, 7}, {7, 1}, "[1,7] x [7,1] (dot product)"},
        {2, 2, {5, 1}, {1, 3}, "[5,1] x [1,3] (outer product)"},
        {3, 3, {2, 3, 4}, {2, 4, 3}, "[2,3,4] x [2,4,3] batched"},
        {3, 2, {3, 2, 5}, {5, 4}, "[3,2,5] x [5,4] shared b"},
        {2, 2, {9, 17}, {17, 7}, "[9,17] x [17,7] odd sizes"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth (bilinear): no kinks";
    if (!nb_sample_tensor(s, rng, cases[index].a_rank, cases[index].a, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, cases[index].b_rank, cases[index].b, -1.0, 1.0, 0.0, true))
        return -1;
    return 1;
}

/* The last two dims of t swapped (t 2-D or 3-D). */
static nb_tensor *swap_last(nb_tape *tape, nb_tensor *t)
{
    return nb_transpose(tape, t, -2, -1);
}

/* da = dy b^T, db = a^T dy; a shared b's gradient sums over the batch,
 * which folds into one product of the batch-flattened a and dy. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_matmul(tape, g, swap_last(tape, b));
    if (!nb_grad_wanted(ctx, 1)) return NB_OK;
    if (a->ndim == 3 && b->ndim == 2) {
        const int64_t rows_a[2] = {-1, a->shape[2]}, rows_g[2] = {-1, g->shape[2]};
        nb_tensor *a2 = nb_reshape(tape, a, 2, rows_a), *g2 = nb_reshape(tape, g, 2, rows_g);
        grads[1] = nb_matmul(tape, swap_last(tape, a2), g2);
    } else {
        grads[1] = nb_matmul(tape, swap_last(tape, a), g);
    }
    return NB_OK;
}

const nb_op nb_op_matmul = {
    .name = "matmul", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_matmul(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_matmul, 2, inputs, NULL);
}
