/* The thread pool behind nb_parallel_for (include/nabla/threads.h).
 *
 * `count - 1` persistent workers plus the calling thread (worker 0). A job
 * is published by resetting a shared range counter and bumping a generation
 * counter. Every participant, the caller included, then claims ranges from
 * the counter until none are left, so a worker that is slow to wake (or
 * descheduled on a busy machine) never holds the caller up: the caller just
 * runs that range itself. The caller then waits only for ranges already
 * being run elsewhere.
 *
 * A worker that finished spins on the generation for a short while (kernels
 * in a training step come back to back, and a condition-variable wake-up
 * costs tens of microseconds), then sleeps on a condition variable, so an
 * idle pool burns no CPU.
 *
 * Only one job runs at a time: callers from different user threads take
 * submit_lock in turn. A call made from inside a job (nested) runs inline on
 * its own thread instead, since waiting for the pool would deadlock. Worker
 * numbers are unique among the ranges running at once within one call.
 *
 * The pool is (re)built lazily, under submit_lock, the first time a job
 * needs more than one thread with a count it was not built for; that is the
 * only allocation. A pool that cannot be built degrades to inline runs. It
 * is joined and freed at exit. */
#include "nabla/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/alloc.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum {
    /* Upper bound on nb_set_num_threads; far above any sane request. */
    MAX_THREADS = 1024,
    /* Pause iterations before sleeping: ~50 us on current Intel cores
     * (a pause is ~14 ns there), a few condvar round trips. */
    SPIN_ITERATIONS = 4000
};

typedef struct pool {
    pthread_mutex_t lock;  /* guards the condvars' predicates */
    pthread_cond_t wake;   /* workers wait here for a new job */
    pthread_cond_t done;   /* the caller waits here for the last range */
    pthread_t *threads;    /* thread_count - 1 workers */
    int thread_count;      /* including the caller; 0 = no pool */
    unsigned start_generation; /* generation when the workers started */
    atomic_uint generation;    /* bumped once per job (and to stop) */
    atomic_bool stopping;
    /* The current job. fn, ctx and n are written before `claims` is
     * published (a release store) and read only by a participant that
     * claimed a range of that job, which keeps the job open until done. */
    nb_parallel_fn fn;
    void *ctx;
    int64_t n;
    /* job serial << 32 | range count << 16 | next range to claim: one word,
     * so a participant that is late for a job can never claim a range of
     * the next one by mistake (its compare-exchange sees the new serial). */
    atomic_ullong claims;
    atomic_llong finished_ranges;
} pool;

static pool the_pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int configured_threads; /* 0 until first read */
static _Thread_local bool inside_job;  /* pool workers, and callers mid-job */

/* The i-th of `ranges` balanced ranges of [0, n): sizes differ by at most
 * one, so each is at least n / ranges >= grain. */
static void range_bounds(int64_t n, int64_t ranges, int64_t index, int64_t *begin,
                         int64_t *end)
{
    int64_t base = n / ranges, extra = n % ranges;
    *begin = index * base + (index < extra ? index : extra);
    *end = *begin + base + (index < extra ? 1 : 0);
}

enum { CLAIM_FIELD_BITS = 16, CLAIM_FIELD_MASK = 0xFFFF };

/* Claims and runs ranges of the current job until none are left. */
static void run_ranges(pool *p, int worker)
{
    unsigned long long word = atomic_load_explicit(&p->claims, memory_order_acquire);
    for (;;) {
        int64_t index = (int64_t)(word & CLAIM_FIELD_MASK);
        int64_t ranges = (int64_t)((word >> CLAIM_FIELD_BITS) & CLAIM_FIELD_MASK);
        if (index >= ranges) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claims, &word, word + 1,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue; /* `word` now holds the current value: retry */
        int64_t begin, end;
        range_bounds(p->n, ranges, index, &begin, &end);
        p->fn(p->ctx, begin, end, worker);
        long long finished =
            atomic_fetch_add_explicit(&p->finished_ranges, 1, memory_order_acq_rel) + 1;
        if (finished == ranges) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
        word = atomic_load_explicit(&p->claims, memory_order_acquire);
    }
}

