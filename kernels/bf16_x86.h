/* Internal: the AVX-512 BF16 conversion the bf16 packers share. Include
 * only where <immintrin.h> is available (x86-64 GCC or Clang). */
#ifndef NABLA_KERNELS_BF16_X86_H
#define NABLA_KERNELS_BF16_X86_H

#include <immintrin.h>

/* 16 pairs (low[i], high[i]), each rounded to bf16 as nb_bf16_round does
 * (VCVTNEPS2BF16), as 32-bit words with low in the low half: the layout
 * VDPBF16PS multiplies. */
__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline __m512i
nb_bf16_pair_words(__m512 low, __m512 high)
{
    __m512i low_words = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(low));
    __m512i high_words = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(high));
    return _mm512_or_si512(low_words, _mm512_slli_epi32(high_words, 16));
}

#endif
