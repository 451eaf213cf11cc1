/* Loading a checkpoint: everything is checked and staged first, then
 * written, so a failed load changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "io/checkpoint_internal.h"
#include "io/safetensors_internal.h"

/* A parsed non-tensor value, ready to be written. */
typedef union staged_value {
    int64_t integer;
    double real;
    bool flag;
    nb_rng rng;
} staged_value;

static const char *kind_name(checkpoint_kind kind)
{
    static const char *const names[] = {"tensor", "int", "double", "bool", "rng", "tag"};
    return names[kind];
}

static int parse_hex(const char **text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(*text, &end, 16);
    if (end == *text || errno) return -1;
    *out = (uint64_t)v;
    *text = end;
    return 0;
}

/* Parses `text` (the file's value) as entry e's kind into *out; -1 when it
 * is of another kind or malformed. */
static int parse_value(const checkpoint_entry *e, const char *text, staged_value *out)
{
    const char *prefix = kind_name(e->kind);
    size_t n = strlen(prefix);
    if (strncmp(text, prefix, n) != 0 || text[n] != ' ') return -1;
    const char *p = text + n + 1;
    char *end;
    switch (e->kind) {
    case CHECKPOINT_INT:
        errno = 0;
        out->integer = strtoll(p, &end, 10);
        return end != p && !*end && !errno ? 0 : -1;
    case CHECKPOINT_DOUBLE: {
        uint64_t bits;
        if (parse_hex(&p, &bits) != 0 || *p != ' ') return -1;
        memcpy(&out->real, &bits, sizeof bits);
        return 0;
    }
    case CHECKPOINT_BOOL:
        if (strcmp(p, "0") && strcmp(p, "1")) return -1;
        out->flag = p[0] == '1';
        return 0;
    case CHECKPOINT_RNG: {
        uint64_t spare;
        for (int k = 0; k < 4; k++)
            if (parse_hex(&p, &out->rng.state[k]) != 0) return -1;
        if (parse_hex(&p, &spare) != 0 || (strcmp(p, " 0") && strcmp(p, " 1"))) return -1;
        memcpy(&out->rng.spare_normal, &spare, sizeof spare);
        out->rng.has_spare = p[1] == '1';
        return 0;
    }
    case CHECKPOINT_TAG:
        return strcmp(p, (const char *)e->target) == 0 ? 0 : -2;
    case CHECKPOINT_TENSOR:
        break;
    }
    return -1;
}

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

static int check_tensor(const char *path, const checkpoint_entry *e, const nb_safetensors_entry *f)
{
    const nb_tensor *t = e->target;
    char here[96], there[96];
    if (f->nabla_dtype != (int)t->dtype)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: '%s' is %s in the file and %s here", path,
                       e->name, f->dtype, nb_dtype_name(t->dtype));
    bool same = f->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = f->shape[d] == t->shape[d];
    if (!same)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: '%s' has shape %s in the file and %s here", path,
                       e->name, shape_text(f->ndim, f->shape, there, sizeof there),
                       shape_text(t->ndim, t->shape, here, sizeof here));
    return NB_OK;
}

static int check_value(const char *path, const checkpoint_entry *e, const char *text, staged_value *out)
{
    int parsed = parse_value(e, text, out);
    if (parsed == -2)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: '%s' is '%s' in the file and '%s' here", path,
                       e->name, text + 4, (const char *)e->target);
    if (parsed != 0)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: '%s' should be a %s, the file has '%.60s'", path,
                       e->name, kind_name(e->kind), text);
    return NB_OK;
}

/* The file's own checksum against the one it carries. */
static int check_checksum(const char *path, const nb_safetensors *file)
{
    const char *stored = nb_safetensors_metadata_get(file, CHECKPOINT_CHECKSUM_KEY);
    if (!stored) return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: no checksum", path);
    int n_tensors = nb_safetensors_count(file), n_metadata = nb_safetensors_metadata_count(file);
    checksum_tensor *sums = nb_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *sums);
    const char **keys = nb_calloc((size_t)n_metadata, sizeof *keys);
    const char **values = nb_calloc((size_t)n_metadata, sizeof *values);
    int status = sums && keys && values ? NB_OK : NB_ERR_NOMEM;
    for (int i = 0; status == NB_OK && i < n_tensors; i++) {
        const nb_safetensors_entry *f = nb_safetensors_entry_at(file, i);
        sums[i] = (checksum_tensor){f->name, f->dtype, f->ndim, f->shape, f->data, f->end - f->begin,
                                    f->element_size, false};
    }
    for (int i = 0; status == NB_OK && i < n_metadata; i++) {
        keys[i] = nb_safetensors_metadata_key(file, i);
        values[i] = nb_safetensors_metadata_value(file, i);
    }
    if (status == NB_OK) {
        char computed[32];
        snprintf(computed, sizeof computed, "%016" PRIx64,
                 checkpoint_checksum(sums, n_tensors, keys, values, n_metadata));
        if (strcmp(computed, stored) != 0)
            status = nb_fail(NB_ERR_FORMAT, "checkpoint: %s: checksum mismatch (file says %.20s, content "
                             "gives %s): the file is corrupt", path, stored, computed);
    }
    nb_free(sums);
    nb_free(keys);
    nb_free(values);
    return status;
}

