/* Safetensors: bit-exact round trips, the reference layout, strict parsing
 * of malformed files, and interop with independent Python code (json and
 * struct only) in both directions. */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

#ifndef NB_TESTS_DIR
#define NB_TESTS_DIR "tests"
#endif

/* A fresh directory per test: Criterion runs tests in parallel processes. */
static void temp_file(char *path, size_t size, const char *name)
{
    char dir[] = "/tmp/nabla-safetensors-XXXXXX";
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    snprintf(path, size, "%s/%s", dir, name);
}

static void remove_temp(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    remove(path);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);
}

static void assert_error(int status, int expected, const char *needle)
{
    cr_assert_eq(status, expected, "status %d, expected %d (%s)", status, expected, nb_last_error());
    cr_assert(strstr(nb_last_error(), needle), "error '%s' does not contain '%s'", nb_last_error(),
              needle);
}

static nb_tensor *tensor_with(nb_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    nb_tensor *t = nb_tensor_from_data(dtype, ndim, shape, data);
    cr_assert_not_null(t, "%s", nb_last_error());
    return t;
}

Test(safetensors, round_trip_is_bit_exact)
{
    uint32_t f32_bits[6] = {0x7fc00001u /* NaN with payload */, 0x80000000u /* -0 */,
                            0x7f800000u /* inf */, 0x00000001u /* smallest denormal */,
                            0x7f7fffffu /* FLT_MAX */, 0x3dcccccdu /* 0.1f */};
    uint64_t f64_bits[4] = {0x7ff8000000000123ull, 0x8000000000000000ull, 0x0000000000000001ull,
                            0x400921fb54442d18ull /* pi */};
    int32_t i32[3] = {INT32_MIN, -1, INT32_MAX};
    double scalar = -2.5;
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2}, s3[1] = {3}, s04[2] = {0, 4};
    nb_tensor *saved[5] = {tensor_with(NB_FLOAT32, 2, s23, f32_bits),
                           tensor_with(NB_FLOAT64, 2, s22, f64_bits),
                           tensor_with(NB_INT32, 1, s3, i32), tensor_with(NB_FLOAT64, 0, NULL, &scalar),
                           nb_tensor_new(NB_FLOAT32, 2, s04)};
    const char *names[5] = {"layer.weight", "layer.double", "counts", "scalar", "empty"};
    nb_named_tensor list[5], back[5];
    for (int i = 0; i < 5; i++) {
        list[i] = (nb_named_tensor){names[i], saved[i]};
        back[i] = (nb_named_tensor){names[i], nb_tensor_new(saved[i]->dtype, saved[i]->ndim,
                                                            saved[i]->shape)};
    }
    char path[512];
    temp_file(path, sizeof path, "model.safetensors");
    cr_assert_eq(nb_safetensors_save(path, list, 5), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_safetensors_load_into(path, back, 5), NB_OK, "%s", nb_last_error());
    for (int i = 0; i < 5; i++)
        cr_assert(memcmp(saved[i]->data, back[i].tensor->data,
                         (size_t)saved[i]->numel * nb_dtype_size(saved[i]->dtype)) == 0,
                  "%s differs after the round trip", names[i]);
    nb_safetensors *file = nb_safetensors_read(path);
    cr_assert_not_null(file, "%s", nb_last_error());
    cr_assert_eq(nb_safetensors_count(file), 5);
    const nb_safetensors_entry *e = nb_safetensors_find(file, "empty");
    cr_assert(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 4 && e->numel == 0);
    e = nb_safetensors_find(file, "scalar");
    cr_assert(e && e->ndim == 0 && e->numel == 1 && strcmp(e->dtype, "F64") == 0);
    cr_assert_null(nb_safetensors_find(file, "absent"));
    nb_safetensors_free(file);
    remove_temp(path);
    for (int i = 0; i < 5; i++) {
        nb_tensor_free(saved[i]);
        nb_tensor_free(back[i].tensor);
    }
}

/* The reference writer orders by element size (largest first), then name,
 * and pads the header with spaces to a multiple of 8. */
