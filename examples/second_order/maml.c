/* MAML (Finn et al., 2017) on sine regression: a task is y = A sin(x - phase)
 * with A in [0.1, 5], phase in [0, pi], x in [-5, 5]. A 1-40-40-1 ReLU
 * network takes one inner gradient step on 10 support points,
 *     theta' = theta - alpha d L_support(theta) / d theta,
 * and the outer loss L_query(theta') is differentiated with respect to
 * theta through that step (the inner gradient is recorded on the tape).
 * The outer gradient is first checked against central differences; the
 * query loss of new tasks after one inner step, before and after
 * meta-training, shows what the meta-learned start buys. float64. */
#include <math.h>
#include <stdio.h>

#include "second_order.h"

enum { LAYERS = 3, PARAMS = 2 * LAYERS, POINTS = 10, META_BATCH = 4, DEFAULT_STEPS = 8000,
       EVAL_TASKS = 200 };
static const double INNER_LR = 0.01, OUTER_LR = 1e-3;

typedef struct task {
    double amplitude, phase;
} task;

static const double PI = 3.14159265358979323846;

static task random_task(nb_rng *rng)
{
    task t;
    t.amplitude = 0.1 + 4.9 * nb_rng_uniform(rng);
    t.phase = PI * nb_rng_uniform(rng);
    return t;
}

/* points inputs [POINTS,1] and targets of a task, on the tape */
static void sample_points(nb_tape *tape, const task *t, nb_rng *rng, nb_tensor **x, nb_tensor **y)
{
    const int64_t shape[2] = {POINTS, 1};
    *x = nb_tape_tensor(tape, NB_FLOAT64, 2, shape, NULL);
    *y = nb_tape_tensor(tape, NB_FLOAT64, 2, shape, NULL);
    for (int i = 0; i < POINTS; i++) {
        double xi = -5 + 10 * nb_rng_uniform(rng);
        nb_tensor_set(*x, i, xi);
        nb_tensor_set(*y, i, t->amplitude * sin(xi - t->phase));
    }
}

/* mean squared error of the network with parameters p (weights and biases) */
static nb_tensor *loss_of(nb_tape *tape, nb_tensor *const *p, nb_tensor *x, nb_tensor *y)
{
    nb_tensor *h = x;
    for (int l = 0; l < LAYERS; l++) {
        h = nb_linear(tape, h, p[2 * l], p[2 * l + 1]);
        if (l + 1 < LAYERS) h = nb_relu(tape, h);
    }
    nb_tensor *d = nb_sub(tape, h, y);
    return nb_mean(tape, nb_mul(tape, d, d));
}

/* theta' = theta - alpha g, with g recorded when `create_graph`. */
static int inner_step(nb_tape *tape, nb_tensor *const *theta, nb_tensor *x, nb_tensor *y,
                      unsigned create_graph, nb_tensor **adapted)
{
    nb_tensor *loss = loss_of(tape, theta, x, y), *g[PARAMS];
    if (!loss || nb_grad(tape, 1, &loss, NULL, PARAMS, theta, g, create_graph) != NB_OK) return -1;
    for (int i = 0; i < PARAMS; i++) adapted[i] = nb_sub(tape, theta[i], nb_mul_scalar(tape, g[i], INNER_LR));
    return 0;
}

/* The meta-loss of a batch of tasks: mean over tasks of L_query(theta'). */
static nb_tensor *meta_loss(nb_tape *tape, nb_tensor *const *theta, const task *tasks, nb_rng *rng)
{
    nb_tensor *total = NULL;
    for (int k = 0; k < META_BATCH; k++) {
        nb_tensor *xs, *ys, *xq, *yq, *adapted[PARAMS];
        sample_points(tape, &tasks[k], rng, &xs, &ys);
        sample_points(tape, &tasks[k], rng, &xq, &yq);
        if (inner_step(tape, theta, xs, ys, NB_GRAD_CREATE_GRAPH, adapted) != 0) return NULL;
        nb_tensor *query = loss_of(tape, adapted, xq, yq);
        total = total ? nb_add(tape, total, query) : query;
    }
    return nb_mul_scalar(tape, total, 1.0 / META_BATCH);
}

/* One outer-gradient element against central differences of the meta-loss
 * (same tasks and points: the generator is restarted from a copy). */
