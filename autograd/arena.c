#include "autograd/arena.h"

#include <stdint.h>

#include "base/alloc.h"

enum { MIN_CHUNK_BYTES = 1 << 20 };

struct nb_arena_chunk {
    nb_arena_chunk *next;
    size_t size;               /* usable bytes after the header */
    size_t offset;             /* bytes used */
    unsigned char *memory;
};

void nb_arena_init(nb_arena *arena)
{
    arena->chunks = NULL;
    arena->used = 0;
    arena->high_water = 0;
    arena->capacity = 0;
}

static nb_arena_chunk *chunk_new(size_t size)
{
    nb_arena_chunk *chunk = nb_malloc(sizeof *chunk);
    if (!chunk) return NULL;
    chunk->memory = nb_malloc(size);
    if (!chunk->memory) {
        nb_free(chunk);
        return NULL;
    }
    chunk->size = size;
    chunk->offset = 0;
    chunk->next = NULL;
    return chunk;
}

static size_t round_up(size_t bytes) { return (bytes + NB_ALIGN - 1) & ~(size_t)(NB_ALIGN - 1); }

void *nb_arena_alloc(nb_arena *arena, size_t bytes)
{
    size_t need = round_up(bytes ? bytes : 1);
    if (need < bytes) {
        nb_fail(NB_ERR_NOMEM, "%s: out of memory: arena request of %zu bytes overflows",
                nb_alloc_who("nb_tape_alloc"), bytes);
        return NULL;
    }
    nb_arena_chunk *chunk = arena->chunks;
    if (!chunk || chunk->size - chunk->offset < need) {
        /* Doubling keeps the number of chunks in a first step logarithmic. */
        size_t size = arena->capacity > MIN_CHUNK_BYTES ? arena->capacity : MIN_CHUNK_BYTES;
        if (size < need) size = need;
        chunk = chunk_new(size);
        if (!chunk) return NULL;
        chunk->next = arena->chunks;
        arena->chunks = chunk;
        arena->capacity += size;
    }
    void *ptr = chunk->memory + chunk->offset;
    chunk->offset += need;
    arena->used += need;
    if (arena->used > arena->high_water) arena->high_water = arena->used;
    return ptr;
}

void nb_arena_reset(nb_arena *arena)
{
    if (arena->chunks && arena->chunks->next) {
        /* Several chunks: replace them with one that fits the whole step. */
        size_t size = round_up(arena->high_water);
        nb_arena_release(arena);
        nb_arena_chunk *chunk = chunk_new(size);
        if (chunk) {
            arena->chunks = chunk;
            arena->capacity = size;
        }
        arena->high_water = size;
    }
    for (nb_arena_chunk *chunk = arena->chunks; chunk; chunk = chunk->next) chunk->offset = 0;
    arena->used = 0;
}

void nb_arena_release(nb_arena *arena)
{
    nb_arena_chunk *chunk = arena->chunks;
    while (chunk) {
        nb_arena_chunk *next = chunk->next;
        nb_free(chunk->memory);
        nb_free(chunk);
        chunk = next;
    }
    size_t high_water = arena->high_water;
    nb_arena_init(arena);
    arena->high_water = high_water;
}

int nb_arena_owns(const nb_arena *arena, const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    for (const nb_arena_chunk *chunk = arena->chunks; chunk; chunk = chunk->next) {
        uintptr_t start = (uintptr_t)chunk->memory;
        if (p >= start && p < start + chunk->offset) return 1;
    }
    return 0;
}

nb_arena_mark nb_arena_mark_now(const nb_arena *arena)
{
    nb_arena_mark mark = {arena->chunks, arena->chunks ? arena->chunks->offset : 0, arena->used};
    return mark;
}

void nb_arena_rewind(nb_arena *arena, nb_arena_mark mark)
{
    /* Chunks newer than the mark's were added for what is handed back:
     * empty them (the newest stays first, so allocation continues there). */
    for (nb_arena_chunk *chunk = arena->chunks; chunk && chunk != mark.chunk; chunk = chunk->next)
        chunk->offset = 0;
    if (mark.chunk) mark.chunk->offset = mark.offset;
    arena->used = mark.used;
}
