/* nb_sgemm against the naive oracle nb_sgemm_ref, for every micro-kernel
 * this CPU can run, all four transpose combinations and odd sizes; nb_dgemm
 * against a double loop; and bit-identical results across thread counts. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "kernels/gemm.h"
#include "kernels/gemm_micro.h"
#include "nabla/threads.h"

static const char *const family_names[] = {"scalar", "avx2", "avx512"};
enum { FAMILY_COUNT = 3, PAD = 3 };
static const float SENTINEL = -12345.0f;

/* A fixed-seed generator so failures reproduce. */
static uint64_t rng_state;
static void rng_seed(uint64_t seed) { rng_state = seed * 0x9E3779B97F4A7C15ull + 1; }
static float rng_uniform(void) /* in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

typedef struct case_shape {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
} case_shape;

/* Storage of op(X)[rows, cols] with a padded leading dimension. */
static int64_t stored_rows(bool trans, int64_t rows, int64_t cols) { return trans ? cols : rows; }
static int64_t leading(bool trans, int64_t rows, int64_t cols)
{
    return (trans ? rows : cols) + PAD;
}

static float *random_matrix(int64_t rows, int64_t ld)
{
    float *m = malloc(sizeof(float) * (size_t)(rows * ld + 1));
    cr_assert_not_null(m);
    for (int64_t i = 0; i < rows * ld; i++) m[i] = rng_uniform();
    return m;
}

/* Runs one case with nb_sgemm and nb_sgemm_ref and compares within a bound
 * that grows with K (float rounding of a K-term sum). The padding columns
 * of C must come back untouched. */
static void check_case(case_shape s, const char *kernel)
{
    int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
    int64_t ldc = s.N + PAD;
    float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
    float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
    float *C = random_matrix(s.M, ldc), *expected = malloc(sizeof(float) * (size_t)(s.M * ldc));
    for (int64_t i = 0; i < s.M; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= s.N) C[i * ldc + j] = SENTINEL;
            else if (s.beta == 0.0f) C[i * ldc + j] = NAN; /* must not be read */
        }
    }
    memcpy(expected, C, sizeof(float) * (size_t)(s.M * ldc));
    nb_sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C, ldc);
    nb_sgemm_ref(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, expected,
                 ldc);
    /* |A|, |B|, |C| <= 1, so each sum's magnitude is at most K. */
    double bound = (double)(s.K + 2) * FLT_EPSILON * ((double)fabsf(s.alpha) * s.K + fabsf(s.beta));
    for (int64_t i = 0; i < s.M; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], want = expected[i * ldc + j];
            if (j >= s.N) {
                cr_assert_eq(got, SENTINEL, "%s: padding of C at [%ld,%ld] was written", kernel,
                             (long)i, (long)j);
                continue;
            }
            cr_assert(fabs((double)got - want) <= bound,
                      "%s ta=%d tb=%d M=%ld N=%ld K=%ld alpha=%g beta=%g: C[%ld,%ld] = %.9g, "
                      "reference %.9g", kernel, s.trans_a, s.trans_b, (long)s.M, (long)s.N,
                      (long)s.K, s.alpha, s.beta, (long)i, (long)j, got, want);
        }
    }
    free(A);
    free(B);
    free(C);
    free(expected);
}

static float random_beta(int pick)
{
    switch (pick % 4) {
    case 0: return 0.0f;
    case 1: return 1.0f;
    default: return rng_uniform() * 2.0f;
    }
}

/* Sizes at or around every MR/NR of the kernels (4, 6, 8, 12, 16, 24, 32,
 * 64) and odd ones. */
static const int64_t sizes[] = {1,  2,  3,  5,  7,  8,  11, 12, 13, 16,
                                17, 24, 31, 32, 33, 41, 47, 64, 67};
enum { SIZE_COUNT = sizeof sizes / sizeof sizes[0] };

