/* nb_mpi_sync_batch_norm: the ranks agree on their arguments before any
 * statistics move, so a bad argument on one rank fails the op on every
 * rank instead of leaving the others waiting in an exchange; and the
 * SyncBatchNorm layer, a BatchNorm2d whose forward is this op. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "distributed/internal.h"
#include "distributed/sync_batch_norm.h"

static int reject(char *why, size_t size, const char *fmt, ...) NB_PRINTF(3, 4);
static int reject(char *why, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, size, fmt, args);
    va_end(args);
    return NB_ERR_INVALID;
}

static int check_vector(const nb_tensor *t, const char *what, const nb_tensor *x, char *why, size_t size)
{
    char sx[96], st[96];
    nb_shape_string(x, sx, sizeof sx);
    nb_shape_string(t, st, sizeof st);
    if (t->ndim != 1 || t->shape[0] != x->shape[1])
        return reject(why, size, "%s %s must be [%lld] for input %s", what, st, (long long)x->shape[1], sx);
    if (t->dtype != NB_FLOAT32 && t->dtype != NB_FLOAT64)
        return reject(why, size, "%s must be float32 or float64 (input %s)", what, sx);
    return NB_OK;
}

int mpi_sync_batch_norm_check(const nb_tensor *x, const nb_tensor *gamma, const nb_tensor *beta,
                              const nb_batch_norm_params *p, char *why, size_t size)
{
    if (!x) return reject(why, size, "input is NULL");
    char sx[96];
    nb_shape_string(x, sx, sizeof sx);
    if (x->dtype != NB_FLOAT32 && x->dtype != NB_FLOAT64)
        return reject(why, size, "input %s has dtype %s; expected float32 or float64", sx, nb_dtype_name(x->dtype));
    if (x->ndim < 2) return reject(why, size, "input %s must have at least 2 dims [N,C,...]", sx);
    if (!gamma != !beta) return reject(why, size, "input %s: give both gamma and beta, or neither", sx);
    const nb_tensor *vectors[4] = {gamma, beta, p->running_mean, p->running_var};
    static const char *names[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        if (!vectors[i]) continue;
        int status = check_vector(vectors[i], names[i], x, why, size);
        if (status != NB_OK) return status;
        if (i < 2 && vectors[i]->dtype != x->dtype)
            return reject(why, size, "%s is %s but input %s is %s", names[i], nb_dtype_name(vectors[i]->dtype), sx,
                          nb_dtype_name(x->dtype));
    }
    if (!p->running_mean != !p->running_var)
        return reject(why, size, "input %s: give both running_mean and running_var, or neither", sx);
    if (!(p->eps >= 0.0) || !(p->momentum >= 0.0 && p->momentum <= 1.0))
        return reject(why, size, "input %s: eps %g must be >= 0 and momentum %g in [0, 1]", sx, p->eps,
                      p->momentum);
    return NB_OK;
}

/* NB_OK when every tensor given may be used on the tape now; otherwise
 * the error is on the tape (nb_tape_check_input). */
static int check_usable(nb_tape *tape, nb_tensor *x, nb_tensor *const *others, int count)
{
    int status = nb_tape_check_input(tape, x, "sync_batch_norm");
    for (int i = 0; status == NB_OK && i < count; i++)
        if (others[i]) status = nb_tape_check_input(tape, others[i], "sync_batch_norm");
    return status;
}

