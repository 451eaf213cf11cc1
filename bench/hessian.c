/* Hessian-vector products against gradients (nabla-bench --hvp): the
 * 784-500-500-10 ReLU MLP with cross-entropy, float32, on a fixed random
 * batch. A gradient is the forward and nb_backward; a product H v is the
 * forward, the gradient recorded with NB_GRAD_CREATE_GRAPH and the
 * gradient of <gradient, v>. Rounds alternate the two, so both see the
 * same machine state; the medians and their ratio are printed. */
#include <stdio.h>

#include "bench/bench.h"

enum { LAYERS = 3, PARAMS = 2 * LAYERS };

typedef struct mlp {
    nb_tensor *p[PARAMS];
} mlp;

static nb_tensor *loss_of(nb_tape *tape, const mlp *m, nb_tensor *x, nb_tensor *labels)
{
    nb_tensor *h = x;
    for (int l = 0; l < LAYERS; l++) {
        h = nb_linear(tape, h, m->p[2 * l], m->p[2 * l + 1]);
        if (l + 1 < LAYERS) h = nb_relu(tape, h);
    }
    return nb_cross_entropy(tape, h, labels);
}

static int gradient_step(nb_tape *tape, const mlp *m, nb_tensor *x, nb_tensor *labels)
{
    nb_tensor *loss = loss_of(tape, m, x, labels);
    return loss ? nb_backward(tape, loss, NULL) : NB_ERR_INVALID;
}

static int product_step(nb_tape *tape, const mlp *m, nb_tensor *x, nb_tensor *labels,
                        nb_tensor *const *v)
{
    nb_tensor *loss = loss_of(tape, m, x, labels), *g[PARAMS], *hv[PARAMS];
    if (!loss) return NB_ERR_INVALID;
    int status = nb_grad(tape, 1, &loss, NULL, PARAMS, m->p, g, NB_GRAD_CREATE_GRAPH);
    return status == NB_OK ? nb_grad(tape, PARAMS, g, v, PARAMS, m->p, hv, NB_GRAD_ALLOW_UNUSED)
                           : status;
}

int bench_hessian(const bench_options *o)
{
    const int64_t sizes[LAYERS + 1] = {784, 500, 500, 10};
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    mlp m;
    nb_tensor *v_persistent[PARAMS];
    for (int l = 0; l < LAYERS; l++) {
        const int64_t w[2] = {sizes[l + 1], sizes[l]}, b[1] = {sizes[l + 1]};
        m.p[2 * l] = nb_tensor_uniform(NB_FLOAT32, 2, w, -0.04, 0.04, &rng);
        m.p[2 * l + 1] = nb_tensor_uniform(NB_FLOAT32, 1, b, -0.04, 0.04, &rng);
    }
    for (int i = 0; i < PARAMS; i++) {
        nb_tensor_set_requires_grad(m.p[i], true);
        v_persistent[i] = nb_tensor_normal(NB_FLOAT32, m.p[i]->ndim, m.p[i]->shape, 0, 1, &rng);
    }
    const int64_t xs[2] = {o->batch, 784};
    nb_tensor *x_data = nb_tensor_normal(NB_FLOAT32, 2, xs, 0, 1, &rng);
    int32_t *classes = nb_malloc((size_t)o->batch * sizeof *classes);
    for (int64_t i = 0; i < o->batch; i++) classes[i] = (int32_t)(i % 10);
    nb_tape *tape = nb_tape_new();
    int64_t rounds = o->steps > 0 ? o->steps : 30;
    double *gradient_times = nb_malloc((size_t)rounds * sizeof(double));
    double *product_times = nb_malloc((size_t)rounds * sizeof(double));
    int status = tape && x_data && classes && gradient_times && product_times ? NB_OK : NB_ERR_NOMEM;
    /* Warm-up: the arena grows to both steps' size once. */
    for (int64_t r = -2; r < rounds && status == NB_OK; r++) {
        for (int kind = 0; kind < 2 && status == NB_OK; kind++) {
            nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, xs, x_data->data);
            nb_tensor *labels = nb_tape_labels(tape, o->batch, classes);
            for (int i = 0; i < PARAMS; i++) nb_tensor_zero_grad(m.p[i]);
            double start = bench_now();
            status = kind == 0 ? gradient_step(tape, &m, x, labels)
                               : product_step(tape, &m, x, labels, v_persistent);
            double elapsed = bench_now() - start;
            if (r >= 0) (kind == 0 ? gradient_times : product_times)[r] = elapsed;
            nb_tape_reset(tape);
        }
    }
    if (status != NB_OK) {
        fprintf(stderr, "nabla-bench --hvp: %s\n", nb_last_error());
    } else {
        double gradient = bench_median(gradient_times, rounds);
        double product = bench_median(product_times, rounds);
        if (o->json)
            printf("{\"bench\": \"hvp\", \"model\": \"mlp-784-500-500-10\", \"batch\": %lld, "
                   "\"threads\": %d, \"gradient_ms\": %.3f, \"hvp_ms\": %.3f, \"ratio\": %.3f}\n",
                   (long long)o->batch, o->threads, 1e3 * gradient, 1e3 * product, product / gradient);
        else
            printf("784-500-500-10 MLP, batch %lld, %d thread(s), float32, median of %lld rounds:\n"
                   "  gradient (forward + backward)       %8.3f ms\n"
                   "  Hessian-vector product             %8.3f ms  (%.2fx the gradient)\n",
                   (long long)o->batch, o->threads, (long long)rounds, 1e3 * gradient, 1e3 * product,
                   product / gradient);
    }
    nb_free(gradient_times);
    nb_free(product_times);
    nb_free(classes);
    nb_tensor_free(x_data);
    for (int i = 0; i < PARAMS; i++) {
        nb_tensor_free(m.p[i]);
        nb_tensor_free(v_persistent[i]);
    }
    nb_tape_free(tape);
    return status == NB_OK ? 0 : 1;
}