static void check_kernel_small(const char *kernel)
{
    cr_assert_eq(nb_gemm_force_kernel(kernel), NB_OK, "%s", nb_last_error());
    rng_seed(7);
    int pick = 0;
    for (int transposes = 0; transposes < 4; transposes++) {
        for (int mi = 0; mi < SIZE_COUNT; mi++) {
            for (int ni = 0; ni < SIZE_COUNT; ni++) {
                /* Two depths per (M, N), walking the whole size list. */
                for (int kk = 0; kk < 2; kk++) {
                    case_shape s = {
                        .trans_a = transposes & 1, .trans_b = (transposes >> 1) & 1,
                        .M = sizes[mi], .N = sizes[ni],
                        .K = sizes[(mi * 7 + ni * 3 + kk * 11) % SIZE_COUNT],
                        .alpha = rng_uniform() * 2.0f, .beta = random_beta(pick++),
                    };
                    check_case(s, kernel);
                }
            }
        }
    }
    nb_gemm_force_kernel(NULL);
}

/* Every kernel (tile shape) of the family that this CPU supports, forced
 * exactly so the automatic shape choice cannot hide one. A CPU that runs
 * none of the family's kernels reports the test as skipped, not passed. */
static void check_family_small(const char *family)
{
    int checked = 0;
    for (int i = 0; i < nb_gemm_kernel_count(); i++) {
        const nb_sgemm_kernel *kernel = nb_gemm_kernel_at(i);
        if (strcmp(kernel->name, family) != 0) continue;
        char full_name[64];
        snprintf(full_name, sizeof full_name, "%s-%dx%d", family, kernel->rows, kernel->cols);
        if (!kernel->supported()) {
            cr_log_info("kernel %s not supported on this CPU: skipped", full_name);
            continue;
        }
        check_kernel_small(full_name);
        checked++;
    }
    if (checked == 0) cr_skip_test("no %s kernel runs on this CPU", family);
}

Test(gemm, scalar_kernel_small_shapes) { check_family_small("scalar"); }
Test(gemm, avx2_kernel_small_shapes) { check_family_small("avx2"); }
Test(gemm, avx512_kernels_small_shapes) { check_family_small("avx512"); }

/* Shapes that cross every blocking boundary of kernels/gemm.c (depth
 * blocks of at most KC = 256, split near-equally; the NC = 1024-column and
 * MC = 144-row blocks) and the threaded split, for each kernel family. */
Test(gemm, large_shapes_cross_blocks)
{
    static const case_shape shapes[] = {
        {false, false, 150, 800, 400, 1.0f, 0.0f}, {true, false, 37, 790, 777, 0.5f, 1.0f},
        {false, true, 300, 40, 390, -1.5f, 0.25f}, {true, true, 145, 97, 1000, 2.0f, 0.0f},
        {false, false, 6, 3000, 25, 1.0f, 0.0f},   {false, true, 6, 25, 5000, 1.0f, 1.0f},
    };
    nb_set_num_threads(2);
    for (int k = 0; k < FAMILY_COUNT; k++) {
        if (!nb_gemm_kernel_supported(family_names[k])) continue;
        cr_assert_eq(nb_gemm_force_kernel(family_names[k]), NB_OK);
        rng_seed(11 + (uint64_t)k);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_case(shapes[i], family_names[k]);
    }
    nb_gemm_force_kernel(NULL);
}

/* C = A B^T with a side of C at most 16 and a long K: the AVX-512 family
 * computes these as dot products (kernels/gemm_dot.c); every edge of its
 * 4 x 6 tiles and its 2048-step depth blocks, and the K tail, is crossed. */
