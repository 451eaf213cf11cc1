/* nabla: the named fast paths of ops that have several.
 *
 * An op with several ways to compute (conv2d, max_pool2d) chooses one per
 * node, once, when the node runs forward; the backward runs the same one.
 * Each path has a name; the choice can be forced for every node recorded
 * afterwards (a node the forced path does not apply to fails with a message
 * naming the path and the shapes), and a recorded node reports which path
 * it ran. docs/design.md lists the paths and when each applies. */
#ifndef NABLA_PATHS_H
#define NABLA_PATHS_H

#include "nabla/export.h"

#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The instruction set every fast path may use: "avx512" (AVX-512F),
 * "avx2" (AVX2 and FMA) or "portable" (plain C): the best this CPU runs,
 * unless NABLA_CPU (read at first use) or nb_cpu_force_level caps it. One
 * setting for GEMM, the conv2d and pooling kernels, meProp, the
 * element-wise loops and the optimizers; NABLA_GEMM_KERNEL and the paths
 * below choose within it. nb_cpu_force_level(NULL) restores the CPU's
 * best; NB_ERR_INVALID for an unknown name or one this CPU lacks. Not
 * meant to be called while other threads run kernels. */
NB_API const char *nb_cpu_level_name(void);
NB_API int nb_cpu_force_level(const char *name);

/* conv2d (and the fused nb_conv2d_relu, nb_conv2d_relu_max_pool2d):
 * "meprop_implicit", "meprop_direct", "meprop_im2col", "implicit_unfold",
 * "implicit_winograd", "implicit", "im2col". */
NB_API int nb_conv2d_path_count(void);
NB_API const char *nb_conv2d_path_at(int index);            /* NULL past the end */
/* The path the conv2d node that made `output` ran; NULL when output was
 * not made by a recorded conv2d node. */
NB_API const char *nb_conv2d_path_name(const nb_tensor *output);
/* Forces a path by name for nodes run from now on; NULL restores the
 * automatic choice. The environment variable NABLA_CONV2D_PATH, read at the
 * first conv2d node, does the same (an unknown name there fails each conv2d
 * node). NB_ERR_INVALID for an unknown name. Not meant to be called while
 * another thread runs conv2d nodes. */
NB_API int nb_conv2d_force_path(const char *name);

/* max_pool2d: "fast_2x2" (float32 2x2 windows with stride 2, no padding
 * or dilation) and "general" (any window, both dtypes); forced by
 * NABLA_MAX_POOL2D_PATH or nb_max_pool2d_force_path. The pool fused into
 * nb_conv2d_relu_max_pool2d follows conv2d's path, not these. */
NB_API int nb_max_pool2d_path_count(void);
NB_API const char *nb_max_pool2d_path_at(int index);        /* NULL past the end */
NB_API const char *nb_max_pool2d_path_name(const nb_tensor *output);
NB_API int nb_max_pool2d_force_path(const char *name);

#ifdef __cplusplus
}
#endif
#endif
