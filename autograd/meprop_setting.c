/* meProp's setting: validation, the units kept, and the tape-wide setting
 * every linear and conv2d node without its own follows (the engine holds
 * it; the sparse backwards are ops, ops/meprop/ and ops/conv2d/). */
#include <math.h>
#include <string.h>

#include "autograd/internal.h"

const char *nb_meprop_mode_name(nb_meprop_mode mode)
{
    switch (mode) {
    case NB_MEPROP_UNSET: return "unset";
    case NB_MEPROP_DENSE: return "dense";
    case NB_MEPROP_TOPK: return "topk";
    case NB_MEPROP_UNIFIED: return "unified";
    case NB_MEPROP_RANDOM: return "random";
    }
    return "unknown";
}

static bool sparse_mode(nb_meprop_mode mode)
{
    return mode == NB_MEPROP_TOPK || mode == NB_MEPROP_UNIFIED || mode == NB_MEPROP_RANDOM;
}

int nb_meprop_check(const nb_meprop *config, const char *who)
{
    if (!config) return nb_fail(NB_ERR_INVALID, "%s: meProp setting is NULL", who);
    if ((unsigned)config->mode > NB_MEPROP_RANDOM)
        return nb_fail(NB_ERR_INVALID, "%s: unknown meProp mode %d", who, (int)config->mode);
    if (!sparse_mode(config->mode)) return NB_OK;
    if (config->k < 0)
        return nb_fail(NB_ERR_INVALID, "%s: meProp k %lld must be >= 1 (or 0 to use a fraction)",
                       who, (long long)config->k);
    if (config->k == 0 && !(config->fraction > 0.0 && config->fraction <= 1.0))
        return nb_fail(NB_ERR_INVALID, "%s: meProp fraction %g must be in (0, 1] when k is 0",
                       who, config->fraction);
    return NB_OK;
}

int64_t nb_meprop_kept(const nb_meprop *config, int64_t n)
{
    if (!config || !sparse_mode(config->mode) || n <= 0) return n;
    /* The small slack keeps e.g. 0.05 * 500 at 25 despite rounding. */
    if (config->k > 0) return config->k < n ? config->k : n;
    double want = ceil(config->fraction * (double)n - 1e-9);
    /* Checked settings have fraction in (0, 1]; anything else (NaN, huge)
     * keeps every unit rather than overflowing the conversion. */
    if (!(want < (double)n)) return n;
    return want < 1.0 ? 1 : (int64_t)want;
}

int nb_tape_set_meprop(nb_tape *tape, const nb_meprop *config)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "nb_tape_set_meprop: tape is NULL");
    if (!config) {
        memset(&tape->meprop, 0, sizeof tape->meprop);
        return NB_OK;
    }
    int status = nb_meprop_check(config, "nb_tape_set_meprop");
    if (status == NB_OK) tape->meprop = *config;
    return status;
}

nb_meprop nb_tape_meprop(const nb_tape *tape)
{
    nb_meprop none = {0};
    return tape ? tape->meprop : none;
}

uint64_t nb_tape_meprop_draw(nb_tape *tape) { return ++tape->meprop_draws; }
