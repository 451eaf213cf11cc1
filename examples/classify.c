/* classify: loads a LeNet-5 saved by `lenet5 --save FILE` and classifies
 * images from the Fashion-MNIST test set.
 *   classify MODEL.safetensors [--data DIR] [--first N] [--show K] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lenet5.h"
#include "nabla/data.h"

static const char *const NAMES[10] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/* A 28x28 image as 14 rows of characters, darker glyphs for brighter pixels. */
static void show(const uint8_t *pixels)
{
    static const char shades[] = " .:-=+*#%@";
    for (int r = 0; r < 28; r += 2) {
        for (int c = 0; c < 28; c++) putchar(shades[pixels[r * 28 + c] * 9 / 255]);
        putchar('\n');
    }
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *dir = "/usr/share/datasets/fashion-mnist";
    int64_t first = 1000;
    int show_count = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) dir = argv[++i];
        else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) first = atoll(argv[++i]);
        else if (strcmp(argv[i], "--show") == 0 && i + 1 < argc) show_count = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !model_path) model_path = argv[i];
        else {
            fprintf(stderr, "usage: classify MODEL.safetensors [--data DIR] [--first N] [--show K]\n");
            return 2;
        }
    }
    if (!model_path || first < 1) {
        fprintf(stderr, "usage: classify MODEL.safetensors [--data DIR] [--first N] [--show K]\n");
        return 2;
    }
    nb_dataset test = {0};
    nb_module *model = lenet5_new();
    nb_tape *tape = nb_tape_new();
    if (!model || !tape || nb_module_load(model, model_path) != NB_OK || nb_mnist_load(dir, "test", &test) != NB_OK) {
        fprintf(stderr, "classify: %s\n", nb_last_error());
        return 1;
    }
    if (first > test.count) first = test.count;
    nb_module_train(model, false);
    nb_tape_set_grad_enabled(tape, false);
    int64_t correct = 0;
    const int64_t pixels = 28 * 28;
    for (int64_t i = 0; i < first; i++) {
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 28, 28}, NULL);
        if (!x) break;
        float *xd = x->data;
        for (int64_t p = 0; p < pixels; p++)
            xd[p] = (float)((test.images[i * pixels + p] / 255.0 - NB_FASHION_MNIST_MEAN) / NB_FASHION_MNIST_STD);
        nb_tensor *probabilities = nb_softmax(tape, nb_module_forward(model, tape, x), -1);
        if (!probabilities) {
            fprintf(stderr, "classify: %s\n", nb_tape_error(tape));
            return 1;
        }
        int best = 0;
        for (int c = 1; c < 10; c++)
            if (nb_tensor_get(probabilities, c) > nb_tensor_get(probabilities, best)) best = c;
        correct += best == test.labels[i];
        if (i < show_count) {
            show(test.images + i * pixels);
            printf("image %lld: predicted %s (%.1f%%), true %s\n\n", (long long)i, NAMES[best],
                   100 * nb_tensor_get(probabilities, best), NAMES[test.labels[i]]);
        }
        nb_tape_reset(tape);
    }
    printf("accuracy on the first %lld test images: %.2f%%\n", (long long)first, 100.0 * (double)correct / (double)first);
    nb_tape_free(tape);
    nb_module_free(model);
    nb_dataset_free(&test);
    return 0;
}
