/* Internal: the bf16 convolution product of the gathered path, with no
 * packing of the unfolded image (kernels/conv2d/gathered.h's layout).
 *
 * The padded image is converted once into channel pairs: word
 * paired[cp][h][w] holds channels 2cp (low half) and 2cp + 1 (high half)
 * of pixel (h, w), rounded to bf16. With the depth ordered (tap, channel
 * pair), tap (i, j) and pair cp of the unfolding at wide position p is then
 * word paired[cp][i][j + p]: a row VDPBF16PS reads in place, 32 positions
 * at a time. The weights are packed once per call into panels of 8 output
 * rows in the same (tap, pair) order.
 *
 *   wide[m, p] = sum over taps t, pairs cp of  w_hi * x_hi + w_lo * x_lo
 *
 * added in that order, the high (odd channel) product first, into one
 * float32 sum per element: the AVX-512 BF16 tile and the portable loop
 * give the same bits. */
#ifndef NABLA_KERNELS_CONV2D_PAIRS_BF16_H
#define NABLA_KERNELS_CONV2D_PAIRS_BF16_H

#include <stdint.h>

enum {
    NB_CONV_PAIRS_ROWS = 8,  /* output rows (channels) per weight panel */
    NB_CONV_PAIRS_SLACK = 32 /* zero words after a paired image: a tile may read that far */
};

typedef struct nb_conv_pairs {
    int64_t M;          /* output rows */
    int64_t pairs;      /* channel pairs: ceil(channels / 2) */
    int64_t kh, kw, Wp; /* the kernel, and the padded image's row length */
    int64_t plane;      /* Hp * Wp */
    int64_t positions;  /* wide positions computed */
    const uint32_t *weights; /* [ceil(M / 8)][kh*kw*pairs][8] */
} nb_conv_pairs;

/* Words of the packed weights, and of one paired image (slack included). */
int64_t nb_conv_pairs_weight_words(const nb_conv_pairs *c);
int64_t nb_conv_pairs_image_words(const nb_conv_pairs *c);
/* w [M, channels, kh, kw] -> packed [ceil(M/8)][taps*pairs][8]. */
void nb_conv_pairs_pack_weights(const nb_conv_pairs *c, int64_t channels, const float *w,
                                uint32_t *packed);
/* padded [channels, plane] -> paired [pairs, plane] and zero slack. */
void nb_conv_pairs_image(const nb_conv_pairs *c, int64_t channels, const float *padded,
                         uint32_t *paired);
/* wide [M, positions] (row stride positions) from a paired image; rows is
 * scratch for kh*kw*pairs pointers. */
void nb_conv_pairs_product(const nb_conv_pairs *c, const uint32_t *paired, const uint32_t **rows,
                           float *wide);

/* The weight gradient of one image in the same spirit, paired along the
 * wide positions p instead of the channels:
 *   dWT[(c,i,j), k] += sum over position pairs q of
 *       x_c[b + 2q + 1] dy[k, 2q + 1] + x_c[b + 2q] dy[k, 2q],  b = i*Wp + j
 * (the odd position's product first, then the even's, into a float32 sum
 * per element that starts at zero for the image and is then added to
 * dWT). Each channel of x is converted to bf16 values once: two
 * consecutive values, read as one 32-bit word, are a pair whatever the
 * parity of b. dy is converted to [pairs][columns] words with columns = K
 * rounded up to 32 (zeros beyond K). */
typedef struct nb_conv_pairs_grad {
    int64_t K, columns;     /* output channels, and K rounded up to 32 */
    int64_t channels, kh, kw, Wp, plane;
    int64_t positions;      /* wide positions; dy is zero between output rows */
    int64_t position_pairs; /* ceil(positions / 2) */
    int64_t channel_values; /* bf16 values of one converted channel, slack included */
} nb_conv_pairs_grad;

nb_conv_pairs_grad nb_conv_pairs_grad_of(int64_t K, int64_t channels, int64_t kh, int64_t kw,
                                         int64_t Hp, int64_t Wp, int64_t positions);
/* bf16 values of the converted image; 32-bit words of the converted dy. */
int64_t nb_conv_pairs_grad_image_values(const nb_conv_pairs_grad *c);
int64_t nb_conv_pairs_grad_dy_words(const nb_conv_pairs_grad *c);
/* padded [channels, plane] -> converted; dy_wide [K, positions] -> converted. */
void nb_conv_pairs_grad_image(const nb_conv_pairs_grad *c, const float *padded, uint16_t *image);
void nb_conv_pairs_grad_dy(const nb_conv_pairs_grad *c, const float *dy_wide, uint32_t *dy);
/* dwt [channels*kh*kw, columns] += this image's products; rows is scratch
 * for channels*kh*kw pointers. */
void nb_conv_pairs_grad_accumulate(const nb_conv_pairs_grad *c, const uint16_t *image,
                                   const uint32_t *dy, const uint16_t **rows, float *dwt);

#endif
