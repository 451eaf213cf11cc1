/* Optimizers, LR schedules and gradient clipping. Every expected value is
 * worked out by hand from PyTorch 1.13's formulas (torch/optim/sgd.py, adam.py, ...); the
 * arithmetic is in the comments. Parameters are p0 = (1, -2) or (1, -1);
 * gradients are fixed per step and written straight into ->grad. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

static const int64_t VEC2[1] = {2};

static void set_grad(nb_tensor *p, const double *g)
{
    if (!p->grad) p->grad = nb_tensor_new(p->dtype, p->ndim, p->shape);
    cr_assert_not_null(p->grad, "%s", nb_last_error());
    for (int64_t i = 0; i < p->numel; i++) nb_tensor_set(p->grad, i, g[i]);
}

/* Three steps with grads[s]; after step s the parameter must equal expected[s]. */
static void check_steps(nb_optimizer *opt, nb_tensor *p, const double grads[3][2],
                        const double expected[3][2], double tol)
{
    cr_assert_not_null(opt, "%s", nb_last_error());
    for (int s = 0; s < 3; s++) {
        set_grad(p, grads[s]);
        cr_assert_eq(nb_optimizer_step(opt), NB_OK, "%s", nb_last_error());
        assert_values(p, expected[s], 2, tol);
    }
    nb_optimizer_free(opt);
    nb_tensor_free(p);
}

/* ---- SGD: p0 = (1, -2), lr 0.1, grads (0.5, 1), (1, -1), (-2, 0.5) ---- */
static const double SGD_GRADS[3][2] = {{0.5, 1}, {1, -1}, {-2, 0.5}};

Test(optim, sgd_plain)
{
    /* p -= 0.1 g: (1 - .05, -2 - .1) = (.95, -2.1); (.95 - .1, -2.1 + .1) = (.85, -2);
     * (.85 + .2, -2 - .05) = (1.05, -2.05) */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = nb_sgd_defaults(0.1);
    check_steps(nb_sgd_new(&p, 1, &o), p, SGD_GRADS,
                (const double[3][2]){{0.95, -2.1}, {0.85, -2.0}, {1.05, -2.05}}, 1e-12);
}

Test(optim, sgd_momentum_dampening)
{
    /* momentum .9, dampening .5: b1 = g1 = (.5, 1) (first step copies g, no
     * dampening), p1 = (.95, -2.1);
     * b2 = .9 b1 + .5 g2 = (.45 + .5, .9 - .5) = (.95, .4), p2 = (.95 - .095, -2.1 - .04) = (.855, -2.14);
     * b3 = .9 b2 + .5 g3 = (.855 - 1, .36 + .25) = (-.145, .61), p3 = (.855 + .0145, -2.14 - .061) */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5};
    check_steps(nb_sgd_new(&p, 1, &o), p, SGD_GRADS,
                (const double[3][2]){{0.95, -2.1}, {0.855, -2.14}, {0.8695, -2.201}}, 1e-12);
}

Test(optim, sgd_nesterov)
{
    /* momentum .9: b1 = (.5, 1), d = g + .9 b = (.95, 1.9), p1 = (.905, -2.19);
     * b2 = .9 b1 + g2 = (1.45, -.1), d = (1 + 1.305, -1 - .09) = (2.305, -1.09), p2 = (.6745, -2.081);
     * b3 = .9 b2 + g3 = (-.695, .41), d = (-2 - .6255, .5 + .369), p3 = (.6745 + .26255, -2.081 - .0869) */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = {.lr = 0.1, .momentum = 0.9, .nesterov = true};
    check_steps(nb_sgd_new(&p, 1, &o), p, SGD_GRADS,
                (const double[3][2]){{0.905, -2.19}, {0.6745, -2.081}, {0.93705, -2.1679}}, 1e-12);
}

Test(optim, sgd_weight_decay)
{
    /* wd .1: d = g + .1 p. d1 = (.5 + .1, 1 - .2) = (.6, .8), p1 = (.94, -2.08);
     * d2 = (1 + .094, -1 - .208), p2 = (.94 - .1094, -2.08 + .1208) = (.8306, -1.9592);
     * d3 = (-2 + .08306, .5 - .19592), p3 = (.8306 + .191694, -1.9592 - .030408) */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = {.lr = 0.1, .weight_decay = 0.1};
    check_steps(nb_sgd_new(&p, 1, &o), p, SGD_GRADS,
                (const double[3][2]){{0.94, -2.08}, {0.8306, -1.9592}, {1.022294, -1.989608}}, 1e-12);
}

Test(optim, sgd_maximize_ascends)
{
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = {.lr = 0.1, .maximize = true};
    nb_optimizer *opt = nb_sgd_new(&p, 1, &o);
    set_grad(p, SGD_GRADS[0]);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    assert_values(p, (double[]){1.05, -1.9}, 2, 1e-12);   /* p += 0.1 g */
    nb_optimizer_free(opt);
    nb_tensor_free(p);
}

/* ---- Adam: p0 = (1, -1), lr .1, betas (.5, .75), eps .1 (large, so its
 * place matters). Bias corrections: 1 - .5^t = .5, .75, .875 and
 * 1 - .75^t = .25, 7/16, 37/64. With |g| constant per element, v_hat =
 * v / (1 - .75^t) = g^2 exactly, so denom = |g| + .1. (eps inside the sqrt
 * would give sqrt(4.1) = 2.02; eps before the bias correction, (1 + .1)/.5 = 2.2.) */
static const double ADAM_GRADS[3][2] = {{2, 1}, {-2, 1}, {2, -1}};

