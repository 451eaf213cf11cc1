/* nb_sgemm: the BLIS loop nest around one micro-kernel, plus the choice of
 * micro-kernel and the threading.
 *
 *   for jc in N, step COLUMN_BLOCK (NC)           op(B) block lives in L2
 *     for pc in K, step depth_block (KC)
 *       pack op(B)[pc, jc] into NR-column panels   (or read B in place)
 *       for ic in M, step ROW_BLOCK (MC)
 *         pack op(A)[ic, pc] into MR-row panels
 *         for ir in MC, step MR                    A panel stays in L1
 *           for jr in NC, step NR                  B panels stream from L2
 *             micro-kernel: C[ir, jr] tile += A panel * B panel
 *
 * Determinism: KC depends on K only, and each C element sees the KC blocks
 * in order, each reduced by the same micro-kernel instructions. Threads only
 * choose which tiles they own (column tiles by default, since A is repacked
 * per column block anyway; row tiles when N is narrow), so the result is
 * bit-identical for any thread count.
 *
 * bf16 products (nb_sgemm_bf16) run the same loop nest with a bf16 kernel:
 * the packing rounds to bf16 and pairs k steps (gemm_pack_bf16.c), the
 * panels hold half as many bytes, and KC doubles so that a panel keeps
 * the same size in cache. */
#include "kernels/gemm.h"

#include <pthread.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "kernels/bf16.h"
#include "kernels/gemm_micro.h"
#include "nabla/threads.h"

enum {
    /* KC: an A panel of 12 x 256 floats (12 KB) stays in L1 while B panels
     * stream past it. 256 to 512 measured the same on a 48 KB L1. */
    DEPTH_BLOCK = 256,
    /* NC: a packed B block of 256 x 1024 floats (1 MB) fits a 2 MB L2. */
    COLUMN_BLOCK = 1024,
    /* MC: rows of A packed at once; only the panel in use must stay in L1. */
    ROW_BLOCK = 144,
    /* Below this many multiply-adds a wake-up of the pool costs more than
     * the second core saves. */
    PARALLEL_MIN_WORK = 1 << 18,
    /* Each thread's range gets at least this many multiply-adds. */
    RANGE_MIN_WORK = 1 << 17,
    /* Rows of A per B block at or below which op(B) is read in place:
     * packing would copy B to use each panel only once or twice. */
    PACK_B_MIN_PANELS = 2,
    /* The dot-product path wins (measured) when C has a side of at most 16
     * and K >= 512 and K >= 8 max(M, N): there padding to 12 x 32 tiles and
     * packing a transposed B cost more than the dot products' final sums. */
    DOT_MAX_SHORT_SIDE = 16,
    DOT_DEPTH_RATIO = 8,
    DOT_MIN_DEPTH = 512
};

static const nb_sgemm_kernel *const known_kernels[] = {
    &nb_sgemm_kernel_avx512_12x32, &nb_sgemm_kernel_avx512_8x32, &nb_sgemm_kernel_avx512_6x64,
    &nb_sgemm_kernel_avx512_24x16, &nb_sgemm_kernel_avx2,        &nb_sgemm_kernel_scalar};
/* (best family first; within a family, ties go to the earlier shape) */
enum { KNOWN_KERNEL_COUNT = sizeof known_kernels / sizeof known_kernels[0] };

int nb_gemm_kernel_count(void) { return KNOWN_KERNEL_COUNT; }

const nb_sgemm_kernel *nb_gemm_kernel_at(int index)
{
    return index >= 0 && index < KNOWN_KERNEL_COUNT ? known_kernels[index] : NULL;
}

static const nb_sgemm_kernel *const bf16_kernels[] = {
    &nb_sgemm_kernel_bf16_avx512_12x32, &nb_sgemm_kernel_bf16_avx512_8x32,
    &nb_sgemm_kernel_bf16_avx512_6x64, &nb_sgemm_kernel_bf16_avx512_24x16,
    &nb_sgemm_kernel_bf16_scalar};
enum { BF16_KERNEL_COUNT = sizeof bf16_kernels / sizeof bf16_kernels[0] };

int nb_gemm_bf16_kernel_count(void) { return BF16_KERNEL_COUNT; }

const nb_sgemm_kernel *nb_gemm_bf16_kernel_at(int index)
{
    return index >= 0 && index < BF16_KERNEL_COUNT ? bf16_kernels[index] : NULL;
}

