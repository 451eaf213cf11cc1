/* matmul and linear: forward and backward worked out by hand, float32
 * against float64 on odd sizes (both against an independent double loop),
 * and every validation error with its message. */
#include <stdlib.h>

#include "helpers.h"

static const int64_t SHAPE_2x3[2] = {2, 3}, SHAPE_3x2[2] = {3, 2}, SHAPE_2x2[2] = {2, 2};

/* ---- matmul ----------------------------------------------------------------- */

/* A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]:
 * AB = [[1*7+2*9+3*11, 1*8+2*10+3*12], [4*7+5*9+6*11, 4*8+5*10+6*12]]
 *    = [[58, 64], [139, 154]]. */
static void check_matmul_2x3_by_3x2(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, dtype, 2, SHAPE_2x3, (double[]){1, 2, 3, 4, 5, 6}, true);
    nb_tensor *b = test_tensor(tape, dtype, 2, SHAPE_3x2, (double[]){7, 8, 9, 10, 11, 12}, true);
    nb_tensor *y = nb_matmul(tape, a, b);
    assert_values(y, (double[]){58, 64, 139, 154}, 4, 0);
    cr_assert_eq(y->ndim, 2);
    cr_assert(y->shape[0] == 2 && y->shape[1] == 2);
    /* Seed dY = [[1,2],[3,4]].
     * dA = dY B^T: row 0 = [1*7+2*8, 1*9+2*10, 1*11+2*12] = [23, 29, 35],
     *              row 1 = [3*7+4*8, 3*9+4*10, 3*11+4*12] = [53, 67, 81].
     * dB = A^T dY: row k = [A[0,k]*1 + A[1,k]*3, A[0,k]*2 + A[1,k]*4]
     *            = [13, 18], [17, 24], [21, 30]. */
    nb_tensor *seed = test_tensor(tape, dtype, 2, SHAPE_2x2, (double[]){1, 2, 3, 4}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(a->grad, (double[]){23, 29, 35, 53, 67, 81}, 6, 0);
    assert_values(b->grad, (double[]){13, 18, 17, 24, 21, 30}, 6, 0);
    nb_tape_free(tape);
}

Test(matmul, forward_backward_2x3_by_3x2_float32) { check_matmul_2x3_by_3x2(NB_FLOAT32); }
Test(matmul, forward_backward_2x3_by_3x2_float64) { check_matmul_2x3_by_3x2(NB_FLOAT64); }

Test(matmul, parameter_gradient_accumulates_over_backward_calls)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *b = test_param(NB_FLOAT64, 2, SHAPE_3x2, (double[]){7, 8, 9, 10, 11, 12});
    for (int step = 0; step < 2; step++) {
        nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, (double[]){1, 2, 3, 4, 5, 6}, false);
        nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x2, (double[]){1, 2, 3, 4}, false);
        cr_assert_eq(nb_backward(tape, nb_matmul(tape, a, b), seed), NB_OK, "%s", nb_last_error());
        cr_assert_null(a->grad, "a does not require grad");
        nb_tape_reset(tape);
    }
    /* Twice the dB of the 2x3 by 3x2 case above. */
    assert_values(b->grad, (double[]){26, 36, 34, 48, 42, 60}, 6, 0);
    nb_tensor_free(b);
    nb_tape_free(tape);
}

/* [2,1,2] x [2,2,1]: batch 0 = [1,2].[3,4] = 11, batch 1 = [5,6].[7,8] = 83. */
Test(matmul, batched_3d)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sa[3] = {2, 1, 2}, sb[3] = {2, 2, 1};
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 3, sa, (double[]){1, 2, 5, 6}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT32, 3, sb, (double[]){3, 4, 7, 8}, true);
    nb_tensor *y = nb_matmul(tape, a, b);
    assert_values(y, (double[]){11, 83}, 2, 0);
    cr_assert(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 1 && y->shape[2] == 1);
    /* Seed [1, 10]: each batch's dA = seed_b * B_b^T, dB = A_b^T * seed_b. */
    const int64_t sy[3] = {2, 1, 1};
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 3, sy, (double[]){1, 10}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(a->grad, (double[]){3, 4, 70, 80}, 4, 0);
    assert_values(b->grad, (double[]){1, 2, 50, 60}, 4, 0);
    nb_tape_free(tape);
}

/* [2,2,2] x [2,1], b shared: every row r of A gives r.[1,-1] = r0 - r1 = -1.
 * With a seed of ones, db = sum over all 4 rows of A = [1+3+5+7, 2+4+6+8]
 * = [16, 20], and every row of dA is b^T = [1, -1]. */
