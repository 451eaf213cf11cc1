/* Parsing and validating a safetensors file image held in memory. This is
 * a security boundary: the header is untrusted JSON and every offset in it
 * is checked before the entries point anywhere. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "io/json.h"
#include "io/safetensors_internal.h"

typedef struct dtype_info {
    const char *name;
    size_t size;
    int nabla_dtype;
} dtype_info;

/* Every dtype of the reference implementation with a whole-byte element. */
static const dtype_info known_dtypes[] = {
    {"BOOL", 1, -1}, {"U8", 1, -1},  {"I8", 1, -1},  {"F8_E5M2", 1, -1}, {"F8_E4M3", 1, -1},
    {"I16", 2, -1},  {"U16", 2, -1}, {"F16", 2, -1}, {"BF16", 2, -1},
    {"I32", 4, NB_INT32}, {"U32", 4, -1}, {"F32", 4, NB_FLOAT32},
    {"I64", 8, -1},  {"U64", 8, -1}, {"F64", 8, NB_FLOAT64},
};

typedef struct parser {
    nb_safetensors *file;
    nb_json json;
    const char *source;
    int status;             /* why parsing stopped: NB_ERR_FORMAT or _NOMEM */
} parser;

/* Sets "safetensors: <source>: <problem>" as the last error; returns -1. */
__attribute__((format(printf, 2, 3)))
static int parse_error(parser *p, const char *fmt, ...)
{
    char problem[384];
    va_list args;
    va_start(args, fmt);
    vsnprintf(problem, sizeof problem, fmt, args);
    va_end(args);
    p->status = nb_fail(NB_ERR_FORMAT, "safetensors: %s: %s", p->source, problem);
    return -1;
}

static int json_error(parser *p, const char *context)
{
    return parse_error(p, "invalid header JSON%s%s: %s", context ? " in " : "",
                       context ? context : "", p->json.error);
}