/* One list per precision: [0] float32, [1] bf16. */
static const nb_sgemm_kernel *const *const kernel_lists[2] = {known_kernels, bf16_kernels};
static const int kernel_list_counts[2] = {KNOWN_KERNEL_COUNT, BF16_KERNEL_COUNT};

/* The choice per precision, each in one atomic: 0 = not made yet, index +
 * 1 = that kernel's family (shapes picked per call), -(index + 1) =
 * exactly that kernel. */
static atomic_int kernel_choice[2];

/* Encodes `name` (a family, or a kernel's full name) as a choice in the
 * list of its precision (*bf16); 0 if unknown. A family's first kernel
 * stands for the family. */
static int parse_choice(const char *name, bool *bf16)
{
    for (int list = 0; list < 2; list++) {
        *bf16 = list == 1;
        for (int i = 0; i < kernel_list_counts[list]; i++)
            if (strcmp(kernel_lists[list][i]->name, name) == 0) return i + 1;
        for (int i = 0; i < kernel_list_counts[list]; i++) {
            const nb_sgemm_kernel *kernel = kernel_lists[list][i];
            char full_name[64];
            snprintf(full_name, sizeof full_name, "%s-%dx%d", kernel->name, kernel->rows,
                     kernel->cols);
            if (strcmp(full_name, name) == 0) return -(i + 1);
        }
    }
    return 0;
}

static const nb_sgemm_kernel *choice_kernel(bool bf16, int choice)
{
    return kernel_lists[bf16][(choice < 0 ? -choice : choice) - 1];
}

bool nb_gemm_kernel_supported(const char *name)
{
    bool bf16 = false;
    int choice = name ? parse_choice(name, &bf16) : 0;
    return choice != 0 && choice_kernel(bf16, choice)->supported();
}

/* The best family the CPU level allows (base/cpu.h), asked per call so
 * that a changed level takes effect at once. */
static int automatic_choice(bool bf16)
{
    int choice = kernel_list_counts[bf16]; /* the scalar kernel runs anywhere */
    for (int i = kernel_list_counts[bf16] - 1; i >= 0; i--)
        if (kernel_lists[bf16][i]->supported()) choice = i + 1;
    return choice;
}

/* kernel_choice once NABLA_GEMM_KERNEL was read and names nothing usable. */
enum { AUTOMATIC = INT_MAX };

/* NABLA_GEMM_KERNEL: up to one name per precision, comma-separated. */
static void read_environment(void)
{
    int choices[2] = {AUTOMATIC, AUTOMATIC};
    const char *requested = getenv("NABLA_GEMM_KERNEL");
    while (requested && *requested) {
        const char *comma = strchr(requested, ',');
        size_t length = comma ? (size_t)(comma - requested) : strlen(requested);
        char name[64];
        if (length < sizeof name) {
            memcpy(name, requested, length);
            name[length] = '\0';
            bool bf16 = false;
            int choice = parse_choice(name, &bf16);
            if (choice != 0) choices[bf16] = choice;
        }
        requested = comma ? comma + 1 : NULL;
    }
    /* Racing first calls compute the same answer; only a slot still unset
     * takes it, so a kernel forced meanwhile stays. */
    for (int list = 0; list < 2; list++) {
        int expected = 0;
        atomic_compare_exchange_strong(&kernel_choice[list], &expected, choices[list]);
    }
}

static int current_choice(bool bf16)
{
    int choice = atomic_load_explicit(&kernel_choice[bf16], memory_order_acquire);
    if (choice == 0) {
        read_environment();
        choice = atomic_load_explicit(&kernel_choice[bf16], memory_order_acquire);
    }
    /* A forced kernel above the CPU level in force gives way to it. */
    if (choice == AUTOMATIC || !choice_kernel(bf16, choice)->supported())
        return automatic_choice(bf16);
    return choice;
}

const nb_sgemm_kernel *nb_gemm_kernel(void) { return choice_kernel(false, current_choice(false)); }
const nb_sgemm_kernel *nb_gemm_bf16_kernel(void) { return choice_kernel(true, current_choice(true)); }

