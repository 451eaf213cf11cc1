/* LeNet-5 for 28x28 inputs, named as a PyTorch module with children
 * conv1, conv2, fc1, fc2, fc3 (so state_dict keys match):
 * conv 6@5x5 pad 2, ReLU, maxpool 2, conv 16@5x5, ReLU, maxpool 2, flatten,
 * linear 120, ReLU, linear 84, ReLU, linear 10. */
#ifndef NABLA_MODELS_LENET5_H
#define NABLA_MODELS_LENET5_H

#include "nabla.h"

nb_module *lenet5_new(void);

#endif
