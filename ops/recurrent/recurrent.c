#include "ops/recurrent/recurrent.h"

#include "kernels/gemm.h"
#include "ops/common.h"

void nb_cell_gemm(const nb_op_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                  int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                  void *C, int64_t ldc)
{
    if (ctx->inputs[0]->dtype == NB_FLOAT32)
        nb_sgemm_at(nb_op_bf16(ctx), trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
    else nb_dgemm(trans_a, trans_b, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

void nb_cell_linear(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *A,
                    const void *B, void *C, bool accumulate)
{
    if (ctx->inputs[0]->dtype == NB_FLOAT32)
        nb_sgemm_at(nb_op_bf16(ctx), false, true, M, N, K, 1.0f, A, K, B, K, accumulate ? 1.0f : 0.0f, C, N);
    else nb_dgemm(false, true, M, N, K, 1.0, A, K, B, K, accumulate ? 1.0 : 0.0, C, N);
}

void nb_cell_linear_input_grad(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K,
                               const void *A, const void *B, void *C)
{
    if (ctx->inputs[0]->dtype == NB_FLOAT32) nb_sgemm_at(nb_op_bf16(ctx), false, false, M, K, N, 1.0f, A, N, B, K, 1.0f, C, K);
    else nb_dgemm(false, false, M, K, N, 1.0, A, N, B, K, 1.0, C, K);
}

void nb_cell_linear_weight_grad(const nb_op_ctx *ctx, int64_t M, int64_t N, int64_t K,
                                const void *A, const void *B, void *C)
{
    if (ctx->inputs[0]->dtype == NB_FLOAT32) nb_sgemm_at(nb_op_bf16(ctx), true, false, N, K, M, 1.0f, A, N, B, K, 1.0f, C, K);
    else nb_dgemm(true, false, N, K, M, 1.0, A, N, B, K, 1.0, C, K);
}

void nb_cell_add_bias(const nb_tensor *like, int64_t M, int64_t N, const void *bias, void *rows)
{
    if (like->dtype == NB_FLOAT32) {
        float *r = rows;
        const float *b = bias;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) r[m * N + n] += b[n];
    } else {
        double *r = rows;
        const double *b = bias;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) r[m * N + n] += b[n];
    }
}

/* Row by row, so the inner loop runs along memory and vectorises; each
 * column still sums its rows in order. */
void nb_cell_bias_grad(const nb_tensor *like, int64_t M, int64_t N, const void *d, void *dbias)
{
    if (like->dtype == NB_FLOAT32) {
        float *out = dbias;
        const float *rows = d;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) out[n] += rows[m * N + n];
    } else {
        double *out = dbias;
        const double *rows = d;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) out[n] += rows[m * N + n];
    }
}

int nb_cell_check(nb_op_ctx *ctx, int gates, int h_input, int first_weight)
{
    const nb_tensor *x = ctx->inputs[0], *h = ctx->inputs[h_input];
    const nb_tensor *w_ih = ctx->inputs[first_weight], *w_hh = ctx->inputs[first_weight + 1];
    char xs[96], hs[96], wi[96], wh[96], bs[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    nb_input_shape(ctx, h_input, hs, sizeof hs);
    nb_input_shape(ctx, first_weight, wi, sizeof wi);
    nb_input_shape(ctx, first_weight + 1, wh, sizeof wh);
    if (x->ndim != 2 || h->ndim != 2 || h->shape[0] != x->shape[0])
        return nb_op_error(ctx, "input %s and hidden state %s: expected [B,I] and [B,H]", xs, hs);
    int64_t H = h->shape[1], I = x->shape[1];
    if (w_ih->ndim != 2 || w_ih->shape[0] != gates * H || w_ih->shape[1] != I ||
        w_hh->ndim != 2 || w_hh->shape[0] != gates * H || w_hh->shape[1] != H)
        return nb_op_error(ctx, "weights %s and %s: expected [%lld,%lld] and [%lld,%lld] for "
                           "input %s and hidden state %s", wi, wh, (long long)(gates * H),
                           (long long)I, (long long)(gates * H), (long long)H, xs, hs);
    for (int i = first_weight + 2; i < ctx->n_inputs; i++)
        if (ctx->inputs[i]->ndim != 1 || ctx->inputs[i]->shape[0] != gates * H)
            return nb_op_error(ctx, "bias %s: expected [%lld]",
                               nb_input_shape(ctx, i, bs, sizeof bs), (long long)(gates * H));
    if (ctx->n_inputs != first_weight + 2 && ctx->n_inputs != first_weight + 4)
        return nb_op_error(ctx, "give both biases or neither (%d inputs)", ctx->n_inputs);
    return NB_OK;
}

int nb_cell_sample(int index, nb_sample *s, nb_rng *rng, int gates, bool with_c)
{
    static const struct {
        const char *label;
        int64_t B, I, H;
        bool bias;
    } cases[] = {
        {"B 2, I 3, H 4, biases", 2, 3, 4, true},
        {"B 3, I 2, H 3, no bias", 3, 2, 3, false},
        {"B 1, I 1, H 2, biases", 1, 1, 2, true},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth: sigmoids and tanh";
    int64_t B = cases[index].B, I = cases[index].I, H = cases[index].H, G = gates * H;
    const int64_t shapes[7][2] = {{B, I}, {B, H}, {B, H}, {G, I}, {G, H}, {G}, {G}};
    const int ndims[7] = {2, 2, 2, 2, 2, 1, 1};
    for (int i = 0; i < (cases[index].bias ? 7 : 5); i++) {
        if (i == 2 && !with_c) continue;
        if (!nb_sample_tensor(s, rng, ndims[i], shapes[i], -1.0, 1.0, 0.0, true)) return -1;
    }
    return 1;
}
