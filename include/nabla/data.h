/* nabla data: IDX files, MNIST-style datasets and a minibatch loader.
 *
 * A separate library (nabla_data, which needs zlib), so the core library
 * keeps depending on libc, libm and pthreads only. Errors follow the core
 * convention (status.h): NB_ERR_IO when a file cannot be read,
 * NB_ERR_FORMAT when it is malformed, with a message naming the file. */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla/checkpoint.h"
#include "nabla/random.h"
#include "nabla/tape.h"
#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- IDX (http://yann.lecun.com/exdb/mnist/) ----
 * Magic 0x00 0x00, a type byte (only 0x08, unsigned byte, is supported),
 * a byte ndim (1..4), ndim big-endian u32 dims, then exactly prod(dims)
 * bytes. Larger than NB_IDX_MAX_BYTES is refused before allocating. */
#define NB_IDX_MAX_DIMS 4
#define NB_IDX_MAX_BYTES ((uint64_t)1 << 30)

typedef struct nb_idx {
    int ndim;
    int64_t dims[NB_IDX_MAX_DIMS];
    int64_t count;       /* product of dims */
    uint8_t *data;       /* count bytes, owned; free with nb_idx_free */
} nb_idx;

/* Parses an uncompressed IDX image held in memory (copies the payload).
 * `source` names it in errors (NULL: "<memory>"). On failure *out is
 * empty. Safe on any input: the entry point for fuzzing. */
NB_API int nb_idx_parse(const void *buffer, size_t length, const char *source, nb_idx *out);
/* Reads a file, gzip-compressed or not (zlib detects which). */
NB_API int nb_idx_load(const char *path, nb_idx *out);
NB_API void nb_idx_free(nb_idx *idx);

/* ---- Datasets of labelled uint8 images ---- */
typedef struct nb_dataset {
    int64_t count;                  /* N */
    int64_t channels, height, width;
    int num_classes;
    uint8_t *images;                /* [N, C, H, W], 0..255, owned */
    uint8_t *labels;                /* [N], each < num_classes, owned */
} nb_dataset;

/* Builds a dataset from images [N,H,W] (one channel) or [N,C,H,W] and
 * labels [N], checking the counts agree and every label is below
 * num_classes. Consumes both nb_idx, on success and on failure. */
NB_API int nb_dataset_from_idx(nb_idx *images, nb_idx *labels, int num_classes, const char *source,
                        nb_dataset *out);
/* Loads MNIST or Fashion-MNIST from `dir`: split "train" reads
 * train-images-idx3-ubyte and train-labels-idx1-ubyte, "test" the t10k-
 * files, each with or without .gz. Images stay uint8 (47 MB for train). */
NB_API int nb_mnist_load(const char *dir, const char *split, nb_dataset *out);
NB_API void nb_dataset_free(nb_dataset *dataset);

/* ---- Minibatch loader ---- */
#define NB_FASHION_MNIST_MEAN 0.2860
#define NB_FASHION_MNIST_STD 0.3530

typedef struct nb_loader_options {
    int64_t batch_size;    /* >= 1 */
    bool shuffle;          /* a fresh permutation every epoch */
    uint64_t seed;         /* epoch e's order depends only on (seed, e) */
    bool drop_last;        /* skip a final batch smaller than batch_size */
    double mean, std;      /* inputs are (x/255 - mean) / std; std > 0 */
    double noise_std;      /* then + noise_std * N(0,1) per pixel; 0 = off */
    /* Data-parallel training (PyTorch's DistributedSampler, for a global
     * batch): every shard walks the same shuffled order in global batches
     * of batch_size, and shard i of n takes the i-th of n near-equal
     * contiguous slices of each (the first batch_size mod n shards one
     * image more). A final global batch with fewer than n images is
     * dropped. n = 1 (or 0): the whole batch. */
    int shard_index, shard_count;
    nb_dtype dtype;        /* of the images: NB_FLOAT32 (0, the default) or NB_FLOAT64 */
} nb_loader_options;

