/* nabla: errors and the allocator hook.
 *
 * The error convention, used everywhere in nabla:
 *   - A function that returns a pointer returns NULL on failure; one that
 *     returns int returns NB_OK (0) on success and a negative nb_status on
 *     failure.
 *   - The message of the most recent failure on this thread is in
 *     nb_last_error(). It always names the function or op and, for shape
 *     problems, the shapes, e.g. "matmul: [3,4] x [5,6]: inner dims 4 != 5".
 *   - Ops on a tape are also sticky: the first failure stays on the tape
 *     (nb_tape_error) until nb_tape_reset, and every later op on that tape
 *     returns NULL without touching the message. A NULL input is such a
 *     failure too ("relu: input 0: tensor is NULL" on a clean tape). So a
 *     whole forward pass can be written without checks and tested once at
 *     the end.
 * Nothing in nabla aborts or exits on bad input. */
#ifndef NABLA_STATUS_H
#define NABLA_STATUS_H

#include "nabla/export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nb_status {
    NB_OK = 0,
    NB_ERR_INVALID = -1,   /* bad argument: shape, dtype, parameter, NULL */
    NB_ERR_NOMEM = -2,     /* allocation failed */
    NB_ERR_IO = -3,        /* file could not be read or written */
    NB_ERR_FORMAT = -4,    /* malformed file */
    NB_ERR_STATE = -5      /* call not valid now (released tape, ...) */
} nb_status;

/* Message of the last failure on the calling thread ("" if none). */
NB_API const char *nb_last_error(void);
/* Clears the calling thread's last error. */
NB_API void nb_clear_error(void);

/* Every allocation nabla makes goes through these hooks, so tests can count
 * allocations or make the N-th one fail. Give both hooks, or NULL for both
 * to restore malloc/free; one without the other is NB_ERR_INVALID and
 * leaves the hooks as they were. Blocks are freed by the free hook that is
 * current then: change hooks only when nabla holds no block of the old
 * ones, or let both free the same way. Out-of-memory messages name the op
 * or function that asked ("relu: out of memory: ..."). */
typedef void *(*nb_malloc_fn)(size_t size, void *user);
typedef void (*nb_free_fn)(void *ptr, void *user);
NB_API int nb_set_allocator(nb_malloc_fn malloc_fn, nb_free_fn free_fn, void *user);

/* For libraries built on nabla (such as the data loader) and user ops:
 * memory from those hooks, aligned to NB_ALIGN bytes (NULL, with the last
 * error set, on failure), and recording a failure as nabla does. nb_fail
 * sets the calling thread's last error (printf-style: name the function)
 * and returns status, so call sites read `return nb_fail(NB_ERR_INVALID,
 * "...")`. */
#define NB_ALIGN 64
NB_API void *nb_malloc(size_t size);
NB_API void *nb_calloc(size_t count, size_t size);
NB_API void nb_free(void *ptr);
NB_API int nb_fail(int status, const char *fmt, ...) NB_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif
