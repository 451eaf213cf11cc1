/* Internal: tasks handed out one at a time across the thread pool.
 *
 * Every thread of the pool (the caller included) takes the next unclaimed
 * task until none are left, so a thread that starts late (the cores are
 * busy with other programs) does not hold the others up. Results must not
 * depend on which thread runs a task: each task writes its own outputs, and
 * `worker` only picks per-thread scratch. */
#ifndef NABLA_OPS_PARALLEL_H
#define NABLA_OPS_PARALLEL_H

#include <stdint.h>

typedef void (*nb_task_fn)(void *ctx, int64_t task, int worker);

/* How many per-thread scratch slots a call needs: the thread count. */
int nb_parallel_slots(void);

/* Runs fn(ctx, task, worker) for every task in [0, tasks), with
 * 0 <= worker < slots (threads numbered past `slots`, should the thread
 * count grow meanwhile, take no tasks). */
void nb_parallel_tasks(int64_t tasks, int slots, nb_task_fn fn, void *ctx);

/* `tasks` equal pieces of work regrouped for the threads: the count
 * rounded up to a multiple of the thread count (when above 1), so that
 * no thread is left with one piece more than the others (3 pieces on 2
 * threads take 2/3 of the time of 1 piece each; 4 smaller ones, 1/2). */
int64_t nb_balanced_tasks(int64_t tasks);

/* Element counts below which splitting an element-wise loop across
 * threads costs more than it saves. */
enum { NB_ELEMENTWISE_GRAIN = 1 << 15 };

/* An element-wise loop over [0, n) across the threads: fn(ctx, begin,
 * length) on chunks of about NB_ELEMENTWISE_GRAIN elements, as many for
 * each thread (nb_balanced_tasks). Each element lies in one chunk, so a
 * loop that computes every element alone gives the same bits for any
 * thread count. */
typedef void (*nb_range_fn)(void *ctx, int64_t begin, int64_t length);
void nb_parallel_ranges(int64_t n, nb_range_fn fn, void *ctx);

#endif
