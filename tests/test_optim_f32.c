/* The optimizers' float32 kernels (float arithmetic, vectorised, split over
 * threads) against their float64 reference kernels: the same start, the
 * same gradients, twenty steps, every setting PyTorch offers. The sizes
 * cross the thread split and the 512-element chunks of the noise path. */
#include "helpers.h"

/* Elements: above the optimizers' 32768-element thread grain and not a
 * multiple of the noise chunk. */
enum { N = 70001, STEPS = 20, SETTINGS = 11 };

static nb_optimizer *make(int setting, nb_tensor *p)
{
    nb_sgd_options sgd = {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
    nb_adam_options adam = nb_adam_defaults(0.01);
    nb_rmsprop_options rmsprop = {.lr = 0.01, .alpha = 0.9, .eps = 1e-8};
    switch (setting) {
    case 0: return nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .maximize = true});
    case 1: return nb_sgd_new(&p, 1, &(nb_sgd_options){.lr = 0.1, .momentum = 0.8, .dampening = 0.3});
    case 2: return nb_sgd_new(&p, 1, &sgd);
    case 3: return nb_adam_new(&p, 1, &adam);
    case 4:
        adam.weight_decay = 0.1;
        adam.amsgrad = true;
        adam.maximize = true;
        return nb_adam_new(&p, 1, &adam);
    case 5: return nb_adamw_new(&p, 1, NULL);
    case 6: return nb_rmsprop_new(&p, 1, &rmsprop);
    case 7:
        rmsprop.centered = true;
        rmsprop.momentum = 0.5;
        rmsprop.weight_decay = 0.01;
        return nb_rmsprop_new(&p, 1, &rmsprop);
    case 8: return nb_adagrad_new(&p, 1, NULL);
    case 9:
        return nb_adagrad_new(&p, 1, &(nb_adagrad_options){.lr = 0.05, .lr_decay = 0.2, .weight_decay = 0.01,
                                                          .initial_accumulator_value = 0.1, .eps = 1e-8,
                                                          .maximize = true});
    default: return nb_sgd_new(&p, 1, &sgd);   /* with gradient noise, below */
    }
}

/* Runs STEPS steps of `setting` on a parameter of dtype and returns it. */
static nb_tensor *train(int setting, nb_dtype dtype)
{
    nb_tensor *p = nb_tensor_new(dtype, 1, (int64_t[]){N});
    cr_assert_not_null(p);
    nb_tensor_set_requires_grad(p, true);
    p->grad = nb_tensor_new(dtype, 1, (int64_t[]){N});
    cr_assert_not_null(p->grad);
    for (int64_t i = 0; i < N; i++) nb_tensor_set(p, i, sin(0.37 * (double)i));
    nb_optimizer *opt = make(setting, p);
    cr_assert_not_null(opt, "%s", nb_last_error());
    if (setting == SETTINGS - 1)
        cr_assert_eq(nb_optimizer_set_gradient_noise(opt, 0.3, 0.55, 7), NB_OK);
    for (int s = 0; s < STEPS; s++) {
        /* Gradients of mixed sizes, some exactly zero (meProp's sparse rows). */
        for (int64_t i = 0; i < N; i++)
            nb_tensor_set(p->grad, i, i % 7 == 0 ? 0.0 : cos(1.3 * (double)i + s) * (1 + (double)(i % 5)));
        cr_assert_eq(nb_optimizer_step(opt), NB_OK, "%s", nb_last_error());
    }
    nb_optimizer_free(opt);
    return p;
}

Test(optim_f32, float32_kernels_follow_the_float64_reference)
{
    for (int setting = 0; setting < SETTINGS; setting++) {
        nb_tensor *f32 = train(setting, NB_FLOAT32), *f64 = train(setting, NB_FLOAT64);
        double worst = 0;
        int64_t at = 0;
        for (int64_t i = 0; i < N; i++) {
            double reference = nb_tensor_get(f64, i);
            double error = fabs(nb_tensor_get(f32, i) - reference) / (1 + fabs(reference));
            if (!(error <= worst)) worst = error, at = i;
        }
        /* float rounding over twenty steps of size ~lr: a few 1e-7. */
        cr_expect(worst <= 2e-6, "setting %d: element %lld is %.9g in float32, %.9g in float64",
                  setting, (long long)at, nb_tensor_get(f32, at), nb_tensor_get(f64, at));
        nb_tensor_free(f32);
        nb_tensor_free(f64);
    }
}

Test(optim_f32, result_does_not_depend_on_the_thread_count)
{
    for (int setting = 0; setting < SETTINGS; setting++) {
        cr_assert_eq(nb_set_num_threads(1), NB_OK);
        nb_tensor *one = train(setting, NB_FLOAT32);
        cr_assert_eq(nb_set_num_threads(2), NB_OK);
        nb_tensor *two = train(setting, NB_FLOAT32);
        cr_expect(memcmp(one->data, two->data, N * sizeof(float)) == 0, "setting %d", setting);
        nb_tensor_free(one);
        nb_tensor_free(two);
    }
}
