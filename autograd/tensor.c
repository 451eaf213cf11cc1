#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/threads.h"

size_t nb_dtype_size(nb_dtype dtype)
{
    switch (dtype) {
    case NB_FLOAT32: return sizeof(float);
    case NB_FLOAT64: return sizeof(double);
    case NB_INT32: return sizeof(int32_t);
    }
    return 0;
}

const char *nb_dtype_name(nb_dtype dtype)
{
    switch (dtype) {
    case NB_FLOAT32: return "float32";
    case NB_FLOAT64: return "float64";
    case NB_INT32: return "int32";
    }
    return "unknown";
}

/* Validates a shape and returns its element count, or -1 with an error. */
static int64_t shape_numel(const char *who, nb_dtype dtype, int ndim, const int64_t *shape)
{
    if (nb_dtype_size(dtype) == 0) {
        nb_fail(NB_ERR_INVALID, "%s: unknown dtype %d", who, (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > NB_MAX_DIMS) {
        nb_fail(NB_ERR_INVALID, "%s: ndim %d outside 0..%d", who, ndim, NB_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        nb_fail(NB_ERR_INVALID, "%s: shape is NULL", who);
        return -1;
    }
    /* The bound is on the product of the non-zero dims (span), not just
     * numel: an empty [0, 2^40, 2^40] would otherwise pass, and any kernel
     * or shape rule multiplying some of its dims (flatten merging the last
     * two) would overflow. */
    int64_t numel = 1, span = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            nb_fail(NB_ERR_INVALID, "%s: dimension %d is negative (%lld)", who, i,
                    (long long)shape[i]);
            return -1;
        }
        if (shape[i] && span > INT64_MAX / 16 / shape[i]) {
            nb_fail(NB_ERR_INVALID, "%s: shape too large", who);
            return -1;
        }
        if (shape[i]) span *= shape[i];
        numel *= shape[i];
    }
    return numel;
}

static void init_header(nb_tensor *t, nb_dtype dtype, int ndim, const int64_t *shape,
                        int64_t numel)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    t->magic = NB_TENSOR_MAGIC;
}

nb_tensor *nb_tensor_new(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return nb_tensor_new_for("nb_tensor_new", dtype, ndim, shape);
}

nb_tensor *nb_tensor_new_for(const char *who, nb_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel = shape_numel(who, dtype, ndim, shape);
    if (numel < 0) return NULL;
    size_t data_bytes = (size_t)numel * nb_dtype_size(dtype);
    nb_tensor *t = nb_header_pool_take(who);
    if (!t) return NULL;
    void *data = nb_malloc_for(data_bytes, who);
    if (!data) {
        nb_header_pool_give(t);
        return NULL;
    }
    init_header(t, dtype, ndim, shape, numel);
    t->data = data;
    memset(t->data, 0, data_bytes);
    return t;
}

nb_tensor *nb_tape_new_tensor(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *shape,
                              bool zero)
{
    int64_t numel = shape_numel("nb_tape_tensor", dtype, ndim, shape);
    if (numel < 0) return NULL;
    size_t data_bytes = (size_t)numel * nb_dtype_size(dtype);
    void *data = nb_arena_alloc(&tape->arena, data_bytes);
    if (!data) return NULL;
    nb_tensor *t = nb_header_ring_take(&tape->headers, tape->generation, "nb_tape_tensor");
    if (!t) return NULL;
    init_header(t, dtype, ndim, shape, numel);
    t->data = data;
    t->tape = tape;
    t->generation = tape->generation;
    if (zero) nb_zero_parallel(t->data, data_bytes);
    return t;
}

/* Bytes per range: below ~256 KiB one memset beats waking a thread. */
enum { ZERO_GRAIN = 1 << 18 };

static void zero_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    memset((unsigned char *)context + begin, 0, (size_t)(end - begin));
}

void nb_zero_parallel(void *data, size_t bytes)
{
    nb_parallel_for((int64_t)bytes, ZERO_GRAIN, zero_range, data);
}

nb_tensor *nb_tensor_zeros(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return nb_tensor_new(dtype, ndim, shape);
}

