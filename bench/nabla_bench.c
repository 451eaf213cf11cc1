/* nabla-bench: training and inference throughput of the benchmark models
 * on real Fashion-MNIST batches, and micro-benchmarks of the kernels.
 *
 *   nabla-bench --model lenet5|convnet|mlp [--threads N] [--batch B]
 *               [--steps S] [--only train|infer] [--data DIR] [--synthetic]
 *   nabla-bench --model gpt|lstm [--threads N] [--batch B] [--steps S]
 *               [--data DIR] [--synthetic]   (tokens/s; DIR holds fortunes)
 *   nabla-bench --gemm N | --conv NAME|all | --pool NAME|all | --op NAME|all [--threads N]
 *   nabla-bench --hvp [--batch B] [--steps ROUNDS] [--threads N]
 *               (Hessian-vector product vs gradient, 784-500-500-10 MLP)
 *   --epochs E trains the model E whole epochs and prints its test accuracy;
 *   --precision bf16 runs the models' and --gemm's matrix products in bf16
 *   (nb_tape_set_precision); add --json for one JSON object per line; --verbose with --conv or
 *   --pool prints the path each shape runs (include/nabla/paths.h).
 *
 * A training step is what a training loop does: take the next batch from
 * the loader (uint8 -> normalised float32), forward, cross-entropy, zero the
 * gradients, backward, optimizer step, reset the tape. Warm-up steps (which
 * grow the arena and the GEMM scratch) are not timed. Inference runs the
 * model in eval mode with gradients off on test batches of 256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/bench.h"
#include "nabla/data.h"

enum { WARMUP_STEPS = 10, INFER_BATCH = 256 };

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double bench_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double bench_peak_rss_mb(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* KiB on Linux */
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *times, int64_t n)
{
    qsort(times, (size_t)n, sizeof *times, compare_doubles);
    return times[n / 2];
}

/* The next batch, starting a new epoch when one ends. */
static int next_batch(nb_loader *loader, nb_tape *tape, nb_tensor **x, nb_tensor **y)
{
    int status = nb_loader_next(loader, tape, x, y);
    if (status == 0) status = nb_loader_next(loader, tape, x, y);
    return status == 1 ? 0 : -1;
}

static int train_step(bench_model *m, nb_loader *loader, nb_tape *tape)
{
    nb_tensor *x, *y;
    if (next_batch(loader, tape, &x, &y) != 0) return -1;
    nb_tensor *loss = nb_cross_entropy(tape, nb_module_forward(m->module, tape, x), y);
    nb_optimizer_zero_grad(m->optimizer);
    if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(m->optimizer) != NB_OK)
        return -1;
    nb_tape_reset(tape);
    return 0;
}

static int infer_step(bench_model *m, nb_loader *loader, nb_tape *tape)
{
    nb_tensor *x, *y;
    if (next_batch(loader, tape, &x, &y) != 0) return -1;
    if (!nb_module_forward(m->module, tape, x)) return -1;
    nb_tape_reset(tape);
    return 0;
}

/* cpu: process CPU seconds (all threads) over the timed steps, which a
 * busy machine disturbs less than wall time. */
static void report(const char *kind, const char *model, const bench_options *o, int64_t batch,
                   int64_t steps, double seconds, double median, double cpu)
{
    double images = (double)batch * (double)steps / seconds;
    if (o->json)
        printf("{\"bench\":\"%s\",\"model\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"batch\":%lld,\"steps\":%lld,"
               "\"images_per_s\":%.1f,\"ms_per_step\":%.4f,\"ms_per_step_median\":%.4f,"
               "\"cpu_ms_per_step\":%.4f,\"peak_rss_mb\":%.1f}\n",
               kind, model, o->bf16 ? "bf16" : "fp32", nb_get_num_threads(), (long long)batch,
               (long long)steps, images,
               1e3 * seconds / (double)steps, 1e3 * median, 1e3 * cpu / (double)steps,
               bench_peak_rss_mb());
    else
        printf("%-5s %-8s %s threads %d batch %4lld: %9.0f images/s, %8.3f ms/step (median "
               "%.3f, CPU %.3f), peak RSS %.1f MiB\n",
               kind, model, o->bf16 ? "bf16" : "fp32", nb_get_num_threads(), (long long)batch, images,
               1e3 * seconds / (double)steps, 1e3 * median, 1e3 * cpu / (double)steps,
               bench_peak_rss_mb());
    fflush(stdout);
}

