/* Checkpoints: the registry, the value texts, the checksum and saving.
 * Loading is in checkpoint_load.c, the object helpers in
 * checkpoint_objects.c (modules, schedules) and optim/checkpoint.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "io/checkpoint_internal.h"
#include "io/safetensors_internal.h"

nb_checkpoint *nb_checkpoint_new(void)
{
    return nb_calloc(1, sizeof(nb_checkpoint));
}

void nb_checkpoint_free(nb_checkpoint *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->count; i++) {
        nb_free(ck->entries[i].name);
        if (ck->entries[i].kind == CHECKPOINT_TAG) nb_free(ck->entries[i].target);
    }
    nb_free(ck->entries);
    nb_free(ck);
}

int checkpoint_remember(nb_checkpoint *ck, int status)
{
    if (ck && ck->status == NB_OK) {
        ck->status = status;
        snprintf(ck->error, sizeof ck->error, "%s", nb_last_error());
    }
    return status;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = nb_malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

static bool valid_name(const char *name)
{
    if (!name || !name[0] || strncmp(name, "nabla.", 6) == 0 || strcmp(name, "__metadata__") == 0)
        return false;
    for (const char *c = name; *c; c++)
        if (*c < 0x21 || *c > 0x7e) return false;
    return true;
}

static int add_entry(nb_checkpoint *ck, checkpoint_kind kind, const char *name, void *target)
{
    if (!ck) return nb_fail(NB_ERR_INVALID, "checkpoint: checkpoint is NULL");
    if (!valid_name(name))
        return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID, "checkpoint: invalid entry name '%s' (non-empty "
                                    "printable ASCII without spaces, not starting with 'nabla.')",
                                    name ? name : "(null)"));
    if (!target)
        return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID, "checkpoint: entry '%s' points to NULL", name));
    for (int i = 0; i < ck->count; i++)
        if (strcmp(ck->entries[i].name, name) == 0)
            return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID, "checkpoint: entry '%s' registered twice", name));
    if (ck->count == ck->capacity) {
        int capacity = ck->capacity ? 2 * ck->capacity : 32;
        checkpoint_entry *grown = nb_malloc((size_t)capacity * sizeof *grown);
        if (!grown) return checkpoint_remember(ck, NB_ERR_NOMEM);
        if (ck->count) memcpy(grown, ck->entries, (size_t)ck->count * sizeof *grown);
        nb_free(ck->entries);
        ck->entries = grown;
        ck->capacity = capacity;
    }
    char *copy = copy_string(name);
    if (!copy) return checkpoint_remember(ck, NB_ERR_NOMEM);
    ck->entries[ck->count++] = (checkpoint_entry){kind, copy, target};
    return NB_OK;
}

int nb_checkpoint_add_tensor(nb_checkpoint *ck, const char *name, nb_tensor *tensor)
{
    return add_entry(ck, CHECKPOINT_TENSOR, name, tensor);
}

int nb_checkpoint_add_int(nb_checkpoint *ck, const char *name, int64_t *value)
{
    return add_entry(ck, CHECKPOINT_INT, name, value);
}

int nb_checkpoint_add_double(nb_checkpoint *ck, const char *name, double *value)
{
    return add_entry(ck, CHECKPOINT_DOUBLE, name, value);
}

int nb_checkpoint_add_bool(nb_checkpoint *ck, const char *name, bool *value)
{
    return add_entry(ck, CHECKPOINT_BOOL, name, value);
}

int nb_checkpoint_add_rng(nb_checkpoint *ck, const char *name, nb_rng *rng)
{
    return add_entry(ck, CHECKPOINT_RNG, name, rng);
}

int nb_checkpoint_add_tag(nb_checkpoint *ck, const char *name, const char *value)
{
    if (!value) return add_entry(ck, CHECKPOINT_TAG, name, NULL);
    char *copy = copy_string(value);
    if (!copy) return checkpoint_remember(ck, NB_ERR_NOMEM);
    int status = add_entry(ck, CHECKPOINT_TAG, name, copy);
    if (status != NB_OK) nb_free(copy);
    return status;
}

/* Doubles go out as their IEEE bits too, so NaN payloads and -0 survive;
 * the decimal form is for people reading the header. */
