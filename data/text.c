/* Byte-level text for character language models: the fortunes layout
 * (every file of a directory but the .dat indexes and .u8 links, in name
 * order, concatenated), a 90/10 train/validation split, random training
 * windows and the validation windows in order. Bytes are the tokens
 * (vocabulary 256), so no tokenizer state exists to save or mismatch. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>   /* qsort */
#include <string.h>
#include <sys/stat.h>

#include "nabla/data.h"
#include "nabla/status.h"
#include "nabla/tape.h"

/* The first 9/10 of the bytes train. */
static const int64_t TRAIN_PARTS = 9, ALL_PARTS = 10;

/* Takes `bytes` (nb_malloc'd) as the text; train = floor(9/10 length). */
static void set_split(nb_text *out, uint8_t *bytes, int64_t length)
{
    out->bytes = bytes;
    out->length = length;
    out->train_length = length / ALL_PARTS * TRAIN_PARTS + length % ALL_PARTS * TRAIN_PARTS / ALL_PARTS;
}

int nb_text_from_bytes(const void *bytes, size_t length, nb_text *out)
{
    if (!out || (!bytes && length)) return nb_fail(NB_ERR_INVALID, "text: NULL argument");
    memset(out, 0, sizeof *out);
    uint8_t *copy = nb_malloc(length ? length : 1);
    if (!copy) return nb_fail(NB_ERR_NOMEM, "text: out of memory for %zu bytes", length);
    if (length) memcpy(copy, bytes, length);
    set_split(out, copy, (int64_t)length);
    return NB_OK;
}

void nb_text_free(nb_text *text)
{
    if (!text) return;
    nb_free(text->bytes);
    memset(text, 0, sizeof *text);
}

static bool ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* One file of the corpus: its name and size when listed. */
typedef struct text_file {
    char name[256];
    int64_t size;
} text_file;

/* Doubles *files' capacity (the data library allocates through nb_malloc). */
static int grow_files(text_file **files, size_t *capacity)
{
    size_t grown = *capacity ? 2 * *capacity : 64;
    text_file *bigger = nb_malloc(grown * sizeof *bigger);
    if (!bigger) return NB_ERR_NOMEM;
    if (*files) memcpy(bigger, *files, *capacity * sizeof *bigger);
    nb_free(*files);
    *files = bigger;
    *capacity = grown;
    return NB_OK;
}

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const text_file *)a)->name, ((const text_file *)b)->name);
}

/* The regular files of dir that are not .dat or .u8, sorted by name. */
static int list_text_files(const char *dir, text_file **files_out, size_t *count_out)
{
    DIR *d = opendir(dir);
    if (!d)
        return nb_fail(NB_ERR_IO, "fortunes: cannot open %s: %s (install Debian's fortunes "
                       "package: apt-get install fortunes)", dir, strerror(errno));
    text_file *files = NULL;
    size_t count = 0, capacity = 0;
    int status = NB_OK;
    for (struct dirent *e; status == NB_OK && (e = readdir(d));) {
        char path[4096];
        struct stat st;
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (ends_with(e->d_name, ".dat") || ends_with(e->d_name, ".u8") ||
            strlen(e->d_name) >= sizeof files->name || n < 0 || (size_t)n >= sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (count == capacity && grow_files(&files, &capacity) != NB_OK) {
            status = nb_fail(NB_ERR_NOMEM, "fortunes: out of memory listing %s", dir);
            break;
        }
        strcpy(files[count].name, e->d_name);
        files[count++].size = (int64_t)st.st_size;
    }
    closedir(d);
    if (status == NB_OK && count == 0)
        status = nb_fail(NB_ERR_IO, "fortunes: %s holds no text files (install Debian's fortunes "
                         "package: apt-get install fortunes)", dir);
    if (status != NB_OK) {
        nb_free(files);
        return status;
    }
    qsort(files, count, sizeof *files, compare_files);
    *files_out = files;
    *count_out = count;
    return NB_OK;
}

/* Reads exactly `size` bytes of dir/name into out (a file that changed
 * size since it was listed is an error, not a silently different corpus). */
static int read_file(const char *dir, const text_file *file, uint8_t *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file->name);
    FILE *f = fopen(path, "rb");
    if (!f) return nb_fail(NB_ERR_IO, "fortunes: cannot open %s: %s", path, strerror(errno));
    size_t got = fread(out, 1, (size_t)file->size, f);
    bool at_end = fgetc(f) == EOF;
    int status = NB_OK;
    if (ferror(f)) status = nb_fail(NB_ERR_IO, "fortunes: error reading %s", path);
    else if (got != (size_t)file->size || !at_end)
        status = nb_fail(NB_ERR_IO, "fortunes: %s changed size while being read", path);
    fclose(f);
    return status;
}

int nb_fortunes_load(const char *dir, nb_text *out)
{
    if (!dir || !out) return nb_fail(NB_ERR_INVALID, "fortunes: NULL argument");
    memset(out, 0, sizeof *out);
    text_file *files;
    size_t count;
    int status = list_text_files(dir, &files, &count);
    if (status != NB_OK) return status;
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) total += files[i].size;
    if (total == 0) status = nb_fail(NB_ERR_FORMAT, "fortunes: the files of %s are empty", dir);
    uint8_t *bytes = status == NB_OK ? nb_malloc((size_t)total) : NULL;
    if (status == NB_OK && !bytes)
        status = nb_fail(NB_ERR_NOMEM, "fortunes: out of memory for %lld bytes", (long long)total);
    int64_t offset = 0;
    for (size_t i = 0; i < count && status == NB_OK; i++) {
        status = read_file(dir, &files[i], bytes + offset);
        offset += files[i].size;
    }
    nb_free(files);
    if (status != NB_OK) {
        nb_free(bytes);
        return status;
    }
    set_split(out, bytes, total);
    return NB_OK;
}

