/* The tape's matrix-product precision (nabla/tape.h): which GEMM the
 * product ops run for float32 nodes recorded from now on. */
#include <string.h>

#include "autograd/internal.h"

static const char *const NAMES[] = {"inherit", "fp32", "bf16"};
enum { NAME_COUNT = sizeof NAMES / sizeof NAMES[0] };

const char *nb_precision_name(nb_precision precision)
{
    return (unsigned)precision < NAME_COUNT ? NAMES[precision] : "unknown";
}

int nb_precision_parse(const char *name, nb_precision *out)
{
    for (int i = 0; name && i < NAME_COUNT; i++)
        if (strcmp(name, NAMES[i]) == 0) {
            if (out) *out = (nb_precision)i;
            return NB_OK;
        }
    return nb_fail(NB_ERR_INVALID, "precision \"%s\" is not one of fp32, bf16 (or inherit)",
                   name ? name : "(null)");
}

int nb_tape_set_precision(nb_tape *tape, nb_precision precision)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "nb_tape_set_precision: tape is NULL");
    if (precision != NB_PRECISION_FP32 && precision != NB_PRECISION_BF16)
        return nb_fail(NB_ERR_INVALID,
                       "nb_tape_set_precision: %d is not NB_PRECISION_FP32 or NB_PRECISION_BF16 "
                       "(a tape has no parent to inherit from)", (int)precision);
    tape->precision = precision;
    return NB_OK;
}

nb_precision nb_tape_precision(const nb_tape *tape)
{
    return tape ? tape->precision : NB_PRECISION_FP32;
}
