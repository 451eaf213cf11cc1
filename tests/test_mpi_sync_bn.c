/* nb_mpi_sync_batch_norm under `mpirun -np N`: rank r holds rows
 * [r B / N, (r+1) B / N) of a global batch of B (uneven for N = 2, 3), and
 * its outputs, running statistics and gradients (through nb_mpi_ddp with
 * weights local / global, and without a DDP) must equal nb_batch_norm on
 * the whole batch computed on each rank: bit for bit on one rank, to
 * rounding on more. Also a conv model converted with
 * nb_mpi_convert_sync_batch_norm, overlap on and off giving the same bits,
 * eval mode without communication, errors reaching every rank, and the
 * op's gradcheck on one rank. A plain program, as tests/test_mpi.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla.h"
#include "nabla/mpi.h"
#include "mpi_checks.h"

enum { B = 7, C = 3, H = 2, W = 3, INNER = H * W };

/* x[n,c,h,w]: channel c centred near 10 c with spread 0.5 + c, so the
 * statistics differ per channel and the mean dominates the values. */
static double x_at(int64_t i)
{
    int64_t c = i / INNER % C;
    return 10.0 * (double)c + (0.5 + (double)c) * sin(0.7 + 1.37 * (double)i);
}

static double coef_at(int64_t i) { return cos(0.3 + 0.91 * (double)i); }

static int rows_begin(int rank) { return B * rank / nb_mpi_world_size(); }

/* max |a - b| / max |b|: the difference relative to the tensor's scale */
static double difference(const nb_tensor *a, int64_t a_first, const nb_tensor *b, int64_t b_first, int64_t n,
                         double a_scale)
{
    double worst = 0.0, scale = 0.0;
    for (int64_t k = 0; k < n; k++) {
        double expected = nb_tensor_get(b, b_first + k);
        worst = fmax(worst, fabs(a_scale * nb_tensor_get(a, a_first + k) - expected));
        scale = fmax(scale, fabs(expected));
    }
    return scale > 0.0 ? worst / scale : worst;
}

/* Rows [begin, end) of a global [B, dims[0], dims[1], dims[2]] batch. */
static nb_tensor *rows_of(nb_dtype dtype, int begin, int end, const int64_t dims[3], double (*at)(int64_t),
                          bool requires_grad)
{
    int64_t row = dims[0] * dims[1] * dims[2];
    double data[B * 64];
    for (int64_t k = 0; k < (int64_t)(end - begin) * row; k++) data[k] = at(begin * row + k);
    nb_tensor *t = nb_tensor_from_data_as(dtype, 4, (int64_t[]){end - begin, dims[0], dims[1], dims[2]},
                                          NB_FLOAT64, data);
    nb_tensor_set_requires_grad(t, requires_grad);
    return t;
}

static nb_tensor *rows_tensor(nb_dtype dtype, int begin, int end, double (*at)(int64_t), bool requires_grad)
{
    return rows_of(dtype, begin, end, (const int64_t[]){C, H, W}, at, requires_grad);
}

static void set_affine(nb_module *bn)
{
    for (int c = 0; c < C; c++) {
        nb_tensor_set(nb_module_tensor(bn, "weight"), c, 0.5 + 0.25 * c);
        nb_tensor_set(nb_module_tensor(bn, "bias"), c, 0.1 * c - 0.2);
        nb_tensor_set(nb_module_tensor(bn, "running_var"), c, 1.0 + 0.5 * c);
    }
}

/* Two training steps of sum(y * coef) / divisor with rows [begin, end):
 * returns the last step's y (valid until the tape's next reset). */
static nb_tensor *train(nb_module *bn, nb_mpi_ddp *ddp, nb_tape *tape, nb_tensor *x, nb_tensor *coef,
                        double divisor)
{
    nb_tensor *y = NULL;
    for (int step = 0; step < 2; step++) {
        nb_tape_reset(tape);
        nb_module_zero_grad(bn);
        nb_tensor_zero_grad(x);
        y = nb_module_forward(bn, tape, x);
        nb_tensor *loss = nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, y, coef)), 1.0 / divisor);
        int status = ddp ? nb_mpi_ddp_backward(ddp, tape, loss) : nb_backward(tape, loss, NULL);
        CHECK(status == NB_OK, "%s", nb_last_error());
    }
    return y;
}

