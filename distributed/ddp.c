/* DistributedDataParallel: gradient buckets filled by gradient hooks and
 * all-reduced in order, on a communication thread while the backward
 * sweep goes on. The thread runs a FIFO of jobs: "reduce bucket k", and
 * "sum this buffer" for ops that communicate during the sweep
 * (sync_batch_norm), since under MPI_THREAD_SERIALIZED only one thread may
 * be inside MPI at a time. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "distributed/internal.h"

/* PyTorch's DistributedDataParallel defaults: a first bucket of 1 MiB
 * (the last layers, so their sum starts early) and 25 MiB after it
 * (bucket_cap_mb). Smaller buckets start sooner but cost a hand-over each;
 * docs/distributed.md measures both. */
enum { DEFAULT_FIRST_BUCKET_BYTES = 1 << 20, DEFAULT_BUCKET_BYTES = 25 << 20 };

typedef struct ddp_slot {
    nb_mpi_ddp *ddp;
    nb_tensor *param;
    int bucket;
    int64_t offset;           /* first element in the flat buffer */
    bool ready;               /* gradient complete in this step */
} ddp_slot;

/* A job of the communication thread; jobs run in the order submitted. */
typedef struct ddp_job {
    int bucket;               /* reduce this bucket, or -1: sum values */
    void *values;             /* [count] of dtype, summed over the ranks in place */
    nb_dtype dtype;
    int64_t count;
    void *scratch;            /* ceil(count / size) elements */
} ddp_job;

typedef struct ddp_bucket {
    int first, count;         /* slots [first, first + count) */
    int64_t offset, elements; /* its range of the flat buffer */
    int pending;              /* slots not ready yet in this step */
} ddp_bucket;

struct nb_mpi_ddp {
    nb_dtype dtype;
    ddp_slot *slots;          /* reverse parameter order */
    int n_slots;
    ddp_bucket *buckets;
    int n_buckets;
    void *flat, *scratch;
    int64_t elements;
    double weight;
    bool threaded;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    ddp_job *jobs;            /* ring of n_buckets + 1: every bucket and one waiting sum */
    int64_t pushed, popped;   /* jobs submitted and finished, ever */
    int handed;               /* buckets given to the communication in this step */
    int reduced;              /* buckets finished in this step */
    bool stop;
    int status;               /* first failure of this step */
    char error[512];
    nb_mpi_ddp_stats stats;
    nb_mpi_ddp *older;        /* the live DDP created before this one */
};

/* The live DDPs, newest first: the newest one's weight and communication
 * thread serve the ops that communicate (mpi_sum_serialized). */
static nb_mpi_ddp *newest;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Weighted gradients in, sum over ranks, sums out. A parameter without a
 * gradient sends zeros and gets one made for the sum (off the steady
 * state: it happens once). */
static int reduce_bucket(nb_mpi_ddp *ddp, const ddp_bucket *b)
{
    size_t element = nb_dtype_size(ddp->dtype);
    for (int i = b->first; i < b->first + b->count; i++) {
        const ddp_slot *s = &ddp->slots[i];
        const nb_tensor *g = s->param->grad;
        int64_t n = s->param->numel;
        if (ddp->dtype == NB_FLOAT32) {
            float *dst = (float *)ddp->flat + s->offset, w = (float)ddp->weight;
            const float *src = g ? g->data : NULL;
            for (int64_t k = 0; k < n; k++) dst[k] = src ? w * src[k] : 0.0f;
        } else {
            double *dst = (double *)ddp->flat + s->offset, w = ddp->weight;
            const double *src = g ? g->data : NULL;
            for (int64_t k = 0; k < n; k++) dst[k] = src ? w * src[k] : 0.0;
        }
    }
    int status = mpi_ring_allreduce((unsigned char *)ddp->flat + b->offset * (int64_t)element, ddp->dtype,
                                    b->elements, ddp->scratch);
    for (int i = b->first; status == NB_OK && i < b->first + b->count; i++) {
        nb_tensor *p = ddp->slots[i].param;
        if (!p->grad && !(p->grad = nb_tensor_new(p->dtype, p->ndim, p->shape))) return NB_ERR_NOMEM;
        memcpy(p->grad->data, (unsigned char *)ddp->flat + ddp->slots[i].offset * (int64_t)element,
               (size_t)p->numel * element);
    }
    return status;
}

