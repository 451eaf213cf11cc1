/* Newton-CG on multinomial logistic regression (a linear layer and
 * cross-entropy, L2 weight 1e-4) over the first 5,000 Fashion-MNIST
 * training images, in float64. Each step records the gradient once, then
 * conjugate gradients solve (H + damping I) d = -g with Hessian-vector
 * products from that one recorded gradient, and a backtracking line search
 * takes the step. Test accuracy on the 10,000 test images after each. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "second_order.h"

enum { TRAIN = 10000, CG_ITERATIONS = 25, DEFAULT_STEPS = 6 };
static const double L2 = 1e-2, DAMPING = 1e-3, CG_TOLERANCE = 1e-3;

typedef struct problem {
    nb_tensor *x, *labels;     /* training rows and classes */
    nb_tensor *p[2];           /* weight [10,784], bias [10] */
    int64_t count;             /* parameters */
} problem;

static nb_tensor *objective(nb_tape *tape, const problem *pr)
{
    nb_tensor *loss = nb_cross_entropy(tape, nb_linear(tape, pr->x, pr->p[0], pr->p[1]), pr->labels);
    nb_tensor *w = pr->p[0];
    return nb_add(tape, loss, nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, w, w)), 0.5 * L2));
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Tape tensors shaped like the parameters holding `flat`. */
static void as_tensors(nb_tape *tape, const problem *pr, const double *flat, nb_tensor **out)
{
    for (int i = 0; i < 2; i++) {
        out[i] = nb_tape_tensor(tape, NB_FLOAT64, pr->p[i]->ndim, pr->p[i]->shape, flat);
        flat += pr->p[i]->numel;
    }
}

static void flatten(nb_tensor *const *t, double *out)
{
    for (int i = 0; i < 2; i++) {
        memcpy(out, t[i]->data, (size_t)t[i]->numel * sizeof *out);
        out += t[i]->numel;
    }
}

/* d ~ -(H + damping)^-1 g by conjugate gradients; returns the iterations. */
static int conjugate_gradients(nb_tape *tape, const problem *pr, nb_tensor *const *g_graph,
                               const double *g, double *d, double *work)
{
    int64_t n = pr->count;
    double *r = work, *q = r + n, *hq = q + n;
    for (int64_t i = 0; i < n; i++) d[i] = 0, r[i] = -g[i], q[i] = r[i];
    double rr = dot(r, r, n), stop = CG_TOLERANCE * CG_TOLERANCE * rr;
    int k = 0;
    for (; k < CG_ITERATIONS && rr > stop; k++) {
        nb_tensor *v[2], *hv[2];
        as_tensors(tape, pr, q, v);
        if (nb_grad(tape, 2, g_graph, v, 2, pr->p, hv, 0) != NB_OK) return -1;
        flatten(hv, hq);
        for (int64_t i = 0; i < n; i++) hq[i] += DAMPING * q[i];
        double alpha = rr / dot(q, hq, n);
        for (int64_t i = 0; i < n; i++) d[i] += alpha * q[i], r[i] -= alpha * hq[i];
        double rr_next = dot(r, r, n);
        for (int64_t i = 0; i < n; i++) q[i] = r[i] + rr_next / rr * q[i];
        rr = rr_next;
    }
    return k;
}

static double accuracy(nb_tape *tape, const problem *pr, nb_tensor *x, const nb_dataset *test)
{
    bool was = nb_tape_set_grad_enabled(tape, false);
    nb_tensor *predicted = nb_argmax(tape, nb_linear(tape, x, pr->p[0], pr->p[1]), 1, false);
    nb_tape_set_grad_enabled(tape, was);
    if (!predicted) return -1;
    int64_t correct = 0;
    for (int64_t i = 0; i < test->count; i++)
        correct += nb_tensor_get(predicted, i) == test->labels[i];
    return 100.0 * (double)correct / (double)test->count;
}

