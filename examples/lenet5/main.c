/* lenet5: train LeNet-5 on Fashion-MNIST and print the test accuracy.
 * Defaults: SGD (momentum 0.9, nesterov, weight decay 5e-4), lr 0.05 with a
 * one-epoch linear warm-up then cosine decay, batch 64, 12 epochs.
 * With --distributed under mpirun, each rank trains on its slice of every
 * global batch and rank 0 prints, evaluates and writes checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lenet5.h"
#include "nabla/checkpoint.h"
#include "nabla/data.h"
#include "parallel.h"
#include "report.h"

enum { MAX_PARAMS = 64, EVAL_BATCH = 1000, LOG_EVERY = 20 };

static const char *const CLASS_NAMES[CLASSES] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

typedef struct options {
    int epochs;
    int64_t batch;
    double lr, weight_decay;
    double grad_noise, input_noise;   /* eta of annealed gradient noise; std of pixel noise */
    const char *optimizer;
    int threads;
    uint64_t seed;
    const char *data, *save, *load, *plot;
    const char *checkpoint, *resume;
    int64_t checkpoint_every;
    bool eval_only, distributed;
    nb_dtype dtype;
    nb_precision precision;            /* of the matrix products (float32 models) */
    int64_t max_steps;
    int64_t train_images, test_images;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lenet5 [--epochs N] [--batch B] [--lr X] [--weight-decay X]\n"
            "              [--optimizer sgd|adam|adamw|rmsprop] [--threads N] [--seed S]\n"
            "              [--data DIR] [--save FILE] [--load FILE] [--eval-only]\n"
            "              [--max-steps N] [--plot FILE.svg]\n"
            "              [--grad-noise ETA] [--input-noise STD]\n"
            "              [--checkpoint FILE] [--checkpoint-every STEPS] [--resume FILE]\n"
            "              [--distributed] [--dtype float32|float64] [--precision fp32|bf16]\n"
            "              [--train-images N] [--test-images N]\n"
            "  --checkpoint   write the whole training state to FILE at the end of each\n"
            "                 epoch (and every STEPS steps with --checkpoint-every)\n"
            "  --resume       continue the run saved in FILE, bit for bit\n"
            "  --distributed  data-parallel under mpirun -np N: --batch is the global\n"
            "                 batch, split across the ranks; one thread per rank unless\n"
            "                 --threads says otherwise\n"
            "  --dtype        float64 trains in double precision (for checking)\n"
            "  --precision    bf16 rounds the operands of the convolutions and linear\n"
            "                 layers to bfloat16 and accumulates in float32; weights,\n"
            "                 gradients and optimizer state stay float32\n"
            "  --train-images, --test-images  use the first N images of the split only\n"
            "  --grad-noise   Gaussian gradient noise of variance ETA / (1 + t)^0.55\n"
            "                 (Neelakantan et al. 2015), t the step\n"
            "  --input-noise  Gaussian noise of std STD on each normalised training pixel\n");
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.epochs = 12, .batch = 64, .lr = -1, .weight_decay = 5e-4, .optimizer = "sgd",
                   .seed = 1, .data = "/usr/share/datasets/fashion-mnist", .max_steps = -1,
                   .precision = NB_PRECISION_FP32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--eval-only") == 0) o->eval_only = true, takes = false;
        else if (strcmp(a, "--distributed") == 0) o->distributed = true, takes = false;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout), 1;
        else if (!v) return fprintf(stderr, "lenet5: %s needs a value\n", a), usage(stderr), 2;
        else if (strcmp(a, "--epochs") == 0) o->epochs = atoi(v);
        else if (strcmp(a, "--batch") == 0) o->batch = atoll(v);
        else if (strcmp(a, "--lr") == 0) o->lr = atof(v);
        else if (strcmp(a, "--weight-decay") == 0) o->weight_decay = atof(v);
        else if (strcmp(a, "--optimizer") == 0) o->optimizer = v;
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--seed") == 0) o->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--save") == 0) o->save = v;
        else if (strcmp(a, "--load") == 0) o->load = v;
        else if (strcmp(a, "--plot") == 0) o->plot = v;
        else if (strcmp(a, "--max-steps") == 0) o->max_steps = atoll(v);
        else if (strcmp(a, "--train-images") == 0) o->train_images = atoll(v);
        else if (strcmp(a, "--test-images") == 0) o->test_images = atoll(v);
        else if (strcmp(a, "--grad-noise") == 0) o->grad_noise = atof(v);
        else if (strcmp(a, "--input-noise") == 0) o->input_noise = atof(v);
        else if (strcmp(a, "--checkpoint") == 0) o->checkpoint = v;
        else if (strcmp(a, "--checkpoint-every") == 0) o->checkpoint_every = atoll(v);
        else if (strcmp(a, "--resume") == 0) o->resume = v;
        else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "float32") && strcmp(v, "float64"))
                return fprintf(stderr, "lenet5: --dtype is float32 or float64, not '%s'\n", v), 2;
            o->dtype = strcmp(v, "float64") == 0 ? NB_FLOAT64 : NB_FLOAT32;
        }
        else if (strcmp(a, "--precision") == 0) {
            if (nb_precision_parse(v, &o->precision) != NB_OK || o->precision == NB_PRECISION_INHERIT)
                return fprintf(stderr, "lenet5: --precision is fp32 or bf16, not '%s'\n", v), 2;
        }
        else return fprintf(stderr, "lenet5: unknown option %s\n", a), usage(stderr), 2;
        if (takes) i++;
    }
    if (o->epochs < 1 || o->batch < 1 || o->threads < 0 || o->max_steps == 0 || o->max_steps < -1)
        return fprintf(stderr, "lenet5: --epochs, --batch and --max-steps must be >= 1\n"), 2;
    if (o->train_images < 0 || o->test_images < 0)
        return fprintf(stderr, "lenet5: --train-images and --test-images must be >= 1\n"), 2;
    if (!(o->grad_noise >= 0) || !(o->input_noise >= 0))
        return fprintf(stderr, "lenet5: --grad-noise and --input-noise must be >= 0\n"), 2;
    if (o->checkpoint_every < 0 || (o->checkpoint_every > 0 && !o->checkpoint))
        return fprintf(stderr, "lenet5: --checkpoint-every needs --checkpoint and a count >= 1\n"), 2;
    if (o->eval_only && (o->checkpoint || o->resume || o->distributed))
        return fprintf(stderr, "lenet5: --eval-only does not train: no --checkpoint, --resume or --distributed\n"), 2;
    return 0;
}