Test(optim, adam_bias_correction_eps_outside_sqrt)
{
    /* element 0, g = 2, -2, 2: m = .5 m + .5 g = 1, -.5, .75; m_hat = m / bc1 = 2, -2/3, 6/7;
     * denom = 2.1; p -= .1 m_hat / 2.1 = 2/21, -2/63, 2/49.
     * element 1, g = 1, 1, -1: m = .5, .75, -.125; m_hat = 1, 1, -1/7; denom 1.1;
     * p -= .1 m_hat / 1.1 = 1/11, 1/11, -1/77. */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1};
    check_steps(nb_adam_new(&p, 1, &o), p, ADAM_GRADS,
                (const double[3][2]){{1 - 2.0 / 21, -1 - 1.0 / 11},
                                     {1 - 2.0 / 21 + 2.0 / 63, -1 - 2.0 / 11},
                                     {1 - 2.0 / 21 + 2.0 / 63 - 2.0 / 49, -1 - 2.0 / 11 + 1.0 / 77}},
                1e-12);
}

Test(optim, adam_float32_parameters)
{
    /* The same case in float32: equal to the float64 values within float rounding. */
    nb_tensor *p = test_param(NB_FLOAT32, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1};
    check_steps(nb_adam_new(&p, 1, &o), p, ADAM_GRADS,
                (const double[3][2]){{1 - 2.0 / 21, -1 - 1.0 / 11},
                                     {1 - 2.0 / 21 + 2.0 / 63, -1 - 2.0 / 11},
                                     {1 - 2.0 / 21 + 2.0 / 63 - 2.0 / 49, -1 - 2.0 / 11 + 1.0 / 77}},
                1e-6);
}

Test(optim, adamw_decoupled_decay)
{
    /* wd .5: AdamW first multiplies p by 1 - lr wd = .95, then takes exactly
     * the Adam step above (the gradient is untouched). */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1, .weight_decay = 0.5};
    double a1 = 0.95 - 2.0 / 21, a2 = 0.95 * a1 + 2.0 / 63, a3 = 0.95 * a2 - 2.0 / 49;
    double b1 = -0.95 - 1.0 / 11, b2 = 0.95 * b1 - 1.0 / 11, b3 = 0.95 * b2 + 1.0 / 77;
    nb_optimizer *opt = nb_adamw_new(&p, 1, &o);
    cr_assert_str_eq(nb_optimizer_name(opt), "adamw");
    check_steps(opt, p, ADAM_GRADS, (const double[3][2]){{a1, b1}, {a2, b2}, {a3, b3}}, 1e-12);
}

Test(optim, adam_l2_differs_from_adamw)
{
    /* Zero gradients, wd .5, p0 = (1, -1) (element 1 mirrors element 0).
     * AdamW: m = v = 0, so only the decay acts: p = .95^t.
     * Adam with L2: g = .5 p goes through the normalisation:
     *  t1: g = .5, m = .25, v = .25 * .25 = .0625, denom = sqrt(.0625)/.5 + .1 = .6,
     *      p1 = 1 - (.1/.5) * .25 / .6 = 1 - 1/12 = 11/12
     *  t2: g = 11/24, m = .125 + 11/48 = 17/48, v = .75 * .0625 + .25 (11/24)^2 = 229/2304,
     *      p2 = 11/12 - (.1/.75) (17/48) / (sqrt(229/2304 / (7/16)) + .1)
     *  t3: g = p2/2, m = 17/96 + p2/4, v = .75 * 229/2304 + p2^2/16,
     *      p3 = p2 - (.1/.875) m / (sqrt(v / (37/64)) + .1)
     * so Adam-L2 steps are nearly lr-sized (0.083 vs AdamW's 0.05 at t1). */
    static const double zero[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    double p2 = 11.0 / 12 - (0.1 / 0.75) * (17.0 / 48) / (sqrt(229.0 / 2304 / (7.0 / 16)) + 0.1);
    double m3 = 17.0 / 96 + p2 / 4, v3 = 0.75 * 229.0 / 2304 + p2 * p2 / 16;
    double p3 = p2 - (0.1 / 0.875) * m3 / (sqrt(v3 / (37.0 / 64)) + 0.1);
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1, .weight_decay = 0.5};
    check_steps(nb_adam_new(&p, 1, &o), p, zero,
                (const double[3][2]){{11.0 / 12, -11.0 / 12}, {p2, -p2}, {p3, -p3}}, 1e-12);
    p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    check_steps(nb_adamw_new(&p, 1, &o), p, zero,
                (const double[3][2]){{0.95, -0.95}, {0.9025, -0.9025}, {0.857375, -0.857375}}, 1e-12);
}

Test(optim, amsgrad_keeps_max_second_moment)
{
    /* element 0, g = 2, 0, 0: v = 1, .75, .5625, vmax stays 1; m = 1, .5, .25,
     * m_hat = 2, 2/3, 2/7; denom = 1/sqrt(bc2) + .1 = 2.1, 4/sqrt(7) + .1, 8/sqrt(37) + .1.
     * (Plain Adam would use sqrt(.75 / (7/16)) = sqrt(12/7) at t2.)
     * element 1, g = 1, 1, -1: |g| constant so vmax = v; same as the Adam test. */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1, .amsgrad = true};
    double a1 = 1 - 2.0 / 21;
    double a2 = a1 - 0.1 * (2.0 / 3) / (4 / sqrt(7.0) + 0.1);
    double a3 = a2 - 0.1 * (2.0 / 7) / (8 / sqrt(37.0) + 0.1);
    check_steps(nb_adam_new(&p, 1, &o), p, (const double[3][2]){{2, 1}, {0, 1}, {0, -1}},
                (const double[3][2]){{a1, -1 - 1.0 / 11}, {a2, -1 - 2.0 / 11},
                                     {a3, -1 - 2.0 / 11 + 1.0 / 77}},
                1e-12);
}

