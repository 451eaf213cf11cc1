/* The op registry: the built-in descriptors named in ops/op_list.h, then
 * user ops added with nb_op_register. A node points at its descriptor, so
 * the registry only serves listing and lookup (gradcheck, tools). */
#include <string.h>

#include "base/alloc.h"
#include "nabla/op.h"

#define NB_OP(symbol) extern const nb_op symbol;
#include "ops/op_list.h"
#undef NB_OP

static const nb_op *const builtin_ops[] = {
#define NB_OP(symbol) &symbol,
#include "ops/op_list.h"
#undef NB_OP
};

enum { BUILTIN_COUNT = sizeof builtin_ops / sizeof builtin_ops[0], USER_CAPACITY = 256 };

static const nb_op *user_ops[USER_CAPACITY];
static int user_count;

int nb_op_register(const nb_op *op)
{
    int status = nb_op_check_descriptor(op, "nb_op_register");
    if (status != NB_OK) return status;
    if (nb_op_find(op->name))
        return nb_fail(NB_ERR_INVALID, "nb_op_register: an op named '%s' is already registered",
                       op->name);
    if (user_count == USER_CAPACITY)
        return nb_fail(NB_ERR_INVALID, "nb_op_register: more than %d user ops", USER_CAPACITY);
    user_ops[user_count++] = op;
    return NB_OK;
}

int nb_op_count(void) { return BUILTIN_COUNT + user_count; }

const nb_op *nb_op_at(int index)
{
    if (index < 0 || index >= nb_op_count()) return NULL;
    return index < BUILTIN_COUNT ? builtin_ops[index] : user_ops[index - BUILTIN_COUNT];
}

const nb_op *nb_op_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < nb_op_count(); i++)
        if (strcmp(nb_op_at(i)->name, name) == 0) return nb_op_at(i);
    return NULL;
}