Test(matmul, shared_b_gradient_sums_over_batch)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sa[3] = {2, 2, 2}, sb[2] = {2, 1}, sy[3] = {2, 2, 1};
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 3, sa, (double[]){1, 2, 3, 4, 5, 6, 7, 8}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 2, sb, (double[]){1, -1}, true);
    nb_tensor *y = nb_matmul(tape, a, b);
    assert_values(y, (double[]){-1, -1, -1, -1}, 4, 0);
    cr_assert(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 2 && y->shape[2] == 1);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 3, sy, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(b->grad, (double[]){16, 20}, 2, 0);
    assert_values(a->grad, (double[]){1, -1, 1, -1, 1, -1, 1, -1}, 8, 0);
    nb_tape_free(tape);
}

/* An arena float32/float64 pair holding the same pseudo-random values in
 * [-1, 1) (multiples of 2^-15, so float32 holds them exactly). */
static void random_pair(nb_tape *tape, int ndim, const int64_t *shape, unsigned *state,
                        nb_tensor **t32, nb_tensor **t64)
{
    *t32 = nb_tape_tensor(tape, NB_FLOAT32, ndim, shape, NULL);
    *t64 = nb_tape_tensor(tape, NB_FLOAT64, ndim, shape, NULL);
    cr_assert(*t32 && *t64, "%s", nb_last_error());
    for (int64_t i = 0; i < (*t64)->numel; i++) {
        *state = *state * 1103515245u + 12345u;
        double v = (double)((*state >> 8) & 0xFFFF) / 32768.0 - 1.0;
        nb_tensor_set(*t64, i, v);
        nb_tensor_set(*t32, i, (float)v); /* exactly representable: 16-bit fraction */
    }
    nb_tensor_set_requires_grad(*t32, true);
    nb_tensor_set_requires_grad(*t64, true);
}

/* a [batches,M,K] x b ([batches,K,N] or shared [K,N]) by a plain double loop. */
static double naive_element(const nb_tensor *a, const nb_tensor *b, int64_t batch, int64_t m,
                            int64_t n)
{
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    int64_t b_offset = b->ndim == 3 ? batch * K * N : 0;
    double sum = 0.0;
    for (int64_t k = 0; k < K; k++)
        sum += nb_tensor_get(a, batch * M * K + m * K + k) * nb_tensor_get(b, b_offset + k * N + n);
    return sum;
}

static void check_odd_sizes(int a_rank, const int64_t *sa, int b_rank, const int64_t *sb)
{
    nb_tape *tape = nb_tape_new();
    unsigned state = 7;
    nb_tensor *a32, *a64, *b32, *b64;
    random_pair(tape, a_rank, sa, &state, &a32, &a64);
    random_pair(tape, b_rank, sb, &state, &b32, &b64);
    nb_tensor *y32 = nb_matmul(tape, a32, b32), *y64 = nb_matmul(tape, a64, b64);
    cr_assert(y32 && y64, "%s", nb_tape_error(tape));
    int64_t batches = a_rank == 3 ? sa[0] : 1, M = sa[a_rank - 2], N = sb[b_rank - 1];
    for (int64_t batch = 0; batch < batches; batch++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                int64_t i = (batch * M + m) * N + n;
                double expected = naive_element(a64, b64, batch, m, n);
                cr_assert(fabs(nb_tensor_get(y64, i) - expected) <= 1e-12, "f64 element %lld",
                          (long long)i);
                /* float32 rounding grows with the K-term sum. */
                double tolerance = 1e-6 * (double)(sa[a_rank - 1] + 1);
                cr_assert(fabs(nb_tensor_get(y32, i) - expected) <= tolerance, "f32 element %lld",
                          (long long)i);
            }
    /* Backward with a seed of ones in both dtypes must agree too. */
    nb_tensor *seed32 = nb_tape_tensor(tape, NB_FLOAT32, y32->ndim, y32->shape, NULL);
    nb_tensor *seed64 = nb_tape_tensor(tape, NB_FLOAT64, y64->ndim, y64->shape, NULL);
    nb_tensor_fill(seed32, 1.0);
    nb_tensor_fill(seed64, 1.0);
    cr_assert_eq(nb_backward(tape, y32, seed32), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_backward(tape, y64, seed64), NB_OK, "%s", nb_last_error());
    for (int64_t i = 0; i < a64->numel; i++)
        cr_assert(fabs(nb_tensor_get(a32->grad, i) - nb_tensor_get(a64->grad, i)) <= 1e-4);
    for (int64_t i = 0; i < b64->numel; i++)
        cr_assert(fabs(nb_tensor_get(b32->grad, i) - nb_tensor_get(b64->grad, i)) <= 1e-4);
    nb_tape_free(tape);
}

