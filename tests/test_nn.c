/* nn: naming, parameter counts, PyTorch's default init, modes, containers,
 * custom forward code and save/load. */
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

static nb_tensor *two_layer_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    /* Custom forward: the same layer applied twice (weight sharing) with an
     * op between. */
    nb_module *shared = nb_module_child(m, "shared");
    return nb_add(tape, nb_module_forward(shared, tape, nb_tanh(tape, nb_module_forward(shared, tape, x))), x);
}

Test(nn, names_and_counts_follow_pytorch)
{
    nb_manual_seed(0);
    nb_module *model = nb_nn_sequential(4, (nb_module *[]){
        nb_nn_conv2d(1, 6, 5, 5, NULL, true), nb_nn_relu(), nb_nn_flatten(1, -1), nb_nn_linear(24 * 24 * 6, 10, true)});
    cr_assert_not_null(model, "%s", nb_last_error());
    nb_named_tensor params[8];
    int count = nb_module_parameters(model, params, 8);
    cr_assert_eq(count, 4);
    cr_assert_str_eq(params[0].name, "0.weight");
    cr_assert_str_eq(params[1].name, "0.bias");
    cr_assert_str_eq(params[2].name, "3.weight");
    cr_assert_str_eq(params[3].name, "3.bias");
    /* 6*1*5*5 + 6 + 10*3456 + 10 */
    cr_assert_eq(nb_module_parameter_count(model), 150 + 6 + 34560 + 10);
    nb_module *outer = nb_nn_container();
    nb_module_add(outer, "features", model);
    nb_module_add(outer, "bn", nb_nn_batch_norm2d(6));
    count = nb_module_state(outer, params, 8);
    cr_assert_eq(count, 8, "4 + weight, bias, running_mean, running_var");
    cr_assert_str_eq(params[0].name, "features.0.weight");
    cr_assert_str_eq(params[7].name, "bn.running_var");
    cr_assert_eq(nb_module_parameters(outer, NULL, 0), 6, "buffers are not parameters");
    nb_module_free(outer);
}

Test(nn, default_init_bounds)
{
    nb_manual_seed(1);
    nb_module *linear = nb_nn_linear(100, 50, true);
    /* kaiming_uniform(a=sqrt(5)): bound = sqrt(2/(1+5)) * sqrt(3/100) = 0.1;
     * bias: 1/sqrt(100) = 0.1 as well. */
    double max_w = 0, max_b = 0;
    for (int64_t i = 0; i < linear->tensors[0]->numel; i++) max_w = fmax(max_w, fabs(nb_tensor_get(linear->tensors[0], i)));
    for (int64_t i = 0; i < linear->tensors[1]->numel; i++) max_b = fmax(max_b, fabs(nb_tensor_get(linear->tensors[1], i)));
    cr_assert(max_w <= 0.1 && max_w > 0.09, "weights fill U(-0.1, 0.1): max %g", max_w);
    cr_assert(max_b <= 0.1 && max_b > 0.05, "bias in U(-0.1, 0.1): max %g", max_b);
    nb_module_free(linear);
    /* xavier_uniform on [20, 30]: bound = sqrt(6/50) */
    nb_tensor *w = nb_tensor_zeros(NB_FLOAT64, 2, (int64_t[]){20, 30});
    cr_assert_eq(nb_init_xavier_uniform(w, 1.0, NULL), NB_OK);
    double bound = sqrt(6.0 / 50.0), max = 0;
    for (int64_t i = 0; i < w->numel; i++) max = fmax(max, fabs(nb_tensor_get(w, i)));
    cr_assert(max <= bound && max > 0.9 * bound, "max %g bound %g", max, bound);
    /* kaiming_normal(a=0) on [200, 50]: std = sqrt(2/50) = 0.2 */
    nb_tensor *k = nb_tensor_zeros(NB_FLOAT64, 2, (int64_t[]){200, 50});
    nb_init_kaiming_normal(k, 0.0, NULL);
    double var = 0;
    for (int64_t i = 0; i < k->numel; i++) var += pow(nb_tensor_get(k, i), 2) / (double)k->numel;
    cr_assert(fabs(sqrt(var) - 0.2) < 0.01, "std %g", sqrt(var));
    int64_t fan_in, fan_out;
    cr_assert_eq(nb_init_fans(k, &fan_in, &fan_out), NB_OK);
    cr_assert_eq(fan_in, 50);
    cr_assert_eq(fan_out, 200);
    nb_tensor *v = nb_tensor_zeros(NB_FLOAT64, 1, (int64_t[]){3});
    cr_assert_neq(nb_init_xavier_uniform(v, 1.0, NULL), NB_OK, "1-D has no fan");
    nb_tensor_free(w);
    nb_tensor_free(k);
    nb_tensor_free(v);
}

