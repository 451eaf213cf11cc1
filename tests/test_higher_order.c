/* Higher-order gradients: nb_grad as values and recorded on the tape
 * (NB_GRAD_CREATE_GRAPH), Hessian-vector products, third derivatives of
 * element-wise ops and matmul against closed forms, gradgradcheck, the
 * errors, and the recorded graphs released by nb_tape_reset. */
#include <stdlib.h>

#include "tests/helpers.h"

static nb_tensor *grad1(nb_tape *tape, nb_tensor *y, nb_tensor *seed, nb_tensor *x, unsigned flags)
{
    nb_tensor *g = NULL;
    int status = nb_grad(tape, 1, &y, seed ? &seed : NULL, 1, &x, &g, flags);
    cr_assert_eq(status, NB_OK, "%s", nb_last_error());
    return g;
}

static double value(int i, double scale) { return scale * sin(0.7 * i + 0.3); }

static nb_tensor *filled(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *shape,
                         double scale, int offset, bool requires_grad)
{
    nb_tensor *t = nb_tape_tensor(tape, dtype, ndim, shape, NULL);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, value((int)i + offset, scale));
    nb_tensor_set_requires_grad(t, requires_grad);
    return t;
}

/* A two-layer perceptron's mean squared output, on `tape`. */
static nb_tensor *mlp_loss(nb_tape *tape, nb_tensor *x, nb_tensor *const *p)
{
    nb_tensor *h = nb_relu(tape, nb_linear(tape, x, p[0], p[1]));
    nb_tensor *y = nb_linear(tape, h, p[2], p[3]);
    return nb_mean(tape, nb_mul(tape, y, y));
}

static void mlp_params(nb_tape *tape, nb_dtype dtype, nb_tensor **p)
{
    const int64_t w1[2] = {6, 4}, b1[1] = {6}, w2[2] = {3, 6}, b2[1] = {3};
    p[0] = filled(tape, dtype, 2, w1, 0.8, 0, true);
    p[1] = filled(tape, dtype, 1, b1, 0.3, 40, true);
    p[2] = filled(tape, dtype, 2, w2, 0.7, 50, true);
    p[3] = filled(tape, dtype, 1, b2, 0.2, 80, true);
}

Test(higher_order, grad_equals_backward_and_leaves_grad_fields_alone)
{
    nb_tape *tape = nb_tape_new();
    const int64_t xs[2] = {5, 4};
    nb_tensor *x = filled(tape, NB_FLOAT64, 2, xs, 1.0, 7, false), *p[4], *g[4];
    mlp_params(tape, NB_FLOAT64, p);
    nb_tensor *loss = mlp_loss(tape, x, p);
    cr_assert_eq(nb_grad(tape, 1, &loss, NULL, 4, p, g, 0), NB_OK, "%s", nb_last_error());
    for (int i = 0; i < 4; i++) {
        cr_assert_null(p[i]->grad, "nb_grad wrote .grad of parameter %d", i);
        cr_assert(!g[i]->requires_grad, "a plain nb_grad result is a value");
    }
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK);
    for (int i = 0; i < 4; i++)
        for (int64_t k = 0; k < g[i]->numel; k++)
            cr_assert_eq(nb_tensor_get(g[i], k), nb_tensor_get(p[i]->grad, k));
    /* The recorded sweep gives the same first derivative. */
    nb_tensor *r[4];
    cr_assert_eq(nb_grad(tape, 1, &loss, NULL, 4, p, r, NB_GRAD_CREATE_GRAPH), NB_OK);
    for (int i = 0; i < 4; i++) {
        cr_assert(r[i]->requires_grad);
        for (int64_t k = 0; k < r[i]->numel; k++)
            cr_assert(fabs(nb_tensor_get(r[i], k) - nb_tensor_get(g[i], k)) <= 1e-14);
    }
    nb_tape_free(tape);
}

/* f = sum x^3: f' = 3x^2, then <f', v> differentiated gives 6 x v, and
 * <6 x v, w> gives 6 v w, which no longer depends on x. */