/* Records a failure of the communication side, to be reported by finish on
 * the caller's thread (nb_last_error is per thread). */
static void record_failure(nb_mpi_ddp *ddp, int status)
{
    if (ddp->status != NB_OK) return;
    ddp->status = status;
    snprintf(ddp->error, sizeof ddp->error, "%s", nb_last_error());
}

/* Queues a job; the caller holds the lock. */
static void push_job(nb_mpi_ddp *ddp, ddp_job job)
{
    ddp->jobs[ddp->pushed % (ddp->n_buckets + 1)] = job;
    ddp->pushed++;
    pthread_cond_signal(&ddp->wake);
}

static void *communicate(void *arg)
{
    nb_mpi_ddp *ddp = arg;
    pthread_mutex_lock(&ddp->lock);
    for (;;) {
        while (!ddp->stop && ddp->popped == ddp->pushed) pthread_cond_wait(&ddp->wake, &ddp->lock);
        if (ddp->stop) break;
        ddp_job job = ddp->jobs[ddp->popped % (ddp->n_buckets + 1)];
        bool failed = ddp->status != NB_OK;
        pthread_mutex_unlock(&ddp->lock);
        /* After a failure the remaining jobs are skipped: the ranks no
         * longer agree on what comes next. */
        double start = now_seconds();
        int status = NB_OK;
        if (!failed && job.bucket >= 0) status = reduce_bucket(ddp, &ddp->buckets[job.bucket]);
        else if (!failed) status = mpi_ring_allreduce(job.values, job.dtype, job.count, job.scratch);
        double spent = now_seconds() - start;
        pthread_mutex_lock(&ddp->lock);
        if (status != NB_OK) record_failure(ddp, status);
        ddp->stats.reduce_seconds += spent;
        if (job.bucket >= 0) ddp->reduced++;
        ddp->popped++;
        pthread_cond_broadcast(&ddp->done);
    }
    pthread_mutex_unlock(&ddp->lock);
    return NULL;
}

/* Hands every bucket whose turn has come and whose slots are all ready to
 * the communication, in bucket order on every rank (the ring exchanges
 * must pair up). Without a thread nothing moves until finish. */
static void hand_over_ready(nb_mpi_ddp *ddp)
{
    if (!ddp->threaded) return;
    pthread_mutex_lock(&ddp->lock);
    while (ddp->handed < ddp->n_buckets && ddp->buckets[ddp->handed].pending == 0)
        push_job(ddp, (ddp_job){.bucket = ddp->handed++});
    pthread_mutex_unlock(&ddp->lock);
}

static int gradient_ready(nb_tensor *tensor, nb_tensor *grad, void *user)
{
    (void)grad;
    ddp_slot *s = user;
    nb_mpi_ddp *ddp = s->ddp;
    if (s->ready) {
        const char *name = tensor->name ? tensor->name : "a parameter";
        return nb_fail(NB_ERR_STATE, "mpi_ddp: the gradient of %s completed twice before nb_mpi_ddp_finish "
                       "(one backward per step)", name);
    }
    s->ready = true;
    if (--ddp->buckets[s->bucket].pending == 0) hand_over_ready(ddp);
    return NB_OK;
}

/* NABLA_MPI_OVERLAP=0 and NABLA_MPI_BUCKET_BYTES=N change the defaults
 * from outside a program, for measuring what overlap and bucketing buy. */
