/* Internal: bfloat16, the upper half of a float32 (8 exponent bits, 8
 * significant bits), as the bf16 GEMM kernels store it.
 *
 * nb_bf16_round rounds to nearest, ties to even, and treats a subnormal
 * input as zero of the same sign (DAZ), as the AVX-512 BF16 conversions
 * do; a NaN stays a (quiet) NaN. Any product of two bf16 values is exact
 * in float32 (8 x 8 significant bits fit in 24), so a bf16 dot product's
 * only roundings are its float32 additions. */
#ifndef NABLA_KERNELS_BF16_H
#define NABLA_KERNELS_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t nb_bf16_round(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t exponent = bits & 0x7F800000u, mantissa = bits & 0x007FFFFFu;
    if (exponent == 0) return (uint16_t)(bits >> 16 & 0x8000u);
    if (exponent == 0x7F800000u && mantissa != 0) return (uint16_t)(bits >> 16 | 0x0040u);
    /* Adding 0x7FFF plus the kept part's lowest bit carries into the kept
     * half exactly when the dropped half is above one half, or equal to
     * it with an odd kept half. Overflow correctly gives infinity. */
    bits += 0x7FFFu + (bits >> 16 & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float nb_bf16_to_float(uint16_t value)
{
    uint32_t bits = (uint32_t)value << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* x rounded to bf16 and back: the value a bf16 kernel multiplies. */
static inline float nb_bf16_rounded(float x) { return nb_bf16_to_float(nb_bf16_round(x)); }

/* out[i] = nb_bf16_rounded(x[i]) for i < n (out may be x); AVX-512 BF16
 * where the CPU has it, the same bits either way (kernels/bf16_round.c). */
void nb_bf16_round_array(const float *x, int64_t n, float *out);

#endif
