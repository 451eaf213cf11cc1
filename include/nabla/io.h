/* nabla: saving and loading tensors in the safetensors format.
 *
 * The format (https://github.com/huggingface/safetensors):
 *   8 bytes   N, little-endian u64: length of the header
 *   N bytes   UTF-8 JSON object: name -> {"dtype":"F32", "shape":[2,3],
 *             "data_offsets":[begin,end]}, plus an optional
 *             "__metadata__": {string: string}
 *   rest      the raw little-endian data; offsets are relative to its start
 *             and the tensors must cover it exactly (no holes, no overlaps).
 *
 * Files we write follow the reference implementation: tensors sorted by
 * element size (largest first) then by name, in the header and in the data,
 * so every tensor is naturally aligned; the header is padded with spaces to
 * a multiple of 8 bytes. Reading is strict: any malformed file fails with
 * NB_ERR_FORMAT and a message naming the file and the problem, and never
 * reads outside the buffer (the parser is meant to be fuzzed). */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include "nabla/export.h"

#include <stddef.h>
#include <stdint.h>

#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header accepted, as in the reference implementation. */
#define NB_SAFETENSORS_MAX_HEADER 100000000u

typedef struct nb_named_tensor {
    const char *name;
    nb_tensor *tensor;
} nb_named_tensor;

/* Writes float32 (F32), float64 (F64) and int32 (I32) tensors. Names must be
 * non-empty, unique and not "__metadata__". The file is written to
 * "<path>.tmp", flushed to the disk (fsync) and renamed over `path`, so a
 * crash never leaves a torn file. */
NB_API int nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int count);
/* Same, with a "__metadata__" object of metadata_count key/value strings. */
NB_API int nb_safetensors_save_with_metadata(const char *path, const nb_named_tensor *tensors,
                                      int count, const char *const *metadata_keys,
                                      const char *const *metadata_values, int metadata_count);

/* Fills existing tensors by name. Each shape must match exactly; the dtype
 * must match too, except that F32 and F64 convert into each other (F64 to
 * float32 rounds). A tensor missing from the file is an error naming it;
 * tensors in the file that nobody asked for are ignored. Everything is
 * checked before anything is written, so a failed load changes nothing. */
NB_API int nb_safetensors_load_into(const char *path, const nb_named_tensor *tensors, int count);

/* The lower-level reader. */
typedef struct nb_safetensors nb_safetensors;

typedef struct nb_safetensors_entry {
    const char *name;          /* owned by the handle */
    const char *dtype;         /* "F32", "BF16", ... as in the file */
    size_t element_size;       /* bytes per element */
    int nabla_dtype;           /* an nb_dtype for F32/F64/I32, else -1 */
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;       /* data_offsets, relative to the data */
    const unsigned char *data; /* begin's address in the parsed buffer */
} nb_safetensors_entry;

/* Parses and validates a whole file image held in memory. `source` names it
 * in error messages (NULL: "<memory>"). The entries point into `buffer`,
 * which must outlive the handle. NULL on failure. */
NB_API nb_safetensors *nb_safetensors_parse(const void *buffer, size_t length, const char *source);
/* Reads and parses a file; the handle owns the file's bytes. */
NB_API nb_safetensors *nb_safetensors_read(const char *path);
NB_API void nb_safetensors_free(nb_safetensors *file);

/* Entries in header order. */
NB_API int nb_safetensors_count(const nb_safetensors *file);
NB_API const nb_safetensors_entry *nb_safetensors_entry_at(const nb_safetensors *file, int index);
/* The entry called `name`, or NULL. */
NB_API const nb_safetensors_entry *nb_safetensors_find(const nb_safetensors *file, const char *name);
/* "__metadata__" pairs, in file order. A file whose __metadata__ is not a
 * flat map of string to string (a duplicate key, or a number, null, array
 * or object as a value) is refused as malformed (NB_ERR_FORMAT). */
NB_API int nb_safetensors_metadata_count(const nb_safetensors *file);
NB_API const char *nb_safetensors_metadata_key(const nb_safetensors *file, int index);
NB_API const char *nb_safetensors_metadata_value(const nb_safetensors *file, int index);
/* The value for `key`, or NULL. */
NB_API const char *nb_safetensors_metadata_get(const nb_safetensors *file, const char *key);

#ifdef __cplusplus
}
#endif
#endif
