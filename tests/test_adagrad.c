/* Adagrad (PyTorch 1.13's _single_tensor_adagrad). The first cases are
 * worked out by hand, with gradients whose running sums of squares are
 * perfect squares; the weight-decay case holds constants printed by
 * torch.optim.Adagrad (float64 and float32, foreach=False), with its first
 * step worked out by hand as well. Gradients go in through
 * nb_tensor_set_grad, from float64 tensors for both parameter dtypes. */
#include "helpers.h"

static const int64_t VEC2[1] = {2};

/* Three steps with grads[s]; after step s the parameter must equal expected[s]. */
static void check_steps(nb_optimizer *opt, nb_tensor *p, const double grads[3][2],
                        const double expected[3][2], double tol)
{
    cr_assert_not_null(opt, "%s", nb_last_error());
    nb_tensor *g = nb_tensor_new(NB_FLOAT64, 1, VEC2);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 2; i++) nb_tensor_set(g, i, grads[s][i]);
        cr_assert_eq(nb_tensor_set_grad(p, g), NB_OK, "%s", nb_last_error());
        cr_assert_eq(nb_optimizer_step(opt), NB_OK, "%s", nb_last_error());
        assert_values(p, expected[s], 2, tol);
    }
    cr_assert_eq(nb_optimizer_step_count(opt), 3);
    nb_tensor_free(g);
    nb_optimizer_free(opt);
    nb_tensor_free(p);
}

/* p0 = (1, -1), lr .1, lr_decay .5, eps .1 (large, so its place matters):
 * clr = .1 / (1 + (t-1) .5) = .1, 1/15, .05.
 * element 0, g = 3, 4, 12: sum = 9, 25, 169, sqrt = 3, 5, 13;
 *   p -= .3/3.1 = 3/31, (4/15)/5.1 = 8/153, .6/13.1 = 6/131.
 * element 1, g = -.6, .8, 2.4: sum = .36, 1, 6.76, sqrt = .6, 1, 2.6;
 *   p -= -.06/.7 = -3/35, (.8/15)/1.1 = 8/165, .12/2.7 = 2/45. */
static const double PLAIN_GRADS[3][2] = {{3, -0.6}, {4, 0.8}, {12, 2.4}};
static const double PLAIN_EXPECTED[3][2] = {
    {1 - 3.0 / 31, -1 + 3.0 / 35},
    {1 - 3.0 / 31 - 8.0 / 153, -1 + 3.0 / 35 - 8.0 / 165},
    {1 - 3.0 / 31 - 8.0 / 153 - 6.0 / 131, -1 + 3.0 / 35 - 8.0 / 165 - 2.0 / 45},
};

Test(adagrad, lr_decay_and_eps_float64)
{
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adagrad_options o = {.lr = 0.1, .lr_decay = 0.5, .eps = 0.1};
    check_steps(nb_adagrad_new(&p, 1, &o), p, PLAIN_GRADS, PLAIN_EXPECTED, 1e-15);
}

Test(adagrad, lr_decay_and_eps_float32)
{
    nb_tensor *p = test_param(NB_FLOAT32, 1, VEC2, (double[]){1, -1});
    nb_adagrad_options o = {.lr = 0.1, .lr_decay = 0.5, .eps = 0.1};
    check_steps(nb_adagrad_new(&p, 1, &o), p, PLAIN_GRADS, PLAIN_EXPECTED, 3e-7);
}

/* p0 = (2, 0), lr .2, lr_decay .1, weight decay .5, initial accumulator 5,
 * eps 1e-3, maximize; grads (1, -2), (.5, 1), (-1.5, .25). Step 1 by hand:
 * g = -grad + .5 p = (-1 + 1, 2 + 0) = (0, 2) (maximize negates before the
 * decay is added); sum = (5, 9); p = (2, 0 - .2 * 2 / 3.001). The rest is
 * torch's arithmetic (float32: its own run in float32). */
static const double DECAY_GRADS[3][2] = {{1, -2}, {0.5, 1}, {-1.5, 0.25}};
static const double DECAY_EXPECTED_F64[3][2] = {
    {2, -0.4 / 3.001},
    {1.9603413284203757, -0.072398305269918778},
    {1.8379570738618223, -0.057481924663202656},
};
static const double DECAY_EXPECTED_F32[3][2] = {
    {2, -0.1332889050245285},
    {1.9603413343429565, -0.07239830493927002},
    {1.8379570245742798, -0.057481922209262848},
};

static nb_adagrad_options decay_options(void)
{
    return (nb_adagrad_options){.lr = 0.2, .lr_decay = 0.1, .weight_decay = 0.5,
                                .initial_accumulator_value = 5, .eps = 1e-3, .maximize = true};
}

Test(adagrad, weight_decay_accumulator_maximize_float64)
{
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){2, 0});
    nb_adagrad_options o = decay_options();
    check_steps(nb_adagrad_new(&p, 1, &o), p, DECAY_GRADS, DECAY_EXPECTED_F64, 1e-15);
}

Test(adagrad, weight_decay_accumulator_maximize_float32)
{
    /* float arithmetic as PyTorch's float32 tensors: within 2 ulp of its run. */
    nb_tensor *p = test_param(NB_FLOAT32, 1, VEC2, (double[]){2, 0});
    nb_adagrad_options o = decay_options();
    check_steps(nb_adagrad_new(&p, 1, &o), p, DECAY_GRADS, DECAY_EXPECTED_F32, 2.5e-7);
}

