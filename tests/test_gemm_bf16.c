/* bf16 products: the rounding to bf16 against hand-worked values, the
 * oracle nb_sgemm_bf16_ref against a float64 sum of the rounded operands,
 * and every bf16 micro-kernel against the oracle bit for bit (same
 * rounding, same order of additions), at odd sizes, all transposes and
 * across depth blocks; bit-identical across thread counts. The AVX-512
 * BF16 kernels skip (not pass) on CPUs without the instruction; the
 * portable kernel and the oracle are tested everywhere. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/gemm_micro.h"
#include "nabla/threads.h"

enum { PAD = 3 };
static const float SENTINEL = -12345.0f;

static uint64_t rng_state;
static void rng_seed(uint64_t seed) { rng_state = seed * 0x9E3779B97F4A7C15ull + 1; }
static float rng_uniform(void) /* in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static float from_bits(uint32_t bits)
{
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

Test(bf16, rounding_is_nearest_even_with_subnormals_as_zero)
{
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1. */
    cr_assert_eq(nb_bf16_round(1.0f + 0x1p-8f), 0x3F80);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up. */
    cr_assert_eq(nb_bf16_round(1.0f + 3 * 0x1p-8f), 0x3F82);
    /* Just above half rounds up, just below down. */
    cr_assert_eq(nb_bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
    cr_assert_eq(nb_bf16_round(1.0f + 0x1p-8f - 0x1p-20f), 0x3F80);
    cr_assert_eq(nb_bf16_round(-2.5f), 0xC020);
    cr_assert_eq(nb_bf16_round(from_bits(0x00000001u)), 0x0000); /* subnormal: zero */
    cr_assert_eq(nb_bf16_round(from_bits(0x807FFFFFu)), 0x8000);
    cr_assert_eq(nb_bf16_round(INFINITY), 0x7F80);
    cr_assert_eq(nb_bf16_round(FLT_MAX), 0x7F80); /* rounds past the largest bf16 */
    uint16_t nan = nb_bf16_round(from_bits(0x7F800001u)); /* signalling NaN stays NaN */
    cr_assert(isnan(nb_bf16_to_float(nan)) && (nan & 0x0040), "0x%04x", nan);
    cr_assert_eq(nb_bf16_rounded(3.14159265f), 3.140625f);
}

/* Values that stress the conversion: random, ties, subnormals, infinities
 * and NaNs, large and small exponents. */
static float awkward_value(int i)
{
    switch (i % 9) {
    case 0: return from_bits(0x3F808000u + (uint32_t)(i % 3) * 0x10000u); /* ties */
    case 1: return from_bits((uint32_t)i * 2654435761u & 0x007FFFFFu);    /* subnormal */
    case 2: return i % 2 ? INFINITY : -INFINITY;
    case 3: return from_bits(0x7FC00000u | (uint32_t)i);
    case 4: return rng_uniform() * 3e38f;
    case 5: return rng_uniform() * 1e-37f;
    default: return rng_uniform() * 100.0f;
    }
}

Test(bf16, vector_pairing_matches_the_portable_one_bit_for_bit)
{
    if (!nb_cpu_has_avx512_bf16()) cr_skip_test("this CPU has no AVX-512 BF16");
    static const int widths[] = {4, 6, 8, 12, 16, 24, 32, 64};
    static const int64_t depths[] = {1, 2, 7, 16, 33};
    rng_seed(1);
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
            int64_t floats = 3 * depths[d] * widths[w];
            float *x = malloc(sizeof(float) * (size_t)floats);
            float *y = malloc(sizeof(float) * (size_t)floats);
            for (int64_t i = 0; i < floats; i++) x[i] = y[i] = awkward_value((int)i);
            nb_bf16_pair_panels(x, 3, depths[d], widths[w]);
            nb_bf16_pair_panels_portable(y, 3, depths[d], widths[w]);
            int64_t words = 3 * (depths[d] + 1) / 2 * widths[w];
            cr_assert(memcmp(x, y, sizeof(float) * (size_t)words) == 0,
                      "width %d depth %ld: the two conversions differ", widths[w],
                      (long)depths[d]);
            free(x);
            free(y);
        }
}

typedef struct case_shape {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
} case_shape;

