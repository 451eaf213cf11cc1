/* Fuzz target: the safetensors reader (nb_safetensors_parse) and loading
 * into tensors (nb_safetensors_load_into), with a save/read round trip.
 *
 * For every input: parse it; a parsed file must be self-consistent
 * (offsets inside the buffer, byte counts matching shapes, lookups by
 * name finding each entry). Then tensors are made for the entries nabla
 * can hold and filled from the same bytes written to a file: the load must
 * succeed and copy the bytes exactly, a load asking for one more tensor
 * must fail and change nothing, and saving the tensors and reading the new
 * file must give them back. */
#include <math.h>
#include <string.h>

#include "fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LOADED = 16, MAX_LOADED_ELEMENTS = 1 << 16 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_install_allocator((size_t)64 << 20, (size_t)256 << 20);
    return 0;
}

static void check_entries(const nb_safetensors *file, const uint8_t *data, size_t size)
{
    int count = nb_safetensors_count(file);
    FUZZ_CHECK(count >= 0);
    FUZZ_CHECK(nb_safetensors_entry_at(file, count) == NULL);
    FUZZ_CHECK(nb_safetensors_entry_at(file, -1) == NULL);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | data[i];
    const uint8_t *data_start = data + 8 + header, *data_end = data + size;
    uint64_t total = 0;
    for (int i = 0; i < count; i++) {
        const nb_safetensors_entry *e = nb_safetensors_entry_at(file, i);
        FUZZ_CHECK(e && e->name && e->dtype && e->element_size >= 1 && e->element_size <= 8);
        FUZZ_CHECK(e->ndim >= 0 && e->ndim <= NB_MAX_DIMS);
        int64_t numel = fuzz_numel(e->ndim, e->shape);
        FUZZ_CHECK(numel >= 0 && numel == e->numel);
        FUZZ_CHECK(e->begin <= e->end && e->end - e->begin == (uint64_t)numel * e->element_size);
        FUZZ_CHECK(e->data == data_start + e->begin && e->data + (e->end - e->begin) <= data_end);
        /* Touch every byte so AddressSanitizer sees any out-of-range entry. */
        unsigned sum = 0;
        for (uint64_t k = 0; k < e->end - e->begin; k++) sum += e->data[k];
        (void)sum;
        FUZZ_CHECK(nb_safetensors_find(file, e->name) == e);
        total += e->end - e->begin;
    }
    FUZZ_CHECK(total == (uint64_t)(data_end - data_start)); /* the tensors tile the data */
    for (int i = 0; i < nb_safetensors_metadata_count(file); i++) {
        const char *key = nb_safetensors_metadata_key(file, i);
        FUZZ_CHECK(key && nb_safetensors_metadata_value(file, i));
        FUZZ_CHECK(nb_safetensors_metadata_get(file, key) != NULL);
    }
}

/* Persistent tensors shaped like the entries nabla can hold. */
static int make_tensors(const nb_safetensors *file, nb_named_tensor *named)
{
    int made = 0;
    for (int i = 0; i < nb_safetensors_count(file) && made < MAX_LOADED; i++) {
        const nb_safetensors_entry *e = nb_safetensors_entry_at(file, i);
        if (e->nabla_dtype < 0 || e->numel > MAX_LOADED_ELEMENTS) continue;
        nb_tensor *t = nb_tensor_new((nb_dtype)e->nabla_dtype, e->ndim, e->shape);
        if (!t) continue; /* out of memory in the bounded allocator */
        nb_tensor_fill(t, 7.0);
        named[made].name = e->name;
        named[made].tensor = t;
        made++;
    }
    return made;
}

static void check_loaded(const nb_safetensors *file, const nb_named_tensor *named, int count)
{
    for (int i = 0; i < count; i++) {
        const nb_safetensors_entry *e = nb_safetensors_find(file, named[i].name);
        FUZZ_CHECK(e != NULL);
        FUZZ_CHECK(memcmp(named[i].tensor->data, e->data, e->end - e->begin) == 0);
    }
}

