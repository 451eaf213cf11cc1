/* nabla: the built-in ops, named after PyTorch's functional API.
 *
 * Every op takes the tape first, returns an arena tensor, and follows the
 * error convention of nabla/status.h: NULL on failure with the message on
 * the tape; a NULL input or a tape that already failed gives NULL back.
 * Float inputs of one op must share a dtype (float32 or float64).
 * Options that are a few plain numbers are arguments; ops with many take a
 * params struct, where a zero-initialised struct means PyTorch's defaults. */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "nabla/export.h"

#include <stdbool.h>

#include "nabla/op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- element-wise, NumPy broadcasting (ops/elementwise/) --------------- */
NB_API nb_tensor *nb_add(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a + b */
NB_API nb_tensor *nb_sub(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a - b */
NB_API nb_tensor *nb_mul(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a * b */
NB_API nb_tensor *nb_div(nb_tape *tape, nb_tensor *a, nb_tensor *b);        /* y = a / b */
NB_API nb_tensor *nb_neg(nb_tape *tape, nb_tensor *x);                      /* y = -x */
NB_API nb_tensor *nb_exp(nb_tape *tape, nb_tensor *x);                      /* y = e^x */
NB_API nb_tensor *nb_log(nb_tape *tape, nb_tensor *x);                      /* y = ln x */
NB_API nb_tensor *nb_sqrt(nb_tape *tape, nb_tensor *x);                     /* y = sqrt(x) */
NB_API nb_tensor *nb_rsqrt(nb_tape *tape, nb_tensor *x);                    /* y = 1 / sqrt(x) */
NB_API nb_tensor *nb_abs(nb_tape *tape, nb_tensor *x);                      /* y = |x|, dy/dx(0) = 0 */
NB_API nb_tensor *nb_square(nb_tape *tape, nb_tensor *x);                   /* y = x^2 */
NB_API nb_tensor *nb_sin(nb_tape *tape, nb_tensor *x);                      /* y = sin x */
NB_API nb_tensor *nb_cos(nb_tape *tape, nb_tensor *x);                      /* y = cos x */
/* y = a^b (broadcasting); d/db = a^b ln a, 0 where a = 0 and b >= 0 */
NB_API nb_tensor *nb_pow(nb_tape *tape, nb_tensor *a, nb_tensor *b);
/* y = max(a, b), min(a, b) (broadcasting); ties give each dy/2, NaN propagates */
NB_API nb_tensor *nb_maximum(nb_tape *tape, nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_minimum(nb_tape *tape, nb_tensor *a, nb_tensor *b);
/* y = condition ? a : b (broadcasting across all three); condition int32,
 * nonzero is true; gradients to a and b only */
NB_API nb_tensor *nb_where(nb_tape *tape, nb_tensor *condition, nb_tensor *a, nb_tensor *b);

/* Element-wise ops with a number: the params of add_scalar, mul_scalar and
 * pow's one-input form. */
typedef struct nb_scalar_params {
    double value;
} nb_scalar_params;
NB_API nb_tensor *nb_add_scalar(nb_tape *tape, nb_tensor *x, double c);     /* y = x + c */
NB_API nb_tensor *nb_mul_scalar(nb_tape *tape, nb_tensor *x, double c);     /* y = c x */
NB_API nb_tensor *nb_pow_scalar(nb_tape *tape, nb_tensor *x, double e);     /* y = x^e */
typedef struct nb_clamp_params {
    double min, max;
    bool has_min, has_max;   /* at least one */
} nb_clamp_params;
/* y = min(max(x, min), max); min or max may be NULL (not both); the
 * gradient passes where min <= x <= max */
NB_API nb_tensor *nb_clamp(nb_tape *tape, nb_tensor *x, const double *min, const double *max);

/* ---- activations (ops/activations/) ------------------------------------- */
NB_API nb_tensor *nb_relu(nb_tape *tape, nb_tensor *x);                     /* y = max(x, 0) */
NB_API nb_tensor *nb_leaky_relu(nb_tape *tape, nb_tensor *x, double slope); /* y = x > 0 ? x : slope*x */
NB_API nb_tensor *nb_sigmoid(nb_tape *tape, nb_tensor *x);                  /* y = 1 / (1 + e^-x) */
NB_API nb_tensor *nb_tanh(nb_tape *tape, nb_tensor *x);                     /* y = tanh x */
typedef enum nb_gelu_approximate { NB_GELU_NONE = 0, NB_GELU_TANH = 1 } nb_gelu_approximate;
typedef struct nb_gelu_params {
    int approximate;         /* nb_gelu_approximate; zero: the exact form */
} nb_gelu_params;
/* y = x Phi(x) (NB_GELU_NONE), or x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 */
NB_API nb_tensor *nb_gelu(nb_tape *tape, nb_tensor *x, nb_gelu_approximate approximate);
NB_API nb_tensor *nb_silu(nb_tape *tape, nb_tensor *x);                     /* y = x sigmoid(x) */
NB_API nb_tensor *nb_logsigmoid(nb_tape *tape, nb_tensor *x);               /* y = log sigmoid(x) */
NB_API nb_tensor *nb_mish(nb_tape *tape, nb_tensor *x);                     /* y = x tanh(log(1 + e^x)) */
/* y = x > 0 ? x : alpha (e^x - 1); PyTorch's default alpha is 1 */
NB_API nb_tensor *nb_elu(nb_tape *tape, nb_tensor *x, double alpha);
/* y = min(max(x, min_val), max_val); the gradient passes where min_val < x < max_val
 * (PyTorch's defaults -1, 1) */
NB_API nb_tensor *nb_hardtanh(nb_tape *tape, nb_tensor *x, double min_val, double max_val);
typedef struct nb_softplus_params {
    double beta, threshold;  /* zero means PyTorch's defaults: 1, 20 */
} nb_softplus_params;
/* y = log(1 + e^(beta x)) / beta, y = x where beta x > threshold */
NB_API nb_tensor *nb_softplus(nb_tape *tape, nb_tensor *x, double beta, double threshold);

/* ---- reductions (ops/reductions/) ----------------------------------------- */
NB_API nb_tensor *nb_sum(nb_tape *tape, nb_tensor *x);                      /* y = sum_i x_i (scalar) */
NB_API nb_tensor *nb_mean(nb_tape *tape, nb_tensor *x);                     /* y = sum_i x_i / n */
/* Over one dim (negative counts from the end); keepdim keeps it as size 1. */
NB_API nb_tensor *nb_sum_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_mean_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
/* y = log sum e^x over dim (stable: the max is taken out); dy/dx = softmax */
NB_API nb_tensor *nb_logsumexp(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
/* y = max (min) over dim, or over every element (_all); the gradient is
 * split evenly among the elements equal to y; NaN propagates */
NB_API nb_tensor *nb_amax(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_amin(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_amax_all(nb_tape *tape, nb_tensor *x);
NB_API nb_tensor *nb_amin_all(nb_tape *tape, nb_tensor *x);
/* y = the int32 index of the first maximum (minimum) over dim, or into the
 * flattened x (_all, as torch.argmax(x)); a NaN counts as the extreme.
 * No gradient: the op has no backward and is never recorded. */
NB_API nb_tensor *nb_argmax(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_argmin(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_argmax_all(nb_tape *tape, nb_tensor *x);
NB_API nb_tensor *nb_argmin_all(nb_tape *tape, nb_tensor *x);
/* y = max (min) over dim (torch.max(x, dim)); the gradient goes to the one
 * index argmax (argmin) gives, not split among ties. indices may be NULL;
 * otherwise it receives that int32 index tensor, made by nb_argmax
 * (nb_argmin): a second result that carries no gradient comes from its own
 * op. */
NB_API nb_tensor *nb_max_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim,
                             nb_tensor **indices);
NB_API nb_tensor *nb_min_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim,
                             nb_tensor **indices);
/* y = sum (x - mean)^2 / max(0, N - correction) over dim or every element
 * (_all); std = sqrt(var), gradient 0 where std == 0. correction 1 is
 * torch's default (unbiased); N - correction <= 0 gives torch's nan/inf. */
NB_API nb_tensor *nb_var(nb_tape *tape, nb_tensor *x, int dim, int correction, bool keepdim);
NB_API nb_tensor *nb_std(nb_tape *tape, nb_tensor *x, int dim, int correction, bool keepdim);
NB_API nb_tensor *nb_var_all(nb_tape *tape, nb_tensor *x, int correction);
NB_API nb_tensor *nb_std_all(nb_tape *tape, nb_tensor *x, int correction);
/* y = prod x over dim or every element; dy/dx_i = the product of the others
 * (exact with zeros) */
NB_API nb_tensor *nb_prod(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_prod_all(nb_tape *tape, nb_tensor *x);
/* y = sqrt(sum x^2) over dim or every element (2-norm); dy/dx = x / y, 0 where y == 0 */
NB_API nb_tensor *nb_norm(nb_tape *tape, nb_tensor *x, int dim, bool keepdim);
NB_API nb_tensor *nb_norm_all(nb_tape *tape, nb_tensor *x);
/* y_k = sum_{i <= k} x_i along dim (same shape as x) */
NB_API nb_tensor *nb_cumsum(nb_tape *tape, nb_tensor *x, int dim);
/* y = sum (mean) over the n dims listed (n 0: every dim); a dim out of range
 * or listed twice is an error */
NB_API nb_tensor *nb_sum_dims(nb_tape *tape, nb_tensor *x, int n, const int *dims, bool keepdim);
NB_API nb_tensor *nb_mean_dims(nb_tape *tape, nb_tensor *x, int n, const int *dims, bool keepdim);
/* y = x summed over the dims along which `shape` would broadcast to x's
 * (leading dims and size-1 dims; PyTorch's sum_to_size): the gradient of
 * a broadcast input. x itself when the shapes are equal. */
NB_API nb_tensor *nb_sum_to_size(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *shape);

/* ---- shape (ops/shape/) ---------------------------------------------------- */
/* y = x viewed as `shape` (one entry may be -1: inferred). */
NB_API nb_tensor *nb_reshape(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *shape);
/* y = x with dims start_dim..end_dim merged into one (PyTorch flatten). */
NB_API nb_tensor *nb_flatten(nb_tape *tape, nb_tensor *x, int start_dim, int end_dim);
/* y = x with dims dim0 and dim1 swapped (copied, contiguous). */
NB_API nb_tensor *nb_transpose(nb_tape *tape, nb_tensor *x, int dim0, int dim1);
typedef struct nb_cat_params {
    int dim;            /* negative counts from the end */
} nb_cat_params;
/* y = [inputs[0] | inputs[1] | ...] along dim; shapes equal elsewhere. */
NB_API nb_tensor *nb_cat(nb_tape *tape, int n, nb_tensor *const *inputs, int dim);

/* Slices copy (nabla's tensors are contiguous and aligned, and no op
 * writes into its inputs, so a copy behaves as PyTorch's view would). */
/* y = x[..., start:start+length, ...] along dim; start may be negative */
NB_API nb_tensor *nb_narrow(nb_tape *tape, nb_tensor *x, int dim, int64_t start, int64_t length);
/* y = x[..., index, ...]: dim removed; index may be negative */
NB_API nb_tensor *nb_select(nb_tape *tape, nb_tensor *x, int dim, int64_t index);
/* y = x[..., start:end:step, ...] with Python's clamping; step >= 1 */
NB_API nb_tensor *nb_slice(nb_tape *tape, nb_tensor *x, int dim, int64_t start, int64_t end,
                           int64_t step);
/* out[i] = narrow(x, dim, i*split_size, split_size) (the last may be
 * shorter); returns the count (<= capacity) or a negative status */
NB_API int nb_split(nb_tape *tape, nb_tensor *x, int64_t split_size, int dim, int capacity,
                    nb_tensor **out);
/* nb_split into pieces of ceil(size / chunks); returns the count (<= chunks) */
NB_API int nb_chunk(nb_tape *tape, nb_tensor *x, int chunks, int dim, nb_tensor **out);
/* y = x without dim if its size is 1 (else unchanged); _all: every size-1 dim (views) */
NB_API nb_tensor *nb_squeeze(nb_tape *tape, nb_tensor *x, int dim);
NB_API nb_tensor *nb_squeeze_all(nb_tape *tape, nb_tensor *x);
/* y = x with a size-1 dim inserted at dim in [-ndim-1, ndim] (a view) */
NB_API nb_tensor *nb_unsqueeze(nb_tape *tape, nb_tensor *x, int dim);
/* y.shape[d] = x.shape[dims[d]] (copied); dims a permutation of 0..ndim-1 */
NB_API nb_tensor *nb_permute(nb_tape *tape, nb_tensor *x, int ndim, const int *dims);
/* y = x stretched to sizes (size-1 dims only; -1 keeps; new leading dims allowed) */
NB_API nb_tensor *nb_expand(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *sizes);
/* y = x tiled repeats[d] times along each dim (x.repeat; ndim >= x's dims) */
NB_API nb_tensor *nb_repeat(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *repeats);
/* y = the inputs (equal shapes) joined along a new dim */
NB_API nb_tensor *nb_stack(nb_tape *tape, int n, nb_tensor *const *inputs, int dim);
/* y = x padded with value: pads (left, right) of the last dim, count 2, or
 * (left, right, top, bottom) of the last two, count 4; negative crops */
NB_API nb_tensor *nb_pad(nb_tape *tape, nb_tensor *x, int count, const int *pads, double value);

/* ---- indexing (ops/indexing/; indices int32, in range, never negative) -- */
/* y = x's slices along dim at index[k] (index int32 [K]) */
NB_API nb_tensor *nb_index_select(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index);
/* y[p] = x[p with dim replaced by index[p]]; index int32, x's rank */
NB_API nb_tensor *nb_gather(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index);
/* y = x; y[p with dim replaced by index[p]] += src[p] */
NB_API nb_tensor *nb_scatter_add(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index,
                                 nb_tensor *src);
typedef struct nb_embedding_params {
    int padding_idx;          /* may be negative (counts from V) */
    bool has_padding_idx;     /* false: none (PyTorch's default) */
} nb_embedding_params;
/* y[..., :] = weight[input[...], :]; input int32, weight [V,D]; rows read
 * at padding_idx get no gradient. p NULL: no padding_idx. */
NB_API nb_tensor *nb_embedding(nb_tape *tape, nb_tensor *input, nb_tensor *weight,
                               const nb_embedding_params *p);

/* ---- linear algebra (ops/linalg/) ----------------------------------------- */
/* y = a b: [M,K] x [K,N] -> [M,N]; [B,M,K] x [B,K,N] -> [B,M,N];
 * [B,M,K] x [K,N] -> [B,M,N] (b broadcast over the batch). */
NB_API nb_tensor *nb_matmul(nb_tape *tape, nb_tensor *a, nb_tensor *b);
/* y = x W^T + b: x [..., in], W [out,in], b [out] or NULL -> [..., out]. */
NB_API nb_tensor *nb_linear(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias);

/* ---- activations over a dim (ops/activations/; numerically stable: the row
 * max is subtracted) -------------------------------------------------------- */
NB_API nb_tensor *nb_softmax(nb_tape *tape, nb_tensor *x, int dim);         /* y = e^x / sum e^x */
NB_API nb_tensor *nb_log_softmax(nb_tape *tape, nb_tensor *x, int dim);     /* y = x - log sum e^x */

/* y = x * mask / (1 - p), mask_i ~ Bernoulli(1 - p) from nb_rng seeded with
 * `seed` (same seed, same mask); y = x when !training or p == 0; p in [0, 1],
 * p == 1 gives zeros. F.dropout(x, p, training) with the mask's seed. */
NB_API nb_tensor *nb_dropout(nb_tape *tape, nb_tensor *x, double p, bool training, uint64_t seed);

/* ---- losses (ops/losses/) --------------------------------------------------
 * Each loss has a short form (PyTorch's default reduction, the mean) and,
 * where it has options, an _ex form (params NULL, or zero-initialised:
 * PyTorch's defaults). The element-wise losses take an input and a target
 * of equal shapes: nabla refuses the broadcast PyTorch only warns about
 * ([N,1] against [N] gives an [N,N] loss). NB_REDUCTION_NONE returns the
 * per-element losses, shaped as PyTorch's; an empty input's mean is NaN. */
typedef enum nb_reduction {
    NB_REDUCTION_MEAN = 0,      /* PyTorch's default: over all elements */
    NB_REDUCTION_SUM = 1,
    NB_REDUCTION_NONE = 2,      /* per-element losses, shaped as PyTorch's */
    NB_REDUCTION_BATCHMEAN = 3  /* kl_div only: sum / N */
} nb_reduction;

/* y = mean((x - target)^2) */
NB_API nb_tensor *nb_mse_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target);
NB_API nb_tensor *nb_mse_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                 nb_reduction reduction);
/* y = mean |x - target|; the gradient is sign(x - target), 0 where equal */
NB_API nb_tensor *nb_l1_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target);
NB_API nb_tensor *nb_l1_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                nb_reduction reduction);

typedef struct nb_smooth_l1_params {
    int reduction;      /* nb_reduction */
    double beta;        /* 0 means PyTorch's default 1; negative is an error
                           (the beta -> 0 limit is nb_l1_loss) */
} nb_smooth_l1_params;
/* y = mean l, l = |d| < beta ? d^2 / (2 beta) : |d| - beta / 2, d = x - target */
NB_API nb_tensor *nb_smooth_l1_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target);
NB_API nb_tensor *nb_smooth_l1_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                       const nb_smooth_l1_params *p);
typedef struct nb_huber_params {
    int reduction;      /* nb_reduction */
    double delta;       /* 0 means PyTorch's default 1; negative is an error */
} nb_huber_params;
/* y = mean l, l = |d| < delta ? d^2 / 2 : delta (|d| - delta / 2), d = x - target */
NB_API nb_tensor *nb_huber_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target);
NB_API nb_tensor *nb_huber_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                   const nb_huber_params *p);

