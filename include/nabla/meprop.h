/* nabla: meProp, sparsified backpropagation for linear and conv2d.
 *
 * meProp (Sun et al., ICML 2017, "meProp: Sparsified Back Propagation for
 * Accelerated Deep Learning with Reduced Overfitting"; the CNN follow-up is
 * arXiv 1709.05804) keeps only k components of a layer's output gradient
 * dy in backward and drops the rest, so the weight and input gradients cost
 * about k/n of the dense work. The forward pass is unchanged. It is an
 * approximation: with meProp on, gradients no longer match finite
 * differences (the registered gradcheck samples stay dense).
 *
 * What is kept (n = units that compete, k = kept units):
 *   linear  y [R, out]: n = out.
 *     TOPK     per row r: the k largest |dy[r, j]|.
 *     UNIFIED  one set for the minibatch: the k units j with the largest
 *              sum_r |dy[r, j]| (the paper's "unified" meProp).
 *     RANDOM   per row: k units drawn uniformly without replacement from a
 *              seeded stream (the paper's random-k baseline).
 *   conv2d  y [N, K, OH, OW]: n = K, whole output channels are kept.
 *     TOPK     per image: the k channels with the largest sum over the
 *              image's positions of |dy[n, c, :, :]|.
 *     UNIFIED  the k channels with the largest sum over the batch and
 *              positions; RANDOM per image, as for linear.
 *   Channels rather than single (channel, position) entries are selected
 *   because a dropped channel removes a row of both backward GEMMs
 *   (dW_c += dy_c col^T and dcol = W^T dy); scattered entries would leave
 *   every GEMM dense. im2col/col2im still run at full size.
 * Ties go to the lower index, so the kept set is a pure function of dy and
 * results are bit-identical for any thread count. The bias gradient stays
 * dense (sum of the full dy), as in the paper's code.
 *
 * Where the setting comes from: a node's own setting (nb_linear_ex,
 * nb_conv2d_ex, or a Linear/Conv2d module's nb_module_set_meprop) wins;
 * when that is NB_MEPROP_UNSET, the tape-wide setting (nb_tape_set_meprop)
 * is read at backward time. NB_MEPROP_DENSE on a layer opts it out of a
 * tape-wide setting. k >= n runs the ordinary dense backward exactly. */
#ifndef NABLA_MEPROP_H
#define NABLA_MEPROP_H

#include "nabla/export.h"

#include <stdint.h>

#include "nabla/ops.h"
#include "nabla/tape.h"
#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nb_meprop_mode {
    NB_MEPROP_UNSET = 0,   /* a layer: use the tape's setting; a tape: dense */
    NB_MEPROP_DENSE,       /* the ordinary backward */
    NB_MEPROP_TOPK,        /* per example, top-k by |dy| */
    NB_MEPROP_UNIFIED,     /* one top-k set per minibatch */
    NB_MEPROP_RANDOM       /* per example, k at random (baseline) */
} nb_meprop_mode;

typedef struct nb_meprop {
    nb_meprop_mode mode;
    int64_t k;             /* kept units, >= 1; 0: use fraction instead */
    double fraction;       /* when k == 0: ceil(fraction * n), fraction in (0, 1] */
    uint64_t seed;         /* NB_MEPROP_RANDOM: the stream's seed */
} nb_meprop;

/* Convenience initialisers, e.g. nb_meprop c = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.05). */
#define NB_MEPROP_COUNT(mode, count) {(mode), (count), 0.0, 0}
#define NB_MEPROP_FRACTION(mode, frac) {(mode), 0, (frac), 0}

/* Checks a setting: mode known, k >= 0, fraction in (0, 1] when k == 0
 * (an UNSET or DENSE setting needs neither). `who` prefixes the message. */
NB_API int nb_meprop_check(const nb_meprop *config, const char *who);
/* Units kept out of n under config: min(n, k or ceil(fraction * n)), at
 * least 1; n when the mode keeps everything (UNSET, DENSE). */
NB_API int64_t nb_meprop_kept(const nb_meprop *config, int64_t n);
/* The name of a mode: "unset", "dense", "topk", "unified", "random". */
NB_API const char *nb_meprop_mode_name(nb_meprop_mode mode);

/* Tape-wide setting for every linear and conv2d node without its own
 * (NULL: back to dense). Read at backward time, kept across resets. Each
 * RANDOM selection draws from nb_rng seeded by (config seed, a per-tape
 * count of RANDOM selections), so a run is reproducible. */
NB_API int nb_tape_set_meprop(nb_tape *tape, const nb_meprop *config);
NB_API nb_meprop nb_tape_meprop(const nb_tape *tape);
/* For ops with a RANDOM selection: counts one more selection on the tape
 * and returns the count, which seeds that selection's stream. */
NB_API uint64_t nb_tape_meprop_draw(nb_tape *tape);

/* ---- ops with a per-node setting ----------------------------------------- */
typedef struct nb_linear_params {
    nb_meprop meprop;      /* zeroed: UNSET (follow the tape) */
} nb_linear_params;

/* y = x W^T + b like nb_linear; p NULL behaves as nb_linear. */
NB_API nb_tensor *nb_linear_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                        const nb_linear_params *p);
/* y = conv2d(x, W, b) like nb_conv2d; meprop NULL: UNSET. */
NB_API nb_tensor *nb_conv2d_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                        const nb_conv2d_params *p, const nb_meprop *meprop);
/* y = max(conv2d(x, W, b), 0) like nb_conv2d_relu; meProp picks from the
 * gradient after the ReLU mask, as it would on a separate conv2d node. */
NB_API nb_tensor *nb_conv2d_relu_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                             const nb_conv2d_params *p, const nb_meprop *meprop);
/* nb_conv2d_relu_max_pool2d with a meProp setting: meProp picks from the
 * gradient routed back through the pool and masked by the ReLU, as it
 * would on a separate conv2d node. */
NB_API nb_tensor *nb_conv2d_relu_max_pool2d_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                        nb_tensor *bias, const nb_conv2d_params *p,
                                        const nb_max_pool2d_params *pool,
                                        const nb_meprop *meprop);

#ifdef __cplusplus
}
#endif
#endif
