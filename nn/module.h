/* Internal: helpers for writing layers. */
#ifndef NABLA_NN_MODULE_H
#define NABLA_NN_MODULE_H

#include "base/alloc.h"
#include "nabla/nn.h"

/* A zeroed module of `kind` with the given forward; NULL on OOM. */
nb_module *nb_module_new(const char *kind, nb_module_forward_fn forward);
/* Adds a parameter (requires_grad) or buffer; takes ownership of t. On
 * failure frees t and returns an error. */
int nb_module_add_tensor(nb_module *m, const char *name, nb_tensor *t, bool is_buffer);
/* Fails with "<kind>: input is NULL"-style sticky handling: returns true
 * when the forward may go on. */
bool nb_module_input_ok(nb_module *m, nb_tape *tape, nb_tensor *x);

#endif
