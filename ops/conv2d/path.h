/* Internal: conv2d's node params and its dispatch table.
 *
 * A conv2d node (plain, with a fused ReLU, or with a fused ReLU and
 * max-pool) runs one *path*: a named entry of the table in
 * ops/conv2d/paths.c with a forward and a backward. The forward chooses the
 * path once (nb_conv2d_choose_path: the environment's or the caller's
 * forced path if any, else the first entry that applies and pays), keeps
 * it in the node's state, and the backward runs the same entry. A new path
 * (another instruction set, another algorithm) joins by adding one entry.
 *
 * The fused ReLU and max-pool are properties of the node, not paths: every
 * path applies them (the implicit and gathered ones image by image in their
 * kernels, the others on a copy of the output gradient,
 * nb_conv2d_masked_gradient). */
#ifndef NABLA_OPS_CONV2D_PATH_H
#define NABLA_OPS_CONV2D_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/meprop.h"
#include "nabla/op.h"
#include "kernels/conv2d/im2col.h"
#include "ops/pooling/pool2d.h"

extern const nb_op nb_op_conv2d;

/* conv2d's op params: the public settings, the node's meProp setting, its
 * fused activation and fused max-pool. conv comes first, so the params
 * still read as nb_conv2d_params. */
enum { NB_CONV2D_IDENTITY = 0, NB_CONV2D_RELU = 1 };
typedef struct nb_conv2d_node_params {
    nb_conv2d_params conv;
    nb_meprop meprop;
    int activation;             /* NB_CONV2D_IDENTITY or NB_CONV2D_RELU */
    bool pooled;                /* a max-pool of the activation is the output */
    nb_max_pool2d_params pool;  /* its window, when pooled */
} nb_conv2d_node_params;

/* The settings in force: a zero stride, dilation or groups means 1, so a
 * zeroed nb_conv2d_params is PyTorch's defaults. */
nb_conv2d_params nb_conv2d_settings(const nb_conv2d_params *p);

/* What a path's applies/pays predicates see of a node. */
typedef struct nb_conv2d_choice {
    const nb_conv2d_geometry *g;
    nb_dtype dtype;
    bool input_grad;            /* the backward will compute dx */
    bool meprop;                /* a sparse meProp backward is asked for */
    nb_meprop_mode meprop_mode; /* its mode, when meprop */
    bool bf16;                  /* float32 products in bf16: only the GEMM paths apply */
} nb_conv2d_choice;

typedef struct nb_conv2d_path nb_conv2d_path;

/* The node's state, kept in ctx->saved when the node is recorded. */
typedef struct nb_conv2d_state {
    const nb_conv2d_path *path;
    int32_t *argmax;            /* the fused max-pool's argmax [N,K,PH,PW], or NULL */
    uint16_t *relu_bits;        /* a fused ReLU's mask kept by an implicit forward, or NULL */
    nb_meprop meprop;           /* the resolved sparse setting, when the path is meProp */
    int64_t meprop_kept;        /* channels kept per set (k < K) */
} nb_conv2d_state;

/* One forward or backward call of a path. */
typedef struct nb_conv2d_call {
    nb_op_ctx *ctx;
    const nb_conv2d_geometry *g;
    nb_conv2d_state *state;
    bool relu;                  /* fused ReLU */
    const nb_pool2d_geometry *pool; /* fused max-pool's windows over [N,K,OH,OW], or NULL */
} nb_conv2d_call;

struct nb_conv2d_path {
    const char *name;
    const char *summary;        /* one line: what the path computes, and how */
    /* Whether the path can run the node (a forced path must). */
    bool (*applies)(const nb_conv2d_choice *c);
    /* For the automatic choice: whether it is the one to take among those
     * that apply (NULL: always). Depends on the geometry only, so the
     * choice never depends on the thread count. */
    bool (*pays)(const nb_conv2d_choice *c);
    /* Fill ctx->output; keep state->argmax / relu_bits when not NULL. */
    int (*forward)(const nb_conv2d_call *call);
    /* Accumulate (or assign, for fresh gradients) dx, dw, db. */
    int (*backward)(const nb_conv2d_call *call);
};

/* The paths (ops/conv2d/path_*.c, ops/conv2d/meprop.c). */
extern const nb_conv2d_path nb_conv2d_path_meprop_implicit;
extern const nb_conv2d_path nb_conv2d_path_meprop_direct;
extern const nb_conv2d_path nb_conv2d_path_meprop_im2col;
extern const nb_conv2d_path nb_conv2d_path_implicit_unfold;
extern const nb_conv2d_path nb_conv2d_path_implicit_winograd;
extern const nb_conv2d_path nb_conv2d_path_implicit;
extern const nb_conv2d_path nb_conv2d_path_implicit_rounded;
extern const nb_conv2d_path nb_conv2d_path_gathered;
extern const nb_conv2d_path nb_conv2d_path_im2col;

/* A convolution node's forward and backward for geometry g and the node's
 * settings: conv2d's own, and conv1d's, which runs as a conv2d of height 1
 * (ops/conv2d/conv1d.c). Inputs are x, weight and an optional bias; only
 * their data is read, g gives the shapes. The forward chooses the path and
 * keeps it in ctx->saved for the backward. */
int nb_conv2d_node_forward(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                           const nb_conv2d_node_params *node);
int nb_conv2d_node_backward(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                            const nb_conv2d_node_params *node);

/* The node's path: the forced one (failing the node, message on ctx, when
 * it does not apply or the forced name is unknown), else the first entry
 * that applies and pays. NULL on failure. */
const nb_conv2d_path *nb_conv2d_choose_path(nb_op_ctx *ctx, const nb_conv2d_choice *c);
/* Whether an implicit forward keeps a fused ReLU's mask bits. */
bool nb_conv2d_path_is_implicit(const nb_conv2d_path *path);

/* The dense forward for a geometry: the implicit kernels (with Winograd
 * where it applies) for float32 nodes they take, else im2col + GEMM. The
 * meProp paths' forward. */
int nb_conv2d_dense_forward(const nb_conv2d_call *call);
/* The im2col path's forward and backward (ops/conv2d/path_im2col.c). */
int nb_conv2d_im2col_forward(const nb_conv2d_call *call);
int nb_conv2d_im2col_backward(const nb_conv2d_call *call, const void *dy);

/* The gradient the convolution itself sees, in scratch: dy routed through
 * a fused max-pool's argmax and masked by a fused ReLU; ctx's dy itself
 * when neither is fused. NULL (error set) when out of memory. */
const void *nb_conv2d_masked_gradient(const nb_conv2d_call *call);

/* Direct convolution in float64, seven nested loops (with the group): the
 * reference every path is tested against. y [N,K,OH,OW]. */
void nb_conv2d_forward_ref(const nb_conv2d_geometry *g, const double *x, const double *w,
                           const double *bias, double *y);

#endif
