/* Internal: helpers for writing layers. */
#ifndef NABLA_NN_MODULE_H
#define NABLA_NN_MODULE_H

#include "base/alloc.h"
#include "nabla/nn.h"

#include <stddef.h>

/* Adds a parameter (requires_grad) or buffer; takes ownership of t. On
 * failure frees t and returns an error. */
int nb_module_add_tensor(nb_module *m, const char *name, nb_tensor *t, bool is_buffer);
/* Fails with "<kind>: input is NULL"-style sticky handling: returns true
 * when the forward may go on. */
bool nb_module_input_ok(nb_module *m, nb_tape *tape, nb_tensor *x);

/* Writes m->description (printf-style): the hyper-parameters printing shows. */
void nb_module_describe(nb_module *m, const char *fmt, ...) NB_PRINTF(2, 3);
/* "2" when both entries are equal, else "(2, 3)", as PyTorch prints a pair. */
const char *nb_pair_string(const int pair[2], char *buf, size_t size);

#endif