typedef struct nb_kl_div_params {
    int reduction;      /* nb_reduction, batchmean too */
    bool log_target;    /* the target holds log-probabilities */
} nb_kl_div_params;
/* y = mean l over all elements (PyTorch's mean; batchmean divides the sum by
 * N = input's first dim), input x holding log-probabilities:
 * l = t (log t - x), 0 where t = 0 (PyTorch's xlogy: NaN for t < 0, and the
 * target's gradient log t + 1 - x is NaN at t = 0); log_target: l = e^t (t - x).
 * Both inputs get gradients. */
NB_API nb_tensor *nb_kl_div(nb_tape *tape, nb_tensor *input, nb_tensor *target);
NB_API nb_tensor *nb_kl_div_ex(nb_tape *tape, nb_tensor *input, nb_tensor *target,
                               const nb_kl_div_params *p);

typedef struct nb_margin_ranking_params {
    int reduction;      /* nb_reduction */
    double margin;      /* PyTorch's default: 0 */
} nb_margin_ranking_params;
/* y = mean l, l = max(0, -y (x1 - x2) + margin); x1, x2 and y (float, +-1)
 * have the same number of dims and broadcast as PyTorch's; each gets a
 * gradient where -y (x1 - x2) + margin >= 0 (y's is -(x1 - x2), as PyTorch) */
