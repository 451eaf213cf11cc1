/* The benchmark convnet for 28x28 inputs: conv 32@3x3, ReLU, conv 32@3x3,
 * ReLU, maxpool 2 (the last three as one ConvReLUMaxPool2d), flatten,
 * linear 128, ReLU, linear 10. */
#ifndef NABLA_MODELS_CONVNET_H
#define NABLA_MODELS_CONVNET_H

#include "nabla.h"

nb_module *convnet_new(void);

#endif
