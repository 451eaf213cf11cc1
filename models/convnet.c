#include "models/convnet.h"

nb_module *convnet_new(void)
{
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_module *layers[] = {
        nb_nn_conv_relu2d(1, 32, 3, 3, NULL, true),
        nb_nn_conv_relu_max_pool2d(32, 32, 3, 3, NULL, &pool, true), nb_nn_flatten(1, -1),
        nb_nn_linear(32 * 12 * 12, 128, true), nb_nn_relu(),
        nb_nn_linear(128, 10, true),
    };
    return nb_nn_sequential((int)(sizeof layers / sizeof layers[0]), layers);
}
