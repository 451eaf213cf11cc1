/* The thread pool: nb_parallel_for covers [0, n) exactly once with ranges
 * no smaller than the grain, whatever the thread count; nested and
 * concurrent calls work; bad counts are reported. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "nabla/threads.h"

enum { MAX_RANGES = 64 };

typedef struct coverage {
    atomic_int *hits;   /* one counter per index */
    atomic_int ranges;  /* ranges handed out */
    atomic_int smallest; /* smallest range seen */
    atomic_int bad_worker;
    int threads;
} coverage;

static void count_range(void *context, int64_t begin, int64_t end, int worker)
{
    coverage *c = context;
    atomic_fetch_add(&c->ranges, 1);
    if (worker < 0 || worker >= c->threads) atomic_store(&c->bad_worker, 1);
    int size = (int)(end - begin), smallest = atomic_load(&c->smallest);
    while (size < smallest && !atomic_compare_exchange_weak(&c->smallest, &smallest, size)) {}
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&c->hits[i], 1);
}

static void check_coverage(int threads, int64_t n, int64_t grain)
{
    coverage c = {.threads = threads};
    c.hits = calloc((size_t)(n + 1), sizeof(atomic_int));
    cr_assert_not_null(c.hits);
    atomic_init(&c.ranges, 0);
    atomic_init(&c.smallest, 1 << 30);
    atomic_init(&c.bad_worker, 0);
    nb_parallel_for(n, grain, count_range, &c);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&c.hits[i]), 1,
                     "threads=%d n=%ld grain=%ld: index %ld hit %d times", threads, (long)n,
                     (long)grain, (long)i, atomic_load(&c.hits[i]));
    int ranges = atomic_load(&c.ranges);
    cr_assert(ranges <= threads, "threads=%d n=%ld grain=%ld: %d ranges", threads, (long)n,
              (long)grain, ranges);
    if (n == 0) cr_assert_eq(ranges, 0, "n=0 must not call the function");
    if (ranges > 1)
        cr_assert(atomic_load(&c.smallest) >= grain, "threads=%d n=%ld grain=%ld: a range of %d",
                  threads, (long)n, (long)grain, atomic_load(&c.smallest));
    cr_assert_eq(atomic_load(&c.bad_worker), 0, "worker index out of range");
    free(c.hits);
}

Test(threads, parallel_for_covers_every_index_once)
{
    static const int thread_counts[] = {1, 2, 3, 4, 7};
    static const int64_t sizes[] = {0, 1, 2, 3, 5, 10, 100, 1000, 12345};
    static const int64_t grains[] = {0, 1, 2, 7, 64, 1000, 100000};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        cr_assert_eq(nb_set_num_threads(thread_counts[t]), NB_OK);
        cr_assert_eq(nb_get_num_threads(), thread_counts[t]);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                check_coverage(thread_counts[t], sizes[s], grains[g]);
    }
}

Test(threads, zero_count_is_rejected)
{
    cr_assert_eq(nb_set_num_threads(3), NB_OK);
    cr_assert_eq(nb_set_num_threads(0), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_set_num_threads: count 0 must be >= 1");
    cr_assert_eq(nb_set_num_threads(-4), NB_ERR_INVALID);
    cr_assert_eq(nb_get_num_threads(), 3, "a rejected count must not change the setting");
}

Test(threads, default_count_is_at_least_one) { cr_assert_geq(nb_get_num_threads(), 1); }

/* A call from inside a range runs inline instead of deadlocking. */
static void nested_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    coverage *inner = context;
    for (int64_t i = begin; i < end; i++) {
        coverage *row = &inner[i];
        nb_parallel_for(100, 1, count_range, row);
    }
}

Test(threads, nested_calls_run_inline)
{
    cr_assert_eq(nb_set_num_threads(2), NB_OK);
    coverage rows[8];
    for (int r = 0; r < 8; r++) {
        rows[r] = (coverage){.threads = 2, .hits = calloc(100, sizeof(atomic_int))};
        atomic_init(&rows[r].ranges, 0);
        atomic_init(&rows[r].smallest, 1 << 30);
        atomic_init(&rows[r].bad_worker, 0);
    }
    nb_parallel_for(8, 1, nested_range, rows);
    for (int r = 0; r < 8; r++) {
        for (int i = 0; i < 100; i++) cr_assert_eq(atomic_load(&rows[r].hits[i]), 1);
        free(rows[r].hits);
    }
}

/* Two user threads share the pool; each call must still see all its work. */
static void *hammer(void *argument)
{
    int64_t *failures = argument;
    for (int round = 0; round < 200; round++) {
        coverage c = {.threads = 2, .hits = calloc(1000, sizeof(atomic_int))};
        atomic_init(&c.ranges, 0);
        atomic_init(&c.smallest, 1 << 30);
        atomic_init(&c.bad_worker, 0);
        nb_parallel_for(1000, 10, count_range, &c);
        for (int i = 0; i < 1000; i++)
            if (atomic_load(&c.hits[i]) != 1) (*failures)++;
        free(c.hits);
    }
    return NULL;
}

Test(threads, concurrent_callers_are_safe)
{
    cr_assert_eq(nb_set_num_threads(2), NB_OK);
    pthread_t other;
    int64_t failures[2] = {0, 0};
    cr_assert_eq(pthread_create(&other, NULL, hammer, &failures[1]), 0);
    hammer(&failures[0]);
    pthread_join(other, NULL);
    cr_assert_eq(failures[0] + failures[1], 0, "%ld indices missed or repeated",
                 (long)(failures[0] + failures[1]));
}

/* Resizing between calls rebuilds the pool; work is still covered. */
Test(threads, resizing_between_calls)
{
    for (int round = 0; round < 20; round++) {
        cr_assert_eq(nb_set_num_threads(1 + round % 4), NB_OK);
        check_coverage(1 + round % 4, 777, 3);
    }
}