/* The layer on this rank's rows against BatchNorm2d on the whole batch.
 * With a DDP of weight n_r / B each rank's loss is its rows' mean, and
 * weight * x.grad is the whole batch's dx; without one (weight 1 / size)
 * each loss is divided by B and x.grad is it directly. Returns the largest
 * relative difference. */
static double check_layer(nb_dtype dtype, bool with_ddp)
{
    int size = nb_mpi_world_size(), rank = nb_mpi_rank();
    int begin = rows_begin(rank), end = rows_begin(rank + 1), n = end - begin;
    nb_module *sync = nb_mpi_sync_batch_norm2d(C), *plain = nb_nn_batch_norm2d(C);
    nb_module_to_dtype(sync, dtype);
    nb_module_to_dtype(plain, dtype);
    set_affine(sync);
    set_affine(plain);
    nb_mpi_ddp *ddp = with_ddp ? nb_mpi_ddp_new(sync, NULL) : NULL;
    double weight = with_ddp ? (double)n / B : 1.0 / size;
    if (ddp) CHECK(nb_mpi_ddp_set_weight(ddp, weight) == NB_OK, "%s", nb_last_error());
    nb_tensor *x = rows_tensor(dtype, begin, end, x_at, true), *coef = rows_tensor(dtype, begin, end, coef_at, false);
    nb_tensor *whole = rows_tensor(dtype, 0, B, x_at, true), *whole_coef = rows_tensor(dtype, 0, B, coef_at, false);
    nb_tape *tape = nb_tape_new(), *reference = nb_tape_new();
    nb_tensor *y = train(sync, ddp, tape, x, coef, with_ddp ? n : B);
    nb_tensor *expected = train(plain, NULL, reference, whole, whole_coef, B);
    double d[6] = {0};
    int64_t first = (int64_t)begin * C * INNER, count = (int64_t)n * C * INNER;
    if (y && expected && x->grad && whole->grad) {
        d[0] = difference(y, 0, expected, first, count, 1.0);
        d[1] = difference(x->grad, 0, whole->grad, first, count, with_ddp ? weight : 1.0);
    } else {
        CHECK(false, "no output or no gradient: %s", nb_last_error());
    }
    /* Running statistics, and dgamma, dbeta: without a DDP each rank holds
     * its own rows' share, summed here. */
    static const char *names[4] = {"running_mean", "running_var", "weight", "bias"};
    for (int i = 0; i < 4; i++) {
        nb_tensor *a = nb_module_tensor(sync, names[i]), *b = nb_module_tensor(plain, names[i]);
        if (i >= 2 && !with_ddp) nb_mpi_allreduce_sum(a->grad->data, dtype, C);
        d[2 + i] = i < 2 ? difference(a, 0, b, 0, C, 1.0) : difference(a->grad, 0, b->grad, 0, C, 1.0);
    }
    double worst = 0.0, tolerance = dtype == NB_FLOAT64 ? 1e-12 : 1e-5;
    for (int i = 0; i < 6; i++) worst = fmax(worst, d[i]);
    CHECK(worst <= tolerance, "%s layer (ddp %d): y %.3g dx %.3g running_mean %.3g running_var %.3g dgamma "
          "%.3g dbeta %.3g", nb_dtype_name(dtype), with_ddp, d[0], d[1], d[2], d[3], d[4], d[5]);
    if (size == 1) CHECK(worst == 0.0, "%s layer on one rank differs from batch_norm by %.3g", nb_dtype_name(dtype),
                         worst);
    /* Eval is batch_norm on this layer's running statistics, without any
     * exchange: rank r runs it r + 1 times, which would hang an exchange. */
    nb_module_train(sync, false);
    nb_batch_norm_params eval = {nb_module_tensor(sync, "running_mean"), nb_module_tensor(sync, "running_var"),
                                 0.1, 1e-5, false};
    for (int k = 0; k <= rank; k++) {
        nb_tape_reset(tape);
        nb_tensor *e = nb_module_forward(sync, tape, x);
        nb_tensor *f = nb_batch_norm(tape, x, nb_module_tensor(sync, "weight"), nb_module_tensor(sync, "bias"), &eval);
        CHECK(e && f && memcmp(e->data, f->data, (size_t)count * nb_dtype_size(dtype)) == 0,
              "%s eval differs from batch_norm", nb_dtype_name(dtype));
    }
    nb_mpi_ddp_free(ddp);
    nb_tape_free(tape);
    nb_tape_free(reference);
    nb_tensor_free(x);
    nb_tensor_free(coef);
    nb_tensor_free(whole);
    nb_tensor_free(whole_coef);
    nb_module_free(sync);
    nb_module_free(plain);
    return worst;
}

