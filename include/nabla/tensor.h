/* nabla: tensors.
 *
 * A tensor is a contiguous row-major array of float32 or float64 (int32 is
 * used only for class labels) with up to NB_MAX_DIMS dimensions.
 *
 * Ownership: tensors made by the constructors below are persistent; the
 * caller frees them with nb_tensor_free (this also frees their gradient).
 * Tensors returned by ops live in the tape's arena and are released by
 * nb_tape_reset; nb_tensor_free refuses those (NB_ERR_INVALID, nothing
 * freed).
 *
 * Freed tensors: a header (struct nb_tensor) lives in a store that never
 * gives its memory back, and nabla decides whether a pointer is a live
 * tensor from its address and a table kept beside the store, never by
 * reading the header. Passing a freed persistent tensor to an op,
 * nb_backward or nb_tensor_free fails with NB_ERR_STATE until its header
 * is reused: freed headers are reused oldest first, and only once
 * NB_TENSOR_REUSE_FREES other persistent tensors have been freed after it.
 * After that the pointer may name a new tensor and is accepted as that
 * one. (Tape tensors: see nb_tape_reset in nabla/tape.h.) A tensor whose
 * tape was freed, or a struct nb_tensor not made by nabla, is refused. */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nabla/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_MAX_DIMS 8
/* Frees of other persistent tensors before a freed header is reused. */
#define NB_TENSOR_REUSE_FREES 1024

typedef enum nb_dtype { NB_FLOAT32 = 0, NB_FLOAT64 = 1, NB_INT32 = 2 } nb_dtype;

typedef struct nb_tape nb_tape;
typedef struct nb_node nb_node;
typedef struct nb_tensor nb_tensor;
typedef struct nb_rng nb_rng;

/* Called during backward with the tensor's complete gradient, which it may
 * change in place. Returns NB_OK, or an error that stops the backward. */
typedef int (*nb_grad_hook_fn)(nb_tensor *tensor, nb_tensor *grad, void *user);

struct nb_tensor {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t numel;
    void *data;              /* numel elements of dtype, NB_ALIGN-aligned */
    nb_tensor *grad;         /* same shape and dtype; NULL until backward */
    bool requires_grad;
    /* Library bookkeeping: read-only for users. */
    nb_node *node;           /* op that produced it, NULL for a leaf */
    nb_tape *tape;           /* arena owner, NULL when persistent */
    uint64_t generation;     /* tape step it was made in */
    const char *name;        /* optional, e.g. "conv1.weight" */
    nb_grad_hook_fn hook;
    void *hook_user;
    uint64_t visit_stamp;    /* last backward sweep that reached it */
    uint64_t grad_sweep;     /* sweep its gradient was zeroed for */
    uint32_t magic;
};

NB_API size_t nb_dtype_size(nb_dtype dtype);
NB_API const char *nb_dtype_name(nb_dtype dtype);

/* Persistent constructors. shape has ndim entries, each >= 1... or 0 for
 * an empty dimension; ndim may be 0 for a scalar. */
NB_API nb_tensor *nb_tensor_new(nb_dtype dtype, int ndim, const int64_t *shape);   /* zeros */
NB_API nb_tensor *nb_tensor_zeros(nb_dtype dtype, int ndim, const int64_t *shape);
NB_API nb_tensor *nb_tensor_ones(nb_dtype dtype, int ndim, const int64_t *shape);
NB_API nb_tensor *nb_tensor_full(nb_dtype dtype, int ndim, const int64_t *shape, double value);
/* Copies count = numel elements of `dtype` from data. */
NB_API nb_tensor *nb_tensor_from_data(nb_dtype dtype, int ndim, const int64_t *shape,
                               const void *data);
/* Uniform in [low, high) and normal(mean, std), from rng (NULL: the global
 * generator seeded by nb_manual_seed). Same seed, same numbers everywhere. */
NB_API nb_tensor *nb_tensor_uniform(nb_dtype dtype, int ndim, const int64_t *shape,
                             double low, double high, nb_rng *rng);
NB_API nb_tensor *nb_tensor_normal(nb_dtype dtype, int ndim, const int64_t *shape,
                            double mean, double std, nb_rng *rng);
/* A persistent deep copy (data only; no gradient, same requires_grad). */
NB_API nb_tensor *nb_tensor_clone(const nb_tensor *src);
/* Frees a persistent tensor and its gradient; NULL is ignored. A tape
 * tensor is left alone with an NB_ERR_INVALID message, a tensor freed
 * already with an NB_ERR_STATE one (see nb_last_error). */
NB_API void nb_tensor_free(nb_tensor *tensor);

NB_API void nb_tensor_set_requires_grad(nb_tensor *tensor, bool requires_grad);
NB_API void nb_tensor_set_name(nb_tensor *tensor, const char *name);
/* The gradient, or NULL if backward has not reached this tensor. */
NB_API nb_tensor *nb_tensor_grad(const nb_tensor *tensor);
/* Sets the gradient to zero (keeps the buffer). */
NB_API void nb_tensor_zero_grad(nb_tensor *tensor);
/* Registers a gradient hook (one per tensor; NULL removes it). */
NB_API void nb_tensor_set_hook(nb_tensor *tensor, nb_grad_hook_fn hook, void *user);

/* Element access by flat index, converting to double. */
NB_API double nb_tensor_get(const nb_tensor *tensor, int64_t index);
NB_API void nb_tensor_set(nb_tensor *tensor, int64_t index, double value);
/* Copies src's values into dst (same numel; dtypes may differ). */
NB_API int nb_tensor_copy(nb_tensor *dst, const nb_tensor *src);
/* Fills with a constant. */
NB_API void nb_tensor_fill(nb_tensor *tensor, double value);

NB_API bool nb_shape_equal(const nb_tensor *a, const nb_tensor *b);
/* Writes "[2,3,4]" into buf; returns buf. */
NB_API char *nb_shape_string(const nb_tensor *tensor, char *buf, size_t size);

/* Prints like PyTorch's repr: tensor([[1.0000, 2.0000]], requires_grad=True). */
NB_API void nb_tensor_print(const nb_tensor *tensor, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
