/* The benchmark models, each with the optimizer it trains with:
 *   lenet5   models/lenet5.c (conv 6@5x5 pad 2, ReLU, maxpool 2,
 *            conv 16@5x5, ReLU, maxpool 2, flatten, linear 120, ReLU,
 *            linear 84, ReLU, linear 10); SGD lr 0.01 momentum 0.9
 *   convnet  conv 32@3x3, ReLU, conv 32@3x3, ReLU, maxpool 2, flatten,
 *            linear 128, ReLU, linear 10; Adam lr 1e-3
 *   mlp      flatten, linear 512, ReLU, linear 256, ReLU, linear 10; SGD
 *            lr 0.01 momentum 0.9
 * bench/compare.py builds the same three in PyTorch. */
#include <string.h>

#include "models/convnet.h"
#include "models/lenet5.h"
#include "models/mlp.h"
#include "bench/bench.h"

bool bench_model_known(const char *name)
{
    return strcmp(name, "lenet5") == 0 || strcmp(name, "convnet") == 0 ||
           strcmp(name, "mlp") == 0;
}

int bench_model_new(const char *name, uint64_t seed, bench_model *out)
{
    memset(out, 0, sizeof *out);
    nb_manual_seed(seed);
    if (strcmp(name, "lenet5") == 0) out->module = lenet5_new();
    else if (strcmp(name, "convnet") == 0) out->module = convnet_new();
    else if (strcmp(name, "mlp") == 0) out->module = mlp_new();
    if (!out->module) return -1;
    nb_named_tensor named[BENCH_MAX_PARAMS];
    out->n_params = nb_module_parameters(out->module, named, BENCH_MAX_PARAMS);
    if (out->n_params > BENCH_MAX_PARAMS) return -1;
    for (int i = 0; i < out->n_params; i++) out->params[i] = named[i].tensor;
    if (strcmp(name, "convnet") == 0) {
        nb_adam_options adam = nb_adam_defaults(1e-3);
        out->optimizer = nb_adam_new(out->params, out->n_params, &adam);
    } else {
        nb_sgd_options sgd = nb_sgd_defaults(0.01);
        sgd.momentum = 0.9;
        out->optimizer = nb_sgd_new(out->params, out->n_params, &sgd);
    }
    return out->optimizer ? 0 : -1;
}

void bench_model_free(bench_model *model)
{
    nb_optimizer_free(model->optimizer);
    nb_module_free(model->module);
    memset(model, 0, sizeof *model);
}