Test(gemm, dot_product_shapes)
{
    static const int64_t short_sides[] = {1, 3, 4, 5, 6, 7, 13, 16};
    static const int64_t long_sides[] = {1, 6, 25, 61};
    static const int64_t depths[] = {512, 777, 1024, 2100};
    nb_set_num_threads(2);
    rng_seed(17);
    int pick = 0;
    for (int k = 0; k < FAMILY_COUNT; k++) {
        if (!nb_gemm_kernel_supported(family_names[k])) continue;
        cr_assert_eq(nb_gemm_force_kernel(family_names[k]), NB_OK);
        for (size_t i = 0; i < sizeof short_sides / sizeof short_sides[0]; i++)
            for (size_t j = 0; j < sizeof long_sides / sizeof long_sides[0]; j++)
                for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
                    bool wide = (i + j + d) % 2 == 0; /* which side of C is short */
                    case_shape s = {
                        .trans_a = false, .trans_b = true,
                        .M = wide ? short_sides[i] : long_sides[j],
                        .N = wide ? long_sides[j] : short_sides[i],
                        .K = depths[d], .alpha = rng_uniform() * 2.0f,
                        .beta = random_beta(pick++),
                    };
                    check_case(s, family_names[k]);
                }
    }
    nb_gemm_force_kernel(NULL);
}

Test(gemm, alpha_zero_and_empty_depth_only_scale_c)
{
    float A[4] = {NAN, NAN, NAN, NAN}, B[4] = {NAN, NAN, NAN, NAN};
    float C[4] = {1, 2, 3, 4};
    nb_sgemm(false, false, 2, 2, 2, 0.0f, A, 2, B, 2, 3.0f, C, 2);
    for (int i = 0; i < 4; i++) cr_assert_eq(C[i], 3.0f * (float)(i + 1));
    float D[4] = {NAN, NAN, NAN, NAN};
    nb_sgemm(false, false, 2, 2, 0, 1.0f, A, 2, B, 2, 0.0f, D, 2);
    for (int i = 0; i < 4; i++) cr_assert_eq(D[i], 0.0f);
}

Test(gemm, kernel_choice_by_family_or_exact_name)
{
    cr_assert_eq(nb_gemm_force_kernel("sse9"), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "sse9") != NULL, "%s", nb_last_error());
    cr_assert_eq(nb_gemm_force_kernel("avx512-7x7"), NB_ERR_INVALID);
    cr_assert(nb_gemm_kernel_supported("scalar"));
    cr_assert(nb_gemm_kernel_supported("scalar-4x8"));

    cr_assert_eq(nb_gemm_force_kernel("scalar"), NB_OK);
    cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
    cr_assert_eq(nb_gemm_kernel_for(100, 100), &nb_sgemm_kernel_scalar);
    if (nb_gemm_kernel_supported("avx512")) {
        /* The family picks the shape that pads least; an exact name sticks. */
        cr_assert_eq(nb_gemm_force_kernel("avx512"), NB_OK);
        cr_assert_eq(nb_gemm_kernel_for(6, 3920), &nb_sgemm_kernel_avx512_6x64);
        cr_assert_eq(nb_gemm_kernel_for(16, 4000), &nb_sgemm_kernel_avx512_8x32);
        cr_assert_eq(nb_gemm_kernel_for(1200, 1024), &nb_sgemm_kernel_avx512_12x32);
        cr_assert_eq(nb_gemm_force_kernel("avx512-8x32"), NB_OK);
        cr_assert_eq(nb_gemm_kernel_for(1200, 1024), &nb_sgemm_kernel_avx512_8x32);
    }
    cr_assert_eq(nb_gemm_force_kernel(NULL), NB_OK);
}

/* Same inputs, 1 then 2 threads: every kernel must give identical bits,
 * for both the column split and the row split (narrow N). */
