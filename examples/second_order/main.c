/* second_order [hvp|newton|penalty|maml|all] [--data DIR] [--steps N] [--seed S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "second_order.h"

int hessian_vector_product(nb_tape *tape, nb_tensor *loss, int n, nb_tensor *const *params,
                           nb_tensor *const *v, nb_tensor **hv, nb_tensor **grads)
{
    nb_tensor *g[64];
    if (n > 64) return nb_fail(NB_ERR_INVALID, "hessian_vector_product: %d parameters, at most 64", n);
    int status = nb_grad(tape, 1, &loss, NULL, n, params, g, NB_GRAD_CREATE_GRAPH);
    if (status == NB_OK) status = nb_grad(tape, n, g, v, n, params, hv, NB_GRAD_ALLOW_UNUSED);
    for (int i = 0; grads && i < n; i++) grads[i] = g[i];
    return status;
}

int dataset_rows(const nb_dataset *data, int64_t first, int64_t count, nb_tensor **rows,
                 nb_tensor **labels)
{
    *rows = *labels = NULL;
    if (first < 0 || count < 1 || first + count > data->count)
        return nb_fail(NB_ERR_INVALID, "dataset_rows: images %lld..%lld of %lld", (long long)first,
                       (long long)(first + count), (long long)data->count);
    int64_t pixels = data->channels * data->height * data->width;
    const int64_t shape[2] = {count, pixels}, label_shape[1] = {count};
    *rows = nb_tensor_new(NB_FLOAT64, 2, shape);
    *labels = nb_tensor_new(NB_INT32, 1, label_shape);
    if (!*rows || !*labels) return NB_ERR_NOMEM;
    double *x = (*rows)->data;
    int32_t *classes = (*labels)->data;
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *image = data->images + (first + i) * pixels;
        for (int64_t p = 0; p < pixels; p++)
            x[i * pixels + p] = (image[p] / 255.0 - NB_FASHION_MNIST_MEAN) / NB_FASHION_MNIST_STD;
        classes[i] = data->labels[first + i];
    }
    return NB_OK;
}

int main(int argc, char **argv)
{
    example_options o = {.data_dir = "/usr/share/datasets/fashion-mnist", .seed = 1};
    const char *part = "all";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) o.data_dir = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) o.steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) o.seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-') part = argv[i];
        else {
            fprintf(stderr, "usage: second_order [hvp|newton|penalty|maml|all] [--data DIR] "
                            "[--steps N] [--seed S]\n");
            return 2;
        }
    }
    static const struct {
        const char *name;
        int (*run)(const example_options *);
    } PARTS[] = {{"hvp", run_hvp}, {"newton", run_newton}, {"penalty", run_penalty}, {"maml", run_maml}};
    int ran = 0;
    for (size_t k = 0; k < sizeof PARTS / sizeof PARTS[0]; k++) {
        if (strcmp(part, "all") != 0 && strcmp(part, PARTS[k].name) != 0) continue;
        ran++;
        if (PARTS[k].run(&o) != 0) {
            fprintf(stderr, "second_order %s: %s\n", PARTS[k].name, nb_last_error());
            return 1;
        }
    }
    if (!ran) {
        fprintf(stderr, "second_order: no part named '%s' (hvp, newton, penalty, maml, all)\n", part);
        return 2;
    }
    return 0;
}