/* ---- a conv model converted to SyncBatchNorm ---------------------------- */
enum { MODEL_IN = 2, SIDE = 4 };
static const int64_t MODEL_DIMS[3] = {MODEL_IN, SIDE, SIDE};

static double model_x_at(int64_t i) { return sin(0.5 + 0.83 * (double)i) + 0.3 * cos(2.1 * (double)i); }

static nb_module *make_model(nb_dtype dtype, bool sync)
{
    nb_manual_seed(7);
    nb_conv2d_params same = {{1, 1}, {1, 1}, {1, 1}, 1};
    /* No conv bias before a batch norm: its gradient is zero, only rounding. */
    nb_module *layers[5] = {nb_nn_conv2d(MODEL_IN, 3, 3, 3, &same, false), nb_nn_batch_norm2d(3), nb_nn_tanh(),
                            nb_nn_conv2d(3, MODEL_IN, 3, 3, &same, false), nb_nn_batch_norm2d(MODEL_IN)};
    nb_module *m = nb_nn_sequential(5, layers);
    nb_module_to_dtype(m, dtype);
    if (sync) CHECK(nb_mpi_convert_sync_batch_norm(m) == 2, "convert: %s", nb_last_error());
    return m;
}

/* Two steps of sum(model(x) * coef) / divisor; every gradient and every
 * state tensor (running statistics) flattened into out, tensor i ending
 * at ends[i]. Returns the number of tensors. */
static int run_model(nb_module *m, nb_mpi_ddp *ddp, int begin, int end, double divisor, double *out, int *ends)
{
    nb_dtype dtype = nb_module_tensor(nb_module_child(m, "0"), "weight")->dtype;
    nb_tensor *x = rows_of(dtype, begin, end, MODEL_DIMS, model_x_at, false);
    nb_tensor *coef = rows_of(dtype, begin, end, MODEL_DIMS, coef_at, false);
    nb_tape *tape = nb_tape_new();
    for (int step = 0; step < 2; step++) {
        nb_tape_reset(tape);
        nb_module_zero_grad(m);
        nb_tensor *y = nb_module_forward(m, tape, x);
        nb_tensor *loss = nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, y, coef)), 1.0 / divisor);
        int status = ddp ? nb_mpi_ddp_backward(ddp, tape, loss) : nb_backward(tape, loss, NULL);
        CHECK(status == NB_OK, "model step %d: %s", step, nb_last_error());
    }
    nb_named_tensor state[16];
    int n = nb_module_state(m, state, 16), used = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < state[i].tensor->numel; k++) {
            const nb_tensor *t = state[i].tensor->requires_grad ? state[i].tensor->grad : state[i].tensor;
            out[used++] = t ? nb_tensor_get(t, k) : NAN;
            ends[i] = used;
        }
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(coef);
    return n;
}

/* The converted model through DDP (weights n_r / B, small buckets, so the
 * sync batch norms' exchanges queue between buckets) with overlap on and
 * off: the same bits, and the whole batch's gradients and statistics. */
