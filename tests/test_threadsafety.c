/* Thread safety: tapes are independent. Two user threads, each training its
 * own model on its own tape at the same time (sharing the kernel thread
 * pool, which serialises their jobs), get bit-identical results to the same
 * trainings run one after the other on one thread. Errors stay on their
 * own thread (nb_last_error) and tape. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "nabla.h"
#include "tests/reliability_model.h"

enum { STEPS = 6, BATCH = 16 };

typedef struct job {
    model m;
    int status;
    int steps;
} job;

static void *train_job(void *arg)
{
    job *j = arg;
    j->status = NB_OK;
    for (int step = 0; step < j->steps && j->status == NB_OK; step++) j->status = model_step(&j->m);
    return NULL;
}

/* Models are built on the main thread: layer init reads the global RNG. */
static void make_jobs(job jobs[2])
{
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(model_init(&jobs[i].m, i, 100 + (uint64_t)i, 200 + (uint64_t)i, BATCH), 0,
                     "%s", nb_last_error());
        jobs[i].steps = STEPS;
    }
}

static void compare_and_free(job sequential[2], job concurrent[2])
{
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sequential[i].status, NB_OK);
        cr_assert_eq(concurrent[i].status, NB_OK, "thread %d failed", i);
        size_t size_a = 0, size_b = 0;
        unsigned char *a = model_snapshot(&sequential[i].m, &size_a);
        unsigned char *b = model_snapshot(&concurrent[i].m, &size_b);
        cr_assert(a && b && size_a == size_b);
        cr_expect(memcmp(a, b, size_a) == 0, "model %d: concurrent training differs", i);
        free(a);
        free(b);
        model_free(&sequential[i].m);
        model_free(&concurrent[i].m);
    }
}

static void run_both(int pool_threads)
{
    cr_assert_eq(nb_set_num_threads(pool_threads), NB_OK);
    job sequential[2], concurrent[2];
    make_jobs(sequential);
    make_jobs(concurrent);
    for (int i = 0; i < 2; i++) train_job(&sequential[i]);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, train_job, &concurrent[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    compare_and_free(sequential, concurrent);
}

Test(threadsafety, two_tapes_two_threads_single_threaded_kernels) { run_both(1); }

Test(threadsafety, two_tapes_two_threads_sharing_the_pool) { run_both(2); }

/* One thread keeps failing (a shape error, then a released tensor) while
 * the other trains: the failing thread sees its own messages, the other
 * thread's tape and last error stay clean. */
typedef struct failing_job {
    int rounds;
    int errors_seen;
    bool messages_ok;
} failing_job;

static void *fail_repeatedly(void *arg)
{
    failing_job *f = arg;
    nb_tape *tape = nb_tape_new();
    f->messages_ok = tape != NULL;
    const int64_t a_shape[2] = {3, 4}, b_shape[2] = {5, 6};
    for (int r = 0; r < f->rounds && tape; r++) {
        nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, 2, a_shape, NULL);
        nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, 2, b_shape, NULL);
        if (nb_matmul(tape, a, b) != NULL) f->messages_ok = false;
        const char *e = nb_tape_error(tape);
        if (!e || !strstr(e, "matmul") || !strstr(e, "[3,4]") || !strstr(nb_last_error(), "[5,6]"))
            f->messages_ok = false;
        f->errors_seen++;
        nb_tape_reset(tape);
        if (nb_relu(tape, a) != NULL || !strstr(nb_last_error(), "released")) f->messages_ok = false;
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    return NULL;
}

Test(threadsafety, errors_stay_on_their_thread_and_tape)
{
    cr_assert_eq(nb_set_num_threads(2), NB_OK);
    job good;
    cr_assert_eq(model_init(&good.m, 0, 1, 2, BATCH), 0);
    good.steps = STEPS;
    failing_job bad = {.rounds = 2000};
    pthread_t threads[2];
    nb_clear_error();
    cr_assert_eq(pthread_create(&threads[0], NULL, fail_repeatedly, &bad), 0);
    cr_assert_eq(pthread_create(&threads[1], NULL, train_job, &good), 0);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    cr_expect(bad.messages_ok, "the failing thread saw wrong messages");
    cr_expect_eq(bad.errors_seen, bad.rounds);
    cr_expect_eq(good.status, NB_OK, "training thread failed: %s", nb_tape_error(good.m.tape));
    cr_expect_null(nb_tape_error(good.m.tape));
    cr_expect_str_empty(nb_last_error(), "main thread's last error: %s", nb_last_error());
    model_free(&good.m);
}

/* Read-only registry lookups are safe from any number of threads. */
static void *look_up_ops(void *arg)
{
    int *found = arg;
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < nb_op_count(); i++)
            if (nb_op_find(nb_op_at(i)->name) == nb_op_at(i)) (*found)++;
    return NULL;
}

Test(threadsafety, registry_lookups_from_threads)
{
    int found[4] = {0};
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&threads[i], NULL, look_up_ops, &found[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 4; i++) cr_expect_eq(found[i], 200 * nb_op_count());
}
