/* nb_add_noise (include/nabla/noise.h). */
#include <math.h>

#include "autograd/internal.h"
#include "nabla/noise.h"

int nb_add_noise(nb_tensor *tensor, double std, nb_rng *rng)
{
    int status = nb_tensor_check_usable(nb_tensor_owner(tensor), tensor, "nb_add_noise");
    if (status != NB_OK) return status;
    char shape[96];
    nb_shape_str(tensor, shape, sizeof shape);
    if (tensor->dtype != NB_FLOAT32 && tensor->dtype != NB_FLOAT64)
        return nb_fail(NB_ERR_INVALID, "nb_add_noise: tensor %s has dtype %s; expected float32 or "
                       "float64", shape, nb_dtype_name(tensor->dtype));
    if (!(std >= 0.0) || isinf(std))
        return nb_fail(NB_ERR_INVALID, "nb_add_noise: std %g must be finite and >= 0", std);
    /* Changing a recorded output would change what its op's backward (or a
     * consumer's) reads: the gradient would silently be wrong. */
    if (tensor->node)
        return nb_fail(NB_ERR_INVALID, "nb_add_noise: tensor %s is the output of a recorded op; "
                       "add noise to data (inputs, targets) or parameters only", shape);
    if (std == 0.0) return NB_OK;
    if (!rng) rng = nb_rng_global();
    if (tensor->dtype == NB_FLOAT32) {
        float *x = tensor->data;
        for (int64_t i = 0; i < tensor->numel; i++) x[i] = (float)(x[i] + std * nb_rng_normal(rng));
    } else {
        double *x = tensor->data;
        for (int64_t i = 0; i < tensor->numel; i++) x[i] += std * nb_rng_normal(rng);
    }
    return NB_OK;
}
