/* The matrix-product precision: a bf16 tape (or module) makes linear,
 * matmul, conv2d and their backward run nb_sgemm_bf16, checked bit for
 * bit against nb_sgemm_bf16_ref on the same operands; nodes keep the
 * precision they were recorded with; modules override the tape; float64
 * ignores the setting; bad values are errors. */
#include <math.h>
#include <string.h>

#include "helpers.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"

static nb_tensor *uniform(nb_dtype dtype, int ndim, const int64_t *shape, bool grad)
{
    nb_tensor *t = nb_tensor_uniform(dtype, ndim, shape, -1.0, 1.0, NULL);
    cr_assert_not_null(t, "%s", nb_last_error());
    nb_tensor_set_requires_grad(t, grad);
    return t;
}

static void assert_same_bits(const float *got, const float *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s[%ld]: %.9g, expected %.9g",
                  what, (long)i, got[i], want[i]);
}

static bool any_differs(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) != 0;
}

enum { R = 7, IN = 37, OUT = 5 };

/* y = x W^T + b and its gradients for loss sum(y * g), on a tape at
 * `precision`; y and the gradients are copied out. */
static void run_linear(nb_precision precision, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                       nb_tensor *g, float *y, float *dx, float *dw)
{
    nb_tape *tape = nb_tape_new();
    cr_assert_eq(nb_tape_set_precision(tape, precision), NB_OK);
    nb_tensor_zero_grad(x);
    nb_tensor_zero_grad(w);
    nb_tensor_zero_grad(b);
    nb_tensor *out = nb_linear(tape, x, w, b);
    cr_assert_not_null(out, "%s", nb_tape_error(tape));
    memcpy(y, out->data, sizeof(float) * R * OUT);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, out, g)), NULL), NB_OK);
    memcpy(dx, nb_tensor_grad(x)->data, sizeof(float) * R * IN);
    memcpy(dw, nb_tensor_grad(w)->data, sizeof(float) * OUT * IN);
    nb_tape_free(tape);
}

Test(precision, bf16_linear_runs_the_bf16_products_forward_and_backward)
{
    nb_manual_seed(1);
    nb_tensor *x = uniform(NB_FLOAT32, 2, (int64_t[]){R, IN}, true);
    nb_tensor *w = uniform(NB_FLOAT32, 2, (int64_t[]){OUT, IN}, true);
    nb_tensor *b = uniform(NB_FLOAT32, 1, (int64_t[]){OUT}, true);
    nb_tensor *g = uniform(NB_FLOAT32, 2, (int64_t[]){R, OUT}, false);
    float y[R * OUT], dx[R * IN], dw[OUT * IN];
    run_linear(NB_PRECISION_BF16, x, w, b, g, y, dx, dw);

    /* The oracle: y = b + x W^T, dx = g W, dW = g^T x, each a bf16 product. */
    const float *xd = x->data, *wd = w->data, *bd = b->data, *gd = g->data;
    float want_y[R * OUT], want_dx[R * IN] = {0}, want_dw[OUT * IN] = {0};
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OUT; o++) want_y[r * OUT + o] = bd[o];
    nb_sgemm_bf16_ref(false, true, R, OUT, IN, 1.0f, xd, IN, wd, IN, 1.0f, want_y, OUT);
    nb_sgemm_bf16_ref(false, false, R, IN, OUT, 1.0f, gd, OUT, wd, IN, 0.0f, want_dx, IN);
    nb_sgemm_bf16_ref(true, false, OUT, IN, R, 1.0f, gd, OUT, xd, IN, 1.0f, want_dw, IN);
    assert_same_bits(y, want_y, R * OUT, "y");
    assert_same_bits(dx, want_dx, R * IN, "dx");
    assert_same_bits(dw, want_dw, OUT * IN, "dW");
    cr_assert_eq(nb_tensor_grad(w)->dtype, NB_FLOAT32, "gradients stay float32");

    /* And float32 gives something else (the setting is not a no-op). */
    float y32[R * OUT], dx32[R * IN], dw32[OUT * IN];
    run_linear(NB_PRECISION_FP32, x, w, b, g, y32, dx32, dw32);
    cr_assert(any_differs(y, y32, R * OUT) && any_differs(dw, dw32, OUT * IN));
    nb_tensor_free(x), nb_tensor_free(w), nb_tensor_free(b), nb_tensor_free(g);
}

