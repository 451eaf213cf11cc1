/* siamese: weight sharing. One convolutional embedding network is applied
 * to both images of a pair; a linear head on the squared difference of the
 * two embeddings says whether they show the same Fashion-MNIST class.
 * Gradients from both branches add up in the shared weights through the
 * tape alone.
 *   siamese [--data DIR] [--steps N] [--seed S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla.h"
#include "nabla/data.h"

enum { PAIRS = 64, SIDE = 28, PIXELS = SIDE * SIDE, CLASSES = 10, EMBEDDING = 32, EVAL_PAIRS = 2000 };

typedef struct pair_source {
    const nb_dataset *data;
    int64_t *by_class[CLASSES];   /* indices of each class */
    int64_t count[CLASSES];
} pair_source;

static int source_init(pair_source *s, const nb_dataset *data)
{
    memset(s, 0, sizeof *s);
    s->data = data;
    for (int c = 0; c < CLASSES; c++) {
        s->by_class[c] = malloc((size_t)data->count * sizeof(int64_t));
        if (!s->by_class[c]) return -1;
    }
    for (int64_t i = 0; i < data->count; i++) {
        int c = data->labels[i];
        s->by_class[c][s->count[c]++] = i;
    }
    return 0;
}

static void source_free(pair_source *s)
{
    for (int c = 0; c < CLASSES; c++) free(s->by_class[c]);
}

static void copy_image(const pair_source *s, int64_t index, float *out)
{
    const uint8_t *p = s->data->images + index * PIXELS;
    for (int i = 0; i < PIXELS; i++)
        out[i] = (float)((p[i] / 255.0 - NB_FASHION_MNIST_MEAN) / NB_FASHION_MNIST_STD);
}

/* n pairs, half of the same class, as arena tensors a, b [n,1,28,28] and
 * target [n,1] (1 = same class). */
static int make_pairs(const pair_source *s, nb_rng *rng, nb_tape *tape, int n, nb_tensor **a,
                      nb_tensor **b, nb_tensor **target)
{
    const int64_t image_shape[4] = {n, 1, SIDE, SIDE}, target_shape[2] = {n, 1};
    *a = nb_tape_tensor(tape, NB_FLOAT32, 4, image_shape, NULL);
    *b = nb_tape_tensor(tape, NB_FLOAT32, 4, image_shape, NULL);
    *target = nb_tape_tensor(tape, NB_FLOAT32, 2, target_shape, NULL);
    if (!*a || !*b || !*target) return -1;
    for (int i = 0; i < n; i++) {
        int first = (int)nb_rng_below(rng, CLASSES);
        bool same = i % 2 == 0;
        int second = same ? first : (first + 1 + (int)nb_rng_below(rng, CLASSES - 1)) % CLASSES;
        copy_image(s, s->by_class[first][nb_rng_below(rng, (uint64_t)s->count[first])], (float *)(*a)->data + i * PIXELS);
        copy_image(s, s->by_class[second][nb_rng_below(rng, (uint64_t)s->count[second])], (float *)(*b)->data + i * PIXELS);
        ((float *)(*target)->data)[i] = same ? 1.0f : 0.0f;
    }
    return 0;
}

static nb_tensor *embed(nb_module *net, nb_tape *tape, nb_tensor *x)
{
    return nb_module_forward(nb_module_child(net, "embedding"), tape, x);
}

/* logit = head((embed(a) - embed(b))^2): the same "embedding" weights twice. */
static nb_tensor *pair_logits(nb_module *net, nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *difference = nb_sub(tape, embed(net, tape, a), embed(net, tape, b));
    return nb_module_forward(nb_module_child(net, "head"), tape, nb_mul(tape, difference, difference));
}

