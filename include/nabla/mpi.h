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
 * Overlap: the parameters are grouped into buckets (1 MiB, then 25 MiB),
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
 * aborting; they come back as nabla errors (NB_ERR_IO, and nb_last_error
 * naming the call and MPI's text, e.g. "mpi: MPI_Sendrecv failed:
 * MPI_ERR_TRUNCATE: message truncated"). A rank that dies makes mpirun end
 * the whole job with a message naming it. */
#ifndef NABLA_MPI_H
#define NABLA_MPI_H
#include "nabla/export.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nabla/nn.h"
#include "nabla/op.h"
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
 * (the ring below). dtype float32 or float64. Safe during a backward with
 * an nb_mpi_ddp (from an op or a hook, on the thread that runs the
 * backward): the sum then waits its turn behind the buckets already
 * handed to the communication thread, so every rank pairs up. */
NB_API int nb_mpi_allreduce_sum(void *values, nb_dtype dtype, int64_t count);

/* ---- DistributedDataParallel ------------------------------------------------ */
typedef struct nb_mpi_ddp nb_mpi_ddp;
typedef struct nb_mpi_ddp_options {
    size_t first_bucket_bytes;   /* the first bucket (the last layers); default 1 MiB */
    size_t bucket_bytes;         /* the others; default 25 MiB (PyTorch's bucket_cap_mb) */
    bool overlap;          /* all-reduce on a communication thread during backward (default true) */
} nb_mpi_ddp_options;
/* The defaults, unless the environment says otherwise:
 * NABLA_MPI_OVERLAP=0 reduces every bucket after the backward instead,
 * NABLA_MPI_BUCKET_BYTES=N sets both bucket sizes. */
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

/* ---- SyncBatchNorm ---------------------------------------------------------- */
/* PyTorch's SyncBatchNorm: batch norm whose training statistics are those
 * of the global batch, all ranks' slices (which may differ in N), not this
 * rank's alone. Otherwise as nb_batch_norm (same params and defaults, p
 * NULL: training): the running stats take the unbiased variance over the
 * global count, eval mode is nb_batch_norm itself (no communication), and
 * on one rank (or before nb_mpi_init) the results are nb_batch_norm's bit
 * for bit. Per-channel sums go through the deterministic ring in float64,
 * so every rank holds the same statistics: in forward the count, the sum,
 * then the squared deviations from the global mean; in backward (only when
 * x needs a gradient) w_r sum dy and w_r sum dy xhat, so that rank r's dx
 * is dF/dx_r / w_r for the DDP objective F = sum_r w_r L_r. w_r is this
 * rank's weight in the newest live nb_mpi_ddp (nb_mpi_ddp_set_weight;
 * 1 / world size without one); with equal weights dx is PyTorch's.
 * dgamma and dbeta are this rank's own sums, which the DDP weights and
 * adds.
 *
 * Every rank must run the same graph (the same sync batch norms, training
 * on all or none, x needing a gradient on all or none): the exchanges pair
 * up by order. A bad argument on any rank (a different channel count, a
 * wrong gamma, a failed earlier op) fails the op on every rank instead of
 * leaving the others waiting, each rank naming its input. MPI calls: while
 * a DDP's communication thread exists (overlap on, more than one rank) the
 * exchanges are jobs on that thread, queued behind the gradient buckets
 * already handed over, as MPI_THREAD_SERIALIZED requires; otherwise they
 * run on the calling thread. No backward_ops (no nb_grad graph). */
/* y = gamma[c] (x - mean_c) / sqrt(var_c + eps) + beta[c], mean_c and var_c over all ranks' x [N,C,...] */
NB_API nb_tensor *nb_mpi_sync_batch_norm(nb_tape *tape, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                                         const nb_batch_norm_params *p);
/* A SyncBatchNorm layer: nb_nn_batch_norm2d's parameters, buffers, names
 * (weight, bias, running_mean, running_var) and init, so state dicts and
 * checkpoints are interchangeable, with nb_mpi_sync_batch_norm as its
 * forward. */
NB_API nb_module *nb_mpi_sync_batch_norm2d(int64_t channels);
/* PyTorch's SyncBatchNorm.convert_sync_batchnorm: every BatchNorm2d in the
 * tree becomes a SyncBatchNorm in place, keeping its tensors and settings.
 * Returns how many were converted, or a negative status. */
NB_API int nb_mpi_convert_sync_batch_norm(nb_module *root);
/* The op's descriptor ("sync_batch_norm"), for nb_op_register and
 * nb_gradcheck_op; its sample cases are single-process. */
NB_API const nb_op *nb_mpi_sync_batch_norm_op(void);

#ifdef __cplusplus
}
#endif
#endif