Test(gemm, one_and_two_threads_are_bit_identical)
{
    static const case_shape shapes[] = {
        {false, false, 300, 257, 190, 1.0f, 0.0f}, {true, true, 300, 257, 500, 0.7f, 0.3f},
        {false, true, 300, 20, 190, 1.0f, 1.0f},   {true, false, 64, 120, 400, 1.0f, 0.0f},
    };
    for (int k = 0; k < nb_gemm_kernel_count(); k++) {
        char kernel[64];
        snprintf(kernel, sizeof kernel, "%s-%dx%d", nb_gemm_kernel_at(k)->name,
                 nb_gemm_kernel_at(k)->rows, nb_gemm_kernel_at(k)->cols);
        if (!nb_gemm_kernel_supported(kernel)) continue;
        cr_assert_eq(nb_gemm_force_kernel(kernel), NB_OK);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            case_shape s = shapes[i];
            int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
            int64_t ldc = s.N;
            rng_seed(3 + i);
            float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
            float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
            float *C1 = random_matrix(s.M, ldc);
            float *C2 = malloc(sizeof(float) * (size_t)(s.M * ldc));
            memcpy(C2, C1, sizeof(float) * (size_t)(s.M * ldc));
            cr_assert_eq(nb_set_num_threads(1), NB_OK);
            nb_sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C1, ldc);
            cr_assert_eq(nb_set_num_threads(2), NB_OK);
            nb_sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C2, ldc);
            cr_assert(memcmp(C1, C2, sizeof(float) * (size_t)(s.M * ldc)) == 0,
                      "%s: shape %ldx%ldx%ld differs between 1 and 2 threads", kernel,
                      (long)s.M, (long)s.N, (long)s.K);
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
    }
    nb_gemm_force_kernel(NULL);
}

/* The automatic choice (dot-product path included) is thread-independent too. */
Test(gemm, automatic_choice_is_bit_identical_across_threads)
{
    static const case_shape shapes[] = {
        {false, true, 16, 150, 4000, 1.0f, 1.0f}, {false, true, 6, 25, 3920, 1.0f, 0.0f},
        {false, false, 6, 3920, 25, 1.0f, 0.0f},  {true, false, 150, 4000, 16, 1.0f, 0.0f},
    };
    cr_assert_eq(nb_gemm_force_kernel(NULL), NB_OK);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        case_shape s = shapes[i];
        int64_t lda = leading(s.trans_a, s.M, s.K), ldb = leading(s.trans_b, s.K, s.N);
        rng_seed(23 + i);
        float *A = random_matrix(stored_rows(s.trans_a, s.M, s.K), lda);
        float *B = random_matrix(stored_rows(s.trans_b, s.K, s.N), ldb);
        float *C1 = random_matrix(s.M, s.N);
        float *C2 = malloc(sizeof(float) * (size_t)(s.M * s.N));
        memcpy(C2, C1, sizeof(float) * (size_t)(s.M * s.N));
        cr_assert_eq(nb_set_num_threads(1), NB_OK);
        nb_sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C1, s.N);
        cr_assert_eq(nb_set_num_threads(2), NB_OK);
        nb_sgemm(s.trans_a, s.trans_b, s.M, s.N, s.K, s.alpha, A, lda, B, ldb, s.beta, C2, s.N);
        cr_assert(memcmp(C1, C2, sizeof(float) * (size_t)(s.M * s.N)) == 0,
                  "shape %ldx%ldx%ld differs between 1 and 2 threads", (long)s.M, (long)s.N,
                  (long)s.K);
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}

