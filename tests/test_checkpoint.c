/* Checkpoints (nabla/checkpoint.h): a resumed run continues bit for bit,
 * and a corrupt, truncated or mismatched file is refused with a clear
 * message and changes nothing. The expected values are the uninterrupted
 * run's own bits. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla.h"
#include "nabla/data.h"

enum { IMAGES = 40, SIDE = 4, CLASSES = 3, STEPS_BEFORE = 5, STEPS_AFTER = 9 };

/* A small labelled dataset of 1x4x4 images, the same every time. */
static nb_dataset make_dataset(void)
{
    nb_dataset d = {.count = IMAGES, .channels = 1, .height = SIDE, .width = SIDE, .num_classes = CLASSES};
    d.images = nb_malloc(IMAGES * SIDE * SIDE);   /* nb_dataset_free frees with nb_free */
    d.labels = nb_malloc(IMAGES);
    for (int i = 0; i < IMAGES * SIDE * SIDE; i++) d.images[i] = (uint8_t)(i * 37 % 251);
    for (int i = 0; i < IMAGES; i++) d.labels[i] = (uint8_t)(i % CLASSES);
    return d;
}

/* Everything a training run holds, and the checkpoint of it. */
typedef struct run {
    nb_module *model;
    nb_optimizer *optimizer;
    nb_loader *loader;
    nb_lr_schedule schedule;
    nb_tape *tape;
    nb_checkpoint *checkpoint;
    int64_t step;
    double loss;
} run;

/* hidden: the model's width (another width is "another model"); extra: one
 * layer more. seed: the initial weights, so a fresh run differs until it
 * loads. */
static nb_module *make_model(int64_t hidden, bool extra, uint64_t seed)
{
    nb_manual_seed(seed);
    nb_module *layers[5] = {nb_nn_flatten(1, -1), nb_nn_linear(SIDE * SIDE, hidden, true), nb_nn_relu(),
                            nb_nn_dropout(0.25, seed), nb_nn_linear(hidden, CLASSES, true)};
    nb_module *model = nb_nn_sequential(5, layers);
    if (extra) nb_module_add(model, "5", nb_nn_linear(CLASSES, CLASSES, false));
    return model;
}

static nb_optimizer *make_optimizer(nb_module *model, const char *kind)
{
    nb_named_tensor named[16];
    nb_tensor *params[16];
    int n = nb_module_parameters(model, named, 16);
    for (int i = 0; i < n; i++) params[i] = named[i].tensor;
    nb_optimizer *opt;
    if (strcmp(kind, "sgd") == 0) {
        nb_sgd_options o = nb_sgd_defaults(0.1);
        o.momentum = 0.9;
        o.nesterov = true;
        o.weight_decay = 1e-3;
        opt = nb_sgd_new(params, n, &o);
    } else {
        nb_adam_options o = nb_adam_defaults(0.01);
        o.amsgrad = true;
        opt = nb_adam_new(params, n, &o);
    }
    nb_optimizer_set_gradient_noise(opt, 0.01, 0.55, 7);
    return opt;
}

static void setup(run *r, const nb_dataset *d, const char *kind, int64_t hidden, bool extra, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->model = make_model(hidden, extra, seed);
    r->optimizer = make_optimizer(r->model, kind);
    nb_loader_options lo = nb_loader_default_options();
    lo.batch_size = 6;   /* 40 images: epochs of 7 batches, the last of 4 */
    lo.seed = 3;
    lo.noise_std = 0.1;
    r->loader = nb_loader_new(d, &lo);
    r->schedule = nb_lr_with_warmup(nb_lr_cosine(20, 0.0), 3, 0.1);
    r->tape = nb_tape_new();
    cr_assert(r->model && r->optimizer && r->loader && r->tape);
    nb_checkpoint *ck = nb_checkpoint_new();
    nb_checkpoint_add_module(ck, "model", r->model);
    nb_checkpoint_add_optimizer(ck, "optimizer", r->optimizer);
    nb_checkpoint_add_loader(ck, "loader", r->loader);
    nb_checkpoint_add_schedule(ck, "schedule", &r->schedule);
    nb_checkpoint_add_int(ck, "step", &r->step);
    nb_checkpoint_add_double(ck, "loss", &r->loss);
    nb_checkpoint_add_rng(ck, "rng.global", nb_rng_global());
    r->checkpoint = ck;
}