NB_API nb_tensor *nb_margin_ranking_loss(nb_tape *tape, nb_tensor *x1, nb_tensor *x2,
                                         nb_tensor *y, double margin);
NB_API nb_tensor *nb_margin_ranking_loss_ex(nb_tape *tape, nb_tensor *x1, nb_tensor *x2,
                                            nb_tensor *y, const nb_margin_ranking_params *p);

typedef struct nb_cross_entropy_params {
    nb_tensor *weight;        /* [C] class weights (float32 or float64) or NULL; no gradient */
    int reduction;            /* nb_reduction: mean (weighted mean over non-ignored), sum, none */
    bool has_ignore_index;    /* false: PyTorch's default ignore_index -100 */
    int ignore_index;         /* labels equal to it add nothing and get no gradient */
    double label_smoothing;   /* in [0, 1] (cross_entropy only) */
} nb_cross_entropy_params;
/* y = mean_n -log softmax(logits)[n, labels[n]]: logits [N,C] or
 * [N,C,d1,...] (class dim 1) or [C], labels int32 [N] / [N,d1,...] / [],
 * each in [0, C) or the ignore index (-100 unless set). With params, as
 * PyTorch 1.13: l_n = (1 - eps) w[y_n] (-logp[n,y_n]) + (eps / C) sum_c w[c]
 * (-logp[n,c]) (0 where ignored), mean = sum_n l_n / sum_n w[y_n] over the
 * non-ignored; none gives [N] / [N,d1,...]. */
