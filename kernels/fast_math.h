/* Internal: float32 elementary functions without branches or library
 * calls, so that a loop of them compiles to vector code at every CPU level
 * (base/cpu.h). Each is an always-inline body; where two formulas cover
 * different ranges both are computed and a ternary selects one, which the
 * compiler turns into a blend (this needs -fno-trapping-math, set in
 * meson.build: otherwise GCC keeps possibly-trapping arms in branches).
 *
 * Accuracy against double libm, measured over every 13th float bit
 * pattern (NaN stays NaN, +-inf give the limits):
 *   exp_branch_free      3 ulp on [-87.3, 88.3]; 0 below, e^88.3 above
 *   tanh_branch_free     2.2 ulp
 *   sigmoid_*            4 ulp (0 where the result would be below 1.2e-38)
 *   erf_branch_free      2.5 ulp
 *   erfc_branch_free     1e-6 relative up to x = 3, beyond that 6e-8 x^2 (the
 *                        rounding of x^2 in e^(-x^2)); 0 from x = 9.35
 * tests/test_fast_activations.c checks them through the ops at every level.
 * The polynomials are minimax fits of the relative error, printed by
 * tools/fast_math_fit.py. */
#ifndef NABLA_KERNELS_FAST_MATH_H
#define NABLA_KERNELS_FAST_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"

/* e^x to about 3 ulp without branches or calls (so loops of it
 * vectorise): x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor
 * polynomial, 2^n put in the exponent bits. Above 88.3 the result is
 * e^88.3; below -87.3 it is 0 (e^x would be subnormal), which keeps
 * masked scores (-inf) exactly out of the sums; NaN stays NaN.
 * n = floor(x log2e + 0.5) is rounded by adding and subtracting 1.5 2^23
 * (whose low bits then hold it as an integer), then corrected down: no
 * floorf (a call at the portable level) and no float-to-int conversion.
 * The argument is kept within [-88, 88.3] so that no step overflows for
 * any x. */
NB_KERNEL_BODY float exp_branch_free(float x)
{
    const float log2e = 1.44269504f, ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-6f;
    const float shifter = 12582912.0f;
    float clamped = x > 88.3f ? 88.3f : x;
    clamped = clamped < -88.0f ? -88.0f : clamped;   /* NaN stays NaN */
    float v = clamped * log2e + 0.5f;
    float shifted = v + shifter, nearest = shifted - shifter;
    uint32_t shifted_bits, shifter_bits;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    memcpy(&shifter_bits, &shifter, sizeof shifter_bits);
    uint32_t n_bits = shifted_bits - shifter_bits - (uint32_t)(nearest > v);
    float n = (float)(int32_t)n_bits;
    float r = clamped - n * ln2_hi - n * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (n_bits + 127u) << 23;   /* n >= -127: at worst +0 */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.3f ? 0.0f : p * scale;
}

/* tanh x: for |x| < 0.55, x + x^3 P(x^2) (there 1 - e^(-2|x|) would lose
 * the leading digits); beyond, (1 - e) / (1 + e) with e = e^(-2|x|) in
 * (0, 1], so nothing overflows and |x| > 43.6 gives +-1 exactly. */
NB_KERNEL_BODY float tanh_branch_free(float x)
{
    float a = fabsf(x), s = x * x;
    float p = -0.00627424f;
    p = p * s + 0.02107168f;
    p = p * s + -0.05385231f;
    p = p * s + 0.13332586f;
    p = p * s + -0.33333316f;
    float small = x + x * s * p;
    float e = exp_branch_free(-2.0f * a);
    float large = copysignf((1.0f - e) / (1.0f + e), x);
    return a < 0.55f ? small : large;
}

/* 1 / (1 + e^-x), and its complement 1 - that = 1 / (1 + e^x), each
 * without cancellation: with e = e^(-|x|) in (0, 1], they are 1 / (1 + e)
 * and e / (1 + e), which one is which by the sign of x. For x < -87.3
 * sigmoid is 0 exactly (e^x would be subnormal), for x > 87.3 its
 * complement is. */
NB_KERNEL_BODY float sigmoid_branch_free(float x)
{
    float e = exp_branch_free(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

NB_KERNEL_BODY float sigmoid_complement_branch_free(float x)
{
    float e = exp_branch_free(-fabsf(x));
    return (x >= 0.0f ? e : 1.0f) / (1.0f + e);
}

/* erfc |x| e^(x^2) for |x| >= 1, as t P(t) with t = 2 / (2 + |x|) (fitted
 * over 1 <= |x| <= 9.4, where erfc stays a normal float). */
NB_KERNEL_BODY float erfc_tail_branch_free(float a)
{
    float t = 2.0f / (2.0f + a);
    float p = 0.09195523f;
    p = p * t + -0.22156672f;
    p = p * t + 0.07646725f;
    p = p * t + 0.06513175f;
    p = p * t + 0.17712678f;
    p = p * t + 0.24734804f;
    p = p * t + 0.28199172f;
    p = p * t + 0.28210086f;
    return exp_branch_free(-a * a) * t * p;
}

/* erf x / x as Q(x^2), for |x| < 1 */
NB_KERNEL_BODY float erf_over_x_branch_free(float s)
{
    float q = 7.889168e-05f;
    q = q * s + -0.0008020857f;
    q = q * s + 0.005189537f;
    q = q * s + -0.026854446f;
    q = q * s + 0.112836f;
    q = q * s + -0.37612626f;
    q = q * s + 1.1283791f;
    return q;
}

/* erf x: x Q(x^2) for |x| < 1, beyond 1 - erfc |x| with the sign of x
 * (erfc |x| <= 0.16 there, so its error shrinks in the difference). */
NB_KERNEL_BODY float erf_branch_free(float x)
{
    float a = fabsf(x);
    float small = x * erf_over_x_branch_free(x * x);
    float large = copysignf(1.0f - erfc_tail_branch_free(a), x);
    return a < 1.0f ? small : large;
}

/* erfc x = 1 - erf x, computed without cancellation in the right tail
 * (the tail formula itself there, 2 minus it in the left tail). */
NB_KERNEL_BODY float erfc_branch_free(float x)
{
    float a = fabsf(x);
    float middle = 1.0f - x * erf_over_x_branch_free(x * x);
    float tail = erfc_tail_branch_free(a);
    float large = x > 0.0f ? tail : 2.0f - tail;
    return a < 1.0f ? middle : large;
}

#endif
