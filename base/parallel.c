/* Tasks claimed from a shared counter (base/parallel.h). */
#include "base/parallel.h"

#include <stdatomic.h>

#include "nabla/threads.h"

typedef struct task_job {
    atomic_llong next;
    int64_t tasks;
    int slots;
    nb_task_fn fn;
    void *ctx;
} task_job;

/* Each thread that gets a range claims tasks until they run out. */
static void claim_tasks(void *context, int64_t begin, int64_t end, int worker)
{
    (void)begin, (void)end;
    task_job *job = context;
    if (worker < 0 || worker >= job->slots) return; /* no scratch slot: the others do it */
    for (;;) {
        int64_t task = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (task >= job->tasks) return;
        job->fn(job->ctx, task, worker);
    }
}

int nb_parallel_slots(void)
{
    int threads = nb_get_num_threads();
    return threads < 1 ? 1 : threads;
}

int64_t nb_balanced_tasks(int64_t tasks)
{
    int64_t threads = nb_parallel_slots();
    if (tasks <= 1 || threads <= 1) return tasks;
    return (tasks + threads - 1) / threads * threads;
}

void nb_parallel_tasks(int64_t tasks, int slots, nb_task_fn fn, void *ctx)
{
    if (tasks <= 0) return;
    task_job job = {.tasks = tasks, .slots = slots < 1 ? 1 : slots, .fn = fn, .ctx = ctx};
    atomic_init(&job.next, 0);
    /* One range per thread that can help; worker 0 (the caller) always
     * takes part, so every task runs. */
    int64_t ranges = tasks < job.slots ? tasks : job.slots;
    nb_parallel_for(ranges, 1, claim_tasks, &job);
}

typedef struct range_job {
    nb_range_fn fn;
    void *ctx;
    int64_t n, chunk;
} range_job;

static void range_task(void *context, int64_t task, int worker)
{
    (void)worker;
    const range_job *job = context;
    int64_t begin = task * job->chunk;
    job->fn(job->ctx, begin, job->n - begin < job->chunk ? job->n - begin : job->chunk);
}

void nb_parallel_ranges(int64_t n, nb_range_fn fn, void *ctx)
{
    int64_t chunks = nb_balanced_tasks((n + NB_ELEMENTWISE_GRAIN - 1) / NB_ELEMENTWISE_GRAIN);
    if (chunks < 1) return;
    range_job job = {.fn = fn, .ctx = ctx, .n = n, .chunk = (n + chunks - 1) / chunks};
    nb_parallel_tasks((n + job.chunk - 1) / job.chunk, nb_parallel_slots(), range_task, &job);
}
