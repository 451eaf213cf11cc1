/* Internal: the tape and node structures shared by autograd/ files. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include "base/alloc.h"
#include "autograd/arena.h"
#include "autograd/headers.h"
#include "nabla/meprop.h"
#include "nabla/op.h"

enum { NB_TENSOR_MAGIC = 0x4E424C41u, NB_TAPE_ERROR_CAPACITY = 512 };

struct nb_node {
    nb_op_ctx ctx;             /* first, so a node is its op context */
    nb_node *previous;         /* recorded before this one */
    uint64_t visit;            /* backward sweep that needs this node */
};

struct nb_tape {
    nb_arena arena;            /* data, nodes, scratch of the step */
    nb_header_ring headers;    /* tensor headers, kept across steps */
    nb_node *last;             /* most recently recorded node */
    size_t node_count;
    uint64_t generation;       /* bumped by every reset */
    uint64_t sweep;            /* bumped by every backward */
    bool grad_enabled;
    bool anomaly_mode;
    bool has_error;
    char error[NB_TAPE_ERROR_CAPACITY];
    nb_meprop meprop;          /* tape-wide meProp setting (ops/meprop/meprop.c) */
    nb_precision precision;    /* FP32 or BF16 products (nb_tape_set_precision) */
    uint64_t meprop_draws;     /* RANDOM selections so far: seeds the next */
};

/* Records the thread's last error as the tape's first error (sticky). */
void nb_tape_record_error(nb_tape *tape);
/* Fails unless `tensor` may be used on `tape` now (live, same tape; a
 * persistent tensor not yet freed). Never reads *tensor. tape may be NULL
 * (then only live persistent tensors pass). */
int nb_tensor_check_usable(const nb_tape *tape, const nb_tensor *tensor, const char *who);
/* The live tape whose header store holds `tensor`, or NULL (persistent,
 * freed with its tape, or not a nabla tensor). Never reads *tensor. */
nb_tape *nb_tensor_owner(const nb_tensor *tensor);
/* memset(data, 0, bytes), split across the thread pool when large: a
 * step zeroes every intermediate's gradient buffer (megabytes for a
 * convnet), and one core alone does not saturate the memory bus. */
void nb_zero_parallel(void *data, size_t bytes);
/* nb_tensor_new with messages naming `who`. */
nb_tensor *nb_tensor_new_for(const char *who, nb_dtype dtype, int ndim, const int64_t *shape);
/* A tape tensor: header from the tape's ring, data from its arena (zeroed
 * when `zero`). */
nb_tensor *nb_tape_new_tensor(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *shape,
                              bool zero);
/* The same, answered from a cache after a descriptor's first success. */
int nb_op_check_once(const nb_op *op, const char *who);
void nb_op_mark_valid(const nb_op *op);
/* Whether every element is finite (anomaly mode). */
bool nb_tensor_all_finite(const nb_tensor *tensor);
/* Fails when anomaly mode is on and t has a NaN or Inf. */
int nb_check_anomaly(const nb_op_ctx *ctx, const nb_tensor *t, const char *phase);
/* Internal shape formatting for messages: "[2,3]". */
const char *nb_shape_str(const nb_tensor *tensor, char *buf, size_t size);

#endif