/* ---- RMSprop: p0 = (1, -1), lr .1, eps .1 ----------------------------- */
Test(optim, rmsprop_plain)
{
    /* alpha .75: s = .75 s + .25 g^2. element 0, g = 2, -1, -1: s = 1, 1, 1,
     * denom = 1.1, p -= .1 g / 1.1 = 2/11, -1/11, -1/11.
     * element 1, g = 4, 2, -2: s = 4, 3 + 1 = 4, 4, denom 2.1, p -= 4/21, 2/21, -2/21. */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_rmsprop_options o = {.lr = 0.1, .alpha = 0.75, .eps = 0.1};
    check_steps(nb_rmsprop_new(&p, 1, &o), p, (const double[3][2]){{2, 4}, {-1, 2}, {-1, -2}},
                (const double[3][2]){{1 - 2.0 / 11, -1 - 4.0 / 21},
                                     {1 - 1.0 / 11, -1 - 6.0 / 21},
                                     {1.0, -1 - 4.0 / 21}},
                1e-12);
}

Test(optim, rmsprop_centered)
{
    /* alpha .5; element 0, g = 2, 1.5, .875 (element 1 mirrors it):
     * t1: s = 2, a = 1, s - a^2 = 1, denom 1.1, p -= .2/1.1 = 2/11
     * t2: s = 1 + 1.125 = 2.125, a = .5 + .75 = 1.25, s - a^2 = .5625 = .75^2,
     *     denom .85, p -= .15/.85 = 3/17
     * t3: s = 1.0625 + .3828125 = 1.4453125, a = .625 + .4375 = 1.0625,
     *     s - a^2 = .31640625 = .5625^2, denom .6625, p -= .0875/.6625 = 7/53 */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_rmsprop_options o = {.lr = 0.1, .alpha = 0.5, .eps = 0.1, .centered = true};
    double a1 = 1 - 2.0 / 11, a2 = a1 - 3.0 / 17, a3 = a2 - 7.0 / 53;
    check_steps(nb_rmsprop_new(&p, 1, &o), p,
                (const double[3][2]){{2, -2}, {1.5, -1.5}, {0.875, -0.875}},
                (const double[3][2]){{a1, -a1}, {a2, -a2}, {a3, -a3}}, 1e-12);
}

Test(optim, rmsprop_momentum)
{
    /* alpha .75, momentum .5, grads as rmsprop_plain, so g/denom is
     * element 0: 20/11, -10/11, -10/11 -> b = 20/11, 0, -10/11, p -= .1 b;
     * element 1: 40/21, 20/21, -20/21 -> b = 40/21, 40/21, 0. */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_rmsprop_options o = {.lr = 0.1, .alpha = 0.75, .eps = 0.1, .momentum = 0.5};
    check_steps(nb_rmsprop_new(&p, 1, &o), p, (const double[3][2]){{2, 4}, {-1, 2}, {-1, -2}},
                (const double[3][2]){{1 - 2.0 / 11, -1 - 4.0 / 21},
                                     {1 - 2.0 / 11, -1 - 8.0 / 21},
                                     {1 - 1.0 / 11, -1 - 8.0 / 21}},
                1e-12);
}

/* ---- behaviour shared by all optimizers -------------------------------- */
Test(optim, parameter_without_grad_is_skipped_and_keeps_its_own_step_count)
{
    /* Adam case above. b has no grad at step 1, so it is untouched, and its
     * first update at step 2 uses t = 1 bias corrections: b = (1 - 2/21, -1 - 1/11). */
    nb_tensor *a = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_tensor *b = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.75, .eps = 0.1};
    nb_optimizer *opt = nb_adam_new((nb_tensor *[]){a, b}, 2, &o);
    cr_assert_not_null(opt, "%s", nb_last_error());
    set_grad(a, ADAM_GRADS[0]);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK, "%s", nb_last_error());
    assert_values(b, (double[]){1, -1}, 2, 0);
    set_grad(a, ADAM_GRADS[1]);
    set_grad(b, ADAM_GRADS[0]);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK, "%s", nb_last_error());
    assert_values(a, (double[]){1 - 2.0 / 21 + 2.0 / 63, -1 - 2.0 / 11}, 2, 1e-12);
    assert_values(b, (double[]){1 - 2.0 / 21, -1 - 1.0 / 11}, 2, 1e-12);
    cr_assert_eq(nb_optimizer_step_count(opt), 2);
    nb_optimizer_free(opt);
    nb_tensor_free(a);
    nb_tensor_free(b);
}

Test(optim, zero_grad_keeps_buffers_and_set_lr_applies_to_next_step)
{
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_tensor *unused = test_param(NB_FLOAT64, 1, VEC2, (double[]){0, 0});
    nb_sgd_options o = nb_sgd_defaults(0.1);
    nb_optimizer *opt = nb_sgd_new((nb_tensor *[]){p, unused}, 2, &o);
    cr_assert_eq(nb_optimizer_lr(opt), 0.1);
    set_grad(p, SGD_GRADS[0]);
    nb_tensor *grad = p->grad;
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    nb_optimizer_zero_grad(opt);
    cr_assert_eq(p->grad, grad, "buffer kept");
    assert_values(p->grad, (double[]){0, 0}, 2, 0);
    cr_assert_null(unused->grad);
    /* lr .2 from now on: (.95, -2.1) - .2 (1, -1) = (.75, -1.9) */
    cr_assert_eq(nb_optimizer_set_lr(opt, 0.2), NB_OK);
    set_grad(p, SGD_GRADS[1]);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    assert_values(p, (double[]){0.75, -1.9}, 2, 1e-12);
    cr_assert_eq(nb_optimizer_set_lr(opt, -1), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "sgd: invalid learning rate: -1");
    cr_assert_eq(nb_optimizer_set_lr(opt, NAN), NB_ERR_INVALID);
    cr_assert_eq(nb_optimizer_lr(opt), 0.2);
    nb_optimizer_free(opt);
    nb_tensor_free(p);
    nb_tensor_free(unused);
}

