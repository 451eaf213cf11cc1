/* custom_op: uses the user-defined softplus (user_softplus) in a small
 * regression model, then checks its gradient with the same gradcheck as the
 * built-in ops.
 *   custom_op              train, then gradcheck user_softplus (first and second order)
 *   custom_op --gradcheck  the full nabla-gradcheck table, user_softplus included */
#include <stdio.h>
#include <string.h>

#include "nabla.h"
#include "softplus.h"

enum { SAMPLES = 64, HIDDEN = 16, STEPS = 400 };

/* Learns y = |x| on [-2, 2] with linear -> softplus -> linear. */
static double train(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    float xs[SAMPLES], ys[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        xs[i] = -2.0f + 4.0f * (float)i / (SAMPLES - 1);
        ys[i] = xs[i] < 0 ? -xs[i] : xs[i];
    }
    nb_tensor *w1 = nb_tensor_uniform(NB_FLOAT32, 2, (int64_t[]){HIDDEN, 1}, -1, 1, &rng);
    nb_tensor *b1 = nb_tensor_uniform(NB_FLOAT32, 1, (int64_t[]){HIDDEN}, -1, 1, &rng);
    nb_tensor *w2 = nb_tensor_uniform(NB_FLOAT32, 2, (int64_t[]){1, HIDDEN}, -0.25, 0.25, &rng);
    nb_tensor *b2 = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){1});
    nb_tensor *params[4] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) nb_tensor_set_requires_grad(params[i], true);
    nb_adam_options options = nb_adam_defaults(0.05);
    nb_optimizer *adam = nb_adam_new(params, 4, &options);
    nb_tape *tape = nb_tape_new();
    double loss_value = -1;
    for (int step = 0; step < STEPS && adam && tape; step++) {
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){SAMPLES, 1}, xs);
        nb_tensor *y = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){SAMPLES, 1}, ys);
        nb_tensor *h = user_softplus(tape, nb_linear(tape, x, w1, b1));
        nb_tensor *loss = nb_mse_loss(tape, nb_linear(tape, h, w2, b2), y);
        nb_optimizer_zero_grad(adam);
        if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(adam) != NB_OK) {
            fprintf(stderr, "custom_op: %s\n", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
            loss_value = -1;
            break;
        }
        loss_value = nb_tensor_get(loss, 0);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    nb_optimizer_free(adam);
    for (int i = 0; i < 4; i++) nb_tensor_free(params[i]);
    return loss_value;
}

int main(int argc, char **argv)
{
    if (nb_op_register(&user_softplus_op) != NB_OK) {
        fprintf(stderr, "custom_op: %s\n", nb_last_error());
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--gradcheck") == 0) return nb_gradcheck_main(argc - 1, argv + 1);
    double loss = train();
    printf("user_softplus model: final mse %.5f after %d Adam steps\n", loss, STEPS);
    nb_gradcheck_result result;
    int cases = 0;
    if (nb_gradcheck_op(&user_softplus_op, NULL, &result, &cases) != NB_OK) {
        fprintf(stderr, "custom_op: %s\n", nb_last_error());
        return 1;
    }
    printf("gradcheck user_softplus: %d cases, max abs err %.3e, max rel err %.3e: %s\n", cases,
           result.max_abs_error_all, result.max_rel_error_all, result.passed ? "PASS" : "FAIL");
    nb_gradcheck_result second;
    if (nb_gradgradcheck_op(&user_softplus_op, NULL, &second, &cases) != NB_OK) {
        fprintf(stderr, "custom_op: %s\n", nb_last_error());
        return 1;
    }
    printf("gradgradcheck user_softplus: %d cases, max abs err %.3e, max rel err %.3e: %s\n", cases,
           second.max_abs_error_all, second.max_rel_error_all, second.passed ? "PASS" : "FAIL");
    return result.passed && second.passed && loss >= 0 && loss < 0.01 ? 0 : 1;
}