static double check_model(nb_dtype dtype)
{
    int rank = nb_mpi_rank(), begin = rows_begin(rank), end = rows_begin(rank + 1);
    double got[2][256], expected[256];
    int ends[16], n = 0;
    for (int overlap = 0; overlap < 2; overlap++) {
        nb_module *m = make_model(dtype, true);
        nb_mpi_ddp_options o = nb_mpi_ddp_default_options();
        o.first_bucket_bytes = o.bucket_bytes = 64;
        o.overlap = overlap;
        nb_mpi_ddp *ddp = nb_mpi_ddp_new(m, &o);
        CHECK(ddp && nb_mpi_ddp_set_weight(ddp, (double)(end - begin) / B) == NB_OK, "%s", nb_last_error());
        n = run_model(m, ddp, begin, end, end - begin, got[overlap], ends);
        nb_mpi_ddp_free(ddp);
        nb_module_free(m);
    }
    CHECK(memcmp(got[0], got[1], (size_t)ends[n - 1] * sizeof got[0][0]) == 0, "%s model: overlap changes the bits",
          nb_dtype_name(dtype));
    nb_module *whole = make_model(dtype, false);
    int expected_ends[16];
    CHECK(run_model(whole, NULL, 0, B, B, expected, expected_ends) == n && expected_ends[n - 1] == ends[n - 1],
          "different state sizes");
    nb_module_free(whole);
    /* Per tensor: max |got - expected| / max |expected|. */
    double worst = 0.0;
    for (int i = 0, first = 0; i < n; first = ends[i++]) {
        double difference = 0.0, scale = 0.0;
        for (int k = first; k < ends[i]; k++) {
            difference = isnan(got[1][k]) ? INFINITY : fmax(difference, fabs(got[1][k] - expected[k]));
            scale = fmax(scale, fabs(expected[k]));
        }
        worst = fmax(worst, difference / scale);
    }
    CHECK(worst <= (dtype == NB_FLOAT64 ? 1e-12 : 1e-5), "%s model differs from the whole batch by %.3g",
          nb_dtype_name(dtype), worst);
    if (nb_mpi_world_size() == 1) CHECK(worst == 0.0, "%s model on one rank: %.3g", nb_dtype_name(dtype), worst);
    return worst;
}

/* Arguments that differ between ranks fail on every rank, none hangs; and
 * the op then works again. */