Test(precision, a_node_keeps_the_precision_it_was_recorded_with)
{
    nb_manual_seed(2);
    nb_tensor *a = uniform(NB_FLOAT32, 2, (int64_t[]){9, 40}, true);
    nb_tensor *b = uniform(NB_FLOAT32, 2, (int64_t[]){40, 11}, true);
    nb_tape *tape = nb_tape_new();
    nb_tape_set_precision(tape, NB_PRECISION_BF16);
    nb_tensor *y = nb_matmul(tape, a, b);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    nb_tape_set_precision(tape, NB_PRECISION_FP32); /* too late for y's node */
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    float want_y[9 * 11], ones[9 * 11], want_da[9 * 40] = {0};
    for (int i = 0; i < 9 * 11; i++) ones[i] = 1.0f;
    nb_sgemm_bf16_ref(false, false, 9, 11, 40, 1.0f, a->data, 40, b->data, 11, 0.0f, want_y, 11);
    nb_sgemm_bf16_ref(false, true, 9, 40, 11, 1.0f, ones, 11, b->data, 11, 1.0f, want_da, 40);
    assert_same_bits(y->data, want_y, 9 * 11, "y");
    assert_same_bits(nb_tensor_grad(a)->data, want_da, 9 * 40, "da");
    nb_tape_free(tape);
    nb_tensor_free(a), nb_tensor_free(b);
}

/* A two-layer model: the module's own precision wins over the tape's, and
 * the children of a module follow it unless they set their own. */
Test(precision, modules_override_the_tape)
{
    nb_manual_seed(3);
    nb_module *first = nb_nn_linear(IN, OUT, true), *second = nb_nn_linear(OUT, 3, false);
    nb_module *model = nb_nn_sequential(2, (nb_module *[]){first, second});
    nb_tensor *x = uniform(NB_FLOAT32, 2, (int64_t[]){R, IN}, false);
    float outputs[4][R * 3];
    const nb_precision tapes[4] = {NB_PRECISION_FP32, NB_PRECISION_BF16, NB_PRECISION_FP32,
                                   NB_PRECISION_BF16};
    const nb_precision models[4] = {NB_PRECISION_INHERIT, NB_PRECISION_INHERIT,
                                    NB_PRECISION_BF16, NB_PRECISION_FP32};
    for (int run = 0; run < 4; run++) {
        cr_assert_eq(nb_module_set_precision(model, models[run]), NB_OK);
        nb_tape *tape = nb_tape_new();
        nb_tape_set_precision(tape, tapes[run]);
        nb_tensor *y = nb_module_forward(model, tape, x);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        memcpy(outputs[run], y->data, sizeof outputs[run]);
        cr_assert_eq(nb_tape_precision(tape), tapes[run], "the forward restores the tape's");
        nb_tape_free(tape);
    }
    assert_same_bits(outputs[2], outputs[1], R * 3, "bf16 model on an fp32 tape");
    assert_same_bits(outputs[3], outputs[0], R * 3, "fp32 model on a bf16 tape");
    cr_assert(any_differs(outputs[0], outputs[1], R * 3));

    /* Only the second layer in bf16: differs from both uniform runs. */
    nb_module_set_precision(model, NB_PRECISION_INHERIT);
    nb_module_set_precision(second, NB_PRECISION_BF16);
    nb_tape *tape = nb_tape_new();
    nb_tensor *y = nb_module_forward(model, tape, x);
    cr_assert(any_differs(y->data, outputs[0], R * 3) && any_differs(y->data, outputs[1], R * 3));
    nb_tape_free(tape);
    cr_assert_eq(nb_module_set_precision(model, (nb_precision)7), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "Sequential") != NULL, "%s", nb_last_error());
    nb_module_free(model);
    nb_tensor_free(x);
}