NB_API nb_tensor *nb_cross_entropy(nb_tape *tape, nb_tensor *logits, nb_tensor *labels);
NB_API nb_tensor *nb_cross_entropy_ex(nb_tape *tape, nb_tensor *logits, nb_tensor *labels,
                                      const nb_cross_entropy_params *p);
/* y = mean_n -logp[n, labels[n]] (log-probabilities, shapes as
 * cross_entropy); with params: l_n = -w[y_n] logp[n,y_n], the same
 * reductions and ignore index; label_smoothing must be 0. */
NB_API nb_tensor *nb_nll_loss(nb_tape *tape, nb_tensor *logp, nb_tensor *labels);
NB_API nb_tensor *nb_nll_loss_ex(nb_tape *tape, nb_tensor *logp, nb_tensor *labels,
                                 const nb_cross_entropy_params *p);

typedef struct nb_bce_params {
    nb_tensor *weight;        /* broadcasts to the input's shape, or NULL; no gradient */
    nb_tensor *pos_weight;    /* with_logits only: broadcasts to the input's shape
                                 (usually [C], along the last dim), or NULL */
    int reduction;            /* nb_reduction */
} nb_bce_params;
/* y = mean -w (t log p + (1-t) log(1-p)); logs clamped at -100 as in PyTorch;
 * p in [0, 1]; the target's gradient is w (log(1-p) - log p) (PyTorch 1.13) */
