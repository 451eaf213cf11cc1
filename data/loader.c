/* The minibatch loader: a per-epoch permutation, uint8 -> float32 through
 * a 256-entry table, optional Gaussian noise, output as arena tensors; in
 * data-parallel training each shard takes its slice of every global batch. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/checkpoint.h"
#include "nabla/status.h"
#include "nabla/data.h"
#include "nabla/threads.h"

struct nb_loader {
    const nb_dataset *dataset;
    nb_loader_options options;
    int64_t *order;          /* [N] the epoch's sample order */
    int64_t order_epoch;     /* the epoch `order` was made for, -1 before the first */
    int64_t position;        /* order entry where the next global batch starts */
    int64_t epoch;
    bool epoch_started;
    int64_t slice;           /* this shard's first entry within the current global batch */
    int64_t global_batch;    /* size of the global batch the last batch came from */
    float table[256];        /* normalised value of each pixel byte */
    double table64[256];     /* the same in double, for float64 images */
};

nb_loader_options nb_loader_default_options(void)
{
    nb_loader_options o = {
        .batch_size = 64,
        .shuffle = true,
        .seed = 0,
        .drop_last = false,
        .mean = NB_FASHION_MNIST_MEAN,
        .std = NB_FASHION_MNIST_STD,
        .noise_std = 0.0,
        .shard_index = 0,
        .shard_count = 1,
        .dtype = NB_FLOAT32,
    };
    return o;
}

/* A strong 64-bit mix (the splitmix64 finaliser), so nearby (seed, epoch)
 * pairs give unrelated generator states. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Stream 0 shuffles, stream 1 makes noise: turning noise on does not
 * change the order, and each epoch can be reproduced on its own. */
static uint64_t stream_seed(uint64_t seed, int64_t epoch, uint64_t stream)
{
    return seed ^ mix64(((uint64_t)epoch << 1 | stream) + 1);
}

/* The noise of the image at `position` in the epoch's order has a stream of
 * its own, so it depends on neither the batch size, the thread count, the
 * number of shards nor where a resumed run restarted. */
static void seed_image_noise(nb_rng *rng, const nb_loader *loader, int64_t position)
{
    nb_rng_seed(rng, stream_seed(loader->options.seed, loader->epoch, 1) + mix64((uint64_t)position + 1));
}

nb_loader *nb_loader_new(const nb_dataset *dataset, const nb_loader_options *options)
{
    nb_loader_options o = options ? *options : nb_loader_default_options();
    if (!dataset || (dataset->count > 0 && (!dataset->images || !dataset->labels))) {
        nb_fail(NB_ERR_INVALID, "nb_loader_new: dataset is NULL or empty of data");
        return NULL;
    }
    if (o.shard_count == 0) o.shard_count = 1;   /* options zeroed by hand: one shard */
    if (o.dtype != NB_FLOAT32 && o.dtype != NB_FLOAT64) {
        nb_fail(NB_ERR_INVALID, "nb_loader_new: images can be float32 or float64, not %s", nb_dtype_name(o.dtype));
        return NULL;
    }
    if (o.batch_size < 1 || !isfinite(o.mean) || !(o.std > 0) || !isfinite(o.std) ||
        !(o.noise_std >= 0) || !isfinite(o.noise_std)) {
        nb_fail(NB_ERR_INVALID, "nb_loader_new: bad options: batch_size %lld (needs >= 1), mean %g, "
                "std %g (needs > 0), noise_std %g (needs >= 0)", (long long)o.batch_size, o.mean,
                o.std, o.noise_std);
        return NULL;
    }
    if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count ||
        o.shard_count > o.batch_size) {
        nb_fail(NB_ERR_INVALID, "nb_loader_new: bad shard %d of %d (needs 0 <= shard_index < "
                "shard_count <= batch_size %lld)", o.shard_index, o.shard_count, (long long)o.batch_size);
        return NULL;
    }
    nb_loader *loader = nb_calloc(1, sizeof *loader);
    if (!loader) return NULL;
    loader->order = nb_malloc((size_t)(dataset->count ? dataset->count : 1) * sizeof *loader->order);
    if (!loader->order) {
        nb_free(loader);
        return NULL;
    }
    loader->dataset = dataset;
    loader->options = o;
    loader->order_epoch = -1;
    for (int v = 0; v < 256; v++) {
        loader->table64[v] = (v / 255.0 - o.mean) / o.std;
        loader->table[v] = (float)loader->table64[v];
    }
    return loader;
}

