/* nabla: the thread pool.
 * The count comes from NABLA_NUM_THREADS at first use, else the number of
 * online cores; nb_set_num_threads overrides it. Work too small to pay for a
 * wake-up runs on the calling thread. Results never depend on the count. */
#ifndef NABLA_THREADS_H
#define NABLA_THREADS_H

#include "nabla/export.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the number of threads (>= 1) used by kernels; returns NB_OK or an error. */
NB_API int nb_set_num_threads(int count);
NB_API int nb_get_num_threads(void);

/* Calls fn(ctx, begin, end, worker) over disjoint ranges covering [0, n);
 * worker is the running thread's index, 0 <= worker < nb_get_num_threads(),
 * so per-thread scratch can be indexed by it.
 * Ranges never shrink below `grain` items, so small n runs inline. */
typedef void (*nb_parallel_fn)(void *ctx, int64_t begin, int64_t end, int worker);
NB_API void nb_parallel_for(int64_t n, int64_t grain, nb_parallel_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
