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

/* A point in the arena's allocation sequence. nb_arena_rewind hands back
 * everything allocated after nb_arena_mark: the next allocations reuse it.
 * Chunks added in between stay (emptied), so a rewound step still never
 * allocates twice for the same high-water mark. */
typedef struct nb_arena_mark {
    nb_arena_chunk *chunk;     /* the newest chunk at the mark, or NULL */
    size_t offset;             /* its bytes used then */
    size_t used;
} nb_arena_mark;
nb_arena_mark nb_arena_mark_now(const nb_arena *arena);
void nb_arena_rewind(nb_arena *arena, nb_arena_mark mark);

#endif