Test(optim, gradients_from_backward)
{
    /* y = p + 0 seeded with g gives p->grad = g; then the sgd_plain steps. */
    nb_tape *tape = nb_tape_new();
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -2});
    nb_sgd_options o = nb_sgd_defaults(0.1);
    nb_optimizer *opt = nb_sgd_new(&p, 1, &o);
    const double expected[2][2] = {{0.95, -2.1}, {0.85, -2.0}};
    for (int s = 0; s < 2; s++) {
        nb_optimizer_zero_grad(opt);
        nb_tensor *zero = nb_tape_tensor(tape, NB_FLOAT64, 1, VEC2, NULL);
        nb_tensor *seed = nb_tape_tensor(tape, NB_FLOAT64, 1, VEC2, SGD_GRADS[s]);
        cr_assert_eq(nb_backward(tape, nb_add(tape, p, zero), seed), NB_OK, "%s", nb_last_error());
        cr_assert_eq(nb_optimizer_step(opt), NB_OK);
        assert_values(p, expected[s], 2, 1e-12);
        nb_tape_reset(tape);
    }
    nb_optimizer_free(opt);
    nb_tensor_free(p);
    nb_tape_free(tape);
}

/* ---- gradient noise ----------------------------------------------------- */
static double sample_variance(const nb_tensor *t, double *mean)
{
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < t->numel; i++) sum += nb_tensor_get(t, i);
    *mean = sum / (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) {
        double d = nb_tensor_get(t, i) - *mean;
        squares += d * d;
    }
    return squares / (double)(t->numel - 1);
}

Test(optim, gradient_noise_variance_decays)
{
    /* SGD lr 1 with zero gradients: p moves by -noise. sigma_t^2 = eta / (1 + t)^gamma:
     * t = 0: .25; t = 3: .25 / 4^.55 = .25 / 2^1.1. Sample variance of 20000
     * normals is within ~1% (sd sqrt(2/n)); we allow 5%. */
    enum { N = 20000 };
    nb_tensor *p = nb_tensor_zeros(NB_FLOAT64, 1, (int64_t[]){N});
    nb_tensor_set_requires_grad(p, true);
    p->grad = nb_tensor_zeros(NB_FLOAT64, 1, (int64_t[]){N});
    nb_sgd_options o = nb_sgd_defaults(1.0);
    nb_optimizer *opt = nb_sgd_new(&p, 1, &o);
    cr_assert_eq(nb_optimizer_set_gradient_noise(opt, 0.25, 0.55, 7), NB_OK);
    double mean, variance;
    for (int t = 0; t < 4; t++) {
        nb_tensor_fill(p, 0);
        cr_assert_eq(nb_optimizer_step(opt), NB_OK);
        if (t == 1 || t == 2) continue;
        double expected = t == 0 ? 0.25 : 0.25 / pow(2.0, 1.1);
        variance = sample_variance(p, &mean);
        cr_assert(fabs(variance / expected - 1) < 0.05, "t %d: variance %g, expected %g", t, variance, expected);
        cr_assert(fabs(mean) < 4 * sqrt(expected / N), "t %d: mean %g", t, mean);
    }
    for (int64_t i = 0; i < N; i++) cr_assert_eq(nb_tensor_get(p->grad, i), 0.0, "grad left alone");
    /* eta 0 turns it off. */
    cr_assert_eq(nb_optimizer_set_gradient_noise(opt, 0, 0.55, 7), NB_OK);
    nb_tensor_fill(p, 0);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    cr_assert_eq(sample_variance(p, &mean), 0.0);
    cr_assert_eq(nb_optimizer_set_gradient_noise(opt, -1, 0.55, 7), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "sgd: invalid gradient noise eta: -1");
    cr_assert_eq(nb_optimizer_set_gradient_noise(opt, 1, NAN, 7), NB_ERR_INVALID);
    cr_assert_eq(nb_optimizer_set_gradient_noise(NULL, 1, 0.55, 7), NB_ERR_INVALID);
    nb_optimizer_free(opt);
    nb_tensor_free(p);
}

static double noisy_adam_result(uint64_t seed)
{
    nb_tensor *p = test_param(NB_FLOAT32, 1, VEC2, (double[]){1, -1});
    nb_optimizer *opt = nb_adam_new(&p, 1, NULL);
    nb_optimizer_set_gradient_noise(opt, 0.3, 0.55, seed);
    for (int s = 0; s < 3; s++) {
        set_grad(p, ADAM_GRADS[s]);
        nb_optimizer_step(opt);
    }
    double result = nb_tensor_get(p, 0) + 10 * nb_tensor_get(p, 1);
    nb_optimizer_free(opt);
    nb_tensor_free(p);
    return result;
}

Test(optim, gradient_noise_is_reproducible_from_the_seed)
{
    cr_assert_eq(noisy_adam_result(42), noisy_adam_result(42));
    cr_assert_neq(noisy_adam_result(42), noisy_adam_result(43));
}

/* ---- allocation ----------------------------------------------------------- */
static long allocations;
static long fail_at;   /* 0: never */
static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    if (++allocations == fail_at) return NULL;
    return malloc(size);
}
static void counting_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

