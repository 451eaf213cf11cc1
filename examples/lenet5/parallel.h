/* lenet5's data parallelism: one rank per process under mpirun, gradients
 * summed with nabla_mpi. Built without MPI, --distributed reports that and
 * a single process trains as before. */
#ifndef LENET5_PARALLEL_H
#define LENET5_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla.h"

typedef struct parallel {
    bool distributed;
    int rank, size;
    void *ddp;          /* nb_mpi_ddp with MPI */
} parallel;

/* Single process (distributed false), or nb_mpi_init. 0, or -1 with a
 * message printed. */
int parallel_start(parallel *p, bool distributed, int *argc, char ***argv);
/* Rank 0's weights everywhere and the gradient hooks (distributed only). */
int parallel_attach(parallel *p, nb_module *model);
/* Backward of this rank's loss, then the weighted sum of the gradients:
 * this rank holds `local` images of a global batch of `global`. */
int parallel_backward(parallel *p, nb_tape *tape, nb_tensor *loss, int64_t local, int64_t global);
/* values summed over ranks in place (a no-op for one process). */
int parallel_sum(parallel *p, double *values, int count);
/* The all-reduce time and the part the backward did not hide, so far. */
void parallel_report(const parallel *p, double *reduce_seconds, double *wait_seconds, int64_t *steps);
/* After a failure on a rank (status != 0) the whole job ends: the other
 * ranks may be waiting for this one in a collective. */
void parallel_end(parallel *p, int status);

#endif
