/* Arrays rounded to bf16 and kept as float32 (kernels/bf16.h): the
 * operands of a float32 kernel that then multiplies exactly what a bf16
 * kernel would (a product of two bf16 values is exact in float32). */
#include "kernels/bf16.h"

#include "base/cpu.h"
#include "base/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* VCVTNEPS2BF16 rounds as nb_bf16_round does; shifting back up restores a
 * float32. */
NB_TARGET_AVX512_BF16 static void round_avx512(const float *x, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = (__mmask16)(n - i >= 16 ? 0xFFFFu : (1u << (n - i)) - 1u);
        __m256i bf16 = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
        __m512i bits = _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16);
        _mm512_mask_storeu_ps(out + i, mask, _mm512_castsi512_ps(bits));
    }
}
#endif

typedef struct round_job {
    const float *x;
    float *out;
} round_job;

static void round_range(void *context, int64_t begin, int64_t length)
{
    const round_job *job = context;
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has_avx512_bf16()) {
        round_avx512(job->x + begin, length, job->out + begin);
        return;
    }
#endif
    for (int64_t i = begin; i < begin + length; i++) job->out[i] = nb_bf16_rounded(job->x[i]);
}

/* Element by element, so splitting it across the threads (a rounded
 * output gradient can take megabytes) changes no bit. */
void nb_bf16_round_array(const float *x, int64_t n, float *out)
{
    round_job job = {x, out};
    nb_parallel_ranges(n, round_range, &job);
}