static void teardown(run *r)
{
    nb_checkpoint_free(r->checkpoint);
    nb_tape_free(r->tape);
    nb_loader_free(r->loader);
    nb_optimizer_free(r->optimizer);
    nb_module_free(r->model);
}

static void train(run *r, int steps)
{
    for (int s = 0; s < steps; s++) {
        nb_tensor *x, *y;
        int got = nb_loader_next(r->loader, r->tape, &x, &y);
        if (got == 0) got = nb_loader_next(r->loader, r->tape, &x, &y);   /* next epoch */
        cr_assert_eq(got, 1, "%s", nb_last_error());
        nb_optimizer_set_lr(r->optimizer, nb_lr_schedule_at(&r->schedule, 0.1, r->step));
        nb_tensor *loss = nb_cross_entropy(r->tape, nb_module_forward(r->model, r->tape, x), y);
        nb_optimizer_zero_grad(r->optimizer);
        cr_assert_eq(nb_backward(r->tape, loss, NULL), NB_OK, "%s", nb_last_error());
        cr_assert_eq(nb_optimizer_step(r->optimizer), NB_OK, "%s", nb_last_error());
        r->loss = nb_tensor_get(loss, 0);
        nb_tape_reset(r->tape);
        r->step++;
    }
}

/* The parameters' bytes, in order, into buf; returns the byte count. */
static size_t parameter_bytes(nb_module *model, unsigned char *buf, size_t capacity)
{
    nb_named_tensor state[16];
    int n = nb_module_state(model, state, 16);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)state[i].tensor->numel * nb_dtype_size(state[i].tensor->dtype);
        cr_assert_leq(used + bytes, capacity);
        memcpy(buf + used, state[i].tensor->data, bytes);
        used += bytes;
    }
    return used;
}

static void scratch_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "/tmp/nabla_test_checkpoint_%d_%s", (int)getpid(), name);
}

enum { STATE_CAPACITY = 1 << 16 };

static void resume_matches(const char *kind)
{
    nb_dataset d = make_dataset();
    char path[256];
    scratch_path(path, sizeof path, kind);
    run a, b;
    /* The uninterrupted run, saving on the way. */
    setup(&a, &d, kind, 8, false, 1);
    train(&a, STEPS_BEFORE);
    cr_assert_eq(nb_checkpoint_save(a.checkpoint, path), NB_OK, "%s", nb_last_error());
    train(&a, STEPS_AFTER);
    /* A fresh process: other initial weights and generators, then the file. */
    setup(&b, &d, kind, 8, false, 99);
    nb_manual_seed(12345);
    cr_assert_eq(nb_checkpoint_load(b.checkpoint, path), NB_OK, "%s", nb_last_error());
    cr_assert_eq(b.step, STEPS_BEFORE);
    train(&b, STEPS_AFTER);
    static unsigned char bytes_a[STATE_CAPACITY], bytes_b[STATE_CAPACITY];
    size_t na = parameter_bytes(a.model, bytes_a, sizeof bytes_a);
    size_t nb = parameter_bytes(b.model, bytes_b, sizeof bytes_b);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(bytes_a, bytes_b, na), 0, "%s: resumed parameters differ from the uninterrupted run", kind);
    cr_assert_eq(memcmp(&a.loss, &b.loss, sizeof a.loss), 0, "%s: loss %.17g resumed, %.17g uninterrupted",
                 kind, b.loss, a.loss);
    cr_assert_eq(nb_optimizer_step_count(a.optimizer), nb_optimizer_step_count(b.optimizer));
    char temporary[300];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    cr_assert_neq(access(temporary, F_OK), 0, "the temporary file was left behind");
    teardown(&a);
    teardown(&b);
    remove(path);
    nb_dataset_free(&d);
}

/* Crosses an epoch boundary (7 batches an epoch), with dropout, input and
 * gradient noise, Nesterov momentum and weight decay. */
Test(checkpoint, sgd_run_resumes_bit_for_bit) { resume_matches("sgd"); }
Test(checkpoint, adam_amsgrad_run_resumes_bit_for_bit) { resume_matches("adam"); }

/* ---- refusals --------------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *length = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(*length);
    cr_assert_eq(fread(bytes, 1, *length, f), *length);
    fclose(f);
    return bytes;
}

static void write_file(const char *path, const unsigned char *bytes, size_t length)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(bytes, 1, length, f), length);
    fclose(f);
}

/* A saved checkpoint of a trained run, and a second run whose state must
 * survive every refused load unchanged. */
