#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "nabla/paths.h"

static const char *const NAMES[NB_CPU_LEVELS] = {"portable", "avx2", "avx512"};

/* The CPU's own level, and the level in force; -1 until first read. */
static atomic_int hardware = -1, current = -1;

static int detect(void)
{
#if NB_HAVE_X86_LEVELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return NB_CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NB_CPU_AVX2;
#endif
    return NB_CPU_PORTABLE;
}

static int hardware_level(void)
{
    int level = atomic_load_explicit(&hardware, memory_order_relaxed);
    if (level < 0) {
        level = detect();
        atomic_store_explicit(&hardware, level, memory_order_relaxed);
    }
    return level;
}

static int level_named(const char *name)
{
    for (int i = 0; i < NB_CPU_LEVELS; i++)
        if (strcmp(NAMES[i], name) == 0) return i;
    return -1;
}

nb_cpu_level nb_cpu_level_now(void)
{
    int level = atomic_load_explicit(&current, memory_order_relaxed);
    if (level >= 0) return (nb_cpu_level)level;
    level = hardware_level();
    /* An unknown or unavailable NABLA_CPU leaves the CPU's own level (the
     * call nb_cpu_force_level reports such names). */
    const char *requested = getenv("NABLA_CPU");
    int wanted = requested && *requested ? level_named(requested) : -1;
    if (wanted >= 0 && wanted < level) level = wanted;
    /* Racing first calls compute the same answer; storing twice is fine. */
    atomic_store_explicit(&current, level, memory_order_relaxed);
    return (nb_cpu_level)level;
}

bool nb_cpu_has_avx512_bf16(void)
{
    static atomic_int has_bf16 = -1;
    int has = atomic_load_explicit(&has_bf16, memory_order_relaxed);
    if (has < 0) {
#if NB_HAVE_X86_LEVELS
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#else
        has = 0;
#endif
        atomic_store_explicit(&has_bf16, has, memory_order_relaxed);
    }
    return has == 1 && nb_cpu_has(NB_CPU_AVX512);
}

const char *nb_cpu_level_name(void) { return NAMES[nb_cpu_level_now()]; }

int nb_cpu_force_level(const char *name)
{
    int level = name ? level_named(name) : hardware_level();
    if (level < 0)
        return nb_fail(NB_ERR_INVALID, "nb_cpu_force_level: \"%s\" is not a level (portable, "
                       "avx2, avx512)", name);
    if (level > hardware_level())
        return nb_fail(NB_ERR_INVALID, "nb_cpu_force_level: this CPU does not run %s (its "
                       "best is %s)", name, NAMES[hardware_level()]);
    atomic_store_explicit(&current, level, memory_order_relaxed);
    return NB_OK;
}