static const nb_sgemm_kernel *kernel_for(bool bf16, int64_t M, int64_t N)
{
    int choice = current_choice(bf16);
    const nb_sgemm_kernel *chosen = choice_kernel(bf16, choice);
    if (choice < 0) return chosen;
    /* Least padded work, weighted by each shape's speed; ties go to the
     * earlier (larger) shape. */
    const nb_sgemm_kernel *best = NULL;
    double best_cost = 0.0;
    for (int i = 0; i < kernel_list_counts[bf16]; i++) {
        const nb_sgemm_kernel *kernel = kernel_lists[bf16][i];
        if (strcmp(kernel->name, chosen->name) != 0) continue;
        double padded_rows = (double)((M + kernel->rows - 1) / kernel->rows * kernel->rows);
        double padded_cols = (double)((N + kernel->cols - 1) / kernel->cols * kernel->cols);
        double cost = padded_rows * padded_cols * kernel->weight;
        if (!best || cost < best_cost) {
            best = kernel;
            best_cost = cost;
        }
    }
    return best;
}

const nb_sgemm_kernel *nb_gemm_kernel_for(int64_t M, int64_t N) { return kernel_for(false, M, N); }
const nb_sgemm_kernel *nb_gemm_bf16_kernel_for(int64_t M, int64_t N)
{
    return kernel_for(true, M, N);
}

int nb_gemm_force_kernel(const char *name)
{
    if (!name) {
        for (int list = 0; list < 2; list++)
            atomic_store_explicit(&kernel_choice[list], 0, memory_order_release);
        return NB_OK;
    }
    bool bf16 = false;
    int choice = parse_choice(name, &bf16);
    if (choice == 0)
        return nb_fail(NB_ERR_INVALID,
                       "nb_gemm_force_kernel: unknown kernel '%s' (a family: scalar, avx2, "
                       "avx512, bf16-scalar, bf16-avx512, or a kernel such as avx512-12x32)",
                       name);
    if (!choice_kernel(bf16, choice)->supported())
        return nb_fail(NB_ERR_INVALID, "nb_gemm_force_kernel: this CPU cannot run '%s'", name);
    atomic_store_explicit(&kernel_choice[bf16], choice, memory_order_release);
    return NB_OK;
}

/* Packing scratch, one per OS thread (pool workers and user threads alike,
 * so concurrent nb_sgemm calls never share one). It grows to the largest
 * block seen and is kept, so steady-state calls do not allocate; a thread's
 * scratch is freed when the thread exits. */
typedef struct scratch {
    size_t capacity; /* floats after the header */
} scratch;
enum { SCRATCH_HEADER_FLOATS = NB_ALIGN / sizeof(float) };

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ready;

static void scratch_destroy(void *block) { nb_free(block); }