/* The objective with the parameters set to theta (they keep it). */
static double loss_at(nb_tape *tape, const problem *pr, const double *theta)
{
    for (int i = 0; i < 2; i++) {
        memcpy(pr->p[i]->data, theta, (size_t)pr->p[i]->numel * sizeof *theta);
        theta += pr->p[i]->numel;
    }
    bool was = nb_tape_set_grad_enabled(tape, false);
    nb_tensor *loss = objective(tape, pr);
    nb_tape_set_grad_enabled(tape, was);
    return loss ? nb_tensor_get(loss, 0) : NAN;
}

int run_newton(const example_options *o)
{
    nb_dataset train = {0}, test = {0};
    if (nb_mnist_load(o->data_dir, "train", &train) != NB_OK ||
        nb_mnist_load(o->data_dir, "test", &test) != NB_OK)
        return -1;
    problem pr = {0};
    const int64_t ws[2] = {10, 784}, bs[1] = {10};
    pr.p[0] = nb_tensor_zeros(NB_FLOAT64, 2, ws);
    pr.p[1] = nb_tensor_zeros(NB_FLOAT64, 1, bs);
    nb_tensor_set_requires_grad(pr.p[0], true);
    nb_tensor_set_requires_grad(pr.p[1], true);
    pr.count = 10 * 784 + 10;
    nb_tape *tape = nb_tape_new();
    nb_tensor *test_x, *test_labels;
    if (dataset_rows(&train, 0, TRAIN, &pr.x, &pr.labels) != NB_OK ||
        dataset_rows(&test, 0, test.count, &test_x, &test_labels) != NB_OK)
        return -1;
    double *buffers = nb_malloc((size_t)pr.count * 7 * sizeof *buffers);
    double *theta = buffers, *g = theta + pr.count, *d = g + pr.count, *trial = d + pr.count;
    double *work = trial + pr.count;
    printf("newton: logistic regression, %lld parameters, %d images, L2 %.0e, damping %.0e\n",
           (long long)pr.count, TRAIN, L2, DAMPING);
    flatten(pr.p, theta);
    double first = loss_at(tape, &pr, theta), last = first;
    printf("newton: step 0  loss %.5f  test accuracy %.2f%%\n", first,
           accuracy(tape, &pr, test_x, &test));
    nb_tape_reset(tape);
    int steps = o->steps > 0 ? o->steps : DEFAULT_STEPS;
    for (int step = 1; step <= steps; step++) {
        nb_tensor *loss = objective(tape, &pr), *g_graph[2];
        if (!loss || nb_grad(tape, 1, &loss, NULL, 2, pr.p, g_graph, NB_GRAD_CREATE_GRAPH) != NB_OK)
            return -1;
        double f = nb_tensor_get(loss, 0);
        flatten(g_graph, g);
        flatten(pr.p, theta);
        int iterations = conjugate_gradients(tape, &pr, g_graph, g, d, work);
        if (iterations < 0) return -1;
        /* Backtracking (Armijo): halve t until the loss falls enough. */
        double t = 1.0, slope = dot(g, d, pr.count), next = f;
        for (int tries = 0; tries < 20; tries++, t *= 0.5) {
            for (int64_t i = 0; i < pr.count; i++) trial[i] = theta[i] + t * d[i];
            next = loss_at(tape, &pr, trial);
            if (next <= f + 1e-4 * t * slope) break;
        }
        nb_tape_reset(tape);
        last = next;
        printf("newton: step %d  loss %.5f  |g| %.2e  CG iterations %2d  step size %.3g  test "
               "accuracy %.2f%%\n", step, next, sqrt(dot(g, g, pr.count)), iterations, t,
               accuracy(tape, &pr, test_x, &test));
        nb_tape_reset(tape);
    }
    nb_free(buffers);
    int status = last < first ? 0 : nb_fail(NB_ERR_INVALID, "Newton-CG did not lower the loss");
    nb_tensor_free(pr.p[0]);
    nb_tensor_free(pr.p[1]);
    nb_tensor_free(pr.x);
    nb_tensor_free(pr.labels);
    nb_tensor_free(test_x);
    nb_tensor_free(test_labels);
    nb_tape_free(tape);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return status;
}
