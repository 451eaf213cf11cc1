/* lenet5 built without MPI: one process, and --distributed says why not. */
#include <stdio.h>

#include "parallel.h"

int parallel_start(parallel *p, bool distributed, int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    *p = (parallel){.distributed = false, .rank = 0, .size = 1};
    if (!distributed) return 0;
    fprintf(stderr, "lenet5: --distributed needs nabla_mpi, which this build left out: install MPI "
                    "(Debian: libopenmpi-dev openmpi-bin) and reconfigure with meson\n");
    return -1;
}

int parallel_attach(parallel *p, nb_module *model)
{
    (void)p;
    (void)model;
    return 0;
}

int parallel_backward(parallel *p, nb_tape *tape, nb_tensor *loss, int64_t local, int64_t global)
{
    (void)p;
    (void)local;
    (void)global;
    return nb_backward(tape, loss, NULL);
}

int parallel_sum(parallel *p, double *values, int count)
{
    (void)p;
    (void)values;
    (void)count;
    return NB_OK;
}

void parallel_report(const parallel *p, double *reduce_seconds, double *wait_seconds, int64_t *steps)
{
    (void)p;
    *reduce_seconds = *wait_seconds = 0;
    *steps = 0;
}

void parallel_end(parallel *p, int status)
{
    (void)p;
    (void)status;
}
