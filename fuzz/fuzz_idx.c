/* Fuzz target: the IDX reader (nb_idx_parse, nb_idx_load) and what is
 * built on it (nb_dataset_from_idx, the minibatch loader).
 *
 * Input: one mode byte, then
 *   mode 0: an IDX image for nb_idx_parse;
 *   mode 1: the same, written to a file and read back with nb_idx_load,
 *           which must agree with nb_idx_parse (same status, same bytes);
 *   mode 2: a split point (2 bytes), a class count, a batch size and flag
 *           byte, then an images IDX and a labels IDX; a valid pair becomes
 *           a dataset and the loader makes one epoch of batches from it. */
#include <string.h>

#include "fuzz/fuzz_common.h"
#include "nabla/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_install_allocator((size_t)64 << 20, (size_t)256 << 20);
    nb_set_num_threads(1);
    return 0;
}

/* A parsed IDX must describe exactly the bytes it holds. */
static void check_idx(const nb_idx *idx, const uint8_t *payload)
{
    FUZZ_CHECK(idx->ndim >= 1 && idx->ndim <= NB_IDX_MAX_DIMS);
    int64_t count = fuzz_numel(idx->ndim, idx->dims);
    FUZZ_CHECK(count >= 0 && count == idx->count);
    FUZZ_CHECK(idx->data != NULL);
    if (payload) FUZZ_CHECK(memcmp(idx->data, payload, (size_t)count) == 0);
}

static void check_failure(int status, const nb_idx *idx)
{
    FUZZ_CHECK(status < 0);
    FUZZ_CHECK(nb_last_error()[0] != '\0');
    FUZZ_CHECK(idx->data == NULL && idx->ndim == 0 && idx->count == 0);
}

static void parse_only(const uint8_t *data, size_t size)
{
    nb_idx idx;
    int status = nb_idx_parse(data, size, "fuzz", &idx);
    if (status == NB_OK) check_idx(&idx, data + 4 + 4 * (size_t)idx.ndim);
    else check_failure(status, &idx);
    nb_idx_free(&idx);
}

/* Uncompressed files go through zlib's transparent mode, so the file
 * reader must match the in-memory parser exactly. */
static void load_matches_parse(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_path("input.idx");
    if (!path || fuzz_write_file(path, data, size) != 0) return;
    nb_idx parsed, loaded;
    int parse_status = nb_idx_parse(data, size, "fuzz", &parsed);
    int load_status = nb_idx_load(path, &loaded);
    bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (load_status == NB_OK) check_idx(&loaded, NULL);
    else check_failure(load_status, &loaded);
    /* The file reader allocates what the header claims (up to
     * NB_IDX_MAX_BYTES) before it reads the data, as it must for a gzip
     * stream, so the bounded allocator may refuse a file the parser
     * rejects as truncated. */
    if (!gzip && load_status != NB_ERR_NOMEM) {
        FUZZ_CHECK(parse_status == load_status);
        if (parse_status == NB_OK) {
            FUZZ_CHECK(parsed.ndim == loaded.ndim && parsed.count == loaded.count);
            FUZZ_CHECK(memcmp(parsed.dims, loaded.dims, sizeof parsed.dims) == 0);
            FUZZ_CHECK(memcmp(parsed.data, loaded.data, (size_t)parsed.count) == 0);
        }
    }
    nb_idx_free(&parsed);
    nb_idx_free(&loaded);
}

static void dataset_and_loader(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size, 0};
    size_t split = fuzz_byte(&r) | (size_t)fuzz_byte(&r) << 8;
    int num_classes = fuzz_byte(&r) + 1 - 4; /* -3..252: a few invalid */
    int64_t batch = (int64_t)(fuzz_byte(&r) % 17) - 1;
    uint8_t flags = fuzz_byte(&r);
    const uint8_t *rest = data + r.position;
    size_t rest_size = size - (r.position < size ? r.position : size);
    if (split > rest_size) split = rest_size;

    nb_idx images, labels;
    if (nb_idx_parse(rest, split, "images", &images) != NB_OK) return;
    if (nb_idx_parse(rest + split, rest_size - split, "labels", &labels) != NB_OK) {
        nb_idx_free(&images);
        return;
    }
    nb_dataset dataset;
    int status = nb_dataset_from_idx(&images, &labels, num_classes, "fuzz", &dataset);
    FUZZ_CHECK(images.data == NULL && labels.data == NULL); /* consumed either way */
    if (status != NB_OK) {
        FUZZ_CHECK(nb_last_error()[0] != '\0');
        return;
    }
    FUZZ_CHECK(dataset.count >= 0 && dataset.channels >= 0 && dataset.height >= 0);
    for (int64_t i = 0; i < dataset.count; i++) FUZZ_CHECK(dataset.labels[i] < num_classes);

    nb_loader_options options = nb_loader_default_options();
    options.batch_size = batch;
    options.shuffle = flags & 1;
    options.drop_last = flags & 2;
    options.noise_std = flags & 4 ? 0.5 : 0.0;
    options.seed = flags;
    nb_loader *loader = nb_loader_new(&dataset, &options);
    if (!loader) {
        FUZZ_CHECK(batch < 1);
        nb_dataset_free(&dataset);
        return;
    }
    nb_tape *tape = nb_tape_new();
    if (tape) {
        int64_t seen = 0, batches = 0;
        nb_tensor *x, *y;
        while ((status = nb_loader_next(loader, tape, &x, &y)) == 1) {
            FUZZ_CHECK(x && y && x->dtype == NB_FLOAT32 && y->dtype == NB_INT32);
            FUZZ_CHECK(x->ndim == 4 && x->shape[0] == y->shape[0] && y->shape[0] <= batch);
            FUZZ_CHECK(x->shape[1] == dataset.channels && x->shape[2] == dataset.height &&
                       x->shape[3] == dataset.width);
            for (int64_t i = 0; i < y->numel; i++) {
                int32_t label = ((const int32_t *)y->data)[i];
                FUZZ_CHECK(label >= 0 && label < num_classes);
            }
            seen += y->shape[0];
            batches++;
            nb_tape_reset(tape);
        }
        /* Out of memory is a clean error; otherwise a whole epoch. */
        FUZZ_CHECK(status == 0 || (status < 0 && nb_last_error()[0] != '\0'));
        if (status == 0) {
            FUZZ_CHECK(batches == nb_loader_batches_per_epoch(loader));
            FUZZ_CHECK(options.drop_last ? seen == batches * batch : seen == dataset.count);
        }
        nb_tape_free(tape);
    }
    nb_loader_free(loader);
    nb_dataset_free(&dataset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    nb_clear_error();
    switch (data[0] % 3) {
    case 0: parse_only(data + 1, size - 1); break;
    case 1: load_matches_parse(data + 1, size - 1); break;
    default: dataset_and_loader(data + 1, size - 1); break;
    }
    FUZZ_CHECK(fuzz_live_bytes() == 0); /* everything made was freed */
    return 0;
}
