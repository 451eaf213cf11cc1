/* examples/second_order: what differentiating a gradient buys.
 *   hvp      Hessian-vector products on an MLP, checked against differences
 *            of gradients; Newton-CG on logistic regression (Fashion-MNIST)
 *   penalty  a conv net trained with loss + lambda mean ||d loss_i / d x_i||^2
 *   maml     MAML on sine regression: the outer gradient flows through the
 *            inner gradient step */
#ifndef SECOND_ORDER_H
#define SECOND_ORDER_H

#include "nabla.h"
#include "nabla/data.h"

typedef struct example_options {
    const char *data_dir;
    int steps;               /* Newton steps, or training steps of penalty and maml; 0: each default */
    uint64_t seed;
} example_options;

/* H v for the loss's parameters: the gradient recorded on the tape, then
 * the gradient of <gradient, v>. grads (optional) receives the gradient. */
int hessian_vector_product(nb_tape *tape, nb_tensor *loss, int n, nb_tensor *const *params,
                           nb_tensor *const *v, nb_tensor **hv, nb_tensor **grads);

/* Images first .. first + count - 1 as float64 [count, 784] rows
 * (normalised like the loader) and their int32 labels: persistent tensors
 * the caller frees. */
int dataset_rows(const nb_dataset *data, int64_t first, int64_t count, nb_tensor **rows,
                 nb_tensor **labels);

int run_hvp(const example_options *o);
int run_newton(const example_options *o);
int run_penalty(const example_options *o);
int run_maml(const example_options *o);

#endif