NB_API nb_tensor *nb_binary_cross_entropy(nb_tape *tape, nb_tensor *p, nb_tensor *target);
NB_API nb_tensor *nb_binary_cross_entropy_ex(nb_tape *tape, nb_tensor *p, nb_tensor *target,
                                             const nb_bce_params *o);
/* y = mean w ((1 - t) x + (1 + (pw - 1) t) log(1 + e^-x)), the log term
 * computed stably (pw = pos_weight, 1 without) */
NB_API nb_tensor *nb_binary_cross_entropy_with_logits(nb_tape *tape, nb_tensor *x, nb_tensor *target);
NB_API nb_tensor *nb_binary_cross_entropy_with_logits_ex(nb_tape *tape, nb_tensor *x,
                                                         nb_tensor *target, const nb_bce_params *o);

/* ---- distances (ops/distance/) -------------------------------------------- */
/* y = sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) along dim, as PyTorch
 * 1.13: x1 and x2 broadcast, dim counts in the broadcast shape and is
 * removed; the clamp passes no gradient of its own (the squared norms are
 * clamped at eps^2 out of autograd's sight). eps 0 means PyTorch's 1e-8. */
NB_API nb_tensor *nb_cosine_similarity(nb_tape *tape, nb_tensor *x1, nb_tensor *x2, int dim,
                                       double eps);