static bool is_registered(const nb_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->count; i++)
        if (strcmp(ck->entries[i].name, name) == 0) return true;
    return false;
}

/* Every entry of the file must be one of ours: an extra one means the
 * checkpoint of another model or optimizer. */
static int check_no_extra(const nb_checkpoint *ck, const char *path, const nb_safetensors *file)
{
    for (int i = 0; i < nb_safetensors_count(file); i++) {
        const char *name = nb_safetensors_entry_at(file, i)->name;
        if (!is_registered(ck, name))
            return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: unexpected tensor '%s' (a checkpoint of "
                           "another model or optimizer?)", path, name);
    }
    for (int i = 0; i < nb_safetensors_metadata_count(file); i++) {
        const char *key = nb_safetensors_metadata_key(file, i);
        if (strncmp(key, "nabla.", 6) == 0) continue;
        if (!is_registered(ck, key))
            return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: unexpected entry '%s' (a checkpoint of "
                           "another model or optimizer?)", path, key);
    }
    return NB_OK;
}

static int check_all(const nb_checkpoint *ck, const char *path, const nb_safetensors *file,
                     staged_value *staged)
{
    const char *format = nb_safetensors_metadata_get(file, CHECKPOINT_FORMAT_KEY);
    if (!format)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: not a nabla checkpoint (no %s entry)", path,
                       CHECKPOINT_FORMAT_KEY);
    if (strcmp(format, CHECKPOINT_FORMAT_VERSION) != 0)
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: format version %.20s, this nabla reads %s", path,
                       format, CHECKPOINT_FORMAT_VERSION);
    int status = check_checksum(path, file);
    for (int i = 0; status == NB_OK && i < ck->count; i++) {
        const checkpoint_entry *e = &ck->entries[i];
        if (e->kind == CHECKPOINT_TENSOR) {
            const nb_safetensors_entry *f = nb_safetensors_find(file, e->name);
            status = f ? check_tensor(path, e, f)
                       : nb_fail(NB_ERR_FORMAT, "checkpoint: %s: missing tensor '%s' (a checkpoint of "
                                 "another model or optimizer?)", path, e->name);
            continue;
        }
        const char *text = nb_safetensors_metadata_get(file, e->name);
        status = text ? check_value(path, e, text, &staged[i])
                      : nb_fail(NB_ERR_FORMAT, "checkpoint: %s: missing %s '%s' (a checkpoint of another "
                                "model or optimizer?)", path, kind_name(e->kind), e->name);
    }
    return status == NB_OK ? check_no_extra(ck, path, file) : status;
}

static void commit(const nb_checkpoint *ck, const nb_safetensors *file, const staged_value *staged)
{
    for (int i = 0; i < ck->count; i++) {
        const checkpoint_entry *e = &ck->entries[i];
        switch (e->kind) {
        case CHECKPOINT_TENSOR: {
            nb_tensor *t = e->target;
            const nb_safetensors_entry *f = nb_safetensors_find(file, e->name);
            nb_copy_little_endian(t->data, f->data, (size_t)t->numel, nb_dtype_size(t->dtype));
            break;
        }
        case CHECKPOINT_INT: *(int64_t *)e->target = staged[i].integer; break;
        case CHECKPOINT_DOUBLE: *(double *)e->target = staged[i].real; break;
        case CHECKPOINT_BOOL: *(bool *)e->target = staged[i].flag; break;
        case CHECKPOINT_RNG: *(nb_rng *)e->target = staged[i].rng; break;
        case CHECKPOINT_TAG: break;
        }
    }
}

int nb_checkpoint_load(nb_checkpoint *ck, const char *path)
{
    if (!ck || !path) return nb_fail(NB_ERR_INVALID, "checkpoint_load: NULL argument");
    if (ck->status != NB_OK)
        return nb_fail(ck->status, "checkpoint_load: %s: a registration failed: %s", path, ck->error);
    nb_safetensors *file = nb_safetensors_read(path);
    if (!file) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", nb_last_error());
        return nb_fail(NB_ERR_FORMAT, "checkpoint: %s: unreadable: %s", path, reason);
    }
    staged_value *staged = nb_calloc((size_t)(ck->count ? ck->count : 1), sizeof *staged);
    int status = staged ? check_all(ck, path, file, staged) : NB_ERR_NOMEM;
    if (status == NB_OK) commit(ck, file, staged);
    nb_free(staged);
    nb_safetensors_free(file);
    return status;
}