/* Bitwise equality, so NaN payloads count too. */
static bool same_values(const nb_tensor *a, const nb_tensor *b)
{
    return a->dtype == b->dtype && a->numel == b->numel &&
           memcmp(a->data, b->data, (size_t)a->numel * nb_dtype_size(a->dtype)) == 0;
}

static void load_and_round_trip(const nb_safetensors *file, const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_path("input.safetensors");
    const char *saved = fuzz_scratch_path("saved.safetensors");
    if (!path || !saved || fuzz_write_file(path, data, size) != 0) return;
    nb_named_tensor named[MAX_LOADED + 1];
    int count = make_tensors(file, named);

    int status = nb_safetensors_load_into(path, named, count);
    /* Only the bounded allocator may refuse a file that parsed. */
    if (status != NB_OK) {
        FUZZ_CHECK(status == NB_ERR_NOMEM);
        goto done;
    }
    check_loaded(file, named, count);

    /* A missing name fails the whole load before anything is written. */
    const int64_t one = 1;
    named[count].name = "fuzz: not in any file \x01";
    named[count].tensor = nb_tensor_new(NB_FLOAT32, 1, &one);
    if (named[count].tensor) {
        for (int i = 0; i < count; i++) nb_tensor_fill(named[i].tensor, 3.0);
        status = nb_safetensors_load_into(path, named, count + 1);
        FUZZ_CHECK(status != NB_OK && nb_last_error()[0] != '\0');
        for (int i = 0; i < count; i++)
            for (int64_t k = 0; k < named[i].tensor->numel; k++)
                FUZZ_CHECK(nb_tensor_get(named[i].tensor, k) == 3.0);
        nb_tensor_free(named[count].tensor);
        status = nb_safetensors_load_into(path, named, count);
        FUZZ_CHECK(status == NB_OK || status == NB_ERR_NOMEM);
        if (status != NB_OK) goto done;
    }

    /* Saving is stricter than reading (no empty or "__metadata__" names),
     * so it may refuse; what it writes must read back the same. */
    if (count > 0 && nb_safetensors_save(saved, named, count) == NB_OK) {
        nb_safetensors *again = nb_safetensors_read(saved);
        FUZZ_CHECK(again != NULL || strstr(nb_last_error(), "out of memory"));
        if (again) {
            FUZZ_CHECK(nb_safetensors_count(again) == count);
            for (int i = 0; i < count; i++) {
                const nb_safetensors_entry *e = nb_safetensors_find(again, named[i].name);
                FUZZ_CHECK(e && e->nabla_dtype == (int)named[i].tensor->dtype);
                FUZZ_CHECK(e->ndim == named[i].tensor->ndim);
                FUZZ_CHECK(memcmp(e->data, named[i].tensor->data, e->end - e->begin) == 0);
            }
            nb_safetensors_free(again);
            /* And load_into from the saved file fills clones identically. */
            nb_named_tensor copies[MAX_LOADED];
            int made = 0;
            for (; made < count; made++) {
                copies[made].name = named[made].name;
                copies[made].tensor = nb_tensor_clone(named[made].tensor);
                if (!copies[made].tensor) break;
                nb_tensor_fill(copies[made].tensor, 0.0);
            }
            if (made == count && nb_safetensors_load_into(saved, copies, count) == NB_OK)
                for (int i = 0; i < count; i++)
                    FUZZ_CHECK(same_values(copies[i].tensor, named[i].tensor));
            for (int i = 0; i < made; i++) nb_tensor_free(copies[i].tensor);
        }
    }
done:
    for (int i = 0; i < count; i++) nb_tensor_free(named[i].tensor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_clear_error();
    nb_safetensors *file = nb_safetensors_parse(data, size, "fuzz");
    if (!file) {
        FUZZ_CHECK(nb_last_error()[0] != '\0');
    } else {
        check_entries(file, data, size);
        load_and_round_trip(file, data, size);
        nb_safetensors_free(file);
    }
    FUZZ_CHECK(fuzz_live_bytes() == 0); /* everything made was freed */
    return 0;
}