nb_tensor *nb_mpi_sync_batch_norm(nb_tape *tape, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                                  const nb_batch_norm_params *p)
{
    nb_batch_norm_params bn = p ? *p : (nb_batch_norm_params)NB_BATCH_NORM_PARAMS_DEFAULT;
    if (!bn.training) return nb_batch_norm(tape, x, gamma, beta, &bn);
    nb_tensor *others[4] = {gamma, beta, bn.running_mean, bn.running_var};
    int status = check_usable(tape, x, others, 4);
    char why[256] = "", sx[96] = "";
    if (status == NB_OK && mpi_sync_batch_norm_check(x, gamma, beta, &bn, why, sizeof why) != NB_OK)
        status = nb_tape_fail(tape, NB_ERR_INVALID, "sync_batch_norm: %s", why);
    int64_t C = 0, m = 0;
    if (status == NB_OK) {
        nb_shape_string(x, sx, sizeof sx);
        C = x->shape[1];
        m = x->shape[0];
        for (int d = 2; d < x->ndim; d++) m *= x->shape[d];
    }
    sync_batch_norm_params params = {.bn = bn, .count = m};
    if (nb_mpi.size > 1) {
        /* Whether every rank is fine, the channel count and its square
         * (the sums show any difference: sum C^2 = (sum C)^2 / size only
         * when all are equal), and the values per channel. The sums are
         * the same bits everywhere, so every rank decides alike. */
        double header[4] = {status == NB_OK ? 1.0 : 0.0, (double)C, (double)C * (double)C, (double)m};
        double scratch[4];
        int summed = mpi_sum_serialized(header, NB_FLOAT64, 4, scratch);
        if (summed != NB_OK) {
            nb_tape_fail(tape, summed, "sync_batch_norm: %s", nb_last_error());
            return NULL;
        }
        if (status != NB_OK) return NULL;   /* this rank's own message is on the tape */
        double size = (double)nb_mpi.size;
        if (header[0] < size) {
            nb_tape_fail(tape, NB_ERR_INVALID, "sync_batch_norm: input %s: the arguments were rejected on %g of "
                         "%d ranks (their messages say why)", sx, size - header[0], nb_mpi.size);
            return NULL;
        }
        if (header[2] * size != header[1] * header[1]) {
            nb_tape_fail(tape, NB_ERR_INVALID, "sync_batch_norm: input %s has %lld channels but the ranks' "
                         "channel counts differ (mean %g); every rank needs the same C", sx, (long long)C,
                         header[1] / size);
            return NULL;
        }
        params.count = (int64_t)header[3];
    } else if (status != NB_OK) {
        return NULL;
    }
    if (params.count < 2) {
        nb_tape_fail(tape, NB_ERR_INVALID, "sync_batch_norm: input %s: expected more than 1 value per channel "
                     "when training (the global batch has %lld)", sx, (long long)params.count);
        return NULL;
    }
    nb_tensor *inputs[3] = {x, gamma, beta};
    return nb_apply(tape, &mpi_sync_batch_norm_op, gamma ? 3 : 1, inputs, &params);
}

/* ---- the layer ------------------------------------------------------------- */

static nb_tensor *sync_batch_norm_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    nb_batch_norm_params p = m->config.batch_norm;
    p.running_mean = nb_module_tensor(m, "running_mean");
    p.running_var = nb_module_tensor(m, "running_var");
    p.training = m->training;
    return nb_mpi_sync_batch_norm(tape, x, nb_module_tensor(m, "weight"), nb_module_tensor(m, "bias"), &p);
}

/* Every BatchNorm2d of the tree becomes a SyncBatchNorm: the kind and
 * forward change, the tensors, settings and description stay. */
static int convert(nb_module *m)
{
    int count = 0;
    if (m->kind && strcmp(m->kind, "BatchNorm2d") == 0) {
        m->kind = "SyncBatchNorm";
        m->forward = sync_batch_norm_forward;
        count++;
    }
    for (int i = 0; i < m->n_children; i++)
        if (m->children[i]) count += convert(m->children[i]);
    return count;
}

int nb_mpi_convert_sync_batch_norm(nb_module *root)
{
    if (!root) return nb_fail(NB_ERR_INVALID, "mpi_convert_sync_batch_norm: module is NULL");
    return convert(root);
}

nb_module *nb_mpi_sync_batch_norm2d(int64_t channels)
{
    nb_module *m = nb_nn_batch_norm2d(channels);
    if (m) convert(m);
    return m;
}
