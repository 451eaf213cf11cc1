/* What tests/torch_parity_driver.c shares with its loss half
 * (tests/torch_parity_losses.c): the stdin readers. Each exits with code 3
 * on malformed input. */
#ifndef NABLA_TESTS_TORCH_PARITY_H
#define NABLA_TESTS_TORCH_PARITY_H

#include <stdbool.h>

#include "nabla.h"

int parity_read_int(void);
double parity_read_double(void);
/* A persistent tensor: ndim, dims, values (row-major). */
nb_tensor *parity_read_tensor(nb_dtype dtype);

/* The losses and cosine_similarity: their header arguments, and the
 * tensors their params point at (weight, pos_weight), read after the
 * inputs. */
typedef struct parity_loss {
    const char *op;
    int reduction, has_weight, has_pos_weight, has_ignore, ignore_index, flag, dim;
    double value;           /* beta, delta, margin, eps or label smoothing */
    nb_tensor *weight, *pos_weight;
} parity_loss;

/* Reads the arguments after "op NAME"; false when NAME is not one of these. */
bool parity_loss_read_header(const char *op, parity_loss *loss);
void parity_loss_read_tensors(parity_loss *loss, nb_dtype dtype);
nb_tensor *parity_loss_apply(nb_tape *tape, const parity_loss *loss, nb_tensor *const *inputs,
                             int n);
void parity_loss_free(parity_loss *loss);

#endif
