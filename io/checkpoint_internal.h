/* Internal: the checkpoint registry shared by io/checkpoint*.c. */
#ifndef NABLA_IO_CHECKPOINT_INTERNAL_H
#define NABLA_IO_CHECKPOINT_INTERNAL_H

#include "nabla/checkpoint.h"
#include "nabla/io.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum checkpoint_kind {
    CHECKPOINT_TENSOR,
    CHECKPOINT_INT,
    CHECKPOINT_DOUBLE,
    CHECKPOINT_BOOL,
    CHECKPOINT_RNG,
    CHECKPOINT_TAG
} checkpoint_kind;

typedef struct checkpoint_entry {
    checkpoint_kind kind;
    char *name;          /* owned */
    void *target;        /* nb_tensor, int64_t, double, bool or nb_rng; the tag's owned copy */
} checkpoint_entry;

struct nb_checkpoint {
    checkpoint_entry *entries;
    int count, capacity;
    int status;                  /* the first failed registration, or NB_OK */
    char error[256];             /* its message */
};

/* Metadata keys of the container itself. */
#define CHECKPOINT_FORMAT_KEY "nabla.checkpoint"
#define CHECKPOINT_FORMAT_VERSION "1"
#define CHECKPOINT_CHECKSUM_KEY "nabla.checksum"

/* The checksum over the file's content in a fixed order: tensors sorted by
 * name (name, dtype, shape, little-endian bytes), then metadata sorted by
 * key (key, value), the checksum's own entry left out. */
typedef struct checksum_tensor {
    const char *name;
    const char *dtype;                 /* "F32", "F64", "I32" */
    int ndim;
    const int64_t *shape;
    const unsigned char *bytes;
    uint64_t length;
    size_t element_size;
    bool host_order;                   /* bytes in host order (else the file's little-endian) */
} checksum_tensor;

uint64_t checkpoint_checksum(checksum_tensor *tensors, int n_tensors, const char **keys,
                             const char **values, int n_metadata);

/* Remembers the first failed registration (its status and nb_last_error)
 * for save and load to report; returns status. */
int checkpoint_remember(nb_checkpoint *ck, int status);

/* The metadata text of a non-tensor entry ("int 12", "rng ...") into buf. */
int checkpoint_format_value(const checkpoint_entry *e, char *buf, size_t size);

#endif
