/* Internal: the MPI state shared by the files of distributed/. */
#ifndef NABLA_DISTRIBUTED_INTERNAL_H
#define NABLA_DISTRIBUTED_INTERNAL_H

#include <mpi.h>

#include "nabla/mpi.h"
#include "nabla/status.h"

typedef struct mpi_state {
    bool ready;               /* nb_mpi_init succeeded */
    bool initialised_here;    /* so nb_mpi_finalize finalises */
    int thread_level;         /* what MPI_Init_thread provided */
    MPI_Comm comm;            /* the library's duplicate of MPI_COMM_WORLD */
    int rank, size;
    void *scratch;            /* nb_mpi_allreduce_sum's receive buffer, kept between calls */
    size_t scratch_bytes;
} mpi_state;

extern mpi_state nb_mpi;

/* NB_OK, or NB_ERR_IO with "mpi: <call> failed: <MPI's error text>". */
int mpi_check(int code, const char *call);
/* Fails with NB_ERR_STATE unless nb_mpi_init has run; who names the caller. */
int mpi_require(const char *who);

/* Sums values[0..count) of dtype over the ranks of nb_mpi.comm in place
 * with a ring (reduce-scatter then all-gather): chunk c is added in the
 * fixed order c, c+1, ... (mod size) and the finished chunk is copied to
 * everyone, so every rank holds the same bits. scratch holds at least
 * ceil(count / size) elements. */
int mpi_ring_allreduce(void *values, nb_dtype dtype, int64_t count, void *scratch);

#endif
