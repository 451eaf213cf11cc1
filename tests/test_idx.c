/* IDX parsing (memory, plain and gzip files), MNIST-layout loading, the
 * minibatch loader, and the real Fashion-MNIST files when installed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nabla.h"
#include "nabla/data.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

static void assert_error(int status, int expected, const char *needle)
{
    cr_assert_eq(status, expected, "status %d, expected %d (%s)", status, expected, nb_last_error());
    cr_assert(strstr(nb_last_error(), needle), "error '%s' does not contain '%s'", nb_last_error(),
              needle);
}

/* Writes an IDX image: magic 00 00, type, ndim, big-endian dims, data. */
static size_t idx_bytes(unsigned char *out, int type, int ndim, const uint32_t *dims,
                        const unsigned char *data, size_t data_length)
{
    out[0] = 0, out[1] = 0, out[2] = (unsigned char)type, out[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++) out[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    memcpy(out + 4 + 4 * ndim, data, data_length);
    return 4 + 4 * (size_t)ndim + data_length;
}

/* A fresh directory per test: Criterion runs tests in parallel processes. */
static void temp_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/nabla-idx-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

static void write_file(const char *path, const void *bytes, size_t n, bool gzip)
{
    if (gzip) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(bytes, 1, n, f), n);
        fclose(f);
    }
}

static const uint32_t tiny_dims[3] = {2, 2, 3};
static const unsigned char tiny_data[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 255};

static void assert_tiny(const nb_idx *idx)
{
    cr_assert_eq(idx->ndim, 3);
    cr_assert(idx->dims[0] == 2 && idx->dims[1] == 2 && idx->dims[2] == 3);
    cr_assert_eq(idx->count, 12);
    cr_assert(memcmp(idx->data, tiny_data, 12) == 0);
}

Test(idx, parses_from_memory)
{
    unsigned char bytes[64];
    size_t n = idx_bytes(bytes, 0x08, 3, tiny_dims, tiny_data, 12);
    nb_idx idx;
    cr_assert_eq(nb_idx_parse(bytes, n, "tiny", &idx), NB_OK, "%s", nb_last_error());
    assert_tiny(&idx);
    nb_idx_free(&idx);
}

Test(idx, loads_plain_and_gzip_files)
{
    unsigned char bytes[64];
    size_t n = idx_bytes(bytes, 0x08, 3, tiny_dims, tiny_data, 12);
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    for (int gzip = 0; gzip < 2; gzip++) {
        snprintf(path, sizeof path, "%s/tiny%s", dir, gzip ? ".gz" : "");
        write_file(path, bytes, n, gzip);
        nb_idx idx;
        cr_assert_eq(nb_idx_load(path, &idx), NB_OK, "%s", nb_last_error());
        assert_tiny(&idx);
        nb_idx_free(&idx);
        remove(path);
    }
    rmdir(dir);
}

typedef struct bad_idx {
    unsigned char header[20];
    size_t header_length, data_length;
    const char *needle;
} bad_idx;