Test(safetensors, layout_matches_the_reference_writer)
{
    float b[2] = {1.0f, 2.0f}, a[1] = {3.0f};
    double z[1] = {4.0};
    int64_t s1[1] = {1}, s2[1] = {2};
    nb_named_tensor list[3] = {{"b", tensor_with(NB_FLOAT32, 1, s2, b)},
                               {"a", tensor_with(NB_FLOAT32, 1, s1, a)},
                               {"z", tensor_with(NB_FLOAT64, 1, s1, z)}};
    char path[512];
    temp_file(path, sizeof path, "layout.safetensors");
    cr_assert_eq(nb_safetensors_save(path, list, 3), NB_OK, "%s", nb_last_error());
    const char *json = "{\"z\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}";
    size_t padded = (strlen(json) + 7) / 8 * 8;
    /* 4.0 = 0x4010000000000000, 3.0f = 0x40400000, 1.0f = 0x3f800000,
     * 2.0f = 0x40000000, all little-endian. */
    const unsigned char data[20] = {0, 0, 0, 0, 0, 0, 0x10, 0x40, 0, 0, 0x40, 0x40,
                                    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
    unsigned char file[512];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t size = fread(file, 1, sizeof file, f);
    fclose(f);
    cr_assert_eq(size, 8 + padded + 20);
    cr_assert_eq(file[0], padded);
    for (int i = 1; i < 8; i++) cr_assert_eq(file[i], 0);
    cr_assert(memcmp(file + 8, json, strlen(json)) == 0, "header: %.*s", (int)padded, file + 8);
    for (size_t i = strlen(json); i < padded; i++) cr_assert_eq(file[8 + i], ' ');
    cr_assert(memcmp(file + 8 + padded, data, 20) == 0);
    remove_temp(path);
    for (int i = 0; i < 3; i++) nb_tensor_free(list[i].tensor);
}

Test(safetensors, metadata_and_escaped_names_round_trip)
{
    int32_t v = 5;
    int64_t s1[1] = {1};
    const char *name = "we\"ird\\name\n\x01" "caf\xc3\xa9";
    nb_named_tensor list[1] = {{name, tensor_with(NB_INT32, 1, s1, &v)}};
    const char *keys[2] = {"format", "epoch"}, *values[2] = {"pt", "3"};
    char path[512];
    temp_file(path, sizeof path, "meta.safetensors");
    cr_assert_eq(nb_safetensors_save_with_metadata(path, list, 1, keys, values, 2), NB_OK, "%s",
                 nb_last_error());
    nb_safetensors *file = nb_safetensors_read(path);
    cr_assert_not_null(file, "%s", nb_last_error());
    cr_assert_eq(nb_safetensors_metadata_count(file), 2);
    cr_assert_str_eq(nb_safetensors_metadata_key(file, 0), "format");
    cr_assert_str_eq(nb_safetensors_metadata_get(file, "epoch"), "3");
    cr_assert_str_eq(nb_safetensors_entry_at(file, 0)->name, name);
    nb_safetensors_free(file);
    remove_temp(path);
    /* A key twice would make a file the reader refuses: not written. */
    const char *twice[2] = {"epoch", "epoch"};
    cr_assert_eq(nb_safetensors_save_with_metadata(path, list, 1, twice, values, 2),
                 NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "duplicate metadata key \"epoch\""), "%s", nb_last_error());
    cr_assert_null(fopen(path, "rb"), "the file was written");
    nb_tensor_free(list[0].tensor);
}