/* batch 64, shuffled, seed 0, keep the last batch, Fashion-MNIST mean/std,
 * no noise, one shard. The noise of each image comes from a generator
 * seeded by (seed, epoch, the image's place in the epoch's order), so it
 * is the same whatever the batch size, thread count or shard count. */
NB_API nb_loader_options nb_loader_default_options(void);

typedef struct nb_loader nb_loader;

/* The dataset must outlive the loader. NULL on a bad option. */
NB_API nb_loader *nb_loader_new(const nb_dataset *dataset, const nb_loader_options *options);
NB_API void nb_loader_free(nb_loader *loader);

/* Makes the next batch as arena tensors on `tape`: *images [B,C,H,W]
 * (options.dtype) and *labels int32 [B]. Returns 1 with a batch, 0 at the end of
 * an epoch (no batch; the next call starts the next epoch), or a negative
 * nb_status. Allocates nothing but the two arena tensors, so a training
 * step that resets its tape allocates nothing once the arena has grown. */
NB_API int nb_loader_next(nb_loader *loader, nb_tape *tape, nb_tensor **images, nb_tensor **labels);
/* The epoch the next batch belongs to (0 first). Setting it restarts that
 * epoch from its first batch, e.g. to resume training. */
NB_API int64_t nb_loader_epoch(const nb_loader *loader);
NB_API void nb_loader_set_epoch(nb_loader *loader, int64_t epoch);
/* Batches in one epoch (depends on drop_last and the shard count). */
NB_API int64_t nb_loader_batches_per_epoch(const nb_loader *loader);
/* Images in the global batch the last nb_loader_next drew from (this
 * shard's batch is a slice of it); 0 before the first. A shard's share of
 * the global mean gradient is (its batch) / (this). */
NB_API int64_t nb_loader_global_batch(const nb_loader *loader);
/* Registers the loader's position in its epoch with a checkpoint
 * (nabla/checkpoint.h): "<prefix>.epoch", ".position", ".epoch_started",
 * and a tag of the dataset size, batch size, shuffle, drop_last and seed,
 * which must match on load. The order and the noise follow from these, so
 * a resumed loader yields exactly the batches it would have. */
NB_API int nb_checkpoint_add_loader(nb_checkpoint *ck, const char *prefix, nb_loader *loader);

/* ---- Byte-level text (character language models) ---- */
typedef struct nb_text {
    uint8_t *bytes;          /* [length], owned; each byte is a token (vocabulary 256) */
    int64_t length;
    int64_t train_length;    /* train = bytes [0, floor(0.9 length)), validation the rest */
} nb_text;

typedef enum nb_text_split { NB_TEXT_TRAIN = 0, NB_TEXT_VALIDATION = 1 } nb_text_split;

/* A copy of `length` bytes as a text. */
NB_API int nb_text_from_bytes(const void *bytes, size_t length, nb_text *out);
/* Debian's fortunes package (dir: /usr/share/games/fortunes): every regular
 * file not ending in .dat or .u8, in sorted name order, concatenated. */
NB_API int nb_fortunes_load(const char *dir, nb_text *out);
NB_API void nb_text_free(nb_text *text);
/* `batch` windows of the split, each start uniform from rng: *inputs int32
 * [batch, T] and *targets int32 [batch * T] (each input's next byte), as
 * arena tensors on the tape. */
NB_API int nb_text_random_batch(const nb_text *text, nb_text_split split, nb_rng *rng,
                                int64_t batch, int64_t T, nb_tape *tape, nb_tensor **inputs,
                                nb_tensor **targets);
/* The split's non-overlapping windows, in order: window w has inputs
 * [w T, w T + T) of the split and targets one byte further; a window
 * needs T + 1 bytes. -1 on error. */
NB_API int64_t nb_text_window_count(const nb_text *text, nb_text_split split, int64_t T);
/* Windows first .. first + count - 1 as a batch, like nb_text_random_batch. */
NB_API int nb_text_window_batch(const nb_text *text, nb_text_split split, int64_t first,
                                int64_t count, int64_t T, nb_tape *tape, nb_tensor **inputs,
                                nb_tensor **targets);

#ifdef __cplusplus
}
#endif
#endif
