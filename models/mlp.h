/* The benchmark MLP for 28x28 inputs: flatten, linear 512, ReLU,
 * linear 256, ReLU, linear 10. */
#ifndef NABLA_MODELS_MLP_H
#define NABLA_MODELS_MLP_H

#include "nabla.h"

nb_module *mlp_new(void);

#endif
