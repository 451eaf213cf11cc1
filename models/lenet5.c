#include "models/lenet5.h"

/* Custom forward code: layers and ops mixed freely. */
static nb_tensor *lenet5_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    /* conv1 and conv2 are ConvReLUMaxPool2d: convolution, ReLU and 2x2
     * max-pool in one node. */
    x = nb_module_forward(nb_module_child(m, "conv1"), tape, x);
    x = nb_module_forward(nb_module_child(m, "conv2"), tape, x);
    x = nb_flatten(tape, x, 1, -1);
    x = nb_relu(tape, nb_module_forward(nb_module_child(m, "fc1"), tape, x));
    x = nb_relu(tape, nb_module_forward(nb_module_child(m, "fc2"), tape, x));
    return nb_module_forward(nb_module_child(m, "fc3"), tape, x);
}

nb_module *lenet5_new(void)
{
    nb_module *m = nb_nn_container();
    if (!m) return NULL;
    m->kind = "LeNet5";
    m->forward = lenet5_forward;
    const nb_conv2d_params pad2 = {{1, 1}, {2, 2}, {1, 1}, 1};
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    bool ok = nb_module_add(m, "conv1", nb_nn_conv_relu_max_pool2d(1, 6, 5, 5, &pad2, &pool, true)) &&
              nb_module_add(m, "conv2", nb_nn_conv_relu_max_pool2d(6, 16, 5, 5, NULL, &pool, true)) &&
              nb_module_add(m, "fc1", nb_nn_linear(16 * 5 * 5, 120, true)) &&
              nb_module_add(m, "fc2", nb_nn_linear(120, 84, true)) &&
              nb_module_add(m, "fc3", nb_nn_linear(84, 10, true));
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