Test(higher_order, third_derivative_of_a_cube)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double tol = d ? 1e-5 : 1e-13;
        nb_tape *tape = nb_tape_new();
        const int64_t n[1] = {5};
        nb_tensor *x = filled(tape, dtype, 1, n, 1.5, 0, true);
        nb_tensor *v = filled(tape, dtype, 1, n, 1.0, 11, false);
        nb_tensor *w = filled(tape, dtype, 1, n, 1.0, 23, false);
        nb_tensor *f = nb_sum(tape, nb_mul(tape, nb_mul(tape, x, x), x));
        nb_tensor *g = grad1(tape, f, NULL, x, NB_GRAD_CREATE_GRAPH);
        nb_tensor *hv = grad1(tape, nb_sum(tape, nb_mul(tape, g, v)), NULL, x, NB_GRAD_CREATE_GRAPH);
        nb_tensor *t = grad1(tape, nb_sum(tape, nb_mul(tape, hv, w)), NULL, x, NB_GRAD_CREATE_GRAPH);
        for (int64_t i = 0; i < 5; i++) {
            double xi = nb_tensor_get(x, i), vi = nb_tensor_get(v, i), wi = nb_tensor_get(w, i);
            cr_assert(fabs(nb_tensor_get(g, i) - 3 * xi * xi) <= tol * 10);
            cr_assert(fabs(nb_tensor_get(hv, i) - 6 * xi * vi) <= tol * 10);
            cr_assert(fabs(nb_tensor_get(t, i) - 6 * vi * wi) <= tol * 10);
        }
        /* The fourth derivative is zero: nothing of x is left in t. */
        nb_tensor *fourth = NULL;
        nb_tensor *s = nb_sum(tape, t);
        if (s->requires_grad) {
            cr_assert_eq(nb_grad(tape, 1, &s, NULL, 1, &x, &fourth, NB_GRAD_ALLOW_UNUSED), NB_OK);
            cr_assert_null(fourth, "t = 6 v w does not depend on x");
        }
        nb_tape_free(tape);
    }
}

/* Every derivative of exp is exp: three orders of sum(exp(x)) along u, v, w. */
Test(higher_order, third_derivative_of_exp)
{
    nb_tape *tape = nb_tape_new();
    const int64_t n[1] = {6};
    nb_tensor *x = filled(tape, NB_FLOAT64, 1, n, 1.2, 2, true);
    nb_tensor *v = filled(tape, NB_FLOAT64, 1, n, 1.0, 13, false);
    nb_tensor *w = filled(tape, NB_FLOAT64, 1, n, 1.0, 29, false);
    nb_tensor *g = grad1(tape, nb_sum(tape, nb_exp(tape, x)), NULL, x, NB_GRAD_CREATE_GRAPH);
    nb_tensor *h = grad1(tape, g, v, x, NB_GRAD_CREATE_GRAPH);   /* seeded: <v, g> */
    nb_tensor *t = grad1(tape, h, w, x, NB_GRAD_CREATE_GRAPH);
    for (int64_t i = 0; i < 6; i++) {
        double e = exp(nb_tensor_get(x, i)), vi = nb_tensor_get(v, i), wi = nb_tensor_get(w, i);
        cr_assert(fabs(nb_tensor_get(h, i) - e * vi) <= 1e-12 * (1 + e));
        cr_assert(fabs(nb_tensor_get(t, i) - e * vi * wi) <= 1e-12 * (1 + e));
    }
    nb_tape_free(tape);
}

/* f(W) = sum (xW)^3 elementwise. With y = xW:
 *   df/dW = x^T 3y^2,  along V: x^T 6 y (xV),  along V then U: x^T 6 (xU)(xV). */