/* ---- convolution and pooling (ops/conv2d/, ops/pooling/) ---------------
 * NCHW layout; [2] arrays are {height, width}. Output sizes follow PyTorch:
 *   out = floor((H + 2*pad - dilation*(kernel-1) - 1) / stride) + 1,
 * and with ceil_mode: rounded up, then one less if the last window would
 * start at or past H + pad (it must start inside the input or left pad). */
/* Zero means PyTorch's default in every field (stride 1, padding 0,
 * dilation 1, groups 1), so a zeroed struct is F.conv2d's defaults. */
typedef struct nb_conv2d_params {
    int stride[2];      /* >= 1 (0: 1) */
    int padding[2];     /* >= 0, zeros */
    int dilation[2];    /* >= 1 (0: 1) */
    int groups;         /* >= 1 (0: 1), divides C and K */
} nb_conv2d_params;
#define NB_CONV2D_PARAMS_DEFAULT {{1, 1}, {0, 0}, {1, 1}, 1}
/* y[n,k] = bias[k] + sum_{c in group(k),i,j} w[k,c,i,j] x[n,c, oh*s-p+i*d, ow*s-p+j*d]
 * (cross-correlation); x [N,C,H,W], weight [K,C/groups,kh,kw], bias [K] or
 * NULL -> [N,K,OH,OW]. p NULL: stride 1, padding 0, dilation 1, groups 1. */
NB_API nb_tensor *nb_conv2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                     const nb_conv2d_params *p);
/* y = max(conv2d(x, weight, bias), 0): convolution and ReLU as one node
 * (PyTorch's ConvReLU2d), equal to nb_relu(nb_conv2d(...)) bit for bit.
 * The float32 fast path rectifies each image while it is still in cache
 * and masks the output gradient inside the backward, saving the two
 * passes over the activation that a separate ReLU node costs; the
 * pre-activation itself is not kept. */
NB_API nb_tensor *nb_conv2d_relu(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                          const nb_conv2d_params *p);

/* Zero means PyTorch's default in every field (stride 1, padding 0,
 * output_padding 0, dilation 1, groups 1), so a zeroed struct is
 * F.conv_transpose2d's defaults. */
typedef struct nb_conv_transpose2d_params {
    int stride[2];          /* >= 1 (0: 1) */
    int padding[2];         /* >= 0: rows/columns cropped from each border */
    int output_padding[2];  /* >= 0, < stride or < dilation: added at the bottom/right */
    int dilation[2];        /* >= 1 (0: 1) */
    int groups;             /* >= 1 (0: 1), divides C and K */
} nb_conv_transpose2d_params;
/* y[n,k,h*s-p+i*d,w*s-p+j*d] += w[c,k',i,j] x[n,c,h,w] (k' = k within c's
 * group), plus bias[k]: the adjoint of conv2d with the same settings
 * (PyTorch's F.conv_transpose2d). x [N,C,H,W], weight [C,K/groups,kh,kw],
 * bias [K] or NULL -> [N,K,OH,OW], OH = (H-1)*s - 2p + d*(kh-1) +
 * output_padding + 1 (same for OW). p NULL: the defaults. */
NB_API nb_tensor *nb_conv_transpose2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                      nb_tensor *bias, const nb_conv_transpose2d_params *p);

/* Zero means PyTorch's default in every field (stride 1, padding 0,
 * dilation 1, groups 1). */
typedef struct nb_conv1d_params {
    int stride;             /* >= 1 (0: 1) */
    int padding;            /* >= 0, zeros at both ends */
    int dilation;           /* >= 1 (0: 1) */
    int groups;             /* >= 1 (0: 1), divides C and K */
} nb_conv1d_params;
/* y[n,k,o] = bias[k] + sum_{c in group(k),i} w[k,c,i] x[n,c,o*s-p+i*d]
 * (PyTorch's F.conv1d); x [N,C,L], weight [K,C/groups,k], bias [K] or NULL
 * -> [N,K,OL], OL = floor((L + 2p - d*(k-1) - 1) / s) + 1. Runs conv2d's
 * kernels on a height of 1. p NULL: the defaults. */
NB_API nb_tensor *nb_conv1d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                            const nb_conv1d_params *p);

typedef struct nb_max_pool2d_params {
    int kernel[2];      /* >= 1 */
    int stride[2];      /* 0 means = kernel (PyTorch's default) */
    int padding[2];     /* 0 <= padding <= kernel/2; padded cells are -inf */
    int dilation[2];    /* 0 means 1 */
    bool ceil_mode;
} nb_max_pool2d_params;
#define NB_MAX_POOL2D_PARAMS(kernel_h, kernel_w) \
    {{kernel_h, kernel_w}, {0, 0}, {0, 0}, {1, 1}, false}
