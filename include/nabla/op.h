/* nabla: the op interface.
 *
 * Every op, built-in or user-defined, is one nb_op descriptor: a name, a
 * shape rule, a forward, a backward (its vector-Jacobian product) and the
 * sample inputs its gradcheck uses. nb_apply runs an op on a tape; the
 * built-in functions such as nb_relu are one-line wrappers around it.
 *
 *   shape:    validate inputs and params, describe the output. On bad input
 *             return nb_op_error(ctx, "...") naming the shapes.
 *   forward:  fill ctx->output (its buffer is allocated, not zeroed). Store
 *             anything backward needs in ctx->saved (nb_op_alloc memory).
 *   backward: given ctx->output_grad, ADD (+=) each input's contribution to
 *             ctx->input_grads[i]; an entry is NULL when that input needs no
 *             gradient, and the op should skip that work. An op flagged
 *             NB_OP_ASSIGNS_FRESH_GRADS must instead ASSIGN (=) every
 *             element of input_grads[i] when bit i of ctx->fresh_grads is
 *             set: the buffer is then new in this sweep and not zeroed.
 *   backward_ops (optional): the same vector-Jacobian product written with
 *             ops on ctx->tape (nb_mul, nb_matmul, ...), so that it can be
 *             differentiated again: nb_grad with NB_GRAD_CREATE_GRAPH runs
 *             it instead of backward. Given grad_output (a tape tensor with
 *             the output's shape, which may itself require a gradient), set
 *             grads[i] to input i's contribution, a tensor of input i's
 *             shape and dtype built from ctx->inputs, ctx->output,
 *             grad_output and constants; leave it NULL where the
 *             contribution is zero or nb_grad_wanted(ctx, i) is false. Never
 *             write into an existing tensor. An op without it is named in
 *             nb_grad's error when a graph is asked for.
 *   sample:   fill gradcheck case number `index` (float64 inputs with
 *             requires_grad set on the differentiable ones, and params);
 *             return 1, or 0 when there is no such case.
 *
 * Inputs are never modified. Float inputs of one op share one dtype
 * (float32 or float64); inputs flagged in index_inputs are int32 (class
 * labels) and never get a gradient. */
#ifndef NABLA_OP_H
#define NABLA_OP_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stddef.h>

#include "nabla/random.h"
#include "nabla/tape.h"
#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_MAX_PARAMS_SIZE 256
#define NB_SAMPLE_MAX_INPUTS 8
#define NB_SAMPLE_MAX_OWNED 4
/* The largest finite max_inputs: the width of index_inputs. */
#define NB_OP_MAX_INPUTS 32

typedef struct nb_op nb_op;

typedef struct nb_shape {
    nb_dtype dtype;
    int ndim;
    int64_t dims[NB_MAX_DIMS];
} nb_shape;

typedef struct nb_op_ctx {
    const nb_op *op;
    nb_tape *tape;
    int n_inputs;
    nb_tensor **inputs;
    nb_tensor *output;
    const void *params;        /* a copy of the caller's params, or NULL */
    void *saved;               /* the op's own state for backward */
    /* Set during backward only. */
    const nb_tensor *output_grad;
    nb_tensor **input_grads;
    /* Bit i: input_grads[i] is uninitialised and the backward assigns it.
     * Only ever set for ops flagged NB_OP_ASSIGNS_FRESH_GRADS. */
    unsigned fresh_grads;
    /* Set for backward_ops only. Bit i: input i's gradient is wanted (it
     * leads to an input of nb_grad). Inputs from 32 on are always wanted. */
    unsigned wanted_grads;
    /* The tape's precision when the node was recorded (FP32 or BF16; see
     * nb_tape_set_precision). */
    nb_precision precision;
} nb_op_ctx;

typedef struct nb_sample {
    const char *label;         /* short description of the case */
    const char *note;          /* e.g. how the case keeps away from kinks */
    int n_inputs;
    nb_tensor *inputs[NB_SAMPLE_MAX_INPUTS];
    /* Tensors the params point at (batch_norm's running statistics), not
     * inputs: made by nb_sample_owned_tensor, freed with the sample. */
    int n_owned;
    nb_tensor *owned[NB_SAMPLE_MAX_OWNED];
#ifdef __cplusplus
    alignas(16) unsigned char params[NB_MAX_PARAMS_SIZE];
#else
    _Alignas(16) unsigned char params[NB_MAX_PARAMS_SIZE];
#endif
} nb_sample;

enum {
    NB_OP_VIEW = 1u << 0,      /* output shares input 0's buffer (reshape) */
    /* The backward assigns gradient buffers that are new in the sweep (see
     * ctx->fresh_grads), so the engine skips zeroing them: for the first
     * consumer of an intermediate that saves a memset and a read of the
     * whole gradient. Later consumers (fan-out) still accumulate. */
    NB_OP_ASSIGNS_FRESH_GRADS = 1u << 1
};

/* nb_op_register and the first nb_apply of a descriptor check it and fail
 * with NB_ERR_INVALID naming the op and the field: name, shape and forward
 * set; params_size <= NB_MAX_PARAMS_SIZE; 0 <= min_inputs <= max_inputs <=
 * NB_OP_MAX_INPUTS, or max_inputs -1; index_inputs only below max_inputs;
 * only the flags above. */
struct nb_op {
    const char *name;
    int min_inputs;
    int max_inputs;            /* -1: any number (cat) */
    size_t params_size;        /* bytes copied from the caller's params */
    unsigned index_inputs;     /* bit i set: input i is an int32 index tensor */
    unsigned flags;
    int (*shape)(nb_op_ctx *ctx, nb_shape *out);
    int (*forward)(nb_op_ctx *ctx);
    int (*backward)(nb_op_ctx *ctx);
    int (*backward_ops)(nb_op_ctx *ctx, nb_tensor *grad_output, nb_tensor **grads);
    int (*sample)(int index, nb_sample *sample, nb_rng *rng);
};