Test(precision, float64_ignores_the_setting)
{
    nb_manual_seed(4);
    nb_tensor *x = uniform(NB_FLOAT64, 4, (int64_t[]){2, 3, 9, 9}, false);
    nb_tensor *w = uniform(NB_FLOAT64, 4, (int64_t[]){4, 3, 3, 3}, false);
    double results[2][2 * 4 * 7 * 7];
    for (int run = 0; run < 2; run++) {
        nb_tape *tape = nb_tape_new();
        nb_tape_set_precision(tape, run ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
        nb_tensor *y = nb_conv2d(tape, x, w, NULL, NULL);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        memcpy(results[run], y->data, sizeof results[run]);
        nb_tape_free(tape);
    }
    cr_assert(memcmp(results[0], results[1], sizeof results[0]) == 0);
    nb_tensor_free(x), nb_tensor_free(w);
}

/* conv2d in bf16 on both of its paths (gathered and implicit_rounded): y,
 * dx and dW against float64 sums of the bf16-rounded operands (for the
 * loss sum(y * s), dy = s), within float32 rounding of the sums; db, not a
 * product, against the sum of dy as it is (float32); and the
 * gathered path's portable kernels give the bits of its AVX-512 BF16 ones.
 * Geometries with odd channel counts (a lone channel pair), more than 32
 * output channels, 5x5 and 1x1 kernels. */
typedef struct conv_geometry {
    int N, C, K, H, W, kh, kw, pad;
} conv_geometry;

static double rounded_at(const float *t, int64_t i) { return nb_bf16_rounded(t[i]); }

static void check_sum(double got, double sum, double magnitude, int terms, const char *what,
                      const conv_geometry *c)
{
    cr_assert(fabs(got - sum) <= (terms + 2) * 0x1p-24 * magnitude,
              "%s (N %d C %d K %d %dx%d, %dx%d pad %d): %.9g vs %.9g", what, c->N, c->C, c->K,
              c->H, c->W, c->kh, c->kw, c->pad, got, sum);
}

typedef struct conv_results {
    float *y, *dx, *dw, *db;
} conv_results;

static void run_conv(const conv_geometry *c, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                     nb_tensor *s, const char *path, conv_results *r)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_precision(tape, NB_PRECISION_BF16);
    cr_assert_eq(nb_conv2d_force_path(path), NB_OK);
    nb_tensor_zero_grad(x);
    nb_tensor_zero_grad(w);
    nb_tensor_zero_grad(b);
    nb_conv2d_params p = {{1, 1}, {c->pad, c->pad}, {1, 1}, 1};
    nb_tensor *out = nb_conv2d(tape, x, w, b, &p);
    cr_assert_not_null(out, "%s", nb_tape_error(tape));
    cr_assert_str_eq(nb_conv2d_path_name(out), path);
    r->y = malloc(sizeof(float) * (size_t)out->numel);
    r->dx = malloc(sizeof(float) * (size_t)x->numel);
    r->dw = malloc(sizeof(float) * (size_t)w->numel);
    r->db = malloc(sizeof(float) * (size_t)b->numel);
    memcpy(r->y, out->data, sizeof(float) * (size_t)out->numel);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, out, s)), NULL), NB_OK);
    memcpy(r->dx, nb_tensor_grad(x)->data, sizeof(float) * (size_t)x->numel);
    memcpy(r->dw, nb_tensor_grad(w)->data, sizeof(float) * (size_t)w->numel);
    memcpy(r->db, nb_tensor_grad(b)->data, sizeof(float) * (size_t)b->numel);
    nb_conv2d_force_path(NULL);
    nb_tape_free(tape);
}