static const bad_idx bad_cases[] = {
    {{1, 0, 8, 1, 0, 0, 0, 1}, 8, 1, "bad magic 01 00 (expected 00 00)"},
    {{0, 0, 0x0D, 1, 0, 0, 0, 1}, 8, 4, "element type 0x0d (float) is not supported"},
    {{0, 0, 0x07, 1, 0, 0, 0, 1}, 8, 1, "unknown element type 0x07"},
    {{0, 0, 8, 0}, 4, 0, "ndim 0 outside 1..4"},
    {{0, 0, 8, 5}, 4, 0, "ndim 5 outside 1..4"},
    {{0, 0, 8}, 3, 0, "truncated header (3 bytes)"},
    {{0, 0, 8, 3, 0, 0, 0, 2}, 8, 0, "truncated header (8 bytes, 3 dims need 16)"},
    {{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3}, 12, 5, "truncated data: 5 bytes (dims [2,3] need 6"},
    {{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3}, 12, 9, "3 trailing bytes (dims [2,3] need 6"},
    /* 65536 * 65536 bytes = 4 GiB, over the 1 GiB cap: refused before any
     * allocation, with no data behind it. */
    {{0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0}, 12, 0, "dims [65536,65536] exceed the limit"},
    {{0, 0, 8, 4, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
     20, 0, "dims [4294967295,4294967295,4294967295,4294967295] exceed the limit"},
};

Test(idx, malformed_input_fails_clearly_in_memory_and_in_files)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.gz", dir);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_idx *c = &bad_cases[i];
        size_t n = c->header_length + c->data_length;
        unsigned char *bytes = calloc(n ? n : 1, 1); /* exact size: ASan sees overreads */
        memcpy(bytes, c->header, c->header_length);
        nb_idx idx;
        assert_error(nb_idx_parse(bytes, n, "mem", &idx), NB_ERR_FORMAT, c->needle);
        cr_assert(strstr(nb_last_error(), "idx: mem: "), "%s", nb_last_error());
        cr_assert_null(idx.data);
        write_file(path, bytes, n, true);
        assert_error(nb_idx_load(path, &idx), NB_ERR_FORMAT, c->needle);
        cr_assert(strstr(nb_last_error(), path), "%s", nb_last_error());
        free(bytes);
    }
    remove(path);
    rmdir(dir);
}

Test(idx, unreadable_and_corrupt_gzip_files)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    nb_idx idx;
    snprintf(path, sizeof path, "%s/absent", dir);
    assert_error(nb_idx_load(path, &idx), NB_ERR_IO, path);
    assert_error(nb_idx_load(dir, &idx), NB_ERR_IO, dir);
    /* A gzip stream cut in half: zlib reports an unexpected end. */
    static unsigned char payload[4000], bytes[4100];
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (unsigned char)nb_rng_below(&rng, 256);
    const uint32_t dims[1] = {sizeof payload};
    size_t n = idx_bytes(bytes, 0x08, 1, dims, payload, sizeof payload);
    snprintf(path, sizeof path, "%s/cut.gz", dir);
    write_file(path, bytes, n, true);
    FILE *f = fopen(path, "rb");
    static unsigned char compressed[8192];
    size_t size = fread(compressed, 1, sizeof compressed, f);
    fclose(f);
    write_file(path, compressed, size / 2, false);
    assert_error(nb_idx_load(path, &idx), NB_ERR_FORMAT, "bad gzip data");
    /* A flipped byte in the deflate data or its CRC. */
    compressed[size - 6] ^= 0xFF;
    write_file(path, compressed, size, false);
    assert_error(nb_idx_load(path, &idx), NB_ERR_FORMAT, "bad gzip data");
    remove(path);
    rmdir(dir);
}

/* Dataset of n images [1,2,3]: image i's pixels are 10*i + k, k = 0..5,
 * and its label is i % 10, so a batch tells which images it holds. */
static void make_dataset(nb_dataset *d, int n)
{
    static unsigned char bytes[4096];
    unsigned char pixels[1024], labels[256];
    for (int i = 0; i < n; i++) {
        labels[i] = (unsigned char)(i % 10);
        for (int k = 0; k < 6; k++) pixels[6 * i + k] = (unsigned char)(10 * i + k);
    }
    nb_idx images, label_idx;
    const uint32_t image_dims[3] = {(uint32_t)n, 2, 3}, label_dims[1] = {(uint32_t)n};
    size_t size = idx_bytes(bytes, 0x08, 3, image_dims, pixels, 6 * (size_t)n);
    cr_assert_eq(nb_idx_parse(bytes, size, "images", &images), NB_OK, "%s", nb_last_error());
    size = idx_bytes(bytes, 0x08, 1, label_dims, labels, (size_t)n);
    cr_assert_eq(nb_idx_parse(bytes, size, "labels", &label_idx), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_dataset_from_idx(&images, &label_idx, 10, "tiny", d), NB_OK, "%s", nb_last_error());
}

