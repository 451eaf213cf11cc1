/* meprop: dense backprop against meProp (top-k sparsified backward) on
 * Fashion-MNIST, for the paper's MLP 784-500-500-10 (ReLU) and LeNet-5.
 *
 * The paper (Sun et al., ICML 2017) used MNIST, which is not installed
 * here; Fashion-MNIST has the same format and is harder. As in the paper's
 * code, meProp is on the hidden layers and the output layer stays dense
 * (MLP: both 784-500 and 500-500 layers; LeNet-5: conv1, conv2, fc1, fc2).
 * Every run starts from the same initial weights and batch order.
 *
 * Defaults (chosen on this data): batch 8 and SGD with momentum, lr decayed
 * by a cosine. With batch 32, unified meProp at 5% trails dense by 1-1.3
 * points; smaller batches make more, smaller selections. Adam (the paper's
 * choice) hurt per-example meProp here: a row that gets one sparse gradient
 * keeps moving for many steps on its moment estimates.
 *
 * One line per run:
 *   model=<m> k=<k> mode=<mode> backward_ms_per_step=<x> train_ms_per_step=<y> test_acc=<z>
 * backward_ms_per_step times nb_backward alone; train_ms_per_step the whole
 * step (batch, forward, backward, optimizer). Both are medians over the
 * run's steps, which other programs on a shared machine disturb less than
 * means. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/lenet5.h"
#include "nabla.h"
#include "nabla/data.h"
#include "nabla/meprop.h"

/* WARMUP_STEPS steps of each run are left out of the timings (arena growth,
 * first-touch page faults, thread start-up would favour later runs). */
enum { MAX_PARAMS = 32, CLASSES = 10, EVAL_BATCH = 1000, HIDDEN = 500, WARMUP_STEPS = 20 };

typedef struct options {
    const char *model, *data;
    int mlp_epochs, lenet_epochs, threads;
    int64_t batch, max_steps;
    double lr, dropout;
    uint64_t seed;
    bool random, verbose, cosine, sgd;
    const char *runs;      /* comma-separated run names, NULL: the default set */
} options;

typedef struct run_spec {
    const char *name;      /* for --runs */
    double fraction;       /* 1.0: dense */
    nb_meprop_mode mode;
} run_spec;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: meprop [--model mlp|lenet5|all] [--epochs N] [--lenet-epochs N]\n"
            "              [--max-steps N] [--batch B] [--optimizer sgd|adam] [--lr X]\n"
            "              [--schedule cosine|constant] [--dropout P] [--threads N]\n"
            "              [--seed S] [--runs LIST] [--random] [--verbose] [--data DIR]\n"
            "Defaults: MLP 20 epochs, LeNet-5 5 epochs, batch 8, SGD (momentum 0.9)\n"
            "with lr 0.016 (Adam: 1e-3) decayed to 0 by a cosine, no dropout.\n"
            "  --max-steps   stop each run after N steps (quick runs)\n"
            "  --runs        a comma-separated subset of dense, topk10, unified10, topk5,\n"
            "                unified5, random5 (default: all but random5)\n"
            "  --random      add the random-k baseline (random5)\n"
            "  --dropout     dropout after the MLP's hidden ReLUs\n"
            "  --verbose     train loss and test accuracy after every epoch\n");
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.model = "all", .data = "/usr/share/datasets/fashion-mnist", .mlp_epochs = 20,
                   .lenet_epochs = 5, .batch = 8, .max_steps = -1, .lr = -1, .seed = 1,
                   .cosine = true, .sgd = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout), 1;
        if (strcmp(a, "--random") == 0 || strcmp(a, "--verbose") == 0) {
            *(a[2] == 'r' ? &o->random : &o->verbose) = true;
            continue;
        }
        if (!v) return fprintf(stderr, "meprop: %s needs a value\n", a), usage(stderr), 2;
        bool known = true;
        if (strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--epochs") == 0) o->mlp_epochs = atoi(v);
        else if (strcmp(a, "--lenet-epochs") == 0) o->lenet_epochs = atoi(v);
        else if (strcmp(a, "--max-steps") == 0) o->max_steps = atoll(v);
        else if (strcmp(a, "--batch") == 0) o->batch = atoll(v);
        else if (strcmp(a, "--lr") == 0) o->lr = atof(v);
        else if (strcmp(a, "--dropout") == 0) o->dropout = atof(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--seed") == 0) o->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--runs") == 0) o->runs = v;
        else if (strcmp(a, "--optimizer") == 0 && (!strcmp(v, "sgd") || !strcmp(v, "adam")))
            o->sgd = strcmp(v, "sgd") == 0;
        else if (strcmp(a, "--schedule") == 0 && (!strcmp(v, "cosine") || !strcmp(v, "constant")))
            o->cosine = strcmp(v, "cosine") == 0;
        else known = false;
        if (!known) return fprintf(stderr, "meprop: bad option %s %s\n", a, v), usage(stderr), 2;
        i++;
    }
    if (o->lr < 0) o->lr = o->sgd ? 0.016 : 1e-3;
    bool model_ok = !strcmp(o->model, "mlp") || !strcmp(o->model, "lenet5") || !strcmp(o->model, "all");
    if (!model_ok || o->mlp_epochs < 1 || o->lenet_epochs < 1 || o->batch < 1 || o->threads < 0 ||
        o->max_steps == 0 || o->lr <= 0 || o->dropout < 0 || o->dropout >= 1)
        return fprintf(stderr, "meprop: bad option value\n"), usage(stderr), 2;
    return 0;
}