/* y[n,c,oh,ow] = max over the window of x; the gradient goes to the argmax.
 * Ties: the FIRST maximum in row-major window order wins (PyTorch CPU's
 * `>` scan); a NaN wins over numbers. x [N,C,H,W] -> [N,C,OH,OW]. */
NB_API nb_tensor *nb_max_pool2d(nb_tape *tape, nb_tensor *x, const nb_max_pool2d_params *p);
/* y = max_pool2d(max(conv2d(x, weight, bias), 0), pool): convolution, ReLU
 * and max-pool as one node (LeNet's block), equal to
 * nb_max_pool2d(nb_conv2d_relu(...)) bit for bit. The float32 fast path
 * pools each image while it is in cache, so the full-size activation is
 * never stored; the backward routes the gradient through the kept argmax.
 * p NULL as for nb_conv2d; pool must not be NULL. */
NB_API nb_tensor *nb_conv2d_relu_max_pool2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                     nb_tensor *bias, const nb_conv2d_params *p,
                                     const nb_max_pool2d_params *pool);

/* Zero means PyTorch's default in every field but the kernel: stride =
 * kernel, no padding, floor mode, padding counted in the divisor
 * (count_include_pad=True), no divisor override. */
typedef struct nb_avg_pool2d_params {
    int kernel[2];      /* >= 1 */
    int stride[2];      /* 0 means = kernel */
    int padding[2];     /* 0 <= padding <= kernel/2; zeros */
    bool ceil_mode;
    bool exclude_pad;        /* PyTorch's count_include_pad=False; false (zero):
                                padded cells count in the divisor, its default */
    int divisor_override;    /* 0: none; else every window divides by it */
} nb_avg_pool2d_params;
#define NB_AVG_POOL2D_PARAMS(kernel_h, kernel_w) \
    {{kernel_h, kernel_w}, {0, 0}, {0, 0}, false, false, 0}
/* y = sum(window of x) / divisor; the divisor is the window clipped to the
 * padded input (the default) or to the real input (exclude_pad), as in
 * PyTorch. x [N,C,H,W] -> [N,C,OH,OW]. */
NB_API nb_tensor *nb_avg_pool2d(nb_tape *tape, nb_tensor *x, const nb_avg_pool2d_params *p);
/* y[..,i,j] = mean of x[.., floor(i*H/OH) .. ceil((i+1)*H/OH)-1,
 * floor(j*W/OW) .. ceil((j+1)*W/OW)-1] (PyTorch's windows, which may
 * overlap); x [N,C,H,W] or [C,H,W] -> [..,out_h,out_w]; out_h, out_w >= 0. */
NB_API nb_tensor *nb_adaptive_avg_pool2d(nb_tape *tape, nb_tensor *x, int out_h, int out_w);

/* ---- resampling (ops/resampling/) ---------------------------------------- */
typedef enum nb_interpolate_mode {
    NB_INTERPOLATE_NEAREST = 0,   /* PyTorch's 'nearest' (not 'nearest-exact') */
    NB_INTERPOLATE_BILINEAR = 1
} nb_interpolate_mode;
/* Exactly one of size and scale_factor: size all zero means scale_factor
 * gives the output, floor(H * scale_factor[0]) x floor(W * scale_factor[1]),
 * and, as in PyTorch without recompute_scale_factor, the source position
 * uses 1/scale_factor rather than H/OH. */
typedef struct nb_interpolate_params {
    int size[2];               /* {OH, OW}, or zeros */
    double scale_factor[2];    /* used when size is all zero */
    int mode;                  /* nb_interpolate_mode; 0: nearest (PyTorch's default) */
    bool align_corners;        /* bilinear only (true with nearest is an error) */
} nb_interpolate_params;
/* y = x resampled to [N,C,OH,OW], with scale = 1/scale_factor, or H/OH
 * when size is given (per axis). nearest: y[..,i,j] = x[..,src(i),src(j)],
 * src(i) = min(floor(i*scale), H-1). bilinear: the weighted 2x2
 * neighbours of src(i) = scale*(i+0.5)-0.5 clamped at 0, or
 * (H-1)/(OH-1)*i with align_corners; an axis with OH = H is copied. As
 * torch 1.13's CPU forward for NCHW tensors; the gradient scatters dy back
 * with the same weights. x [N,C,H,W]. */
NB_API nb_tensor *nb_interpolate(nb_tape *tape, nb_tensor *x, const nb_interpolate_params *p);


