/* Resource errors: with the allocator hook (nb_set_allocator) failing, every
 * op, the tape, modules and optimizers fail cleanly ("out of memory" on the
 * tape or in nb_last_error, never a crash) and leak nothing: the hook counts
 * live blocks, and after everything is freed the count is back where it
 * started (ASan in CI checks the same from the outside).
 *
 * Two ways to run out, for every registered op and each of its gradcheck
 * samples (forward, then backward through a sum when the output is not a
 * scalar):
 *   - malloc failures: allocation k and every later one fail, for
 *     k = 0, 1, ... until a run needs fewer than k allocations;
 *   - arena exhaustion: the tape's arena chunk is filled to leave r bytes,
 *     and the chunk the arena then asks for is refused, for r = 0, 64, ...
 *     up to what the case uses, which reaches the ops' own scratch
 *     allocations (nb_op_alloc) one after another.
 * A run that succeeds anyway must give the reference results bit for bit,
 * and after a failure the same tape, once reset, must run the case again
 * correctly. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "nabla.h"
#include "tests/reliability_model.h"

enum { MAX_CASES = 4, MAX_RUNS_PER_CASE = 160, MAX_BYTES = 1 << 16 };

typedef struct allocator_state {
    long live;         /* blocks handed out and not yet freed */
    long count;        /* allocations requested since armed */
    long fail_at;      /* -1: never fail; else fail allocation fail_at and later */
    bool refused;      /* a request was refused since armed */
} allocator_state;

static allocator_state heap = {.fail_at = -1};

static void *hook_malloc(size_t size, void *user)
{
    (void)user;
    if (heap.fail_at >= 0 && heap.count++ >= heap.fail_at) {
        heap.refused = true;
        return NULL;
    }
    void *p = malloc(size);
    if (p) heap.live++;
    return p;
}

static void hook_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr) return;
    heap.live--;
    free(ptr);
}

static void arm(long fail_at)
{
    heap.count = 0;
    heap.refused = false;
    heap.fail_at = fail_at;
}

static void disarm(void) { heap.fail_at = -1; }

static void setup(void)
{
    nb_set_num_threads(1);   /* no pool threads: every allocation is this thread's */
    nb_set_allocator(hook_malloc, hook_free, NULL);
}

static void teardown(void) { nb_set_allocator(NULL, NULL, NULL); }

/* The results of one run: output values, then each input's gradient. */
typedef struct results {
    unsigned char bytes[MAX_BYTES];
    size_t size;
} results;

static void append(results *r, const nb_tensor *t)
{
    size_t n = t ? (size_t)t->numel * nb_dtype_size(t->dtype) : 0;
    cr_assert(r->size + n <= MAX_BYTES, "results buffer too small");
    if (n) memcpy(r->bytes + r->size, t->data, n);
    r->size += n;
}

/* status.h: every message names its function or op. In a case, the one
 * that asked is the op, the sum taken for backward, the backward sweep or
 * nb_tape_new. */
static bool starts_with_name(const char *error, const char *name)
{
    size_t n = strlen(name);
    return strncmp(error, name, n) == 0 && error[n] == ':';
}

static void expect_out_of_memory(const char *error, const char *what, const nb_op *op, long at)
{
    cr_assert(error && strstr(error, "out of memory"), "%s: %s at %ld: error '%s' is not an "
              "out-of-memory error", op->name, what, at, error ? error : "(none)");
    cr_assert(starts_with_name(error, op->name) || starts_with_name(error, "sum") ||
              starts_with_name(error, "backward") || starts_with_name(error, "nb_tape_new"),
              "%s: %s at %ld: error '%s' does not name the op or function", op->name, what, at,
              error);
}

/* A message that starts with a function's name: "nb_adam_new: out of ..." */
static bool names_a_function(const char *error)
{
    size_t n = strspn(error, "abcdefghijklmnopqrstuvwxyz0123456789_");
    return n > 0 && error[n] == ':';
}

/* Forward and backward of one sample case on `tape`. Returns true with the
 * results on success; false after checking the failure is clean. */
static bool run_case(nb_tape *tape, const nb_op *op, nb_sample *s, results *r, long at)
{
    for (int i = 0; i < s->n_inputs; i++) nb_tensor_zero_grad(s->inputs[i]);
    nb_clear_error();
    nb_tensor *out = nb_apply(tape, op, s->n_inputs, s->inputs, s->params);
    nb_tensor *loss = out && out->requires_grad && out->numel != 1 ? nb_sum(tape, out) : out;
    if (!loss) {
        expect_out_of_memory(nb_tape_error(tape), "forward", op, at);
        return false;
    }
    if (loss->requires_grad) {
        int status = nb_backward(tape, loss, NULL);
        if (status != NB_OK) {
            cr_assert_eq(status, NB_ERR_NOMEM, "%s: backward at %ld: status %d (%s)", op->name,
                         at, status, nb_last_error());
            expect_out_of_memory(nb_last_error(), "backward", op, at);
            return false;
        }
    }
    r->size = 0;
    append(r, out);
    for (int i = 0; i < s->n_inputs; i++) append(r, s->inputs[i]->grad);
    return true;
}

