/* Shape and indexing ops: values and gradients worked out by hand, in
 * float32 and float64, and the errors they give. */
#include <criterion/criterion.h>

#include "helpers.h"
#include "nabla.h"

static const nb_dtype DTYPES[] = {NB_FLOAT32, NB_FLOAT64};

/* x = [[0,1,2,3],[4,5,6,7]]: narrow(1, 1, 2) = [[1,2],[5,6]]; select(1,
 * -1) = [3,7]; slice(1, 0, 100, 3) = [[0,3],[4,7]]. Each backward of a
 * sum puts 1 on the chosen elements and 0 elsewhere; three consumers add. */
Test(shape_index, narrow_select_slice)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_param(DTYPES[d], 2, (int64_t[]){2, 4}, (double[]){0, 1, 2, 3, 4, 5, 6, 7});
        nb_tensor *a = nb_narrow(tape, x, 1, 1, 2);
        nb_tensor *b = nb_select(tape, x, 1, -1);
        nb_tensor *c = nb_slice(tape, x, 1, 0, 100, 3);
        assert_values(a, (double[]){1, 2, 5, 6}, 4, 0);
        assert_values(b, (double[]){3, 7}, 2, 0);
        cr_assert_eq(b->ndim, 1);
        assert_values(c, (double[]){0, 3, 4, 7}, 4, 0);
        nb_tensor *total = nb_add(tape, nb_add(tape, nb_sum(tape, a), nb_sum(tape, b)), nb_sum(tape, c));
        cr_assert_eq(nb_backward(tape, total, NULL), NB_OK);
        assert_values(x->grad, (double[]){1, 1, 1, 2, 1, 1, 1, 2}, 8, 0);
        nb_tape_free(tape);
        nb_tensor_free(x);
    }
}

/* [5] split in 2s: [0,1], [2,3], [4]; chunk(3) of [5]: pieces of 2. */
Test(shape_index, split_and_chunk)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_param(NB_FLOAT64, 1, (int64_t[]){5}, (double[]){0, 1, 2, 3, 4});
    nb_tensor *out[4];
    cr_assert_eq(nb_split(tape, x, 2, 0, 4, out), 3);
    assert_values(out[2], (double[]){4}, 1, 0);
    cr_assert_eq(nb_chunk(tape, x, 3, 0, out), 3);
    assert_values(out[1], (double[]){2, 3}, 2, 0);
    cr_assert_eq(nb_split(tape, x, 1, 0, 4, out), NB_ERR_INVALID);
    assert_tape_error(tape, "split: dim 0 of size 5 in pieces of 1 makes 5 tensors; out holds 4");
    nb_tape_free(tape);
    nb_tensor_free(x);
}

/* permute (2,0,1) of x [2,1,3]: y [3,2,1] with y[k,i,0] = x[i,0,k];
 * expand [2,1] to [2,3] and repeat (1,2) of [2,1]; the gradients of a sum
 * count the copies: 3 and 2. */
Test(shape_index, permute_expand_repeat)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_param(DTYPES[d], 3, (int64_t[]){2, 1, 3}, (double[]){1, 2, 3, 4, 5, 6});
        nb_tensor *y = nb_permute(tape, x, 3, (int[]){2, 0, 1});
        cr_assert_eq(y->shape[0], 3);
        assert_values(y, (double[]){1, 4, 2, 5, 3, 6}, 6, 0);
        nb_tensor *col = test_param(DTYPES[d], 2, (int64_t[]){2, 1}, (double[]){7, 8});
        nb_tensor *e = nb_expand(tape, col, 2, (int64_t[]){-1, 3});
        assert_values(e, (double[]){7, 7, 7, 8, 8, 8}, 6, 0);
        nb_tensor *r = nb_repeat(tape, col, 2, (int64_t[]){1, 2});
        assert_values(r, (double[]){7, 7, 8, 8}, 4, 0);
        cr_assert_eq(nb_backward(tape, nb_add(tape, nb_sum(tape, e), nb_sum(tape, r)), NULL), NB_OK);
        assert_values(col->grad, (double[]){5, 5}, 2, 0);
        cr_assert_null(nb_expand(tape, x, 3, (int64_t[]){2, 4, 4}));
        assert_tape_error(tape, "expand: [2,1,3]: dim 2 of size 3 cannot be expanded to 4");
        nb_tape_free(tape);
        nb_tensor_free(x);
        nb_tensor_free(col);
    }
}

