#include "autograd/alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ERROR_CAPACITY = 512 };

static _Thread_local char last_error[ERROR_CAPACITY];

static nb_malloc_fn user_malloc;
static nb_free_fn user_free;
static void *user_data;

const char *nb_last_error(void) { return last_error; }

void nb_clear_error(void) { last_error[0] = '\0'; }

void nb_set_allocator(nb_malloc_fn malloc_fn, nb_free_fn free_fn, void *user)
{
    user_malloc = malloc_fn;
    user_free = free_fn;
    user_data = user;
}

/* The hook sees the real request size plus room to align; we keep the
 * original pointer just before the aligned block so nb_free can find it. */
void *nb_malloc(size_t size)
{
    size_t total = size + NB_ALIGN + sizeof(void *);
    if (total < size) {
        nb_fail(NB_ERR_NOMEM, "out of memory: request of %zu bytes overflows", size);
        return NULL;
    }
    void *raw = user_malloc ? user_malloc(total, user_data) : malloc(total);
    if (!raw) {
        nb_fail(NB_ERR_NOMEM, "out of memory: could not allocate %zu bytes", size);
        return NULL;
    }
    uintptr_t start = (uintptr_t)raw + sizeof(void *);
    uintptr_t aligned = (start + NB_ALIGN - 1) & ~(uintptr_t)(NB_ALIGN - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

void *nb_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        nb_fail(NB_ERR_NOMEM, "out of memory: %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = nb_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void nb_free(void *ptr)
{
    if (!ptr) return;
    void *raw = ((void **)ptr)[-1];
    if (user_free) user_free(raw, user_data);
    else free(raw);
}

int nb_fail(int status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}