static void check_conv(const conv_geometry *c, const char *path)
{
    const int OH = c->H + 2 * c->pad - c->kh + 1, OW = c->W + 2 * c->pad - c->kw + 1;
    nb_tensor *x = uniform(NB_FLOAT32, 4, (int64_t[]){c->N, c->C, c->H, c->W}, true);
    nb_tensor *w = uniform(NB_FLOAT32, 4, (int64_t[]){c->K, c->C, c->kh, c->kw}, true);
    nb_tensor *b = uniform(NB_FLOAT32, 1, (int64_t[]){c->K}, true);
    nb_tensor *s = uniform(NB_FLOAT32, 4, (int64_t[]){c->N, c->K, OH, OW}, false);
    conv_results r;
    run_conv(c, x, w, b, s, path, &r);
    const float *xd = x->data, *wd = w->data, *sd = s->data, *bd = b->data;
    /* Each output (n, k, oh, ow) reads x at (oh + i - pad, ow + j - pad). */
    double *y = calloc((size_t)(c->N * c->K * OH * OW), sizeof(double));
    double *ym = calloc((size_t)(c->N * c->K * OH * OW), sizeof(double));
    double *dx = calloc((size_t)(c->N * c->C * c->H * c->W), sizeof(double));
    double *dxm = calloc((size_t)(c->N * c->C * c->H * c->W), sizeof(double));
    double *dw = calloc((size_t)(c->K * c->C * c->kh * c->kw), sizeof(double));
    double *dwm = calloc((size_t)(c->K * c->C * c->kh * c->kw), sizeof(double));
    double *db = calloc((size_t)c->K, sizeof(double)), *dbm = calloc((size_t)c->K, sizeof(double));
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int at = 0; at < OH * OW; at++) {
                int64_t yi = (n * c->K + k) * OH * OW + at;
                y[yi] = bd[k], ym[yi] = fabs(bd[k]);
                db[k] += sd[yi], dbm[k] += fabs(sd[yi]);
            }
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                    for (int ch = 0; ch < c->C; ch++)
                        for (int i = 0; i < c->kh; i++)
                            for (int j = 0; j < c->kw; j++) {
                                int h = oh + i - c->pad, v = ow + j - c->pad;
                                if (h < 0 || h >= c->H || v < 0 || v >= c->W) continue;
                                int64_t xi = ((n * c->C + ch) * c->H + h) * c->W + v;
                                int64_t wi = ((k * c->C + ch) * c->kh + i) * c->kw + j;
                                int64_t yi = ((n * c->K + k) * OH + oh) * OW + ow;
                                double a = rounded_at(xd, xi), f = rounded_at(wd, wi),
                                       g = rounded_at(sd, yi);
                                y[yi] += a * f, ym[yi] += fabs(a * f);
                                dx[xi] += f * g, dxm[xi] += fabs(f * g);
                                dw[wi] += a * g, dwm[wi] += fabs(a * g);
                            }
    int taps = c->C * c->kh * c->kw;
    for (int64_t i = 0; i < c->N * c->K * OH * OW; i++)
        check_sum(r.y[i], y[i], ym[i], taps + 1, "y", c);
    for (int64_t i = 0; i < c->N * c->C * c->H * c->W; i++)
        check_sum(r.dx[i], dx[i], dxm[i], c->K * c->kh * c->kw, "dx", c);
    for (int64_t i = 0; i < c->K * taps; i++)
        check_sum(r.dw[i], dw[i], dwm[i], c->N * (OH + 1) * (OW + c->kw), "dW", c);
    for (int k = 0; k < c->K; k++) check_sum(r.db[k], db[k], dbm[k], c->N * OH * OW, "db", c);

    /* The gathered path's portable kernels (the "portable" CPU level has
     * no AVX-512 BF16) add in the same order as its AVX-512 BF16 ones: the
     * same bits. */
    if (strcmp(path, "gathered") == 0) {
        conv_results portable;
        cr_assert_eq(nb_cpu_force_level("portable"), NB_OK);
        run_conv(c, x, w, b, s, path, &portable);
        nb_cpu_force_level(NULL);
        assert_same_bits(r.y, portable.y, (int64_t)c->N * c->K * OH * OW, "y, portable");
        assert_same_bits(r.dx, portable.dx, x->numel, "dx, portable");
        assert_same_bits(r.dw, portable.dw, w->numel, "dW, portable");
        assert_same_bits(r.db, portable.db, b->numel, "db, portable");
        free(portable.y), free(portable.dx), free(portable.dw), free(portable.db);
    }
    free(y), free(ym), free(dx), free(dxm), free(dw), free(dwm), free(db), free(dbm);
    free(r.y), free(r.dx), free(r.dw), free(r.db);
    nb_tensor_free(x), nb_tensor_free(w), nb_tensor_free(b), nb_tensor_free(s);
}

