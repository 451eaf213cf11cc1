/* Internal: the bump allocator behind a tape step.
 * Memory comes in chunks; a reset keeps one chunk as large as the step's
 * high-water mark, so after the first step the arena never allocates. */
#ifndef NABLA_INTERNAL_ARENA_H
#define NABLA_INTERNAL_ARENA_H

#include <stddef.h>

typedef struct nb_arena_chunk nb_arena_chunk;

typedef struct nb_arena {
    nb_arena_chunk *chunks;    /* newest first */
    size_t used;               /* bytes handed out this step, all chunks */
    size_t high_water;         /* largest `used` seen */
    size_t capacity;           /* bytes held in all chunks */
} nb_arena;

void nb_arena_init(nb_arena *arena);
void *nb_arena_alloc(nb_arena *arena, size_t bytes);
void nb_arena_reset(nb_arena *arena);
void nb_arena_release(nb_arena *arena);
/* Whether ptr points into memory handed out since the last reset. */
int nb_arena_owns(const nb_arena *arena, const void *ptr);

#endif