Test(optim, steps_allocate_nothing)
{
    enum { OPTIMIZERS = 5 };
    nb_tensor *f32 = test_param(NB_FLOAT32, 1, VEC2, (double[]){1, -1});
    nb_tensor *f64 = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_tensor *params[2] = {f32, f64};
    set_grad(f32, ADAM_GRADS[0]);
    set_grad(f64, ADAM_GRADS[1]);
    nb_sgd_options sgd = {.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.1};
    nb_adam_options adam = nb_adam_defaults(0.01);
    adam.amsgrad = true;
    nb_rmsprop_options rmsprop = {.lr = 0.01, .alpha = 0.9, .momentum = 0.5, .centered = true};
    nb_adagrad_options adagrad = {.lr = 0.01, .lr_decay = 0.1, .weight_decay = 0.1,
                                  .initial_accumulator_value = 0.1, .eps = 1e-10};
    nb_optimizer *opts[OPTIMIZERS] = {nb_sgd_new(params, 2, &sgd), nb_adam_new(params, 2, &adam),
                                      nb_adamw_new(params, 2, NULL), nb_rmsprop_new(params, 2, &rmsprop),
                                      nb_adagrad_new(params, 2, &adagrad)};
    for (int k = 0; k < OPTIMIZERS; k++) {
        cr_assert_not_null(opts[k], "%s", nb_last_error());
        cr_assert_eq(nb_optimizer_set_gradient_noise(opts[k], 0.01, 0.55, k), NB_OK);
    }
    nb_lr_schedule schedule = nb_lr_with_warmup(nb_lr_cosine(10, 0), 3, 0.1);
    allocations = 0;
    fail_at = 0;
    nb_set_allocator(counting_malloc, counting_free, NULL);
    for (int step = 0; step < 10; step++) {
        nb_clip_grad_norm(params, 2, 1.0);
        for (int k = 0; k < OPTIMIZERS; k++) {
            nb_optimizer_set_lr(opts[k], nb_lr_schedule_at(&schedule, 0.01, step));
            cr_assert_eq(nb_optimizer_step(opts[k]), NB_OK, "%s", nb_last_error());
        }
    }
    nb_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(allocations, 0, "10 steps made %ld allocations", allocations);
    for (int k = 0; k < OPTIMIZERS; k++) nb_optimizer_free(opts[k]);
    nb_tensor_free(f32);
    nb_tensor_free(f64);
}

Test(optim, creation_survives_allocation_failure)
{
    nb_tensor *a = test_param(NB_FLOAT32, 1, VEC2, (double[]){1, -1});
    nb_tensor *b = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adam_options o = nb_adam_defaults(0.01);
    o.amsgrad = true;
    nb_optimizer *opt = NULL;
    /* Allocations: the optimizer, the slots, 3 buffers for each of 2 params =
     * 8, so failing any of the first 8 must give NULL (valgrind checks that
     * nothing leaks) and failing the 9th, which never happens, succeeds. */
    for (fail_at = 1; fail_at <= 9; fail_at++) {
        allocations = 0;
        nb_set_allocator(counting_malloc, counting_free, NULL);
        opt = nb_adam_new((nb_tensor *[]){a, b}, 2, &o);
        nb_set_allocator(NULL, NULL, NULL);
        if (fail_at == 9) break;
        cr_assert_null(opt, "failing allocation %ld", fail_at);
        cr_assert(strstr(nb_last_error(), "out of memory"), "%s", nb_last_error());
    }
    cr_assert_not_null(opt, "%s", nb_last_error());
    cr_assert_eq(allocations, 8);
    nb_optimizer_free(opt);
    nb_tensor_free(a);
    nb_tensor_free(b);
}

/* ---- LR schedules (base lr .1) ------------------------------------------- */
Test(optim, lr_schedules)
{
    /* StepLR(3, .5): .1 * .5^(step // 3) */
    nb_lr_schedule step = nb_lr_step(3, 0.5);
    cr_assert_float_eq(nb_lr_schedule_at(&step, 0.1, 0), 0.1, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&step, 0.1, 2), 0.1, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&step, 0.1, 3), 0.05, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&step, 0.1, 6), 0.025, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&step, 0.1, 10), 0.0125, 1e-15);
    /* Cosine(T_max 10, eta_min .01): .01 + .09 (1 + cos(pi step / 10)) / 2.
     * step 5: cos = 0 -> .055; step 10: .01; step 2: cos(pi/5) = (1 + sqrt 5)/4;
     * step 15: cos(3pi/2) = 0 -> .055 again (the closed form climbs back). */
    nb_lr_schedule cosine = nb_lr_cosine(10, 0.01);
    cr_assert_float_eq(nb_lr_schedule_at(&cosine, 0.1, 0), 0.1, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&cosine, 0.1, 2), 0.01 + 0.09 * (1 + (1 + sqrt(5.0)) / 4) / 2, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&cosine, 0.1, 5), 0.055, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&cosine, 0.1, 10), 0.01, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&cosine, 0.1, 15), 0.055, 1e-15);
    /* Warm-up 4 steps from .25: .1 (.25 + .75 step / 4) = .025, .04375, .0625, .08125, then .1 */
    nb_lr_schedule warmup = nb_lr_with_warmup(nb_lr_constant(), 4, 0.25);
    const double ramp[5] = {0.025, 0.04375, 0.0625, 0.08125, 0.1};
    for (int s = 0; s < 5; s++) cr_assert_float_eq(nb_lr_schedule_at(&warmup, 0.1, s), ramp[s], 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&warmup, 0.1, 100), 0.1, 1e-15);
    /* Warm-up then cosine: the cosine restarts at step 4 (SequentialLR). */
    nb_lr_schedule both = nb_lr_with_warmup(cosine, 4, 0.25);
    cr_assert_float_eq(nb_lr_schedule_at(&both, 0.1, 2), 0.0625, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&both, 0.1, 4), 0.1, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&both, 0.1, 9), 0.055, 1e-15);
    cr_assert_float_eq(nb_lr_schedule_at(&both, 0.1, 14), 0.01, 1e-15);
}

