/* Internal: the parsed-file handle shared by the io/safetensors_*.c files. */
#ifndef NABLA_IO_SAFETENSORS_INTERNAL_H
#define NABLA_IO_SAFETENSORS_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "nabla/io.h"

struct nb_safetensors {
    nb_safetensors_entry *entries;         /* header order */
    int count, capacity;
    const nb_safetensors_entry **by_name;  /* sorted by name, for find */
    const char **metadata;                 /* key, value, key, value, ... */
    int metadata_count, metadata_capacity;
    char *strings;                         /* every decoded name and value */
    size_t strings_used, strings_capacity;
    void *owned_bytes;                     /* the file, when read from a path */
};

/* nb_safetensors_parse, returning why it failed (an nb_status). */
int nb_safetensors_parse_status(const void *buffer, size_t length, const char *source,
                                nb_safetensors **out);

/* The format is little-endian; these decode and encode it on any host. */
static inline int nb_host_is_little_endian(void)
{
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

static inline uint64_t nb_read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void nb_write_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Copies count elements of `size` bytes, reversing each element's bytes
 * when the host is big-endian (the file is always little-endian). */
static inline void nb_copy_little_endian(void *dst, const void *src, size_t count, size_t size)
{
    if (nb_host_is_little_endian() || size == 1) {
        memcpy(dst, src, count * size);
        return;
    }
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < size; k++) d[i * size + k] = s[i * size + size - 1 - k];
}

#endif