Test(dataset, from_idx_checks_counts_labels_and_dims)
{
    unsigned char bytes[64], zeros[12] = {0}, bad_labels[2] = {3, 10};
    const uint32_t image_dims[3] = {2, 2, 3}, two[1] = {2}, three[1] = {3};
    nb_idx images, labels;
    nb_dataset d;
    size_t n = idx_bytes(bytes, 0x08, 3, image_dims, zeros, 12);
    cr_assert_eq(nb_idx_parse(bytes, n, "i", &images), NB_OK);
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 1, three, zeros, 3), "l", &labels), NB_OK);
    assert_error(nb_dataset_from_idx(&images, &labels, 10, "pair", &d), NB_ERR_FORMAT,
                 "dataset: pair: 3 labels for 2 images");
    cr_assert_null(images.data, "the idx are consumed even on failure");
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 3, image_dims, zeros, 12), "i", &images), NB_OK);
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 1, two, bad_labels, 2), "l", &labels), NB_OK);
    assert_error(nb_dataset_from_idx(&images, &labels, 10, "pair", &d), NB_ERR_FORMAT,
                 "label 10 at index 1 is not below 10");
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 1, two, bad_labels, 2), "i", &images), NB_OK);
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 1, two, bad_labels, 2), "l", &labels), NB_OK);
    assert_error(nb_dataset_from_idx(&images, &labels, 10, "pair", &d), NB_ERR_FORMAT,
                 "images have 1 dims");
}

Test(mnist, loads_the_file_layout_with_or_without_gzip)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    unsigned char bytes[64], pixels[8] = {0, 255, 1, 2, 3, 4, 5, 6}, labels[2] = {9, 0};
    const uint32_t image_dims[3] = {2, 2, 2}, label_dims[1] = {2};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    write_file(path, bytes, idx_bytes(bytes, 0x08, 3, image_dims, pixels, 8), true);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    write_file(path, bytes, idx_bytes(bytes, 0x08, 1, label_dims, labels, 2), false);
    nb_dataset d;
    cr_assert_eq(nb_mnist_load(dir, "train", &d), NB_OK, "%s", nb_last_error());
    cr_assert(d.count == 2 && d.channels == 1 && d.height == 2 && d.width == 2 && d.num_classes == 10);
    cr_assert(memcmp(d.images, pixels, 8) == 0 && d.labels[0] == 9 && d.labels[1] == 0);
    nb_dataset_free(&d);
    assert_error(nb_mnist_load(dir, "test", &d), NB_ERR_IO, "no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz");
    assert_error(nb_mnist_load(dir, "valid", &d), NB_ERR_INVALID, "split \"valid\"");
    remove(path);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    remove(path);
    rmdir(dir);
}

/* Index of the image in batch row b, read back from its last pixel
 * (10*i + 5, so small noise does not change the answer). */
static int image_index(const nb_tensor *x, int64_t b, double mean, double std)
{
    double pixel = (((const float *)x->data)[b * 6 + 5] * std + mean) * 255.0;
    return (int)floor(pixel / 10.0);
}

static nb_loader_options plain_options(int64_t batch)
{
    nb_loader_options o = nb_loader_default_options();
    o.batch_size = batch;
    o.mean = 0.0;
    o.std = 1.0;
    return o;
}

/* Runs one epoch; writes the image order and batch sizes; returns the
 * number of batches. */
static int run_epoch(nb_loader *loader, nb_tape *tape, int *order, int64_t *sizes)
{
    int batches = 0, seen = 0, status;
    nb_tensor *x, *y;
    while ((status = nb_loader_next(loader, tape, &x, &y)) == 1) {
        cr_assert(x->dtype == NB_FLOAT32 && x->ndim == 4 && x->shape[1] == 1 && x->shape[2] == 2 &&
                  x->shape[3] == 3 && y->dtype == NB_INT32 && y->ndim == 1 && y->shape[0] == x->shape[0]);
        for (int64_t b = 0; b < x->shape[0]; b++) {
            order[seen] = image_index(x, b, 0.0, 1.0);
            cr_assert_eq(((int32_t *)y->data)[b], order[seen] % 10, "label follows its image");
            seen++;
        }
        sizes[batches++] = x->shape[0];
        nb_tape_reset(tape);
    }
    cr_assert_eq(status, 0, "%s", nb_last_error());
    return batches;
}