static int64_t stored_rows(bool trans, int64_t rows, int64_t cols) { return trans ? cols : rows; }
static int64_t leading(bool trans, int64_t rows, int64_t cols) { return (trans ? rows : cols) + PAD; }

static float *random_matrix(int64_t rows, int64_t ld)
{
    float *m = malloc(sizeof(float) * (size_t)(rows * ld + 1));
    cr_assert_not_null(m);
    for (int64_t i = 0; i < rows * ld; i++) m[i] = rng_uniform();
    return m;
}

/* The oracle against float64: each element is alpha * sum(rounded a *
 * rounded b) + beta * C up to float32 rounding of the sums, at most
 * (K + 2) eps (|alpha| sum|a||b| + |beta C|) with |a|, |b|, |C| <= 1. */
Test(bf16, reference_is_the_float64_product_of_rounded_operands)
{
    static const case_shape shapes[] = {{false, false, 5, 7, 3, 1.0f, 0.0f},
                                        {true, true, 9, 4, 1100, -0.5f, 0.75f},
                                        {false, true, 3, 3, 513, 2.0f, 1.0f}};
    rng_seed(5);
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        case_shape s = shapes[c];
        int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
        float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
        float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
        float *C = random_matrix(s.M, s.N);
        float *C0 = malloc(sizeof(float) * (size_t)(s.M * s.N));
        memcpy(C0, C, sizeof(float) * (size_t)(s.M * s.N));
        nb_sgemm_bf16_ref(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C,
                          s.N);
        for (int64_t i = 0; i < s.M; i++)
            for (int64_t j = 0; j < s.N; j++) {
                double sum = 0.0, magnitude = 0.0;
                for (int64_t k = 0; k < s.K; k++) {
                    double a = nb_bf16_rounded(s.trans_a ? A[k * lda + i] : A[i * lda + k]);
                    double b = nb_bf16_rounded(s.trans_b ? B[j * ldb + k] : B[k * ldb + j]);
                    sum += a * b;
                    magnitude += fabs(a * b);
                }
                double want = s.alpha * sum + s.beta * C0[i * s.N + j];
                double bound = (s.K + 2) * FLT_EPSILON *
                               (fabs(s.alpha) * magnitude + fabs(s.beta * C0[i * s.N + j]));
                cr_assert(fabs(C[i * s.N + j] - want) <= bound, "case %zu [%ld,%ld]: %.9g vs %.9g",
                          c, (long)i, (long)j, C[i * s.N + j], want);
            }
        free(A);
        free(B);
        free(C);
        free(C0);
    }
}

/* One case through nb_sgemm_bf16 (kernel forced) and the oracle: every
 * element must match bit for bit, and C's padding columns stay untouched. */
static void check_case(case_shape s, const char *kernel)
{
    int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
    int64_t ldc = s.N + PAD;
    float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
    float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
    float *C = random_matrix(s.M, ldc), *expected = malloc(sizeof(float) * (size_t)(s.M * ldc));
    for (int64_t i = 0; i < s.M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= s.N) C[i * ldc + j] = SENTINEL;
            else if (s.beta == 0.0f) C[i * ldc + j] = NAN; /* must not be read */
        }
    memcpy(expected, C, sizeof(float) * (size_t)(s.M * ldc));
    nb_sgemm_bf16(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C, ldc);
    nb_sgemm_bf16_ref(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta,
                      expected, ldc);
    for (int64_t i = 0; i < s.M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            uint32_t got, want;
            memcpy(&got, &C[i * ldc + j], sizeof got);
            memcpy(&want, &expected[i * ldc + j], sizeof want);
            cr_assert_eq(got, want,
                         "%s ta=%d tb=%d M=%ld N=%ld K=%ld alpha=%g beta=%g: C[%ld,%ld] = %.9g, "
                         "reference %.9g", kernel, s.trans_a, s.trans_b, (long)s.M, (long)s.N,
                         (long)s.K, s.alpha, s.beta, (long)i, (long)j, C[i * ldc + j],
                         expected[i * ldc + j]);
        }
    free(A);
    free(B);
    free(C);
    free(expected);
}

