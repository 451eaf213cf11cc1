/* nabla-allreduce-bench: the time to sum one step's gradients across the
 * ranks of an MPI job, for the gradient sizes of LeNet-5, the bench
 * convnet and the charlm gpt model, with nabla_mpi's ring
 * (nb_mpi_allreduce_sum) and, for reference, Open MPI's MPI_Allreduce.
 * Also fits the ring's cost model t = 2 (N - 1) alpha + 2 (N - 1) / N *
 * bytes / bandwidth to small and large messages, for docs/distributed.md.
 *
 *   mpirun -np 2 build/bench/nabla-allreduce-bench [--json]
 *
 * Each time is the median over repetitions of the slowest rank's time,
 * the repetitions separated by barriers. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/charlm.h"
#include "models/convnet.h"
#include "models/lenet5.h"
#include "nabla/mpi.h"

enum { MIN_REPEATS = 20, MAX_REPEATS = 2000 };
static const double MIN_SECONDS = 0.5;   /* per measurement, so small messages repeat enough */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of one sum of count floats; ring or MPI_Allreduce. */
static double time_sum(float *values, int64_t count, bool ring)
{
    static double samples[MAX_REPEATS];
    int n = 0;
    double total = 0;
    while (n < MAX_REPEATS && (n < MIN_REPEATS || total < MIN_SECONDS)) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        if (ring) nb_mpi_allreduce_sum(values, NB_FLOAT32, count);
        else MPI_Allreduce(MPI_IN_PLACE, values, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double mine = MPI_Wtime() - start, slowest;
        MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        samples[n++] = slowest;
        total += slowest;
        /* Keep the values bounded: every repetition sums them again. */
        for (int64_t i = 0; i < count; i++) values[i] = 1.0f;
    }
    qsort(samples, (size_t)n, sizeof *samples, compare_doubles);
    return samples[n / 2];
}

typedef struct workload {
    const char *name;
    int64_t count;
} workload;

static int64_t parameter_count(nb_module *m)
{
    int64_t n = m ? nb_module_parameter_count(m) : 0;
    nb_module_free(m);
    return n;
}

int main(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (nb_mpi_init(&argc, &argv) != NB_OK) return fprintf(stderr, "%s\n", nb_last_error()), 1;
    int rank = nb_mpi_rank(), size = nb_mpi_world_size();
    charlm_config gpt = charlm_gpt_defaults();
    workload loads[] = {
        {"latency (1 float)", 1},
        {"lenet5", parameter_count(lenet5_new())},
        {"convnet", parameter_count(convnet_new())},
        {"gpt", parameter_count(charlm_gpt_new(&gpt))},
        {"16 MiB", 4 << 20},
    };
    int n = (int)(sizeof loads / sizeof loads[0]);
    float *values = malloc((size_t)loads[n - 1].count * sizeof *values);
    double ring[8], vendor[8];
    for (int i = 0; i < n; i++) {
        for (int64_t k = 0; k < loads[i].count; k++) values[k] = 1.0f;
        ring[i] = time_sum(values, loads[i].count, true);
        vendor[i] = time_sum(values, loads[i].count, false);
    }
    if (rank == 0) {
        /* alpha from the 1-float sum, bandwidth from the 16 MiB one. */
        double steps = 2.0 * (size - 1);
        double alpha = size > 1 ? ring[0] / steps : 0;
        double moved = steps / size * (double)loads[n - 1].count * sizeof(float);
        double bandwidth = size > 1 ? moved / (ring[n - 1] - steps * alpha) : 0;
        if (json) {
            for (int i = 0; i < n; i++)
                printf("{\"bench\":\"allreduce\",\"ranks\":%d,\"workload\":\"%s\",\"floats\":%lld,\"ring_us\":%.2f,"
                       "\"mpi_allreduce_us\":%.2f}\n", size, loads[i].name, (long long)loads[i].count,
                       1e6 * ring[i], 1e6 * vendor[i]);
            printf("{\"bench\":\"allreduce_model\",\"ranks\":%d,\"alpha_us\":%.3f,\"bandwidth_gb_s\":%.3f}\n", size,
                   1e6 * alpha, 1e-9 * bandwidth);
        } else {
            printf("%d ranks: median of the slowest rank's time per sum (float32)\n", size);
            printf("%-18s %12s %12s %14s\n", "gradients", "floats", "ring us", "MPI_Allreduce us");
            for (int i = 0; i < n; i++)
                printf("%-18s %12lld %12.1f %14.1f\n", loads[i].name, (long long)loads[i].count, 1e6 * ring[i],
                       1e6 * vendor[i]);
            printf("ring model: alpha %.2f us a step, bandwidth %.2f GB/s\n", 1e6 * alpha, 1e-9 * bandwidth);
        }
    }
    free(values);
    nb_mpi_finalize();
    return 0;
}
