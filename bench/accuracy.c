/* nabla-bench --model NAME --epochs E: trains the benchmark model for E
 * whole epochs as the timed training steps do (same optimizer, batch and
 * loader), then reports the test accuracy, so that a setting's effect on
 * the model's quality (--precision bf16) is measured with its speed. */
#include <stdio.h>

#include "bench/bench.h"
#include "nabla/data.h"

enum { EVAL_BATCH = 256 };

static double test_accuracy(bench_model *m, const nb_dataset *test, nb_tape *tape)
{
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = EVAL_BATCH;
    lo.shuffle = false;
    nb_loader *loader = nb_loader_new(test, &lo);
    if (!loader) return -1.0;
    nb_module_train(m->module, false);
    bool was = nb_tape_set_grad_enabled(tape, false);
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    while (nb_loader_next(loader, tape, &x, &y) == 1) {
        nb_tensor *logits = nb_module_forward(m->module, tape, x);
        if (!logits) break;
        const float *z = logits->data;
        const int32_t *labels = y->data;
        int64_t rows = logits->shape[0], classes = logits->shape[1];
        for (int64_t r = 0; r < rows; r++) {
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (z[r * classes + c] > z[r * classes + best]) best = c;
            correct += best == labels[r];
        }
        seen += rows;
        nb_tape_reset(tape);
    }
    nb_tape_set_grad_enabled(tape, was);
    nb_module_train(m->module, true);
    nb_loader_free(loader);
    return seen == test->count ? 100.0 * (double)correct / (double)seen : -1.0;
}

int bench_epochs(const char *name, const bench_options *o, bench_model *m, const nb_dataset *train,
                 const nb_dataset *test, int epochs)
{
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = o->batch;
    if (o->seed != 0) lo.seed = o->seed;
    nb_loader *loader = nb_loader_new(train, &lo);
    nb_tape *tape = nb_tape_new();
    int status = loader && tape ? 0 : -1;
    if (tape) nb_tape_set_precision(tape, o->bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    nb_module_train(m->module, true);
    double start = bench_now(), loss = 0.0;
    for (int e = 0; e < epochs && status == 0; e++) {
        nb_tensor *x, *y;
        int got;
        while (status == 0 && (got = nb_loader_next(loader, tape, &x, &y)) == 1) {
            nb_tensor *out = nb_cross_entropy(tape, nb_module_forward(m->module, tape, x), y);
            nb_optimizer_zero_grad(m->optimizer);
            if (!out || nb_backward(tape, out, NULL) != NB_OK ||
                nb_optimizer_step(m->optimizer) != NB_OK)
                status = -1;
            else loss = nb_tensor_get(out, 0);
            nb_tape_reset(tape);
        }
        if (got < 0) status = -1;
    }
    double seconds = bench_now() - start;
    double accuracy = status == 0 ? test_accuracy(m, test, tape) : -1.0;
    if (status == 0 && accuracy >= 0.0) {
        const char *precision = o->bf16 ? "bf16" : "fp32";
        if (o->json)
            printf("{\"bench\":\"epochs\",\"model\":\"%s\",\"precision\":\"%s\",\"threads\":%d,"
                   "\"batch\":%lld,\"epochs\":%d,\"seconds\":%.2f,\"final_loss\":%.6f,"
                   "\"test_accuracy\":%.2f}\n", name, precision, nb_get_num_threads(),
                   (long long)o->batch, epochs, seconds, loss, accuracy);
        else
            printf("train %s %s threads %d batch %lld, %d epochs: %.1f s, final loss %.4f, "
                   "test accuracy %.2f%%\n", name, precision, nb_get_num_threads(),
                   (long long)o->batch, epochs, seconds, loss, accuracy);
    } else {
        const char *error = tape ? nb_tape_error(tape) : NULL;
        fprintf(stderr, "nabla-bench: %s epochs: %s\n", name, error ? error : nb_last_error());
    }
    nb_tape_free(tape);
    nb_loader_free(loader);
    return status == 0 && accuracy >= 0.0 ? 0 : 1;
}