Test(matmul, float32_agrees_with_float64_on_odd_sizes)
{
    check_odd_sizes(2, (int64_t[]){7, 17}, 2, (int64_t[]){17, 13});
    check_odd_sizes(2, (int64_t[]){1, 63}, 2, (int64_t[]){63, 1});
    check_odd_sizes(3, (int64_t[]){3, 5, 9}, 3, (int64_t[]){3, 9, 1});
    check_odd_sizes(3, (int64_t[]){3, 17, 7}, 2, (int64_t[]){7, 33});
}

Test(matmul, empty_inner_dim_gives_zeros)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 0}, NULL);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){0, 3}, NULL);
    assert_values(nb_matmul(tape, a, b), (double[]){0, 0, 0, 0, 0, 0}, 6, 0);
    nb_tape_free(tape);
}

/* Runs nb_matmul on tensors of the given shapes and checks the tape error
 * equals `expected` exactly, and that the tape is then sticky. */
static void expect_matmul_error(int a_rank, const int64_t *sa, int b_rank, const int64_t *sb,
                                const char *expected)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, a_rank, sa, NULL);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, b_rank, sb, NULL);
    cr_assert_null(nb_matmul(tape, a, b));
    assert_tape_error(tape, expected);
    nb_tensor *ok = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x2, NULL);
    cr_assert_null(nb_matmul(tape, ok, ok), "later ops on a failed tape return NULL");
    assert_tape_error(tape, expected);
    nb_tape_free(tape);
}

Test(matmul, inner_dim_mismatch_message_is_exact)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){3, 4}, NULL);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){5, 6}, NULL);
    cr_assert_null(nb_matmul(tape, a, b));
    cr_assert_str_eq(nb_tape_error(tape), "matmul: [3,4] x [5,6]: inner dims 4 != 5");
    cr_assert_str_eq(nb_last_error(), "matmul: [3,4] x [5,6]: inner dims 4 != 5");
    nb_tape_free(tape);
    expect_matmul_error(3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){3, 4},
                        "matmul: [2,3,4] x [3,4]: inner dims 4 != 3");
}

Test(matmul, unsupported_ranks_and_batch_mismatch)
{
    expect_matmul_error(1, (int64_t[]){3}, 2, (int64_t[]){3, 2},
                        "matmul: [3] x [3,2]: unsupported ranks 1-D x 2-D");
    expect_matmul_error(2, (int64_t[]){2, 3}, 3, (int64_t[]){4, 3, 2},
                        "matmul: [2,3] x [4,3,2]: unsupported ranks 2-D x 3-D");
    expect_matmul_error(4, (int64_t[]){1, 2, 2, 3}, 2, (int64_t[]){3, 2},
                        "matmul: [1,2,2,3] x [3,2]: unsupported ranks 4-D x 2-D");
    expect_matmul_error(3, (int64_t[]){2, 2, 3}, 3, (int64_t[]){3, 3, 2},
                        "matmul: [2,2,3] x [3,3,2]: batch dims 2 != 3");
}

Test(matmul, dtype_errors_and_null_input)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a32 = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x2, NULL);
    nb_tensor *a64 = nb_tape_tensor(tape, NB_FLOAT64, 2, SHAPE_2x2, NULL);
    cr_assert_null(nb_matmul(tape, a32, a64));
    assert_tape_error(tape, "matmul: dtype mix: input 1 is float64 but input 0 is float32");
    nb_tape_reset(tape);

    nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 2}, NULL);
    cr_assert_null(nb_matmul(tape, b, labels));
    assert_tape_error(tape, "matmul: input 1 has dtype int32");
    nb_tape_reset(tape);

    b = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x2, NULL);
    cr_assert_null(nb_matmul(tape, NULL, b));
    assert_tape_error(tape, "matmul: input 0: tensor is NULL");
    nb_tape_free(tape);
}

/* ---- linear ------------------------------------------------------------------ */

/* x = [[1,2,3],[4,5,6]], W = [[1,0,-1],[2,1,0]], b = [0.5,-1]:
 * x W^T = [[1-3, 2+2], [4-6, 8+5]] = [[-2, 4], [-2, 13]];
 * plus b: [[-1.5, 3], [-1.5, 12]]. */
static const double LINEAR_X[6] = {1, 2, 3, 4, 5, 6}, LINEAR_W[6] = {1, 0, -1, 2, 1, 0};
static const double LINEAR_B[2] = {0.5, -1};

