#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ops/dispatch.h"

static int index_of(const nb_dispatch *d, const char *name)
{
    for (int i = 0; d->name_at(i); i++)
        if (strcmp(d->name_at(i), name) == 0) return i;
    return NB_DISPATCH_UNKNOWN;
}

int nb_dispatch_forced(nb_dispatch *d)
{
    int index = atomic_load_explicit(&d->forced, memory_order_acquire);
    if (index != NB_DISPATCH_NOT_READ) return index;
    const char *name = getenv(d->variable);
    index = name && *name ? index_of(d, name) : NB_DISPATCH_AUTOMATIC;
    /* Racing first calls read the same environment; storing twice is fine. */
    atomic_store_explicit(&d->forced, index, memory_order_release);
    return index;
}

int nb_dispatch_force(nb_dispatch *d, const char *who, const char *name)
{
    int index = name ? index_of(d, name) : NB_DISPATCH_AUTOMATIC;
    if (index == NB_DISPATCH_UNKNOWN) {
        char names[256];
        return nb_fail(NB_ERR_INVALID, "%s: \"%s\" names no path (known: %s)", who, name,
                       nb_dispatch_known(d, names, sizeof names));
    }
    atomic_store_explicit(&d->forced, index, memory_order_release);
    return NB_OK;
}

const char *nb_dispatch_known(const nb_dispatch *d, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; d->name_at(i) && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", d->name_at(i));
    return buf;
}