int checkpoint_format_value(const checkpoint_entry *e, char *buf, size_t size)
{
    int n = -1;
    switch (e->kind) {
    case CHECKPOINT_INT:
        n = snprintf(buf, size, "int %" PRId64, *(const int64_t *)e->target);
        break;
    case CHECKPOINT_DOUBLE: {
        double v = *(const double *)e->target;
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        n = snprintf(buf, size, "double %016" PRIx64 " %.17g", bits, v);
        break;
    }
    case CHECKPOINT_BOOL:
        n = snprintf(buf, size, "bool %d", *(const bool *)e->target ? 1 : 0);
        break;
    case CHECKPOINT_RNG: {
        const nb_rng *r = e->target;
        uint64_t spare;
        memcpy(&spare, &r->spare_normal, sizeof spare);
        n = snprintf(buf, size, "rng %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64
                     " %016" PRIx64 " %d", r->state[0], r->state[1], r->state[2], r->state[3], spare,
                     r->has_spare ? 1 : 0);
        break;
    }
    case CHECKPOINT_TAG:
        n = snprintf(buf, size, "tag %s", (const char *)e->target);
        break;
    case CHECKPOINT_TENSOR:
        break;
    }
    if (n < 0 || (size_t)n >= size)
        return nb_fail(NB_ERR_INVALID, "checkpoint: the value of '%s' is too long", e->name);
    return NB_OK;
}

/* FNV-1a, 64 bits: each byte is xored in, then the state is multiplied by
 * an odd prime (a bijection), so any change of a single byte changes the
 * result. */
enum { FNV_CHUNK = 4096 };
static const uint64_t FNV_OFFSET = 0xcbf29ce484222325ull, FNV_PRIME = 0x100000001b3ull;

static uint64_t fnv(uint64_t h, const void *data, size_t length)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < length; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_string(uint64_t h, const char *s)
{
    return fnv(h, s, strlen(s) + 1);   /* with the terminator, so "ab","c" != "a","bc" */
}

static int by_tensor_name(const void *a, const void *b)
{
    return strcmp(((const checksum_tensor *)a)->name, ((const checksum_tensor *)b)->name);
}

