#include <stdio.h>
#include <string.h>

#include "ops/common.h"

const char *nb_input_shape(const nb_op_ctx *ctx, int i, char *buf, size_t size)
{
    return nb_shape_string(ctx->inputs[i], buf, size);
}

int nb_shape_like_input(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0];
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    return NB_OK;
}

int nb_check_same_shape(nb_op_ctx *ctx, int a, int b)
{
    if (nb_shape_equal(ctx->inputs[a], ctx->inputs[b])) return NB_OK;
    char sa[96], sb[96];
    return nb_op_error(ctx, "%s vs %s: shapes must match", nb_input_shape(ctx, a, sa, sizeof sa),
                       nb_input_shape(ctx, b, sb, sizeof sb));
}

int nb_normalize_dim(nb_op_ctx *ctx, int dim, int ndim, int *out)
{
    /* A scalar accepts dim 0 and -1, as in PyTorch. */
    int range = ndim > 0 ? ndim : 1;
    int d = dim < 0 ? dim + range : dim;
    if (d < 0 || d >= range) {
        char s[96];
        return nb_op_error(ctx, "dim %d out of range for %s (%d dims)", dim,
                           nb_input_shape(ctx, 0, s, sizeof s), ndim);
    }
    *out = d;
    return NB_OK;
}

nb_axis_view nb_axis_split(const nb_tensor *t, int dim)
{
    nb_axis_view v = {1, t->ndim ? t->shape[dim] : 1, 1};
    for (int d = 0; d < dim; d++) v.outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) v.inner *= t->shape[d];
    return v;
}

int nb_broadcast_shape(nb_op_ctx *ctx, const nb_tensor *a, const nb_tensor *b, nb_shape *out)
{
    const nb_tensor *operands[2] = {a, b};
    return nb_broadcast_shape_n(ctx, 2, operands, out);
}

/* "[2,3], [3] and [4,1]" */
static const char *shape_list(int n, const nb_tensor *const *operands, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        char s[96];
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ",
                                 nb_shape_string(operands[i], s, sizeof s));
    }
    return buf;
}

int nb_broadcast_shape_n(nb_op_ctx *ctx, int n, const nb_tensor *const *operands, nb_shape *out)
{
    int ndim = 0;
    for (int i = 0; i < n; i++) ndim = operands[i]->ndim > ndim ? operands[i]->ndim : ndim;
    out->dtype = operands[0]->dtype;
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t size = 1;
        for (int i = 0; i < n; i++) {
            int di = d - (ndim - operands[i]->ndim);
            int64_t si = di >= 0 ? operands[i]->shape[di] : 1;
            if (si != size && si != 1 && size != 1) {
                char list[400];
                return nb_op_error(ctx, "%s do not broadcast (dim %d: %lld vs %lld)",
                                   shape_list(n, operands, list, sizeof list), d, (long long)size,
                                   (long long)si);
            }
            if (si != 1) size = si;
        }
        out->dims[d] = size;
    }
    return NB_OK;
}

/* Strides of `t` seen through an output of `ndim` dims: 0 where broadcast. */
static void broadcast_strides(const nb_tensor *t, const nb_tensor *out, int64_t *strides)
{
    int64_t stride = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int dt = d - (out->ndim - t->ndim);
        int64_t size = dt >= 0 ? t->shape[dt] : 1;
        strides[d] = size == 1 ? 0 : stride;
        stride *= size;
    }
}

void nb_broadcast_for_each(const nb_tensor *out, const nb_tensor *a, const nb_tensor *b,
                           nb_broadcast_fn fn, void *user)
{
    if (out->numel == 0) return;
    /* Common fast cases: one run over everything. */
    bool a_full = a->numel == out->numel, b_full = b->numel == out->numel;
    if ((a_full || a->numel == 1) && (b_full || b->numel == 1)) {
        nb_broadcast_run run = {0, 0, 0, out->numel, a_full, b_full};
        fn(&run, user);
        return;
    }
    int64_t sa[NB_MAX_DIMS], sb[NB_MAX_DIMS], index[NB_MAX_DIMS] = {0};
    broadcast_strides(a, out, sa);
    broadcast_strides(b, out, sb);
    int last = out->ndim - 1;
    int64_t length = out->shape[last];
    nb_broadcast_run run = {0, 0, 0, length, sa[last], sb[last]};
    for (int64_t offset = 0; offset < out->numel; offset += length) {
        run.out_offset = offset;
        fn(&run, user);
        /* Odometer over the outer dims. */
        for (int d = last - 1; d >= 0; d--) {
            index[d]++;
            run.a_offset += sa[d];
            run.b_offset += sb[d];
            if (index[d] < out->shape[d]) break;
            run.a_offset -= sa[d] * index[d];
            run.b_offset -= sb[d] * index[d];
            index[d] = 0;
        }
    }
}

