/* Internal to nabla-bench: models, timing and the JSON lines. */
#ifndef NABLA_BENCH_H
#define NABLA_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla.h"
#include "nabla/data.h"

enum { BENCH_MAX_PARAMS = 32 };

typedef struct bench_model {
    nb_module *module;
    nb_optimizer *optimizer;
    int n_params;
    nb_tensor *params[BENCH_MAX_PARAMS];
} bench_model;

bool bench_model_known(const char *name);
/* Builds the model (seeded, so every run starts from the same weights) and
 * its optimizer; 0 or -1 with nb_last_error set. */
int bench_model_new(const char *name, uint64_t seed, bench_model *out);
void bench_model_free(bench_model *model);

/* Monotonic seconds. */
double bench_now(void);
/* Process CPU seconds (all threads). */
double bench_cpu_now(void);
/* Peak resident set size of this process so far, in MiB. */
double bench_peak_rss_mb(void);

typedef struct bench_options {
    int threads;
    int64_t batch;       /* training batch */
    int64_t steps;       /* timed steps (or repetitions for micro-benchmarks) */
    bool json;
    bool verbose;        /* micro-benchmarks: print the path each op ran */
    bool bf16;           /* --precision bf16: models' tapes and --gemm in bf16 */
    uint64_t seed;       /* --seed: the models' init (and --epochs' shuffling); 0 the default */
} bench_options;

/* The median of times [n] (sorts them). */
double bench_median(double *times, int64_t n);

/* Training steps of the charlm models gpt and lstm (language_models.c) on
 * the fortunes text in `dir`, or random bytes when synthetic. */
bool bench_language_model_known(const char *name);
int bench_language_model(const char *name, const bench_options *o, const char *dir, bool synthetic);

/* Micro-benchmarks (micro.c); each prints its lines and returns 0 or 1. */
int bench_gemm(int64_t n, const bench_options *o);
int bench_conv(const char *shape, const bench_options *o);
int bench_pool(const char *shape, const bench_options *o);
/* Trains `epochs` whole epochs of train, then prints the time and the
 * test accuracy (accuracy.c). */
int bench_epochs(const char *name, const bench_options *o, bench_model *m, const nb_dataset *train,
                 const nb_dataset *test, int epochs);
/* Hessian-vector products against gradients on an MLP (hessian.c). */
int bench_hessian(const bench_options *o);
/* Fused ops at language-model shapes (ops.c). */
int bench_op(const char *name, const bench_options *o);

#endif
