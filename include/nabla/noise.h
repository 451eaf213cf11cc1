/* nabla: additive Gaussian noise for experiments.
 *
 * nb_add_noise(t, std, rng): t += std * N(0, 1), element-wise, in place.
 * Works on any float32 or float64 tensor that holds data rather than a
 * recorded op's output: an input batch (data noise, like the loader's
 * noise_std), regression targets (target noise), or a parameter (weight
 * noise). For gradient noise see nb_optimizer_set_gradient_noise. */
#ifndef NABLA_NOISE_H
#define NABLA_NOISE_H

#include "nabla/export.h"

#include "nabla/random.h"
#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* std >= 0 (0 leaves t unchanged); rng NULL: the global generator. Fails
 * on int32 tensors and on outputs recorded on a tape (their backward may
 * read them). Draws are in flat index order, so a seed fixes the result. */
NB_API int nb_add_noise(nb_tensor *tensor, double std, nb_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
