/* Checks for the plain MPI test programs (test_mpi.c, test_mpi_sync_bn.c;
 * Criterion's forked workers cannot share one MPI job): CHECK reports a
 * failed condition with the rank and counts it; mpi_checks_finish gives
 * every rank the job's verdict, finalises MPI and returns the exit code. */
#ifndef NABLA_TESTS_MPI_CHECKS_H
#define NABLA_TESTS_MPI_CHECKS_H

#include <stdio.h>

#include "nabla/mpi.h"

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "rank %d: %s:%d: ", nb_mpi_rank(), __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* Every rank learns whether any failed, so the job's exit says so. */
static inline int mpi_checks_finish(const char *program)
{
    double failed = failures;
    nb_mpi_allreduce_sum(&failed, NB_FLOAT64, 1);
    if (nb_mpi_rank() == 0)
        printf("%s: %d ranks, %s\n", program, nb_mpi_world_size(), failed ? "FAILED" : "all checks passed");
    nb_mpi_finalize();
    return failed ? 1 : 0;
}

#endif
