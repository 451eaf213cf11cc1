/* Internal: allocation and error reporting shared by the whole library.
 * nb_malloc, nb_calloc, nb_free and nb_fail are public (nabla/status.h):
 * libraries built on nabla, such as the data loader, use them too. */
#ifndef NABLA_INTERNAL_ALLOC_H
#define NABLA_INTERNAL_ALLOC_H

#include <stddef.h>

#include "nabla/status.h"

#endif