Test(higher_order, third_derivative_through_matmul)
{
    enum { R = 3, I = 4, O = 2 };
    nb_tape *tape = nb_tape_new();
    const int64_t xs[2] = {R, I}, ws[2] = {I, O};
    nb_tensor *x = filled(tape, NB_FLOAT64, 2, xs, 1.0, 0, false);
    nb_tensor *W = filled(tape, NB_FLOAT64, 2, ws, 0.9, 17, true);
    nb_tensor *V = filled(tape, NB_FLOAT64, 2, ws, 1.0, 31, false);
    nb_tensor *U = filled(tape, NB_FLOAT64, 2, ws, 1.0, 47, false);
    nb_tensor *y = nb_matmul(tape, x, W);
    nb_tensor *f = nb_sum(tape, nb_mul(tape, nb_mul(tape, y, y), y));
    nb_tensor *g = grad1(tape, f, NULL, W, NB_GRAD_CREATE_GRAPH);
    nb_tensor *hv = grad1(tape, g, V, W, NB_GRAD_CREATE_GRAPH);
    nb_tensor *t = grad1(tape, hv, U, W, NB_GRAD_CREATE_GRAPH);
    const double *xd = x->data, *wd = W->data, *vd = V->data, *ud = U->data;
    double xw[R][O] = {{0}}, xv[R][O] = {{0}}, xu[R][O] = {{0}};
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++) {
                xw[r][o] += xd[r * I + i] * wd[i * O + o];
                xv[r][o] += xd[r * I + i] * vd[i * O + o];
                xu[r][o] += xd[r * I + i] * ud[i * O + o];
            }
    for (int i = 0; i < I; i++)
        for (int o = 0; o < O; o++) {
            double e1 = 0, e2 = 0, e3 = 0;
            for (int r = 0; r < R; r++) {
                e1 += xd[r * I + i] * 3 * xw[r][o] * xw[r][o];
                e2 += xd[r * I + i] * 6 * xw[r][o] * xv[r][o];
                e3 += xd[r * I + i] * 6 * xu[r][o] * xv[r][o];
            }
            cr_assert(fabs(nb_tensor_get(g, i * O + o) - e1) <= 1e-12);
            cr_assert(fabs(nb_tensor_get(hv, i * O + o) - e2) <= 1e-12);
            cr_assert(fabs(nb_tensor_get(t, i * O + o) - e3) <= 1e-12);
        }
    nb_tape_free(tape);
}

/* The gradient of the MLP's loss at theta, flattened into out. */
static void mlp_gradient(const double *theta, double *out)
{
    nb_tape *tape = nb_tape_new();
    const int64_t xs[2] = {5, 4};
    nb_tensor *x = filled(tape, NB_FLOAT64, 2, xs, 1.0, 7, false), *p[4], *g[4];
    mlp_params(tape, NB_FLOAT64, p);
    int64_t k = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < p[i]->numel; j++) nb_tensor_set(p[i], j, theta[k++]);
    nb_tensor *loss = mlp_loss(tape, x, p);
    cr_assert_eq(nb_grad(tape, 1, &loss, NULL, 4, p, g, 0), NB_OK);
    k = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < g[i]->numel; j++) out[k++] = nb_tensor_get(g[i], j);
    nb_tape_free(tape);
}

/* H v against central differences of the gradient along v. */
Test(higher_order, hessian_vector_product_matches_differences_of_gradients)
{
    enum { P = 24 + 6 + 18 + 3 };
    nb_tape *tape = nb_tape_new();
    const int64_t xs[2] = {5, 4};
    nb_tensor *x = filled(tape, NB_FLOAT64, 2, xs, 1.0, 7, false), *p[4], *g[4], *v[4], *hv[4];
    mlp_params(tape, NB_FLOAT64, p);
    double theta[P], direction[P], plus[P], minus[P];
    int64_t k = 0;
    for (int i = 0; i < 4; i++) {
        v[i] = filled(tape, NB_FLOAT64, p[i]->ndim, p[i]->shape, 1.0, 100 + 10 * i, false);
        for (int64_t j = 0; j < p[i]->numel; j++, k++) {
            theta[k] = nb_tensor_get(p[i], j);
            direction[k] = nb_tensor_get(v[i], j);
        }
    }
    nb_tensor *loss = mlp_loss(tape, x, p);
    cr_assert_eq(nb_grad(tape, 1, &loss, NULL, 4, p, g, NB_GRAD_CREATE_GRAPH), NB_OK);
    cr_assert_eq(nb_grad(tape, 4, g, v, 4, p, hv, NB_GRAD_ALLOW_UNUSED), NB_OK, "%s",
                 nb_last_error());
    const double eps = 1e-6;
    double shifted[P];
    for (k = 0; k < P; k++) shifted[k] = theta[k] + eps * direction[k];
    mlp_gradient(shifted, plus);
    for (k = 0; k < P; k++) shifted[k] = theta[k] - eps * direction[k];
    mlp_gradient(shifted, minus);
    k = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < p[i]->numel; j++, k++) {
            double numeric = (plus[k] - minus[k]) / (2 * eps);
            double analytic = hv[i] ? nb_tensor_get(hv[i], j) : 0.0;
            cr_assert(fabs(analytic - numeric) <= 1e-6 + 1e-5 * fabs(numeric),
                      "parameter %d element %lld: %.10g vs %.10g", i, (long long)j, analytic,
                      numeric);
        }
    nb_tape_free(tape);
}