static const int64_t sizes[] = {1, 2, 3, 5, 7, 8, 11, 12, 13, 16, 17, 24, 31, 32, 33, 47, 64, 67};
enum { SIZE_COUNT = sizeof sizes / sizeof sizes[0] };

static void check_kernel(const char *kernel)
{
    cr_assert_eq(nb_gemm_force_kernel(kernel), NB_OK, "%s", nb_last_error());
    rng_seed(7);
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    int pick = 0;
    for (int transposes = 0; transposes < 4; transposes++)
        for (int mi = 0; mi < SIZE_COUNT; mi++)
            for (int ni = 0; ni < SIZE_COUNT; ni += 2) {
                case_shape s = {.trans_a = transposes & 1, .trans_b = (transposes >> 1) & 1,
                                .M = sizes[mi], .N = sizes[ni],
                                .K = sizes[(mi * 7 + ni * 3) % SIZE_COUNT],
                                .alpha = rng_uniform() * 2.0f, .beta = betas[pick++ % 3]};
                check_case(s, kernel);
            }
    /* Depths past one block (KC = 512 pairs' worth), odd and even, threaded. */
    static const case_shape large[] = {
        {false, false, 150, 800, 1031, 1.0f, 0.0f}, {true, false, 37, 90, 777, 0.5f, 1.0f},
        {false, true, 300, 40, 1390, -1.5f, 0.25f}, {true, true, 45, 97, 2001, 2.0f, 0.0f}};
    nb_set_num_threads(2);
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) check_case(large[i], kernel);
    nb_set_num_threads(1);
    nb_gemm_force_kernel(NULL);
}

/* Each kernel (tile shape) of a family, forced by its full name. */
static void check_family(const char *family)
{
    int checked = 0;
    for (int i = 0; i < nb_gemm_bf16_kernel_count(); i++) {
        const nb_sgemm_kernel *kernel = nb_gemm_bf16_kernel_at(i);
        if (strcmp(kernel->name, family) != 0) continue;
        char full_name[64];
        snprintf(full_name, sizeof full_name, "%s-%dx%d", family, kernel->rows, kernel->cols);
        if (!kernel->supported()) continue;
        check_kernel(full_name);
        checked++;
    }
    if (checked == 0) cr_skip_test("no %s kernel runs on this CPU", family);
}

Test(bf16, portable_kernel_equals_the_reference) { check_family("bf16-scalar"); }
Test(bf16, avx512_bf16_kernels_equal_the_reference) { check_family("bf16-avx512"); }