/* ---- normalisation (ops/normalization/) ---------------------------------- */
typedef struct nb_batch_norm_params {
    nb_tensor *running_mean;   /* [C] float32/float64, or NULL (both or neither) */
    nb_tensor *running_var;    /* [C]; updated in place in training */
    double momentum;           /* running = (1-momentum)*running + momentum*batch;
                                  0: PyTorch's 0.1 (to keep running stats fixed
                                  while training, pass none) */
    double eps;                /* 0: PyTorch's 1e-5 */
    bool training;             /* batch stats (and running update) vs running
                                  stats; false as in F.batch_norm */
} nb_batch_norm_params;
#define NB_BATCH_NORM_PARAMS_DEFAULT {NULL, NULL, 0.1, 1e-5, true}
/* y = gamma[c] (x - mean_c) / sqrt(var_c + eps) + beta[c], per channel c =
 * dim 1 of x [N,C,...]; training: biased batch var (unbiased n/(n-1) into
 * running_var); eval: running stats (an error without them, as in
 * PyTorch). gamma, beta [C] or both NULL (no affine). p NULL: training,
 * momentum 0.1, eps 1e-5, no running stats. */
NB_API nb_tensor *nb_batch_norm(nb_tape *tape, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                         const nb_batch_norm_params *p);


typedef struct nb_layer_norm_params {
    int ndim;                       /* normalized_shape: the last ndim dims of x */
    int64_t shape[NB_MAX_DIMS];
    double eps;                     /* 0: PyTorch's default (layer_norm 1e-5;
                                       rms_norm the dtype's machine epsilon) */
} nb_layer_norm_params;
/* y = (x - mean) / sqrt(var + eps) * weight + bias over each row of the
 * trailing normalized_shape dims (biased var); weight, bias that shape or NULL */
NB_API nb_tensor *nb_layer_norm(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                                const nb_layer_norm_params *p);
/* y = x / sqrt(mean(x^2) + eps) * weight over the same rows; weight may be NULL */
NB_API nb_tensor *nb_rms_norm(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                              const nb_layer_norm_params *p);
/* y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c], the statistics over
 * each of num_groups groups of channels of x [N,C,...]; weight, bias [C] or
 * both NULL; eps 0: 1e-5 */
NB_API nb_tensor *nb_group_norm(nb_tape *tape, nb_tensor *x, int num_groups, nb_tensor *weight,
                                nb_tensor *bias, double eps);

/* ---- attention (ops/attention/) -------------------------------------------- */
typedef struct nb_attention_params {
    double scale;             /* 0: PyTorch's default 1/sqrt(D) */
    bool is_causal;           /* query i sees keys j <= i */
} nb_attention_params;
/* y = softmax(scale q k^T + mask) v, one fused node: q [..., T, D],
 * k [..., S, D], v [..., S, Dv] -> [..., T, Dv]; mask (float, added to
 * the scores, -inf hides) broadcasts to [..., T, S] or is NULL */
NB_API nb_tensor *nb_scaled_dot_product_attention(nb_tape *tape, nb_tensor *q, nb_tensor *k,
                                                  nb_tensor *v, nb_tensor *mask, bool is_causal);
NB_API nb_tensor *nb_scaled_dot_product_attention_ex(nb_tape *tape, nb_tensor *q, nb_tensor *k,
                                                     nb_tensor *v, nb_tensor *mask,
                                                     const nb_attention_params *p);

/* ---- recurrent cells (ops/recurrent/; PyTorch's gate order and formulas) - */
/* [i,f,g,o] = x W_ih^T + b_ih + h W_hh^T + b_hh; c' = sig(f) c + sig(i) tanh(g);
 * h' = sig(o) tanh(c'). x [B,I], h, c [B,H], W_ih [4H,I], W_hh [4H,H],
 * biases [4H] or both NULL. One node; h' and c' are slices of its [2,B,H]
 * output. Returns NB_OK or an error (also on the tape). */
NB_API int nb_lstm_cell(nb_tape *tape, nb_tensor *x, nb_tensor *h, nb_tensor *c,
                        nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh,
                        nb_tensor **h_next, nb_tensor **c_next);
/* One LSTM layer over a sequence, one node (nn.LSTM's layer, batch first,
 * zero initial state): the cell above at t = 0 .. T-1, x [B,T,I],
 * W_ih [4H,I], W_hh [4H,H], biases [4H] or both NULL -> h_t for every t
 * [B,T,H]. Input projections and weight gradients span all steps at once. */
NB_API nb_tensor *nb_lstm(nb_tape *tape, nb_tensor *x, nb_tensor *w_ih, nb_tensor *w_hh,
                          nb_tensor *b_ih, nb_tensor *b_hh);
/* r, z = sig(x W_i{r,z}^T + b + h W_h{r,z}^T + b); n = tanh(x W_in^T + b_in +
 * r (h W_hn^T + b_hn)); h' = (1 - z) n + z h. W_ih [3H,I], W_hh [3H,H] */
NB_API nb_tensor *nb_gru_cell(nb_tape *tape, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih,
                              nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh);

#ifdef __cplusplus
}
#endif
#endif
