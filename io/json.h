/* Internal: a small strict JSON reader for the safetensors header.
 *
 * It reads exactly the subset the format needs (objects, arrays, strings
 * with every escape, non-negative integers) and can skip any other value
 * with a bounded depth. Every read is checked against the length, so it is
 * safe on hostile input. On failure a function returns -1 and leaves a
 * message (with the byte offset) in cursor->error. */
#ifndef NABLA_IO_JSON_H
#define NABLA_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

enum { NB_JSON_ERROR_CAPACITY = 160, NB_JSON_MAX_DEPTH = 64 };

typedef struct nb_json {
    const unsigned char *text;
    size_t length;
    size_t position;
    char error[NB_JSON_ERROR_CAPACITY];
} nb_json;

void nb_json_init(nb_json *cursor, const void *text, size_t length);
/* Fails unless text is well-formed UTF-8 (no overlongs, no surrogates). */
int nb_json_check_utf8(nb_json *cursor);
/* Skips whitespace; returns the next byte, or -1 at the end. */
int nb_json_peek(nb_json *cursor);
/* Skips whitespace and consumes `expected`, or fails naming it. */
int nb_json_expect(nb_json *cursor, char expected);
/* Reads a string into out (NUL-terminated, escapes decoded, at most
 * capacity bytes including the NUL); *out_length gets its length. A string
 * holding U+0000 is refused, since names are C strings. */
int nb_json_string(nb_json *cursor, char *out, size_t capacity, size_t *out_length);
/* Reads an integer in 0..INT64_MAX; negative, fractional or exponent forms
 * and leading zeros fail with a message saying which. */
int nb_json_uint(nb_json *cursor, uint64_t *value);
/* If the next non-space byte is `expected`, consumes it and returns 1;
 * otherwise returns 0 and consumes nothing. */
int nb_json_consume(nb_json *cursor, char expected);
/* After a member of an object or array: consumes ',' (returns 0) or the
 * closing bracket `close` (returns 1); anything else fails. */
int nb_json_next_member(nb_json *cursor, char close);
/* Skips any one value, nested at most NB_JSON_MAX_DEPTH deep. */
int nb_json_skip_value(nb_json *cursor, int depth);
/* Records a message (with the current offset) and returns -1. */
int nb_json_fail(nb_json *cursor, const char *what);

#endif