Test(loader, batch_sizes_and_drop_last)
{
    nb_dataset d;
    make_dataset(&d, 10);
    nb_tape *tape = nb_tape_new();
    int order[10];
    int64_t sizes[8];
    for (int drop = 0; drop < 2; drop++) {
        nb_loader_options o = plain_options(4);
        o.drop_last = drop;
        nb_loader *loader = nb_loader_new(&d, &o);
        cr_assert_eq(nb_loader_batches_per_epoch(loader), drop ? 2 : 3);
        cr_assert_eq(run_epoch(loader, tape, order, sizes), drop ? 2 : 3);
        cr_assert(sizes[0] == 4 && sizes[1] == 4 && (drop || sizes[2] == 2));
        cr_assert_eq(nb_loader_epoch(loader), 1);
        nb_loader_free(loader);
    }
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

Test(loader, shuffle_is_a_seeded_permutation_per_epoch)
{
    nb_dataset d;
    make_dataset(&d, 25);
    nb_tape *tape = nb_tape_new();
    nb_loader_options o = plain_options(7);
    o.seed = 42;
    nb_loader *a = nb_loader_new(&d, &o), *b = nb_loader_new(&d, &o);
    o.seed = 43;
    nb_loader *c = nb_loader_new(&d, &o);
    int first[25], again[25], second[25], other[25], resumed[25];
    int64_t sizes[8];
    run_epoch(a, tape, first, sizes);
    run_epoch(a, tape, second, sizes);
    run_epoch(b, tape, again, sizes);
    run_epoch(c, tape, other, sizes);
    cr_assert(memcmp(first, again, sizeof first) == 0, "same seed, same order");
    cr_assert(memcmp(first, second, sizeof first) != 0, "each epoch reshuffles");
    cr_assert(memcmp(first, other, sizeof first) != 0, "another seed, another order");
    int identity = 1, count[25] = {0};
    for (int i = 0; i < 25; i++) {
        count[first[i]]++;
        identity &= first[i] == i;
    }
    for (int i = 0; i < 25; i++) cr_assert_eq(count[i], 1, "image %d seen %d times", i, count[i]);
    cr_assert(!identity, "shuffled");
    nb_loader_set_epoch(b, 1); /* resume: epoch 1 again, from its start */
    run_epoch(b, tape, resumed, sizes);
    cr_assert(memcmp(second, resumed, sizeof second) == 0);
    o.shuffle = false;
    nb_loader *in_order = nb_loader_new(&d, &o);
    run_epoch(in_order, tape, first, sizes);
    for (int i = 0; i < 25; i++) cr_assert_eq(first[i], i);
    nb_loader_free(a), nb_loader_free(b), nb_loader_free(c), nb_loader_free(in_order);
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

Test(loader, normalises_with_fashion_mnist_defaults)
{
    unsigned char bytes[64], pixels[3] = {0, 51, 255}, label[1] = {4};
    const uint32_t image_dims[3] = {1, 1, 3}, label_dims[1] = {1};
    nb_idx images, labels;
    nb_dataset d;
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 3, image_dims, pixels, 3), "i", &images), NB_OK);
    cr_assert_eq(nb_idx_parse(bytes, idx_bytes(bytes, 0x08, 1, label_dims, label, 1), "l", &labels), NB_OK);
    cr_assert_eq(nb_dataset_from_idx(&images, &labels, 10, "one", &d), NB_OK);
    nb_tape *tape = nb_tape_new();
    nb_loader *loader = nb_loader_new(&d, NULL);
    nb_tensor *x, *y;
    cr_assert_eq(nb_loader_next(loader, tape, &x, &y), 1, "%s", nb_last_error());
    /* (0 - 0.286)/0.353, (51/255 = 0.2 - 0.286)/0.353, (1 - 0.286)/0.353 */
    const double expected[3] = {-0.810198, -0.243626, 2.022663};
    for (int i = 0; i < 3; i++)
        cr_assert(fabs(((float *)x->data)[i] - expected[i]) < 2e-6, "pixel %d: %.7f", i,
                  ((float *)x->data)[i]);
    cr_assert_eq(((int32_t *)y->data)[0], 4);
    nb_loader_free(loader);
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

