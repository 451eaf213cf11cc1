/* Micro-benchmarks of the fused ops at the shapes of a small language
 * model (examples/charlm's defaults): one training step of the op alone,
 * forward (recorded) and backward from sum(y), timed together. The same
 * shapes run in PyTorch from bench/compare.py --ops. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

static const double MIN_SECONDS = 0.5;

typedef struct op_case {
    const char *name;
    int n_inputs;
    int ndim[7];
    int64_t shape[7][4];
    nb_tensor *(*run)(nb_tape *tape, nb_tensor **in);
} op_case;

static nb_tensor *run_attention(nb_tape *tape, nb_tensor **in)
{
    return nb_scaled_dot_product_attention(tape, in[0], in[1], in[2], NULL, true);
}

static nb_tensor *run_layer_norm(nb_tape *tape, nb_tensor **in)
{
    const nb_layer_norm_params p = {1, {in[0]->shape[1]}, 0.0};
    return nb_layer_norm(tape, in[0], in[1], in[2], &p);
}

static nb_tensor *run_gelu(nb_tape *tape, nb_tensor **in) { return nb_gelu(tape, in[0], NB_GELU_TANH); }

/* h' and c' both feed the loss, as in an unrolled LSTM. */
static nb_tensor *run_lstm_cell(nb_tape *tape, nb_tensor **in)
{
    nb_tensor *h, *c;
    if (nb_lstm_cell(tape, in[0], in[1], in[2], in[3], in[4], in[5], in[6], &h, &c) != NB_OK)
        return NULL;
    return nb_add(tape, h, c);
}

static const op_case CASES[] = {
    {"attention_t128", 3, {4, 4, 4}, {{32, 4, 128, 32}, {32, 4, 128, 32}, {32, 4, 128, 32}}, run_attention},
    {"attention_t512", 3, {4, 4, 4}, {{8, 4, 512, 32}, {8, 4, 512, 32}, {8, 4, 512, 32}}, run_attention},
    {"layer_norm", 3, {2, 1, 1}, {{4096, 128}, {128}, {128}}, run_layer_norm},
    {"gelu", 1, {2}, {{4096, 512}}, run_gelu},
    {"lstm_cell", 7, {2, 2, 2, 2, 2, 1, 1},
     {{32, 64}, {32, 256}, {32, 256}, {1024, 64}, {1024, 256}, {1024}, {1024}}, run_lstm_cell},
};

/* Seconds per training step of the op: wall-clock and process CPU time
 * (all threads), which other load on the machine disturbs less. */
static int time_step(const op_case *c, nb_tensor **in, const bench_options *o, double *seconds,
                     double *cpu_seconds)
{
    nb_tape *tape = nb_tape_new();
    if (!tape) return -1;
    int64_t reps = 0;
    double start = 0.0, cpu_start = 0.0;
    int status = 0;
    for (int64_t r = -1; status == 0; r++) {
        /* the first step warms the arena */
        if (r == 0) start = bench_now(), cpu_start = bench_cpu_now();
        nb_tensor *y = c->run(tape, in);
        status = y && nb_backward(tape, nb_sum(tape, y), NULL) == NB_OK ? 0 : -1;
        nb_tape_reset(tape);
        if (r >= 0) reps = r + 1;
        if (reps > 0 && (o->steps > 0 ? reps >= o->steps : bench_now() - start >= MIN_SECONDS)) break;
    }
    if (status != 0) fprintf(stderr, "nabla-bench: %s: %s\n", c->name, nb_last_error());
    *seconds = (bench_now() - start) / (double)(reps ? reps : 1);
    *cpu_seconds = (bench_cpu_now() - cpu_start) / (double)(reps ? reps : 1);
    nb_tape_free(tape);
    return status;
}

int bench_op(const char *name, const bench_options *o)
{
    int found = 0, failed = 0;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const op_case *c = &CASES[i];
        if (strcmp(name, "all") != 0 && strcmp(name, c->name) != 0) continue;
        found++;
        nb_tensor *in[7] = {0};
        for (int k = 0; k < c->n_inputs; k++) {
            in[k] = nb_tensor_uniform(NB_FLOAT32, c->ndim[k], c->shape[k], -1, 1, &rng);
            nb_tensor_set_requires_grad(in[k], true);
        }
        double seconds = 0.0, cpu_seconds = 0.0;
        if (time_step(c, in, o, &seconds, &cpu_seconds) != 0) failed = 1;
        else if (o->json)
            printf("{\"bench\":\"op\",\"op\":\"%s\",\"threads\":%d,\"us\":%.1f,\"cpu_us\":%.1f}\n",
                   c->name, o->threads, 1e6 * seconds, 1e6 * cpu_seconds);
        else printf("op    %-16s threads %d: %10.1f us per step (forward + backward), "
                    "CPU %10.1f us\n", c->name, o->threads, 1e6 * seconds, 1e6 * cpu_seconds);
        for (int k = 0; k < c->n_inputs; k++) nb_tensor_free(in[k]);
    }
    if (!found) fprintf(stderr, "nabla-bench: no op benchmark '%s'\n", name);
    return found && !failed ? 0 : 1;
}
