#include "io/json.h"

#include <stdio.h>
#include <string.h>

void nb_json_init(nb_json *cursor, const void *text, size_t length)
{
    cursor->text = text;
    cursor->length = length;
    cursor->position = 0;
    cursor->error[0] = '\0';
}

int nb_json_fail(nb_json *cursor, const char *what)
{
    snprintf(cursor->error, sizeof cursor->error, "%s at byte %zu", what, cursor->position);
    return -1;
}

int nb_json_check_utf8(nb_json *cursor)
{
    const unsigned char *s = cursor->text;
    size_t n = cursor->length;
    for (size_t i = 0; i < n;) {
        unsigned lead = s[i];
        if (lead < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t code, minimum;
        if ((lead & 0xE0) == 0xC0) extra = 1, code = lead & 0x1F, minimum = 0x80;
        else if ((lead & 0xF0) == 0xE0) extra = 2, code = lead & 0x0F, minimum = 0x800;
        else if ((lead & 0xF8) == 0xF0) extra = 3, code = lead & 0x07, minimum = 0x10000;
        else {
            cursor->position = i;
            return nb_json_fail(cursor, "invalid UTF-8 lead byte");
        }
        if (extra > n - i - 1) {
            cursor->position = i;
            return nb_json_fail(cursor, "truncated UTF-8 sequence");
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                cursor->position = i;
                return nb_json_fail(cursor, "invalid UTF-8 continuation byte");
            }
            code = (code << 6) | (s[i + k] & 0x3F);
        }
        /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are
         * not UTF-8, and strict decoders (serde_json) refuse them. */
        if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            cursor->position = i;
            return nb_json_fail(cursor, "invalid UTF-8 code point");
        }
        i += extra + 1;
    }
    return 0;
}

static int is_space(int ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

int nb_json_peek(nb_json *cursor)
{
    while (cursor->position < cursor->length && is_space(cursor->text[cursor->position]))
        cursor->position++;
    return cursor->position < cursor->length ? cursor->text[cursor->position] : -1;
}

int nb_json_expect(nb_json *cursor, char expected)
{
    if (nb_json_peek(cursor) != (unsigned char)expected) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", expected);
        return nb_json_fail(cursor, what);
    }
    cursor->position++;
    return 0;
}

/* Reads four hex digits after "\u". */
static int read_hex4(nb_json *cursor, uint32_t *value)
{
    if (cursor->length - cursor->position < 4)
        return nb_json_fail(cursor, "truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int ch = cursor->text[cursor->position + k], digit;
        if (ch >= '0' && ch <= '9') digit = ch - '0';
        else if (ch >= 'a' && ch <= 'f') digit = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') digit = ch - 'A' + 10;
        else return nb_json_fail(cursor, "invalid hex digit in \\u escape");
        v = (v << 4) | (uint32_t)digit;
    }
    cursor->position += 4;
    *value = v;
    return 0;
}

/* Decodes a \u escape (the backslash and 'u' already read), joining a
 * surrogate pair into one code point. */
static int read_unicode_escape(nb_json *cursor, uint32_t *code)
{
    uint32_t high;
    if (read_hex4(cursor, &high)) return -1;
    if (high >= 0xDC00 && high <= 0xDFFF) return nb_json_fail(cursor, "unpaired low surrogate");
    if (high >= 0xD800 && high <= 0xDBFF) {
        uint32_t low;
        if (cursor->length - cursor->position < 2 || cursor->text[cursor->position] != '\\' ||
            cursor->text[cursor->position + 1] != 'u')
            return nb_json_fail(cursor, "unpaired high surrogate");
        cursor->position += 2;
        if (read_hex4(cursor, &low)) return -1;
        if (low < 0xDC00 || low > 0xDFFF) return nb_json_fail(cursor, "unpaired high surrogate");
        high = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
    }
    if (high == 0) return nb_json_fail(cursor, "\\u0000 in a string");
    *code = high;
    return 0;
}

/* Appends one byte to out (NULL: only counts), keeping room for the NUL. */
static int put_byte(nb_json *cursor, char *out, size_t capacity, size_t *n, unsigned byte)
{
    if (out) {
        if (*n + 1 >= capacity) return nb_json_fail(cursor, "string too long");
        out[*n] = (char)byte;
    }
    (*n)++;
    return 0;
}

static int put_code_point(nb_json *cursor, char *out, size_t capacity, size_t *n, uint32_t code)
{
    unsigned char bytes[4];
    int count;
    if (code < 0x80) bytes[0] = (unsigned char)code, count = 1;
    else if (code < 0x800) {
        bytes[0] = (unsigned char)(0xC0 | (code >> 6));
        bytes[1] = (unsigned char)(0x80 | (code & 0x3F));
        count = 2;
    } else if (code < 0x10000) {
        bytes[0] = (unsigned char)(0xE0 | (code >> 12));
        bytes[1] = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (code & 0x3F));
        count = 3;
    } else {
        bytes[0] = (unsigned char)(0xF0 | (code >> 18));
        bytes[1] = (unsigned char)(0x80 | ((code >> 12) & 0x3F));
        bytes[2] = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        bytes[3] = (unsigned char)(0x80 | (code & 0x3F));
        count = 4;
    }
    for (int k = 0; k < count; k++)
        if (put_byte(cursor, out, capacity, n, bytes[k])) return -1;
    return 0;
}

