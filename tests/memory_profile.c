/* memory_profile: trains examples/lenet5's LeNet-5 on Fashion-MNIST the way
 * the example does (SGD, momentum 0.9, Nesterov, weight decay 5e-4, batch
 * 64, shuffled epochs) and reports, every --every steps, the process's
 * resident memory (VmRSS from /proc/self/status), nabla's live heap (through
 * the allocator hook), the allocations made so far and the tape arena's
 * high-water mark.
 *
 * After the warm-up (the first epoch unless --warmup says otherwise) the
 * resident set and nabla's live heap must not grow (by more than
 * --rss-slack kB), and with one thread a step must allocate nothing at all;
 * otherwise the exit status is 1, so CI can run it. (With more threads the
 * pool's workers claim GEMM ranges dynamically, so a worker's per-thread
 * packing scratch may grow the first time it happens to get a larger block,
 * even late; that growth is bounded and reported.) --no-check only reports.
 *
 *   memory_profile [--steps 5000] [--every 500] [--warmup STEPS] [--threads N]
 *                  [--data DIR] [--synthetic] [--rss-slack KB] [--no-check] */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lenet5.h"
#include "nabla/data.h"

enum { MAX_PARAMS = 64, SYNTHETIC_IMAGES = 2048 };

static atomic_long allocations, live_bytes;

/* Counts calls and live bytes; the size rides in front of the block. */
static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    size_t *block = malloc(size + 16);
    if (!block) return NULL;
    *block = size;
    atomic_fetch_add(&allocations, 1);
    atomic_fetch_add(&live_bytes, (long)size);
    return (unsigned char *)block + 16;
}

static void counting_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr) return;
    size_t *block = (size_t *)((unsigned char *)ptr - 16);
    atomic_fetch_sub(&live_bytes, (long)*block);
    free(block);
}

/* VmRSS in kB, or -1. */
static long resident_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Random uint8 images and labels, for machines without the dataset. */
static int synthetic_dataset(nb_dataset *d)
{
    /* Parsed from IDX images in memory, so that the buffers come from
     * nabla's allocator like a loaded dataset's. */
    nb_idx images = {0}, labels = {0};
    unsigned char header[16] = {0, 0, 8, 3, 0, 0, SYNTHETIC_IMAGES >> 8, SYNTHETIC_IMAGES & 255,
                                0, 0, 0, 28, 0, 0, 0, 28};
    size_t pixels = (size_t)SYNTHETIC_IMAGES * 28 * 28;
    unsigned char *file = malloc(16 + pixels);
    if (!file) return -1;
    memcpy(file, header, 16);
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    for (size_t i = 0; i < pixels; i++) file[16 + i] = (unsigned char)nb_rng_below(&rng, 256);
    int status = nb_idx_parse(file, 16 + pixels, "synthetic images", &images);
    unsigned char label_file[8 + SYNTHETIC_IMAGES] = {0, 0, 8, 1, 0, 0, SYNTHETIC_IMAGES >> 8,
                                                      SYNTHETIC_IMAGES & 255};
    for (int i = 0; i < SYNTHETIC_IMAGES; i++) label_file[8 + i] = (unsigned char)nb_rng_below(&rng, 10);
    if (status == NB_OK) status = nb_idx_parse(label_file, sizeof label_file, "synthetic labels", &labels);
    free(file);
    if (status != NB_OK) {
        nb_idx_free(&images);
        return -1;
    }
    return nb_dataset_from_idx(&images, &labels, 10, "synthetic", d) == NB_OK ? 0 : -1;
}

typedef struct options {
    int64_t steps, every, warmup;
    int threads;
    long rss_slack_kb;
    const char *data;
    bool synthetic, no_check;
} options;

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.steps = 5000, .every = 500, .warmup = -1, .rss_slack_kb = 256,
                   .data = "/usr/share/datasets/fashion-mnist"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--synthetic") == 0 || strcmp(a, "--no-check") == 0) {
            if (a[2] == 's') o->synthetic = true;
            else o->no_check = true;
            continue;
        }
        if (!v) return fprintf(stderr, "memory_profile: %s needs a value\n", a), 2;
        if (strcmp(a, "--steps") == 0) o->steps = atoll(v);
        else if (strcmp(a, "--every") == 0) o->every = atoll(v);
        else if (strcmp(a, "--warmup") == 0) o->warmup = atoll(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--rss-slack") == 0) o->rss_slack_kb = atol(v);
        else if (strcmp(a, "--data") == 0) o->data = v;
        else return fprintf(stderr, "memory_profile: unknown option %s\n", a), 2;
        i++;
    }
    if (o->steps < 1 || o->every < 1) return fprintf(stderr, "memory_profile: bad --steps/--every\n"), 2;
    return 0;
}

