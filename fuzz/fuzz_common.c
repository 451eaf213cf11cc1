#include "fuzz/fuzz_common.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Each block carries its size in front, so the free hook can keep the
 * live total; 16 bytes keep malloc's alignment for nb_malloc's own. */
enum { HEADER = 16 };

static size_t request_limit, live_limit;
static atomic_size_t live_bytes;

static void *bounded_malloc(size_t size, void *user)
{
    (void)user;
    if (size > request_limit) return NULL;
    size_t before = atomic_fetch_add(&live_bytes, size);
    if (before + size > live_limit) {
        atomic_fetch_sub(&live_bytes, size);
        return NULL;
    }
    unsigned char *block = malloc(HEADER + size);
    if (!block) {
        atomic_fetch_sub(&live_bytes, size);
        return NULL;
    }
    memcpy(block, &size, sizeof size);
    return block + HEADER;
}

static void bounded_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr) return;
    unsigned char *block = (unsigned char *)ptr - HEADER;
    size_t size;
    memcpy(&size, block, sizeof size);
    atomic_fetch_sub(&live_bytes, size);
    free(block);
}

void fuzz_install_allocator(size_t max_request, size_t max_live)
{
    request_limit = max_request;
    live_limit = max_live;
    nb_set_allocator(bounded_malloc, bounded_free, NULL);
}

size_t fuzz_live_bytes(void) { return atomic_load(&live_bytes); }

static char scratch_dir[64];
enum { MAX_SCRATCH_FILES = 8 };
static char scratch_files[MAX_SCRATCH_FILES][128];
static int scratch_file_count;

static void remove_scratch(void)
{
    for (int i = 0; i < scratch_file_count; i++) unlink(scratch_files[i]);
    if (scratch_dir[0]) rmdir(scratch_dir);
}

const char *fuzz_scratch_path(const char *name)
{
    if (!scratch_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(scratch_dir, sizeof scratch_dir, "%s/nabla-fuzz-XXXXXX",
                 base && *base && strlen(base) < 32 ? base : "/tmp");
        if (!mkdtemp(scratch_dir)) {
            scratch_dir[0] = '\0';
            return NULL;
        }
        atexit(remove_scratch);
    }
    for (int i = 0; i < scratch_file_count; i++) {
        const char *slash = strrchr(scratch_files[i], '/');
        if (slash && strcmp(slash + 1, name) == 0) return scratch_files[i];
    }
    if (scratch_file_count == MAX_SCRATCH_FILES) return NULL;
    char *path = scratch_files[scratch_file_count++];
    snprintf(path, sizeof scratch_files[0], "%s/%s", scratch_dir, name);
    return path;
}

int fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t written = size ? fwrite(data, 1, size, f) : 0;
    int closed = fclose(f);
    return written == size && closed == 0 ? 0 : -1;
}
