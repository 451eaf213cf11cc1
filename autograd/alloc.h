/* Internal: allocation and error reporting shared by the whole library. */
#ifndef NABLA_INTERNAL_ALLOC_H
#define NABLA_INTERNAL_ALLOC_H

#include <stddef.h>
#include "nabla/status.h"

/* Allocate through the user's hook; sets nb_last_error on failure. The
 * returned memory is aligned to NB_ALIGN bytes (AVX-512 loads). */
#define NB_ALIGN 64
void *nb_malloc(size_t size);
void *nb_calloc(size_t count, size_t size);
void nb_free(void *ptr);

/* Records a printf-style message as the thread's last error and returns
 * the status, so call sites read `return nb_fail(NB_ERR_INVALID, ...)`. */
int nb_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