Test(precision, bf16_conv2d_runs_bf16_products_forward_and_backward)
{
    static const conv_geometry geometries[] = {
        {2, 3, 4, 9, 9, 3, 3, 1},    {3, 1, 6, 11, 10, 5, 5, 2}, {2, 7, 40, 8, 7, 3, 3, 0},
        {9, 4, 9, 5, 6, 1, 1, 0},    {2, 32, 33, 6, 6, 3, 3, 1},
    };
    nb_manual_seed(5);
    for (size_t i = 0; i < sizeof geometries / sizeof geometries[0]; i++) {
        check_conv(&geometries[i], "gathered");
        check_conv(&geometries[i], "implicit_rounded");
    }
    /* The automatic choice for bf16 nodes: few input channels take the
     * float32 tiles on rounded operands, more take the channel pairs. */
    static const struct { int channels; const char *path; } choices[] = {
        {1, "implicit_rounded"}, {4, "implicit_rounded"}, {5, "gathered"}, {32, "gathered"}};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        nb_tensor *x = uniform(NB_FLOAT32, 4, (int64_t[]){1, choices[i].channels, 9, 9}, false);
        nb_tensor *w = uniform(NB_FLOAT32, 4, (int64_t[]){4, choices[i].channels, 3, 3}, true);
        nb_tape *tape = nb_tape_new();
        nb_tape_set_precision(tape, NB_PRECISION_BF16);
        cr_assert_str_eq(nb_conv2d_path_name(nb_conv2d(tape, x, w, NULL, NULL)), choices[i].path);
        nb_tape_free(tape);
        nb_tensor_free(x), nb_tensor_free(w);
    }
}

/* A fused bf16 conv + ReLU (+ max-pool) node gives the bits of the
 * separate nodes, forward and backward, on each bf16 path: a 2x2 pool (the
 * fast routing), a 3x3 stride-2 one (the general routing), and no pool. */