static void check_linear_by_hand(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(dtype, 2, SHAPE_2x3, LINEAR_W);
    nb_tensor *b = test_param(dtype, 1, (int64_t[]){2}, LINEAR_B);
    nb_tensor *x = test_tensor(tape, dtype, 2, SHAPE_2x3, LINEAR_X, true);
    nb_tensor *y = nb_linear(tape, x, w, b);
    assert_values(y, (double[]){-1.5, 3, -1.5, 12}, 4, 0);
    cr_assert(y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 2);
    /* Seed dY = [[1,2],[3,4]]:
     * dx = dY W:   [1*[1,0,-1] + 2*[2,1,0], 3*[1,0,-1] + 4*[2,1,0]]
     *            = [[5,2,-1], [11,4,-3]]
     * dW = dY^T x: [1*[1,2,3] + 3*[4,5,6], 2*[1,2,3] + 4*[4,5,6]]
     *            = [[13,17,21], [18,24,30]]
     * db = column sums of dY = [4, 6]. */
    nb_tensor *seed = test_tensor(tape, dtype, 2, SHAPE_2x2, (double[]){1, 2, 3, 4}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){5, 2, -1, 11, 4, -3}, 6, 0);
    assert_values(w->grad, (double[]){13, 17, 21, 18, 24, 30}, 6, 0);
    assert_values(b->grad, (double[]){4, 6}, 2, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
    nb_tensor_free(b);
}

Test(linear, forward_backward_by_hand_float32) { check_linear_by_hand(NB_FLOAT32); }
Test(linear, forward_backward_by_hand_float64) { check_linear_by_hand(NB_FLOAT64); }

Test(linear, without_bias_leading_dims_and_1d)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, LINEAR_W, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, LINEAR_B, false);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, LINEAR_X, false);
    assert_values(nb_linear(tape, x, w, NULL), (double[]){-2, 4, -2, 13}, 4, 0);

    /* [2,1,3]: the leading dims are kept, the values are those above. */
    nb_tensor *x3 = test_tensor(tape, NB_FLOAT64, 3, (int64_t[]){2, 1, 3}, LINEAR_X, false);
    nb_tensor *y3 = nb_linear(tape, x3, w, b);
    assert_values(y3, (double[]){-1.5, 3, -1.5, 12}, 4, 0);
    cr_assert(y3->ndim == 3 && y3->shape[0] == 2 && y3->shape[1] == 1 && y3->shape[2] == 2);
    /* Seed ones: dW = column sums of x = [[5,7,9],[5,7,9]]. */
    nb_tensor *seed = nb_tape_tensor(tape, NB_FLOAT64, 3, y3->shape, NULL);
    nb_tensor_fill(seed, 1.0);
    cr_assert_eq(nb_backward(tape, y3, seed), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){5, 7, 9, 5, 7, 9}, 6, 0);

    /* 1-D x [3] = the first row: y [2]. */
    nb_tensor *x1 = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, LINEAR_X, false);
    nb_tensor *y1 = nb_linear(tape, x1, w, b);
    assert_values(y1, (double[]){-1.5, 3}, 2, 0);
    cr_assert(y1->ndim == 1 && y1->shape[0] == 2);
    nb_tape_free(tape);
}

Test(linear, shape_errors_name_the_shapes)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *w = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){4, 5}, NULL);
    cr_assert_null(nb_linear(tape, x, w, NULL));
    assert_tape_error(tape, "linear: input [2,3] x weight [4,5]: in_features 3 != 5");
    cr_assert_null(nb_linear(tape, x, x, NULL), "sticky");
    assert_tape_error(tape, "in_features 3 != 5");
    nb_tape_reset(tape);

    x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *w3 = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){1, 2, 3}, NULL);
    cr_assert_null(nb_linear(tape, x, w3, NULL));
    assert_tape_error(tape, "linear: weight [1,2,3] must be 2-D [out,in]");
    nb_tape_reset(tape);

    x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    w = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *bias = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){3}, NULL);
    cr_assert_null(nb_linear(tape, x, w, bias));
    assert_tape_error(tape, "linear: bias [3] does not match weight [2,3] (expected [2])");
    nb_tape_reset(tape);

    nb_tensor *scalar = nb_tape_tensor(tape, NB_FLOAT32, 0, NULL, NULL);
    w = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_linear(tape, scalar, w, NULL));
    assert_tape_error(tape, "linear: input [] must have at least 1 dim");
    nb_tape_free(tape);
}

Test(linear, dtype_errors_and_null_input)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *w = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *b64 = nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, NULL);
    cr_assert_null(nb_linear(tape, x, w, b64));
    assert_tape_error(tape, "linear: dtype mix: input 2 is float64 but input 0 is float32");
    nb_tape_reset(tape);

    nb_tensor *labels = nb_tape_labels(tape, 3, (int32_t[]){0, 1, 2});
    w = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, NULL);
    cr_assert_null(nb_linear(tape, labels, w, NULL));
    assert_tape_error(tape, "linear: input 0 has dtype int32");
    nb_tape_reset(tape);

    x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_linear(tape, x, NULL, NULL));
    assert_tape_error(tape, "linear: input 1: tensor is NULL");
    nb_tape_free(tape);
}
