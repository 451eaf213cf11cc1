/* Reading safetensors files and loading them into existing tensors. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "io/safetensors_internal.h"

/* Reads a whole regular file into nabla-allocated memory. */
static int read_whole_file(const char *path, unsigned char **bytes, size_t *length)
{
    *bytes = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nb_fail(NB_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
    struct stat info;
    int status = NB_OK;
    if (fstat(fileno(f), &info) != 0)
        status = nb_fail(NB_ERR_IO, "safetensors: %s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(info.st_mode))
        status = nb_fail(NB_ERR_IO, "safetensors: %s: not a regular file", path);
    else if ((uintmax_t)info.st_size > SIZE_MAX - 1)
        status = nb_fail(NB_ERR_NOMEM, "safetensors: %s: file too large to read", path);
    if (status == NB_OK) {
        *length = (size_t)info.st_size;
        *bytes = nb_malloc(*length ? *length : 1);
        if (!*bytes) status = NB_ERR_NOMEM;
        else if (fread(*bytes, 1, *length, f) != *length)
            status = nb_fail(NB_ERR_IO, "safetensors: %s: read failed: %s", path,
                             ferror(f) ? strerror(errno) : "file shrank while reading");
    }
    fclose(f);
    if (status != NB_OK) {
        nb_free(*bytes);
        *bytes = NULL;
    }
    return status;
}

static int read_status(const char *path, nb_safetensors **out)
{
    *out = NULL;
    if (!path) return nb_fail(NB_ERR_INVALID, "safetensors: path is NULL");
    unsigned char *bytes;
    size_t length = 0;
    int status = read_whole_file(path, &bytes, &length);
    if (status != NB_OK) return status;
    status = nb_safetensors_parse_status(bytes, length, path, out);
    if (status != NB_OK) {
        nb_free(bytes);
        return status;
    }
    (*out)->owned_bytes = bytes;
    return NB_OK;
}

nb_safetensors *nb_safetensors_read(const char *path)
{
    nb_safetensors *file;
    read_status(path, &file);
    return file;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Checks that `entry` can fill `t`: same shape, and the same dtype or a
 * float32/float64 pair. */
static int check_match(const char *path, const char *name, const nb_safetensors_entry *entry,
                       const nb_tensor *t)
{
    if (!entry) return nb_fail(NB_ERR_FORMAT, "safetensors: %s: tensor '%s' not found", path, name);
    bool same_shape = entry->ndim == t->ndim;
    for (int d = 0; same_shape && d < t->ndim; d++) same_shape = entry->shape[d] == t->shape[d];
    bool both_float = (entry->nabla_dtype == NB_FLOAT32 || entry->nabla_dtype == NB_FLOAT64) &&
                      (t->dtype == NB_FLOAT32 || t->dtype == NB_FLOAT64);
    if (same_shape && (entry->nabla_dtype == (int)t->dtype || both_float)) return NB_OK;
    char file_shape[160], tensor_shape[160];
    shape_text(entry->ndim, entry->shape, file_shape, sizeof file_shape);
    shape_text(t->ndim, t->shape, tensor_shape, sizeof tensor_shape);
    return nb_fail(NB_ERR_FORMAT, "safetensors: %s: tensor '%s': file has %s %s, destination is %s %s",
                   path, name, entry->dtype, file_shape, nb_dtype_name(t->dtype), tensor_shape);
}

/* Reads element i of a little-endian float32 or float64 array as double. */
static double read_float(const unsigned char *data, size_t size, int64_t i)
{
    unsigned char bytes[8];
    nb_copy_little_endian(bytes, data + (size_t)i * size, 1, size);
    if (size == 4) {
        float value;
        memcpy(&value, bytes, 4);
        return value;
    }
    double value;
    memcpy(&value, bytes, 8);
    return value;
}

static void fill(nb_tensor *t, const nb_safetensors_entry *entry)
{
    if (entry->nabla_dtype == (int)t->dtype) {
        nb_copy_little_endian(t->data, entry->data, (size_t)t->numel, entry->element_size);
    } else if (t->dtype == NB_FLOAT32) {
        float *out = t->data;
        for (int64_t i = 0; i < t->numel; i++) out[i] = (float)read_float(entry->data, 8, i);
    } else {
        double *out = t->data;
        for (int64_t i = 0; i < t->numel; i++) out[i] = read_float(entry->data, 4, i);
    }
}

int nb_safetensors_load_into(const char *path, const nb_named_tensor *tensors, int count)
{
    if (count < 0 || (count > 0 && !tensors))
        return nb_fail(NB_ERR_INVALID, "nb_safetensors_load_into: %d tensors at %p", count,
                       (const void *)tensors);
    for (int i = 0; i < count; i++)
        if (!tensors[i].name || !tensors[i].tensor)
            return nb_fail(NB_ERR_INVALID, "nb_safetensors_load_into: entry %d has a NULL %s", i,
                           !tensors[i].name ? "name" : "tensor");
    nb_safetensors *file;
    int status = read_status(path, &file);
    if (status != NB_OK) return status;
    /* Check everything first so that a failed load leaves the tensors as
     * they were. */
    for (int i = 0; i < count && status == NB_OK; i++)
        status = check_match(path, tensors[i].name, nb_safetensors_find(file, tensors[i].name),
                             tensors[i].tensor);
    for (int i = 0; i < count && status == NB_OK; i++)
        fill(tensors[i].tensor, nb_safetensors_find(file, tensors[i].name));
    nb_safetensors_free(file);
    return status;
}