typedef int (*step_fn)(bench_model *m, nb_loader *loader, nb_tape *tape);

/* Warm-up, then `steps` timed steps; reports the total and the median. */
static int measure(const char *kind, const char *model, const bench_options *o, bench_model *m,
                   const nb_dataset *data, int64_t batch, step_fn step)
{
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = batch;
    lo.drop_last = true;
    nb_loader *loader = nb_loader_new(data, &lo);
    nb_tape *tape = nb_tape_new();
    if (tape) nb_tape_set_precision(tape, o->bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    double *times = malloc((size_t)o->steps * sizeof *times);
    int status = loader && tape && times ? 0 : -1;
    bool training = step == train_step;
    nb_module_train(m->module, training);
    bool was = tape ? nb_tape_set_grad_enabled(tape, training) : true;
    for (int i = 0; i < WARMUP_STEPS && status == 0; i++) status = step(m, loader, tape);
    double start = bench_now(), cpu_start = bench_cpu_now();
    for (int64_t i = 0; i < o->steps && status == 0; i++) {
        double t0 = bench_now();
        status = step(m, loader, tape);
        times[i] = bench_now() - t0;
    }
    double seconds = bench_now() - start, cpu = bench_cpu_now() - cpu_start;
    if (status == 0) {
        report(kind, model, o, batch, o->steps, seconds, bench_median(times, o->steps), cpu);
    } else {
        const char *error = tape ? nb_tape_error(tape) : NULL;
        fprintf(stderr, "nabla-bench: %s %s: %s\n", kind, model, error ? error : nb_last_error());
    }
    if (tape) nb_tape_set_grad_enabled(tape, was);
    free(times);
    nb_tape_free(tape);
    nb_loader_free(loader);
    return status == 0 ? 0 : 1;
}

/* Random images for machines without the dataset (--synthetic). */
static int synthetic(int64_t count, nb_dataset *out)
{
    *out = (nb_dataset){.count = count, .channels = 1, .height = 28, .width = 28,
                        .num_classes = 10};
    out->images = malloc((size_t)count * 28 * 28);
    out->labels = malloc((size_t)count);
    if (!out->images || !out->labels) return -1;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int64_t i = 0; i < count * 28 * 28; i++) out->images[i] = (uint8_t)nb_rng_below(&rng, 256);
    for (int64_t i = 0; i < count; i++) out->labels[i] = (uint8_t)nb_rng_below(&rng, 10);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nabla-bench --model lenet5|convnet|mlp|gpt|lstm [--threads N] [--batch B] [--steps S]\n"
            "                   [--only train|infer] [--data DIR] [--synthetic] [--json]\n"
            "                   [--precision fp32|bf16] [--epochs E] [--seed S]\n"
            "       nabla-bench --hvp [--batch B] [--steps ROUNDS] [--threads N] [--json]\n"
            "       nabla-bench --gemm N [--precision fp32|bf16] | --conv NAME|all | --pool NAME|all\n"
            "                   | --op NAME|all\n"
            "                   [--threads N]"
            "\n"
            "                   [--steps S] [--json] [--verbose]\n");
}

