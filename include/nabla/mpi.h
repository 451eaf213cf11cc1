/* nabla_mpi: data-parallel training over MPI.
 *
 * An optional library, built when meson finds MPI (Open MPI on Debian:
 * libopenmpi-dev); the core library never depends on it. One process
 * (rank) per core or machine, each holding a full copy of the model and
 * training on its own slice of every global batch (nb_loader_options'
 * shard_index/shard_count). After each backward the gradients are summed
 * across ranks, weighted, so every rank takes the same optimizer step and
 * the copies stay identical, as PyTorch's DistributedDataParallel does:
 *
 *   nb_mpi_init(&argc, &argv);
 *   nb_mpi_ddp *ddp = nb_mpi_ddp_new(model, NULL);   // rank 0's weights everywhere
 *   ... per step:
 *   nb_mpi_ddp_set_weight(ddp, (double)local_batch / global_batch);
 *   nb_mpi_ddp_backward(ddp, tape, loss);              // nb_backward + all-reduce
 *   nb_optimizer_step(opt);
 *   ...
 *   nb_mpi_ddp_free(ddp);
 *   nb_mpi_finalize();
 *
 * Overlap: the parameters are grouped into buckets of about bucket_bytes,
 * in reverse order (the order backward finishes them). Each parameter's
 * gradient hook (nb_tensor_set_hook, run as soon as the gradient is
 * complete) marks it ready; a full bucket is handed to a communication
 * thread, which all-reduces it while the sweep goes on through the earlier
 * layers. nb_mpi_ddp_finish waits for the last bucket.
 *
 * Determinism: the sum is a ring all-reduce written here on MPI
 * point-to-point calls, not MPI_Allreduce: element i of a bucket is always
 * added in the same rank order, and every rank receives the same bits. So
 * for a given number of ranks a run is bit-identical run to run and for
 * any thread count per rank. Different rank counts add in different
 * orders and agree to rounding.
 *
 * Errors: the library's communicator returns MPI errors instead of
 * aborting; they come back as nabla errors (a negative status and
 * nb_last_error naming the call, e.g. "mpi: MPI_Sendrecv to rank 1 failed:
 * MPI_ERR_TRUNCATE: message truncated"). A rank that dies makes mpirun end
 * the whole job with a message naming it. */
#ifndef NABLA_MPI_H
#define NABLA_MPI_H
#include "nabla/export.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nabla/nn.h"
#include "nabla/tape.h"
#include "nabla/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Initialises MPI unless the program did (asking for
 * MPI_THREAD_SERIALIZED, which the communication thread needs; with less,
 * nb_mpi_ddp reduces without overlap) and makes the library's own
 * communicator, a duplicate of MPI_COMM_WORLD. argc/argv may be NULL. */
NB_API int nb_mpi_init(int *argc, char ***argv);
/* Frees the communicator and finalises MPI if nb_mpi_init initialised it. */
NB_API int nb_mpi_finalize(void);
/* Ends every rank of the job with exit code `code` (MPI_Abort): after an
 * error on one rank, once it is reported, so the others do not wait for
 * it forever in their next collective. */
NB_API void nb_mpi_abort(int code);
NB_API int nb_mpi_rank(void);          /* 0 before nb_mpi_init */
NB_API int nb_mpi_world_size(void);    /* 1 before nb_mpi_init */
NB_API int nb_mpi_barrier(void);

/* Sends root's values of every tensor to the other ranks (same shapes and
 * dtypes on every rank; checked). */
NB_API int nb_mpi_broadcast(nb_tensor *const *tensors, int count, int root);
/* A module's parameters and buffers, from root. */
NB_API int nb_mpi_broadcast_module(nb_module *module, int root);
/* values[0..count) summed over ranks in place, the same bits on every rank
 * (the ring below). dtype float32 or float64. Not while a backward with an
 * nb_mpi_ddp is between nb_backward and nb_mpi_ddp_finish (its thread is
 * in MPI then). */
NB_API int nb_mpi_allreduce_sum(void *values, nb_dtype dtype, int64_t count);

/* ---- DistributedDataParallel ------------------------------------------------ */
typedef struct nb_mpi_ddp nb_mpi_ddp;
typedef struct nb_mpi_ddp_options {
    size_t bucket_bytes;   /* bucket size (default 64 KiB: LeNet-5 makes 3 buckets) */
    bool overlap;          /* all-reduce on a communication thread during backward (default true) */
} nb_mpi_ddp_options;
/* The defaults, unless the environment says otherwise:
 * NABLA_MPI_OVERLAP=0 reduces every bucket after the backward instead,
 * NABLA_MPI_BUCKET_BYTES=N sets the bucket size. */
NB_API nb_mpi_ddp_options nb_mpi_ddp_default_options(void);
/* Broadcasts the module's parameters and buffers from rank 0 and takes
 * over its parameters' gradient hooks. float32 or float64 parameters;
 * options NULL: the defaults. */
NB_API nb_mpi_ddp *nb_mpi_ddp_new(nb_module *module, const nb_mpi_ddp_options *options);
NB_API void nb_mpi_ddp_free(nb_mpi_ddp *ddp);
/* This rank's weight in the next reductions: the result is
 * sum over ranks of weight_r * gradient_r. Default 1 / world size (the
 * mean, as PyTorch); local batch / global batch makes an uneven split of a
 * global batch give the global batch's mean gradient. */
NB_API int nb_mpi_ddp_set_weight(nb_mpi_ddp *ddp, double weight);
/* Waits until every bucket of the last backward is reduced (a parameter
 * that got no gradient counts as zero and receives the sum). Call between
 * nb_backward and the optimizer step. */
NB_API int nb_mpi_ddp_finish(nb_mpi_ddp *ddp);
/* nb_backward(tape, loss, NULL) then nb_mpi_ddp_finish. */
NB_API int nb_mpi_ddp_backward(nb_mpi_ddp *ddp, nb_tape *tape, nb_tensor *loss);

/* Where the time of the steps so far went, for measuring overlap. */
typedef struct nb_mpi_ddp_stats {
    int64_t steps;            /* finish calls */
    int buckets;              /* buckets per step */
    int64_t bytes;            /* bytes reduced per step */
    double reduce_seconds;    /* spent all-reducing (the communication thread's busy time) */
    double wait_seconds;      /* spent in finish waiting for it: the part not hidden */
} nb_mpi_ddp_stats;
NB_API nb_mpi_ddp_stats nb_mpi_ddp_get_stats(const nb_mpi_ddp *ddp);

#ifdef __cplusplus
}
#endif
#endif
