/* The tape's header ring (see autograd/headers.h). */
#include <pthread.h>
#include <string.h>

#include "base/alloc.h"
#include "autograd/headers.h"
#include "nabla/tape.h"

/* A first ring of 256 headers (about 45 KiB) holds a small model's steps
 * (LeNet-5 makes about 60 tensors a step) NB_TAPE_REUSE_STEPS times over. */
enum { MIN_RING_SLOTS = 256 };

struct nb_header_chunk {
    nb_header_chunk *next;     /* the previous active ring, now retired */
    size_t count;
    uintptr_t begin, end;      /* address range of `headers` */
    nb_tensor *headers;
    uint64_t *taken_in;        /* step that last took each slot; 0: never */
};

/* Live rings, for messages about another tape's tensors. The lock also
 * covers changes to any ring's chunk list, which those lookups walk. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static nb_header_ring *registry;

void nb_header_ring_init(nb_header_ring *ring, void *owner)
{
    memset(ring, 0, sizeof *ring);
    ring->owner = owner;
    pthread_mutex_lock(&registry_lock);
    ring->registry_next = registry;
    registry = ring;
    pthread_mutex_unlock(&registry_lock);
}

void nb_header_ring_release(nb_header_ring *ring)
{
    pthread_mutex_lock(&registry_lock);
    for (nb_header_ring **link = &registry; *link; link = &(*link)->registry_next)
        if (*link == ring) {
            *link = ring->registry_next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    nb_header_chunk *chunk = ring->chunks;
    while (chunk) {
        nb_header_chunk *next = chunk->next;
        nb_free(chunk);
        chunk = next;
    }
    ring->chunks = NULL;
}

static size_t round_up(size_t bytes) { return (bytes + NB_ALIGN - 1) & ~(size_t)(NB_ALIGN - 1); }

/* Replaces the active ring with a new one of `count` slots. The old one is
 * retired, not freed: pointers into it must still be recognised. */
static int grow(nb_header_ring *ring, size_t count, const char *who)
{
    size_t head = round_up(sizeof(nb_header_chunk));
    size_t per_slot = sizeof(nb_tensor) + sizeof(uint64_t);
    if (count > (SIZE_MAX - head) / per_slot)
        return nb_fail(NB_ERR_NOMEM, "%s: out of memory: %zu tensor headers overflow",
                       nb_alloc_who(who), count);
    unsigned char *block = nb_malloc(head + count * per_slot);
    if (!block)
        return nb_fail(NB_ERR_NOMEM, "%s: out of memory: could not allocate %zu tensor headers",
                       nb_alloc_who(who), count);
    nb_header_chunk *chunk = (nb_header_chunk *)block;
    chunk->count = count;
    chunk->headers = (nb_tensor *)(block + head);
    chunk->taken_in = (uint64_t *)(chunk->headers + count);
    memset(chunk->taken_in, 0, count * sizeof(uint64_t));
    chunk->begin = (uintptr_t)chunk->headers;
    chunk->end = chunk->begin + count * sizeof(nb_tensor);
    pthread_mutex_lock(&registry_lock);
    chunk->next = ring->chunks;
    ring->chunks = chunk;
    pthread_mutex_unlock(&registry_lock);
    ring->cursor = 0;
    return NB_OK;
}

static bool reusable(const nb_header_chunk *chunk, size_t slot, uint64_t step)
{
    uint64_t taken = chunk->taken_in[slot];
    return taken == 0 || taken + NB_TAPE_REUSE_STEPS <= step;
}

nb_tensor *nb_header_ring_take(nb_header_ring *ring, uint64_t step, const char *who)
{
    nb_header_chunk *active = ring->chunks;
    if (!active || !reusable(active, ring->cursor, step)) {
        /* Every slot is too recent to reuse: double, so a first step of
         * any size grows the ring a logarithmic number of times. */
        size_t count = active ? 2 * active->count : MIN_RING_SLOTS;
        if (grow(ring, count, who) != NB_OK) return NULL;
        active = ring->chunks;
    }
    size_t slot = ring->cursor;
    ring->cursor = slot + 1 == active->count ? 0 : slot + 1;
    active->taken_in[slot] = step;
    ring->taken++;
    nb_tensor *header = &active->headers[slot];
    memset(header, 0, sizeof *header);
    return header;
}

void nb_header_ring_end_step(nb_header_ring *ring)
{
    if (ring->taken > ring->step_high_water) ring->step_high_water = ring->taken;
    ring->taken = 0;
    /* With room for NB_TAPE_REUSE_STEPS + 1 of the largest steps, the slot
     * at the cursor is always old enough and a steady step never grows the
     * ring. A failure here is not an error yet: the next take retries. */
    size_t wanted = (NB_TAPE_REUSE_STEPS + 1) * ring->step_high_water;
    if (ring->chunks && ring->chunks->count < wanted) grow(ring, wanted, "nb_tape_reset");
}

static bool chunk_slot(const nb_header_chunk *chunk, uintptr_t p, size_t *slot)
{
    if (p < chunk->begin || p >= chunk->end) return false;
    size_t offset = (size_t)(p - chunk->begin);
    if (offset % sizeof(nb_tensor) != 0) return false;
    *slot = offset / sizeof(nb_tensor);
    return true;
}

bool nb_header_ring_find(const nb_header_ring *ring, const void *ptr, uint64_t *step)
{
    size_t slot;
    for (const nb_header_chunk *chunk = ring->chunks; chunk; chunk = chunk->next)
        if (chunk_slot(chunk, (uintptr_t)ptr, &slot)) {
            *step = chunk->taken_in[slot];
            return true;
        }
    return false;
}

void *nb_header_ring_owner_of(const void *ptr)
{
    void *owner = NULL;
    size_t slot;
    pthread_mutex_lock(&registry_lock);
    for (const nb_header_ring *ring = registry; ring && !owner; ring = ring->registry_next)
        for (const nb_header_chunk *chunk = ring->chunks; chunk && !owner; chunk = chunk->next)
            if (chunk_slot(chunk, (uintptr_t)ptr, &slot)) owner = ring->owner;
    pthread_mutex_unlock(&registry_lock);
    return owner;
}