int main(int argc, char **argv)
{
    bench_options o = {.batch = 64, .steps = 0};
    const char *model = NULL, *only = NULL, *conv = NULL, *pool = NULL, *op = NULL;
    const char *data_dir = NULL;
    int64_t gemm = 0;
    int epochs = 0;
    bool use_synthetic = false, batch_given = false, hvp = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) { o.json = true; continue; }
        if (strcmp(a, "--verbose") == 0) { o.verbose = true; continue; }
        if (strcmp(a, "--synthetic") == 0) { use_synthetic = true; continue; }
        if (strcmp(a, "--hvp") == 0) { hvp = true; continue; }
        if (strcmp(a, "--help") == 0) return usage(stdout), 0;
        if (!v) return fprintf(stderr, "nabla-bench: %s needs a value\n", a), usage(stderr), 2;
        if (strcmp(a, "--model") == 0) model = v;
        else if (strcmp(a, "--threads") == 0) o.threads = atoi(v);
        else if (strcmp(a, "--batch") == 0) o.batch = atoll(v), batch_given = true;
        else if (strcmp(a, "--steps") == 0) o.steps = atoll(v);
        else if (strcmp(a, "--only") == 0) only = v;
        else if (strcmp(a, "--data") == 0) data_dir = v;
        else if (strcmp(a, "--gemm") == 0) gemm = atoll(v);
        else if (strcmp(a, "--epochs") == 0) epochs = atoi(v);
        else if (strcmp(a, "--seed") == 0) o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--precision") == 0) {
            if (strcmp(v, "bf16") != 0 && strcmp(v, "fp32") != 0)
                return fprintf(stderr, "nabla-bench: --precision takes fp32 or bf16\n"), 2;
            o.bf16 = strcmp(v, "bf16") == 0;
        }
        else if (strcmp(a, "--conv") == 0) conv = v;
        else if (strcmp(a, "--pool") == 0) pool = v;
        else if (strcmp(a, "--op") == 0) op = v;
        else return fprintf(stderr, "nabla-bench: unknown option %s\n", a), usage(stderr), 2;
        i++;
    }
    if (o.threads > 0 && nb_set_num_threads(o.threads) != NB_OK)
        return fprintf(stderr, "nabla-bench: %s\n", nb_last_error()), 2;
    o.threads = nb_get_num_threads();
    if (o.batch < 1 || o.steps < 0) return fprintf(stderr, "nabla-bench: bad --batch/--steps\n"), 2;
    if (hvp) {
        if (!batch_given) o.batch = 128;
        return bench_hessian(&o);
    }
    if (gemm > 0) return bench_gemm(gemm, &o);
    if (conv) return bench_conv(conv, &o);
    if (pool) return bench_pool(pool, &o);
    if (op) return bench_op(op, &o);
    if (model && bench_language_model_known(model)) {
        if (o.batch == 64 && !batch_given) o.batch = 32;
        if (o.steps == 0) o.steps = 20;
        return bench_language_model(model, &o, data_dir ? data_dir : "/usr/share/games/fortunes",
                                    use_synthetic);
    }
    if (!data_dir) data_dir = "/usr/share/datasets/fashion-mnist";
    if (!model || !bench_model_known(model) ||
        (only && strcmp(only, "train") != 0 && strcmp(only, "infer") != 0))
        return usage(stderr), 2;
    if (o.steps == 0) o.steps = strcmp(model, "convnet") == 0 ? 60 : 200;

    nb_dataset train = {0}, test = {0};
    int status = use_synthetic ? (synthetic(10000, &train) || synthetic(2560, &test))
                               : (nb_mnist_load(data_dir, "train", &train) != NB_OK ||
                                  nb_mnist_load(data_dir, "test", &test) != NB_OK);
    if (status) {
        fprintf(stderr, "nabla-bench: %s (or pass --synthetic)\n", nb_last_error());
    } else {
        bench_model m;
        if (bench_model_new(model, o.seed, &m) != 0) {
            fprintf(stderr, "nabla-bench: %s\n", nb_last_error());
            status = 1;
        }
        if (!status && epochs > 0)
            status = bench_epochs(model, &o, &m, &train, &test, epochs);
        else if (!status && (!only || strcmp(only, "train") == 0))
            status = measure("train", model, &o, &m, &train, o.batch, train_step);
        if (!status && epochs <= 0 && (!only || strcmp(only, "infer") == 0))
            status = measure("infer", model, &o, &m, &test, INFER_BATCH, infer_step);
        bench_model_free(&m);
    }
    if (use_synthetic) { /* malloc'd here, not by the data library */
        free(train.images), free(train.labels), free(test.images), free(test.labels);
    } else {
        nb_dataset_free(&train);
        nb_dataset_free(&test);
    }
    return status;
}