/* NULL options: lr 1e-2, eps 1e-10. g = (2, -0.5) -> sum = g^2, so
 * p -= .01 g / (|g| + 1e-10). */
Test(adagrad, defaults)
{
    nb_adagrad_options d = nb_adagrad_defaults(0.5);
    cr_assert(d.lr == 0.5 && d.eps == 1e-10 && d.lr_decay == 0 && d.weight_decay == 0 &&
              d.initial_accumulator_value == 0 && !d.maximize);
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_optimizer *opt = nb_adagrad_new(&p, 1, NULL);
    cr_assert_not_null(opt, "%s", nb_last_error());
    cr_assert_eq(nb_optimizer_lr(opt), 1e-2);
    cr_assert_str_eq(nb_optimizer_name(opt), "adagrad");
    nb_tensor *g = test_param(NB_FLOAT64, 1, VEC2, (double[]){2, -0.5});
    nb_tensor_set_grad(p, g);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    assert_values(p, (double[]){1 - 0.02 / (2 + 1e-10), -1 + 0.005 / (0.5 + 1e-10)}, 2, 1e-16);
    nb_optimizer_free(opt);
    nb_tensor_free(g);
    nb_tensor_free(p);
}

/* lr_decay counts each parameter's own steps: b has no gradient at step 1,
 * so its first update at step 2 uses clr = lr (a's uses lr / 1.5). With
 * eps 0 and g = 1 every step moves by clr / sqrt(sum): a by .1, then
 * (.1/1.5)/sqrt(2); b by .1. set_lr takes effect at the next step. */
Test(adagrad, lr_decay_counts_steps_per_parameter)
{
    nb_tensor *a = test_param(NB_FLOAT64, 1, VEC2, (double[]){0, 0});
    nb_tensor *b = test_param(NB_FLOAT64, 1, VEC2, (double[]){0, 0});
    nb_tensor *ones = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, 1});
    nb_optimizer *opt = nb_adagrad_new((nb_tensor *[]){a, b}, 2,
                                       &(nb_adagrad_options){.lr = 0.1, .lr_decay = 0.5});
    cr_assert_not_null(opt, "%s", nb_last_error());
    nb_tensor_set_grad(a, ones);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    assert_values(b, (double[]){0, 0}, 2, 0);
    nb_tensor_set_grad(b, ones);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    double a2 = -0.1 - (0.1 / 1.5) / sqrt(2);
    assert_values(a, (double[]){a2, a2}, 2, 1e-15);
    assert_values(b, (double[]){-0.1, -0.1}, 2, 1e-15);
    /* Step 3 at lr .3: a's clr = .3/2 over sqrt(3), b's .3/1.5 over sqrt(2). */
    cr_assert_eq(nb_optimizer_set_lr(opt, 0.3), NB_OK);
    cr_assert_eq(nb_optimizer_step(opt), NB_OK);
    assert_values(a, (double[]){a2 - 0.15 / sqrt(3), a2 - 0.15 / sqrt(3)}, 2, 1e-15);
    assert_values(b, (double[]){-0.1 - 0.2 / sqrt(2), -0.1 - 0.2 / sqrt(2)}, 2, 1e-15);
    nb_optimizer_free(opt);
    nb_tensor *tensors[] = {a, b, ones};
    for (int i = 0; i < 3; i++) nb_tensor_free(tensors[i]);
}

#define ASSERT_CREATE_FAILS(call, message)          \
    do {                                            \
        cr_assert_null(call);                       \
        cr_assert_str_eq(nb_last_error(), message); \
    } while (0)

Test(adagrad, constructor_errors)
{
    nb_tensor *p = test_param(NB_FLOAT64, 1, VEC2, (double[]){1, -1});
    nb_adagrad_options o = nb_adagrad_defaults(-0.1);
    ASSERT_CREATE_FAILS(nb_adagrad_new(&p, 1, &o), "adagrad: invalid learning rate: -0.1");
    o = nb_adagrad_defaults(0.1);
    o.lr_decay = -1;
    ASSERT_CREATE_FAILS(nb_adagrad_new(&p, 1, &o), "adagrad: invalid lr_decay value: -1");
    o = nb_adagrad_defaults(0.1);
    o.weight_decay = NAN;
    ASSERT_CREATE_FAILS(nb_adagrad_new(&p, 1, &o), "adagrad: invalid weight_decay value: nan");
    o = nb_adagrad_defaults(0.1);
    o.initial_accumulator_value = -0.5;
    ASSERT_CREATE_FAILS(nb_adagrad_new(&p, 1, &o),
                        "adagrad: invalid initial_accumulator_value value: -0.5");
    o = nb_adagrad_defaults(0.1);
    o.eps = -1e-10;
    ASSERT_CREATE_FAILS(nb_adagrad_new(&p, 1, &o), "adagrad: invalid epsilon value: -1e-10");
    ASSERT_CREATE_FAILS(nb_adagrad_new(NULL, 1, NULL), "adagrad: params is NULL");
    ASSERT_CREATE_FAILS(nb_adagrad_new((nb_tensor *[]){p, p}, 2, NULL),
                        "adagrad: parameter 1 appears twice (same as parameter 0)");
    nb_tensor_free(p);
}