Test(loader, gaussian_noise_is_opt_in_and_seeded)
{
    nb_dataset d;
    make_dataset(&d, 25);
    nb_tape *tape = nb_tape_new();
    nb_loader_options o = plain_options(25);
    o.shuffle = false;
    nb_loader *clean = nb_loader_new(&d, &o);
    o.noise_std = 0.5;
    nb_loader *noisy = nb_loader_new(&d, &o), *noisy_again = nb_loader_new(&d, &o);
    nb_tensor *x, *y, *n1, *n2;
    cr_assert_eq(nb_loader_next(clean, tape, &x, &y), 1);
    cr_assert_eq(nb_loader_next(noisy, tape, &n1, &y), 1);
    cr_assert_eq(nb_loader_next(noisy_again, tape, &n2, &y), 1);
    double sum = 0, square = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        float clean_value = ((float *)x->data)[i];
        cr_assert_eq(clean_value, (float)((i / 6 * 10 + i % 6) / 255.0), "noise is off by default");
        double noise = ((float *)n1->data)[i] - clean_value;
        sum += noise;
        square += noise * noise;
    }
    cr_assert(memcmp(n1->data, n2->data, (size_t)x->numel * sizeof(float)) == 0, "seeded noise");
    /* 150 draws of N(0, 0.25): the sample std is within 0.5 +- 0.1 with
     * overwhelming probability, and the mean within +- 0.15 (3.7 sigma). */
    double mean = sum / (double)x->numel, std = sqrt(square / (double)x->numel - mean * mean);
    cr_assert(fabs(mean) < 0.15 && fabs(std - 0.5) < 0.1, "noise mean %g std %g", mean, std);
    nb_loader_free(clean), nb_loader_free(noisy), nb_loader_free(noisy_again);
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

static int allocations;
static void *counting_malloc(size_t size, void *user) { (void)user; allocations++; return malloc(size); }
static void counting_free(void *p, void *user) { (void)user; free(p); }