static void check_fused(const char *path, const nb_max_pool2d_params *pool, int64_t side)
{
    nb_tensor *x = uniform(NB_FLOAT32, 4, (int64_t[]){3, 5, 10, 10}, true);
    nb_tensor *w = uniform(NB_FLOAT32, 4, (int64_t[]){7, 5, 3, 3}, true);
    nb_tensor *b = uniform(NB_FLOAT32, 1, (int64_t[]){7}, true);
    nb_tensor *s = uniform(NB_FLOAT32, 4, (int64_t[]){3, 7, side, side}, false);
    enum { GRADS = 3 * 5 * 10 * 10 + 7 * 5 * 9 + 7 };
    float *results[2], grads[2][GRADS];
    for (int fused = 0; fused < 2; fused++) {
        nb_tape *tape = nb_tape_new();
        nb_tape_set_precision(tape, NB_PRECISION_BF16);
        cr_assert_eq(nb_conv2d_force_path(path), NB_OK);
        nb_tensor_zero_grad(x), nb_tensor_zero_grad(w), nb_tensor_zero_grad(b);
        nb_tensor *y;
        if (fused)
            y = pool ? nb_conv2d_relu_max_pool2d(tape, x, w, b, NULL, pool)
                     : nb_conv2d_relu(tape, x, w, b, NULL);
        else
            y = nb_relu(tape, nb_conv2d(tape, x, w, b, NULL));
        if (!fused && pool) y = nb_max_pool2d(tape, y, pool);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        cr_assert_eq(y->numel, s->numel);
        results[fused] = malloc(sizeof(float) * (size_t)y->numel);
        memcpy(results[fused], y->data, sizeof(float) * (size_t)y->numel);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y, s)), NULL), NB_OK);
        memcpy(grads[fused], nb_tensor_grad(x)->data, sizeof(float) * 1500);
        memcpy(grads[fused] + 1500, nb_tensor_grad(w)->data, sizeof(float) * 315);
        memcpy(grads[fused] + 1815, nb_tensor_grad(b)->data, sizeof(float) * 7);
        nb_conv2d_force_path(NULL);
        nb_tape_free(tape);
    }
    assert_same_bits(results[1], results[0], s->numel, path);
    assert_same_bits(grads[1], grads[0], GRADS, path);
    free(results[0]), free(results[1]);
    nb_tensor_free(x), nb_tensor_free(w), nb_tensor_free(b), nb_tensor_free(s);
}

Test(precision, fused_bf16_nodes_match_separate_ones)
{
    static const char *const paths[] = {"gathered", "implicit_rounded"};
    static const nb_max_pool2d_params pool_2x2 = NB_MAX_POOL2D_PARAMS(2, 2);
    static const nb_max_pool2d_params pool_3x3 = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, false};
    nb_manual_seed(6);
    for (int p = 0; p < 2; p++) {
        check_fused(paths[p], &pool_2x2, 4);
        check_fused(paths[p], &pool_3x3, 4);
        check_fused(paths[p], NULL, 8);
    }
}

/* The other ops with products (attention, the LSTM layer and GRU cell,
 * conv_transpose2d): on a bf16 tape their output and a weight's gradient
 * change (the setting reaches them) but stay within 2 % of the float32
 * results as whole vectors (operands rounded by up to 2^-9 relative each). */
typedef nb_tensor *(*product_op)(nb_tape *tape, nb_tensor *const *t);

static nb_tensor *attention_op(nb_tape *tape, nb_tensor *const *t)
{
    return nb_scaled_dot_product_attention(tape, t[0], t[1], t[2], NULL, true);
}
static nb_tensor *lstm_op(nb_tape *tape, nb_tensor *const *t)
{
    return nb_lstm(tape, t[0], t[1], t[2], NULL, NULL);
}
static nb_tensor *gru_op(nb_tape *tape, nb_tensor *const *t)
{
    return nb_gru_cell(tape, t[0], t[1], t[2], t[3], NULL, NULL);
}
static nb_tensor *transpose_op(nb_tape *tape, nb_tensor *const *t)
{
    nb_conv_transpose2d_params p = {0};
    p.stride[0] = p.stride[1] = 2;
    return nb_conv_transpose2d(tape, t[0], t[1], NULL, &p);
}

static void run_product(product_op op, nb_tensor *const *t, int grad_of, nb_precision precision,
                        float *out, int64_t *n_out, float *grad, int64_t *n_grad)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_precision(tape, precision);
    nb_tensor_zero_grad(t[grad_of]);
    nb_tensor *y = op(tape, t);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    *n_out = y->numel;
    memcpy(out, y->data, sizeof(float) * (size_t)y->numel);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y, y)), NULL), NB_OK);
    *n_grad = t[grad_of]->numel;
    memcpy(grad, nb_tensor_grad(t[grad_of])->data, sizeof(float) * (size_t)*n_grad);
    nb_tape_free(tape);
}

/* ||a - b|| / ||b|| */
static double relative_distance(const float *a, const float *b, int64_t n)
{
    double difference = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; i++) {
        difference += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    return sqrt(difference / norm);
}