/* A small conv net end to end: conv2d, ReLU, max-pool, linear. */
static nb_tensor *conv_net(nb_tape *tape, nb_tensor *const *in, int n, void *user)
{
    (void)n;
    (void)user;
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_tensor *h = nb_max_pool2d(tape, nb_relu(tape, nb_conv2d(tape, in[0], in[1], in[2], NULL)), &pool);
    const int64_t rows[2] = {h->shape[0], -1};
    nb_tensor *y = nb_linear(tape, nb_reshape(tape, h, 2, rows), in[3], NULL);
    return nb_sum(tape, nb_mul(tape, y, y));
}

Test(higher_order, gradgradcheck_of_a_conv_net)
{
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    const int64_t xs[4] = {2, 2, 6, 6}, ws[4] = {3, 2, 3, 3}, bs[1] = {3}, ls[2] = {2, 12};
    nb_tensor *in[4] = {nb_tensor_uniform(NB_FLOAT64, 4, xs, -1, 1, &rng),
                        nb_tensor_uniform(NB_FLOAT64, 4, ws, -0.5, 0.5, &rng),
                        nb_tensor_uniform(NB_FLOAT64, 1, bs, -0.5, 0.5, &rng),
                        nb_tensor_uniform(NB_FLOAT64, 2, ls, -0.5, 0.5, &rng)};
    for (int i = 0; i < 4; i++) nb_tensor_set_requires_grad(in[i], true);
    nb_gradcheck_result r;
    cr_assert_eq(nb_gradgradcheck(conv_net, NULL, 4, in, NULL, &r), NB_OK, "%s", nb_last_error());
    cr_assert(r.passed, "%s", r.message);
    cr_assert(r.elements_checked > 0);
    for (int i = 0; i < 4; i++) nb_tensor_free(in[i]);
}

/* A user op through the public descriptor: y = x^3 with both backwards. */
static int cube_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0];
    *out = (nb_shape){.dtype = x->dtype, .ndim = x->ndim};
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    return NB_OK;
}
static int cube_forward(nb_op_ctx *ctx)
{
    for (int64_t i = 0; i < ctx->output->numel; i++) {
        double x = nb_tensor_get(ctx->inputs[0], i);
        nb_tensor_set(ctx->output, i, x * x * x);
    }
    return NB_OK;
}
static int cube_backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    for (int64_t i = 0; dx && i < dx->numel; i++) {
        double x = nb_tensor_get(ctx->inputs[0], i);
        nb_tensor_set(dx, i, nb_tensor_get(dx, i) + 3 * x * x * nb_tensor_get(ctx->output_grad, i));
    }
    return NB_OK;
}
static int cube_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    grads[0] = nb_mul_scalar(tape, nb_mul(tape, g, nb_mul(tape, x, x)), 3.0);
    return NB_OK;
}
static const nb_op CUBE = {.name = "test_cube", .min_inputs = 1, .max_inputs = 1,
                           .shape = cube_shape, .forward = cube_forward,
                           .backward = cube_backward, .backward_ops = cube_backward_ops};
static const nb_op CUBE_WITHOUT_RULE = {.name = "test_cube_first_order_only", .min_inputs = 1,
                                        .max_inputs = 1, .shape = cube_shape,
                                        .forward = cube_forward, .backward = cube_backward};

static nb_tensor *apply_cube(nb_tape *tape, nb_tensor *const *in, int n, void *user)
{
    (void)n;
    return nb_apply(tape, user, 1, in, NULL);
}