nb_tensor *nb_tensor_full(nb_dtype dtype, int ndim, const int64_t *shape, double value)
{
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    if (t) nb_tensor_fill(t, value);
    return t;
}

nb_tensor *nb_tensor_ones(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return nb_tensor_full(dtype, ndim, shape, 1.0);
}

nb_tensor *nb_tensor_from_data(nb_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    if (!data) {
        nb_fail(NB_ERR_INVALID, "nb_tensor_from_data: data is NULL");
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dtype));
    return t;
}

static nb_tensor *random_tensor(nb_dtype dtype, int ndim, const int64_t *shape, double a,
                                double b, nb_rng *rng, bool normal)
{
    const char *who = normal ? "nb_tensor_normal" : "nb_tensor_uniform";
    if (dtype == NB_INT32) {
        nb_fail(NB_ERR_INVALID, "%s: dtype int32 is not supported", who);
        return NULL;
    }
    if (normal ? !(b >= 0) : !(b >= a)) {
        nb_fail(NB_ERR_INVALID, "%s: bad range (%g, %g)", who, a, b);
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    if (!t) return NULL;
    if (!rng) rng = nb_rng_global();
    for (int64_t i = 0; i < t->numel; i++) {
        double v = normal ? a + b * nb_rng_normal(rng) : a + (b - a) * nb_rng_uniform(rng);
        nb_tensor_set(t, i, v);
    }
    return t;
}

nb_tensor *nb_tensor_uniform(nb_dtype dtype, int ndim, const int64_t *shape, double low,
                             double high, nb_rng *rng)
{
    return random_tensor(dtype, ndim, shape, low, high, rng, false);
}

nb_tensor *nb_tensor_normal(nb_dtype dtype, int ndim, const int64_t *shape, double mean,
                            double std, nb_rng *rng)
{
    return random_tensor(dtype, ndim, shape, mean, std, rng, true);
}

nb_tensor *nb_tensor_clone(const nb_tensor *src)
{
    if (!src) {
        nb_fail(NB_ERR_INVALID, "nb_tensor_clone: tensor is NULL");
        return NULL;
    }
    nb_tensor *t = nb_tensor_from_data(src->dtype, src->ndim, src->shape, src->data);
    if (t) t->requires_grad = src->requires_grad;
    return t;
}

void nb_tensor_free(nb_tensor *tensor)
{
    if (!tensor) return;
    /* Decided from the header stores' tables: after a free the header may
     * already belong to a new tensor, so it is not read before this. */
    switch (nb_header_pool_state(tensor)) {
    case NB_POOL_LIVE: break;
    case NB_POOL_DEAD:
        nb_fail(NB_ERR_STATE, "nb_tensor_free: tensor was already freed");
        return;
    case NB_POOL_NOT_OURS:
        if (nb_tensor_owner(tensor))
            nb_fail(NB_ERR_INVALID, "nb_tensor_free: tensor belongs to a tape, not freed "
                    "(nb_tape_reset releases it)");
        else
            nb_fail(NB_ERR_INVALID, "nb_tensor_free: not a live nabla tensor (its tape was "
                    "freed, or nabla did not make it)");
        return;
    }
    if (tensor->grad) nb_tensor_free(tensor->grad);
    nb_free(tensor->data);
    tensor->data = NULL;
    tensor->grad = NULL;
    tensor->magic = 0;
    nb_header_pool_give(tensor);
}

void nb_tensor_set_requires_grad(nb_tensor *tensor, bool requires_grad)
{
    if (tensor && tensor->dtype != NB_INT32) tensor->requires_grad = requires_grad;
}

void nb_tensor_set_name(nb_tensor *tensor, const char *name)
{
    if (tensor) tensor->name = name;
}

nb_tensor *nb_tensor_grad(const nb_tensor *tensor) { return tensor ? tensor->grad : NULL; }

void nb_tensor_zero_grad(nb_tensor *tensor)
{
    if (tensor && tensor->grad)
        nb_zero_parallel(tensor->grad->data, (size_t)tensor->grad->numel * nb_dtype_size(tensor->grad->dtype));
}

/* Whether t's gradient buffer is one nabla made for it (its dtype and
 * shape), so new values can be written into it in place. */
static bool grad_matches(const nb_tensor *t)
{
    return t->grad && t->grad->dtype == t->dtype && nb_shape_equal(t->grad, t);
}

int nb_tensor_set_grad(nb_tensor *t, const nb_tensor *grad)
{
    const char *who = "nb_tensor_set_grad";
    nb_tape *tape = nb_tensor_owner(t);
    int status = nb_tensor_check_usable(tape, t, who);
    if (status != NB_OK) return status;
    char st[96], sg[96];
    nb_shape_str(t, st, sizeof st);
    if (t->dtype != NB_FLOAT32 && t->dtype != NB_FLOAT64)
        return nb_fail(NB_ERR_INVALID, "%s: tensor %s is %s; only float tensors have gradients",
                       who, st, nb_dtype_name(t->dtype));
    if (!grad) {
        /* A persistent tensor owns its gradient; a tape tensor's lives in
         * the arena until nb_tape_reset. */
        if (!tape && t->grad && nb_header_pool_state(t->grad) == NB_POOL_LIVE) nb_tensor_free(t->grad);
        t->grad = NULL;
        return NB_OK;
    }
    char what[128];
    snprintf(what, sizeof what, "%s: gradient", who);
    status = nb_tensor_check_usable(nb_tensor_owner(grad), grad, what);
    if (status != NB_OK) return status;
    nb_shape_str(grad, sg, sizeof sg);
    if (grad->dtype != NB_FLOAT32 && grad->dtype != NB_FLOAT64)
        return nb_fail(NB_ERR_INVALID, "%s: gradient %s is %s; need float32 or float64", who, sg,
                       nb_dtype_name(grad->dtype));
    if (!nb_shape_equal(grad, t))
        return nb_fail(NB_ERR_INVALID, "%s: gradient %s does not match tensor %s", who, sg, st);
    if (grad_matches(t)) return nb_tensor_copy(t->grad, grad);
    nb_tensor *fresh = tape ? nb_tape_new_tensor(tape, t->dtype, t->ndim, t->shape, false)
                            : nb_tensor_new_for(who, t->dtype, t->ndim, t->shape);
    if (!fresh) return NB_ERR_NOMEM;
    nb_tensor_copy(fresh, grad);
    /* A gradient put in from outside (PyTorch's `t.grad = g` on one of a
     * wrong dtype or shape) is replaced, and freed when t owns it. */
    if (!tape && t->grad && nb_header_pool_state(t->grad) == NB_POOL_LIVE) nb_tensor_free(t->grad);
    t->grad = fresh;
    return NB_OK;
}

void nb_tensor_set_hook(nb_tensor *tensor, nb_grad_hook_fn hook, void *user)
{
    if (!tensor) return;
    tensor->hook = hook;
    tensor->hook_user = user;
}

double nb_tensor_get(const nb_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case NB_FLOAT32: return ((const float *)t->data)[i];
    case NB_FLOAT64: return ((const double *)t->data)[i];
    case NB_INT32: return ((const int32_t *)t->data)[i];
    }
    return 0.0;
}

void nb_tensor_set(nb_tensor *t, int64_t i, double value)
{
    switch (t->dtype) {
    case NB_FLOAT32: ((float *)t->data)[i] = (float)value; break;
    case NB_FLOAT64: ((double *)t->data)[i] = value; break;
    case NB_INT32: ((int32_t *)t->data)[i] = (int32_t)value; break;
    }
}

void nb_tensor_fill(nb_tensor *t, double value)
{
    if (!t) return;
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, value);
}

bool nb_shape_equal(const nb_tensor *a, const nb_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *nb_shape_str(const nb_tensor *t, char *buf, size_t size)
{
    return nb_shape_string(t, buf, size);
}

char *nb_shape_string(const nb_tensor *t, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; t && i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

bool nb_tensor_all_finite(const nb_tensor *t)
{
    if (t->dtype == NB_FLOAT32) {
        const float *x = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(x[i])) return false;
    } else if (t->dtype == NB_FLOAT64) {
        const double *x = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(x[i])) return false;
    }
    return true;
}