static void scratch_key_create(void)
{
    scratch_key_ready = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static float *thread_scratch(size_t floats)
{
    pthread_once(&scratch_once, scratch_key_create);
    if (!scratch_key_ready) return NULL;
    scratch *current = pthread_getspecific(scratch_key);
    if (current && current->capacity >= floats) return (float *)current + SCRATCH_HEADER_FLOATS;

    /* nb_sgemm has no error return: on failure it falls back to unpacked
     * loops, so a failed allocation must not leave a stale error message. */
    char saved_error[512];
    strncpy(saved_error, nb_last_error(), sizeof saved_error - 1);
    saved_error[sizeof saved_error - 1] = '\0';
    scratch *grown = nb_malloc((floats + SCRATCH_HEADER_FLOATS) * sizeof(float));
    if (!grown || pthread_setspecific(scratch_key, grown) != 0) {
        nb_free(grown);
        nb_fail(NB_OK, "%s", saved_error);
        return NULL;
    }
    nb_free(current);
    grown->capacity = floats;
    return (float *)grown + SCRATCH_HEADER_FLOATS;
}

/* Threads that exit free their scratch through the key's destructor; the
 * thread that runs exit (usually main) frees its own here. */
__attribute__((destructor)) static void scratch_release(void)
{
    if (!scratch_key_ready) return;
    nb_free(pthread_getspecific(scratch_key));
    pthread_setspecific(scratch_key, NULL);
}

typedef struct sgemm_job {
    const nb_sgemm_kernel *kernel;
    bool trans_a, trans_b;
    int64_t M, N, K;
    int64_t depth_block; /* KC, a function of K alone */
    float alpha, beta;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
    bool split_rows; /* threads own row tiles (else column tiles) */
    const nb_sgemm_packed_b *prepacked; /* op(B) packed by nb_sgemm_pack_b_once, or NULL */
    const float *const *b_rows; /* op(B) by row pointers (nb_sgemm_rows), or NULL */
} sgemm_job;

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static int64_t round_up(int64_t x, int64_t multiple)
{
    return (x + multiple - 1) / multiple * multiple;
}

/* Last resort when no scratch can be had: the same math without packing. */
static float a_at(const sgemm_job *job, int64_t i, int64_t k)
{
    return job->trans_a ? job->A[k * job->lda + i] : job->A[i * job->lda + k];
}

static float b_at(const sgemm_job *job, int64_t k, int64_t j)
{
    if (job->b_rows) return job->trans_b ? job->b_rows[j][k] : job->b_rows[k][j];
    return job->trans_b ? job->B[j * job->ldb + k] : job->B[k * job->ldb + j];
}

/* The bf16 kernels' sum for one element over steps [k0, end): k pairs,
 * the odd step's product first (nb_sgemm_bf16_ref's order). */
static float bf16_sum(const sgemm_job *job, int64_t i, int64_t j, int64_t k0, int64_t end)
{
    float sum = 0.0f;
    for (int64_t k = k0; k < end; k += 2) {
        if (k + 1 < end)
            sum += nb_bf16_rounded(a_at(job, i, k + 1)) * nb_bf16_rounded(b_at(job, k + 1, j));
        sum += nb_bf16_rounded(a_at(job, i, k)) * nb_bf16_rounded(b_at(job, k, j));
    }
    return sum;
}

/* Last resort when no scratch can be had: the same math without packing
 * (for bf16, the kernels' order, depth block by depth block). */
static void sgemm_block_unpacked(const sgemm_job *job, int64_t row0, int64_t height,
                                 int64_t col0, int64_t width)
{
    const bool bf16 = job->kernel->bf16;
    const int64_t block = bf16 ? job->depth_block : job->K;
    for (int64_t i = row0; i < row0 + height; i++) {
        for (int64_t j = col0; j < col0 + width; j++) {
            float *c = job->C + i * job->ldc + j;
            for (int64_t k0 = 0; k0 < job->K; k0 += block) {
                int64_t end = k0 + block < job->K ? k0 + block : job->K;
                float sum = 0.0f;
                if (bf16) sum = bf16_sum(job, i, j, k0, end);
                else
                    for (int64_t k = k0; k < end; k++) sum += a_at(job, i, k) * b_at(job, k, j);
                float beta = k0 == 0 ? job->beta : 1.0f;
                *c = beta == 0.0f ? job->alpha * sum : fmaf(beta, *c, job->alpha * sum);
            }
        }
    }
}

/* 32-bit words a packed panel uses per row or column for `depth` k steps:
 * one float each, or one bf16 pair per two. */
static int64_t panel_words(const nb_sgemm_kernel *kernel, int64_t depth)
{
    return kernel->bf16 ? (depth + 1) / 2 : depth;
}

/* C[row0 : row0+height, col0 : col0+width] on the calling thread. */
static void sgemm_block(const sgemm_job *job, int64_t row0, int64_t height, int64_t col0,
                        int64_t width)
{
    const nb_sgemm_kernel *kernel = job->kernel;
    const int64_t panel_rows = kernel->rows, panel_cols = kernel->cols;
    /* bf16 panels must be converted, and rows gathered, so such a B is
     * never read in place. */
    const bool pack_b = !job->prepacked && (kernel->bf16 || job->b_rows || job->trans_b ||
                                            height > PACK_B_MIN_PANELS * panel_rows);
    const int64_t row_block = min64(round_up(ROW_BLOCK, panel_rows), round_up(height, panel_rows));
    const int64_t col_block = min64(COLUMN_BLOCK, round_up(width, panel_cols));
    const int64_t depth_block = job->depth_block;
    /* The B part starts on a 64-byte boundary, like the A part. */
    const int64_t a_floats = round_up(row_block * depth_block, SCRATCH_HEADER_FLOATS);
    const int64_t b_floats = pack_b ? depth_block * col_block : 0;
    float *a_packed = thread_scratch((size_t)(a_floats + b_floats));
    if (!a_packed) {
        sgemm_block_unpacked(job, row0, height, col0, width);
        return;
    }
    float *b_packed = a_packed + a_floats;

    for (int64_t jc = 0; jc < width; jc += col_block) {
        const int64_t block_width = min64(col_block, width - jc);
        for (int64_t pc = 0; pc < job->K; pc += depth_block) {
            const int64_t depth = min64(depth_block, job->K - pc);
            /* Later depth blocks add to what the first one stored. */
            const float beta = pc == 0 ? job->beta : 1.0f;
            const int64_t words = panel_words(kernel, depth);
            const float *b_base = b_packed;
            int64_t b_stride = panel_cols, b_panel_step = words * panel_cols;
            if (job->prepacked) {
                /* depth block pc starts at words(pc) * padded N; its panels follow */
                b_base = job->prepacked->panels + panel_words(kernel, pc) * job->prepacked->padded_n +
                         (col0 + jc) / panel_cols * words * panel_cols;
            } else if (job->b_rows) {
                (kernel->bf16 ? nb_sgemm_pack_b_rows_bf16 : nb_sgemm_pack_b_rows)(
                    job->trans_b, job->b_rows, pc, col0 + jc, depth, block_width, (int)panel_cols,
                    b_packed);
            } else if (pack_b) {
                (kernel->bf16 ? nb_sgemm_pack_b_bf16 : nb_sgemm_pack_b)(
                    job->trans_b, job->B, job->ldb, pc, col0 + jc, depth, block_width,
                    (int)panel_cols, b_packed);
            } else {
                b_base = job->B + pc * job->ldb + col0 + jc;
                b_stride = job->ldb;
                b_panel_step = panel_cols;
            }
            for (int64_t ic = 0; ic < height; ic += row_block) {
                const int64_t block_height = min64(row_block, height - ic);
                (kernel->bf16 ? nb_sgemm_pack_a_bf16 : nb_sgemm_pack_a)(
                    job->trans_a, job->A, job->lda, row0 + ic, pc, block_height, depth,
                    (int)panel_rows, a_packed);
                for (int64_t ir = 0; ir < block_height; ir += panel_rows) {
                    const float *a_panel = a_packed + ir * words;
                    float *c_row = job->C + (row0 + ic + ir) * job->ldc + col0 + jc;
                    const int rows_used = (int)min64(panel_rows, block_height - ir);
                    for (int64_t jr = 0; jr < block_width; jr += panel_cols) {
                        kernel->micro(words, a_panel, b_base + jr / panel_cols * b_panel_step,
                                      b_stride, c_row + jr, job->ldc, job->alpha, beta,
                                      rows_used, (int)min64(panel_cols, block_width - jr));
                    }
                }
            }
        }
    }
}

static void sgemm_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker; /* scratch is per OS thread, see thread_scratch */
    const sgemm_job *job = context;
    if (job->split_rows) {
        int64_t rows = job->kernel->rows, row0 = begin * rows;
        sgemm_block(job, row0, min64(end * rows, job->M) - row0, 0, job->N);
    } else {
        int64_t cols = job->kernel->cols, col0 = begin * cols;
        sgemm_block(job, 0, job->M, col0, min64(end * cols, job->N) - col0);
    }
}

