/* The process-wide header pool of persistent tensors (see
 * autograd/headers.h). Chunk k holds FIRST_SLOTS << k headers; the first
 * is static, so a program with few persistent tensors allocates nothing
 * for headers. Chunks are never freed. Taking and giving back hold a
 * mutex; nb_header_pool_state reads without it (published chunks never
 * change, and slot states are atomic). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "autograd/headers.h"

/* The static chunk holds NB_TENSOR_REUSE_FREES dead headers plus about
 * 3,000 live ones before the pool asks the allocator for more (so the
 * allocator hook sees one block per persistent tensor, its data, in any
 * ordinary program). It is zero-filled memory (bss, 4,096 x 176 bytes),
 * touched only as slots are first used. 20 doublings allow four billion
 * persistent tensors. */
enum { FIRST_SLOTS = 4096, MAX_CHUNKS = 20 };

enum { SLOT_UNUSED = 0, SLOT_LIVE = 1, SLOT_DEAD = 2 };

typedef struct pool_chunk {
    uintptr_t begin, end;      /* address range of `headers` */
    size_t count;
    nb_tensor *headers;
    _Atomic unsigned char *state;
    nb_tensor **next_dead;     /* the FIFO of dead slots, linked by slot */
} pool_chunk;

static nb_tensor first_headers[FIRST_SLOTS];
static _Atomic unsigned char first_state[FIRST_SLOTS];
static nb_tensor *first_next_dead[FIRST_SLOTS];

static pool_chunk chunks[MAX_CHUNKS];
static _Atomic int chunk_count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t fresh;           /* slots of the newest chunk handed out */
static nb_tensor *dead_head, *dead_tail;
static size_t dead_count;

static void publish(pool_chunk chunk)
{
    chunk.begin = (uintptr_t)chunk.headers;
    chunk.end = chunk.begin + chunk.count * sizeof(nb_tensor);
    int k = atomic_load_explicit(&chunk_count, memory_order_relaxed);
    chunks[k] = chunk;
    fresh = 0;
    atomic_store_explicit(&chunk_count, k + 1, memory_order_release);
}

static int grow(const char *who)
{
    int k = atomic_load_explicit(&chunk_count, memory_order_relaxed);
    if (k == 0) {
        publish((pool_chunk){.count = FIRST_SLOTS, .headers = first_headers,
                             .state = first_state, .next_dead = first_next_dead});
        return NB_OK;
    }
    if (k == MAX_CHUNKS)
        return nb_fail(NB_ERR_NOMEM, "%s: out of memory: too many persistent tensors",
                       nb_alloc_who(who));
    size_t count = (size_t)FIRST_SLOTS << k;
    size_t bytes = count * (sizeof(nb_tensor) + sizeof(nb_tensor *) + 1);
    unsigned char *block = nb_malloc(bytes);
    if (!block)
        return nb_fail(NB_ERR_NOMEM, "%s: out of memory: could not allocate %zu tensor headers",
                       nb_alloc_who(who), count);
    memset(block, 0, bytes);
    pool_chunk chunk = {.count = count, .headers = (nb_tensor *)block};
    chunk.next_dead = (nb_tensor **)(chunk.headers + count);
    chunk.state = (_Atomic unsigned char *)(chunk.next_dead + count);
    publish(chunk);
    return NB_OK;
}

static const pool_chunk *find(const void *ptr, size_t *slot)
{
    uintptr_t p = (uintptr_t)ptr;
    int n = atomic_load_explicit(&chunk_count, memory_order_acquire);
    for (int k = 0; k < n; k++) {
        const pool_chunk *chunk = &chunks[k];
        if (p < chunk->begin || p >= chunk->end) continue;
        size_t offset = (size_t)(p - chunk->begin);
        if (offset % sizeof(nb_tensor) != 0) return NULL;
        *slot = offset / sizeof(nb_tensor);
        return chunk;
    }
    return NULL;
}

nb_tensor *nb_header_pool_take(const char *who)
{
    pthread_mutex_lock(&lock);
    nb_tensor *header = NULL;
    size_t slot;
    if (dead_count > NB_TENSOR_REUSE_FREES) {
        /* The oldest dead slot: NB_TENSOR_REUSE_FREES others died after it. */
        header = dead_head;
        const pool_chunk *chunk = find(header, &slot);
        dead_head = chunk->next_dead[slot];
        if (!dead_head) dead_tail = NULL;
        dead_count--;
        atomic_store_explicit(&chunk->state[slot], SLOT_LIVE, memory_order_release);
    } else {
        int n = atomic_load_explicit(&chunk_count, memory_order_relaxed);
        if ((n == 0 || fresh == chunks[n - 1].count) && grow(who) != NB_OK) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        const pool_chunk *chunk = &chunks[atomic_load_explicit(&chunk_count, memory_order_relaxed) - 1];
        slot = fresh++;
        header = &chunk->headers[slot];
        atomic_store_explicit(&chunk->state[slot], SLOT_LIVE, memory_order_release);
    }
    pthread_mutex_unlock(&lock);
    memset(header, 0, sizeof *header);
    return header;
}

void nb_header_pool_give(nb_tensor *header)
{
    pthread_mutex_lock(&lock);
    size_t slot, tail_slot;
    const pool_chunk *chunk = find(header, &slot);
    if (chunk && atomic_load_explicit(&chunk->state[slot], memory_order_relaxed) == SLOT_LIVE) {
        atomic_store_explicit(&chunk->state[slot], SLOT_DEAD, memory_order_release);
        chunk->next_dead[slot] = NULL;
        if (dead_tail) find(dead_tail, &tail_slot)->next_dead[tail_slot] = header;
        else dead_head = header;
        dead_tail = header;
        dead_count++;
    }
    pthread_mutex_unlock(&lock);
}

nb_pool_state nb_header_pool_state(const void *ptr)
{
    size_t slot;
    const pool_chunk *chunk = find(ptr, &slot);
    if (!chunk) return NB_POOL_NOT_OURS;
    return atomic_load_explicit(&chunk->state[slot], memory_order_acquire) == SLOT_LIVE
               ? NB_POOL_LIVE
               : NB_POOL_DEAD;
}
