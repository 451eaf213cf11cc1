/* nabla_mpi under `mpirun -np N` (N = 1, 2, 3, ...): the ring sum against a
 * serial replay of its addition order, bit for bit and the same on every
 * rank; broadcasts; DistributedDataParallel gradients against the whole
 * batch's gradient computed on one rank; overlap on and off agreeing bit
 * for bit; and the errors. A plain program, not Criterion: Criterion's
 * forked test workers cannot share one MPI job. Exit 0, or 1 naming the
 * failed checks (every rank reports its own). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla.h"
#include "nabla/mpi.h"
#include "mpi_checks.h"

/* Rank r's value at index i: not exactly representable sums, so the
 * addition order shows in the bits. */
static double value_at(int rank, int64_t i)
{
    return sin(1.0 + 0.37 * (double)i + 1.13 * (double)rank) * pow(10.0, (double)((i + rank) % 7) - 3.0);
}

/* The ring's order: chunk c starts at rank c and each next rank adds its
 * own value to the running sum (received + own). */
static double ring_reference(int size, int64_t count, int64_t i)
{
    int c = 0;
    while (count * (c + 1) / size <= i) c++;
    double sum = value_at(c, i);
    for (int k = 1; k < size; k++) sum = sum + value_at((c + k) % size, i);
    return sum;
}

static void check_ring(int64_t count)
{
    int size = nb_mpi_world_size(), rank = nb_mpi_rank();
    double d[1000];
    float f[1000];
    for (int64_t i = 0; i < count; i++) {
        d[i] = value_at(rank, i);
        f[i] = (float)value_at(rank, i);
    }
    CHECK(nb_mpi_allreduce_sum(d, NB_FLOAT64, count) == NB_OK, "%s", nb_last_error());
    CHECK(nb_mpi_allreduce_sum(f, NB_FLOAT32, count) == NB_OK, "%s", nb_last_error());
    for (int64_t i = 0; i < count; i++) {
        double expected = ring_reference(size, count, i);
        CHECK(memcmp(&d[i], &expected, sizeof expected) == 0, "count %lld: float64 element %lld is %.17g, the "
              "ring order gives %.17g", (long long)count, (long long)i, d[i], expected);
        int c = 0;
        while (count * (c + 1) / size <= i) c++;
        float sum = (float)value_at(c, i);
        for (int k = 1; k < size; k++) sum = sum + (float)value_at((c + k) % size, i);
        CHECK(memcmp(&f[i], &sum, sizeof sum) == 0, "count %lld: float32 element %lld differs", (long long)count,
              (long long)i);
    }
}

static void check_broadcast(void)
{
    int rank = nb_mpi_rank();
    nb_tensor *t = nb_tensor_full(NB_FLOAT32, 1, (int64_t[]){5}, (double)rank + 1);
    CHECK(nb_mpi_broadcast(&t, 1, 0) == NB_OK, "%s", nb_last_error());
    for (int i = 0; i < 5; i++) CHECK(nb_tensor_get(t, i) == 1.0, "broadcast: element %d is %g", i, nb_tensor_get(t, i));
    nb_tensor_free(t);
    /* Different shapes on different ranks: every rank fails, none hangs. */
    nb_tensor *u = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){rank == 0 ? 3 : 4});
    int status = nb_mpi_broadcast(&u, 1, 0);
    if (nb_mpi_world_size() > 1)
        CHECK(status != NB_OK && strstr(nb_last_error(), "different shapes"), "mismatched broadcast: %d '%s'", status,
              nb_last_error());
    nb_tensor_free(u);
    CHECK(nb_mpi_allreduce_sum(NULL, NB_INT32, 3) == NB_ERR_INVALID, "int32 sum accepted");
}

enum { IN = 5, HIDDEN = 7, OUT = 3, BATCH = 11 };