/* nb_dgemm against a plain double loop, all transposes, padded strides. */
Test(gemm, dgemm_matches_naive_loop)
{
    rng_seed(5);
    static const int64_t dims[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 13, 1}, {33, 2, 67}, {64, 65, 31}};
    for (int transposes = 0; transposes < 4; transposes++) {
        bool trans_a = transposes & 1, trans_b = (transposes >> 1) & 1;
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
            int64_t lda = leading(trans_a, M, K), ldb = leading(trans_b, K, N), ldc = N + PAD;
            int64_t a_count = stored_rows(trans_a, M, K) * lda;
            int64_t b_count = stored_rows(trans_b, K, N) * ldb;
            double *A = malloc(sizeof(double) * (size_t)a_count);
            double *B = malloc(sizeof(double) * (size_t)b_count);
            double *C = malloc(sizeof(double) * (size_t)(M * ldc));
            for (int64_t i = 0; i < a_count; i++) A[i] = rng_uniform();
            for (int64_t i = 0; i < b_count; i++) B[i] = rng_uniform();
            double alpha = rng_uniform(), beta = d % 2 ? 0.0 : rng_uniform();
            for (int64_t i = 0; i < M * ldc; i++) C[i] = beta == 0.0 ? NAN : rng_uniform();
            for (int64_t i = 0; i < M; i++) C[i * ldc + N] = SENTINEL;
            double *before = malloc(sizeof(double) * (size_t)(M * ldc));
            memcpy(before, C, sizeof(double) * (size_t)(M * ldc));
            nb_dgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            for (int64_t i = 0; i < M; i++) {
                cr_assert_eq(C[i * ldc + N], SENTINEL);
                for (int64_t j = 0; j < N; j++) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < K; k++) {
                        double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                        double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                        sum += a * b;
                    }
                    double want = alpha * sum + (beta == 0.0 ? 0.0 : beta * before[i * ldc + j]);
                    cr_assert(fabs(C[i * ldc + j] - want) <= 1e-13 * (double)(K + 1),
                              "dgemm ta=%d tb=%d %ldx%ldx%ld: C[%ld,%ld] = %.17g, want %.17g",
                              trans_a, trans_b, (long)M, (long)N, (long)K, (long)i, (long)j,
                              C[i * ldc + j], want);
                }
            }
            free(A);
            free(B);
            free(C);
            free(before);
        }
    }
}

/* op(B) packed once (nb_sgemm_pack_b_once) and used by several products,
 * as a recurrent layer uses its weight at every step: each result is
 * bit-identical to nb_sgemm's on the same operands (the same kernel,
 * blocks and order), at 1 and 2 threads, across depth blocks (K 300, 1024)
 * and a partial last panel (N 100). */
Test(gemm, packed_b_matches_sgemm_bit_for_bit)
{
    static const struct { int64_t M, N, K; bool trans_a, trans_b; } shapes[] = {
        {32, 1024, 256, false, false}, {32, 256, 1024, false, true}, {5, 100, 300, true, false},
        {64, 100, 37, false, true}, {200, 64, 300, true, true}};
    rng_seed(21);
    for (int threads = 1; threads <= 2; threads++) {
        cr_assert_eq(nb_set_num_threads(threads), 0);
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            int64_t M = shapes[c].M, N = shapes[c].N, K = shapes[c].K;
            bool ta = shapes[c].trans_a, tb = shapes[c].trans_b;
            int64_t lda = leading(ta, M, K), ldb = leading(tb, K, N), ldc = N + PAD;
            float *B = random_matrix(stored_rows(tb, K, N), ldb);
            float *panels = malloc(sizeof(float) * nb_sgemm_packed_b_floats(false, M, N, K));
            cr_assert_not_null(panels);
            nb_sgemm_packed_b packed;
            nb_sgemm_pack_b_once(&packed, false, M, tb, N, K, B, ldb, panels);
            for (int use = 0; use < 3; use++) {
                float beta = random_beta(use), alpha = use == 2 ? 0.5f : 1.0f;
                float *A = random_matrix(stored_rows(ta, M, K), lda);
                float *C = random_matrix(M, ldc), *expected = malloc(sizeof(float) * (size_t)(M * ldc));
                memcpy(expected, C, sizeof(float) * (size_t)(M * ldc));
                nb_sgemm_packed(&packed, ta, M, alpha, A, lda, beta, C, ldc);
                nb_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, expected, ldc);
                cr_assert_eq(memcmp(C, expected, sizeof(float) * (size_t)(M * ldc)), 0,
                             "M %lld N %lld K %lld ta %d tb %d, %d threads, use %d", (long long)M,
                             (long long)N, (long long)K, ta, tb, threads, use);
                free(A);
                free(C);
                free(expected);
            }
            free(panels);
            free(B);
        }
    }
}