static void check_product(const char *name, product_op op, nb_tensor *const *t, int grad_of)
{
    static float out[2][4096], grad[2][4096];
    int64_t n_out = 0, n_grad = 0;
    run_product(op, t, grad_of, NB_PRECISION_FP32, out[0], &n_out, grad[0], &n_grad);
    run_product(op, t, grad_of, NB_PRECISION_BF16, out[1], &n_out, grad[1], &n_grad);
    cr_assert(any_differs(out[0], out[1], n_out), "%s: bf16 output equals float32's", name);
    cr_assert(any_differs(grad[0], grad[1], n_grad), "%s: bf16 gradient equals float32's", name);
    /* Elements can cancel, so the bound is on the whole vector. */
    cr_assert(relative_distance(out[1], out[0], n_out) <= 2e-2, "%s: y %g apart", name,
              relative_distance(out[1], out[0], n_out));
    cr_assert(relative_distance(grad[1], grad[0], n_grad) <= 2e-2, "%s: gradient %g apart", name,
              relative_distance(grad[1], grad[0], n_grad));
}

Test(precision, attention_recurrent_and_transposed_convolution_follow_the_setting)
{
    nb_manual_seed(7);
    nb_tensor *attention[3] = {uniform(NB_FLOAT32, 3, (int64_t[]){2, 9, 16}, true),
                               uniform(NB_FLOAT32, 3, (int64_t[]){2, 9, 16}, true),
                               uniform(NB_FLOAT32, 3, (int64_t[]){2, 9, 16}, true)};
    check_product("attention", attention_op, attention, 1);
    nb_tensor *lstm[3] = {uniform(NB_FLOAT32, 3, (int64_t[]){3, 5, 12}, true),
                          uniform(NB_FLOAT32, 2, (int64_t[]){4 * 10, 12}, true),
                          uniform(NB_FLOAT32, 2, (int64_t[]){4 * 10, 10}, true)};
    check_product("lstm", lstm_op, lstm, 2);
    nb_tensor *gru[4] = {uniform(NB_FLOAT32, 2, (int64_t[]){3, 12}, true),
                         uniform(NB_FLOAT32, 2, (int64_t[]){3, 10}, true),
                         uniform(NB_FLOAT32, 2, (int64_t[]){3 * 10, 12}, true),
                         uniform(NB_FLOAT32, 2, (int64_t[]){3 * 10, 10}, true)};
    check_product("gru_cell", gru_op, gru, 2);
    nb_tensor *transpose[2] = {uniform(NB_FLOAT32, 4, (int64_t[]){2, 6, 5, 5}, true),
                               uniform(NB_FLOAT32, 4, (int64_t[]){6, 4, 3, 3}, true)};
    check_product("conv_transpose2d", transpose_op, transpose, 1);
    for (int i = 0; i < 3; i++) nb_tensor_free(attention[i]), nb_tensor_free(lstm[i]);
    for (int i = 0; i < 4; i++) nb_tensor_free(gru[i]);
    for (int i = 0; i < 2; i++) nb_tensor_free(transpose[i]);
}

Test(precision, bad_values_and_names_are_errors)
{
    nb_tape *tape = nb_tape_new();
    cr_assert_eq(nb_tape_precision(tape), NB_PRECISION_FP32, "fp32 is the default");
    cr_assert_eq(nb_tape_set_precision(tape, NB_PRECISION_INHERIT), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_tape_set_precision") != NULL);
    cr_assert_eq(nb_tape_set_precision(NULL, NB_PRECISION_BF16), NB_ERR_INVALID);
    nb_precision p = NB_PRECISION_FP32;
    cr_assert_eq(nb_precision_parse("bf16", &p), NB_OK);
    cr_assert_eq(p, NB_PRECISION_BF16);
    cr_assert_eq(nb_precision_parse("fp16", &p), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "fp16") != NULL);
    cr_assert_str_eq(nb_precision_name(NB_PRECISION_BF16), "bf16");
    nb_tape_free(tape);
}