nb_mpi_ddp_options nb_mpi_ddp_default_options(void)
{
    nb_mpi_ddp_options o = {.first_bucket_bytes = DEFAULT_FIRST_BUCKET_BYTES,
                            .bucket_bytes = DEFAULT_BUCKET_BYTES, .overlap = true};
    const char *overlap = getenv("NABLA_MPI_OVERLAP"), *bytes = getenv("NABLA_MPI_BUCKET_BYTES");
    if (overlap && strcmp(overlap, "0") == 0) o.overlap = false;
    if (bytes && strtoull(bytes, NULL, 10) > 0)
        o.first_bucket_bytes = o.bucket_bytes = (size_t)strtoull(bytes, NULL, 10);
    return o;
}

/* Slots in reverse parameter order, cut into buckets of about
 * first_bucket_bytes, then bucket_bytes (a parameter larger than that
 * gets a bucket of its own). */
static int make_buckets(nb_mpi_ddp *ddp, const nb_named_tensor *params, int count,
                        const nb_mpi_ddp_options *o)
{
    ddp->slots = nb_calloc((size_t)count, sizeof *ddp->slots);
    ddp->buckets = nb_calloc((size_t)count, sizeof *ddp->buckets);
    if (!ddp->slots || !ddp->buckets) return NB_ERR_NOMEM;
    ddp->dtype = params[0].tensor->dtype;
    size_t element = nb_dtype_size(ddp->dtype);
    int64_t largest = 0;
    for (int i = 0; i < count; i++) {
        nb_tensor *p = params[count - 1 - i].tensor;
        if (p->dtype != ddp->dtype || (p->dtype != NB_FLOAT32 && p->dtype != NB_FLOAT64))
            return nb_fail(NB_ERR_INVALID, "mpi_ddp: parameter %s is %s; all must be float32 or all float64",
                           params[count - 1 - i].name, nb_dtype_name(p->dtype));
        ddp_bucket *b = &ddp->buckets[ddp->n_buckets ? ddp->n_buckets - 1 : 0];
        size_t grown = (size_t)((b->elements + p->numel) * (int64_t)element);
        size_t cap = ddp->n_buckets <= 1 ? o->first_bucket_bytes : o->bucket_bytes;
        if (ddp->n_buckets == 0 || (b->count > 0 && grown > cap)) {
            b = &ddp->buckets[ddp->n_buckets++];
            *b = (ddp_bucket){.first = i, .offset = ddp->elements};
        }
        ddp->slots[i] = (ddp_slot){.ddp = ddp, .param = p, .bucket = ddp->n_buckets - 1, .offset = ddp->elements};
        b->count++;
        b->elements += p->numel;
        ddp->elements += p->numel;
        if (b->elements > largest) largest = b->elements;
    }
    ddp->n_slots = count;
    for (int k = 0; k < ddp->n_buckets; k++) ddp->buckets[k].pending = ddp->buckets[k].count;
    int64_t chunk = (largest + nb_mpi.size - 1) / nb_mpi.size;
    ddp->flat = nb_malloc((size_t)ddp->elements * element);
    ddp->scratch = nb_malloc((size_t)(chunk ? chunk : 1) * element);
    ddp->jobs = nb_calloc((size_t)ddp->n_buckets + 1, sizeof *ddp->jobs);
    return ddp->flat && ddp->scratch && ddp->jobs ? NB_OK : NB_ERR_NOMEM;
}

static void free_parts(nb_mpi_ddp *ddp)
{
    nb_free(ddp->slots);
    nb_free(ddp->buckets);
    nb_free(ddp->flat);
    nb_free(ddp->scratch);
    nb_free(ddp->jobs);
    nb_free(ddp);
}