/* The split's bytes [*begin, *end). */
static int split_range(const nb_text *text, nb_text_split split, int64_t *begin, int64_t *end)
{
    if (!text || !text->bytes) return nb_fail(NB_ERR_INVALID, "text: no text loaded");
    if (split != NB_TEXT_TRAIN && split != NB_TEXT_VALIDATION)
        return nb_fail(NB_ERR_INVALID, "text: unknown split %d", (int)split);
    *begin = split == NB_TEXT_TRAIN ? 0 : text->train_length;
    *end = split == NB_TEXT_TRAIN ? text->train_length : text->length;
    return NB_OK;
}

static const char *split_name(nb_text_split split)
{
    return split == NB_TEXT_TRAIN ? "train" : "validation";
}

/* Inputs int32 [B,T] and targets int32 [B*T] (the next byte of each
 * input) on the tape, from B windows starting at starts[b]. */
static int make_batch(const uint8_t *bytes, const int64_t *starts, int64_t batch, int64_t T,
                      nb_tape *tape, nb_tensor **inputs, nb_tensor **targets)
{
    *inputs = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){batch, T}, NULL);
    *targets = nb_tape_tensor(tape, NB_INT32, 1, (int64_t[]){batch * T}, NULL);
    if (!*inputs || !*targets) return nb_tape_error(tape) ? NB_ERR_INVALID : NB_ERR_NOMEM;
    int32_t *x = (*inputs)->data, *y = (*targets)->data;
    for (int64_t b = 0; b < batch; b++) {
        const uint8_t *window = bytes + starts[b];
        for (int64_t t = 0; t < T; t++) {
            x[b * T + t] = window[t];
            y[b * T + t] = window[t + 1];
        }
    }
    return NB_OK;
}

static int check_window(const char *who, int64_t length, int64_t batch, int64_t T,
                        nb_text_split split)
{
    if (batch < 1 || T < 1)
        return nb_fail(NB_ERR_INVALID, "%s: batch %lld and length %lld must be >= 1", who,
                       (long long)batch, (long long)T);
    if (length < T + 1)
        return nb_fail(NB_ERR_INVALID, "%s: the %s split has %lld bytes, fewer than a window of "
                       "%lld + 1", who, split_name(split), (long long)length, (long long)T);
    return NB_OK;
}

int nb_text_random_batch(const nb_text *text, nb_text_split split, nb_rng *rng, int64_t batch,
                         int64_t T, nb_tape *tape, nb_tensor **inputs, nb_tensor **targets)
{
    int64_t begin = 0, end = 0;
    int status = split_range(text, split, &begin, &end);
    if (status == NB_OK && (!rng || !tape || !inputs || !targets))
        status = nb_fail(NB_ERR_INVALID, "text_random_batch: NULL argument");
    if (status == NB_OK) status = check_window("text_random_batch", end - begin, batch, T, split);
    if (status != NB_OK) return status;
    int64_t *starts = nb_tape_alloc(tape, (size_t)batch * sizeof *starts);
    if (!starts) return NB_ERR_NOMEM;
    /* end - begin - T starts leave room for the last target byte. */
    for (int64_t b = 0; b < batch; b++)
        starts[b] = begin + (int64_t)nb_rng_below(rng, (uint64_t)(end - begin - T));
    return make_batch(text->bytes, starts, batch, T, tape, inputs, targets);
}

int64_t nb_text_window_count(const nb_text *text, nb_text_split split, int64_t T)
{
    int64_t begin = 0, end = 0;
    if (split_range(text, split, &begin, &end) != NB_OK) return -1;
    if (T < 1) return nb_fail(NB_ERR_INVALID, "text_window_count: length %lld < 1", (long long)T), -1;
    return end - begin >= T + 1 ? (end - begin - 1) / T : 0;
}

int nb_text_window_batch(const nb_text *text, nb_text_split split, int64_t first, int64_t count,
                         int64_t T, nb_tape *tape, nb_tensor **inputs, nb_tensor **targets)
{
    int64_t begin = 0, end = 0;
    int status = split_range(text, split, &begin, &end);
    if (status == NB_OK && (!tape || !inputs || !targets))
        status = nb_fail(NB_ERR_INVALID, "text_window_batch: NULL argument");
    if (status == NB_OK) status = check_window("text_window_batch", end - begin, count, T, split);
    int64_t windows = status == NB_OK ? nb_text_window_count(text, split, T) : 0;
    if (status == NB_OK && (first < 0 || first > windows - count))
        status = nb_fail(NB_ERR_INVALID, "text_window_batch: windows %lld..%lld outside the %lld "
                         "of the %s split", (long long)first, (long long)(first + count - 1),
                         (long long)windows, split_name(split));
    if (status != NB_OK) return status;
    int64_t *starts = nb_tape_alloc(tape, (size_t)count * sizeof *starts);
    if (!starts) return NB_ERR_NOMEM;
    for (int64_t w = 0; w < count; w++) starts[w] = begin + (first + w) * T;
    return make_batch(text->bytes, starts, count, T, tape, inputs, targets);
}
