/* MPI setup, the library's communicator, broadcasts and the public sum. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "distributed/internal.h"

mpi_state nb_mpi = {.rank = 0, .size = 1};

int mpi_check(int code, const char *call)
{
    if (code == MPI_SUCCESS) return NB_OK;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return nb_fail(NB_ERR_IO, "mpi: %s failed: %s", call, text);
}

int mpi_require(const char *who)
{
    if (nb_mpi.ready) return NB_OK;
    return nb_fail(NB_ERR_STATE, "%s: MPI is not initialised (call nb_mpi_init first)", who);
}

int nb_mpi_init(int *argc, char ***argv)
{
    if (nb_mpi.ready) return NB_OK;
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        /* SERIALIZED: the communication thread makes MPI calls while the
         * main thread makes none; MULTIPLE would cost locks for nothing. */
        int status = mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &nb_mpi.thread_level),
                               "MPI_Init_thread");
        if (status != NB_OK) return status;
        nb_mpi.initialised_here = true;
    } else {
        MPI_Query_thread(&nb_mpi.thread_level);
    }
    /* Errors on our communicator come back as codes, so they reach the
     * caller as nabla errors instead of aborting the job. */
    int status = mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &nb_mpi.comm), "MPI_Comm_dup");
    if (status != NB_OK) return status;
    MPI_Comm_set_errhandler(nb_mpi.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(nb_mpi.comm, &nb_mpi.rank);
    MPI_Comm_size(nb_mpi.comm, &nb_mpi.size);
    nb_mpi.ready = true;
    return NB_OK;
}

int nb_mpi_finalize(void)
{
    if (!nb_mpi.ready) return NB_OK;
    MPI_Comm_free(&nb_mpi.comm);
    nb_free(nb_mpi.scratch);
    nb_mpi.scratch = NULL;
    nb_mpi.scratch_bytes = 0;
    nb_mpi.ready = false;
    nb_mpi.rank = 0;
    nb_mpi.size = 1;
    if (nb_mpi.initialised_here) {
        nb_mpi.initialised_here = false;
        return mpi_check(MPI_Finalize(), "MPI_Finalize");
    }
    return NB_OK;
}

void nb_mpi_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(nb_mpi.ready ? nb_mpi.comm : MPI_COMM_WORLD, code ? code : 1);
}

int nb_mpi_rank(void) { return nb_mpi.rank; }
int nb_mpi_world_size(void) { return nb_mpi.size; }

int nb_mpi_barrier(void)
{
    int status = mpi_require("mpi_barrier");
    return status != NB_OK ? status : mpi_check(MPI_Barrier(nb_mpi.comm), "MPI_Barrier");
}

/* FNV-1a over the dtypes and shapes: every rank must describe the same
 * tensors before any data moves. */
static uint64_t signature(nb_tensor *const *tensors, int count)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < count; i++) {
        int64_t words[2 + NB_MAX_DIMS] = {tensors[i]->dtype, tensors[i]->ndim};
        memcpy(words + 2, tensors[i]->shape, sizeof tensors[i]->shape);
        const unsigned char *p = (const unsigned char *)words;
        for (size_t k = 0; k < sizeof words; k++) h = (h ^ p[k]) * 0x100000001b3ull;
    }
    return h ^ (uint64_t)count;
}

/* Every rank learns whether all ranks gave the same signature, so they
 * fail together instead of some waiting for data that never comes. */
static int check_same_everywhere(uint64_t mine, const char *who)
{
    uint64_t all_and = 0, all_or = 0;
    int status = mpi_check(MPI_Allreduce(&mine, &all_and, 1, MPI_UINT64_T, MPI_BAND, nb_mpi.comm), "MPI_Allreduce");
    if (status == NB_OK)
        status = mpi_check(MPI_Allreduce(&mine, &all_or, 1, MPI_UINT64_T, MPI_BOR, nb_mpi.comm), "MPI_Allreduce");
    if (status != NB_OK) return status;
    if (all_and != mine || all_or != mine)
        return nb_fail(NB_ERR_INVALID, "%s: the ranks hold tensors of different shapes or dtypes "
                       "(different models?)", who);
    return NB_OK;
}

int nb_mpi_broadcast(nb_tensor *const *tensors, int count, int root)
{
    int status = mpi_require("mpi_broadcast");
    if (status != NB_OK) return status;
    if (!tensors || count < 0 || root < 0 || root >= nb_mpi.size)
        return nb_fail(NB_ERR_INVALID, "mpi_broadcast: bad arguments (count %d, root %d of %d ranks)", count,
                       root, nb_mpi.size);
    for (int i = 0; i < count; i++)
        if (!tensors[i]) return nb_fail(NB_ERR_INVALID, "mpi_broadcast: tensor %d is NULL", i);
    status = check_same_everywhere(signature(tensors, count), "mpi_broadcast");
    for (int i = 0; i < count && status == NB_OK; i++) {
        size_t bytes = (size_t)tensors[i]->numel * nb_dtype_size(tensors[i]->dtype);
        if (bytes > (size_t)INT32_MAX)
            return nb_fail(NB_ERR_INVALID, "mpi_broadcast: tensor %d has %zu bytes; at most 2^31 - 1 at once", i, bytes);
        status = mpi_check(MPI_Bcast(tensors[i]->data, (int)bytes, MPI_BYTE, root, nb_mpi.comm), "MPI_Bcast");
    }
    return status;
}

int nb_mpi_broadcast_module(nb_module *module, int root)
{
    if (!module) return nb_fail(NB_ERR_INVALID, "mpi_broadcast_module: module is NULL");
    int count = nb_module_state(module, NULL, 0);
    nb_named_tensor *state = nb_malloc((size_t)(count ? count : 1) * sizeof *state);
    nb_tensor **tensors = nb_malloc((size_t)(count ? count : 1) * sizeof *tensors);
    int status = state && tensors ? NB_OK : NB_ERR_NOMEM;
    if (status == NB_OK) {
        nb_module_state(module, state, count);
        for (int i = 0; i < count; i++) tensors[i] = state[i].tensor;
        status = nb_mpi_broadcast(tensors, count, root);
    }
    nb_free(state);
    nb_free(tensors);
    return status;
}

int nb_mpi_allreduce_sum(void *values, nb_dtype dtype, int64_t count)
{
    int status = mpi_require("mpi_allreduce_sum");
    if (status != NB_OK) return status;
    if ((!values && count > 0) || count < 0 || (dtype != NB_FLOAT32 && dtype != NB_FLOAT64))
        return nb_fail(NB_ERR_INVALID, "mpi_allreduce_sum: needs float32 or float64 values and count >= 0 "
                       "(got %s, %lld)", nb_dtype_name(dtype), (long long)count);
    /* The receive buffer stays for the next call, so a training loop that
     * sums a few statistics every step allocates only once. */
    int64_t chunk = (count + nb_mpi.size - 1) / nb_mpi.size;
    size_t bytes = (size_t)(chunk ? chunk : 1) * nb_dtype_size(dtype);
    if (bytes > nb_mpi.scratch_bytes) {
        void *grown = nb_malloc(bytes);
        if (!grown) return NB_ERR_NOMEM;
        nb_free(nb_mpi.scratch);
        nb_mpi.scratch = grown;
        nb_mpi.scratch_bytes = bytes;
    }
    /* Through the DDP's queue when a backward may have its thread in MPI. */
    return mpi_sum_serialized(values, dtype, count, nb_mpi.scratch);
}