static int make_sample(const nb_op *op, int index, nb_sample *s)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1234 + (uint64_t)index);
    memset(s, 0, sizeof *s);
    return op->sample ? op->sample(index, s, &rng) : 0;
}

static void free_sample(nb_sample *s)
{
    nb_sample_release(s);
}

static void expect_same(const results *a, const results *b, const nb_op *op, const char *what,
                        long at)
{
    cr_assert(a->size == b->size && memcmp(a->bytes, b->bytes, a->size) == 0,
              "%s: %s at %ld: results differ from the reference", op->name, what, at);
}

/* After a failure the tape must work again once reset. */
static void expect_recovery(nb_tape *tape, const nb_op *op, nb_sample *s, const results *reference,
                            long at)
{
    nb_tape_reset(tape);
    results again;
    cr_assert(run_case(tape, op, s, &again, at), "%s: tape did not recover after failure at %ld",
              op->name, at);
    expect_same(&again, reference, op, "recovery", at);
}

static results reference, attempt;

static void malloc_failures(const nb_op *op, int index, long baseline)
{
    for (long k = 0;; k++) {
        cr_assert(k < 100000, "%s: no end to allocations", op->name);
        nb_sample s;
        cr_assert_eq(make_sample(op, index, &s), 1);
        arm(k);
        nb_tape *tape = nb_tape_new();
        bool ok = false;
        if (!tape) expect_out_of_memory(nb_last_error(), "nb_tape_new", op, k);
        else ok = run_case(tape, op, &s, &attempt, k);
        bool refused = heap.refused;
        disarm();
        if (ok) expect_same(&attempt, &reference, op, "malloc failure", k);
        else if (tape) expect_recovery(tape, op, &s, &reference, k);
        cr_assert(ok || refused, "%s: failed at %ld without a refused allocation: %s", op->name,
                  k, nb_last_error());
        nb_tape_free(tape);
        free_sample(&s);
        cr_assert_eq(heap.live, baseline, "%s case %d: %ld blocks leaked after failure at %ld",
                     op->name, index, heap.live - baseline, k);
        if (!refused) return;
    }
}

static void arena_exhaustion(const nb_op *op, int index, long baseline)
{
    nb_sample s;
    cr_assert_eq(make_sample(op, index, &s), 1);
    /* A first run gives the inputs their gradient buffers and measures
     * the arena bytes the case uses. */
    nb_tape *tape = nb_tape_new();
    cr_assert(run_case(tape, op, &s, &attempt, -1), "%s: %s", op->name, nb_tape_error(tape));
    size_t used = nb_tape_arena_used(tape);
    nb_tape_free(tape);
    long with_sample = heap.live;   /* the inputs and their gradients */
    size_t step = 64;
    while (used / step > MAX_RUNS_PER_CASE) step *= 2;
    for (size_t room = 0; room <= used; room += step) {
        tape = nb_tape_new();
        cr_assert_not_null(nb_tape_alloc(tape, 1));
        size_t free_bytes = nb_tape_arena_capacity(tape) - nb_tape_arena_used(tape);
        if (free_bytes > room) cr_assert_not_null(nb_tape_alloc(tape, free_bytes - room));
        arm(0);
        bool ok = run_case(tape, op, &s, &attempt, (long)room);
        bool refused = heap.refused;
        disarm();
        if (ok) expect_same(&attempt, &reference, op, "arena room", (long)room);
        else expect_recovery(tape, op, &s, &reference, (long)room);
        cr_assert(ok || refused, "%s: failed with %zu bytes of room but nothing refused",
                  op->name, room);
        nb_tape_free(tape);
        cr_assert_eq(heap.live, with_sample, "%s case %d: blocks leaked with %zu bytes of room",
                     op->name, index, room);
    }
    free_sample(&s);
    cr_assert_eq(heap.live, baseline, "%s case %d: blocks leaked", op->name, index);
}

/* Runs `check` over every case of every registered op, after a warm-up
 * pass that also grows the GEMM's per-thread scratch, which is kept. */