static nb_module *make_model(nb_dtype dtype, uint64_t seed)
{
    nb_manual_seed(seed);
    nb_module *layers[3] = {nb_nn_linear(IN, HIDDEN, true), nb_nn_tanh(), nb_nn_linear(HIDDEN, OUT, true)};
    nb_module *m = nb_nn_sequential(3, layers);
    nb_module_to_dtype(m, dtype);
    return m;
}

/* Rows [begin, end) of the global batch as a tape tensor, and their loss
 * sum((model(x))^2) / BATCH: the global batch's mean loss restricted to
 * those rows, so the rows' gradients add up to the whole batch's. */
static nb_tensor *rows_loss(nb_module *m, nb_tape *tape, nb_dtype dtype, int begin, int end)
{
    double x[BATCH * IN];
    float xf[BATCH * IN];
    for (int i = 0; i < (end - begin) * IN; i++) {
        x[i] = value_at(0, begin * IN + i);
        xf[i] = (float)x[i];
    }
    nb_tensor *input = nb_tape_tensor(tape, dtype, 2, (int64_t[]){end - begin, IN},
                                      dtype == NB_FLOAT32 ? (const void *)xf : (const void *)x);
    nb_tensor *y = nb_module_forward(m, tape, input);
    return nb_mul_scalar(tape, nb_sum(tape, nb_mul(tape, y, y)), 1.0 / BATCH);
}

/* Gradients of every parameter, flattened, as doubles. */
static int flat_grads(nb_module *m, double *out)
{
    nb_named_tensor p[8];
    int n = nb_module_parameters(m, p, 8), used = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < p[i].tensor->numel; k++) out[used++] = nb_tensor_get(p[i].tensor->grad, k);
    return used;
}

/* Rank r takes rows [r B / N, (r+1) B / N) of the batch (uneven for N = 2,
 * 3, 4) and weight 1: its loss is already scaled to the global batch. */
static void check_ddp(nb_dtype dtype, bool overlap, double *grads_out)
{
    int size = nb_mpi_world_size(), rank = nb_mpi_rank();
    nb_module *m = make_model(dtype, 100 + (uint64_t)rank);   /* differs until ddp broadcasts rank 0's */
    nb_mpi_ddp_options o = nb_mpi_ddp_default_options();
    o.first_bucket_bytes = o.bucket_bytes = 64;   /* several buckets even for this small model */
    o.overlap = overlap;
    nb_mpi_ddp *ddp = nb_mpi_ddp_new(m, &o);
    CHECK(ddp != NULL, "%s", nb_last_error());
    if (!ddp) return;
    nb_mpi_ddp_stats stats = nb_mpi_ddp_get_stats(ddp);
    CHECK(stats.buckets > 2, "only %d buckets", stats.buckets);
    nb_tape *tape = nb_tape_new();
    int begin = BATCH * rank / size, end = BATCH * (rank + 1) / size;
    for (int step = 0; step < 2; step++) {   /* the second step reuses the reset buckets */
        nb_module_zero_grad(m);
        CHECK(nb_mpi_ddp_set_weight(ddp, 1.0) == NB_OK, "%s", nb_last_error());
        nb_tensor *loss = rows_loss(m, tape, dtype, begin, end);
        CHECK(nb_mpi_ddp_backward(ddp, tape, loss) == NB_OK, "%s", nb_last_error());
        nb_tape_reset(tape);
    }
    double got[128], expected[128];
    int n = flat_grads(m, got);
    /* The reference: rank 0's initial model on the whole batch, here. */
    nb_mpi_ddp_free(ddp);
    nb_module *whole = make_model(dtype, 100);
    nb_backward(tape, rows_loss(whole, tape, dtype, 0, BATCH), NULL);
    flat_grads(whole, expected);
    double tolerance = dtype == NB_FLOAT64 ? 1e-13 : 1e-5;
    for (int i = 0; i < n; i++)
        CHECK(fabs(got[i] - expected[i]) <= tolerance * (1.0 + fabs(expected[i])),
              "%s ddp (overlap %d): gradient %d is %.17g, the whole batch gives %.17g", nb_dtype_name(dtype),
              overlap, i, got[i], expected[i]);
    if (grads_out) memcpy(grads_out, got, (size_t)n * sizeof *got);
    nb_tape_free(tape);
    nb_module_free(m);
    nb_module_free(whole);
}

