/* nabla: the tape.
 *
 * Eager and define-by-run: every op computes its output when called and, if
 * grad mode is on and an input requires a gradient, records a node. Nodes
 * are recorded in creation order, which is already a topological order, so
 * nb_backward is one reverse sweep over them.
 *
 * Memory: every op output, gradient of an intermediate, node and scratch
 * buffer of a step lives in the tape's arena. nb_tape_reset releases them
 * all at once; the arena keeps its memory, so a steady-state training step
 * allocates nothing. Parameters (persistent tensors) keep their gradients,
 * which accumulate over backward calls until zeroed, as in PyTorch.
 *
 * A tape is not thread-safe; two threads may use two tapes at once. */
#ifndef NABLA_TAPE_H
#define NABLA_TAPE_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stddef.h>

#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

NB_API nb_tape *nb_tape_new(void);
NB_API void nb_tape_free(nb_tape *tape);

/* Steps a tensor header waits before the tape reuses it (see reset). */
#define NB_TAPE_REUSE_STEPS 4

/* Releases every intermediate of the step and clears the tape's error.
 * Tensors from the released step must not be used again; nb_backward and
 * ops detect them and fail with NB_ERR_STATE. The check reads only the
 * tape's own tables, never the released memory. A header made in step k is
 * not reused before step k + NB_TAPE_REUSE_STEPS, so a tensor kept from
 * step k is always caught in steps k+1 .. k+NB_TAPE_REUSE_STEPS-1 (and
 * later, until its header is reused; from then on the pointer names a
 * tensor of the new step and is accepted as that one). A tensor of another
 * tape fails with NB_ERR_INVALID, one of a freed tape with NB_ERR_STATE. */
NB_API void nb_tape_reset(nb_tape *tape);

/* The first error recorded on the tape since the last reset, or NULL. */
NB_API const char *nb_tape_error(const nb_tape *tape);

/* For wrappers that read an input's shape before any nb_apply (ops with
 * several results, such as nb_split): NB_OK when the tape has no error
 * and x may be used on it now (see nb_tape_reset); otherwise the error,
 * recorded on the tape (sticky) and naming `who`. A tape that already
 * failed returns its status without a new message. */
NB_API int nb_tape_check_input(nb_tape *tape, const nb_tensor *x, const char *who);

/* Grad mode. Returns the previous setting, so a no-grad scope reads
 *   bool was = nb_tape_set_grad_enabled(tape, false); ...;
 *   nb_tape_set_grad_enabled(tape, was); */
NB_API bool nb_tape_set_grad_enabled(nb_tape *tape, bool enabled);
NB_API bool nb_tape_grad_enabled(const nb_tape *tape);

/* Precision of the matrix products (linear, matmul, conv2d and its fused
 * nodes, conv1d, conv_transpose2d, attention, the recurrent cells) on
 * float32 tensors: NB_PRECISION_FP32 (the default) or NB_PRECISION_BF16,
 * where the operands are rounded to bfloat16 (nearest even) and the
 * products accumulated in float32. Outputs, gradients, parameters and
 * optimizer state stay float32 (the weights are the float32 master copy);
 * float64 ignores the setting. A node keeps the precision it was recorded
 * with for its backward. A module's own setting (nb_module_set_precision)
 * overrides the tape's inside its forward. docs/precision.md. */
typedef enum nb_precision {
    NB_PRECISION_INHERIT = 0, /* a module's default: follow the tape */
    NB_PRECISION_FP32 = 1,
    NB_PRECISION_BF16 = 2
} nb_precision;
NB_API int nb_tape_set_precision(nb_tape *tape, nb_precision precision);
NB_API nb_precision nb_tape_precision(const nb_tape *tape);
/* "fp32", "bf16" (and "inherit"); NB_ERR_INVALID for another name. */
NB_API int nb_precision_parse(const char *name, nb_precision *out);
NB_API const char *nb_precision_name(nb_precision precision);

/* Anomaly mode: the first op whose forward or backward makes a NaN or Inf
 * fails with a message naming the op and its input shapes. */
NB_API void nb_tape_set_anomaly_mode(nb_tape *tape, bool enabled);

/* Reverse-mode sweep from `output`. A scalar output is seeded with 1; any
 * other needs `seed` (same shape and dtype). Only nodes that lead to
 * `output` and need a gradient are visited. */
NB_API int nb_backward(nb_tape *tape, nb_tensor *output, const nb_tensor *seed);

/* Gradients as values (PyTorch's torch.autograd.grad): grads[j] receives
 * d(sum_k <seeds[k], outputs[k]>)/d(inputs[j]), a tape tensor of inputs[j]'s
 * shape, and no tensor's .grad is touched. seeds may be NULL, or hold NULL
 * entries, for scalar outputs (seed 1). Every input must require a
 * gradient; one that no output depends on is an error unless
 * NB_GRAD_ALLOW_UNUSED is given (then its grads[j] is NULL).
 *
 * With NB_GRAD_CREATE_GRAPH the sweep is itself recorded on the tape (with
 * grad mode on for its duration), using each op's backward_ops: the
 * gradients require grad and can be differentiated again, to any order
 * (Hessian-vector products, gradient penalties, MAML). An op on the path
 * without backward_ops fails the call with an error naming it. Without the
 * flag the ops' buffer backwards run and the gradients are plain values.
 * Graphs recorded here are released by nb_tape_reset like any other.
 * Gradient hooks do not run. NB_OK, or a negative status with
 * nb_last_error set (an op failing inside a recorded sweep also sets the
 * tape's error). */
enum {
    NB_GRAD_CREATE_GRAPH = 1u << 0,
    NB_GRAD_ALLOW_UNUSED = 1u << 1
};
NB_API int nb_grad(nb_tape *tape, int n_outputs, nb_tensor *const *outputs,
                   nb_tensor *const *seeds, int n_inputs, nb_tensor *const *inputs,
                   nb_tensor **grads, unsigned flags);

/* A tensor sharing x's values that never requires a gradient. */
NB_API nb_tensor *nb_detach(nb_tape *tape, nb_tensor *x);

/* Arena tensors for per-step data such as an input batch (zeros, or a
 * copy of `data`). Released by nb_tape_reset. */
NB_API nb_tensor *nb_tape_tensor(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *shape,
                          const void *data);
/* Class labels for the losses: an int32 [n] arena tensor copied from
 * `labels`. */
NB_API nb_tensor *nb_tape_labels(nb_tape *tape, int64_t n, const int32_t *labels);

/* Raw arena memory for the step, NB_ALIGN-aligned; NULL and a tape error
 * when out of memory. */
NB_API void *nb_tape_alloc(nb_tape *tape, size_t bytes);

/* Statistics. */
NB_API size_t nb_tape_node_count(const nb_tape *tape);
NB_API size_t nb_tape_arena_used(const nb_tape *tape);
NB_API size_t nb_tape_arena_high_water(const nb_tape *tape);
NB_API size_t nb_tape_arena_capacity(const nb_tape *tape);

/* Walks the recorded nodes in creation order (for graph export and tools). */
typedef int (*nb_node_visit_fn)(const nb_node *node, void *user);
NB_API int nb_tape_visit(nb_tape *tape, nb_node_visit_fn visit, void *user);

#ifdef __cplusplus
}
#endif
#endif