Test(safetensors, load_into_checks_names_shapes_and_dtypes)
{
    double values[2] = {0.1, -2.5};
    int64_t s2[1] = {2}, s23[2] = {2, 3}, s32[2] = {3, 2};
    nb_tensor *w = nb_tensor_new(NB_FLOAT32, 2, s23);
    nb_named_tensor list[2] = {{"x", tensor_with(NB_FLOAT64, 1, s2, values)}, {"w", w}};
    char path[512];
    temp_file(path, sizeof path, "check.safetensors");
    cr_assert_eq(nb_safetensors_save(path, list, 2), NB_OK, "%s", nb_last_error());

    /* F64 converts to float32 by rounding: 0.1 -> 0.1f, -2.5 exact. */
    nb_tensor *x32 = nb_tensor_full(NB_FLOAT32, 1, s2, 9.0);
    nb_named_tensor into[2] = {{"x", x32}, {"missing", nb_tensor_new(NB_FLOAT32, 1, s2)}};
    assert_error(nb_safetensors_load_into(path, into, 2), NB_ERR_FORMAT, "tensor 'missing' not found");
    cr_assert(strstr(nb_last_error(), path));
    cr_assert_eq(((float *)x32->data)[0], 9.0f, "a failed load must change nothing");
    cr_assert_eq(nb_safetensors_load_into(path, into, 1), NB_OK, "%s", nb_last_error());
    cr_assert_eq(((float *)x32->data)[0], 0.1f);
    cr_assert_eq(((float *)x32->data)[1], -2.5f);

    nb_tensor *wrong_shape = nb_tensor_new(NB_FLOAT32, 2, s32);
    nb_named_tensor shape_list[1] = {{"w", wrong_shape}};
    assert_error(nb_safetensors_load_into(path, shape_list, 1), NB_ERR_FORMAT,
                 "tensor 'w': file has F32 [2,3], destination is float32 [3,2]");
    nb_tensor *wrong_dtype = nb_tensor_new(NB_INT32, 2, s23);
    nb_named_tensor dtype_list[1] = {{"w", wrong_dtype}};
    assert_error(nb_safetensors_load_into(path, dtype_list, 1), NB_ERR_FORMAT,
                 "file has F32 [2,3], destination is int32 [2,3]");
    char missing_path[600];
    snprintf(missing_path, sizeof missing_path, "%s.absent", path);
    assert_error(nb_safetensors_load_into(missing_path, shape_list, 1), NB_ERR_IO, missing_path);
    remove_temp(path);
    nb_tensor_free(list[0].tensor);
    nb_tensor_free(w);
    nb_tensor_free(x32);
    nb_tensor_free(into[1].tensor);
    nb_tensor_free(wrong_shape);
    nb_tensor_free(wrong_dtype);
}

Test(safetensors, save_rejects_bad_arguments)
{
    int64_t s1[1] = {1};
    nb_tensor *t = nb_tensor_new(NB_FLOAT32, 1, s1), *u = nb_tensor_new(NB_FLOAT64, 1, s1);
    char path[512];
    temp_file(path, sizeof path, "bad.safetensors");
    nb_named_tensor duplicate[2] = {{"same", t}, {"same", u}};
    assert_error(nb_safetensors_save(path, duplicate, 2), NB_ERR_INVALID, "duplicate tensor name 'same'");
    nb_named_tensor null_tensor[1] = {{"t", NULL}};
    assert_error(nb_safetensors_save(path, null_tensor, 1), NB_ERR_INVALID, "tensor 't'");
    nb_named_tensor reserved[1] = {{"__metadata__", t}};
    assert_error(nb_safetensors_save(path, reserved, 1), NB_ERR_INVALID, "__metadata__");
    nb_named_tensor empty_name[1] = {{"", t}};
    assert_error(nb_safetensors_save(path, empty_name, 1), NB_ERR_INVALID, "non-empty");
    nb_named_tensor fine[1] = {{"t", t}};
    assert_error(nb_safetensors_save("/nonexistent-nabla-dir/x.safetensors", fine, 1), NB_ERR_IO,
                 "/nonexistent-nabla-dir/x.safetensors");
    cr_assert_eq(access(path, F_OK), -1, "no file after failed saves");
    remove_temp(path);
    nb_tensor_free(t);
    nb_tensor_free(u);
}

static bool have_python(void) { return system("python3 -c 'import json, struct' >/dev/null 2>&1") == 0; }