static void shape_text(const nb_safetensors_entry *e, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < e->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld",
                                 (long long)e->shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Reads a string into the handle's pool, which holds header-length + 1
 * bytes: decoding never lengthens a string, so it cannot overflow. */
static const char *pool_string(parser *p, const char *context)
{
    nb_safetensors *f = p->file;
    size_t length;
    char *out = f->strings + f->strings_used;
    if (nb_json_string(&p->json, out, f->strings_capacity - f->strings_used, &length)) {
        json_error(p, context);
        return NULL;
    }
    f->strings_used += length + 1;
    return out;
}

/* Doubles an array's capacity (nabla has no realloc hook). */
static int grow(parser *p, void **array, int *capacity, size_t element_size)
{
    int wanted = *capacity ? *capacity * 2 : 16;
    void *bigger = nb_malloc((size_t)wanted * element_size);
    if (!bigger) {
        p->status = NB_ERR_NOMEM;
        return -1;
    }
    if (*array) memcpy(bigger, *array, (size_t)*capacity * element_size);
    nb_free(*array);
    *array = bigger;
    *capacity = wanted;
    return 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The format makes __metadata__ a flat map of string to string: each key
 * once, and no other kind of value. */
static int check_metadata_keys(parser *p)
{
    nb_safetensors *f = p->file;
    size_t n = (size_t)f->metadata_count;
    if (n < 2) return 0;
    const char **keys = nb_malloc(n * sizeof *keys);
    if (!keys) {
        p->status = NB_ERR_NOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) keys[i] = f->metadata[2 * i];
    qsort(keys, n, sizeof *keys, compare_strings);
    int status = 0;
    for (size_t i = 1; i < n && status == 0; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            status = parse_error(p, "__metadata__: duplicate key \"%s\"", keys[i]);
    nb_free(keys);
    return status;
}

static int parse_metadata(parser *p)
{
    nb_safetensors *f = p->file;
    if (nb_json_peek(&p->json) == 'n') /* null: as if absent */
        return nb_json_skip_value(&p->json, 1) ? json_error(p, "__metadata__") : 0;
    if (!nb_json_consume(&p->json, '{')) return parse_error(p, "__metadata__ is not an object");
    if (nb_json_consume(&p->json, '}')) return 0;
    for (;;) {
        const char *key = pool_string(p, "__metadata__");
        if (!key) return -1;
        if (nb_json_expect(&p->json, ':')) return json_error(p, "__metadata__");
        if (nb_json_peek(&p->json) != '"')
            return parse_error(p, "__metadata__: the value of key \"%s\" is not a string "
                               "(metadata maps strings to strings)", key);
        const char *value = pool_string(p, "__metadata__");
        if (!value) return -1;
        if (f->metadata_count * 2 + 2 > f->metadata_capacity &&
            grow(p, (void **)&f->metadata, &f->metadata_capacity, sizeof *f->metadata))
            return -1;
        f->metadata[f->metadata_count * 2] = key;
        f->metadata[f->metadata_count * 2 + 1] = value;
        f->metadata_count++;
        int end = nb_json_next_member(&p->json, '}');
        if (end) return end < 0 ? json_error(p, "__metadata__") : check_metadata_keys(p);
    }
}

/* Reads a JSON array of at most max_count non-negative integers. */
static int parse_int_array(parser *p, const char *name, const char *key, uint64_t *values,
                           int max_count, int *count)
{
    char context[96];
    snprintf(context, sizeof context, "\"%s\" of tensor '%s'", key, name);
    *count = 0;
    if (nb_json_expect(&p->json, '[')) return json_error(p, context);
    if (nb_json_consume(&p->json, ']')) return 0;
    for (;;) {
        if (*count == max_count)
            return parse_error(p, "tensor '%s': \"%s\" has more than %d entries", name, key, max_count);
        if (nb_json_uint(&p->json, &values[(*count)++])) return json_error(p, context);
        int end = nb_json_next_member(&p->json, ']');
        if (end) return end < 0 ? json_error(p, context) : 0;
    }
}

static int set_dtype(parser *p, nb_safetensors_entry *e, const char *dtype)
{
    for (size_t i = 0; i < sizeof known_dtypes / sizeof known_dtypes[0]; i++) {
        if (strcmp(dtype, known_dtypes[i].name) == 0) {
            e->dtype = known_dtypes[i].name;
            e->element_size = known_dtypes[i].size;
            e->nabla_dtype = known_dtypes[i].nabla_dtype;
            return 0;
        }
    }
    return parse_error(p, "tensor '%s': unknown dtype \"%s\"", e->name, dtype);
}

/* Checks that the shape's byte count is exactly data_offsets' span. */
static int check_sizes(parser *p, nb_safetensors_entry *e)
{
    char shape[160];
    shape_text(e, shape, sizeof shape);
    int64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        if (e->shape[i] != 0 && numel > INT64_MAX / (int64_t)e->element_size / e->shape[i])
            return parse_error(p, "tensor '%s': shape %s is too large", e->name, shape);
        numel *= e->shape[i];
    }
    e->numel = numel;
    if (e->begin > e->end)
        return parse_error(p, "tensor '%s': data_offsets [%llu,%llu] end before they begin", e->name,
                           (unsigned long long)e->begin, (unsigned long long)e->end);
    uint64_t needed = (uint64_t)numel * e->element_size;
    if (e->end - e->begin != needed)
        return parse_error(p, "tensor '%s': data_offsets [%llu,%llu] hold %llu bytes but %s %s needs %llu",
                           e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                           (unsigned long long)(e->end - e->begin), e->dtype, shape,
                           (unsigned long long)needed);
    return 0;
}

static int parse_entry(parser *p, nb_safetensors_entry *e)
{
    enum { HAVE_DTYPE = 1, HAVE_SHAPE = 2, HAVE_OFFSETS = 4 };
    int have = 0;
    char context[96];
    snprintf(context, sizeof context, "tensor '%s'", e->name);
    if (nb_json_expect(&p->json, '{')) return json_error(p, context);
    if (!nb_json_consume(&p->json, '}')) for (;;) {
        char key[24], dtype[24];
        if (nb_json_string(&p->json, key, sizeof key, NULL) || nb_json_expect(&p->json, ':'))
            return json_error(p, context);
        int flag = !strcmp(key, "dtype") ? HAVE_DTYPE : !strcmp(key, "shape") ? HAVE_SHAPE
                 : !strcmp(key, "data_offsets") ? HAVE_OFFSETS : 0;
        if (!flag) return parse_error(p, "tensor '%s': unknown key \"%s\"", e->name, key);
        if (have & flag) return parse_error(p, "tensor '%s': duplicate key \"%s\"", e->name, key);
        have |= flag;
        uint64_t values[NB_MAX_DIMS];
        int count;
        if (flag == HAVE_DTYPE) {
            if (nb_json_string(&p->json, dtype, sizeof dtype, NULL)) return json_error(p, context);
            if (set_dtype(p, e, dtype)) return -1;
        } else if (flag == HAVE_SHAPE) {
            if (parse_int_array(p, e->name, key, values, NB_MAX_DIMS, &count)) return -1;
            e->ndim = count;
            for (int i = 0; i < count; i++) e->shape[i] = (int64_t)values[i];
        } else {
            if (parse_int_array(p, e->name, key, values, 2, &count)) return -1;
            if (count != 2)
                return parse_error(p, "tensor '%s': \"data_offsets\" needs 2 entries, has %d", e->name, count);
            e->begin = values[0];
            e->end = values[1];
        }
        int end = nb_json_next_member(&p->json, '}');
        if (end < 0) return json_error(p, context);
        if (end) break;
    }
    const char *missing = !(have & HAVE_DTYPE) ? "dtype" : !(have & HAVE_SHAPE) ? "shape"
                        : !(have & HAVE_OFFSETS) ? "data_offsets" : NULL;
    if (missing) return parse_error(p, "tensor '%s': missing \"%s\"", e->name, missing);
    return check_sizes(p, e);
}

static int parse_header(parser *p)
{
    nb_safetensors *f = p->file;
    int have_metadata = 0;
    if (nb_json_check_utf8(&p->json)) return parse_error(p, "header is not UTF-8: %s", p->json.error);
    if (p->json.length == 0 || p->json.text[0] != '{')
        return parse_error(p, "header does not start with '{'");
    p->json.position = 1;
    if (!nb_json_consume(&p->json, '}')) for (;;) {
        const char *name = pool_string(p, NULL);
        if (!name) return -1;
        if (nb_json_expect(&p->json, ':')) return json_error(p, NULL);
        if (strcmp(name, "__metadata__") == 0) {
            if (have_metadata) return parse_error(p, "duplicate \"__metadata__\"");
            have_metadata = 1;
            if (parse_metadata(p)) return -1;
        } else {
            if (f->count == f->capacity && grow(p, (void **)&f->entries, &f->capacity, sizeof *f->entries))
                return -1;
            nb_safetensors_entry *e = &f->entries[f->count++];
            memset(e, 0, sizeof *e);
            e->name = name;
            if (parse_entry(p, e)) return -1;
        }
        int end = nb_json_next_member(&p->json, '}');
        if (end < 0) return json_error(p, NULL);
        if (end) break;
    }
    /* Only the space padding may follow the object. */
    if (nb_json_peek(&p->json) != -1) {
        nb_json_fail(&p->json, "trailing characters after the header object");
        return json_error(p, NULL);
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp((*(const nb_safetensors_entry *const *)a)->name,
                  (*(const nb_safetensors_entry *const *)b)->name);
}

static int compare_offsets(const void *a, const void *b)
{
    const nb_safetensors_entry *x = *(const nb_safetensors_entry *const *)a;
    const nb_safetensors_entry *y = *(const nb_safetensors_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Names must be unique, and the tensors must tile the data exactly. */
static int check_layout(parser *p, uint64_t data_length)
{
    nb_safetensors *f = p->file;
    size_t n = (size_t)f->count;
    f->by_name = nb_malloc((n ? n : 1) * sizeof *f->by_name);
    if (!f->by_name) return p->status = NB_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, n, sizeof *f->by_name, compare_names);
    for (size_t i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return parse_error(p, "duplicate tensor name '%s'", f->by_name[i]->name);
    for (size_t i = 0; i < n; i++) {
        const nb_safetensors_entry *e = &f->entries[i];
        if (e->end > data_length)
            return parse_error(p, "tensor '%s': data_offsets [%llu,%llu] outside the %llu bytes of data",
                               e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                               (unsigned long long)data_length);
    }
    const nb_safetensors_entry **order = nb_malloc((n ? n : 1) * sizeof *order);
    if (!order) return p->status = NB_ERR_NOMEM;
    memcpy(order, f->by_name, n * sizeof *order);
    qsort(order, n, sizeof *order, compare_offsets);
    uint64_t covered = 0;
    int status = 0;
    for (size_t i = 0; i < n && status == 0; i++) {
        if (order[i]->begin < covered)
            status = parse_error(p, "tensors '%s' and '%s' overlap", order[i - 1]->name, order[i]->name);
        else if (order[i]->begin > covered)
            status = parse_error(p, "data bytes [%llu,%llu) belong to no tensor (a hole before '%s')",
                                 (unsigned long long)covered, (unsigned long long)order[i]->begin,
                                 order[i]->name);
        covered = order[i]->end;
    }
    nb_free(order);
    if (status == 0 && covered != data_length)
        status = parse_error(p, "data bytes [%llu,%llu) at the end belong to no tensor",
                             (unsigned long long)covered, (unsigned long long)data_length);
    return status;
}

int nb_safetensors_parse_status(const void *buffer, size_t length, const char *source,
                                nb_safetensors **out)
{
    parser p = {.source = source ? source : "<memory>"};
    *out = NULL;
    if (!buffer && length) return nb_fail(NB_ERR_INVALID, "safetensors: %s: buffer is NULL", p.source);
    const unsigned char *bytes = buffer;
    if (length < 8) {
        parse_error(&p, "file is %zu bytes, too short for the 8-byte header length", length);
        return p.status;
    }
    uint64_t header_length = nb_read_le64(bytes);
    if (header_length > NB_SAFETENSORS_MAX_HEADER) {
        parse_error(&p, "header length %llu exceeds the limit of %u bytes",
                    (unsigned long long)header_length, NB_SAFETENSORS_MAX_HEADER);
        return p.status;
    }
    if (header_length > length - 8) {
        parse_error(&p, "header length %llu exceeds the %zu bytes after it",
                    (unsigned long long)header_length, length - 8);
        return p.status;
    }
    p.file = nb_calloc(1, sizeof *p.file);
    if (!p.file) return NB_ERR_NOMEM;
    p.file->strings_capacity = (size_t)header_length + 1;
    p.file->strings = nb_malloc(p.file->strings_capacity);
    if (!p.file->strings) p.status = NB_ERR_NOMEM;
    nb_json_init(&p.json, bytes + 8, (size_t)header_length);
    if (!p.file->strings || parse_header(&p) ||
        check_layout(&p, length - 8 - (uint64_t)header_length)) {
        nb_safetensors_free(p.file);
        return p.status ? p.status : NB_ERR_FORMAT;
    }
    for (int i = 0; i < p.file->count; i++)
        p.file->entries[i].data = bytes + 8 + header_length + p.file->entries[i].begin;
    *out = p.file;
    return NB_OK;
}

nb_safetensors *nb_safetensors_parse(const void *buffer, size_t length, const char *source)
{
    nb_safetensors *file;
    nb_safetensors_parse_status(buffer, length, source, &file);
    return file;
}

void nb_safetensors_free(nb_safetensors *file)
{
    if (!file) return;
    nb_free(file->entries);
    nb_free(file->by_name);
    nb_free(file->metadata);
    nb_free(file->strings);
    nb_free(file->owned_bytes);
    nb_free(file);
}

int nb_safetensors_count(const nb_safetensors *file) { return file ? file->count : 0; }

const nb_safetensors_entry *nb_safetensors_entry_at(const nb_safetensors *file, int index)
{
    return file && index >= 0 && index < file->count ? &file->entries[index] : NULL;
}

const nb_safetensors_entry *nb_safetensors_find(const nb_safetensors *file, const char *name)
{
    if (!file || !name || file->count == 0) return NULL;
    nb_safetensors_entry key = {.name = name};
    const nb_safetensors_entry *key_pointer = &key;
    const nb_safetensors_entry **hit = bsearch(&key_pointer, file->by_name, (size_t)file->count,
                                               sizeof *file->by_name, compare_names);
    return hit ? *hit : NULL;
}

int nb_safetensors_metadata_count(const nb_safetensors *file) { return file ? file->metadata_count : 0; }

const char *nb_safetensors_metadata_key(const nb_safetensors *file, int index)
{
    return file && index >= 0 && index < file->metadata_count ? file->metadata[2 * index] : NULL;
}

const char *nb_safetensors_metadata_value(const nb_safetensors *file, int index)
{
    return file && index >= 0 && index < file->metadata_count ? file->metadata[2 * index + 1] : NULL;
}

const char *nb_safetensors_metadata_get(const nb_safetensors *file, const char *key)
{
    for (int i = 0; key && i < nb_safetensors_metadata_count(file); i++)
        if (strcmp(file->metadata[2 * i], key) == 0) return file->metadata[2 * i + 1];
    return NULL;
}
