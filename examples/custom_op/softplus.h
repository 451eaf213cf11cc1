/* A user-defined op, built outside the library against the public header:
 *   softplus: y = log(1 + e^x), computed as max(x,0) + log1p(e^-|x|). */
#ifndef SOFTPLUS_H
#define SOFTPLUS_H

#include "nabla.h"

extern const nb_op softplus_op;
nb_tensor *softplus(nb_tape *tape, nb_tensor *x);

#endif
