/* Flat memory: once the first steps have grown the tape's arena, a training
 * step allocates nothing (counted through the allocator hook), the arena's
 * high-water mark and capacity stay put, and the resident set (VmRSS) does
 * not grow. With more than one thread the pool's workers claim GEMM ranges
 * dynamically, so a worker's packing scratch (one per thread, kept) may
 * still grow once when it first gets a larger block: a few allocations are
 * allowed there, bounded. tests/memory_profile does the same over 5,000
 * steps of the real LeNet-5 on Fashion-MNIST. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "nabla.h"
#include "tests/reliability_model.h"

enum { WARMUP = 5, STEPS = 150 };

static long allocations;

static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    allocations++;
    return malloc(size);
}

static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static long resident_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    cr_assert(kb > 0);
    return kb;
}

static void expect_flat(int kind, int threads)
{
    nb_set_allocator(counting_malloc, plain_free, NULL);
    cr_assert_eq(nb_set_num_threads(threads), NB_OK);
    model m;
    cr_assert_eq(model_init(&m, kind, 11, 12, 16), 0);
    for (int step = 0; step < WARMUP; step++) cr_assert_eq(model_step(&m), NB_OK);
    long allocations_before = allocations, rss_before = resident_kb();
    size_t high_water = nb_tape_arena_high_water(m.tape);
    size_t capacity = nb_tape_arena_capacity(m.tape);
    cr_assert(high_water > 0 && capacity >= high_water);
    /* Per-thread GEMM scratch: at most a few growths per worker. */
    long allowed = threads == 1 ? 0 : 4L * threads, rss_slack_kb = threads == 1 ? 256 : 4096;
    for (int step = WARMUP; step < STEPS; step++) {
        cr_assert_eq(model_step(&m), NB_OK, "%s", nb_last_error());
        cr_assert(allocations - allocations_before <= allowed, "step %d: %ld allocations since "
                  "the warm-up", step, allocations - allocations_before);
        cr_assert_eq(nb_tape_arena_high_water(m.tape), high_water, "step %d", step);
        cr_assert_eq(nb_tape_arena_capacity(m.tape), capacity, "step %d", step);
    }
    long rss_after = resident_kb();
    cr_expect(rss_after - rss_before <= rss_slack_kb, "resident set grew from %ld kB to %ld kB",
              rss_before, rss_after);
    model_free(&m);
}

Test(memory, lenet5_steps_allocate_nothing_after_warmup) { expect_flat(0, 1); }

Test(memory, lenet5_two_threads_steps_allocate_nothing) { expect_flat(0, 2); }

Test(memory, batch_norm_dropout_adam_steps_allocate_nothing) { expect_flat(1, 1); }

/* The counter sees allocations at all (so the checks above can fail): a
 * step on a fresh tape must allocate its arena. */
Test(memory, counter_sees_a_fresh_tape)
{
    nb_set_allocator(counting_malloc, plain_free, NULL);
    nb_set_num_threads(1);
    model m;
    cr_assert_eq(model_init(&m, 0, 11, 12, 4), 0);
    long before = allocations;
    cr_assert_eq(model_step(&m), NB_OK);
    cr_expect_gt(allocations, before);
    cr_expect_gt(nb_tape_arena_high_water(m.tape), 0);
    model_free(&m);
}