static void assert_bad_schedule(nb_lr_schedule s, int64_t step, const char *message)
{
    cr_assert(isnan(nb_lr_schedule_at(&s, 0.1, step)));
    cr_assert_str_eq(nb_last_error(), message);
}

Test(optim, lr_schedule_errors)
{
    assert_bad_schedule(nb_lr_step(0, 0.5), 1, "lr_schedule: step: step_size 0 is not >= 1");
    assert_bad_schedule(nb_lr_cosine(0, 0), 1, "lr_schedule: cosine: t_max 0 is not >= 1");
    assert_bad_schedule(nb_lr_with_warmup(nb_lr_constant(), 5, 0), 1,
                        "lr_schedule: warm-up start factor 0 is not in (0, 1]");
    assert_bad_schedule(nb_lr_with_warmup(nb_lr_constant(), 5, 1.5), 1,
                        "lr_schedule: warm-up start factor 1.5 is not in (0, 1]");
    assert_bad_schedule(nb_lr_constant(), -1, "lr_schedule: step -1 is negative");
    cr_assert(isnan(nb_lr_schedule_at(NULL, 0.1, 0)));
}

/* ---- gradient clipping ------------------------------------------------------ */
Test(optim, clip_grad_norm)
{
    /* grads (3, 4): norm 5; max_norm 1 -> coef 1 / (5 + 1e-6) */
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){0, 0});
    set_grad(p, (double[]){3, 4});
    /* (Criterion's float macros evaluate their argument more than once, so
     * the clipping calls go through a variable.) */
    double norm = nb_clip_grad_norm(&p, 1, 10);   /* coef > 1: untouched */
    cr_assert_float_eq(norm, 5.0, 1e-15);
    assert_values(p->grad, (double[]){3, 4}, 2, 0);
    norm = nb_clip_grad_norm(&p, 1, 1);
    cr_assert_float_eq(norm, 5.0, 1e-15);
    assert_values(p->grad, (double[]){3 / 5.000001, 4 / 5.000001}, 2, 1e-15);
    /* Mixed dtypes and a missing grad: (1, 2) f32 and (2, 4) f64 -> sqrt(1+4+4+16) = 5;
     * max_norm 2.5 -> coef 2.5 / 5.000001, about one half. */
    nb_tensor *a = test_param(NB_FLOAT32, 1, VEC2, (double[]){0, 0});
    nb_tensor *none = test_param(NB_FLOAT32, 1, VEC2, (double[]){0, 0});
    set_grad(a, (double[]){1, 2});
    set_grad(p, (double[]){2, 4});
    nb_tensor *params[3] = {a, none, p};
    norm = nb_clip_grad_norm(params, 3, 2.5);
    cr_assert_float_eq(norm, 5.0, 1e-15);
    double coef = 2.5 / 5.000001;
    assert_values(a->grad, (double[]){coef, 2 * coef}, 2, 1e-7);
    assert_values(p->grad, (double[]){2 * coef, 4 * coef}, 2, 1e-15);
    cr_assert_eq(nb_clip_grad_norm(&none, 1, 1), 0.0, "no gradients: norm 0");
    cr_assert_eq(nb_clip_grad_norm(NULL, 0, 1), 0.0);
    /* Non-finite totals, as PyTorch 1.13 with error_if_nonfinite=False:
     * NaN -> coef NaN, every grad NaN; Inf -> coef 0, so (inf, 1) -> (inf*0, 0) = (NaN, 0). */
    set_grad(p, (double[]){NAN, 1});
    norm = nb_clip_grad_norm(&p, 1, 1);
    cr_assert(isnan(norm));
    cr_assert(isnan(nb_tensor_get(p->grad, 0)) && isnan(nb_tensor_get(p->grad, 1)));
    set_grad(p, (double[]){INFINITY, 1});
    norm = nb_clip_grad_norm(&p, 1, 1);
    cr_assert(isinf(norm));
    cr_assert(isnan(nb_tensor_get(p->grad, 0)));
    cr_assert_eq(nb_tensor_get(p->grad, 1), 0.0);
    /* Errors return -1. */
    cr_assert_eq(nb_clip_grad_norm(&p, -1, 1), -1.0);
    cr_assert_str_eq(nb_last_error(), "clip_grad_norm: count -1 is negative");
    cr_assert_eq(nb_clip_grad_norm(NULL, 1, 1), -1.0);
    cr_assert_str_eq(nb_last_error(), "clip_grad_norm: params is NULL");
    cr_assert_eq(nb_clip_grad_norm((nb_tensor *[]){p, NULL}, 2, 1), -1.0);
    cr_assert_str_eq(nb_last_error(), "clip_grad_norm: parameter 1 is NULL");
    cr_assert_eq(nb_clip_grad_norm(&p, 1, -1), -1.0);
    cr_assert_str_eq(nb_last_error(), "clip_grad_norm: invalid max_norm: -1");
    cr_assert_eq(nb_clip_grad_norm(&p, 1, NAN), -1.0);
    nb_tensor_free(p);
    nb_tensor_free(a);
    nb_tensor_free(none);
}

/* ---- errors ------------------------------------------------------------------- */
#define ASSERT_CREATE_FAILS(call, message)                                      \
    do {                                                                        \
        cr_assert_null(call);                                                   \
        cr_assert_str_eq(nb_last_error(), message);                             \
    } while (0)