static nb_optimizer *make_optimizer(const options *o, nb_tensor **params, int count, double *lr)
{
    if (strcmp(o->optimizer, "sgd") == 0) {
        *lr = o->lr > 0 ? o->lr : 0.05;
        nb_sgd_options s = nb_sgd_defaults(*lr);
        s.momentum = 0.9;
        s.nesterov = true;
        s.weight_decay = o->weight_decay;
        return nb_sgd_new(params, count, &s);
    }
    if (strcmp(o->optimizer, "adam") == 0 || strcmp(o->optimizer, "adamw") == 0) {
        bool decoupled = strcmp(o->optimizer, "adamw") == 0;
        *lr = o->lr > 0 ? o->lr : 2e-3;
        nb_adam_options a = decoupled ? nb_adamw_defaults(*lr) : nb_adam_defaults(*lr);
        a.weight_decay = decoupled ? 0.05 : 0.0;
        return decoupled ? nb_adamw_new(params, count, &a) : nb_adam_new(params, count, &a);
    }
    if (strcmp(o->optimizer, "rmsprop") == 0) {
        *lr = o->lr > 0 ? o->lr : 1e-3;
        nb_rmsprop_options r = nb_rmsprop_defaults(*lr);
        return nb_rmsprop_new(params, count, &r);
    }
    fprintf(stderr, "lenet5: unknown optimizer '%s' (sgd, adam, adamw, rmsprop)\n", o->optimizer);
    return NULL;
}

