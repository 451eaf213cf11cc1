/* Internal: where tensor headers live.
 *
 * A header is never inside memory that goes back to the system while a
 * pointer to it may still be passed in, so "is this tensor usable?" is
 * answered by comparing its address with the stores' chunks and reading a
 * side table indexed by slot: the header itself is never read, since the
 * memory may hold a different tensor now or the user may have written it.
 *
 *   nb_header_ring: one per tape. Chunks of headers kept until the tape is
 *     freed; a step takes slots in ring order, continuing where the last
 *     step stopped, and a slot is taken again only NB_TAPE_REUSE_STEPS
 *     steps after the step that last took it (the ring grows otherwise).
 *   nb_header_pool: one per process, for persistent tensors. Freed slots
 *     are marked dead and reused in FIFO order once NB_TENSOR_REUSE_FREES
 *     later frees have queued behind them. Thread-safe. */
#ifndef NABLA_INTERNAL_HEADERS_H
#define NABLA_INTERNAL_HEADERS_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/tensor.h"

typedef struct nb_header_chunk nb_header_chunk;

typedef struct nb_header_ring {
    nb_header_chunk *chunks;   /* the active ring first, then retired ones */
    size_t cursor;             /* next slot of the active ring */
    size_t taken;              /* headers taken in this step */
    size_t step_high_water;    /* most headers taken in one step */
    void *owner;               /* the tape, for nb_header_ring_owner_of */
    struct nb_header_ring *registry_next;
} nb_header_ring;

/* Lists the ring in the process-wide registry of live rings. */
void nb_header_ring_init(nb_header_ring *ring, void *owner);
/* Unlists it and frees its chunks. */
void nb_header_ring_release(nb_header_ring *ring);
/* A zeroed header slot for `step`, or NULL with an out-of-memory error
 * naming `who`. */
nb_tensor *nb_header_ring_take(nb_header_ring *ring, uint64_t step, const char *who);
/* At a reset: grows the ring, if needed, so that steps as large as the
 * largest so far never have to grow it (no allocation in steady state). */
void nb_header_ring_end_step(nb_header_ring *ring);
/* Whether ptr is a header slot of the ring; *step is the step that last
 * took it (0: never). Reads only the ring's chunk list and side table. */
bool nb_header_ring_find(const nb_header_ring *ring, const void *ptr, uint64_t *step);
/* The owner of the live ring holding ptr as a header slot, or NULL. */
void *nb_header_ring_owner_of(const void *ptr);

typedef enum nb_pool_state {
    NB_POOL_NOT_OURS = 0,      /* not a slot of the persistent pool */
    NB_POOL_LIVE = 1,
    NB_POOL_DEAD = 2           /* freed, not yet reused */
} nb_pool_state;

/* A zeroed header for a persistent tensor, or NULL with an error naming
 * `who`. */
nb_tensor *nb_header_pool_take(const char *who);
/* Marks a live slot dead and queues it for reuse. */
void nb_header_pool_give(nb_tensor *header);
nb_pool_state nb_header_pool_state(const void *ptr);

#endif