Test(optim, constructor_errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_tensor *labels = nb_tensor_new(NB_INT32, 1, VEC2);
    nb_tensor *arena = nb_tape_tensor(tape, NB_FLOAT64, 1, VEC2, NULL);
    nb_tensor *output = nb_add(tape, p, arena);
    nb_sgd_options sgd = nb_sgd_defaults(0.1);
    ASSERT_CREATE_FAILS(nb_sgd_new(NULL, 1, &sgd), "sgd: params is NULL");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 0, &sgd), "sgd: got an empty parameter list (count 0)");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 1, NULL), "sgd: options is NULL (SGD has no default learning rate)");
    ASSERT_CREATE_FAILS(nb_sgd_new((nb_tensor *[]){p, NULL}, 2, &sgd), "sgd: parameter 1 is NULL");
    ASSERT_CREATE_FAILS(nb_sgd_new((nb_tensor *[]){p, p}, 2, &sgd),
                        "sgd: parameter 1 appears twice (same as parameter 0)");
    ASSERT_CREATE_FAILS(nb_sgd_new(&labels, 1, &sgd), "sgd: parameter 0 has dtype int32; need float32 or float64");
    ASSERT_CREATE_FAILS(nb_sgd_new(&output, 1, &sgd), "sgd: parameter 0 is an op output, not a leaf");
    ASSERT_CREATE_FAILS(nb_sgd_new(&arena, 1, &sgd),
                        "sgd: parameter 0 lives in a tape arena; parameters must be persistent tensors");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = -0.1}), "sgd: invalid learning rate: -0.1");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .momentum = -1}),
                        "sgd: invalid momentum value: -1");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .weight_decay = -1}),
                        "sgd: invalid weight_decay value: -1");
    ASSERT_CREATE_FAILS(nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .nesterov = true}),
                        "sgd: nesterov momentum requires a momentum and zero dampening (momentum 0, dampening 0)");
    ASSERT_CREATE_FAILS(
        nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .nesterov = true}),
        "sgd: nesterov momentum requires a momentum and zero dampening (momentum 0.9, dampening 0.5)");

    nb_adam_options adam = nb_adam_defaults(NAN);
    ASSERT_CREATE_FAILS(nb_adam_new(&p, 1, &adam), "adam: invalid learning rate: nan");
    adam = nb_adam_defaults(0.1);
    adam.eps = -1;
    ASSERT_CREATE_FAILS(nb_adam_new(&p, 1, &adam), "adam: invalid epsilon value: -1");
    adam = nb_adam_defaults(0.1);
    adam.beta1 = 1;
    ASSERT_CREATE_FAILS(nb_adam_new(&p, 1, &adam), "adam: invalid beta parameter at index 0: 1");
    ASSERT_CREATE_FAILS(nb_adamw_new(&p, 1, &adam), "adamw: invalid beta parameter at index 0: 1");
    adam = nb_adam_defaults(0.1);
    adam.beta2 = -0.5;
    ASSERT_CREATE_FAILS(nb_adam_new(&p, 1, &adam), "adam: invalid beta parameter at index 1: -0.5");
    adam = nb_adam_defaults(0.1);
    adam.weight_decay = -1;
    ASSERT_CREATE_FAILS(nb_adam_new(&p, 1, &adam), "adam: invalid weight_decay value: -1");

    nb_rmsprop_options rms = nb_rmsprop_defaults(-1);
    ASSERT_CREATE_FAILS(nb_rmsprop_new(&p, 1, &rms), "rmsprop: invalid learning rate: -1");
    rms = nb_rmsprop_defaults(0.1);
    rms.eps = -1;
    ASSERT_CREATE_FAILS(nb_rmsprop_new(&p, 1, &rms), "rmsprop: invalid epsilon value: -1");
    rms = nb_rmsprop_defaults(0.1);
    rms.momentum = -1;
    ASSERT_CREATE_FAILS(nb_rmsprop_new(&p, 1, &rms), "rmsprop: invalid momentum value: -1");
    rms = nb_rmsprop_defaults(0.1);
    rms.weight_decay = -1;
    ASSERT_CREATE_FAILS(nb_rmsprop_new(&p, 1, &rms), "rmsprop: invalid weight_decay value: -1");
    rms = nb_rmsprop_defaults(0.1);
    rms.alpha = -1;
    ASSERT_CREATE_FAILS(nb_rmsprop_new(&p, 1, &rms), "rmsprop: invalid alpha value: -1");

    /* A parameter that does not require grad is fine (it never gets one). */
    nb_tensor_set_requires_grad(p, false);
    nb_optimizer *opt = nb_rmsprop_new(&p, 1, NULL);
    cr_assert_not_null(opt, "%s", nb_last_error());
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    cr_assert_eq(nb_optimizer_lr(opt), 1e-2, "PyTorch's default RMSprop lr");
    nb_optimizer_free(opt);
    nb_tensor_free(labels);
    nb_tensor_free(p);
    nb_tape_free(tape);
}

Test(optim, bad_gradient_fails_the_whole_step)
{
    /* a's grad is fine, b's has the wrong dtype: nothing may change. */
    nb_tensor *a = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_tensor *b = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    set_grad(a, (double[]){1, 1});
    b->grad = nb_tensor_new(NB_FLOAT32, 1, VEC2);
    nb_optimizer *opt = nb_sgd_new((nb_tensor *[]){a, b}, 2, &(nb_sgd_options){.lr = 0.1});
    cr_assert_eq(nb_optimizer_step(opt), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(),
                     "sgd: parameter 1: gradient has float32 with 2 elements, parameter float64 with 2");
    assert_values(a, (double[]){1, -1}, 2, 0);
    cr_assert_eq(nb_optimizer_step_count(opt), 0);
    cr_assert_eq(nb_optimizer_step(NULL), NB_ERR_INVALID);
    cr_assert_eq(nb_optimizer_set_lr(NULL, 0.1), NB_ERR_INVALID);
    nb_optimizer_zero_grad(NULL);
    nb_optimizer_free(NULL);
    nb_optimizer_free(opt);
    nb_tensor_free(a);
    nb_tensor_free(b);
}

/* ---- optional cross-check against PyTorch itself ------------------------------
 * Runs when a python3 with torch is on the machine (PATH, then /usr/bin),
 * skipped otherwise. Seven parameters p_i = sin(.7 i + .3), five steps with
 * grads cos(1.3 i + .5 s) (1 + .1 i), for each case in both dtypes. */