/* The predicted class of row i of logits [B, CLASSES], float32 or float64. */
static int argmax_row(const nb_tensor *logits, int64_t i)
{
    int best = 0;
    for (int c = 1; c < CLASSES; c++)
        if (nb_tensor_get(logits, i * CLASSES + c) > nb_tensor_get(logits, i * CLASSES + best)) best = c;
    return best;
}

/* Test accuracy in eval mode without recording; fills the confusion matrix. */
static double evaluate(nb_module *model, const nb_dataset *test, nb_tape *tape,
                       int64_t confusion[CLASSES][CLASSES])
{
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = EVAL_BATCH;
    lo.shuffle = false;
    nb_named_tensor first;
    lo.dtype = nb_module_parameters(model, &first, 1) > 0 ? first.tensor->dtype : NB_FLOAT32;
    nb_loader *loader = nb_loader_new(test, &lo);
    if (!loader) return -1;
    memset(confusion, 0, sizeof(int64_t) * CLASSES * CLASSES);
    nb_module_train(model, false);
    bool was = nb_tape_set_grad_enabled(tape, false);
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    int status;
    while ((status = nb_loader_next(loader, tape, &x, &y)) == 1) {
        nb_tensor *logits = nb_module_forward(model, tape, x);
        if (!logits) break;
        for (int64_t i = 0; i < y->shape[0]; i++) {
            int truth = ((const int32_t *)y->data)[i];
            int guess = argmax_row(logits, i);
            confusion[truth][guess]++;
            correct += guess == truth;
        }
        seen += y->shape[0];
        nb_tape_reset(tape);
    }
    if (nb_tape_error(tape)) fprintf(stderr, "lenet5: %s\n", nb_tape_error(tape));
    nb_tape_reset(tape);
    nb_tape_set_grad_enabled(tape, was);
    nb_module_train(model, true);
    nb_loader_free(loader);
    return status < 0 || seen == 0 ? -1 : (double)correct / (double)seen;
}

typedef struct trainer {
    const options *o;
    nb_module *model;
    nb_optimizer *optimizer;
    nb_lr_schedule schedule;
    double base_lr;
    nb_loader *loader;
    nb_tape *tape;
    curves *curves;
    nb_checkpoint *checkpoint;   /* the whole training state, NULL without --checkpoint/--resume */
    parallel *parallel;
    int64_t step;
    double last_loss;
} trainer;

/* Everything a resumed run needs to continue bit for bit: parameters,
 * optimizer state, schedule, loader position, the step, the generators. */
static nb_checkpoint *make_checkpoint(trainer *t)
{
    nb_checkpoint *ck = nb_checkpoint_new();
    if (!ck) return NULL;
    nb_checkpoint_add_module(ck, "model", t->model);
    nb_checkpoint_add_optimizer(ck, "optimizer", t->optimizer);
    nb_checkpoint_add_loader(ck, "loader", t->loader);
    nb_checkpoint_add_schedule(ck, "schedule", &t->schedule);
    nb_checkpoint_add_int(ck, "step", &t->step);
    nb_checkpoint_add_double(ck, "last_loss", &t->last_loss);
    nb_checkpoint_add_rng(ck, "rng.global", nb_rng_global());
    return ck;   /* a failed registration makes save and load fail with its message */
}

static int save_checkpoint(const trainer *t)
{
    if (!t->o->checkpoint || t->parallel->rank != 0) return 0;
    if (nb_checkpoint_save(t->checkpoint, t->o->checkpoint) != NB_OK)
        return fprintf(stderr, "lenet5: %s\n", nb_last_error()), -1;
    return 0;
}