Test(higher_order, user_op_with_backward_ops_passes_gradgradcheck)
{
    const int64_t n[1] = {4};
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_tensor *x = nb_tensor_uniform(NB_FLOAT64, 1, n, -1.5, 1.5, &rng);
    nb_tensor_set_requires_grad(x, true);
    nb_gradcheck_result r;
    cr_assert_eq(nb_gradgradcheck(apply_cube, (void *)&CUBE, 1, &x, NULL, &r), NB_OK);
    cr_assert(r.passed, "%s", r.message);
    /* Without a rule the second order is refused, naming the op. */
    cr_assert_neq(nb_gradgradcheck(apply_cube, (void *)&CUBE_WITHOUT_RULE, 1, &x, NULL, &r), NB_OK);
    cr_assert(strstr(nb_last_error(), "test_cube_first_order_only") != NULL, "%s", nb_last_error());
    cr_assert(strstr(nb_last_error(), "backward_ops") != NULL, "%s", nb_last_error());
    nb_tensor_free(x);
}

Test(higher_order, errors_name_the_problem)
{
    nb_tape *tape = nb_tape_new();
    const int64_t n[1] = {3};
    nb_tensor *x = filled(tape, NB_FLOAT64, 1, n, 1.0, 0, true);
    nb_tensor *unused = filled(tape, NB_FLOAT64, 1, n, 1.0, 5, true);
    nb_tensor *constant = filled(tape, NB_FLOAT64, 1, n, 1.0, 9, false);
    nb_tensor *y = nb_mul(tape, x, x), *s = nb_sum(tape, y), *g[2];
    /* A non-scalar output needs a seed; a seed must match. */
    cr_assert_neq(nb_grad(tape, 1, &y, NULL, 1, &x, g, 0), NB_OK);
    cr_assert(strstr(nb_last_error(), "needs a seed") != NULL, "%s", nb_last_error());
    const int64_t two[1] = {2};
    nb_tensor *bad_seed = nb_tape_tensor(tape, NB_FLOAT64, 1, two, NULL);
    cr_assert_neq(nb_grad(tape, 1, &y, &bad_seed, 1, &x, g, 0), NB_OK);
    cr_assert(strstr(nb_last_error(), "seed 0 [2] float64 does not match output [3]") != NULL,
              "%s", nb_last_error());
    /* Inputs must require a gradient, and be used unless told otherwise. */
    cr_assert_neq(nb_grad(tape, 1, &s, NULL, 1, &constant, g, 0), NB_OK);
    cr_assert(strstr(nb_last_error(), "input 0 [3] does not require grad") != NULL, "%s",
              nb_last_error());
    nb_tensor *both[2] = {x, unused};
    g[0] = g[1] = x;
    cr_assert_neq(nb_grad(tape, 1, &s, NULL, 2, both, g, 0), NB_OK);
    cr_assert(strstr(nb_last_error(), "input 1 [3] is not used") != NULL, "%s", nb_last_error());
    cr_assert(g[0] == NULL && g[1] == NULL, "a failed call leaves no results");
    cr_assert_eq(nb_grad(tape, 1, &s, NULL, 2, both, g, NB_GRAD_ALLOW_UNUSED), NB_OK);
    cr_assert_not_null(g[0]);
    cr_assert_null(g[1]);
    cr_assert_neq(nb_grad(tape, 1, &s, NULL, 1, &x, g, 1u << 7), NB_OK);
    cr_assert(strstr(nb_last_error(), "unknown flags") != NULL);
    /* An op without backward_ops on the path of a recorded sweep. */
    nb_tensor *c = nb_sum(tape, nb_apply(tape, &CUBE_WITHOUT_RULE, 1, &x, NULL));
    cr_assert_neq(nb_grad(tape, 1, &c, NULL, 1, &x, g, NB_GRAD_CREATE_GRAPH), NB_OK);
    cr_assert(strstr(nb_last_error(), "op test_cube_first_order_only has no backward_ops") != NULL,
              "%s", nb_last_error());
    /* ...while a plain sweep through it works. */
    cr_assert_eq(nb_grad(tape, 1, &c, NULL, 1, &x, g, 0), NB_OK);
    nb_tape_free(tape);
}