Test(safetensors, loads_a_file_written_by_python)
{
    if (!have_python()) cr_skip_test("python3 not found: interop test skipped");
    char path[512], command[1200];
    temp_file(path, sizeof path, "python.safetensors");
    snprintf(command, sizeof command, "python3 '%s/make_safetensors.py' '%s'", NB_TESTS_DIR, path);
    cr_assert_eq(system(command), 0, "%s failed", command);
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s05[2] = {0, 5}, s1[1] = {1};
    nb_named_tensor into[6] = {
        {"weight", nb_tensor_new(NB_FLOAT32, 2, s23)}, {"bias", nb_tensor_new(NB_FLOAT64, 1, s3)},
        {"counts", nb_tensor_new(NB_INT32, 1, s4)},   {"scalar", nb_tensor_new(NB_FLOAT32, 0, NULL)},
        {"empty", nb_tensor_new(NB_FLOAT32, 2, s05)}, {"caf\xc3\xa9", nb_tensor_new(NB_INT32, 1, s1)}};
    cr_assert_eq(nb_safetensors_load_into(path, into, 6), NB_OK, "%s", nb_last_error());
    /* The values make_safetensors.py packs. */
    const float weight[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    const double bias[3] = {0.1, -2.25, 1e300};
    const int32_t counts[4] = {INT32_MIN, -1, 0, INT32_MAX};
    cr_assert(memcmp(into[0].tensor->data, weight, sizeof weight) == 0);
    cr_assert(memcmp(into[1].tensor->data, bias, sizeof bias) == 0);
    cr_assert(memcmp(into[2].tensor->data, counts, sizeof counts) == 0);
    cr_assert_eq(*(float *)into[3].tensor->data, 3.25f);
    cr_assert_eq(*(int32_t *)into[5].tensor->data, 7);
    nb_safetensors *file = nb_safetensors_read(path);
    cr_assert_not_null(file, "%s", nb_last_error());
    cr_assert_str_eq(nb_safetensors_entry_at(file, 0)->name, "counts", "header order is kept");
    cr_assert_str_eq(nb_safetensors_metadata_get(file, "source"), "make_safetensors.py");
    nb_safetensors_free(file);
    remove_temp(path);
    for (int i = 0; i < 6; i++) nb_tensor_free(into[i].tensor);
}

Test(safetensors, python_reads_what_we_write)
{
    if (!have_python()) cr_skip_test("python3 not found: interop test skipped");
    float w[3] = {0.5f, -1.25f, 3.0f};
    double d[2] = {0.1, -0.0};
    int32_t labels[2] = {9, -7};
    int64_t s3[1] = {3}, s12[2] = {1, 2}, s2[1] = {2};
    nb_named_tensor list[3] = {{"w", tensor_with(NB_FLOAT32, 1, s3, w)},
                               {"d", tensor_with(NB_FLOAT64, 2, s12, d)},
                               {"labels", tensor_with(NB_INT32, 1, s2, labels)}};
    const char *keys[1] = {"step"}, *values[1] = {"12"};
    char path[512], command[1200], output[1024] = "";
    temp_file(path, sizeof path, "ours.safetensors");
    cr_assert_eq(nb_safetensors_save_with_metadata(path, list, 3, keys, values, 1), NB_OK, "%s",
                 nb_last_error());
    snprintf(command, sizeof command, "python3 '%s/read_safetensors.py' '%s'", NB_TESTS_DIR, path);
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    size_t n = fread(output, 1, sizeof output - 1, pipe);
    output[n] = '\0';
    cr_assert_eq(pclose(pipe), 0, "%s failed: %s", command, output);
    /* Header order: metadata, then F64 before F32/I32, then by name;
     * floats printed with Python's repr. */
    cr_assert_str_eq(output, "metadata step=12\n"
                             "tensor d F64 [1,2] [0.1, -0.0]\n"
                             "tensor labels I32 [2] [9, -7]\n"
                             "tensor w F32 [3] [0.5, -1.25, 3.0]\n");
    remove_temp(path);
    for (int i = 0; i < 3; i++) nb_tensor_free(list[i].tensor);
}

/* ---- The parser on malformed input (each buffer exactly sized, so an
 * out-of-bounds read shows up under ASan or valgrind). ---- */

/* Parses 8-byte length + header + data_bytes zero bytes; returns the
 * tensor count, or -1 when parsing failed. */
static int parse_header_text(const char *header, size_t data_bytes, uint64_t header_length)
{
    size_t n = strlen(header), total = 8 + n + data_bytes;
    unsigned char *buffer = calloc(total, 1);
    for (int i = 0; i < 8; i++) buffer[i] = (unsigned char)(header_length >> (8 * i));
    memcpy(buffer + 8, header, n);
    nb_safetensors *file = nb_safetensors_parse(buffer, total, "test.safetensors");
    int count = file ? nb_safetensors_count(file) : -1;
    nb_safetensors_free(file);
    free(buffer);
    return count;
}

#define ENTRY(name, dtype, shape, offsets) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

typedef struct bad_case {
    const char *header;
    size_t data_bytes;
    const char *needle;
} bad_case;

static const bad_case bad_cases[] = {
    {"[]", 0, "does not start with '{'"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]"), 4, "expected ',' or '}'"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") ",}", 4, "expected '\"'"},
    {"{} x", 0, "trailing characters after the header object"},
    {"{\"a", 0, "unterminated string"},
    {"{\"a\\q\":{}}", 0, "invalid escape"},
    {"{\"a\\u0000\":{}}", 0, "\\u0000 in a string"},
    {"{\"\\ud800x\":{}}", 0, "unpaired high surrogate"},
    {"{\"a\xff\":{}}", 0, "header is not UTF-8"},
    {"{\"a\xc0\xaf\":{}}", 0, "invalid UTF-8 code point"},
    {"{\"a\":5}", 0, "expected '{'"},
    {"{" ENTRY("a", "F32", "[2]", "[0,4]") "}", 4, "tensor 'a': data_offsets [0,4] hold 4 bytes but F32 [2] needs 8"},
    {"{" ENTRY("a", "F32", "[2]", "[0,8]") "}", 4, "tensor 'a': data_offsets [0,8] outside the 4 bytes of data"},
    {"{" ENTRY("a", "F32", "[0]", "[4,0]") "}", 4, "end before they begin"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("b", "F32", "[1]", "[2,6]") "}", 6, "tensors 'a' and 'b' overlap"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("b", "F32", "[1]", "[8,12]") "}", 12, "data bytes [4,8) belong to no tensor (a hole before 'b')"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "}", 8, "data bytes [4,8) at the end belong to no tensor"},
    {"{" ENTRY("a", "F17", "[1]", "[0,4]") "}", 4, "tensor 'a': unknown dtype \"F17\""},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("a", "F32", "[1]", "[4,8]") "}", 8, "duplicate tensor name 'a'"},
    {"{" ENTRY("a", "F32", "[-1]", "[0,4]") "}", 4, "negative number"},
    {"{" ENTRY("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, "shape [4294967296,4294967296,4294967296] is too large"},
    {"{" ENTRY("a", "F32", "[1.5]", "[0,4]") "}", 4, "fraction or exponent"},
    {"{" ENTRY("a", "F32", "[01]", "[0,4]") "}", 4, "leading zero"},
    {"{" ENTRY("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, "\"shape\" has more than 8 entries"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4,8]") "}", 8, "\"data_offsets\" has more than 2 entries"},
    {"{" ENTRY("a", "F32", "[1]", "[0]") "}", 4, "\"data_offsets\" needs 2 entries, has 1"},
    {"{" ENTRY("a", "F32", "[1]", "[0,9223372036854775808]") "}", 4, "integer too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': missing \"data_offsets\""},
    {"{\"a\":{\"dtype\":\"F32\",\"foo\":1}}", 4, "tensor 'a': unknown key \"foo\""},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 4, "tensor 'a': duplicate key \"dtype\""},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
    {"{\"__metadata__\":5}", 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":tru}}", 0, "__metadata__: the value of key \"k\" is not a string"},
    {"{\"__metadata__\":{\"k\":\"a\",\"j\":\"b\",\"k\":\"c\"}}", 0, "__metadata__: duplicate key \"k\""},
    {"{\"__metadata__\":{\"n\":-1.5e3}}", 0, "__metadata__: the value of key \"n\" is not a string"},
    {"{\"__metadata__\":{\"a\":\"x\",\"z\":null}}", 0, "__metadata__: the value of key \"z\" is not a string"},
    {"{\"__metadata__\":{\"o\":{\"p\":\"q\"}}}", 0, "__metadata__: the value of key \"o\" is not a string"},
    {"{\"__metadata__\":{\"t\":true}}", 0, "__metadata__: the value of key \"t\" is not a string"},
    {"{\"__metadata__\":{\"l\":[\"x\"]}}", 0, "__metadata__: the value of key \"l\" is not a string"},
};