static const char TORCH_SCRIPT[] =
    "import math, sys\n"
    "try:\n"
    "    import torch\n"
    "except ImportError:\n"
    "    sys.exit(3)\n"
    "O = torch.optim\n"
    "cases = [\n"
    "    lambda ps: O.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, foreach=False),\n"
    "    lambda ps: O.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True, foreach=False),\n"
    "    lambda ps: O.Adam(ps, lr=0.01, foreach=False),\n"
    "    lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True, foreach=False),\n"
    "    lambda ps: O.AdamW(ps, lr=0.01, weight_decay=0.1, foreach=False),\n"
    "    lambda ps: O.RMSprop(ps, lr=0.01, foreach=False),\n"
    "    lambda ps: O.RMSprop(ps, lr=0.01, centered=True, momentum=0.9, weight_decay=0.1, foreach=False),\n"
    "    lambda ps: O.Adagrad(ps, lr=0.1, foreach=False),\n"
    "    lambda ps: O.Adagrad(ps, lr=0.05, lr_decay=0.3, weight_decay=0.1, initial_accumulator_value=0.2,\n"
    "                         eps=1e-6, foreach=False, maximize=True),\n"
    "]\n"
    "for k, make in enumerate(cases):\n"
    "    for bits, dt in ((32, torch.float32), (64, torch.float64)):\n"
    "        p = torch.tensor([math.sin(0.7 * i + 0.3) for i in range(7)], dtype=dt, requires_grad=True)\n"
    "        opt = make([p])\n"
    "        for s in range(5):\n"
    "            p.grad = torch.tensor([math.cos(1.3 * i + 0.5 * s) * (1 + 0.1 * i) for i in range(7)], dtype=dt)\n"
    "            opt.step()\n"
    "        print(k, bits, ' '.join(repr(v) for v in p.detach().double().tolist()))\n";

enum { TORCH_CASES = 9, TORCH_N = 7 };

static nb_optimizer *torch_case(int k, nb_tensor *p)
{
    switch (k) {
    case 0: return nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
    case 1:
        return nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.05, .momentum = 0.8, .nesterov = true,
                                                  .weight_decay = 0.1, .maximize = true});
    case 2: return nb_adam_new(&p, 1, &(nb_adam_options){.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    case 3:
        return nb_adam_new(&p, 1, &(nb_adam_options){.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                                    .weight_decay = 0.1, .amsgrad = true});
    case 4: return nb_adamw_new(&p, 1, &(nb_adam_options){.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1});
    case 5: return nb_rmsprop_new(&p, 1, &(nb_rmsprop_options){.lr = 0.01, .alpha = 0.99, .eps = 1e-8});
    case 6:
        return nb_rmsprop_new(&p, 1, &(nb_rmsprop_options){.lr = 0.01, .alpha = 0.99, .eps = 1e-8, .centered = true,
                                                          .momentum = 0.9, .weight_decay = 0.1});
    case 7: return nb_adagrad_new(&p, 1, &(nb_adagrad_options){.lr = 0.1, .eps = 1e-10});
    default:
        return nb_adagrad_new(&p, 1, &(nb_adagrad_options){.lr = 0.05, .lr_decay = 0.3, .weight_decay = 0.1,
                                                          .initial_accumulator_value = 0.2, .eps = 1e-6,
                                                          .maximize = true});
    }
}

static void compare_with_torch(int k, int bits, const double *reference)
{
    nb_dtype dtype = bits == 32 ? NB_FLOAT32 : NB_FLOAT64;
    nb_tensor *p = nb_tensor_new(dtype, 1, (int64_t[]){TORCH_N});
    nb_tensor_set_requires_grad(p, true);
    for (int i = 0; i < TORCH_N; i++) nb_tensor_set(p, i, sin(0.7 * i + 0.3));
    nb_optimizer *opt = torch_case(k, p);
    cr_assert_not_null(opt, "%s", nb_last_error());
    double grad[TORCH_N];
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < TORCH_N; i++) grad[i] = cos(1.3 * i + 0.5 * s) * (1 + 0.1 * i);
        set_grad(p, grad);
        cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    }
    /* float32: 2 ulp of values below 2 (PyTorch rounds every intermediate to
     * float, we round only what is stored; measured: at most 2.4e-7). */
    double tol = bits == 32 ? 5e-7 : 1e-14;
    for (int i = 0; i < TORCH_N; i++)
        cr_expect(fabs(nb_tensor_get(p, i) - reference[i]) <= tol, "case %d float%d element %d: %.17g vs torch %.17g",
                  k, bits, i, nb_tensor_get(p, i), reference[i]);
    nb_optimizer_free(opt);
    nb_tensor_free(p);
}

Test(optim, matches_pytorch_when_available)
{
    char path[] = "/tmp/nabla_optim_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, TORCH_SCRIPT, sizeof TORCH_SCRIPT - 1), (ssize_t)(sizeof TORCH_SCRIPT - 1));
    close(fd);
    char command[128];
    snprintf(command, sizeof command, "(python3 %s || /usr/bin/python3 %s) 2>/dev/null", path, path);
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    int k, bits, compared = 0;
    double reference[TORCH_N];
    while (fscanf(pipe, "%d %d", &k, &bits) == 2) {
        for (int i = 0; i < TORCH_N; i++) cr_assert_eq(fscanf(pipe, "%lf", &reference[i]), 1);
        compare_with_torch(k, bits, reference);
        compared++;
    }
    pclose(pipe);
    unlink(path);
    if (compared == 0) cr_skip_test("no python3 with torch");
    cr_assert_eq(compared, 2 * TORCH_CASES);
}
