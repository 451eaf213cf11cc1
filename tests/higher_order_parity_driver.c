/* Prints nabla's float64 second-order results for tests/higher_order_parity.py:
 *   hvp      H v of a 12-10-10-4 ReLU MLP's cross-entropy on 6 rows
 *   penalty  the parameters' gradient of a small conv net's
 *            CE + 0.5 mean_i ||d CE_i / d x_i||^2 (double backpropagation)
 * Every input is value(k) = scale sin(0.37 k + offset) over its flat index,
 * which the script reproduces; one number per line, %.17g. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla.h"

static nb_tensor *make(nb_tape *tape, int ndim, const int64_t *shape, double scale, double offset,
                       bool requires_grad)
{
    nb_tensor *t = nb_tape_tensor(tape, NB_FLOAT64, ndim, shape, NULL);
    for (int64_t k = 0; t && k < t->numel; k++) nb_tensor_set(t, k, scale * sin(0.37 * (double)k + offset));
    if (t) nb_tensor_set_requires_grad(t, requires_grad);
    return t;
}

static nb_tensor *labels_of(nb_tape *tape, int64_t n, int classes)
{
    int32_t values[64];
    for (int64_t i = 0; i < n; i++) values[i] = (int32_t)((3 * i + 1) % classes);
    return nb_tape_labels(tape, n, values);
}

static void print_all(int n, nb_tensor *const *t)
{
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < t[i]->numel; k++) printf("%.17g\n", nb_tensor_get(t[i], k));
}

static int hvp(nb_tape *tape)
{
    const int64_t xs[2] = {6, 12}, w1[2] = {10, 12}, b1[1] = {10}, w2[2] = {10, 10}, b2[1] = {10},
                  w3[2] = {4, 10}, b3[1] = {4};
    nb_tensor *x = make(tape, 2, xs, 1.0, 0.1, false);
    nb_tensor *p[6] = {make(tape, 2, w1, 0.4, 0.2, true), make(tape, 1, b1, 0.1, 0.3, true),
                       make(tape, 2, w2, 0.4, 0.4, true), make(tape, 1, b2, 0.1, 0.5, true),
                       make(tape, 2, w3, 0.4, 0.6, true), make(tape, 1, b3, 0.1, 0.7, true)};
    nb_tensor *v[6], *g[6], *hv[6];
    for (int i = 0; i < 6; i++) v[i] = make(tape, p[i]->ndim, p[i]->shape, 1.0, 1.0 + i, false);
    nb_tensor *h = x;
    for (int l = 0; l < 3; l++) {
        h = nb_linear(tape, h, p[2 * l], p[2 * l + 1]);
        if (l < 2) h = nb_relu(tape, h);
    }
    nb_tensor *loss = nb_cross_entropy(tape, h, labels_of(tape, 6, 4));
    if (!loss || nb_grad(tape, 1, &loss, NULL, 6, p, g, NB_GRAD_CREATE_GRAPH) != NB_OK ||
        nb_grad(tape, 6, g, v, 6, p, hv, 0) != NB_OK)
        return 1;
    print_all(6, hv);
    return 0;
}

static int penalty(nb_tape *tape)
{
    const int64_t xs[4] = {4, 2, 6, 6}, ws[4] = {3, 2, 3, 3}, bs[1] = {3}, ls[2] = {5, 27},
                  lb[1] = {5};
    nb_tensor *x = make(tape, 4, xs, 1.0, 0.1, true);
    nb_tensor *p[4] = {make(tape, 4, ws, 0.4, 0.2, true), make(tape, 1, bs, 0.1, 0.3, true),
                       make(tape, 2, ls, 0.3, 0.4, true), make(tape, 1, lb, 0.1, 0.5, true)};
    const nb_conv2d_params conv = {.padding = {1, 1}};
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_tensor *h = nb_max_pool2d(tape, nb_relu(tape, nb_conv2d(tape, x, p[0], p[1], &conv)), &pool);
    const int64_t rows[2] = {4, 27};
    nb_tensor *logits = nb_linear(tape, nb_reshape(tape, h, 2, rows), p[2], p[3]);
    nb_tensor *loss = nb_cross_entropy(tape, logits, labels_of(tape, 4, 5)), *gx, *grads[4];
    if (!loss || nb_grad(tape, 1, &loss, NULL, 1, &x, &gx, NB_GRAD_CREATE_GRAPH) != NB_OK) return 1;
    /* d CE_i / d x_i = B d mean / d x_i, so mean_i ||.||^2 = B sum(gx^2) */
    nb_tensor *term = nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, gx, gx)), 4.0 * 0.5);
    nb_tensor *total = nb_add(tape, loss, term);
    if (!total || nb_grad(tape, 1, &total, NULL, 4, p, grads, 0) != NB_OK) return 1;
    print_all(4, grads);
    return 0;
}

int main(int argc, char **argv)
{
    nb_tape *tape = nb_tape_new();
    int status = argc == 2 && strcmp(argv[1], "hvp") == 0       ? hvp(tape)
                 : argc == 2 && strcmp(argv[1], "penalty") == 0 ? penalty(tape)
                                                                 : 2;
    if (status == 1) fprintf(stderr, "higher_order_parity_driver: %s\n",
                             nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
    if (status == 2) fprintf(stderr, "usage: higher_order_parity_driver hvp|penalty\n");
    nb_tape_free(tape);
    return status;
}