static nb_module *siamese_new(void)
{
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_module *embedding = nb_nn_sequential(8, (nb_module *[]){
        nb_nn_conv2d(1, 8, 5, 5, NULL, true), nb_nn_relu(), nb_nn_max_pool2d(&pool),
        nb_nn_conv2d(8, 16, 5, 5, NULL, true), nb_nn_relu(), nb_nn_max_pool2d(&pool),
        nb_nn_flatten(1, -1), nb_nn_linear(16 * 4 * 4, EMBEDDING, true)});
    nb_module *net = nb_nn_container();
    if (!net || !nb_module_add(net, "embedding", embedding) ||
        !nb_module_add(net, "head", nb_nn_linear(EMBEDDING, 1, true))) {
        nb_module_free(net);
        return NULL;
    }
    return net;
}

static double pair_accuracy(nb_module *net, const pair_source *s, nb_tape *tape, uint64_t seed)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    bool was = nb_tape_set_grad_enabled(tape, false);
    int64_t correct = 0, seen = 0;
    for (int done = 0; done < EVAL_PAIRS; done += PAIRS) {
        nb_tensor *a, *b, *target;
        if (make_pairs(s, &rng, tape, PAIRS, &a, &b, &target) != 0) break;
        nb_tensor *logits = pair_logits(net, tape, a, b);
        if (!logits) break;
        for (int i = 0; i < PAIRS; i++)
            correct += (nb_tensor_get(logits, i) > 0) == (nb_tensor_get(target, i) > 0.5);
        seen += PAIRS;
        nb_tape_reset(tape);
    }
    nb_tape_set_grad_enabled(tape, was);
    return seen ? (double)correct / (double)seen : -1;
}

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    int steps = 600;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--steps") == 0) steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
    }
    nb_dataset train = {0}, test = {0};
    if (nb_mnist_load(dir, "train", &train) != NB_OK || nb_mnist_load(dir, "test", &test) != NB_OK) {
        fprintf(stderr, "siamese: %s\n", nb_last_error());
        return 1;
    }
    nb_manual_seed(seed);
    nb_module *net = siamese_new();
    pair_source train_pairs, test_pairs;
    nb_named_tensor named[16];
    nb_tensor *params[16];
    int count = nb_module_parameters(net, named, 16);
    for (int i = 0; i < count; i++) params[i] = named[i].tensor;
    nb_adam_options options = nb_adam_defaults(1e-3);
    nb_optimizer *adam = nb_adam_new(params, count, &options);
    nb_tape *tape = nb_tape_new();
    if (!net || !adam || !tape || source_init(&train_pairs, &train) || source_init(&test_pairs, &test)) {
        fprintf(stderr, "siamese: %s\n", nb_last_error());
        return 1;
    }
    printf("siamese: %d shared parameter tensors, accuracy of an untrained net %.1f%%\n", count,
           100 * pair_accuracy(net, &test_pairs, tape, seed + 1));
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    double loss_sum = 0;
    for (int step = 1; step <= steps; step++) {
        nb_tensor *a, *b, *target;
        make_pairs(&train_pairs, &rng, tape, PAIRS, &a, &b, &target);
        nb_tensor *loss = nb_binary_cross_entropy_with_logits(tape, pair_logits(net, tape, a, b), target);
        nb_optimizer_zero_grad(adam);
        if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(adam) != NB_OK) {
            fprintf(stderr, "siamese: %s\n", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
            return 1;
        }
        loss_sum += nb_tensor_get(loss, 0);
        if (step % 100 == 0) {
            printf("step %4d  loss %.4f\n", step, loss_sum / 100);
            loss_sum = 0;
        }
        nb_tape_reset(tape);
    }
    printf("same-class accuracy on %d test pairs: %.1f%%\n", EVAL_PAIRS,
           100 * pair_accuracy(net, &test_pairs, tape, seed + 1));
    source_free(&train_pairs);
    source_free(&test_pairs);
    nb_tape_free(tape);
    nb_optimizer_free(adam);
    nb_module_free(net);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return 0;
}
