/* Internal: the one CPU-feature detection every fast path asks: GEMM's
 * micro-kernels, conv2d's tiles and rows, the pooling and Winograd
 * kernels, meProp's gathers, the element-wise loops and the optimizers.
 *
 * The level is the best instruction set this CPU runs, capped by
 * NABLA_CPU=portable|avx2|avx512 (read at the first call) or by
 * nb_cpu_force_level (include/nabla/paths.h). Kernels pick their version
 * per call from it, so forcing a level takes effect at once. */
#ifndef NABLA_BASE_CPU_H
#define NABLA_BASE_CPU_H

#include <stdbool.h>

typedef enum nb_cpu_level {
    NB_CPU_PORTABLE = 0,  /* plain C, whatever the compiler's baseline does */
    NB_CPU_AVX2 = 1,      /* AVX2 and FMA */
    NB_CPU_AVX512 = 2     /* AVX-512F */
} nb_cpu_level;
enum { NB_CPU_LEVELS = 3 };

nb_cpu_level nb_cpu_level_now(void);
/* Whether the current level includes `level`. */
static inline bool nb_cpu_has(nb_cpu_level level) { return nb_cpu_level_now() >= level; }

/* AVX-512 BF16 (VDPBF16PS, VCVTNE2PS2BF16): an extension, not a level of
 * its own; available when the CPU has it and the level in force includes
 * AVX-512 (so NABLA_CPU=avx2 turns it off too). */
bool nb_cpu_has_avx512_bf16(void);

/* Function attributes for the versions of a kernel (x86-64 GCC and
 * Clang); elsewhere every version is the portable one and the level stays
 * NB_CPU_PORTABLE. A kernel's body is written once, as an always-inline
 * function, and each version is a one-line function with an attribute. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_HAVE_X86_LEVELS 1
#define NB_TARGET_AVX512 __attribute__((target("avx512f")))
#define NB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NB_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bf16")))
#else
#define NB_HAVE_X86_LEVELS 0
#define NB_TARGET_AVX512
#define NB_TARGET_AVX2
#define NB_TARGET_AVX512_BF16
#endif
#if defined(__GNUC__) || defined(__clang__)
#define NB_KERNEL_BODY static inline __attribute__((always_inline))
#else
#define NB_KERNEL_BODY static inline
#endif

#endif
