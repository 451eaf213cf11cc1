/* pow: y = x^e for a number e (nb_pow_scalar, one input), or y = a^b for
 * tensors with NumPy broadcasting (nb_pow, two inputs). PyTorch's
 * gradients:
 *   d/dx x^e = e x^(e-1), and 0 for e = 0;
 *   d/da a^b = b a^(b-1), 0 where b = 0;
 *   d/db a^b = a^b ln a, 0 where a = 0 and b >= 0.
 * A negative base with a non-integer exponent gives NaN, as in C and
 * PyTorch. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* ---- x^e: x, y: [n] ---- */
static void scalar_forward(const float *x, float *y, int64_t n, const void *params)
{
    const float e = (float)((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], e);
}

static void scalar_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    const double e = ((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; i < n; i++) y[i] = pow(x[i], e);
}

/* dx += dy e x^(e-1) */
static void scalar_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                            const void *params)
{
    (void)y;
    const float e = (float)((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; e != 0.0f && i < n; i++) dx[i] += dy[i] * e * powf(x[i], e - 1.0f);
}

static void scalar_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                int64_t n, const void *params)
{
    (void)y;
    const double e = ((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; e != 0.0 && i < n; i++) dx[i] += dy[i] * e * pow(x[i], e - 1.0);
}

static const nb_unary_kernels SCALAR = {scalar_forward, scalar_forward_ref, scalar_backward,
                                        scalar_backward_ref, NULL};

/* ---- a^b: one run along the output's last dim; a and b step by 0 or 1 ---- */
static void tensor_forward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = powf(a[i * r->a_step], b[i * r->b_step]);
}

static void tensor_forward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = pow(a[i * r->a_step], b[i * r->b_step]);
}

/* da += dy b a^(b-1) (0 where b = 0), db += dy y ln a (0 where a = 0, b >= 0) */
static void tensor_backward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    const float *y = (const float *)p->y + r->out_offset, *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        float base = a[i * r->a_step], e = b[i * r->b_step];
        if (da && e != 0.0f) da[i * r->a_step] += dy[i] * e * powf(base, e - 1.0f);
        if (db && !(base == 0.0f && e >= 0.0f)) db[i * r->b_step] += dy[i] * y[i] * logf(base);
    }
}

static void tensor_backward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    const double *y = (const double *)p->y + r->out_offset;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        double base = a[i * r->a_step], e = b[i * r->b_step];
        if (da && e != 0.0) da[i * r->a_step] += dy[i] * e * pow(base, e - 1.0);
        if (db && !(base == 0.0 && e >= 0.0)) db[i * r->b_step] += dy[i] * y[i] * log(base);
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    if (ctx->n_inputs == 1) return nb_shape_like_input(ctx, out);
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int forward(nb_op_ctx *ctx)
{
    if (ctx->n_inputs == 1) return nb_unary_forward(ctx, &SCALAR);
    nb_binary_forward(ctx, tensor_forward, tensor_forward_ref);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    if (ctx->n_inputs == 1) return nb_unary_backward(ctx, &SCALAR);
    nb_binary_backward(ctx, tensor_backward, tensor_backward_ref);
    return NB_OK;
}

/* Bases in [0.5, 2) (ln a and fractional powers defined); scalar
 * exponents 2, 0.5, -1.5 and 3, then tensor exponents in [-2, 2) over the
 * broadcasting shapes of the binary ops. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double EXPONENTS[] = {2.0, 0.5, -1.5, 3.0};
    enum { SCALAR_CASES = sizeof EXPONENTS / sizeof EXPONENTS[0] };
    if (index < SCALAR_CASES) {
        const nb_scalar_params p = {EXPONENTS[index]};
        memcpy(s->params, &p, sizeof p);
        int produced = nb_sample_elementwise(index, s, rng, 0.5, 2.0, 0.0);
        s->note = "x^e with x in [0.5, 2)";
        return produced;
    }
    int produced = nb_sample_binary(index - SCALAR_CASES, s, rng, -2.0, 2.0);
    if (produced <= 0) return produced;
    /* nb_sample_binary draws a in [-1, 1): map it to [0.5, 2). */
    double *a = s->inputs[0]->data;
    for (int64_t i = 0; i < s->inputs[0]->numel; i++) a[i] = 1.25 + 0.75 * a[i];
    s->note = "a^b with a in [0.5, 2), b in [-2, 2)";
    return 1;
}

static double is_zero(double v, const void *params)
{
    (void)params;
    return v == 0.0;
}

static double is_nonnegative(double v, const void *params)
{
    (void)params;
    return v >= 0.0;
}

/* x^e: dx = dy e x^(e-1) (none for e = 0). a^b: da = dy b a^(b-1), 0 where
 * b = 0; db = dy y ln a, 0 where a = 0 and b >= 0; each summed over its
 * broadcast dims. The zeros come from nb_where, so the 0^-1 or ln 0 of
 * the branch not taken stays out, as in PyTorch's pow_backward. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *a = ctx->inputs[0];
    if (ctx->n_inputs == 1) {
        const double e = ((const nb_scalar_params *)ctx->params)->value;
        if (e != 0.0)
            grads[0] = nb_mul(tape, g, nb_mul_scalar(tape, nb_pow_scalar(tape, a, e - 1.0), e));
        return NB_OK;
    }
    nb_tensor *b = ctx->inputs[1], *zero = nb_scalar_constant(tape, a->dtype, 0.0);
    if (nb_grad_wanted(ctx, 0)) {
        nb_tensor *slope = nb_mul(tape, b, nb_pow(tape, a, nb_add_scalar(tape, b, -1.0)));
        nb_tensor *da = nb_where(tape, nb_pointwise_condition(ctx, b, is_zero), zero,
                                 nb_mul(tape, g, slope));
        grads[0] = nb_sum_to_like(tape, da, a);
    }
    if (nb_grad_wanted(ctx, 1)) {
        nb_tensor *db = nb_mul(tape, g, nb_mul(tape, ctx->output, nb_log(tape, a)));
        nb_tensor *kept = nb_where(tape, nb_pointwise_condition(ctx, b, is_nonnegative), zero, db);
        db = nb_where(tape, nb_pointwise_condition(ctx, a, is_zero), kept, db);
        grads[1] = nb_sum_to_like(tape, db, b);
    }
    return NB_OK;
}

/* params: the exponent of the one-input form (ignored with two inputs). */
const nb_op nb_op_pow = {
    .name = "pow", .min_inputs = 1, .max_inputs = 2, .params_size = sizeof(nb_scalar_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_pow_scalar(nb_tape *tape, nb_tensor *x, double exponent)
{
    const nb_scalar_params p = {exponent};
    return nb_apply(tape, &nb_op_pow, 1, &x, &p);
}

nb_tensor *nb_pow(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    const nb_scalar_params unused = {0.0}; /* the exponent is b */
    return nb_apply(tape, &nb_op_pow, 2, inputs, &unused);
}