/* Whether the run named `name` is selected (--runs, else all but random5
 * unless --random). */
static bool wanted(const options *o, const char *name)
{
    if (!o->runs) return strcmp(name, "random5") != 0 || o->random;
    size_t length = strlen(name);
    for (const char *at = strstr(o->runs, name); at; at = strstr(at + 1, name))
        if ((at == o->runs || at[-1] == ',') && (at[length] == ',' || at[length] == '\0'))
            return true;
    return false;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* MLP 784-500-500-10; hidden[] receives the two hidden Linear layers. */
static nb_module *mlp_new(nb_module **hidden, double dropout, uint64_t seed)
{
    hidden[0] = nb_nn_linear(28 * 28, HIDDEN, true);
    hidden[1] = nb_nn_linear(HIDDEN, HIDDEN, true);
    if (dropout > 0) {
        nb_module *layers[] = {nb_nn_flatten(1, -1), hidden[0], nb_nn_relu(),
                               nb_nn_dropout(dropout, seed), hidden[1], nb_nn_relu(),
                               nb_nn_dropout(dropout, seed + 1), nb_nn_linear(HIDDEN, CLASSES, true)};
        return nb_nn_sequential(8, layers);
    }
    nb_module *layers[] = {nb_nn_flatten(1, -1), hidden[0], nb_nn_relu(), hidden[1], nb_nn_relu(),
                           nb_nn_linear(HIDDEN, CLASSES, true)};
    return nb_nn_sequential(6, layers);
}

/* Builds the model (from the same seed every run) and sets meProp on its
 * hidden layers. */
static nb_module *model_new(const char *name, const options *o, const nb_meprop *config)
{
    nb_manual_seed(o->seed);
    nb_module *hidden[4];
    int count = 2;
    nb_module *model = NULL;
    if (strcmp(name, "mlp") == 0) {
        model = mlp_new(hidden, o->dropout, o->seed);
    } else {
        model = lenet5_new();
        const char *names[] = {"conv1", "conv2", "fc1", "fc2"};
        for (int i = 0; model && i < 4; i++) hidden[i] = nb_module_child(model, names[i]);
        count = 4;
    }
    for (int i = 0; model && i < count; i++)
        if (nb_module_set_meprop(hidden[i], config) != NB_OK) {
            nb_module_free(model);
            return NULL;
        }
    return model;
}

static double evaluate(nb_module *model, const nb_dataset *test, nb_tape *tape)
{
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = EVAL_BATCH;
    lo.shuffle = false;
    nb_loader *loader = nb_loader_new(test, &lo);
    if (!loader) return -1;
    bool was = nb_tape_set_grad_enabled(tape, false);
    nb_module_train(model, false); /* dropout off */
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    int status;
    while ((status = nb_loader_next(loader, tape, &x, &y)) == 1) {
        nb_tensor *logits = nb_module_forward(model, tape, x);
        if (!logits) break;
        for (int64_t i = 0; i < y->shape[0]; i++) {
            const float *row = (const float *)logits->data + i * CLASSES;
            int best = 0;
            for (int c = 1; c < CLASSES; c++)
                if (row[c] > row[best]) best = c;
            correct += best == ((const int32_t *)y->data)[i];
        }
        seen += y->shape[0];
        nb_tape_reset(tape);
    }
    bool failed = status < 0 || nb_tape_error(tape) != NULL || seen == 0;
    nb_tape_reset(tape);
    nb_tape_set_grad_enabled(tape, was);
    nb_module_train(model, true);
    nb_loader_free(loader);
    return failed ? -1 : (double)correct / (double)seen;
}

typedef struct timing {
    double *backward_ms, *step_ms;   /* per timed step */
    int64_t capacity, steps, timed_steps;
} timing;

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int64_t count)
{
    if (count == 0) return 0.0;
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

static int train(const options *o, nb_module *model, int epochs, const nb_dataset *train_set,
                 const nb_dataset *test, nb_tape *tape, timing *time_spent)
{
    nb_named_tensor named[MAX_PARAMS];
    nb_tensor *params[MAX_PARAMS];
    int count = nb_module_parameters(model, named, MAX_PARAMS);
    for (int i = 0; i < count && i < MAX_PARAMS; i++) params[i] = named[i].tensor;
    nb_adam_options adam = nb_adam_defaults(o->lr);
    nb_sgd_options sgd = nb_sgd_defaults(o->lr);
    sgd.momentum = 0.9;
    nb_optimizer *optimizer = count > MAX_PARAMS ? NULL
                              : o->sgd ? nb_sgd_new(params, count, &sgd)
                                       : nb_adam_new(params, count, &adam);
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = o->batch;
    lo.seed = o->seed;
    lo.drop_last = true;
    nb_loader *loader = nb_loader_new(train_set, &lo);
    int status = optimizer && loader ? 0 : 1;
    int64_t total = loader ? (int64_t)epochs * nb_loader_batches_per_epoch(loader) : 1;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    nb_lr_schedule schedule = o->cosine ? nb_lr_cosine(total, 0.0) : nb_lr_constant();
    for (int epoch = 0; epoch < epochs && !status; epoch++) {
        nb_tensor *x, *y;
        int next;
        double start = now_ms(), loss_sum = 0.0;
        int64_t loss_count = 0;
        while ((next = nb_loader_next(loader, tape, &x, &y)) == 1) {
            nb_optimizer_set_lr(optimizer, nb_lr_schedule_at(&schedule, o->lr, time_spent->steps));
            nb_tensor *loss = nb_cross_entropy(tape, nb_module_forward(model, tape, x), y);
            nb_optimizer_zero_grad(optimizer);
            double before = now_ms();
            int ok = loss && nb_backward(tape, loss, NULL) == NB_OK;
            double backward = now_ms() - before;
            if (!ok || nb_optimizer_step(optimizer) != NB_OK) {
                status = 1;
                break;
            }
            loss_sum += nb_tensor_get(loss, 0);
            loss_count++;
            nb_tape_reset(tape);
            double end = now_ms();
            if (++time_spent->steps > WARMUP_STEPS && time_spent->timed_steps < time_spent->capacity) {
                time_spent->backward_ms[time_spent->timed_steps] = backward;
                time_spent->step_ms[time_spent->timed_steps++] = end - start;
            }
            start = end;
            if (time_spent->steps == o->max_steps) break;
        }
        if (next < 0) status = 1;
        if (!status && o->verbose)
            printf("#   epoch %d: train loss %.4f, test accuracy %.2f%%\n", epoch + 1,
                   loss_sum / (double)(loss_count ? loss_count : 1), 100 * evaluate(model, test, tape));
        if (o->max_steps > 0 && time_spent->steps >= o->max_steps) break;
    }
    if (status) {
        const char *e = nb_tape_error(tape);
        fprintf(stderr, "meprop: %s\n", e ? e : nb_last_error());
    }
    nb_tape_reset(tape);
    nb_loader_free(loader);
    nb_optimizer_free(optimizer);
    return status;
}

static int run_one(const options *o, const char *name, const run_spec *spec,
                   const nb_dataset *train_set, const nb_dataset *test, nb_tape *tape)
{
    nb_meprop config = NB_MEPROP_FRACTION(spec->mode, spec->fraction);
    config.seed = o->seed;
    if (spec->fraction >= 1.0) config.mode = NB_MEPROP_DENSE;
    nb_module *model = model_new(name, o, &config);
    if (!model) return fprintf(stderr, "meprop: %s\n", nb_last_error()), 1;
    int epochs = strcmp(name, "mlp") == 0 ? o->mlp_epochs : o->lenet_epochs;
    timing spent = {.capacity = (int64_t)epochs * (train_set->count / o->batch + 1)};
    spent.backward_ms = malloc((size_t)spent.capacity * sizeof *spent.backward_ms);
    spent.step_ms = malloc((size_t)spent.capacity * sizeof *spent.step_ms);
    int status = spent.backward_ms && spent.step_ms ? 0 : 1;
    if (!status) status = train(o, model, epochs, train_set, test, tape, &spent);
    double accuracy = status ? -1 : evaluate(model, test, tape);
    nb_module_free(model);
    double backward_ms = median(spent.backward_ms, spent.timed_steps);
    double step_ms = median(spent.step_ms, spent.timed_steps);
    free(spent.backward_ms);
    free(spent.step_ms);
    if (accuracy < 0) return 1;
    const char *mode = spec->fraction >= 1.0 ? "dense" : nb_meprop_mode_name(spec->mode);
    printf("model=%s k=%g%% mode=%s backward_ms_per_step=%.3f train_ms_per_step=%.3f "
           "test_acc=%.2f\n", name, 100 * spec->fraction, mode,
           backward_ms, step_ms,
           100 * accuracy);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int parsed = parse(argc, argv, &o);
    if (parsed) return parsed == 1 ? 0 : parsed;
    if (o.threads > 0 && nb_set_num_threads(o.threads) != NB_OK)
        return fprintf(stderr, "meprop: %s\n", nb_last_error()), 2;
    nb_dataset train_set = {0}, test = {0};
    if (nb_mnist_load(o.data, "train", &train_set) != NB_OK ||
        nb_mnist_load(o.data, "test", &test) != NB_OK) {
        fprintf(stderr, "meprop: %s\n(install Debian's dataset-fashion-mnist package or pass "
                "--data DIR)\n", nb_last_error());
        nb_dataset_free(&train_set);
        return 1;
    }
    const run_spec runs[] = {
        {"dense", 1.0, NB_MEPROP_DENSE},      {"topk10", 0.10, NB_MEPROP_TOPK},
        {"unified10", 0.10, NB_MEPROP_UNIFIED}, {"topk5", 0.05, NB_MEPROP_TOPK},
        {"unified5", 0.05, NB_MEPROP_UNIFIED},  {"random5", 0.05, NB_MEPROP_RANDOM},
    };
    printf("# Fashion-MNIST, %s lr %g%s, batch %lld, dropout %g, %d threads; MLP %d epochs, "
           "LeNet-5 %d epochs%s\n", o.sgd ? "SGD (momentum 0.9)" : "Adam", o.lr,
           o.cosine ? " (cosine decay)" : "", (long long)o.batch, o.dropout, nb_get_num_threads(),
           o.mlp_epochs, o.lenet_epochs, o.max_steps > 0 ? " (capped by --max-steps)" : "");
    nb_tape *tape = nb_tape_new();
    int status = tape ? 0 : 1;
    const char *models[] = {"mlp", "lenet5"};
    for (int m = 0; m < 2 && !status; m++) {
        if (strcmp(o.model, "all") != 0 && strcmp(o.model, models[m]) != 0) continue;
        for (int r = 0; r < 6 && !status; r++)
            if (wanted(&o, runs[r].name))
                status = run_one(&o, models[m], &runs[r], &train_set, &test, tape);
    }
    nb_tape_free(tape);
    nb_dataset_free(&train_set);
    nb_dataset_free(&test);
    return status;
}
