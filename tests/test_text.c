/* The byte-level text loader of the data library: the fortunes layout
 * (which files, in which order), the 90/10 split, random and in-order
 * windows, and its errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nabla.h"
#include "nabla/data.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* A scratch directory, removed with its files by remove_dir. */
static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/nabla-text-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq(system(command), 0);
}

Test(text, split_is_the_first_nine_tenths)
{
    const int64_t lengths[4] = {10, 25, 1, 2576674}, train[4] = {9, 22, 0, 2319006};
    char *bytes = calloc(2576674, 1);
    for (int i = 0; i < 4; i++) {
        nb_text text;
        cr_assert_eq(nb_text_from_bytes(bytes, (size_t)lengths[i], &text), NB_OK);
        cr_assert_eq(text.length, lengths[i]);
        cr_assert_eq(text.train_length, train[i], "length %lld", (long long)lengths[i]);
        nb_text_free(&text);
    }
    free(bytes);
}

/* Text files in name order; .dat, .u8, directories and other entries skipped. */
Test(text, fortunes_layout)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "b", "BB");
    write_file(dir, "a", "A");
    write_file(dir, "a.dat", "index");
    write_file(dir, "c", "");
    char link[600], sub[600];
    snprintf(link, sizeof link, "%s/a.u8", dir);
    cr_assert_eq(symlink("a", link), 0);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    write_file(dir, "Z", "z");      /* uppercase sorts first (byte order) */
    nb_text text;
    cr_assert_eq(nb_fortunes_load(dir, &text), NB_OK, "%s", nb_last_error());
    cr_assert_eq(text.length, 4);
    cr_assert_eq(memcmp(text.bytes, "zABB", 4), 0);
    nb_text_free(&text);
    remove_dir(dir);
}

Test(text, fortunes_errors_name_the_package)
{
    nb_text text;
    cr_assert_eq(nb_fortunes_load("/nonexistent/fortunes", &text), NB_ERR_IO);
    cr_assert(strstr(nb_last_error(), "/nonexistent/fortunes") != NULL, "%s", nb_last_error());
    cr_assert(strstr(nb_last_error(), "apt-get install fortunes") != NULL, "%s", nb_last_error());
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "only.dat", "x");
    cr_assert_eq(nb_fortunes_load(dir, &text), NB_ERR_IO);
    cr_assert(strstr(nb_last_error(), "holds no text files") != NULL, "%s", nb_last_error());
    write_file(dir, "empty", "");
    cr_assert_eq(nb_fortunes_load(dir, &text), NB_ERR_FORMAT);
    cr_assert(strstr(nb_last_error(), "empty") != NULL, "%s", nb_last_error());
    cr_assert_null(text.bytes);
    remove_dir(dir);
}

/* bytes[i] = i % 200 over 1000 bytes: a window starting at s holds s, s+1, ...
 * (mod 200), so each row shows where it starts and that it stays in the split. */
static nb_text counting_text(void)
{
    uint8_t bytes[1000];
    for (int i = 0; i < 1000; i++) bytes[i] = (uint8_t)(i % 200);
    nb_text text;
    cr_assert_eq(nb_text_from_bytes(bytes, sizeof bytes, &text), NB_OK);
    return text;
}

/* Validation = bytes 900..999 (values 100..199): windows start at 900..989
 * (the last input byte's target is the split's last byte), so the first
 * value is 100..189 and a row never wraps past 199. */
Test(text, random_windows_are_shifted_by_one_and_inside_the_split)
{
    nb_text text = counting_text();
    nb_tape *tape = nb_tape_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    const int64_t B = 64, T = 10;
    int32_t lowest = 256, highest = -1;
    for (int split = 0; split < 2; split++) {
        for (int round = 0; round < 20; round++) {
            nb_tensor *x, *y;
            cr_assert_eq(nb_text_random_batch(&text, (nb_text_split)split, &rng, B, T, tape, &x, &y), NB_OK);
            cr_assert_eq(x->dtype, NB_INT32);
            cr_assert(x->ndim == 2 && x->shape[0] == B && x->shape[1] == T);
            cr_assert(y->ndim == 1 && y->shape[0] == B * T);
            const int32_t *xi = x->data, *yi = y->data;
            for (int64_t b = 0; b < B; b++) {
                for (int64_t t = 0; t < T; t++) {
                    cr_assert_eq(xi[b * T + t], (xi[b * T] + t) % 200);
                    cr_assert_eq(yi[b * T + t], (xi[b * T] + t + 1) % 200);
                }
                if (split == NB_TEXT_VALIDATION) {
                    if (xi[b * T] < lowest) lowest = xi[b * T];
                    if (xi[b * T] > highest) highest = xi[b * T];
                }
            }
            nb_tape_reset(tape);
        }
    }
    cr_assert(lowest >= 100 && highest <= 189, "validation starts %d..%d", lowest, highest);
    cr_assert(lowest <= 105 && highest >= 184, "1280 draws over 90 starts reach both ends: %d..%d",
              lowest, highest);
    nb_tape_free(tape);
    nb_text_free(&text);
}

Test(text, validation_windows_in_order)
{
    nb_text text = counting_text();
    nb_tape *tape = nb_tape_new();
    /* 100 validation bytes, T = 30: windows at 0, 30, 60 (the one at 90
     * would need bytes up to 120). */
    cr_assert_eq(nb_text_window_count(&text, NB_TEXT_VALIDATION, 30), 3);
    cr_assert_eq(nb_text_window_count(&text, NB_TEXT_VALIDATION, 33), 3);   /* 99 = 3 * 33 */
    cr_assert_eq(nb_text_window_count(&text, NB_TEXT_VALIDATION, 99), 1);
    cr_assert_eq(nb_text_window_count(&text, NB_TEXT_VALIDATION, 100), 0);
    cr_assert_eq(nb_text_window_count(&text, NB_TEXT_TRAIN, 100), 8);      /* 899 / 100 */
    nb_tensor *x, *y;
    cr_assert_eq(nb_text_window_batch(&text, NB_TEXT_VALIDATION, 1, 2, 30, tape, &x, &y), NB_OK);
    const int32_t *xi = x->data, *yi = y->data;
    for (int64_t w = 0; w < 2; w++)
        for (int64_t t = 0; t < 30; t++) {
            int64_t position = 900 + (1 + w) * 30 + t;
            cr_assert_eq(xi[w * 30 + t], position % 200);
            cr_assert_eq(yi[w * 30 + t], (position + 1) % 200);
        }
    cr_assert_eq(nb_text_window_batch(&text, NB_TEXT_VALIDATION, 2, 2, 30, tape, &x, &y), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "windows 2..3 outside the 3 of the validation split") != NULL,
              "%s", nb_last_error());
    nb_tape_free(tape);
    nb_text_free(&text);
}

Test(text, windows_longer_than_the_split_are_errors)
{
    nb_text text = counting_text();
    nb_tape *tape = nb_tape_new();
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_tensor *x, *y;
    cr_assert_eq(nb_text_random_batch(&text, NB_TEXT_VALIDATION, &rng, 2, 100, tape, &x, &y), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "the validation split has 100 bytes, fewer than a window of 100 + 1")
              != NULL, "%s", nb_last_error());
    cr_assert_eq(nb_text_random_batch(&text, NB_TEXT_TRAIN, &rng, 0, 10, tape, &x, &y), NB_ERR_INVALID);
    cr_assert_eq(nb_text_random_batch(&text, NB_TEXT_TRAIN, &rng, 2, 899, tape, &x, &y), NB_OK);
    nb_tape_free(tape);
    nb_text_free(&text);
}