void nb_loader_free(nb_loader *loader)
{
    if (!loader) return;
    nb_free(loader->order);
    nb_free(loader);
}

/* Identity order, then Fisher-Yates: i from the end, swap with a uniform
 * j in [0, i]. The same on every shard. */
static void make_order(nb_loader *loader)
{
    int64_t n = loader->dataset->count;
    for (int64_t i = 0; i < n; i++) loader->order[i] = i;
    if (loader->options.shuffle) {
        nb_rng rng;
        nb_rng_seed(&rng, stream_seed(loader->options.seed, loader->epoch, 0));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)nb_rng_below(&rng, (uint64_t)i + 1);
            int64_t swap = loader->order[i];
            loader->order[i] = loader->order[j];
            loader->order[j] = swap;
        }
    }
    loader->order_epoch = loader->epoch;
}

/* images [B, P] (float32 or float64) with P = C*H*W pixels, labels [B] int32. */
/* Images per thread range: a 28x28 image is a few hundred nanoseconds of
 * table lookups, so below this waking a thread costs more. */
enum { FILL_GRAIN = 16, PREFETCH_AHEAD = 4, CACHE_LINE = 64 };

typedef struct fill_job {
    const nb_loader *loader;
    int64_t pixels;
    void *images;            /* float, or double for float64 images */
    int32_t *labels;
} fill_job;

/* Normalised pixels (plus noise) and labels of batch images [begin, end);
 * each image is its own slice, so threads may split the batch. */
static void fill_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const fill_job *job = context;
    const nb_loader *loader = job->loader;
    const nb_dataset *d = loader->dataset;
    const int64_t *order = loader->order + loader->position + loader->slice;
    double noise = loader->options.noise_std;
    for (int64_t b = begin; b < end; b++) {
        /* The shuffled images are scattered over the whole dataset, out of
         * cache: ask for one a few images ahead so its lines arrive while
         * this one is converted (the lookups waited on memory, 2.6 % of a
         * one-thread LeNet-5 step). */
        if (b + PREFETCH_AHEAD < end) {
            const uint8_t *ahead = d->images + order[b + PREFETCH_AHEAD] * job->pixels;
            for (int64_t k = 0; k < job->pixels; k += CACHE_LINE) __builtin_prefetch(ahead + k);
        }
        const uint8_t *source = d->images + order[b] * job->pixels;
        nb_rng rng;
        if (noise > 0) seed_image_noise(&rng, loader, loader->position + loader->slice + b);
        if (loader->options.dtype == NB_FLOAT64) {
            double *target = (double *)job->images + b * job->pixels;
            for (int64_t k = 0; k < job->pixels; k++) target[k] = loader->table64[source[k]];
            if (noise > 0)
                for (int64_t k = 0; k < job->pixels; k++) target[k] += noise * nb_rng_normal(&rng);
        } else {
            float *target = (float *)job->images + b * job->pixels;
            for (int64_t k = 0; k < job->pixels; k++) target[k] = loader->table[source[k]];
            if (noise > 0)
                for (int64_t k = 0; k < job->pixels; k++) target[k] += (float)(noise * nb_rng_normal(&rng));
        }
        job->labels[b] = d->labels[order[b]];
    }
}

static void fill_batch(nb_loader *loader, int64_t batch, void *images, int32_t *labels)
{
    const nb_dataset *d = loader->dataset;
    int64_t pixels = d->channels * d->height * d->width;
    fill_job job = {loader, pixels, images, labels};
    nb_parallel_for(batch, FILL_GRAIN, fill_range, &job);
}