static void check_errors(void)
{
    int size = nb_mpi_world_size(), rank = nb_mpi_rank();
    nb_tape *tape = nb_tape_new();
    int64_t channels = C + (size > 1 && rank == size - 1);
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT64, 4, (int64_t[]){2, channels, 2, 2}, NULL);
    nb_tensor *y = nb_mpi_sync_batch_norm(tape, x, NULL, NULL, NULL);
    if (size > 1)
        CHECK(!y && strstr(nb_last_error(), "channel counts differ") && strstr(nb_tape_error(tape), "channels"),
              "channel mismatch: '%s'", nb_last_error());
    nb_tape_reset(tape);
    /* A bad gamma on rank 0 only: its own message there, a pointer to it elsewhere. */
    x = nb_tape_tensor(tape, NB_FLOAT64, 4, (int64_t[]){2, C, 2, 2}, NULL);
    nb_tensor *gamma = nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){rank == 0 ? C + 1 : C}, NULL);
    nb_tensor *beta = nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){C}, NULL);
    y = nb_mpi_sync_batch_norm(tape, x, gamma, beta, NULL);
    const char *expected = rank == 0 ? "sync_batch_norm: gamma [4] must be [3] for input [2,3,2,2]"
                                     : "rejected on 1 of";
    CHECK(!y && strstr(nb_last_error(), expected), "bad gamma on rank 0: '%s'", nb_last_error());
    nb_tape_reset(tape);
    /* A failed earlier op (NULL input) on the last rank. */
    x = nb_tape_tensor(tape, NB_FLOAT64, 4, (int64_t[]){2, C, 2, 2}, NULL);
    y = nb_mpi_sync_batch_norm(tape, rank == size - 1 ? NULL : x, NULL, NULL, NULL);
    CHECK(!y && strstr(nb_last_error(), rank == size - 1 ? "input is NULL" : "rejected on 1 of"),
          "NULL input on the last rank: '%s'", nb_last_error());
    nb_tape_reset(tape);
    /* One value per channel per rank: fine with several ranks (the global
     * batch counts, as in PyTorch), an error on one. */
    x = nb_tape_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, C}, (double[]){rank, 2.0 * rank, -rank});
    y = nb_mpi_sync_batch_norm(tape, x, NULL, NULL, NULL);
    if (size == 1)
        CHECK(!y && strstr(nb_last_error(), "expected more than 1 value per channel"), "[1,3]: '%s'",
              nb_last_error());
    else
        CHECK(y && fabs(nb_tensor_get(y, 0) - (rank - (size - 1) / 2.0) /
                                                 sqrt((size * size - 1) / 12.0 + 1e-5)) < 1e-12,
              "[1,3] on %d ranks: %s", size, y ? "wrong value" : nb_last_error());
    nb_tape_reset(tape);
    /* Eval without running statistics is batch_norm's error. */
    nb_batch_norm_params eval = NB_BATCH_NORM_PARAMS_DEFAULT;
    eval.training = false;
    y = nb_mpi_sync_batch_norm(tape, nb_tape_tensor(tape, NB_FLOAT64, 2, (int64_t[]){2, C}, NULL), NULL, NULL, &eval);
    CHECK(!y && strstr(nb_last_error(), "eval mode needs running_mean"), "eval: '%s'", nb_last_error());
    nb_tape_free(tape);
}

/* Before nb_mpi_init the op is batch_norm, bit for bit (float32, where
 * the kernels' roundings are most visible). */
static void check_before_init(void)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *coef = rows_tensor(NB_FLOAT32, 0, B, coef_at, false), *y[2], *t[2][3];
    for (int k = 0; k < 2; k++) {
        t[k][0] = rows_tensor(NB_FLOAT32, 0, B, x_at, true);
        t[k][1] = nb_tensor_full(NB_FLOAT32, 1, (int64_t[]){C}, 1.5);
        t[k][2] = nb_tensor_full(NB_FLOAT32, 1, (int64_t[]){C}, 0.25);
        nb_tensor_set_requires_grad(t[k][1], true);
        nb_tensor_set_requires_grad(t[k][2], true);
        y[k] = k ? nb_batch_norm(tape, t[k][0], t[k][1], t[k][2], NULL)
                 : nb_mpi_sync_batch_norm(tape, t[k][0], t[k][1], t[k][2], NULL);
        CHECK(y[k] && nb_backward(tape, nb_sum(tape, nb_mul(tape, y[k], coef)), NULL) == NB_OK, "%s",
              nb_last_error());
    }
    CHECK(y[0] && y[1] && memcmp(y[0]->data, y[1]->data, (size_t)y[0]->numel * sizeof(float)) == 0,
          "before nb_mpi_init: y is not batch_norm's");
    for (int i = 0; i < 3; i++) {
        CHECK(t[0][i]->grad && t[1][i]->grad && memcmp(t[0][i]->grad->data, t[1][i]->grad->data,
                                                        (size_t)t[0][i]->numel * sizeof(float)) == 0,
              "before nb_mpi_init: the gradient of input %d is not batch_norm's", i);
        nb_tensor_free(t[0][i]);
        nb_tensor_free(t[1][i]);
    }
    nb_tensor_free(coef);
    nb_tape_free(tape);
}