/* Runs `op` on the tape. Returns the output (an arena tensor) or NULL with
 * the error on the tape. n_inputs tensors; params points to
 * op->params_size bytes (may be NULL when that is 0). */
NB_API nb_tensor *nb_apply(nb_tape *tape, const nb_op *op, int n_inputs, nb_tensor *const *inputs,
                    const void *params);

/* For use inside shape/forward/backward. nb_op_error fails the op: it
 * formats fmt (printf-style), prefixes the op's name and ": ", so the
 * message must not repeat the name ("input [2,3] must be 4-D" becomes
 * "conv2d: input [2,3] must be 4-D"), makes that the thread's last error
 * (nb_last_error) and returns NB_ERR_INVALID for the function to return.
 * A failure in shape or forward becomes the tape's error as nb_apply
 * returns NULL; one in backward stops the sweep and nb_backward returns
 * the status with the message as its last error. */
NB_API int nb_op_error(nb_op_ctx *ctx, const char *fmt, ...) NB_PRINTF(2, 3);
/* Arena memory for the node (ctx->saved and the like), NB_ALIGN-aligned;
 * NULL with an out-of-memory error naming the op. */
NB_API void *nb_op_alloc(nb_op_ctx *ctx, size_t bytes);
/* In forward: whether the output will be recorded for backward (gradients
 * are on and an input requires one), so state kept only for the backward
 * can be skipped otherwise. */
NB_API bool nb_op_records(const nb_op_ctx *ctx);
/* Scratch that lives for one forward or backward call: nb_op_alloc memory
 * taken after nb_op_scratch_begin goes back to the tape's arena at
 * nb_op_scratch_end, so the next op reuses it and a step's peak memory does
 * not add up every op's temporaries. Nothing allocated in between may be
 * kept (not ctx->saved: allocate that before begin). Pairs nest. */
typedef struct nb_op_scratch {
    void *chunk;
    size_t offset, used;
} nb_op_scratch;
NB_API nb_op_scratch nb_op_scratch_begin(nb_op_ctx *ctx);
NB_API void nb_op_scratch_end(nb_op_ctx *ctx, nb_op_scratch mark);
/* Fails the tape as a failing op would: the message (printf-style; name
 * the op) becomes the thread's last error and, unless the tape already
 * holds one, the tape's sticky error. For op wrappers that reject their
 * arguments before nb_apply. Returns status; tape may be NULL. */
NB_API int nb_tape_fail(nb_tape *tape, int status, const char *fmt, ...)
    NB_PRINTF(3, 4);
/* Ops flagged NB_OP_ASSIGNS_FRESH_GRADS: whether input_grads[i] must be
 * assigned rather than added to (bit i of ctx->fresh_grads). */
/* Whether the node's float32 matrix products run in bf16: the node's
 * precision is BF16 and its input 0 is float32 (float64 ignores it). */
static inline bool nb_op_bf16(const nb_op_ctx *ctx)
{
    return ctx->precision == NB_PRECISION_BF16 && ctx->n_inputs > 0 &&
           ctx->inputs[0]->dtype == NB_FLOAT32;
}

static inline bool nb_grad_fresh(const nb_op_ctx *ctx, int i) { return ctx->fresh_grads >> i & 1u; }
/* In backward_ops: whether input i's gradient is wanted. */
static inline bool nb_grad_wanted(const nb_op_ctx *ctx, int i)
{
    return i >= 32 || (ctx->wanted_grads >> i & 1u);
}
/* For a path of such an op that can only accumulate: zeroes
 * input_grads[i] if it is fresh and clears its bit. */
NB_API void nb_grad_zero_fresh(nb_op_ctx *ctx, int i);
/* For tensors an op reaches through its params (batch_norm's running
 * statistics): fails naming the op and `what` unless t is a live tensor
 * that may be used on ctx's tape now (persistent, or made on this tape
 * since its last reset). */
NB_API int nb_op_check_tensor(nb_op_ctx *ctx, const nb_tensor *t, const char *what);
/* The op's node (or transient context) owning a recorded output, or NULL. */
NB_API const nb_op_ctx *nb_node_ctx(const nb_node *node);

/* The registry, read by nabla-gradcheck and graph tools. Built-in ops are
 * always present; nb_op_register adds a user op (same descriptor). */
/* Fails, naming `who`, the descriptor and the field, unless op is a
 * descriptor the engine can run (nb_op_register and the first nb_apply of
 * a descriptor check the same). */
NB_API int nb_op_check_descriptor(const nb_op *op, const char *who);
NB_API int nb_op_register(const nb_op *op);
NB_API int nb_op_count(void);
NB_API const nb_op *nb_op_at(int index);
NB_API const nb_op *nb_op_find(const char *name);

/* Helpers for sample functions: a persistent float64 tensor with values
 * uniform in [low, high), optionally pushed at least `margin` away from
 * zero (to keep clear of kinks such as ReLU's). */
NB_API nb_tensor *nb_sample_tensor(nb_sample *sample, nb_rng *rng, int ndim, const int64_t *shape,
                            double low, double high, double margin, bool requires_grad);
/* A persistent float64 tensor the sample owns that is not an input (for
 * params that point at tensors), values uniform in [low, high). */
NB_API nb_tensor *nb_sample_owned_tensor(nb_sample *sample, nb_rng *rng, int ndim,
                                  const int64_t *shape, double low, double high);
/* Frees a sample's inputs and owned tensors and empties it. */
NB_API void nb_sample_release(nb_sample *sample);

#ifdef __cplusplus
}
#endif
#endif
