#include "models/mlp.h"

nb_module *mlp_new(void)
{
    nb_module *layers[] = {
        nb_nn_flatten(1, -1),
        nb_nn_linear(28 * 28, 512, true), nb_nn_relu(),
        nb_nn_linear(512, 256, true), nb_nn_relu(),
        nb_nn_linear(256, 10, true),
    };
    return nb_nn_sequential((int)(sizeof layers / sizeof layers[0]), layers);
}