/* C = beta * C, the whole answer when alpha == 0 or K == 0. */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

/* KC for depth K: near-equal blocks (K = 300 gives 160 + 140, not 256 +
 * 44), as a thin last block would pay the C load/store for little work;
 * multiples of 16 suit the packing's 16-step chunks (and keep bf16 pairs
 * inside one block). bf16 panels take half the bytes per k, so twice the
 * depth fits the same cache. */
static int64_t depth_block_for(int64_t K, bool bf16)
{
    const int64_t most = bf16 ? 2 * DEPTH_BLOCK : DEPTH_BLOCK;
    int64_t depth_blocks = (K + most - 1) / most;
    return min64(round_up((K + depth_blocks - 1) / depth_blocks, 16), most);
}

int64_t nb_sgemm_bf16_depth_block(int64_t K) { return depth_block_for(K, true); }

static void run_job(sgemm_job *job);

/* nb_sgemm (bf16 false) or nb_sgemm_bf16. */
static void gemm(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    /* A small C with a long K, both operands contiguous along k: plain dot
     * products beat packing (see gemm_dot.c). Only for the whole AVX-512
     * family, so a test that forces one tile shape still gets that shape. */
    int choice = current_choice(bf16);
    if (!bf16 && !trans_a && trans_b && K >= DOT_MIN_DEPTH && (M < N ? M : N) <= DOT_MAX_SHORT_SIDE &&
        K >= DOT_DEPTH_RATIO * (M > N ? M : N) && choice > 0 &&
        strcmp(choice_kernel(false, choice)->name, "avx512") == 0) {
        nb_sgemm_dot(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    sgemm_job job = {
        .kernel = kernel_for(bf16, M, N), .trans_a = trans_a, .trans_b = trans_b,
        .M = M, .N = N, .K = K, .depth_block = depth_block_for(K, bf16),
        .alpha = alpha, .beta = beta, .A = A, .lda = lda, .B = B, .ldb = ldb, .C = C, .ldc = ldc,
    };
    run_job(&job);
}

void nb_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc)
{
    gemm(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nb_sgemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc)
{
    gemm(true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nb_sgemm_rows(bool bf16, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *const *rows, float beta, float *C,
                   int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    sgemm_job job = {
        .kernel = kernel_for(bf16, M, N), .trans_a = false, .trans_b = trans_b,
        .M = M, .N = N, .K = K, .depth_block = depth_block_for(K, bf16),
        .alpha = alpha, .beta = beta, .A = A, .lda = lda, .C = C, .ldc = ldc, .b_rows = rows,
    };
    run_job(&job);
}

size_t nb_sgemm_packed_b_floats(bool bf16, int64_t M, int64_t N, int64_t K)
{
    /* bf16 panels are converted in place from float32 ones: the float
     * size, though the result takes about half. */
    const nb_sgemm_kernel *kernel = kernel_for(bf16, M, N);
    return (size_t)(K * round_up(N, kernel->cols));
}

void nb_sgemm_pack_b_once(nb_sgemm_packed_b *out, bool bf16, int64_t M, bool trans_b, int64_t N,
                          int64_t K, const float *B, int64_t ldb, float *panels)
{
    const nb_sgemm_kernel *kernel = kernel_for(bf16, M, N);
    *out = (nb_sgemm_packed_b){.kernel = kernel, .trans_b = trans_b, .N = N, .K = K, .B = B,
                               .ldb = ldb, .depth_block = depth_block_for(K, bf16),
                               .padded_n = round_up(N, kernel->cols), .panels = panels};
    for (int64_t pc = 0; pc < K; pc += out->depth_block) {
        int64_t depth = min64(out->depth_block, K - pc);
        (bf16 ? nb_sgemm_pack_b_bf16 : nb_sgemm_pack_b)(
            trans_b, B, ldb, pc, 0, depth, N, kernel->cols,
            panels + panel_words(kernel, pc) * out->padded_n);
    }
}

void nb_sgemm_packed(const nb_sgemm_packed_b *b, bool trans_a, int64_t M, float alpha,
                     const float *A, int64_t lda, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || b->N <= 0) return;
    if (b->K <= 0 || alpha == 0.0f) {
        scale_c(M, b->N, beta, C, ldc);
        return;
    }
    sgemm_job job = {
        .kernel = b->kernel, .trans_a = trans_a, .trans_b = b->trans_b, .M = M, .N = b->N,
        .K = b->K, .depth_block = b->depth_block, .alpha = alpha, .beta = beta, .A = A,
        .lda = lda, .B = b->B, .ldb = b->ldb, .C = C, .ldc = ldc, .prepacked = b,
    };
    run_job(&job);
}

/* Runs job on the calling thread or splits its tiles over the pool. */
static void run_job(sgemm_job *job)
{
    const nb_sgemm_kernel *kernel = job->kernel;
    const int64_t M = job->M, N = job->N, K = job->K;
    const int threads = nb_get_num_threads();
    const double work = (double)M * (double)N * (double)K;
    if (threads <= 1 || work < PARALLEL_MIN_WORK) {
        sgemm_block(job, 0, M, 0, N);
        return;
    }
    const int64_t row_tiles = (M + kernel->rows - 1) / kernel->rows;
    const int64_t col_tiles = (N + kernel->cols - 1) / kernel->cols;
    job->split_rows = col_tiles < 2 * threads && row_tiles > col_tiles;
    const int64_t tiles = job->split_rows ? row_tiles : col_tiles;
    const double tile_work = work / (double)tiles;
    int64_t grain = (int64_t)(RANGE_MIN_WORK / tile_work) + 1;
    nb_parallel_for(tiles, grain, sgemm_range, job);
}