static void for_every_case(void (*check)(const nb_op *, int, long))
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < nb_op_count(); i++) {
            const nb_op *op = nb_op_at(i);
            for (int index = 0; index < MAX_CASES; index++) {
                nb_sample s;
                int produced = make_sample(op, index, &s);
                if (produced <= 0) {
                    free_sample(&s);
                    break;
                }
                nb_tape *tape = nb_tape_new();
                cr_assert(run_case(tape, op, &s, &reference, -1), "%s case %d: %s", op->name,
                          index, nb_tape_error(tape));
                nb_tape_free(tape);
                free_sample(&s);
                if (pass == 1) check(op, index, heap.live);
            }
        }
    }
}

Test(oom, every_op_under_malloc_failures, .init = setup, .fini = teardown)
{
    for_every_case(malloc_failures);
}

Test(oom, every_op_under_arena_exhaustion, .init = setup, .fini = teardown)
{
    for_every_case(arena_exhaustion);
}

/* Making a model and optimizer and training one step, with allocation k
 * and later failing: every failure is clean and frees everything. */
static void training_under_failures(int kind)
{
    model warm;
    cr_assert_eq(model_init(&warm, kind, 3, 4, 4), 0);
    cr_assert_eq(model_step(&warm), NB_OK);
    model_free(&warm);
    long baseline = heap.live;
    for (long k = 0;; k++) {
        cr_assert(k < 100000);
        model m;
        arm(k);
        nb_clear_error();
        int status = model_init(&m, kind, 3, 4, 4) == 0 ? model_step(&m) : NB_ERR_NOMEM;
        bool refused = heap.refused;
        disarm();
        if (status != NB_OK) {
            const char *error = m.tape && nb_tape_error(m.tape) ? nb_tape_error(m.tape) : nb_last_error();
            cr_assert(refused, "failed at %ld without a refused allocation: %s", k, error);
            cr_assert(strstr(error, "out of memory"), "model %d at %ld: '%s'", kind, k, error);
            cr_assert(names_a_function(error), "model %d at %ld: '%s' names no function", kind,
                      k, error);
        }
        model_free(&m);
        cr_assert_eq(heap.live, baseline, "model %d: %ld blocks leaked after failure at %ld", kind,
                     heap.live - baseline, k);
        if (!refused) break;
    }
}

Test(oom, lenet5_creation_and_training_step, .init = setup, .fini = teardown)
{
    training_under_failures(0);
}

/* The hooks come in pairs: one alone would free blocks with the wrong
 * function. */
Test(oom, allocator_hooks_must_come_in_pairs, .fini = teardown)
{
    cr_assert_eq(nb_set_allocator(hook_malloc, NULL, NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_set_allocator: free_fn is NULL but malloc_fn is not; "
                     "give both hooks, or NULL for both to restore malloc and free");
    cr_assert_eq(nb_set_allocator(NULL, hook_free, NULL), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "malloc_fn is NULL but free_fn is not"), "%s",
              nb_last_error());
    /* Nothing changed: the default allocator is still in place. */
    long live = heap.live;
    nb_tensor *t = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){4});
    cr_assert_not_null(t);
    cr_assert_eq(heap.live, live, "a refused hook was installed");
    nb_tensor_free(t);
    cr_assert_eq(nb_set_allocator(hook_malloc, hook_free, NULL), NB_OK);
    t = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){4});
    cr_assert_eq(heap.live, live + 1, "the pair is installed");
    nb_tensor_free(t);
    cr_assert_eq(nb_set_allocator(NULL, NULL, NULL), NB_OK);
}

/* Direct calls name the public function that ran out. */
Test(oom, messages_name_the_function, .init = setup, .fini = teardown)
{
    arm(0);
    cr_assert_null(nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){4}));
    disarm();
    cr_assert(strncmp(nb_last_error(), "nb_tensor_new: out of memory: could not allocate 16 bytes",
                      strlen("nb_tensor_new: out of memory")) == 0, "%s", nb_last_error());
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){4}, NULL);
    cr_assert_not_null(x);
    /* Fill the arena's chunk so relu's output needs a new one, then refuse it. */
    size_t room = nb_tape_arena_capacity(tape) - nb_tape_arena_used(tape);
    cr_assert_not_null(nb_tape_alloc(tape, room));
    arm(0);
    cr_assert_null(nb_relu(tape, x));
    disarm();
    cr_assert(strncmp(nb_tape_error(tape), "relu: out of memory", strlen("relu: out of memory")) == 0,
              "%s", nb_tape_error(tape));
    nb_tape_free(tape);
}

Test(oom, batch_norm_dropout_adam_model, .init = setup, .fini = teardown)
{
    training_under_failures(1);
}