Test(loader, a_steady_state_step_allocates_nothing)
{
    nb_dataset d;
    make_dataset(&d, 25);
    nb_tape *tape = nb_tape_new();
    nb_loader_options o = plain_options(8);
    o.noise_std = 0.001;
    nb_loader *loader = nb_loader_new(&d, &o);
    int order[25];
    int64_t sizes[8];
    run_epoch(loader, tape, order, sizes); /* the arena grows here */
    nb_set_allocator(counting_malloc, counting_free, NULL);
    allocations = 0;
    run_epoch(loader, tape, order, sizes);
    nb_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(allocations, 0, "%d allocations in a steady-state epoch", allocations);
    nb_loader_free(loader);
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

Test(loader, rejects_bad_options_and_an_errored_tape)
{
    nb_dataset d;
    make_dataset(&d, 3);
    nb_loader_options o = plain_options(0);
    cr_assert_null(nb_loader_new(&d, &o));
    cr_assert(strstr(nb_last_error(), "batch_size 0"), "%s", nb_last_error());
    o = plain_options(2);
    o.std = 0;
    cr_assert_null(nb_loader_new(&d, &o));
    o.std = 1;
    o.noise_std = -1;
    cr_assert_null(nb_loader_new(&d, &o));
    o.noise_std = 0;
    nb_loader *loader = nb_loader_new(&d, &o);
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {-1};
    cr_assert_null(nb_tape_tensor(tape, NB_FLOAT32, 1, shape, NULL)); /* puts an error on the tape */
    nb_tensor *x, *y;
    assert_error(nb_loader_next(loader, tape, &x, &y), NB_ERR_STATE, "tape has an error");
    cr_assert_null(x);
    nb_loader_free(loader);
    nb_tape_free(tape);
    nb_dataset_free(&d);
}

Test(fashion_mnist, real_files_load_when_installed, .timeout = 60)
{
    if (access(FASHION_MNIST_DIR, R_OK) != 0)
        cr_skip_test("%s absent (Debian package dataset-fashion-mnist): skipped", FASHION_MNIST_DIR);
    nb_dataset train, test;
    cr_assert_eq(nb_mnist_load(FASHION_MNIST_DIR, "train", &train), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_mnist_load(FASHION_MNIST_DIR, "test", &test), NB_OK, "%s", nb_last_error());
    cr_assert(train.count == 60000 && test.count == 10000);
    cr_assert(train.channels == 1 && train.height == 28 && train.width == 28 && test.height == 28);
    /* Published facts: balanced classes (6000 / 1000 each); the first
     * training and test images are both ankle boots (class 9). */
    int train_counts[10] = {0}, test_counts[10] = {0};
    for (int64_t i = 0; i < train.count; i++) train_counts[train.labels[i]]++;
    for (int64_t i = 0; i < test.count; i++) test_counts[test.labels[i]]++;
    for (int c = 0; c < 10; c++) cr_assert(train_counts[c] == 6000 && test_counts[c] == 1000);
    cr_assert(train.labels[0] == 9 && test.labels[0] == 9);
    /* The default normalisation constants are the training set's pixel
     * mean and std. */
    double sum = 0, square = 0, n = (double)train.count * 784;
    for (int64_t i = 0; i < train.count * 784; i++) {
        double v = train.images[i] / 255.0;
        sum += v;
        square += v * v;
    }
    double mean = sum / n, std = sqrt(square / n - mean * mean);
    cr_assert(fabs(mean - NB_FASHION_MNIST_MEAN) < 1e-4 && fabs(std - NB_FASHION_MNIST_STD) < 1e-4,
              "mean %.5f std %.5f", mean, std);
    nb_tape *tape = nb_tape_new();
    nb_loader *loader = nb_loader_new(&train, NULL);
    nb_tensor *x, *y;
    cr_assert_eq(nb_loader_next(loader, tape, &x, &y), 1, "%s", nb_last_error());
    cr_assert(x->shape[0] == 64 && x->shape[1] == 1 && x->shape[2] == 28 && x->shape[3] == 28);
    cr_assert_eq(nb_loader_batches_per_epoch(loader), 938);
    nb_loader_free(loader);
    nb_tape_reset(tape);
    /* Unshuffled batches of 64, filled by 1 and by 2 threads: every pixel is
     * (byte / 255 - mean) / std of its own image. */
    nb_loader_options o = nb_loader_default_options();
    o.shuffle = false;
    for (int threads = 1; threads <= 2; threads++) {
        cr_assert_eq(nb_set_num_threads(threads), NB_OK);
        loader = nb_loader_new(&train, &o);
        cr_assert_eq(nb_loader_next(loader, tape, &x, &y), 1, "%s", nb_last_error());
        cr_assert_eq(nb_loader_next(loader, tape, &x, &y), 1, "%s", nb_last_error());
        for (int64_t i = 0; i < 64 * 784; i++) {
            double want = (train.images[64 * 784 + i] / 255.0 - NB_FASHION_MNIST_MEAN) / NB_FASHION_MNIST_STD;
            cr_assert(fabs(((const float *)x->data)[i] - want) < 1e-5, "%d threads, pixel %lld", threads,
                      (long long)i);
        }
        for (int64_t b = 0; b < 64; b++) cr_assert_eq(((const int32_t *)y->data)[b], train.labels[64 + b]);
        nb_loader_free(loader);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
}
