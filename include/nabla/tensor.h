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
 * change in place. Returns NB_OK, or an error that stops the backward.
 * An intermediate's hook runs before its producer's backward reads the
 * gradient; a leaf's (a parameter's) runs as soon as the last node using
 * it has been swept, while the rest of the sweep is still to come, so a
 * hook can start work on a finished gradient (data-parallel training
 * all-reduces it there) and overlap the remaining backward. */
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
    const nb_node *hook_after;  /* a hooked leaf's last consumer in this sweep */
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
/* The same, from numel elements of data_dtype, converted to dtype while
 * copying (as nb_tensor_to_dtype converts). */
NB_API nb_tensor *nb_tensor_from_data_as(nb_dtype dtype, int ndim, const int64_t *shape,
                                         nb_dtype data_dtype, const void *data);
/* Uniform in [low, high) and normal(mean, std), from rng (NULL: the global
 * generator seeded by nb_manual_seed). Same seed, same numbers everywhere. */
NB_API nb_tensor *nb_tensor_uniform(nb_dtype dtype, int ndim, const int64_t *shape,
                             double low, double high, nb_rng *rng);
NB_API nb_tensor *nb_tensor_normal(nb_dtype dtype, int ndim, const int64_t *shape,
                            double mean, double std, nb_rng *rng);
/* A persistent deep copy (data only; no gradient, same requires_grad). */
NB_API nb_tensor *nb_tensor_clone(const nb_tensor *src);
/* A new persistent tensor holding src's values converted to dtype, as
 * PyTorch's src.to(dtype): float32 <-> float64 rounds to nearest; int32 ->
 * float is exact in float64 (float32 rounds above 2^24); float -> int32
 * truncates toward zero, and a value with no int32 result (NaN, an
 * infinity, outside [-2^31, 2^31) after truncation) is an error. The copy
 * has no gradient and does not require one (PyTorch's .to() of a leaf is a
 * non-leaf joined to src's graph; here it is a new leaf, cut from src):
 * call nb_tensor_set_requires_grad to make it a parameter. src may be a
 * tape tensor of the current step. */
NB_API nb_tensor *nb_tensor_to_dtype(const nb_tensor *src, nb_dtype dtype);
/* Frees a persistent tensor and its gradient; NULL is ignored. A tape
 * tensor is left alone with an NB_ERR_INVALID message, a tensor freed
 * already with an NB_ERR_STATE one (see nb_last_error). */
NB_API void nb_tensor_free(nb_tensor *tensor);

NB_API void nb_tensor_set_requires_grad(nb_tensor *tensor, bool requires_grad);
NB_API void nb_tensor_set_name(nb_tensor *tensor, const char *name);
/* The gradient, or NULL if backward has not reached this tensor.
 *
 * Leaves (parameters, and tape tensors made by nb_tape_tensor) accumulate
 * it over backward calls until zeroed, as in PyTorch. An op output (an
 * intermediate) gets one from every nb_backward that reaches it, without
 * any retain_grad call: the complete d(output)/d(tensor) of that sweep,
 * after its hook ran, in an arena buffer that stays readable until
 * nb_tape_reset. Each sweep that reaches it starts it from zero, so after
 * two backward calls it holds the second one's gradient (PyTorch's
 * retain_grad would hold the sum); a sweep that does not reach it leaves it
 * as it was. */
NB_API nb_tensor *nb_tensor_grad(const nb_tensor *tensor);
/* Sets the gradient to zero (keeps the buffer). */
NB_API void nb_tensor_zero_grad(nb_tensor *tensor);
/* Sets the gradient to a copy of grad (PyTorch's `t.grad = grad`): same
 * shape as t, float32 or float64, converted to t's dtype; NULL clears it
 * (`t.grad = None`). t must be float32 or float64. A gradient t already
 * has keeps its buffer and takes the new values, so a pointer from
 * nb_tensor_grad stays valid; clearing frees a persistent tensor's
 * gradient (t owns it) and drops a tape tensor's (the arena releases it at
 * nb_tape_reset). grad stays the caller's. A leaf's next backward adds to
 * the value set here; an intermediate's restarts from zero (see
 * nb_tensor_grad). NB_OK, or a negative status with nb_last_error set and
 * nothing changed. */
NB_API int nb_tensor_set_grad(nb_tensor *t, const nb_tensor *grad);
/* Registers a gradient hook (one per tensor; NULL removes it). */
NB_API void nb_tensor_set_hook(nb_tensor *tensor, nb_grad_hook_fn hook, void *user);

/* Element access by flat index, converting to double. */
NB_API double nb_tensor_get(const nb_tensor *tensor, int64_t index);
NB_API void nb_tensor_set(nb_tensor *tensor, int64_t index, double value);
/* Copies src's values into dst (same numel; dtypes may differ, converted
 * as nb_tensor_to_dtype converts; nothing is written on failure). */
NB_API int nb_tensor_copy(nb_tensor *dst, const nb_tensor *src);
/* Writes src's numel values, converted to dtype (float32, float64, or
 * int32 as nb_tensor_to_dtype converts), into the caller's buffer `out`;
 * count must equal src's numel. NB_OK or a negative status. */
NB_API int nb_tensor_copy_to(const nb_tensor *src, nb_dtype dtype, void *out, int64_t count);
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
