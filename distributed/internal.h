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

/* For ops that communicate (sync_batch_norm), also in the middle of a
 * backward sweep: sums values[0..count) over the ranks in place with the
 * ring (same bits on every rank). While the newest live nb_mpi_ddp has a
 * communication thread the sum runs there, queued behind the buckets
 * already handed over (MPI_THREAD_SERIALIZED: one thread in MPI at a
 * time), and the caller waits; otherwise (no thread, or nothing queued)
 * here. dtype float32 or float64; scratch holds ceil(count / size)
 * elements. NB_OK at once on one rank. Call it from the thread that runs
 * the backward (the one that hands buckets over). */
int mpi_sum_serialized(void *values, nb_dtype dtype, int64_t count, void *scratch);
/* This rank's weight in the newest live nb_mpi_ddp (nb_mpi_ddp_set_weight),
 * or 1 / world size when there is none. */
double mpi_ddp_weight(void);

#endif