/* pad (1, 0, 0, 1) of [[1,2],[3,4]] with 9: [[9,1,2],[9,3,4],[9,9,9]];
 * stack of two [2] at dim 1: [[1,3],[2,4]]; squeeze/unsqueeze shapes. */
Test(shape_index, pad_stack_squeeze)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_param(NB_FLOAT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
    nb_tensor *p = nb_pad(tape, x, 4, (int[]){1, 0, 0, 1}, 9.0);
    assert_values(p, (double[]){9, 1, 2, 9, 3, 4, 9, 9, 9}, 9, 0);
    nb_tensor *a = nb_select(tape, x, 1, 0), *b = nb_select(tape, x, 1, 1);
    nb_tensor *s = nb_stack(tape, 2, (nb_tensor *[]){a, b}, 1);
    assert_values(s, (double[]){1, 2, 3, 4}, 4, 0);
    nb_tensor *u = nb_unsqueeze(tape, x, -1);
    cr_assert(u->ndim == 3 && u->shape[2] == 1);
    cr_assert_eq(nb_squeeze(tape, u, 0)->ndim, 3);   /* size 2: unchanged */
    cr_assert_eq(nb_squeeze_all(tape, u)->ndim, 2);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, p), NULL), NB_OK);
    assert_values(x->grad, (double[]){1, 1, 1, 1}, 4, 0);
    cr_assert_null(nb_pad(tape, x, 3, (int[]){1, 1, 1}, 0.0));
    assert_tape_error(tape, "pad: [2,2]: 3 pad amounts; expected 2 (left, right) or 4 (left, right, top, bottom)");
    nb_tape_free(tape);
    nb_tensor_free(x);
}

/* x = [[1,2],[3,4],[5,6]]: index_select rows (2,0,2) = [[5,6],[1,2],[5,6]]
 * (row 2 gets gradient 2); gather dim 1 with [[1],[0],[1]] = [2,3,6];
 * scatter_add of ones at those places adds 1 to 2, 3 and 6. */
Test(shape_index, index_select_gather_scatter_add)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_param(DTYPES[d], 2, (int64_t[]){3, 2}, (double[]){1, 2, 3, 4, 5, 6});
        nb_tensor *rows = nb_tape_labels(tape, 3, (int32_t[]){2, 0, 2});
        nb_tensor *y = nb_index_select(tape, x, 0, rows);
        assert_values(y, (double[]){5, 6, 1, 2, 5, 6}, 6, 0);
        nb_tensor *where = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){3, 1}, (int32_t[]){1, 0, 1});
        assert_values(nb_gather(tape, x, 1, where), (double[]){2, 3, 6}, 3, 0);
        nb_tensor *ones = test_param(DTYPES[d], 2, (int64_t[]){3, 1}, (double[]){1, 1, 1});
        nb_tensor *z = nb_scatter_add(tape, x, 1, where, ones);
        assert_values(z, (double[]){1, 3, 4, 4, 5, 7}, 6, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){1, 1, 0, 0, 2, 2}, 6, 0);
        nb_tensor *bad = nb_tape_labels(tape, 1, (int32_t[]){3});
        cr_assert_null(nb_index_select(tape, x, 0, bad));
        assert_tape_error(tape, "index_select: index 3 at position 0 of index [1] is out of range [0, 3)");
        nb_tape_free(tape);
        nb_tensor_free(x);
        nb_tensor_free(ones);
    }
}

/* weight [3,2] = [[1,2],[3,4],[5,6]], input [2,2] = [[2,0],[1,2]] with
 * padding_idx 2: y rows 5 6, 1 2, 3 4, 5 6; the gradient of a sum reaches
 * rows 0 and 1 once each and row 2 (padding) not at all. */
Test(shape_index, embedding_padding_idx)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *w = test_param(DTYPES[d], 2, (int64_t[]){3, 2}, (double[]){1, 2, 3, 4, 5, 6});
        nb_tensor *input = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){2, 2}, (int32_t[]){2, 0, 1, 2});
        const nb_embedding_params p = {2, true};
        nb_tensor *y = nb_embedding(tape, input, w, &p);
        cr_assert(y->ndim == 3 && y->shape[2] == 2);
        assert_values(y, (double[]){5, 6, 1, 2, 3, 4, 5, 6}, 8, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(w->grad, (double[]){1, 1, 1, 1, 0, 0}, 6, 0);
        cr_assert_null(nb_embedding(tape, input, y, NULL));
        assert_tape_error(tape, "embedding: weight [2,2,2] must be 2-D [V,D]");
        nb_tape_free(tape);
        nb_tensor_free(w);
    }
}
