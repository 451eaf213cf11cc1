#include "base/alloc.h"

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
static _Thread_local const char *running_op;

const char *nb_last_error(void) { return last_error; }

void nb_clear_error(void) { last_error[0] = '\0'; }

const char *nb_alloc_set_op(const char *op)
{
    const char *previous = running_op;
    running_op = op;
    return previous;
}

const char *nb_alloc_who(const char *fallback) { return running_op ? running_op : fallback; }

int nb_set_allocator(nb_malloc_fn malloc_fn, nb_free_fn free_fn, void *user)
{
    /* With one hook only, blocks from one function would be freed by the
     * other (the user's malloc and libc's free, or the reverse). */
    if (!malloc_fn != !free_fn)
        return nb_fail(NB_ERR_INVALID, "nb_set_allocator: %s is NULL but %s is not; give both "
                       "hooks, or NULL for both to restore malloc and free",
                       malloc_fn ? "free_fn" : "malloc_fn", malloc_fn ? "malloc_fn" : "free_fn");
    user_malloc = malloc_fn;
    user_free = free_fn;
    user_data = user;
    return NB_OK;
}

/* The hook sees the real request size plus room to align; we keep the
 * original pointer just before the aligned block so nb_free can find it. */
void *nb_malloc_for(size_t size, const char *who)
{
    size_t total = size + NB_ALIGN + sizeof(void *);
    if (total < size) {
        nb_fail(NB_ERR_NOMEM, "%s: out of memory: request of %zu bytes overflows",
                nb_alloc_who(who), size);
        return NULL;
    }
    void *raw = user_malloc ? user_malloc(total, user_data) : malloc(total);
    if (!raw) {
        nb_fail(NB_ERR_NOMEM, "%s: out of memory: could not allocate %zu bytes", nb_alloc_who(who),
                size);
        return NULL;
    }
    uintptr_t start = (uintptr_t)raw + sizeof(void *);
    uintptr_t aligned = (start + NB_ALIGN - 1) & ~(uintptr_t)(NB_ALIGN - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

void *nb_calloc_for(size_t count, size_t size, const char *who)
{
    if (size && count > SIZE_MAX / size) {
        nb_fail(NB_ERR_NOMEM, "%s: out of memory: %zu x %zu bytes overflows", nb_alloc_who(who),
                count, size);
        return NULL;
    }
    void *p = nb_malloc_for(count * size, who);
    if (p) memset(p, 0, count * size);
    return p;
}

/* The public entry points (nabla/status.h), for code outside the library;
 * the parentheses keep the macros of alloc.h from expanding. */
void *(nb_malloc)(size_t size) { return nb_malloc_for(size, "nb_malloc"); }
void *(nb_calloc)(size_t count, size_t size) { return nb_calloc_for(count, size, "nb_calloc"); }

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