/* A step function: its gradient is zero wherever it exists. */
static int step_forward(nb_op_ctx *ctx)
{
    for (int64_t i = 0; i < ctx->output->numel; i++)
        nb_tensor_set(ctx->output, i, nb_tensor_get(ctx->inputs[0], i) > 0);
    return NB_OK;
}
static int step_backward(nb_op_ctx *ctx)
{
    (void)ctx;
    return NB_OK;
}
static int step_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    (void)ctx, (void)g, (void)grads; /* zero: every contribution stays NULL */
    return NB_OK;
}
static const nb_op STEP = {.name = "test_step", .min_inputs = 1, .max_inputs = 1,
                           .shape = cube_shape, .forward = step_forward,
                           .backward = step_backward, .backward_ops = step_backward_ops};

/* An input the outputs depend on through zero gradients gets zeros, as
 * PyTorch's autograd.grad returns zeros (not None) for it. */
Test(higher_order, reached_input_with_zero_gradient_gets_zeros)
{
    nb_tape *tape = nb_tape_new();
    const int64_t n[1] = {3};
    nb_tensor *x = filled(tape, NB_FLOAT64, 1, n, 1.0, 0, true);
    nb_tensor *y = nb_sum(tape, nb_apply(tape, &STEP, 1, &x, NULL));
    for (int record = 0; record < 2; record++) {
        nb_tensor *g = grad1(tape, y, NULL, x, record ? NB_GRAD_CREATE_GRAPH : 0);
        cr_assert_not_null(g);
        assert_values(g, (double[]){0, 0, 0}, 3, 0.0);
    }
    nb_tape_free(tape);
}

static long allocations;
static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    allocations++;
    return malloc(size);
}
static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* 1,000 Hessian-vector products, each on a reset tape: the recorded
 * graphs go with the step, and after warm-up a product allocates nothing
 * (ASan builds of this test also report any leak). */
Test(higher_order, recorded_graphs_are_released_by_reset)
{
    nb_set_allocator(counting_malloc, plain_free, NULL);
    nb_tape *tape = nb_tape_new();
    const int64_t w1[2] = {16, 8}, b1[1] = {16}, w2[2] = {4, 16}, b2[1] = {4}, xs[2] = {8, 8};
    nb_tensor *p[4] = {nb_tensor_full(NB_FLOAT32, 2, w1, 0.1), nb_tensor_full(NB_FLOAT32, 1, b1, 0.01),
                       nb_tensor_full(NB_FLOAT32, 2, w2, -0.1), nb_tensor_full(NB_FLOAT32, 1, b2, 0.0)};
    for (int i = 0; i < 4; i++) {
        for (int64_t j = 0; j < p[i]->numel; j++) nb_tensor_set(p[i], j, value((int)j + 9 * i, 0.3));
        nb_tensor_set_requires_grad(p[i], true);
    }
    long before = 0;
    size_t capacity = 0;
    for (int step = 0; step < 1000; step++) {
        if (step == 5) {
            before = allocations;
            capacity = nb_tape_arena_capacity(tape);
        }
        nb_tensor *x = filled(tape, NB_FLOAT32, 2, xs, 1.0, step % 7, false), *g[4], *v[4], *hv[4];
        for (int i = 0; i < 4; i++)
            v[i] = filled(tape, NB_FLOAT32, p[i]->ndim, p[i]->shape, 1.0, i, false);
        nb_tensor *loss = mlp_loss(tape, x, p);
        cr_assert_eq(nb_grad(tape, 1, &loss, NULL, 4, p, g, NB_GRAD_CREATE_GRAPH), NB_OK);
        cr_assert_eq(nb_grad(tape, 4, g, v, 4, p, hv, NB_GRAD_ALLOW_UNUSED), NB_OK);
        nb_tape_reset(tape);
    }
    cr_assert_eq(allocations, before, "%ld allocations in steady state", allocations - before);
    cr_assert_eq(nb_tape_arena_capacity(tape), capacity);
    for (int i = 0; i < 4; i++) nb_tensor_free(p[i]);
    nb_tape_free(tape);
    nb_set_allocator(NULL, NULL, NULL);
}
