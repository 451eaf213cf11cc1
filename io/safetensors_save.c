/* Writing safetensors files, laid out as the reference implementation does
 * so that the files are byte-identical to what it would write. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/alloc.h"
#include "io/json.h"
#include "io/safetensors_internal.h"

/* A growable text buffer; `failed` makes every later append a no-op. */
typedef struct text {
    char *data;
    size_t length, capacity;
    bool failed;
} text;

static void append(text *t, const char *bytes, size_t n)
{
    if (t->failed) return;
    if (t->length + n > t->capacity) {
        size_t wanted = t->capacity ? t->capacity * 2 : 256;
        while (wanted < t->length + n) wanted *= 2;
        char *bigger = nb_malloc(wanted);
        if (!bigger) {
            t->failed = true;
            return;
        }
        if (t->data) memcpy(bigger, t->data, t->length);
        nb_free(t->data);
        t->data = bigger;
        t->capacity = wanted;
    }
    memcpy(t->data + t->length, bytes, n);
    t->length += n;
}

static void append_text(text *t, const char *s) { append(t, s, strlen(s)); }

static void append_uint(text *t, uint64_t v)
{
    char digits[24];
    append(t, digits, (size_t)snprintf(digits, sizeof digits, "%llu", (unsigned long long)v));
}

/* A JSON string; bytes >= 0x80 pass through (names were checked to be
 * UTF-8), control characters become \u00XX. */
static void append_json_string(text *t, const char *s)
{
    append(t, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char escaped[8];
        if (ch == '"' || ch == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)ch;
            append(t, escaped, 2);
        } else if (ch < 0x20) {
            append(t, escaped, (size_t)snprintf(escaped, sizeof escaped, "\\u%04x", ch));
        } else {
            append(t, (const char *)&ch, 1);
        }
    }
    append(t, "\"", 1);
}

static const char *file_dtype(nb_dtype dtype)
{
    switch (dtype) {
    case NB_FLOAT32: return "F32";
    case NB_FLOAT64: return "F64";
    case NB_INT32: return "I32";
    }
    return NULL;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp((*(const nb_named_tensor *const *)a)->name,
                  (*(const nb_named_tensor *const *)b)->name);
}

/* The reference order: larger elements first (so each tensor is aligned to
 * its element size), then by name, bytewise. */