/* One epoch; returns the training accuracy or -1 on error. */
static double train_epoch(trainer *t, int epoch, progress *bar)
{
    int64_t correct = 0, seen = 0;
    double loss_sum = 0;
    int64_t loss_count = 0;
    nb_tensor *x, *y;
    int status;
    while ((status = nb_loader_next(t->loader, t->tape, &x, &y)) == 1) {
        nb_optimizer_set_lr(t->optimizer, nb_lr_schedule_at(&t->schedule, t->base_lr, t->step));
        nb_tensor *logits = nb_module_forward(t->model, t->tape, x);
        nb_tensor *loss = nb_cross_entropy(t->tape, logits, y);
        nb_optimizer_zero_grad(t->optimizer);
        int64_t global = t->parallel->distributed ? nb_loader_global_batch(t->loader) : y->shape[0];
        if (!loss || parallel_backward(t->parallel, t->tape, loss, y->shape[0], global) != NB_OK ||
            nb_optimizer_step(t->optimizer) != NB_OK) {
            fprintf(stderr, "lenet5: %s\n", nb_tape_error(t->tape) ? nb_tape_error(t->tape) : nb_last_error());
            return -1;
        }
        /* The global batch's mean loss and correct count: each rank's
         * share, summed (one process: its own). */
        double step_stats[2] = {nb_tensor_get(loss, 0) * (double)y->shape[0] / (double)global, 0};
        for (int64_t i = 0; i < y->shape[0]; i++)
            step_stats[1] += argmax_row(logits, i) == ((const int32_t *)y->data)[i];
        if (parallel_sum(t->parallel, step_stats, 2) != NB_OK) {
            fprintf(stderr, "lenet5: %s\n", nb_last_error());
            return -1;
        }
        t->last_loss = step_stats[0];
        correct += (int64_t)step_stats[1];
        seen += global;
        loss_sum += t->last_loss;
        loss_count++;
        if (t->step % LOG_EVERY == 0 && t->curves->n_loss < MAX_POINTS) {
            double at = (double)t->step / (double)nb_loader_batches_per_epoch(t->loader);
            t->curves->loss_x[t->curves->n_loss] = at;
            t->curves->loss_y[t->curves->n_loss++] = loss_sum / (double)loss_count;
        }
        progress_update(bar, epoch, t->step, loss_sum / (double)loss_count, (double)correct / (double)seen,
                        global);
        nb_tape_reset(t->tape);
        t->step++;
        if (t->o->checkpoint_every > 0 && t->step % t->o->checkpoint_every == 0 && save_checkpoint(t) != 0)
            return -1;
        if (t->o->max_steps > 0 && t->step >= t->o->max_steps) break;
    }
    nb_tape_reset(t->tape);
    if (status < 0) {
        fprintf(stderr, "lenet5: %s\n", nb_last_error());
        return -1;
    }
    if (status == 1) nb_loader_set_epoch(t->loader, nb_loader_epoch(t->loader) + 1);
    if (save_checkpoint(t) != 0) return -1;
    return seen ? (double)correct / (double)seen : 0.0;
}

/* Rank 0 evaluates; the other ranks wait for it at the next collective. */
static double evaluate_on_rank0(const parallel *par, nb_module *model, const nb_dataset *test, nb_tape *tape,
                                int64_t confusion[CLASSES][CLASSES])
{
    return par->rank == 0 ? evaluate(model, test, tape, confusion) : 0.0;
}

