/* XOR with a 2-8-1 MLP: the README's quick start. */
#include <stdio.h>

#include "nabla.h"

int main(void)
{
    const float inputs[8] = {0, 0, 0, 1, 1, 0, 1, 1}, targets[4] = {0, 1, 1, 0};
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_tensor *w1 = nb_tensor_uniform(NB_FLOAT32, 2, (int64_t[]){8, 2}, -1, 1, &rng);
    nb_tensor *b1 = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){8});
    nb_tensor *w2 = nb_tensor_uniform(NB_FLOAT32, 2, (int64_t[]){1, 8}, -1, 1, &rng);
    nb_tensor *b2 = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){1});
    nb_tensor *params[4] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) nb_tensor_set_requires_grad(params[i], true);
    nb_sgd_options options = nb_sgd_defaults(0.5);
    options.momentum = 0.9;
    nb_optimizer *sgd = nb_sgd_new(params, 4, &options);
    nb_tape *tape = nb_tape_new();
    double loss_value = 1.0;
    for (int step = 0; step < 1000 && loss_value >= 1e-3; step++) {
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){4, 2}, inputs);
        nb_tensor *y = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){4, 1}, targets);
        nb_tensor *hidden = nb_tanh(tape, nb_linear(tape, x, w1, b1));
        nb_tensor *loss = nb_mse_loss(tape, nb_sigmoid(tape, nb_linear(tape, hidden, w2, b2)), y);
        nb_optimizer_zero_grad(sgd);
        if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(sgd) != NB_OK) {
            fprintf(stderr, "xor: %s\n", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
            return 1;
        }
        loss_value = nb_tensor_get(loss, 0);
        if (step % 100 == 0) printf("step %4d  loss %.5f\n", step, loss_value);
        nb_tape_reset(tape);
    }
    printf("final loss: %.5f\n", loss_value);
    nb_tape_free(tape);
    nb_optimizer_free(sgd);
    for (int i = 0; i < 4; i++) nb_tensor_free(params[i]);
    return loss_value < 0.01 ? 0 : 1;
}