Test(bf16, one_and_two_threads_are_bit_identical)
{
    const case_shape s = {true, false, 300, 257, 700, 0.7f, 0.3f};
    rng_seed(3);
    int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
    float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
    float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
    float *C1 = random_matrix(s.M, s.N);
    float *C2 = malloc(sizeof(float) * (size_t)(s.M * s.N));
    memcpy(C2, C1, sizeof(float) * (size_t)(s.M * s.N));
    nb_set_num_threads(1);
    nb_sgemm_bf16(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C1, s.N);
    nb_set_num_threads(2);
    nb_sgemm_bf16(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C2, s.N);
    nb_set_num_threads(1);
    cr_assert(memcmp(C1, C2, sizeof(float) * (size_t)(s.M * s.N)) == 0);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* A weight packed once for bf16 (the LSTM's recurrent weight) gives what
 * nb_sgemm_bf16 gives. */
Test(bf16, packed_once_matches_the_plain_product)
{
    const int64_t M = 20, N = 70, K = 600;
    rng_seed(9);
    for (int tb = 0; tb < 2; tb++) {
        int64_t ldb = tb ? K : N;
        float *A = random_matrix(M, K), *B = random_matrix(tb ? N : K, ldb);
        float *C1 = calloc((size_t)(M * N), sizeof(float)), *C2 = calloc((size_t)(M * N), sizeof(float));
        float *panels = malloc(sizeof(float) * nb_sgemm_packed_b_floats(true, M, N, K));
        nb_sgemm_packed_b packed;
        nb_sgemm_pack_b_once(&packed, true, M, tb, N, K, B, ldb, panels);
        nb_sgemm_packed(&packed, false, M, 1.0f, A, K, 0.0f, C1, N);
        nb_sgemm_bf16(false, tb, M, N, K, 1.0f, A, K, B, ldb, 0.0f, C2, N);
        cr_assert(memcmp(C1, C2, sizeof(float) * (size_t)(M * N)) == 0, "trans_b %d", tb);
        free(A);
        free(B);
        free(C1);
        free(C2);
        free(panels);
    }
}

Test(bf16, forcing_a_bf16_kernel_leaves_float32_alone)
{
    cr_assert_eq(nb_gemm_force_kernel("scalar"), NB_OK);
    cr_assert_eq(nb_gemm_force_kernel("bf16-scalar"), NB_OK);
    cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
    cr_assert_str_eq(nb_gemm_bf16_kernel()->name, "bf16-scalar");
    cr_assert_eq(nb_gemm_bf16_kernel_for(100, 100), &nb_sgemm_kernel_bf16_scalar);
    cr_assert_eq(nb_gemm_force_kernel("bf16-avx512-7x7"), NB_ERR_INVALID);
    cr_assert_eq(nb_gemm_force_kernel(NULL), NB_OK);
    if (nb_cpu_has_avx512_bf16()) {
        cr_assert_str_eq(nb_gemm_bf16_kernel()->name, "bf16-avx512");
        cr_assert_eq(nb_gemm_bf16_kernel_for(1200, 1024), &nb_sgemm_kernel_bf16_avx512_12x32);
        cr_assert_eq(nb_gemm_bf16_kernel_for(6, 3920), &nb_sgemm_kernel_bf16_avx512_6x64);
    } else {
        cr_assert_eq(nb_gemm_force_kernel("bf16-avx512"), NB_ERR_INVALID);
        cr_assert_str_eq(nb_gemm_bf16_kernel()->name, "bf16-scalar");
    }
}

/* NABLA_GEMM_KERNEL with one name per precision, read at the first product
 * of the test's own process. */
static void force_both_by_environment(void)
{
    setenv("NABLA_GEMM_KERNEL", "scalar,bf16-scalar", 1);
}

Test(bf16, environment_names_a_kernel_for_each_precision, .init = force_both_by_environment)
{
    cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
    cr_assert_str_eq(nb_gemm_bf16_kernel()->name, "bf16-scalar");
}

/* B given by row pointers gives the bits of the same B stored plainly:
 * bf16 against nb_sgemm_bf16, float32 against nb_sgemm with an exact
 * kernel forced (which also keeps nb_sgemm off its dot-product path). */
Test(bf16, row_pointer_operand_matches_the_stored_matrix)
{
    const char *exact = nb_gemm_kernel_supported("avx512-12x32") ? "avx512-12x32" : "scalar-4x8";
    cr_assert_eq(nb_gemm_force_kernel(exact), NB_OK);
    static const int64_t shapes[][3] = {{32, 624, 288}, {7, 45, 1100}, {33, 17, 9}};
    rng_seed(13);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb < 2; tb++)
            for (int bf16 = 0; bf16 < 2; bf16++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int64_t ldb = (tb ? K : N) + PAD, stored = tb ? N : K;
                float *A = random_matrix(M, K), *B = random_matrix(stored, ldb);
                const float **rows = malloc(sizeof *rows * (size_t)stored);
                for (int64_t r = 0; r < stored; r++) rows[r] = B + r * ldb;
                float *C1 = random_matrix(M, N), *C2 = malloc(sizeof(float) * (size_t)(M * N));
                memcpy(C2, C1, sizeof(float) * (size_t)(M * N));
                nb_set_num_threads(2);
                nb_sgemm_rows(bf16, tb, M, N, K, 0.5f, A, K, rows, 1.0f, C1, N);
                nb_set_num_threads(1);
                (bf16 ? nb_sgemm_bf16 : nb_sgemm)(false, tb, M, N, K, 0.5f, A, K, B, ldb, 1.0f,
                                                  C2, N);
                cr_assert(memcmp(C1, C2, sizeof(float) * (size_t)(M * N)) == 0,
                          "%ldx%ldx%ld trans_b %d bf16 %d", (long)M, (long)N, (long)K, tb, bf16);
                free(A), free(B), free(rows), free(C1), free(C2);
            }
    nb_gemm_force_kernel(NULL);
}
