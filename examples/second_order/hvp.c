/* Hessian-vector products: (1) on a 784-64-10 tanh MLP, against central
 * differences of the gradient along v (tanh, not ReLU: a ReLU net's
 * gradient jumps where a pre-activation crosses 0, which differences of
 * gradients cannot see past); (2) Newton-CG on multinomial
 * logistic regression over 5,000 Fashion-MNIST images: each Newton step
 * solves (H + damping) d = -g by conjugate gradients, every H v from the
 * same recorded gradient. */
#include <math.h>
#include <stdio.h>

#include "second_order.h"

enum { MAX_PARAMS = 4 };

/* Flat views of a list of tensors. */
static int64_t total_numel(int n, nb_tensor *const *t)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += t[i]->numel;
    return total;
}

static void gather_values(int n, nb_tensor *const *t, double *out)
{
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < t[i]->numel; j++) *out++ = nb_tensor_get(t[i], j);
}

static void scatter_values(int n, nb_tensor *const *t, const double *in)
{
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < t[i]->numel; j++) nb_tensor_set(t[i], j, *in++);
}

static nb_tensor *mlp_loss(nb_tape *tape, nb_tensor *x, nb_tensor *labels, nb_tensor *const *p)
{
    nb_tensor *h = nb_tanh(tape, nb_linear(tape, x, p[0], p[1]));
    return nb_cross_entropy(tape, nb_linear(tape, h, p[2], p[3]), labels);
}

static nb_tensor *parameter(nb_dtype dtype, int ndim, const int64_t *shape, double bound, nb_rng *rng)
{
    nb_tensor *t = nb_tensor_uniform(dtype, ndim, shape, -bound, bound, rng);
    if (t) nb_tensor_set_requires_grad(t, true);
    return t;
}

/* The loss's gradient at the parameters' current values, flattened. */
static int gradient_at(nb_tape *tape, nb_tensor *x, nb_tensor *labels, nb_tensor *const *p,
                       double *out)
{
    nb_tensor *g[MAX_PARAMS];
    nb_tensor *loss = mlp_loss(tape, x, labels, p);
    if (!loss || nb_grad(tape, 1, &loss, NULL, MAX_PARAMS, p, g, 0) != NB_OK) return -1;
    gather_values(MAX_PARAMS, g, out);
    return 0;
}

int run_hvp(const example_options *o)
{
    nb_dataset train = {0};
    if (nb_mnist_load(o->data_dir, "train", &train) != NB_OK) return -1;
    nb_rng rng;
    nb_rng_seed(&rng, o->seed);
    const int64_t w1[2] = {64, 784}, b1[1] = {64}, w2[2] = {10, 64}, b2[1] = {10};
    nb_tensor *p[MAX_PARAMS] = {parameter(NB_FLOAT64, 2, w1, 1 / sqrt(784.0), &rng),
                                parameter(NB_FLOAT64, 1, b1, 1 / sqrt(784.0), &rng),
                                parameter(NB_FLOAT64, 2, w2, 1 / 8.0, &rng),
                                parameter(NB_FLOAT64, 1, b2, 1 / 8.0, &rng)};
    nb_tape *tape = nb_tape_new();
    nb_tensor *x, *labels, *v[MAX_PARAMS], *hv[MAX_PARAMS];
    int status = dataset_rows(&train, 0, 256, &x, &labels);
    for (int i = 0; i < MAX_PARAMS && status == NB_OK; i++) {
        v[i] = nb_tape_tensor(tape, NB_FLOAT64, p[i]->ndim, p[i]->shape, NULL);
        for (int64_t j = 0; j < v[i]->numel; j++) nb_tensor_set(v[i], j, nb_rng_normal(&rng));
    }
    nb_tensor *loss = status == NB_OK ? mlp_loss(tape, x, labels, p) : NULL;
    if (!loss || hessian_vector_product(tape, loss, MAX_PARAMS, p, v, hv, NULL) != NB_OK) return -1;
    int64_t count = total_numel(MAX_PARAMS, p);
    double *theta = nb_malloc((size_t)count * 5 * sizeof *theta);
    double *direction = theta + count, *plus = direction + count, *minus = plus + count;
    double *analytic = minus + count;
    gather_values(MAX_PARAMS, p, theta);
    gather_values(MAX_PARAMS, v, direction);
    gather_values(MAX_PARAMS, hv, analytic);
    const double eps = 1e-6;
    for (int side = 0; side < 2; side++) {
        double *shifted = side ? minus : plus;
        for (int64_t k = 0; k < count; k++) shifted[k] = theta[k] + (side ? -eps : eps) * direction[k];
        scatter_values(MAX_PARAMS, p, shifted);
        if (gradient_at(tape, x, labels, p, shifted) != 0) return -1;
    }
    scatter_values(MAX_PARAMS, p, theta);
    double diff = 0, norm = 0, worst = 0;
    for (int64_t k = 0; k < count; k++) {
        double numeric = (plus[k] - minus[k]) / (2 * eps), e = fabs(analytic[k] - numeric);
        diff += e * e;
        norm += numeric * numeric;
        if (e > worst) worst = e;
    }
    printf("hvp: 784-64-10 tanh MLP, %lld parameters, cross-entropy on 256 images (float64)\n"
           "hvp: |Hv - (g(t+eps v) - g(t-eps v))/2eps| / |...| = %.2e, max element error %.2e\n",
           (long long)count, sqrt(diff / norm), worst);
    nb_free(theta);
    double relative = sqrt(diff / norm);
    if (!(relative < 1e-6)) nb_fail(NB_ERR_INVALID, "H v disagrees with differences of gradients");
    for (int i = 0; i < MAX_PARAMS; i++) nb_tensor_free(p[i]);
    nb_tensor_free(x);
    nb_tensor_free(labels);
    nb_tape_free(tape);
    nb_dataset_free(&train);
    return relative < 1e-6 ? 0 : -1;
}