nb_mpi_ddp *nb_mpi_ddp_new(nb_module *module, const nb_mpi_ddp_options *options)
{
    if (mpi_require("mpi_ddp_new") != NB_OK) return NULL;
    nb_mpi_ddp_options o = options ? *options : nb_mpi_ddp_default_options();
    if (!module || o.bucket_bytes == 0 || o.first_bucket_bytes == 0) {
        nb_fail(NB_ERR_INVALID, "mpi_ddp_new: module is NULL or a bucket size is 0");
        return NULL;
    }
    int count = nb_module_parameters(module, NULL, 0);
    if (count < 1) {
        nb_fail(NB_ERR_INVALID, "mpi_ddp_new: the module has no parameters");
        return NULL;
    }
    nb_named_tensor *params = nb_malloc((size_t)count * sizeof *params);
    nb_mpi_ddp *ddp = nb_calloc(1, sizeof *ddp);
    int status = params && ddp ? NB_OK : NB_ERR_NOMEM;
    if (status == NB_OK) {
        nb_module_parameters(module, params, count);
        ddp->weight = 1.0 / nb_mpi.size;
        status = make_buckets(ddp, params, count, &o);
    }
    /* Every rank runs the broadcast, also when its own setup failed, so
     * no rank is left waiting; a failure anywhere fails it everywhere. */
    int broadcast = nb_mpi_broadcast_module(module, 0);
    if (status == NB_OK) status = broadcast;
    nb_free(params);
    if (status != NB_OK) {
        if (ddp) free_parts(ddp);
        return NULL;
    }
    ddp->threaded = o.overlap && nb_mpi.thread_level >= MPI_THREAD_SERIALIZED && nb_mpi.size > 1;
    if (ddp->threaded) {
        pthread_mutex_init(&ddp->lock, NULL);
        pthread_cond_init(&ddp->wake, NULL);
        pthread_cond_init(&ddp->done, NULL);
        if (pthread_create(&ddp->thread, NULL, communicate, ddp) != 0) {
            pthread_mutex_destroy(&ddp->lock);
            pthread_cond_destroy(&ddp->wake);
            pthread_cond_destroy(&ddp->done);
            ddp->threaded = false;   /* reduce in finish instead */
        }
    }
    for (int i = 0; i < ddp->n_slots; i++) nb_tensor_set_hook(ddp->slots[i].param, gradient_ready, &ddp->slots[i]);
    ddp->stats.buckets = ddp->n_buckets;
    ddp->stats.bytes = ddp->elements * (int64_t)nb_dtype_size(ddp->dtype);
    ddp->older = newest;
    newest = ddp;
    return ddp;
}

void nb_mpi_ddp_free(nb_mpi_ddp *ddp)
{
    if (!ddp) return;
    for (nb_mpi_ddp **link = &newest; *link; link = &(*link)->older)
        if (*link == ddp) {
            *link = ddp->older;
            break;
        }
    if (ddp->threaded) {
        pthread_mutex_lock(&ddp->lock);
        ddp->stop = true;
        pthread_cond_signal(&ddp->wake);
        pthread_mutex_unlock(&ddp->lock);
        pthread_join(ddp->thread, NULL);
        pthread_mutex_destroy(&ddp->lock);
        pthread_cond_destroy(&ddp->wake);
        pthread_cond_destroy(&ddp->done);
    }
    for (int i = 0; i < ddp->n_slots; i++) nb_tensor_set_hook(ddp->slots[i].param, NULL, NULL);
    free_parts(ddp);
}

int nb_mpi_ddp_set_weight(nb_mpi_ddp *ddp, double weight)
{
    if (!ddp) return nb_fail(NB_ERR_INVALID, "mpi_ddp_set_weight: ddp is NULL");
    if (!(weight >= 0.0) || weight > 1e300)
        return nb_fail(NB_ERR_INVALID, "mpi_ddp_set_weight: invalid weight %g", weight);
    ddp->weight = weight;
    return NB_OK;
}