typedef struct fixture {
    nb_dataset dataset;
    run saved, target;
    char path[256], bad[256];
    unsigned char *file;
    size_t length;
    unsigned char before[STATE_CAPACITY];
    size_t before_length;
    int64_t step_before;
} fixture;

static void fixture_setup(fixture *f, const char *target_kind, int64_t hidden, bool extra)
{
    f->dataset = make_dataset();
    scratch_path(f->path, sizeof f->path, "good");
    scratch_path(f->bad, sizeof f->bad, "bad");
    setup(&f->saved, &f->dataset, "sgd", 8, false, 1);
    train(&f->saved, STEPS_BEFORE);
    cr_assert_eq(nb_checkpoint_save(f->saved.checkpoint, f->path), NB_OK, "%s", nb_last_error());
    f->file = read_file(f->path, &f->length);
    setup(&f->target, &f->dataset, target_kind, hidden, extra, 2);
    train(&f->target, 2);
    f->before_length = parameter_bytes(f->target.model, f->before, sizeof f->before);
    f->step_before = f->target.step;
}

static void fixture_teardown(fixture *f)
{
    teardown(&f->saved);
    teardown(&f->target);
    free(f->file);
    remove(f->path);
    remove(f->bad);
    nb_dataset_free(&f->dataset);
}

/* Loading `path` into the target fails with a message containing `needle`,
 * and the target's parameters and step are as they were. */
static void assert_refused(fixture *f, const char *path, const char *needle, const char *what)
{
    int status = nb_checkpoint_load(f->target.checkpoint, path);
    cr_assert_lt(status, 0, "%s: the load succeeded", what);
    cr_assert(strstr(nb_last_error(), needle), "%s: message '%s' lacks '%s'", what, nb_last_error(), needle);
    cr_assert(strstr(nb_last_error(), path), "%s: message '%s' does not name the file", what, nb_last_error());
    static unsigned char after[STATE_CAPACITY];
    size_t n = parameter_bytes(f->target.model, after, sizeof after);
    cr_assert(n == f->before_length && memcmp(after, f->before, n) == 0, "%s: the parameters changed", what);
    cr_assert_eq(f->target.step, f->step_before, "%s: the step changed", what);
}

Test(checkpoint, truncated_files_are_refused)
{
    fixture f;
    fixture_setup(&f, "sgd", 8, false);
    size_t cuts[] = {0, 4, 8, 9, 100, f.length / 2, f.length - 8, f.length - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(f.bad, f.file, cuts[i]);
        char what[64];
        snprintf(what, sizeof what, "cut to %zu of %zu bytes", cuts[i], f.length);
        assert_refused(&f, f.bad, "unreadable", what);
    }
    fixture_teardown(&f);
}

/* Every byte of the file, one bit flipped (bit = offset mod 8): the parser
 * or the checksum catches each. */
Test(checkpoint, every_flipped_bit_is_refused)
{
    fixture f;
    fixture_setup(&f, "sgd", 8, false);
    unsigned char *copy = malloc(f.length);
    int by_checksum = 0;
    for (size_t at = 0; at < f.length; at++) {
        memcpy(copy, f.file, f.length);
        copy[at] ^= (unsigned char)(1u << (at % 8));
        write_file(f.bad, copy, f.length);
        char what[64];
        snprintf(what, sizeof what, "bit %zu of byte %zu flipped", at % 8, at);
        assert_refused(&f, f.bad, "", what);
        by_checksum += strstr(nb_last_error(), "checksum mismatch") != NULL;
    }
    /* Flips in the tensor data parse fine: only the checksum sees them. */
    cr_assert_gt(by_checksum, (int)(f.length / 2), "only %d of %zu flips reached the checksum", by_checksum,
                 f.length);
    free(copy);
    fixture_teardown(&f);
}

Test(checkpoint, another_model_is_refused)
{
    fixture f;
    fixture_setup(&f, "sgd", 12, false);
    assert_refused(&f, f.path, "'model.1.weight' has shape [8, 16] in the file and [12, 16] here", "width 12");
    fixture_teardown(&f);
    fixture_setup(&f, "sgd", 8, true);
    assert_refused(&f, f.path, "missing tensor 'model.5.weight'", "one layer more");
    fixture_teardown(&f);
}

Test(checkpoint, another_optimizer_is_refused)
{
    fixture f;
    fixture_setup(&f, "adam", 8, false);
    assert_refused(&f, f.path, "'optimizer.kind' is 'sgd' in the file and 'adam' here", "adam from sgd");
    fixture_teardown(&f);
}