/* A sum over the ranks from inside a backward with overlap (a hook on the
 * hidden layer runs after the last layer's bucket went to the
 * communication thread): it waits its turn and every rank gets the total. */
static int sum_in_hook(nb_tensor *t, nb_tensor *grad, void *user)
{
    (void)t;
    (void)grad;
    double *values = user;
    values[0] = nb_mpi_rank() + 1;
    values[1] = 1;
    return nb_mpi_allreduce_sum(values, NB_FLOAT64, 2);
}

static void check_sum_during_backward(void)
{
    int size = nb_mpi_world_size();
    nb_module *m = make_model(NB_FLOAT64, 100);
    nb_mpi_ddp_options o = nb_mpi_ddp_default_options();
    o.first_bucket_bytes = o.bucket_bytes = 64;
    nb_mpi_ddp *ddp = nb_mpi_ddp_new(m, &o);
    nb_tape *tape = nb_tape_new();
    double values[2] = {0};
    for (int step = 0; step < 3; step++) {
        nb_module_zero_grad(m);
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT64, 2, (int64_t[]){2, IN}, NULL);
        nb_tensor *hidden = nb_module_forward(nb_module_child(m, "0"), tape, x);
        nb_tensor_set_hook(hidden, sum_in_hook, values);
        nb_tensor *y = nb_module_forward(nb_module_child(m, "2"), tape, nb_tanh(tape, hidden));
        CHECK(nb_mpi_ddp_backward(ddp, tape, nb_sum(tape, nb_mul(tape, y, y))) == NB_OK, "%s", nb_last_error());
        CHECK(values[0] == size * (size + 1) / 2.0 && values[1] == size, "sum in a hook: %g %g", values[0],
              values[1]);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    nb_mpi_ddp_free(ddp);
    nb_module_free(m);
}

/* Two backward passes before finish is a clear error, not a hang. */
static void check_double_backward(void)
{
    nb_module *m = make_model(NB_FLOAT64, 100);
    nb_mpi_ddp *ddp = nb_mpi_ddp_new(m, NULL);
    nb_tape *tape = nb_tape_new();
    nb_backward(tape, rows_loss(m, tape, NB_FLOAT64, 0, 2), NULL);
    nb_tape_reset(tape);
    int status = nb_backward(tape, rows_loss(m, tape, NB_FLOAT64, 0, 2), NULL);
    CHECK(status != NB_OK && strstr(nb_last_error(), "completed twice"), "second backward: %d '%s'", status,
          nb_last_error());
    CHECK(nb_mpi_ddp_finish(ddp) == NB_OK, "%s", nb_last_error());
    nb_tape_free(tape);
    nb_mpi_ddp_free(ddp);
    nb_module_free(m);
}

int main(int argc, char **argv)
{
    if (nb_mpi_init(&argc, &argv) != NB_OK) {
        fprintf(stderr, "test_mpi: %s\n", nb_last_error());
        return 1;
    }
    int64_t counts[] = {0, 1, 2, 3, 5, 64, 999};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) check_ring(counts[i]);
    check_broadcast();
    double with[128] = {0}, without[128] = {0};
    check_ddp(NB_FLOAT64, true, NULL);
    check_ddp(NB_FLOAT32, true, with);
    check_ddp(NB_FLOAT32, false, without);
    CHECK(memcmp(with, without, sizeof with) == 0, "overlap changes the float32 gradients");
    check_double_backward();
    check_sum_during_backward();
    return mpi_checks_finish("test_mpi");
}