void nb_broadcast_for_each_n(const nb_tensor *out, int n, const nb_tensor *const *operands,
                             nb_broadcast_n_fn fn, void *user)
{
    if (out->numel == 0) return;
    int64_t strides[NB_BROADCAST_MAX_OPERANDS][NB_MAX_DIMS], index[NB_MAX_DIMS] = {0};
    int last = out->ndim - 1;
    nb_broadcast_run_n run = {.length = out->ndim ? out->shape[last] : 1};
    for (int i = 0; i < n; i++) {
        broadcast_strides(operands[i], out, strides[i]);
        run.step[i] = out->ndim ? strides[i][last] : 0;
    }
    for (int64_t offset = 0; offset < out->numel; offset += run.length) {
        run.out_offset = offset;
        fn(&run, user);
        /* Odometer over the outer dims. */
        for (int d = last - 1; d >= 0; d--) {
            index[d]++;
            for (int i = 0; i < n; i++) run.offset[i] += strides[i][d];
            if (index[d] < out->shape[d]) break;
            for (int i = 0; i < n; i++) run.offset[i] -= strides[i][d] * index[d];
            index[d] = 0;
        }
    }
}

bool nb_broadcasts_to(const nb_tensor *t, int ndim, const int64_t *dims)
{
    if (t->ndim > ndim) return false;
    for (int d = 0; d < t->ndim; d++) {
        int64_t size = t->shape[d], want = dims[d + ndim - t->ndim];
        if (size != 1 && size != want) return false;
    }
    return true;
}

int64_t *nb_broadcast_offsets(nb_op_ctx *ctx, const nb_tensor *t, int ndim, const int64_t *dims)
{
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= dims[d];
    int64_t *offsets = nb_op_alloc(ctx, (size_t)(numel ? numel : 1) * sizeof *offsets);
    if (!offsets) return NULL;
    int64_t strides[NB_MAX_DIMS], index[NB_MAX_DIMS] = {0}, stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        int dt = d - (ndim - t->ndim);
        int64_t size = dt >= 0 ? t->shape[dt] : 1;
        strides[d] = size == 1 ? 0 : stride;
        stride *= size;
    }
    int64_t offset = 0;
    for (int64_t k = 0; k < numel; k++) {
        offsets[k] = offset;
        for (int d = ndim - 1; d >= 0; d--) {   /* odometer over the output */
            offset += strides[d];
            if (++index[d] < dims[d]) break;
            offset -= strides[d] * dims[d];
            index[d] = 0;
        }
    }
    return offsets;
}

int nb_sample_elementwise(int index, nb_sample *s, nb_rng *rng, double low, double high,
                          double margin)
{
    static const int64_t shapes[][5] = {{7}, {2, 3, 4}, {1}, {3, 1, 2, 1, 2}};
    static const int ranks[] = {1, 3, 1, 5};
    static const char *labels[] = {"[7]", "[2,3,4]", "[1]", "[3,1,2,1,2]"};
    if (index >= (int)(sizeof ranks / sizeof ranks[0])) return 0;
    s->label = labels[index];
    return nb_sample_tensor(s, rng, ranks[index], shapes[index], low, high, margin, true) ? 1 : -1;
}

void nb_binary_forward(nb_op_ctx *ctx, nb_broadcast_fn run32, nb_broadcast_fn run64)
{
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1], *y = ctx->output;
    nb_binary_args args = {a->data, b->data, y->data, NULL, NULL, NULL};
    nb_broadcast_for_each(y, a, b, y->dtype == NB_FLOAT32 ? run32 : run64, &args);
}

void nb_binary_backward(nb_op_ctx *ctx, nb_broadcast_fn run32, nb_broadcast_fn run64)
{
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1], *y = ctx->output;
    nb_tensor *da = ctx->input_grads[0], *db = ctx->input_grads[1];
    if (!da && !db) return;
    nb_binary_args args = {a->data, b->data, y->data, ctx->output_grad->data,
                           da ? da->data : NULL, db ? db->data : NULL};
    nb_broadcast_for_each(y, a, b, y->dtype == NB_FLOAT32 ? run32 : run64, &args);
}

int nb_sample_binary(int index, nb_sample *s, nb_rng *rng, double b_low, double b_high)
{
    static const struct {
        int a_rank, b_rank;
        int64_t a[4], b[4];
        const char *label;
    } cases[] = {
        {2, 2, {3, 4}, {3, 4}, "[3,4] . [3,4]"},
        {2, 1, {3, 4}, {4}, "[3,4] . [4]"},
        {1, 2, {4}, {3, 4}, "[4] . [3,4]"},
        {3, 3, {2, 1, 3}, {1, 4, 1}, "[2,1,3] . [1,4,1]"},
        {2, 0, {2, 3}, {0}, "[2,3] . scalar"},
        {1, 1, {1}, {5}, "[1] . [5]"},
        {4, 2, {2, 3, 1, 2}, {3, 1}, "[2,3,1,2] . [3,1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    if (!nb_sample_tensor(s, rng, cases[index].a_rank, cases[index].a, -1.0, 1.0, 0.0, true))
        return -1;
    if (!nb_sample_tensor(s, rng, cases[index].b_rank, cases[index].b, b_low, b_high, 0.0, true))
        return -1;
    return 1;
}
