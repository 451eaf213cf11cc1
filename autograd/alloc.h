/* Internal: allocation and error reporting shared by the whole library. */
#ifndef NABLA_INTERNAL_ALLOC_H
#define NABLA_INTERNAL_ALLOC_H

#include <stddef.h>
#include "nabla/status.h"

/* Allocate through the user's hook; sets nb_last_error on failure. The
 * returned memory is aligned to NB_ALIGN bytes (AVX-512 loads). */
#define NB_ALIGN 64
void *nb_malloc_for(size_t size, const char *who);
void *nb_calloc_for(size_t count, size_t size, const char *who);
void nb_free(void *ptr);
/* status.h promises every message names its function or op: an
 * out-of-memory message names the op that is running (see
 * nb_alloc_set_op), else the C function that asked. */
#define nb_malloc(size) nb_malloc_for((size), __func__)
#define nb_calloc(count, size) nb_calloc_for((count), (size), __func__)
/* Names `op` (NULL: none) in this thread's out-of-memory messages until
 * the next call; returns the previous name, for nesting. */
const char *nb_alloc_set_op(const char *op);
/* The op set by nb_alloc_set_op, or `fallback`. */
const char *nb_alloc_who(const char *fallback);

/* Records a printf-style message as the thread's last error and returns
 * the status, so call sites read `return nb_fail(NB_ERR_INVALID, ...)`. */
int nb_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