static int check_outer_gradient(nb_tensor *const *theta, const task *tasks, const nb_rng *points)
{
    nb_tape *tape = nb_tape_new();
    nb_rng rng = *points;
    nb_tensor *loss = meta_loss(tape, theta, tasks, &rng), *g[PARAMS];
    if (!loss || nb_grad(tape, 1, &loss, NULL, PARAMS, theta, g, 0) != NB_OK) return -1;
    double worst = 0;
    const double eps = 1e-6;
    for (int i = 0; i < PARAMS; i++) {
        int64_t j = theta[i]->numel / 2;
        double saved = nb_tensor_get(theta[i], j), side[2];
        for (int s = 0; s < 2; s++) {
            nb_tensor_set(theta[i], j, saved + (s ? -eps : eps));
            rng = *points;
            nb_tensor *shifted = meta_loss(tape, theta, tasks, &rng);
            if (!shifted) return -1;
            side[s] = nb_tensor_get(shifted, 0);
        }
        nb_tensor_set(theta[i], j, saved);
        double numeric = (side[0] - side[1]) / (2 * eps), analytic = nb_tensor_get(g[i], j);
        double e = fabs(analytic - numeric) / fmax(fabs(numeric), 1e-8);
        if (e > worst) worst = e;
    }
    printf("maml: outer gradient through the inner step vs central differences, worst relative "
           "error over %d elements: %.2e\n", PARAMS, worst);
    nb_tape_free(tape);
    if (worst < 1e-5) return 0;
    return nb_fail(NB_ERR_INVALID, "the outer gradient disagrees with differences of the meta-loss");
}

/* Query loss of new tasks before and after one plain inner step. */
static int evaluate(nb_tensor *const *theta, uint64_t seed, double *before, double *after)
{
    nb_tape *tape = nb_tape_new();
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    *before = *after = 0;
    for (int k = 0; k < EVAL_TASKS; k++) {
        task t = random_task(&rng);
        nb_tensor *xs, *ys, *xq, *yq, *adapted[PARAMS];
        sample_points(tape, &t, &rng, &xs, &ys);
        sample_points(tape, &t, &rng, &xq, &yq);
        if (inner_step(tape, theta, xs, ys, 0, adapted) != 0) return -1;
        nb_tensor *l0 = loss_of(tape, theta, xq, yq), *l1 = loss_of(tape, adapted, xq, yq);
        if (!l0 || !l1) return -1;
        *before += nb_tensor_get(l0, 0) / EVAL_TASKS;
        *after += nb_tensor_get(l1, 0) / EVAL_TASKS;
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    return 0;
}

int run_maml(const example_options *o)
{
    nb_rng rng;
    nb_rng_seed(&rng, o->seed);
    const int64_t sizes[LAYERS + 1] = {1, 40, 40, 1};
    nb_tensor *theta[PARAMS];
    for (int l = 0; l < LAYERS; l++) {
        /* PyTorch's nn.Linear init: U(-1/sqrt(in), 1/sqrt(in)) */
        double bound = 1 / sqrt((double)sizes[l]);
        const int64_t w[2] = {sizes[l + 1], sizes[l]}, b[1] = {sizes[l + 1]};
        theta[2 * l] = nb_tensor_uniform(NB_FLOAT64, 2, w, -bound, bound, &rng);
        theta[2 * l + 1] = nb_tensor_uniform(NB_FLOAT64, 1, b, -bound, bound, &rng);
    }
    for (int i = 0; i < PARAMS; i++) nb_tensor_set_requires_grad(theta[i], true);
    task tasks[META_BATCH];
    for (int k = 0; k < META_BATCH; k++) tasks[k] = random_task(&rng);
    if (check_outer_gradient(theta, tasks, &rng) != 0) return -1;
    double before, after;
    if (evaluate(theta, o->seed + 99, &before, &after) != 0) return -1;
    printf("maml: new tasks' query MSE before meta-training: %.4f, after one inner step %.4f\n",
           before, after);
    nb_adam_options options = nb_adam_defaults(OUTER_LR);
    nb_optimizer *adam = nb_adam_new(theta, PARAMS, &options);
    nb_tape *tape = nb_tape_new();
    int steps = o->steps > 0 ? o->steps : DEFAULT_STEPS;
    double sum = 0;
    for (int step = 1; step <= steps; step++) {
        for (int k = 0; k < META_BATCH; k++) tasks[k] = random_task(&rng);
        nb_tensor *loss = meta_loss(tape, theta, tasks, &rng);
        nb_optimizer_zero_grad(adam);
        if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(adam) != NB_OK)
            return -1;
        sum += nb_tensor_get(loss, 0);
        if (step % 500 == 0 || step == steps) {
            int span = step % 500 ? step % 500 : 500;
            printf("maml: step %5d  meta-loss (query MSE after the inner step) %.4f\n", step, sum / span);
            sum = 0;
        }
        nb_tape_reset(tape);
    }
    if (evaluate(theta, o->seed + 99, &before, &after) != 0) return -1;
    printf("maml: new tasks' query MSE after meta-training: %.4f, after one inner step %.4f\n",
           before, after);
    nb_tape_free(tape);
    nb_optimizer_free(adam);
    for (int i = 0; i < PARAMS; i++) nb_tensor_free(theta[i]);
    return 0;
}