int nb_loader_next(nb_loader *loader, nb_tape *tape, nb_tensor **images, nb_tensor **labels)
{
    if (images) *images = NULL;
    if (labels) *labels = NULL;
    if (!loader || !tape || !images || !labels)
        return nb_fail(NB_ERR_INVALID, "nb_loader_next: NULL argument");
    const char *tape_error = nb_tape_error(tape);
    if (tape_error)
        return nb_fail(NB_ERR_STATE, "nb_loader_next: the tape has an error (reset it first): %s",
                       tape_error);
    if (!loader->epoch_started) {
        loader->position = 0;
        loader->epoch_started = true;
    }
    if (loader->order_epoch != loader->epoch) make_order(loader);
    const nb_dataset *d = loader->dataset;
    const nb_loader_options *o = &loader->options;
    int64_t global = d->count - loader->position;
    if (global > o->batch_size) global = o->batch_size;
    /* A final global batch too small to give every shard an image is
     * dropped on every shard alike. */
    if (global == 0 || (o->drop_last && global < o->batch_size) || global < o->shard_count) {
        loader->epoch++;
        loader->epoch_started = false;
        return 0;
    }
    /* Shard r takes the r-th of shard_count near-equal contiguous slices;
     * the first (global mod shard_count) shards take one image more. */
    int64_t base = global / o->shard_count, extra = global % o->shard_count, r = o->shard_index;
    loader->slice = r * base + (r < extra ? r : extra);
    int64_t batch = base + (r < extra ? 1 : 0);
    const int64_t image_shape[4] = {batch, d->channels, d->height, d->width};
    const int64_t label_shape[1] = {batch};
    nb_tensor *x = nb_tape_tensor(tape, loader->options.dtype, 4, image_shape, NULL);
    nb_tensor *y = x ? nb_tape_tensor(tape, NB_INT32, 1, label_shape, NULL) : NULL;
    if (!x || !y) return NB_ERR_NOMEM; /* the arena left the message */
    fill_batch(loader, batch, x->data, y->data);
    loader->position += global;
    loader->global_batch = global;
    *images = x;
    *labels = y;
    return 1;
}

int64_t nb_loader_epoch(const nb_loader *loader) { return loader ? loader->epoch : 0; }

void nb_loader_set_epoch(nb_loader *loader, int64_t epoch)
{
    if (!loader || epoch < 0) return;
    loader->epoch = epoch;
    loader->epoch_started = false;
}

int64_t nb_loader_batches_per_epoch(const nb_loader *loader)
{
    if (!loader) return 0;
    int64_t n = loader->dataset->count, b = loader->options.batch_size;
    if (loader->options.drop_last || n % b < loader->options.shard_count) return n / b;
    return n / b + 1;
}

int64_t nb_loader_global_batch(const nb_loader *loader) { return loader ? loader->global_batch : 0; }

/* The position is (epoch, started, position): the order and the noise
 * follow from the seed. The options that shape the batches are tags, so a
 * resumed run cannot silently walk another order. */
int nb_checkpoint_add_loader(nb_checkpoint *ck, const char *prefix, nb_loader *loader)
{
    if (!ck) return nb_fail(NB_ERR_INVALID, "checkpoint_add_loader: checkpoint is NULL");
    if (!prefix || !loader) return nb_checkpoint_add_tag(ck, prefix ? prefix : "loader", NULL);
    char name[256], text[64];
    const nb_loader_options *o = &loader->options;
    snprintf(name, sizeof name, "%s.epoch", prefix);
    int status = nb_checkpoint_add_int(ck, name, &loader->epoch);
    snprintf(name, sizeof name, "%s.position", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_int(ck, name, &loader->position);
    snprintf(name, sizeof name, "%s.epoch_started", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_bool(ck, name, &loader->epoch_started);
    snprintf(name, sizeof name, "%s.batches", prefix);
    snprintf(text, sizeof text, "%lld images, batch %lld, shuffle %d, drop_last %d, seed %llu",
             (long long)loader->dataset->count, (long long)o->batch_size, o->shuffle ? 1 : 0,
             o->drop_last ? 1 : 0, (unsigned long long)o->seed);
    if (status == NB_OK) status = nb_checkpoint_add_tag(ck, name, text);
    return status;
}