static unsigned wait_for_generation(pool *p, unsigned seen)
{
    for (int spin = 0; spin < SPIN_ITERATIONS; spin++) {
        unsigned now = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (now != seen) return now;
        CPU_RELAX();
    }
    /* Publishers bump `generation` before taking the lock to broadcast, so
     * checking it under the lock cannot miss a wake-up. */
    pthread_mutex_lock(&p->lock);
    unsigned now;
    while ((now = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return now;
}

static void *worker_main(void *arg)
{
    pool *p = &the_pool;
    /* The index rides in the pointer itself: no allocation per worker. The
     * starting generation was set before pthread_create, so a job published
     * before this thread first runs is not missed. */
    int index = (int)(intptr_t)arg;
    unsigned seen = p->start_generation;
    inside_job = true;
    for (;;) {
        seen = wait_for_generation(p, seen);
        if (atomic_load_explicit(&p->stopping, memory_order_acquire)) break;
        run_ranges(p, index);
    }
    return NULL;
}

static void publish(pool *p)
{
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

/* Called with submit_lock held (or at exit). Joins the first `started`
 * workers and leaves no pool. */
static void pool_stop(pool *p, int started)
{
    atomic_store_explicit(&p->stopping, true, memory_order_release);
    publish(p);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
    atomic_store_explicit(&p->stopping, false, memory_order_release);
    nb_free(p->threads);
    p->threads = NULL;
    p->thread_count = 0;
}

static bool pool_start(pool *p, int count)
{
    p->threads = nb_malloc(sizeof(pthread_t) * (size_t)(count - 1));
    if (!p->threads) return false;
    p->start_generation = atomic_load_explicit(&p->generation, memory_order_acquire);
    for (int i = 0; i < count - 1; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) {
            pool_stop(p, i);
            return false;
        }
    }
    p->thread_count = count;
    return true;
}

/* Joins the workers when the program exits (or the shared library is
 * unloaded), so leak checkers see no live threads or lost blocks. If a job
 * is still running somewhere, the pool is left alone rather than waited for. */
__attribute__((destructor)) static void pool_shutdown(void)
{
    if (pthread_mutex_trylock(&submit_lock) != 0) return;
    if (the_pool.thread_count > 0) pool_stop(&the_pool, the_pool.thread_count - 1);
    pthread_mutex_unlock(&submit_lock);
}

static int default_thread_count(void)
{
    const char *text = getenv("NABLA_NUM_THREADS");
    if (text && *text) {
        char *end;
        long value = strtol(text, &end, 10);
        if (*end == '\0' && value >= 1) return value > MAX_THREADS ? MAX_THREADS : (int)value;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) return 1;
    return cores > MAX_THREADS ? MAX_THREADS : (int)cores;
}

int nb_get_num_threads(void)
{
    int count = atomic_load_explicit(&configured_threads, memory_order_acquire);
    if (count > 0) return count;
    int expected = 0;
    count = default_thread_count();
    /* Another thread may have won the race (or called nb_set_num_threads);
     * its value stands. */
    if (!atomic_compare_exchange_strong(&configured_threads, &expected, count))
        return expected;
    return count;
}

int nb_set_num_threads(int count)
{
    if (count < 1)
        return nb_fail(NB_ERR_INVALID, "nb_set_num_threads: count %d must be >= 1", count);
    if (count > MAX_THREADS)
        return nb_fail(NB_ERR_INVALID, "nb_set_num_threads: count %d exceeds the limit of %d",
                       count, MAX_THREADS);
    atomic_store_explicit(&configured_threads, count, memory_order_release);
    return NB_OK;
}

void nb_parallel_for(int64_t n, int64_t grain, nb_parallel_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t ranges = n / grain;
    int threads = nb_get_num_threads();
    if (ranges > threads) ranges = threads;
    if (ranges <= 1 || inside_job) {
        fn(ctx, 0, n, 0);
        return;
    }

    pthread_mutex_lock(&submit_lock);
    pool *p = &the_pool;
    if (p->thread_count != threads) {
        if (p->thread_count > 0) pool_stop(p, p->thread_count - 1);
        if (!pool_start(p, threads)) {
            pthread_mutex_unlock(&submit_lock);
            fn(ctx, 0, n, 0);
            return;
        }
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->finished_ranges, 0, memory_order_relaxed);
    unsigned long long serial = (atomic_load_explicit(&p->claims, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&p->claims,
                          (serial << 32) | ((unsigned long long)ranges << CLAIM_FIELD_BITS),
                          memory_order_release);
    publish(p);

    inside_job = true;
    run_ranges(p, 0);
    inside_job = false;

    for (int spin = 0; spin < SPIN_ITERATIONS; spin++) {
        if (atomic_load_explicit(&p->finished_ranges, memory_order_acquire) == ranges) break;
        CPU_RELAX();
    }
    if (atomic_load_explicit(&p->finished_ranges, memory_order_acquire) != ranges) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load_explicit(&p->finished_ranges, memory_order_acquire) != ranges)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&submit_lock);
}
