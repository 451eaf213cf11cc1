/* nabla: what marks the public surface.
 *
 * NB_API is on every public function. The shared library is built with
 * hidden visibility, so only these are exported; tools/check-symbols.sh
 * (a test) fails when libnabla.so exports anything not declared in
 * include/ or without the nb_ prefix. NB_PRINTF checks printf-style
 * arguments where the compiler can. */
#ifndef NABLA_EXPORT_H
#define NABLA_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define NB_API __attribute__((visibility("default")))
#define NB_PRINTF(format_index, first_argument) \
    __attribute__((format(printf, format_index, first_argument)))
#else
#define NB_API
#define NB_PRINTF(format_index, first_argument)
#endif

#endif