uint64_t checkpoint_checksum(checksum_tensor *tensors, int n_tensors, const char **keys,
                             const char **values, int n_metadata)
{
    uint64_t h = FNV_OFFSET;
    qsort(tensors, (size_t)n_tensors, sizeof *tensors, by_tensor_name);
    for (int i = 0; i < n_tensors; i++) {
        const checksum_tensor *t = &tensors[i];
        h = fnv_string(h, t->name);
        h = fnv_string(h, t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            unsigned char dim[8];
            nb_write_le64(dim, (uint64_t)t->shape[d]);
            h = fnv(h, dim, sizeof dim);
        }
        if (!t->host_order || nb_host_is_little_endian()) {
            h = fnv(h, t->bytes, (size_t)t->length);
            continue;
        }
        unsigned char chunk[FNV_CHUNK];
        size_t per_chunk = sizeof chunk / t->element_size;
        for (uint64_t done = 0; done < t->length;) {
            size_t n = (size_t)((t->length - done) / t->element_size);
            if (n > per_chunk) n = per_chunk;
            nb_copy_little_endian(chunk, t->bytes + done, n, t->element_size);
            h = fnv(h, chunk, n * t->element_size);
            done += n * t->element_size;
        }
    }
    /* Metadata in key order: insertion sort on an index (a few hundred keys). */
    int *order = nb_malloc((size_t)(n_metadata ? n_metadata : 1) * sizeof *order);
    if (!order) return 0;
    for (int i = 0; i < n_metadata; i++) {
        int j = i;
        while (j > 0 && strcmp(keys[order[j - 1]], keys[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int i = 0; i < n_metadata; i++) {
        if (strcmp(keys[order[i]], CHECKPOINT_CHECKSUM_KEY) == 0) continue;
        h = fnv_string(h, keys[order[i]]);
        h = fnv_string(h, values[order[i]]);
    }
    nb_free(order);
    return h;
}

static const char *file_dtype(nb_dtype dtype)
{
    return dtype == NB_FLOAT64 ? "F64" : dtype == NB_INT32 ? "I32" : "F32";
}

/* Makes the rename durable: the directory entry reaches the disk too. */
static int sync_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return NB_OK;   /* nothing to sync through; the rename itself is atomic */
    fsync(fd);
    close(fd);
    return NB_OK;
}

typedef struct save_lists {
    nb_named_tensor *tensors;
    checksum_tensor *sums;
    const char **keys, **values;
    char *texts;                     /* one value text per metadata entry */
    int n_tensors, n_metadata;
} save_lists;

/* A value text: a tag of up to about 1,000 characters, or a number or generator state. */
enum { VALUE_TEXT = 1024, CHECKSUM_TEXT = 17 };

static int build_lists(const nb_checkpoint *ck, save_lists *l)
{
    int n = ck->count + 2;
    l->tensors = nb_calloc((size_t)n, sizeof *l->tensors);
    l->sums = nb_calloc((size_t)n, sizeof *l->sums);
    l->keys = nb_calloc((size_t)n, sizeof *l->keys);
    l->values = nb_calloc((size_t)n, sizeof *l->values);
    l->texts = nb_calloc((size_t)n, VALUE_TEXT);
    if (!l->tensors || !l->sums || !l->keys || !l->values || !l->texts) return NB_ERR_NOMEM;
    l->keys[0] = CHECKPOINT_FORMAT_KEY;
    l->values[0] = CHECKPOINT_FORMAT_VERSION;
    l->n_metadata = 1;
    for (int i = 0; i < ck->count; i++) {
        const checkpoint_entry *e = &ck->entries[i];
        if (e->kind == CHECKPOINT_TENSOR) {
            nb_tensor *t = e->target;
            l->tensors[l->n_tensors] = (nb_named_tensor){e->name, t};
            l->sums[l->n_tensors++] = (checksum_tensor){
                e->name, file_dtype(t->dtype), t->ndim, t->shape, t->data,
                (uint64_t)t->numel * nb_dtype_size(t->dtype), nb_dtype_size(t->dtype), true};
            continue;
        }
        char *text = l->texts + (size_t)l->n_metadata * VALUE_TEXT;
        int status = checkpoint_format_value(e, text, VALUE_TEXT);
        if (status != NB_OK) return status;
        l->keys[l->n_metadata] = e->name;
        l->values[l->n_metadata++] = text;
    }
    return NB_OK;
}

int nb_checkpoint_save(const nb_checkpoint *ck, const char *path)
{
    if (!ck || !path) return nb_fail(NB_ERR_INVALID, "checkpoint_save: NULL argument");
    if (ck->status != NB_OK)
        return nb_fail(ck->status, "checkpoint_save: %s: a registration failed: %s", path, ck->error);
    save_lists l = {0};
    int status = build_lists(ck, &l);
    if (status == NB_OK) {
        uint64_t sum = checkpoint_checksum(l.sums, l.n_tensors, l.keys, l.values, l.n_metadata);
        char *text = l.texts + (size_t)l.n_metadata * VALUE_TEXT;
        snprintf(text, CHECKSUM_TEXT, "%016" PRIx64, sum);
        l.keys[l.n_metadata] = CHECKPOINT_CHECKSUM_KEY;
        l.values[l.n_metadata++] = text;
        status = nb_safetensors_save_with_metadata(path, l.tensors, l.n_tensors, l.keys, l.values,
                                                   l.n_metadata);
        if (status == NB_OK) status = sync_directory(path);
    }
    nb_free(l.tensors);
    nb_free(l.sums);
    nb_free(l.keys);
    nb_free(l.values);
    nb_free(l.texts);
    return status;
}
