/* Internal: compiling a plain C loop several times, for AVX-512, AVX2 and
 * the baseline instruction set, with the best copy picked once at load
 * time (GCC/Clang function multi-versioning). Used for the element-wise
 * and reduction loops that profiles show, so a baseline x86-64 build still
 * runs them with wide vectors. Elsewhere it expands to nothing.
 * Put it on static functions only: clang before 16 names the dispatcher of
 * a non-static one "<name>.ifunc", so callers in other files fail to link.
 * An exported name is a plain function calling the static one (see
 * nb_conv_sum in ops/conv2d_rows.c). */
#ifndef NABLA_OPS_SIMD_H
#define NABLA_OPS_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(NB_NO_TARGET_CLONES)
#define NB_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NB_TARGET_CLONES
#endif

/* Element counts below which splitting an element-wise loop across
 * threads costs more than it saves. */
enum { NB_ELEMENTWISE_GRAIN = 1 << 15 };

#endif