Test(checkpoint, a_model_file_is_not_a_checkpoint)
{
    fixture f;
    fixture_setup(&f, "sgd", 8, false);
    cr_assert_eq(nb_module_save(f.saved.model, f.bad), NB_OK, "%s", nb_last_error());
    assert_refused(&f, f.bad, "not a nabla checkpoint", "nb_module_save's file");
    remove(f.bad);
    assert_refused(&f, f.bad, "cannot open", "a missing file");
    fixture_teardown(&f);
}

/* An extra entry in the file (a counter this run does not register) is
 * another program's checkpoint. */
Test(checkpoint, an_unexpected_entry_is_refused)
{
    fixture f;
    fixture_setup(&f, "sgd", 8, false);
    int64_t extra = 5;
    cr_assert_eq(nb_checkpoint_add_int(f.saved.checkpoint, "epochs_seen", &extra), NB_OK);
    cr_assert_eq(nb_checkpoint_save(f.saved.checkpoint, f.bad), NB_OK, "%s", nb_last_error());
    assert_refused(&f, f.bad, "unexpected entry 'epochs_seen'", "an extra int");
    fixture_teardown(&f);
}

Test(checkpoint, bad_registrations_fail_save_and_load)
{
    int64_t value = 1;
    nb_checkpoint *ck = nb_checkpoint_new();
    cr_assert_eq(nb_checkpoint_add_int(ck, "a", &value), NB_OK);
    cr_assert_lt(nb_checkpoint_add_int(ck, "a", &value), 0);
    cr_assert(strstr(nb_last_error(), "'a' registered twice"), "%s", nb_last_error());
    cr_assert_lt(nb_checkpoint_add_int(ck, "b", NULL), 0);
    cr_assert_lt(nb_checkpoint_add_int(ck, "nabla.x", &value), 0);
    cr_assert_lt(nb_checkpoint_add_int(ck, "with space", &value), 0);
    cr_assert_lt(nb_checkpoint_save(ck, "/tmp/nabla_test_checkpoint_never"), 0);
    cr_assert(strstr(nb_last_error(), "a registration failed: checkpoint: entry 'a' registered twice"), "%s",
              nb_last_error());
    cr_assert_neq(access("/tmp/nabla_test_checkpoint_never", F_OK), 0);
    nb_checkpoint_free(ck);
}

/* Values round-trip exactly, NaN payloads and -0 included. */
Test(checkpoint, values_round_trip_exactly)
{
    char path[256];
    scratch_path(path, sizeof path, "values");
    double d = -0.0, nan_value = -NAN, tiny = 4.9e-324;
    int64_t big = INT64_MIN;
    bool flag = true;
    nb_rng rng;
    nb_rng_seed(&rng, 42);
    (void)nb_rng_normal(&rng);   /* leaves a spare normal pending */
    nb_checkpoint *ck = nb_checkpoint_new();
    nb_checkpoint_add_double(ck, "d", &d);
    nb_checkpoint_add_double(ck, "nan", &nan_value);
    nb_checkpoint_add_double(ck, "tiny", &tiny);
    nb_checkpoint_add_int(ck, "big", &big);
    nb_checkpoint_add_bool(ck, "flag", &flag);
    nb_checkpoint_add_rng(ck, "rng", &rng);
    nb_checkpoint_add_tag(ck, "kind", "test");
    cr_assert_eq(nb_checkpoint_save(ck, path), NB_OK, "%s", nb_last_error());
    nb_rng expected = rng;
    double d0 = d, n0 = nan_value, t0 = tiny;
    d = 1, nan_value = 2, tiny = 3, big = 4, flag = false;
    nb_rng_seed(&rng, 1);
    cr_assert_eq(nb_checkpoint_load(ck, path), NB_OK, "%s", nb_last_error());
    cr_assert_eq(memcmp(&d, &d0, sizeof d), 0);
    cr_assert_eq(memcmp(&nan_value, &n0, sizeof d), 0);
    cr_assert_eq(memcmp(&tiny, &t0, sizeof d), 0);
    cr_assert_eq(big, INT64_MIN);
    cr_assert(flag);
    cr_assert_eq(nb_rng_normal(&rng), nb_rng_normal(&expected), "the pending normal was lost");
    cr_assert_eq(nb_rng_next(&rng), nb_rng_next(&expected));
    nb_checkpoint_free(ck);
    remove(path);
}