static int train(const options *o, nb_module *model, const nb_dataset *train_set)
{
    nb_named_tensor named[MAX_PARAMS];
    nb_tensor *params[MAX_PARAMS];
    int count = nb_module_parameters(model, named, MAX_PARAMS);
    if (count > MAX_PARAMS) return 1;
    for (int i = 0; i < count; i++) params[i] = named[i].tensor;
    nb_sgd_options s = nb_sgd_defaults(0.05);
    s.momentum = 0.9;
    s.nesterov = true;
    s.weight_decay = 5e-4;
    nb_optimizer *optimizer = nb_sgd_new(params, count, &s);
    nb_loader_options lo = nb_loader_default_options();
    lo.seed = 1;
    nb_loader *loader = nb_loader_new(train_set, &lo);
    nb_tape *tape = nb_tape_new();
    if (!optimizer || !loader || !tape) return fprintf(stderr, "memory_profile: %s\n", nb_last_error()), 1;
    int64_t warmup = o->warmup >= 0 ? o->warmup : nb_loader_batches_per_epoch(loader);
    if (warmup >= o->steps) warmup = o->steps / 2;
    printf("%8s %6s %10s %14s %12s %12s %14s %8s\n", "step", "epoch", "rss_kB", "nabla_live_kB",
           "allocations", "arena_high_kB", "arena_capacity_kB", "loss");
    long rss_after_warmup = -1, allocations_after_warmup = 0, rss_peak_after = 0;
    long live_after_warmup = 0, live_peak_after = 0;
    int status = 0;
    for (int64_t step = 1; step <= o->steps && !status; step++) {
        nb_tensor *x, *y;
        int got = nb_loader_next(loader, tape, &x, &y);
        if (got == 0) got = nb_loader_next(loader, tape, &x, &y); /* next epoch */
        if (got != 1) return fprintf(stderr, "memory_profile: %s\n", nb_last_error()), 1;
        nb_tensor *loss = nb_cross_entropy(tape, nb_module_forward(model, tape, x), y);
        nb_optimizer_zero_grad(optimizer);
        if (!loss || nb_backward(tape, loss, NULL) != NB_OK || nb_optimizer_step(optimizer) != NB_OK) {
            fprintf(stderr, "memory_profile: %s\n", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
            status = 1;
            break;
        }
        double loss_value = nb_tensor_get(loss, 0);
        nb_tape_reset(tape);
        long rss = resident_kb();
        long live = atomic_load(&live_bytes);
        if (step == warmup) {
            rss_after_warmup = rss;
            live_after_warmup = live;
            allocations_after_warmup = atomic_load(&allocations);
        }
        if (step > warmup && rss > rss_peak_after) rss_peak_after = rss;
        if (step > warmup && live > live_peak_after) live_peak_after = live;
        if (step % o->every == 0 || step == 1 || step == warmup || step == o->steps)
            printf("%8lld %6lld %10ld %14ld %12ld %12zu %14zu %8.4f%s\n", (long long)step,
                   (long long)nb_loader_epoch(loader), rss, atomic_load(&live_bytes) / 1024,
                   atomic_load(&allocations), nb_tape_arena_high_water(tape) / 1024,
                   nb_tape_arena_capacity(tape) / 1024, loss_value,
                   step == warmup ? "  <- end of warm-up" : "");
    }
    long late_allocations = atomic_load(&allocations) - allocations_after_warmup;
    long growth = rss_peak_after - rss_after_warmup;
    long live_growth = (live_peak_after - live_after_warmup) / 1024;
    if (!status) {
        printf("after warm-up (step %lld): %ld allocations, nabla heap %+ld kB, resident set "
               "%ld kB -> peak %ld kB (%+ld kB)\n", (long long)warmup, late_allocations,
               live_growth, rss_after_warmup, rss_peak_after, growth);
        bool flat = growth <= o->rss_slack_kb && live_growth <= o->rss_slack_kb &&
                    (nb_get_num_threads() > 1 || late_allocations == 0);
        if (o->no_check) {
            printf("(not checked)\n");
        } else if (!flat) {
            printf("FAIL: memory is not flat after warm-up\n");
            status = 1;
        } else {
            printf("OK: memory is flat after warm-up\n");
        }
    }
    nb_tape_free(tape);
    nb_loader_free(loader);
    nb_optimizer_free(optimizer);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    int parsed = parse(argc, argv, &o);
    if (parsed) return parsed;
    nb_set_allocator(counting_malloc, counting_free, NULL);
    if (o.threads > 0 && nb_set_num_threads(o.threads) != NB_OK) return 2;
    nb_manual_seed(1);
    nb_dataset train_set;
    if (o.synthetic ? synthetic_dataset(&train_set) != 0
                    : nb_mnist_load(o.data, "train", &train_set) != NB_OK) {
        fprintf(stderr, "memory_profile: %s (try --synthetic)\n", nb_last_error());
        return 1;
    }
    printf("LeNet-5, %lld %s images, %lld steps, %d threads\n", (long long)train_set.count,
           o.synthetic ? "synthetic" : "Fashion-MNIST", (long long)o.steps, nb_get_num_threads());
    nb_module *model = lenet5_new();
    int status = model ? train(&o, model, &train_set) : 1;
    nb_module_free(model);
    nb_dataset_free(&train_set);
    /* The hook stays: the thread pool and GEMM scratch it allocated are
     * freed through it at exit. */
    return status;
}