static int compare_layout(const void *a, const void *b)
{
    const nb_named_tensor *x = *(const nb_named_tensor *const *)a;
    const nb_named_tensor *y = *(const nb_named_tensor *const *)b;
    size_t sx = nb_dtype_size(x->tensor->dtype), sy = nb_dtype_size(y->tensor->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool is_utf8(const char *s)
{
    nb_json cursor;
    nb_json_init(&cursor, s, strlen(s));
    return nb_json_check_utf8(&cursor) == 0;
}

static int check_arguments(const char *path, const nb_named_tensor *tensors, int count,
                           const char *const *keys, const char *const *values, int metadata_count)
{
    const char *who = "nb_safetensors_save";
    if (!path) return nb_fail(NB_ERR_INVALID, "%s: path is NULL", who);
    if (count < 0 || (count > 0 && !tensors))
        return nb_fail(NB_ERR_INVALID, "%s: %s: bad tensor list (count %d)", who, path, count);
    if (metadata_count < 0 || (metadata_count > 0 && (!keys || !values)))
        return nb_fail(NB_ERR_INVALID, "%s: %s: bad metadata list (count %d)", who, path,
                       metadata_count);
    for (int i = 0; i < count; i++) {
        const char *name = tensors[i].name;
        const nb_tensor *t = tensors[i].tensor;
        if (!name || !*name || strcmp(name, "__metadata__") == 0 || !is_utf8(name))
            return nb_fail(NB_ERR_INVALID, "%s: %s: entry %d: name must be non-empty UTF-8 and not "
                           "__metadata__", who, path, i);
        if (!t || !file_dtype(t->dtype) || (t->numel > 0 && !t->data))
            return nb_fail(NB_ERR_INVALID, "%s: %s: tensor '%s' is NULL or has no valid dtype",
                           who, path, name);
    }
    for (int i = 0; i < metadata_count; i++)
        if (!keys[i] || !values[i] || !is_utf8(keys[i]) || !is_utf8(values[i]))
            return nb_fail(NB_ERR_INVALID, "%s: %s: metadata entry %d is NULL or not UTF-8", who,
                           path, i);
    /* A file with a key twice would be refused by the loader. Metadata
     * lists are short, so pairwise comparison is enough. */
    for (int i = 0; i < metadata_count; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return nb_fail(NB_ERR_INVALID, "%s: %s: duplicate metadata key \"%s\"", who, path,
                               keys[i]);
    return NB_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes. */
static void build_header(text *h, const nb_named_tensor *const *order, int count,
                         const char *const *keys, const char *const *values, int metadata_count)
{
    append_text(h, "{");
    if (metadata_count > 0) {
        append_text(h, "\"__metadata__\":{");
        for (int i = 0; i < metadata_count; i++) {
            if (i) append_text(h, ",");
            append_json_string(h, keys[i]);
            append_text(h, ":");
            append_json_string(h, values[i]);
        }
        append_text(h, count ? "}," : "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        const nb_tensor *t = order[i]->tensor;
        uint64_t bytes = (uint64_t)t->numel * nb_dtype_size(t->dtype);
        if (i) append_text(h, ",");
        append_json_string(h, order[i]->name);
        append_text(h, ":{\"dtype\":\"");
        append_text(h, file_dtype(t->dtype));
        append_text(h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) append_text(h, ",");
            append_uint(h, (uint64_t)t->shape[d]);
        }
        append_text(h, "],\"data_offsets\":[");
        append_uint(h, offset);
        append_text(h, ",");
        append_uint(h, offset + bytes);
        append_text(h, "]}");
        offset += bytes;
    }
    append_text(h, "}");
    while (!h->failed && h->length % 8 != 0) append_text(h, " ");
}

/* Writes the data in little-endian order, in chunks on a big-endian host. */
static bool write_data(FILE *f, const nb_tensor *t)
{
    size_t size = nb_dtype_size(t->dtype), count = (size_t)t->numel;
    if (nb_host_is_little_endian()) return fwrite(t->data, size, count, f) == count;
    unsigned char chunk[4096];
    for (size_t done = 0; done < count;) {
        size_t n = count - done < sizeof chunk / size ? count - done : sizeof chunk / size;
        nb_copy_little_endian(chunk, (const unsigned char *)t->data + done * size, n, size);
        if (fwrite(chunk, size, n, f) != n) return false;
        done += n;
    }
    return true;
}

static int write_file(const char *path, const char *temporary, const text *header,
                      const nb_named_tensor *const *order, int count)
{
    FILE *f = fopen(temporary, "wb");
    if (!f) return nb_fail(NB_ERR_IO, "safetensors: %s: cannot create: %s", temporary, strerror(errno));
    unsigned char length[8];
    nb_write_le64(length, header->length);
    bool ok = fwrite(length, 1, 8, f) == 8 && fwrite(header->data, 1, header->length, f) == header->length;
    for (int i = 0; ok && i < count; i++) ok = write_data(f, order[i]->tensor);
    /* On the disk before the rename, so the name never points at a file
     * whose blocks are still in flight when the machine goes down. */
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved_errno = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved_errno = errno;
    }
    if (ok && rename(temporary, path) == 0) return NB_OK;
    if (ok) saved_errno = errno;
    remove(temporary);
    return nb_fail(NB_ERR_IO, "safetensors: %s: write failed: %s", path, strerror(saved_errno));
}

int nb_safetensors_save_with_metadata(const char *path, const nb_named_tensor *tensors,
                                      int count, const char *const *metadata_keys,
                                      const char *const *metadata_values, int metadata_count)
{
    int status = check_arguments(path, tensors, count, metadata_keys, metadata_values,
                                 metadata_count);
    if (status != NB_OK) return status;
    const nb_named_tensor **order = nb_malloc((size_t)(count ? count : 1) * sizeof *order);
    char *temporary = nb_malloc(strlen(path) + 5);
    text header = {0};
    if (!order || !temporary) {
        status = NB_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < count; i++) order[i] = &tensors[i];
    qsort(order, (size_t)count, sizeof *order, compare_names);
    for (int i = 1; i < count; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            status = nb_fail(NB_ERR_INVALID, "nb_safetensors_save: %s: duplicate tensor name '%s'",
                             path, order[i]->name);
            goto done;
        }
    qsort(order, (size_t)count, sizeof *order, compare_layout);
    build_header(&header, order, count, metadata_keys, metadata_values, metadata_count);
    if (header.failed) {
        status = NB_ERR_NOMEM;
        goto done;
    }
    if (header.length > NB_SAFETENSORS_MAX_HEADER) {
        status = nb_fail(NB_ERR_INVALID, "nb_safetensors_save: %s: header of %zu bytes exceeds the "
                         "format's limit", path, header.length);
        goto done;
    }
    sprintf(temporary, "%s.tmp", path);
    status = write_file(path, temporary, &header, order, count);
done:
    nb_free(header.data);
    nb_free(temporary);
    nb_free(order);
    return status;
}

int nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int count)
{
    return nb_safetensors_save_with_metadata(path, tensors, count, NULL, NULL, 0);
}
