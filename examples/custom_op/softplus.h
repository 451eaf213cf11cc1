/* A user-defined op, built outside the library against the public header:
 *   user_softplus: y = log(1 + e^x), computed as max(x,0) + log1p(e^-|x|).
 * Registered op names are unique and the library has its own softplus
 * (nb_softplus, with beta and threshold), so the example op has its own name. */
#ifndef SOFTPLUS_H
#define SOFTPLUS_H

#include "nabla.h"

extern const nb_op user_softplus_op;
nb_tensor *user_softplus(nb_tape *tape, nb_tensor *x);

#endif
