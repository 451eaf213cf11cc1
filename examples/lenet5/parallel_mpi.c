/* lenet5's data parallelism over MPI (nabla_mpi). */
#include <stdio.h>

#include "nabla/mpi.h"
#include "parallel.h"

int parallel_start(parallel *p, bool distributed, int *argc, char ***argv)
{
    *p = (parallel){.distributed = distributed, .rank = 0, .size = 1};
    if (!distributed) return 0;
    if (nb_mpi_init(argc, argv) != NB_OK) return fprintf(stderr, "lenet5: %s\n", nb_last_error()), -1;
    p->rank = nb_mpi_rank();
    p->size = nb_mpi_world_size();
    return 0;
}

int parallel_attach(parallel *p, nb_module *model)
{
    if (!p->distributed) return 0;
    p->ddp = nb_mpi_ddp_new(model, NULL);
    if (!p->ddp) return fprintf(stderr, "lenet5: rank %d: %s\n", p->rank, nb_last_error()), -1;
    return 0;
}

int parallel_backward(parallel *p, nb_tape *tape, nb_tensor *loss, int64_t local, int64_t global)
{
    if (!p->distributed) return nb_backward(tape, loss, NULL);
    if (nb_mpi_ddp_set_weight(p->ddp, (double)local / (double)global) != NB_OK) return -1;
    return nb_mpi_ddp_backward(p->ddp, tape, loss);
}

int parallel_sum(parallel *p, double *values, int count)
{
    return p->distributed ? nb_mpi_allreduce_sum(values, NB_FLOAT64, count) : NB_OK;
}

void parallel_report(const parallel *p, double *reduce_seconds, double *wait_seconds, int64_t *steps)
{
    nb_mpi_ddp_stats s = nb_mpi_ddp_get_stats(p->ddp);
    *reduce_seconds = s.reduce_seconds;
    *wait_seconds = s.wait_seconds;
    *steps = s.steps;
}

void parallel_end(parallel *p, int status)
{
    if (!p->distributed) return;
    if (status != 0) nb_mpi_abort(status);
    nb_mpi_ddp_free(p->ddp);
    p->ddp = NULL;
    nb_mpi_finalize();
}