Test(nn, custom_forward_with_weight_sharing_trains)
{
    nb_manual_seed(2);
    nb_module *m = nb_nn_container();
    nb_module_add(m, "shared", nb_nn_linear(3, 3, false));
    m->forward = two_layer_forward;
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, (float[]){1, 2, 3, -1, 0, 1});
    nb_tensor *y = nb_module_forward(m, tape, x);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, y, y));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    nb_tensor *w = m->children[0]->tensors[0];
    cr_assert_not_null(w->grad);
    /* The layer ran twice: its gradient is the sum of both uses, so it
     * must differ from what one use alone would give. Check against a
     * finite difference of the whole model instead of by hand. */
    double analytic = nb_tensor_get(w->grad, 4);
    double saved = nb_tensor_get(w, 4), eps = 1e-3, sides[2];
    for (int s = 0; s < 2; s++) {
        nb_tape_reset(tape);
        nb_tensor_set(w, 4, saved + (s ? -eps : eps));
        x = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, (float[]){1, 2, 3, -1, 0, 1});
        nb_tensor *out = nb_module_forward(m, tape, x);
        sides[s] = nb_tensor_get(nb_sum(tape, nb_mul(tape, out, out)), 0);
    }
    nb_tensor_set(w, 4, saved);
    double numeric = (sides[0] - sides[1]) / (2 * eps);
    cr_assert(fabs(analytic - numeric) < 2e-2 * (1 + fabs(numeric)), "analytic %g numeric %g", analytic, numeric);
    nb_tape_free(tape);
    nb_module_free(m);
}

Test(nn, train_and_eval_modes)
{
    nb_module *model = nb_nn_sequential(2, (nb_module *[]){nb_nn_batch_norm2d(2), nb_nn_dropout(0.5, 3)});
    cr_assert(model->children[0]->training);
    nb_module_train(model, false);
    cr_assert_not(model->children[0]->training);
    cr_assert_not(model->children[1]->training);
    nb_tape *tape = nb_tape_new();
    /* Eval: running stats are mean 0, var 1, so batch norm is x / sqrt(1 + eps)
     * and dropout is the identity. */
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 2, 1, 2}, (float[]){1, 2, 3, 4});
    nb_tensor *y = nb_module_forward(model, tape, x);
    double scale = 1 / sqrt(1 + 1e-5);
    assert_values(y, (double[]){scale, 2 * scale, 3 * scale, 4 * scale}, 4, 1e-6);
    nb_tape_free(tape);
    nb_module_free(model);
}

Test(nn, save_and_load_round_trip_is_bit_exact)
{
    nb_manual_seed(4);
    nb_module *a = nb_nn_sequential(2, (nb_module *[]){nb_nn_linear(5, 4, true), nb_nn_batch_norm2d(4)});
    nb_manual_seed(5);
    nb_module *b = nb_nn_sequential(2, (nb_module *[]){nb_nn_linear(5, 4, true), nb_nn_batch_norm2d(4)});
    nb_tensor_set(a->children[1]->tensors[2], 1, 0.25); /* a running_mean value */
    char path[] = "/tmp/nabla_nn_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(nb_module_save(a, path), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_module_load(b, path), NB_OK, "%s", nb_last_error());
    nb_named_tensor sa[8], sb[8];
    int n = nb_module_state(a, sa, 8);
    cr_assert_eq(n, nb_module_state(b, sb, 8));
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(sa[i].name, sb[i].name);
        cr_assert_eq(memcmp(sa[i].tensor->data, sb[i].tensor->data, (size_t)sa[i].tensor->numel * 4), 0, "%s", sa[i].name);
    }
    nb_module *wrong = nb_nn_sequential(1, (nb_module *[]){nb_nn_linear(5, 3, true)});
    cr_assert_neq(nb_module_load(wrong, path), NB_OK);
    cr_assert(strstr(nb_last_error(), "0.weight") != NULL, "%s", nb_last_error());
    unlink(path);
    nb_module_free(a);
    nb_module_free(b);
    nb_module_free(wrong);
}

Test(nn, save_and_load_of_a_null_module_are_errors)
{
    char dir[] = "/tmp/nabla_nn_null_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(nb_module_save(NULL, path), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_module_save: module is NULL");
    cr_assert_eq(access(path, F_OK), -1, "save of a NULL module created %s", path);
    /* load refuses a NULL module even when the file is a valid one */
    nb_module *m = nb_nn_linear(2, 1, false);
    cr_assert_eq(nb_module_save(m, path), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_module_load(NULL, path), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_module_load: module is NULL");
    nb_module_free(m);
    unlink(path);
    rmdir(dir);
}

Test(nn, bad_configurations_are_errors)
{
    cr_assert_null(nb_nn_linear(0, 3, true));
    cr_assert(strstr(nb_last_error(), "Linear") != NULL, "%s", nb_last_error());
    const nb_conv2d_params groups = {{1, 1}, {0, 0}, {1, 1}, 4};
    cr_assert_null(nb_nn_conv2d(6, 8, 3, 3, &groups, true));
    cr_assert(strstr(nb_last_error(), "groups 4") != NULL, "%s", nb_last_error());
    cr_assert_null(nb_nn_dropout(1.5, 0));
    cr_assert_null(nb_nn_sequential(2, (nb_module *[]){nb_nn_relu(), NULL}));
    nb_module *container = nb_nn_container();
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, NULL);
    cr_assert_null(nb_module_forward(container, tape, x));
    cr_assert(strstr(nb_last_error(), "no forward") != NULL, "%s", nb_last_error());
    cr_assert_not_null(nb_module_add(container, "a", nb_nn_relu()));
    cr_assert_null(nb_module_add(container, "a", nb_nn_relu()), "duplicate names are refused");
    /* A layer given a wrong shape reports the op and shapes on the tape. */
    nb_module *linear = nb_nn_linear(3, 2, true);
    cr_assert_null(nb_module_forward(linear, tape, x));
    cr_assert_not_null(nb_tape_error(tape));
    cr_assert(strstr(nb_tape_error(tape), "linear") != NULL, "%s", nb_tape_error(tape));
    nb_module_free(linear);
    nb_module_free(container);
    nb_tape_free(tape);
}