int nb_mpi_ddp_finish(nb_mpi_ddp *ddp)
{
    if (!ddp) return nb_fail(NB_ERR_INVALID, "mpi_ddp_finish: ddp is NULL");
    double start = now_seconds();
    /* Parameters the sweep did not reach join with zeros. */
    for (int k = 0; k < ddp->n_buckets; k++) ddp->buckets[k].pending = 0;
    int status = NB_OK;
    if (ddp->threaded) {
        hand_over_ready(ddp);
        pthread_mutex_lock(&ddp->lock);
        while (ddp->reduced < ddp->n_buckets) pthread_cond_wait(&ddp->done, &ddp->lock);
        status = ddp->status;
        ddp->status = NB_OK;
        ddp->handed = ddp->reduced = 0;
        pthread_mutex_unlock(&ddp->lock);
    } else {
        for (int k = 0; k < ddp->n_buckets && status == NB_OK; k++) {
            double begin = now_seconds();
            status = reduce_bucket(ddp, &ddp->buckets[k]);
            ddp->stats.reduce_seconds += now_seconds() - begin;
        }
        if (status != NB_OK) record_failure(ddp, status);
        status = ddp->status;
        ddp->status = NB_OK;
    }
    for (int k = 0; k < ddp->n_buckets; k++) ddp->buckets[k].pending = ddp->buckets[k].count;
    for (int i = 0; i < ddp->n_slots; i++) ddp->slots[i].ready = false;
    ddp->stats.wait_seconds += now_seconds() - start;
    ddp->stats.steps++;
    if (status != NB_OK) return nb_fail(status, "%s", ddp->error);
    return NB_OK;
}

int nb_mpi_ddp_backward(nb_mpi_ddp *ddp, nb_tape *tape, nb_tensor *loss)
{
    if (!ddp) return nb_fail(NB_ERR_INVALID, "mpi_ddp_backward: ddp is NULL");
    int status = nb_backward(tape, loss, NULL);
    /* Finish even after a failed backward: the other ranks wait for this
     * rank's buckets, and the failure is reported either way. */
    int finished = nb_mpi_ddp_finish(ddp);
    if (status != NB_OK) return status;
    return finished;
}

nb_mpi_ddp_stats nb_mpi_ddp_get_stats(const nb_mpi_ddp *ddp)
{
    nb_mpi_ddp_stats none = {0};
    return ddp ? ddp->stats : none;
}

double mpi_ddp_weight(void)
{
    return newest ? newest->weight : 1.0 / nb_mpi.size;
}

/* With a communication thread the sum waits its turn behind the buckets
 * already handed over; every rank submits the same jobs in the same order
 * (same graph), so the ring exchanges pair up. */
int mpi_sum_serialized(void *values, nb_dtype dtype, int64_t count, void *scratch)
{
    nb_mpi_ddp *ddp = newest;
    if (nb_mpi.size == 1 || count == 0) return NB_OK;
    if (!ddp || !ddp->threaded) return mpi_ring_allreduce(values, dtype, count, scratch);
    pthread_mutex_lock(&ddp->lock);
    /* An idle thread takes no new job but from this thread, so the sum can
     * run here, without a hand-over, in the same order as queued. */
    if (ddp->popped == ddp->pushed) {
        pthread_mutex_unlock(&ddp->lock);
        return mpi_ring_allreduce(values, dtype, count, scratch);
    }
    push_job(ddp, (ddp_job){.bucket = -1, .values = values, .dtype = dtype, .count = count, .scratch = scratch});
    int64_t ticket = ddp->pushed;
    while (ddp->popped < ticket) pthread_cond_wait(&ddp->done, &ddp->lock);
    int status = ddp->status;
    char error[sizeof ddp->error];
    memcpy(error, ddp->error, sizeof error);
    pthread_mutex_unlock(&ddp->lock);
    /* The failure (this sum's or an earlier bucket's) stays recorded, so
     * nb_mpi_ddp_finish reports it as well. */
    return status == NB_OK ? NB_OK : nb_fail(status, "%s", error);
}
