/* nabla-bench --model gpt|lstm: training steps of the charlm models
 * (models/charlm_trainer.h: the same step as examples/charlm, with
 * gradient clipping and the LR schedule) on fortunes windows, in tokens/s.
 * The timed steps follow warm-up steps that grow the arena and scratch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "models/charlm_trainer.h"

enum { LM_WARMUP_STEPS = 3, SYNTHETIC_BYTES = 1 << 20 };

bool bench_language_model_known(const char *name)
{
    return strcmp(name, "gpt") == 0 || strcmp(name, "lstm") == 0;
}

/* Random printable bytes for machines without the fortunes package. */
static int synthetic_text(nb_text *out)
{
    uint8_t *bytes = malloc(SYNTHETIC_BYTES);
    if (!bytes) return -1;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int i = 0; i < SYNTHETIC_BYTES; i++) bytes[i] = (uint8_t)(32 + nb_rng_below(&rng, 95));
    int status = nb_text_from_bytes(bytes, SYNTHETIC_BYTES, out);
    free(bytes);
    return status == NB_OK ? 0 : -1;
}

int bench_language_model(const char *name, const bench_options *o, const char *dir, bool synthetic)
{
    nb_text text;
    if (synthetic ? synthetic_text(&text) != 0 : nb_fortunes_load(dir, &text) != NB_OK) {
        fprintf(stderr, "nabla-bench: %s (or pass --synthetic)\n", nb_last_error());
        return 1;
    }
    /* The schedule spans more steps than are timed: the LR stays in warm-up,
     * which costs the same as any other step. */
    charlm_train_options options = {.model = name, .steps = 2000, .batch = o->batch,
                                    .lr = strcmp(name, "gpt") == 0 ? 3e-3 : 2e-3, .bf16 = o->bf16};
    charlm_trainer t;
    int64_t steps = o->steps;
    double *times = malloc((size_t)steps * sizeof *times), loss = 0.0, seconds = 0.0, cpu = 0.0;
    int status = times && charlm_trainer_init(&t, &options) == NB_OK ? NB_OK : NB_ERR_INVALID;
    for (int64_t i = 0; i < LM_WARMUP_STEPS && status == NB_OK; i++)
        status = charlm_trainer_step(&t, &text, &options, i, &loss);
    double start = bench_now(), cpu_start = bench_cpu_now();
    for (int64_t i = 0; i < steps && status == NB_OK; i++) {
        double t0 = bench_now();
        status = charlm_trainer_step(&t, &text, &options, LM_WARMUP_STEPS + i, &loss);
        times[i] = bench_now() - t0;
    }
    seconds = bench_now() - start;
    cpu = bench_cpu_now() - cpu_start;
    if (status == NB_OK) {
        int64_t T = t.config.context;
        double tokens = (double)(o->batch * T * steps) / seconds;
        double median = bench_median(times, steps);
        if (o->json)
            printf("{\"bench\":\"train\",\"model\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"batch\":%lld,\"seq\":%lld,"
                   "\"steps\":%lld,\"tokens_per_s\":%.1f,\"ms_per_step\":%.4f,"
                   "\"ms_per_step_median\":%.4f,\"cpu_ms_per_step\":%.4f,\"peak_rss_mb\":%.1f}\n",
                   name, o->bf16 ? "bf16" : "fp32", nb_get_num_threads(), (long long)o->batch,
                   (long long)T, (long long)steps,
                   tokens, 1e3 * seconds / (double)steps, 1e3 * median, 1e3 * cpu / (double)steps,
                   bench_peak_rss_mb());
        else
            printf("train %-5s %s threads %d batch %lld x %lld: %9.0f tokens/s, %8.2f ms/step (median "
                   "%.2f, CPU %.2f), peak RSS %.1f MiB\n", name, o->bf16 ? "bf16" : "fp32",
                   nb_get_num_threads(),
                   (long long)o->batch, (long long)T, tokens, 1e3 * seconds / (double)steps,
                   1e3 * median, 1e3 * cpu / (double)steps, bench_peak_rss_mb());
    } else {
        const char *error = t.tape ? nb_tape_error(t.tape) : NULL;
        fprintf(stderr, "nabla-bench: train %s: %s\n", name, error ? error : nb_last_error());
    }
    if (times) charlm_trainer_free(&t);
    free(times);
    nb_text_free(&text);
    return status == NB_OK ? 0 : 1;
}
