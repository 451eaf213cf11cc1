/* Micro-benchmarks: square SGEMM, and conv2d / max_pool2d forward and
 * backward at the shapes of the benchmark models (batch 64), run through the
 * ops on a tape exactly as a model runs them. Each measurement repeats
 * until it has run for MIN_SECONDS (or --steps repetitions) after untimed
 * calls for WARMUP_SECONDS (ops; the GEMM takes one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "kernels/gemm.h"
#include "kernels/gemm_micro.h"

static const double MIN_SECONDS = 0.3, WARMUP_SECONDS = 0.2;

/* Process CPU time: with one thread, a measure that other programs on a
 * busy machine disturb much less than wall time. */
static double cpu_now(void) { return bench_cpu_now(); }

static int64_t repetitions(const bench_options *o, double seconds_per_call)
{
    if (o->steps > 0) return o->steps;
    int64_t reps = (int64_t)(MIN_SECONDS / (seconds_per_call > 1e-7 ? seconds_per_call : 1e-7));
    return reps < 3 ? 3 : reps;
}

int bench_gemm(int64_t n, const bench_options *o)
{
    size_t count = (size_t)(n * n);
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    float *c = malloc(count * sizeof *c);
    if (!a || !b || !c) return fprintf(stderr, "nabla-bench: out of memory\n"), 1;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)nb_rng_uniform(&rng) - 0.5f;
        b[i] = (float)nb_rng_uniform(&rng) - 0.5f;
    }
    double t0 = bench_now();
    nb_sgemm_at(o->bf16, false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    int64_t reps = repetitions(o, bench_now() - t0);
    double start = bench_now();
    for (int64_t r = 0; r < reps; r++)
        nb_sgemm_at(o->bf16, false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double seconds = bench_now() - start;
    double gflops = 2.0 * (double)n * (double)n * (double)n * (double)reps / seconds * 1e-9;
    const nb_sgemm_kernel *kernel = o->bf16 ? nb_gemm_bf16_kernel_for(n, n) : nb_gemm_kernel_for(n, n);
    const char *precision = o->bf16 ? "bf16" : "fp32";
    if (o->json)
        printf("{\"bench\":\"gemm\",\"n\":%lld,\"threads\":%d,\"precision\":\"%s\","
               "\"kernel\":\"%s-%dx%d\",\"gflops\":%.2f}\n", (long long)n, o->threads, precision,
               kernel->name, kernel->rows, kernel->cols, gflops);
    else
        printf("gemm n %lld threads %d %s (%s-%dx%d): %.2f GFLOP/s\n", (long long)n, o->threads,
               precision, kernel->name, kernel->rows, kernel->cols, gflops);
    free(a), free(b), free(c);
    return 0;
}

typedef struct conv_shape {
    const char *name;
    int64_t x[4], w[4];
    int pad;
    bool input_grad;     /* false for a first layer: its input needs no gradient */
} conv_shape;

static const conv_shape CONV_SHAPES[] = {
    {"lenet5.conv1", {64, 1, 28, 28}, {6, 1, 5, 5}, 2, false},
    {"lenet5.conv2", {64, 6, 14, 14}, {16, 6, 5, 5}, 0, true},
    {"convnet.conv1", {64, 1, 28, 28}, {32, 1, 3, 3}, 0, false},
    {"convnet.conv2", {64, 32, 26, 26}, {32, 32, 3, 3}, 0, true},
};

typedef struct pool_shape {
    const char *name;
    int64_t x[4];
} pool_shape;

static const pool_shape POOL_SHAPES[] = {
    {"lenet5.pool1", {64, 6, 28, 28}},
    {"lenet5.pool2", {64, 16, 10, 10}},
    {"convnet.pool", {64, 32, 24, 24}},
};

static void print_micro(const bench_options *o, const char *kind, const char *name,
                        const char *pass, const double seconds[2], const char *unit, double amount)
{
    if (o->json)
        printf("{\"bench\":\"%s\",\"shape\":\"%s\",\"pass\":\"%s\",\"threads\":%d,\"us\":%.2f,"
               "\"cpu_us\":%.2f,\"%s\":%.2f}\n", kind, name, pass, o->threads, 1e6 * seconds[0],
               1e6 * seconds[1], unit, amount / seconds[0]);
    else
        printf("%-5s %-14s %-8s threads %d: %9.1f us (%9.1f us CPU), %.2f %s\n", kind, name, pass,
               o->threads, 1e6 * seconds[0], 1e6 * seconds[1], amount / seconds[0], unit);
    fflush(stdout);
}

/* Seconds per call of the forward (grad off) and of the backward alone. */
typedef nb_tensor *(*forward_fn)(nb_tape *tape, nb_tensor *x, const void *shape);

/* One recorded forward and its backward from sum(y), so dy is all ones;
 * the sum's own backward (one fill of dy) is timed too, as in a model.
 * The backward's wall and CPU seconds are added to seconds (NULL: untimed). */
static int backward_call(nb_tape *tape, nb_tensor *x, forward_fn fn, const void *shape,
                         double seconds[2])
{
    nb_tensor *loss = nb_sum(tape, fn(tape, x, shape));
    if (!loss) return -1;
    double b0 = bench_now(), c0 = cpu_now();
    int status = nb_backward(tape, loss, NULL) == NB_OK ? 0 : -1;
    if (seconds) seconds[0] += bench_now() - b0, seconds[1] += cpu_now() - c0;
    nb_tape_reset(tape);
    return status;
}

static int time_op(const bench_options *o, nb_tensor *x, forward_fn fn, const void *shape,
                   double forward_seconds[2], double backward_seconds[2])
{
    nb_tape *tape = nb_tape_new();
    if (!tape) return -1;
    nb_tape_set_precision(tape, o->bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    /* Forward as inference runs it: nothing recorded. Untimed calls
     * first, for WARMUP_SECONDS: the first passes over a process's fresh
     * memory run 2-3x slower (measured on a virtual machine, at 30 against
     * 300 timed calls). */
    nb_tape_set_grad_enabled(tape, false);
    int status = 0;
    int64_t warmup_calls = 0;
    double t0 = bench_now();
    while (status == 0 && (warmup_calls == 0 || bench_now() - t0 < WARMUP_SECONDS)) {
        status = fn(tape, x, shape) ? 0 : -1;
        nb_tape_reset(tape);
        warmup_calls++;
    }
    int64_t reps = repetitions(o, (bench_now() - t0) / (double)warmup_calls);
    double start = bench_now(), cpu_start = cpu_now();
    for (int64_t r = 0; r < reps && status == 0; r++) {
        status = fn(tape, x, shape) ? 0 : -1;
        nb_tape_reset(tape);
    }
    forward_seconds[0] = (bench_now() - start) / (double)reps;
    forward_seconds[1] = (cpu_now() - cpu_start) / (double)reps;
    nb_tape_set_grad_enabled(tape, true);
    double backward[2] = {0, 0}, warmup_start = bench_now();
    do status = backward_call(tape, x, fn, shape, NULL);
    while (status == 0 && bench_now() - warmup_start < WARMUP_SECONDS);
    for (int64_t r = 0; r < reps && status == 0; r++) status = backward_call(tape, x, fn, shape, backward);
    backward_seconds[0] = backward[0] / (double)reps;
    backward_seconds[1] = backward[1] / (double)reps;
    if (status != 0) fprintf(stderr, "nabla-bench: %s\n", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
    nb_tape_free(tape);
    return status;
}

static nb_tensor *conv_weight, *conv_bias;

static nb_tensor *conv_forward(nb_tape *tape, nb_tensor *x, const void *shape)
{
    const conv_shape *s = shape;
    nb_conv2d_params p = NB_CONV2D_PARAMS_DEFAULT;
    p.padding[0] = p.padding[1] = s->pad;
    return nb_conv2d(tape, x, conv_weight, conv_bias, &p);
}

static nb_tensor *pool_forward(nb_tape *tape, nb_tensor *x, const void *shape)
{
    (void)shape;
    const nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
    return nb_max_pool2d(tape, x, &p);
}

/* The path a recorded node of this shape runs (include/nabla/paths.h). */
static void print_conv_path(const bench_options *o, const conv_shape *s, nb_tensor *x)
{
    nb_tape *tape = nb_tape_new();
    if (tape) nb_tape_set_precision(tape, o->bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    nb_tensor *y = tape ? conv_forward(tape, x, s) : NULL;
    const char *path = y ? nb_conv2d_path_name(y) : NULL;
    if (o->json)
        printf("{\"bench\":\"conv\",\"shape\":\"%s\",\"path\":\"%s\"}\n", s->name,
               path ? path : "");
    else
        printf("conv  %-14s path     %s\n", s->name, path ? path : "(none)");
    nb_tape_free(tape);
}

int bench_conv(const char *name, const bench_options *o)
{
    int found = 0, failed = 0;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof CONV_SHAPES / sizeof CONV_SHAPES[0]; i++) {
        const conv_shape *s = &CONV_SHAPES[i];
        if (strcmp(name, "all") != 0 && strcmp(name, s->name) != 0) continue;
        found++;
        nb_tensor *x = nb_tensor_uniform(NB_FLOAT32, 4, s->x, -1, 1, &rng);
        conv_weight = nb_tensor_uniform(NB_FLOAT32, 4, s->w, -0.2, 0.2, &rng);
        conv_bias = nb_tensor_uniform(NB_FLOAT32, 1, s->w, -0.2, 0.2, &rng);
        nb_tensor_set_requires_grad(x, s->input_grad);
        nb_tensor_set_requires_grad(conv_weight, true);
        nb_tensor_set_requires_grad(conv_bias, true);
        int64_t oh = s->x[2] + 2 * s->pad - s->w[2] + 1, ow = s->x[3] + 2 * s->pad - s->w[3] + 1;
        double flops = 2.0 * (double)(s->x[0] * s->w[0] * oh * ow * s->w[1] * s->w[2] * s->w[3]);
        double forward[2], backward[2];
        if (time_op(o, x, conv_forward, s, forward, backward) == 0) {
            if (o->verbose) print_conv_path(o, s, x);
            print_micro(o, "conv", s->name, "forward", forward, "gflops", flops * 1e-9);
            print_micro(o, "conv", s->name, "backward", backward, "gflops",
                        flops * (s->input_grad ? 2.0 : 1.0) * 1e-9);
        } else {
            failed = 1;
        }
        nb_tensor_free(x), nb_tensor_free(conv_weight), nb_tensor_free(conv_bias);
    }
    if (!found) fprintf(stderr, "nabla-bench: no conv shape '%s'\n", name);
    return found && !failed ? 0 : 1;
}

int bench_pool(const char *name, const bench_options *o)
{
    int found = 0, failed = 0;
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    for (size_t i = 0; i < sizeof POOL_SHAPES / sizeof POOL_SHAPES[0]; i++) {
        const pool_shape *s = &POOL_SHAPES[i];
        if (strcmp(name, "all") != 0 && strcmp(name, s->name) != 0) continue;
        found++;
        nb_tensor *x = nb_tensor_uniform(NB_FLOAT32, 4, s->x, -1, 1, &rng);
        nb_tensor_set_requires_grad(x, true);
        /* Bytes moved: the input read and the quarter-size output written
         * (forward); the reverse for backward. */
        double bytes = (double)x->numel * 4.0 * 1.25;
        double forward[2], backward[2];
        if (time_op(o, x, pool_forward, s, forward, backward) == 0) {
            print_micro(o, "pool", s->name, "forward", forward, "gbps", bytes * 1e-9);
            print_micro(o, "pool", s->name, "backward", backward, "gbps", bytes * 1e-9);
        } else {
            failed = 1;
        }
        nb_tensor_free(x);
    }
    if (!found) fprintf(stderr, "nabla-bench: no pool shape '%s'\n", name);
    return found && !failed ? 0 : 1;
}
