/* Copies between tensors and caller buffers that convert the dtype on the
 * way: nb_tensor_copy, nb_tensor_from_data_as, nb_tensor_to_dtype and
 * nb_tensor_copy_to all go through convert_values. Floats become int32 by
 * truncation toward zero, as PyTorch's .to(torch.int32); a value with no
 * int32 truncation (NaN, an infinity, out of range) is an error, where a C
 * cast would be undefined. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"

static double value_at(nb_dtype dtype, const void *data, int64_t i)
{
    switch (dtype) {
    case NB_FLOAT32: return ((const float *)data)[i];
    case NB_FLOAT64: return ((const double *)data)[i];
    case NB_INT32: return ((const int32_t *)data)[i];
    }
    return 0.0;
}

/* Truncation toward zero lands in int32 exactly for these. */
static bool fits_int32(double v) { return v > -2147483649.0 && v < 2147483648.0; }

/* Writes n values of dtype `from` at src as dtype `to` at dst. Checks every
 * value before writing any, so a failure leaves dst as it was. `what`
 * describes the source in messages ("[2,3]"). */
static int convert_values(const char *who, const char *what, nb_dtype to, void *dst,
                          nb_dtype from, const void *src, int64_t n)
{
    if (nb_dtype_size(to) == 0) return nb_fail(NB_ERR_INVALID, "%s: unknown dtype %d", who, (int)to);
    if (nb_dtype_size(from) == 0)
        return nb_fail(NB_ERR_INVALID, "%s: unknown dtype %d", who, (int)from);
    if (to == from) {
        memmove(dst, src, (size_t)n * nb_dtype_size(to));
        return NB_OK;
    }
    if (to == NB_INT32) {
        for (int64_t i = 0; i < n; i++) {
            double v = value_at(from, src, i);
            if (!fits_int32(v))
                return nb_fail(NB_ERR_INVALID, "%s: element %lld of %s is %g, which has no int32 "
                               "value (truncation toward zero must land in [-2^31, 2^31))", who,
                               (long long)i, what, v);
        }
        int32_t *out = dst;
        for (int64_t i = 0; i < n; i++) out[i] = (int32_t)value_at(from, src, i);
    } else if (to == NB_FLOAT32) {
        float *out = dst;
        for (int64_t i = 0; i < n; i++) out[i] = (float)value_at(from, src, i);
    } else {
        double *out = dst;
        for (int64_t i = 0; i < n; i++) out[i] = value_at(from, src, i);
    }
    return NB_OK;
}

int nb_tensor_copy(nb_tensor *dst, const nb_tensor *src)
{
    if (!dst || !src) return nb_fail(NB_ERR_INVALID, "nb_tensor_copy: tensor is NULL");
    char a[96], b[96];
    if (dst->numel != src->numel)
        return nb_fail(NB_ERR_INVALID, "nb_tensor_copy: %s has %lld elements, %s has %lld",
                       nb_shape_str(dst, a, sizeof a), (long long)dst->numel,
                       nb_shape_str(src, b, sizeof b), (long long)src->numel);
    return convert_values("nb_tensor_copy", nb_shape_str(src, b, sizeof b), dst->dtype, dst->data,
                          src->dtype, src->data, src->numel);
}

nb_tensor *nb_tensor_from_data_as(nb_dtype dtype, int ndim, const int64_t *shape,
                                  nb_dtype data_dtype, const void *data)
{
    const char *who = "nb_tensor_from_data_as";
    if (!data) {
        nb_fail(NB_ERR_INVALID, "%s: data is NULL", who);
        return NULL;
    }
    if (nb_dtype_size(data_dtype) == 0) {
        nb_fail(NB_ERR_INVALID, "%s: unknown data dtype %d", who, (int)data_dtype);
        return NULL;
    }
    nb_tensor *t = nb_tensor_new_for(who, dtype, ndim, shape);
    if (!t) return NULL;
    char what[128], s[96];
    snprintf(what, sizeof what, "the %s data for %s", nb_dtype_name(data_dtype),
             nb_shape_str(t, s, sizeof s));
    if (convert_values(who, what, dtype, t->data, data_dtype, data, t->numel) != NB_OK) {
        nb_tensor_free(t);
        return NULL;
    }
    return t;
}

/* Fails unless src may be read now (live; a tape tensor of its tape's
 * current step). Decided from the stores' tables, not from *src. */
static int check_readable(const nb_tensor *src, const char *who)
{
    return nb_tensor_check_usable(nb_tensor_owner(src), src, who);
}

nb_tensor *nb_tensor_to_dtype(const nb_tensor *src, nb_dtype dtype)
{
    const char *who = "nb_tensor_to_dtype";
    if (check_readable(src, who) != NB_OK) return NULL;
    nb_tensor *t = nb_tensor_new_for(who, dtype, src->ndim, src->shape);
    if (!t) return NULL;
    char s[96];
    if (convert_values(who, nb_shape_str(src, s, sizeof s), dtype, t->data, src->dtype, src->data,
                       src->numel) != NB_OK) {
        nb_tensor_free(t);
        return NULL;
    }
    return t;
}

int nb_tensor_copy_to(const nb_tensor *src, nb_dtype dtype, void *out, int64_t count)
{
    const char *who = "nb_tensor_copy_to";
    int status = check_readable(src, who);
    if (status != NB_OK) return status;
    char s[96];
    nb_shape_str(src, s, sizeof s);
    if (count != src->numel)
        return nb_fail(NB_ERR_INVALID, "%s: count %lld, but %s %s has %lld elements", who,
                       (long long)count, nb_dtype_name(src->dtype), s, (long long)src->numel);
    if (!out && count > 0) return nb_fail(NB_ERR_INVALID, "%s: out is NULL", who);
    return convert_values(who, s, dtype, out, src->dtype, src->data, count);
}
