/* scaled_dot_product_attention: values worked out by hand, the float32
 * key-tile kernel against the float64 reference at sizes that leave
 * partial tiles and blocks, and errors. */
#include <criterion/criterion.h>
#include <math.h>

#include "helpers.h"
#include "nabla.h"

/* Equal keys give equal scores, so each output row is the mean of v's
 * rows: v = [[1,2],[3,4]] -> [2,3]. With is_causal, query 0 sees key 0
 * only: its row is v[0]. The gradient of sum(y) reaches v as 1/2 per row
 * (and the causal query 0 adds 1 to v[0]). */
Test(attention, by_hand)
{
    const nb_dtype dtypes[] = {NB_FLOAT32, NB_FLOAT64};
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *q = test_param(dtypes[d], 2, (int64_t[]){2, 1}, (double[]){0.3, -0.7});
        nb_tensor *k = test_param(dtypes[d], 2, (int64_t[]){2, 1}, (double[]){0.5, 0.5});
        nb_tensor *v = test_param(dtypes[d], 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
        nb_tensor *y = nb_scaled_dot_product_attention(tape, q, k, v, NULL, false);
        assert_values(y, (double[]){2, 3, 2, 3}, 4, 1e-6);
        nb_tensor *c = nb_scaled_dot_product_attention(tape, q, k, v, NULL, true);
        assert_values(c, (double[]){1, 2, 2, 3}, 4, 1e-6);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_add(tape, y, c)), NULL), NB_OK);
        assert_values(v->grad, (double[]){2.5, 2.5, 1.5, 1.5}, 4, 1e-6);
        /* A -inf mask entry hides a key: query 1 then sees key 0 only. */
        nb_tensor *mask = test_tensor(tape, dtypes[d], 2, (int64_t[]){2, 2},
                                      (double[]){0, 0, 0, -INFINITY}, false);
        assert_values(nb_scaled_dot_product_attention(tape, q, k, v, mask, false),
                      (double[]){2, 3, 1, 2}, 4, 1e-6);
        cr_assert_null(nb_scaled_dot_product_attention(tape, q, v, v, NULL, false));
        assert_tape_error(tape, "scaled_dot_product_attention: q [2,1], k [2,2], v [2,2]: expected "
                                "[..., T, D], [..., S, D], [..., S, Dv] with equal leading dims");
        nb_tape_free(tape);
        nb_tensor_free(q), nb_tensor_free(k), nb_tensor_free(v);
    }
}

static nb_tensor *uniform(nb_dtype dtype, int ndim, const int64_t *shape, nb_rng *rng)
{
    nb_tensor *t = nb_tensor_uniform(NB_FLOAT64, ndim, shape, -1.5, 1.5, rng);
    nb_tensor *out = nb_tensor_new(dtype, ndim, shape);
    nb_tensor_copy(out, t);
    nb_tensor_free(t);
    nb_tensor_set_requires_grad(out, true);
    return out;
}

/* 70 queries in blocks of 32, 130 keys in tiles of 64 (two partial), D 33
 * and Dv 17 (vector tails), a [70,130] mask, causal and not. */
static void compare(bool causal, int threads)
{
    nb_set_num_threads(threads);
    const int64_t qs[3] = {2, 70, 33}, ks[3] = {2, 130, 33}, vs[3] = {2, 130, 17}, ms[2] = {70, 130};
    nb_tensor *in[2][4];
    for (int d = 0; d < 2; d++) {
        nb_rng rng;
        nb_rng_seed(&rng, 11);
        nb_dtype dtype = d ? NB_FLOAT64 : NB_FLOAT32;
        in[d][0] = uniform(dtype, 3, qs, &rng);
        in[d][1] = uniform(dtype, 3, ks, &rng);
        in[d][2] = uniform(dtype, 3, vs, &rng);
        in[d][3] = uniform(dtype, 2, ms, &rng);
    }
    nb_tape *tape = nb_tape_new();
    nb_tensor *y[2];
    for (int d = 0; d < 2; d++) {
        y[d] = nb_scaled_dot_product_attention(tape, in[d][0], in[d][1], in[d][2], in[d][3], causal);
        cr_assert_not_null(y[d], "%s", nb_tape_error(tape));
        nb_tensor *w = nb_tape_tensor(tape, y[d]->dtype, y[d]->ndim, y[d]->shape, NULL);
        for (int64_t i = 0; i < w->numel; i++) nb_tensor_set(w, i, sin((double)i));
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y[d], w)), NULL), NB_OK);
    }
    for (int64_t i = 0; i < y[0]->numel; i++)
        cr_assert(fabs(nb_tensor_get(y[0], i) - nb_tensor_get(y[1], i)) < 1e-5, "y %lld", (long long)i);
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < in[1][k]->numel; i++) {
            double want = nb_tensor_get(in[1][k]->grad, i), got = nb_tensor_get(in[0][k]->grad, i);
            cr_assert(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "input %d element %lld: %g vs %g",
                      k, (long long)i, got, want);
        }
    nb_tape_free(tape);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 4; k++) nb_tensor_free(in[d][k]);
}

/* Every CPU level's version of the tile kernels this machine runs. */
Test(attention, float32_tiles_match_the_reference)
{
    const char *levels[] = {"portable", "avx2", "avx512"};
    for (int level = 0; level < 3; level++) {
        if (nb_cpu_force_level(levels[level]) != NB_OK) continue;   /* above this CPU */
        for (int threads = 1; threads <= 2; threads++) {
            compare(false, threads);
            compare(true, threads);
        }
    }
    nb_cpu_force_level(NULL);
}