static int run(const options *o, parallel *par, nb_module *model, const nb_dataset *train,
               const nb_dataset *test)
{
    nb_tape *tape = nb_tape_new();
    if (tape) nb_tape_set_precision(tape, o->precision);
    int64_t confusion[CLASSES][CLASSES];
    curves *plot = calloc(1, sizeof *plot);
    nb_named_tensor named[MAX_PARAMS];
    nb_tensor *params[MAX_PARAMS];
    int count = nb_module_parameters(model, named, MAX_PARAMS);
    for (int i = 0; i < count && i < MAX_PARAMS; i++) params[i] = named[i].tensor;
    trainer t = {.o = o, .model = model, .tape = tape, .curves = plot, .parallel = par};
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = o->batch;
    lo.shard_index = par->rank;
    lo.shard_count = par->size;
    lo.dtype = o->dtype;
    lo.seed = o->seed;
    lo.noise_std = o->input_noise;
    int status = tape && plot && count <= MAX_PARAMS ? 0 : 1;
    if (!status && !o->eval_only) {
        t.optimizer = make_optimizer(o, params, count, &t.base_lr);
        t.loader = nb_loader_new(train, &lo);
        status = t.optimizer && t.loader ? 0 : 1;
        /* gamma 0.55: the paper's annealing exponent. */
        if (!status && o->grad_noise > 0 &&
            nb_optimizer_set_gradient_noise(t.optimizer, o->grad_noise, 0.55, o->seed) != NB_OK)
            status = 1;
    }
    if (!status && !o->eval_only) {
        int64_t per_epoch = nb_loader_batches_per_epoch(t.loader);
        int64_t total = (int64_t)o->epochs * per_epoch;
        if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
        t.schedule = nb_lr_with_warmup(nb_lr_cosine(total, 0.0), per_epoch < total ? per_epoch : 1, 0.1);
        if ((o->checkpoint || o->resume) && !(t.checkpoint = make_checkpoint(&t))) status = 1;
        if (!status && o->resume) {
            if (nb_checkpoint_load(t.checkpoint, o->resume) != NB_OK)
                fprintf(stderr, "lenet5: %s\n", nb_last_error()), status = 1;
            else
                printf("resumed %s at step %lld (epoch %lld)\n", o->resume, (long long)t.step,
                       (long long)nb_loader_epoch(t.loader) + 1);
        }
    }
    if (!status && !o->eval_only) {
        int64_t per_epoch = nb_loader_batches_per_epoch(t.loader);
        printf("training LeNet-5 (%lld parameters) on %lld images: %s lr %g, batch %lld, %d epochs, %d threads",
               (long long)nb_module_parameter_count(model), (long long)train->count, o->optimizer, t.base_lr,
               (long long)o->batch, o->epochs, nb_get_num_threads());
        if (par->distributed) printf(" per rank, %d ranks", par->size);
        if (o->precision == NB_PRECISION_BF16) printf(", bf16 products");
        printf("\n");
        double start = now_seconds();
        int64_t start_step = t.step;
        int first_epoch = (int)nb_loader_epoch(t.loader) + 1;
        for (int epoch = first_epoch; epoch <= o->epochs && !status; epoch++) {
            if (o->max_steps > 0 && t.step >= o->max_steps) break;
            progress bar;
            progress_start(&bar, t.step + per_epoch);
            bar.start_seconds = now_seconds();
            double train_accuracy = train_epoch(&t, epoch, &bar);
            progress_end(&bar);
            double accuracy = train_accuracy < 0 ? -1 : evaluate_on_rank0(par, model, test, tape, confusion);
            if (accuracy < 0) {
                status = 1;
                break;
            }
            double elapsed = now_seconds() - start;
            printf("epoch %d: train loss %.4f, train accuracy %.2f%%, test accuracy %.2f%%, %.1f s, %.0f images/s\n",
                   epoch, t.last_loss, 100 * train_accuracy, 100 * accuracy, elapsed,
                   (double)(t.step - start_step) * (double)o->batch / elapsed);
            if (plot->n_accuracy < MAX_POINTS) {
                plot->accuracy_x[plot->n_accuracy] = (double)t.step / (double)per_epoch;
                plot->train_accuracy[plot->n_accuracy] = 100 * train_accuracy;
                plot->test_accuracy[plot->n_accuracy++] = 100 * accuracy;
            }
            fflush(stdout);
            if (o->max_steps > 0 && t.step >= o->max_steps) break;
        }
    }
    double accuracy = status ? -1 : evaluate_on_rank0(par, model, test, tape, confusion);
    if (accuracy < 0) status = 1;
    if (!status) confusion_print((const int64_t(*)[CLASSES])confusion, CLASS_NAMES, stdout);
    if (!status && o->plot && !o->eval_only) {
        if (curves_write_svg(plot, o->plot) != 0) fprintf(stderr, "lenet5: cannot write %s\n", o->plot), status = 1;
        else printf("wrote %s\n", o->plot);
    }
    if (!status && o->save) {
        if (nb_module_save(model, o->save) != NB_OK) fprintf(stderr, "lenet5: %s\n", nb_last_error()), status = 1;
        else printf("saved %s\n", o->save);
    }
    if (!status && par->distributed) {
        /* Averaged over the ranks: the slowest rank barely waits, the
         * others wait for it. Time the sums took from the compute thread
         * (a communication thread preempting it on a busy core) shows in
         * the images/s, not here. */
        double times[2];
        int64_t steps;
        parallel_report(par, &times[0], &times[1], &steps);
        if (parallel_sum(par, times, 2) == NB_OK && steps > 0)
            printf("all-reduce: %.3f ms a step, %.3f ms of it waited for after the backward (mean of %d ranks)\n",
                   1e3 * times[0] / (double)(steps * par->size), 1e3 * times[1] / (double)(steps * par->size),
                   par->size);
    }
    if (!status && !o->eval_only) printf("final loss: %.9g\n", t.last_loss);
    if (!status) printf("test accuracy: %.2f%%\n", 100 * accuracy);
    nb_checkpoint_free(t.checkpoint);
    nb_loader_free(t.loader);
    nb_optimizer_free(t.optimizer);
    nb_tape_free(tape);
    free(plot);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    int parsed = parse(argc, argv, &o);
    if (parsed) return parsed == 1 ? 0 : parsed;
    parallel par;
    if (parallel_start(&par, o.distributed, &argc, &argv) != 0) return 1;
    /* One rank per core: each rank computes on one thread by default. */
    if (par.distributed && o.threads == 0) o.threads = 1;
    int status = 0;
    /* Rank 0 speaks for the job; the others keep stderr for their errors. */
    if (par.rank != 0 && !freopen("/dev/null", "w", stdout)) status = 1;
    if (!status && o.threads > 0 && nb_set_num_threads(o.threads) != NB_OK)
        fprintf(stderr, "lenet5: %s\n", nb_last_error()), status = 2;
    nb_manual_seed(o.seed);
    nb_dataset train = {0}, test = {0};
    if (!status && ((!o.eval_only && nb_mnist_load(o.data, "train", &train) != NB_OK) ||
                    nb_mnist_load(o.data, "test", &test) != NB_OK)) {
        fprintf(stderr, "lenet5: %s\n(install Debian's dataset-fashion-mnist package or pass --data DIR)\n",
                nb_last_error());
        status = 1;
    }
    if (o.train_images > 0 && o.train_images < train.count) train.count = o.train_images;
    if (o.test_images > 0 && o.test_images < test.count) test.count = o.test_images;
    nb_module *model = status ? NULL : lenet5_new();
    if (!status && (!model || nb_module_to_dtype(model, o.dtype) != NB_OK || parallel_attach(&par, model) != 0))
        status = 1;
    if (!status && o.load && nb_module_load(model, o.load) != NB_OK) {
        fprintf(stderr, "lenet5: %s\n", nb_last_error());
        status = 1;
    } else if (!status && o.load) {
        printf("loaded %s\n", o.load);
    }
    if (!status) status = run(&o, &par, model, &train, &test);
    parallel_end(&par, status);
    nb_module_free(model);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return status;
}