Test(safetensors, malformed_headers_fail_with_clear_errors)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        nb_clear_error();
        cr_assert_eq(parse_header_text(c->header, c->data_bytes, strlen(c->header)), -1,
                     "case %zu (%s) parsed", i, c->header);
        cr_assert(strstr(nb_last_error(), "safetensors: test.safetensors: "), "case %zu: %s", i,
                  nb_last_error());
        cr_assert(strstr(nb_last_error(), c->needle), "case %zu: error '%s' lacks '%s'", i,
                  nb_last_error(), c->needle);
    }
}

Test(safetensors, bad_header_lengths)
{
    unsigned char tiny[5] = {0};
    cr_assert_null(nb_safetensors_parse(tiny, sizeof tiny, "t"));
    cr_assert(strstr(nb_last_error(), "too short"), "%s", nb_last_error());
    cr_assert_eq(parse_header_text("{}", 2, 100), -1);
    cr_assert(strstr(nb_last_error(), "header length 100 exceeds the 4 bytes after it"), "%s",
              nb_last_error());
    cr_assert_eq(parse_header_text("{}", 0, 200000000), -1);
    cr_assert(strstr(nb_last_error(), "exceeds the limit of 100000000 bytes"), "%s", nb_last_error());
}

Test(safetensors, valid_edge_cases_parse)
{
    cr_assert_eq(parse_header_text("{}", 0, 2), 0, "%s", nb_last_error());
    cr_assert_eq(parse_header_text("{ }\n    ", 0, 8), 0, "%s", nb_last_error());
    cr_assert_eq(parse_header_text("{\"__metadata__\":null}", 0, 21), 0, "%s", nb_last_error());
    /* Two zero-size tensors may share an offset. */
    const char *zeros = "{" ENTRY("a", "F32", "[0]", "[0,0]") "," ENTRY("b", "F64", "[2,0]", "[0,0]") "}";
    cr_assert_eq(parse_header_text(zeros, 0, strlen(zeros)), 2, "%s", nb_last_error());
    /* Metadata strings, escapes decoded (other values: bad_cases). */
    const char *header = "{\"__metadata__\":{\"a\":\"x\",\"b\":\"y\\u00e9\\ud83d\\ude00\"}}";
    size_t total = 8 + strlen(header);
    unsigned char *buffer = calloc(total, 1);
    buffer[0] = (unsigned char)strlen(header);
    memcpy(buffer + 8, header, strlen(header));
    nb_safetensors *file = nb_safetensors_parse(buffer, total, NULL);
    cr_assert_not_null(file, "%s", nb_last_error());
    cr_assert_eq(nb_safetensors_metadata_count(file), 2);
    cr_assert_str_eq(nb_safetensors_metadata_get(file, "a"), "x");
    /* U+00E9 is C3 A9 in UTF-8; U+1F600 (the surrogate pair) F0 9F 98 80. */
    cr_assert_str_eq(nb_safetensors_metadata_get(file, "b"), "y\xc3\xa9\xf0\x9f\x98\x80");
    nb_safetensors_free(file);
    free(buffer);
}