/* The layer's state dict names are BatchNorm2d's, and it prints as PyTorch's. */
static void check_names(void)
{
    nb_module *sync = nb_mpi_sync_batch_norm2d(C), *plain = nb_nn_batch_norm2d(C);
    nb_named_tensor a[8], b[8];
    int n = nb_module_state(sync, a, 8);
    CHECK(n == nb_module_state(plain, b, 8) && n == 4, "state sizes differ");
    for (int i = 0; i < n && i < 4; i++) CHECK(strcmp(a[i].name, b[i].name) == 0, "state name %s", a[i].name);
    char printed[256] = "";
    FILE *out = fmemopen(printed, sizeof printed - 1, "w");
    nb_module_print(sync, out);
    fclose(out);
    CHECK(strstr(printed, "SyncBatchNorm(3, eps=1e-05, momentum=0.1") != NULL, "printed '%s'", printed);
    nb_module_free(sync);
    nb_module_free(plain);
}

/* Rank 0 holding no rows (x [0,C,2,2]) still joins every exchange. */
static void check_empty_rank(void)
{
    int size = nb_mpi_world_size(), rank = nb_mpi_rank();
    if (size == 1) return;
    int64_t rows = rank == 0 ? 0 : 2;
    double data[2 * C * 4];
    for (int k = 0; k < 2 * C * 4; k++) data[k] = x_at(rank * 100 + k);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT64, 4, (int64_t[]){rows, C, 2, 2}, data);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y = nb_mpi_sync_batch_norm(tape, x, NULL, NULL, NULL);
    CHECK(y && nb_backward(tape, nb_sum(tape, nb_mul(tape, y, y)), NULL) == NB_OK, "empty rank 0: %s",
          nb_last_error());
    /* Over all ranks each channel's y has mean 0 and mean square var / (var + eps). */
    double sums[2 * C] = {0};
    for (int64_t k = 0; y && k < y->numel; k++) {
        sums[k / 4 % C] += nb_tensor_get(y, k);
        sums[C + k / 4 % C] += nb_tensor_get(y, k) * nb_tensor_get(y, k);
    }
    nb_mpi_allreduce_sum(sums, NB_FLOAT64, 2 * C);
    for (int c = 0; c < C; c++)
        CHECK(fabs(sums[c]) < 1e-12 && fabs(sums[C + c] / (8.0 * (size - 1)) - 1.0) < 1e-3,
              "empty rank 0: channel %d sums %g, %g", c, sums[c], sums[C + c]);
    nb_tape_free(tape);
}

/* The op's own cases through nb_gradcheck_op: one rank only (the finite
 * differences see this rank's objective, not the weighted global one). */
static void check_gradcheck(void)
{
    if (nb_mpi_world_size() != 1) return;
    nb_gradcheck_result result;
    int cases = 0;
    CHECK(nb_gradcheck_op(nb_mpi_sync_batch_norm_op(), NULL, &result, &cases) == NB_OK, "%s", nb_last_error());
    CHECK(result.passed && cases >= 4, "gradcheck: %d cases, %s", cases, result.message);
    printf("test_mpi_sync_bn: gradcheck %d cases, max relative error %.3g\n", cases, result.max_rel_error_all);
}

int main(int argc, char **argv)
{
    check_before_init();
    if (nb_mpi_init(&argc, &argv) != NB_OK) {
        fprintf(stderr, "test_mpi_sync_bn: %s\n", nb_last_error());
        return 1;
    }
    double layer[2][2], model[2];
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d == 0 ? NB_FLOAT64 : NB_FLOAT32;
        layer[d][0] = check_layer(dtype, true);
        layer[d][1] = check_layer(dtype, false);
        model[d] = check_model(dtype);
    }
    check_names();
    check_errors();
    check_empty_rank();
    check_gradcheck();
    printf("test_mpi_sync_bn: rank %d of %d, largest relative difference from whole-batch batch_norm: "
           "float64 layer %.3g (no ddp %.3g) model %.3g; float32 layer %.3g (no ddp %.3g) model %.3g\n",
           nb_mpi_rank(), nb_mpi_world_size(), layer[0][0], layer[0][1], model[0], layer[1][0], layer[1][1],
           model[1]);
    return mpi_checks_finish("test_mpi_sync_bn");
}
