/* The ring all-reduce (Patarasuk and Yuan 2009; Baidu's ring-allreduce):
 * size - 1 reduce-scatter steps, then size - 1 all-gather steps, each rank
 * sending one chunk to its right neighbour and receiving one from its
 * left. Every rank sends 2 (size - 1) / size of the buffer in all. */
#include <limits.h>

#include "distributed/internal.h"

enum { TAG_REDUCE = 17, TAG_GATHER = 18 };

/* Chunk c of count elements split in size near-equal parts. */
static int64_t chunk_begin(int64_t count, int size, int c)
{
    return count * c / size;
}

static int exchange(void *send, int64_t send_count, void *receive, int64_t receive_count, size_t element,
                    int tag)
{
    int right = (nb_mpi.rank + 1) % nb_mpi.size, left = (nb_mpi.rank + nb_mpi.size - 1) % nb_mpi.size;
    if ((uint64_t)send_count * element > INT_MAX || (uint64_t)receive_count * element > INT_MAX)
        return nb_fail(NB_ERR_INVALID, "mpi: a ring chunk of more than 2^31 - 1 bytes (%lld elements)",
                       (long long)send_count);
    return mpi_check(MPI_Sendrecv(send, (int)(send_count * (int64_t)element), MPI_BYTE, right, tag, receive,
                                  (int)(receive_count * (int64_t)element), MPI_BYTE, left, tag, nb_mpi.comm,
                                  MPI_STATUS_IGNORE),
                     "MPI_Sendrecv");
}

/* dst[i] = received[i] + dst[i]: the running sum arrives from the left
 * and this rank's value is added last. */
static void add_f32(float *dst, const float *received, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = received[i] + dst[i];
}

static void add_f64(double *dst, const double *received, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = received[i] + dst[i];
}

int mpi_ring_allreduce(void *values, nb_dtype dtype, int64_t count, void *scratch)
{
    int size = nb_mpi.size, rank = nb_mpi.rank;
    if (size == 1 || count == 0) return NB_OK;
    size_t element = nb_dtype_size(dtype);
    unsigned char *base = values;
    /* Reduce-scatter: at step s, send chunk rank - s, receive chunk
     * rank - s - 1 and add. After size - 1 steps rank r holds the whole sum
     * of chunk r + 1, begun at rank r + 1 and added around the ring. */
    for (int s = 0; s < size - 1; s++) {
        int send_c = ((rank - s) % size + size) % size, recv_c = ((rank - s - 1) % size + size) % size;
        int64_t send_begin = chunk_begin(count, size, send_c), send_n = chunk_begin(count, size, send_c + 1) - send_begin;
        int64_t recv_begin = chunk_begin(count, size, recv_c), recv_n = chunk_begin(count, size, recv_c + 1) - recv_begin;
        int status = exchange(base + send_begin * (int64_t)element, send_n, scratch, recv_n, element, TAG_REDUCE);
        if (status != NB_OK) return status;
        if (dtype == NB_FLOAT32) add_f32((float *)values + recv_begin, scratch, recv_n);
        else add_f64((double *)values + recv_begin, scratch, recv_n);
    }
    /* All-gather: pass the finished chunks on around the ring. */
    for (int s = 0; s < size - 1; s++) {
        int send_c = ((rank + 1 - s) % size + size) % size, recv_c = ((rank - s) % size + size) % size;
        int64_t send_begin = chunk_begin(count, size, send_c), send_n = chunk_begin(count, size, send_c + 1) - send_begin;
        int64_t recv_begin = chunk_begin(count, size, recv_c), recv_n = chunk_begin(count, size, recv_c + 1) - recv_begin;
        int status = exchange(base + send_begin * (int64_t)element, send_n, base + recv_begin * (int64_t)element,
                              recv_n, element, TAG_GATHER);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}