int nb_json_string(nb_json *cursor, char *out, size_t capacity, size_t *out_length)
{
    if (nb_json_expect(cursor, '"')) return -1;
    size_t n = 0;
    for (;;) {
        if (cursor->position >= cursor->length) return nb_json_fail(cursor, "unterminated string");
        unsigned ch = cursor->text[cursor->position++];
        if (ch == '"') break;
        if (ch < 0x20) return nb_json_fail(cursor, "control character in a string");
        if (ch != '\\') {
            if (put_byte(cursor, out, capacity, &n, ch)) return -1;
            continue;
        }
        if (cursor->position >= cursor->length) return nb_json_fail(cursor, "unterminated string");
        unsigned escape = cursor->text[cursor->position++];
        uint32_t code = 0;
        switch (escape) {
        case '"': case '\\': case '/': code = escape; break;
        case 'b': code = '\b'; break;
        case 'f': code = '\f'; break;
        case 'n': code = '\n'; break;
        case 'r': code = '\r'; break;
        case 't': code = '\t'; break;
        case 'u':
            if (read_unicode_escape(cursor, &code)) return -1;
            break;
        default: return nb_json_fail(cursor, "invalid escape in a string");
        }
        if (put_code_point(cursor, out, capacity, &n, code)) return -1;
    }
    if (out) {
        if (n >= capacity) return nb_json_fail(cursor, "string too long");
        out[n] = '\0';
    }
    if (out_length) *out_length = n;
    return 0;
}

static int is_digit(const nb_json *cursor, size_t at)
{
    return at < cursor->length && cursor->text[at] >= '0' && cursor->text[at] <= '9';
}

int nb_json_uint(nb_json *cursor, uint64_t *value)
{
    int ch = nb_json_peek(cursor);
    if (ch == '-') return nb_json_fail(cursor, "negative number");
    if (ch < '0' || ch > '9') return nb_json_fail(cursor, "expected an integer");
    if (ch == '0' && is_digit(cursor, cursor->position + 1))
        return nb_json_fail(cursor, "integer with a leading zero");
    uint64_t v = 0;
    while (is_digit(cursor, cursor->position)) {
        unsigned digit = (unsigned)(cursor->text[cursor->position] - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10) return nb_json_fail(cursor, "integer too large");
        v = v * 10 + digit;
        cursor->position++;
    }
    if (cursor->position < cursor->length) {
        int next = cursor->text[cursor->position];
        if (next == '.' || next == 'e' || next == 'E')
            return nb_json_fail(cursor, "expected an integer, found a fraction or exponent");
    }
    *value = v;
    return 0;
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int skip_number(nb_json *cursor)
{
    size_t p = cursor->position;
    if (p < cursor->length && cursor->text[p] == '-') p++;
    if (!is_digit(cursor, p)) return nb_json_fail(cursor, "invalid number");
    if (cursor->text[p] == '0') p++;
    else while (is_digit(cursor, p)) p++;
    if (p < cursor->length && cursor->text[p] == '.') {
        p++;
        if (!is_digit(cursor, p)) return nb_json_fail(cursor, "invalid number");
        while (is_digit(cursor, p)) p++;
    }
    if (p < cursor->length && (cursor->text[p] == 'e' || cursor->text[p] == 'E')) {
        p++;
        if (p < cursor->length && (cursor->text[p] == '+' || cursor->text[p] == '-')) p++;
        if (!is_digit(cursor, p)) return nb_json_fail(cursor, "invalid number");
        while (is_digit(cursor, p)) p++;
    }
    cursor->position = p;
    return 0;
}

static int skip_literal(nb_json *cursor, const char *word)
{
    size_t n = strlen(word);
    if (cursor->length - cursor->position < n ||
        memcmp(cursor->text + cursor->position, word, n) != 0)
        return nb_json_fail(cursor, "invalid literal");
    cursor->position += n;
    return 0;
}

int nb_json_consume(nb_json *cursor, char expected)
{
    if (nb_json_peek(cursor) != (unsigned char)expected) return 0;
    cursor->position++;
    return 1;
}

int nb_json_next_member(nb_json *cursor, char close)
{
    if (nb_json_consume(cursor, ',')) return 0;
    if (nb_json_consume(cursor, close)) return 1;
    return nb_json_fail(cursor, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* Skips the members of an object or array whose opening bracket has been
 * consumed; `close` is '}' or ']'. */
static int skip_members(nb_json *cursor, int depth, char close)
{
    if (nb_json_consume(cursor, close)) return 0;
    for (;;) {
        if (close == '}' && (nb_json_string(cursor, NULL, 0, NULL) || nb_json_expect(cursor, ':')))
            return -1;
        if (nb_json_skip_value(cursor, depth + 1)) return -1;
        int end = nb_json_next_member(cursor, close);
        if (end) return end < 0 ? -1 : 0;
    }
}

int nb_json_skip_value(nb_json *cursor, int depth)
{
    if (depth > NB_JSON_MAX_DEPTH) return nb_json_fail(cursor, "JSON nested too deeply");
    int ch = nb_json_peek(cursor);
    switch (ch) {
    case '{': cursor->position++; return skip_members(cursor, depth, '}');
    case '[': cursor->position++; return skip_members(cursor, depth, ']');
    case '"': return nb_json_string(cursor, NULL, 0, NULL);
    case 't': return skip_literal(cursor, "true");
    case 'f': return skip_literal(cursor, "false");
    case 'n': return skip_literal(cursor, "null");
    case -1: return nb_json_fail(cursor, "unexpected end of JSON");
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9')) return skip_number(cursor);
        return nb_json_fail(cursor, "unexpected character");
    }
}
