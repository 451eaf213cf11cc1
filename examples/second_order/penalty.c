/* Input-gradient regularisation (double backpropagation): a small conv net
 * trained on Fashion-MNIST with
 *     loss + lambda * mean_i || d loss_i / d x_i ||^2,
 * the penalty's gradient flowing through the recorded input gradient. The
 * same net is trained with lambda 0 and lambda 10 from the same start; each
 * reports test accuracy and the mean input-gradient norm on test images. */
#include <math.h>
#include <stdio.h>

#include "second_order.h"

enum { BATCH = 64, DEFAULT_STEPS = 300, TEST_IMAGES = 2000 };

static nb_module *conv_net(void)
{
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_module *layers[] = {
        nb_nn_conv2d(1, 8, 5, 5, NULL, true), nb_nn_relu(), nb_nn_max_pool2d(&pool),
        nb_nn_conv2d(8, 16, 5, 5, NULL, true), nb_nn_relu(), nb_nn_max_pool2d(&pool),
        nb_nn_flatten(1, -1), nb_nn_linear(16 * 4 * 4, 10, true),
    };
    return nb_nn_sequential(8, layers);
}

/* The batch's mean loss and, recorded, its input gradient scaled to the
 * per-image losses' (d loss_i / d x_i = B d mean / d x_i). */
static int loss_and_input_gradient(nb_module *net, nb_tape *tape, nb_tensor *x, nb_tensor *labels,
                                   nb_tensor **logits, nb_tensor **loss, nb_tensor **gx)
{
    nb_tensor_set_requires_grad(x, true);
    *logits = nb_module_forward(net, tape, x);
    *loss = nb_cross_entropy(tape, *logits, labels);
    if (!*loss) return -1;
    nb_tensor *g;
    if (nb_grad(tape, 1, loss, NULL, 1, &x, &g, NB_GRAD_CREATE_GRAPH) != NB_OK) return -1;
    *gx = nb_mul_scalar(tape, g, (double)x->shape[0]);
    return *gx ? 0 : -1;
}

/* Test accuracy and mean per-image input-gradient norm. */
static int evaluate(nb_module *net, nb_tape *tape, nb_loader *test, double *accuracy, double *norm)
{
    int64_t correct = 0, seen = 0;
    double norms = 0;
    nb_tensor *x, *labels;
    while (seen < TEST_IMAGES && nb_loader_next(test, tape, &x, &labels) == 1) {
        nb_tensor *logits, *loss, *gx;
        if (loss_and_input_gradient(net, tape, x, labels, &logits, &loss, &gx) != 0) return -1;
        nb_tensor *predicted = nb_argmax(tape, logits, 1, false);
        int64_t B = x->shape[0], pixels = x->numel / B;
        for (int64_t i = 0; i < B; i++) {
            correct += nb_tensor_get(predicted, i) == nb_tensor_get(labels, i);
            double s = 0;
            for (int64_t k = 0; k < pixels; k++) s += pow(nb_tensor_get(gx, i * pixels + k), 2);
            norms += sqrt(s);
        }
        seen += B;
        nb_tape_reset(tape);
    }
    *accuracy = 100.0 * (double)correct / (double)seen;
    *norm = norms / (double)seen;
    return 0;
}

static int train(const example_options *o, double lambda, const nb_dataset *train_set,
                 const nb_dataset *test_set)
{
    nb_manual_seed(o->seed);
    nb_module *net = conv_net();
    nb_named_tensor named[16];
    nb_tensor *params[16];
    int count = nb_module_parameters(net, named, 16);
    for (int i = 0; i < count; i++) params[i] = named[i].tensor;
    nb_adam_options adam_options = nb_adam_defaults(1e-3);
    nb_optimizer *adam = nb_adam_new(params, count, &adam_options);
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = BATCH;
    lo.seed = o->seed;
    nb_loader *loader = nb_loader_new(train_set, &lo);
    lo.shuffle = false;
    lo.batch_size = 500;
    nb_loader *test = nb_loader_new(test_set, &lo);
    nb_tape *tape = nb_tape_new();
    if (!net || !adam || !loader || !test || !tape) return -1;
    int steps = o->steps > 0 ? o->steps : DEFAULT_STEPS;
    double loss_sum = 0, penalty_sum = 0;
    for (int step = 1; step <= steps; step++) {
        nb_tensor *x, *labels, *logits, *loss, *gx;
        /* 0 ends an epoch: the next call starts the next one. */
        if (nb_loader_next(loader, tape, &x, &labels) != 1 &&
            nb_loader_next(loader, tape, &x, &labels) != 1)
            return -1;
        if (loss_and_input_gradient(net, tape, x, labels, &logits, &loss, &gx) != 0) return -1;
        /* mean_i ||g_i||^2 = sum(g^2) / B */
        nb_tensor *penalty = nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, gx, gx)),
                                           1.0 / (double)x->shape[0]);
        nb_tensor *total = nb_add(tape, loss, nb_mul_scalar(tape, penalty, lambda));
        nb_optimizer_zero_grad(adam);
        if (!total || nb_backward(tape, total, NULL) != NB_OK || nb_optimizer_step(adam) != NB_OK)
            return -1;
        loss_sum += nb_tensor_get(loss, 0);
        penalty_sum += nb_tensor_get(penalty, 0);
        if (step % 100 == 0 || step == steps) {
            int span = step % 100 ? step % 100 : 100;
            printf("penalty: lambda %g  step %4d  loss %.4f  mean |dloss_i/dx_i|^2 %.4f\n", lambda,
                   step, loss_sum / span, penalty_sum / span);
            loss_sum = penalty_sum = 0;
        }
        nb_tape_reset(tape);
    }
    double accuracy, norm;
    if (evaluate(net, tape, test, &accuracy, &norm) != 0) return -1;
    printf("penalty: lambda %g  test accuracy %.2f%% (%d images)  mean |dloss_i/dx_i| %.4f\n",
           lambda, accuracy, TEST_IMAGES, norm);
    nb_tape_free(tape);
    nb_loader_free(loader);
    nb_loader_free(test);
    nb_optimizer_free(adam);
    nb_module_free(net);
    return 0;
}

int run_penalty(const example_options *o)
{
    nb_dataset train_set = {0}, test_set = {0};
    if (nb_mnist_load(o->data_dir, "train", &train_set) != NB_OK ||
        nb_mnist_load(o->data_dir, "test", &test_set) != NB_OK)
        return -1;
    int status = train(o, 0.0, &train_set, &test_set);
    if (status == 0) status = train(o, 10.0, &train_set, &test_set);
    nb_dataset_free(&train_set);
    nb_dataset_free(&test_set);
    return status;
}
