/* Internal: allocation and error reporting shared by the whole library.
 * nb_malloc, nb_calloc, nb_free and nb_fail are public (nabla/status.h),
 * for libraries built on nabla such as the data loader. Inside the library
 * nb_malloc and nb_calloc are macros that pass the calling function's
 * name, so an out-of-memory message names who asked. */
#ifndef NABLA_INTERNAL_ALLOC_H
#define NABLA_INTERNAL_ALLOC_H

#include <stddef.h>

#include "nabla/status.h"

void *nb_malloc_for(size_t size, const char *who);
void *nb_calloc_for(size_t count, size_t size, const char *who);
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

#endif
