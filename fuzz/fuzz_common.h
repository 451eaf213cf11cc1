/* Shared by the libFuzzer targets in fuzz/: a bounded allocator, a reader
 * over the input bytes, scratch files, and the invariant check.
 *
 * A fuzz target must either get a valid result or a clean error from
 * nabla. A crash, a sanitizer report or a failed FUZZ_CHECK is a bug. */
#ifndef NABLA_FUZZ_COMMON_H
#define NABLA_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla.h"

/* Aborts (which libFuzzer records as a crash, with the input) when an
 * invariant of the API does not hold. */
#define FUZZ_CHECK(condition)                                                              \
    do {                                                                                   \
        if (!(condition)) {                                                                \
            fprintf(stderr, "fuzz: %s:%d: invariant failed: %s (last error: '%s')\n",      \
                    __FILE__, __LINE__, #condition, nb_last_error());                      \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Routes nabla's allocations through a hook that refuses any single
 * request above max_request bytes and any that would bring the live total
 * above max_live bytes, as malloc does when memory runs out. Inputs that
 * describe huge tensors then exercise the out-of-memory paths instead of
 * tripping libFuzzer's malloc limit. */
void fuzz_install_allocator(size_t max_request, size_t max_live);
/* Bytes currently allocated through the hook (for leak checks). */
size_t fuzz_live_bytes(void);

typedef struct fuzz_reader {
    const uint8_t *data;
    size_t size, position;
} fuzz_reader;

/* The next byte, or 0 past the end (so short inputs still mean something). */
static inline uint8_t fuzz_byte(fuzz_reader *r)
{
    return r->position < r->size ? r->data[r->position++] : 0;
}

static inline uint32_t fuzz_u32(fuzz_reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_byte(r) << (8 * i);
    return v;
}

/* The product of n dims, which may overflow int64 only when another dim
 * is 0: then the product is 0. -1 for a negative dim. */
static inline int64_t fuzz_numel(int n, const int64_t *dims)
{
    int64_t product = 1;
    bool overflow = false;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) return 0;
        if (!overflow && __builtin_mul_overflow(product, dims[i], &product)) overflow = true;
    }
    return overflow ? -1 : product;
}

/* A path "<per-process scratch dir>/<name>"; the directory and the files in
 * it are removed at exit. NULL if no directory could be made. */
const char *fuzz_scratch_path(const char *name);
/* Writes size bytes to path; 0 on success. */
int fuzz_write_file(const char *path, const void *data, size_t size);

#endif