Test(safetensors, deep_nesting_is_bounded)
{
    /* A nested metadata value is refused at its first byte, before any
     * recursion into it. */
    char header[400] = "{\"__metadata__\":{\"k\":";
    for (int i = 0; i < 100; i++) strcat(header, "[");
    strcat(header, "}}");
    cr_assert_eq(parse_header_text(header, 0, strlen(header)), -1);
    cr_assert(strstr(nb_last_error(), "the value of key \"k\" is not a string"), "%s",
              nb_last_error());
}

/* Every truncation of a valid file fails, and random corruptions either
 * parse or fail cleanly (the sanitizer run is what checks the "cleanly"). */
Test(safetensors, truncations_and_corruptions_are_safe)
{
    const char *header = "{\"__metadata__\":{\"k\":\"v\"}," ENTRY("a", "F32", "[2]", "[0,8]") ","
                         ENTRY("b", "I32", "[1]", "[8,12]") "}";
    size_t total = 8 + strlen(header) + 12;
    unsigned char *valid = calloc(total, 1);
    valid[0] = (unsigned char)strlen(header);
    memcpy(valid + 8, header, strlen(header));
    for (size_t length = 0; length < total; length++) {
        unsigned char *copy = malloc(length ? length : 1);
        memcpy(copy, valid, length);
        nb_safetensors *file = nb_safetensors_parse(copy, length, "cut");
        cr_assert_null(file, "a file cut to %zu of %zu bytes parsed", length, total);
        free(copy);
    }
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int trial = 0; trial < 3000; trial++) {
        unsigned char *copy = malloc(total);
        memcpy(copy, valid, total);
        for (int flips = 1 + (int)nb_rng_below(&rng, 3); flips > 0; flips--)
            copy[nb_rng_below(&rng, total)] = (unsigned char)nb_rng_below(&rng, 256);
        nb_safetensors *file = nb_safetensors_parse(copy, total, "fuzz");
        for (int i = 0; i < nb_safetensors_count(file); i++) {
            const nb_safetensors_entry *e = nb_safetensors_entry_at(file, i);
            cr_assert(e->data >= copy + 8 && e->data + (e->end - e->begin) <= copy + total);
        }
        nb_safetensors_free(file);
        free(copy);
    }
    free(valid);
}
