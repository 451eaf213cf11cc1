/* Labelled image datasets built from IDX pairs, and the MNIST file layout
 * (also used by Fashion-MNIST). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nabla/status.h"
#include "nabla/data.h"

int nb_dataset_from_idx(nb_idx *images, nb_idx *labels, int num_classes, const char *source,
                        nb_dataset *out)
{
    int status = NB_OK;
    if (!source) source = "<memory>";
    if (!images || !labels || !out)
        return nb_fail(NB_ERR_INVALID, "nb_dataset_from_idx: NULL argument");
    memset(out, 0, sizeof *out);
    if (num_classes < 1 || num_classes > 256)
        status = nb_fail(NB_ERR_INVALID, "dataset: %s: num_classes %d outside 1..256", source,
                         num_classes);
    else if (images->ndim != 3 && images->ndim != 4)
        status = nb_fail(NB_ERR_FORMAT, "dataset: %s: images have %d dims, expected [N,H,W] or "
                         "[N,C,H,W]", source, images->ndim);
    else if (labels->ndim != 1)
        status = nb_fail(NB_ERR_FORMAT, "dataset: %s: labels have %d dims, expected [N]", source,
                         labels->ndim);
    else if (labels->dims[0] != images->dims[0])
        status = nb_fail(NB_ERR_FORMAT, "dataset: %s: %lld labels for %lld images", source,
                         (long long)labels->dims[0], (long long)images->dims[0]);
    for (int64_t i = 0; status == NB_OK && i < labels->count; i++)
        if (labels->data[i] >= num_classes)
            status = nb_fail(NB_ERR_FORMAT, "dataset: %s: label %d at index %lld is not below %d",
                             source, labels->data[i], (long long)i, num_classes);
    if (status == NB_OK) {
        bool has_channels = images->ndim == 4;
        out->count = images->dims[0];
        out->channels = has_channels ? images->dims[1] : 1;
        out->height = images->dims[has_channels ? 2 : 1];
        out->width = images->dims[has_channels ? 3 : 2];
        out->num_classes = num_classes;
        out->images = images->data;
        out->labels = labels->data;
        images->data = NULL;
        labels->data = NULL;
    }
    nb_idx_free(images);
    nb_idx_free(labels);
    return status;
}

/* Finds "<dir>/<prefix>-<kind>-ubyte" or the same with ".gz". */
static int find_file(const char *dir, const char *prefix, const char *kind, char *path, size_t size)
{
    static const char *const suffixes[] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        int n = snprintf(path, size, "%s/%s-%s-ubyte%s", dir, prefix, kind, suffixes[i]);
        if (n < 0 || (size_t)n >= size)
            return nb_fail(NB_ERR_INVALID, "mnist: %s: path too long", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return NB_OK;
        }
        if (errno != ENOENT)
            return nb_fail(NB_ERR_IO, "mnist: %s: cannot open: %s", path, strerror(errno));
    }
    return nb_fail(NB_ERR_IO, "mnist: %s: no %s-%s-ubyte or %s-%s-ubyte.gz there", dir, prefix,
                   kind, prefix, kind);
}

int nb_mnist_load(const char *dir, const char *split, nb_dataset *out)
{
    if (!dir || !split || !out) return nb_fail(NB_ERR_INVALID, "nb_mnist_load: NULL argument");
    memset(out, 0, sizeof *out);
    const char *prefix = strcmp(split, "train") == 0 ? "train" : strcmp(split, "test") == 0 ? "t10k" : NULL;
    if (!prefix)
        return nb_fail(NB_ERR_INVALID, "mnist: split \"%s\" is neither \"train\" nor \"test\"", split);
    char images_path[4096], labels_path[4096];
    nb_idx images = {0}, labels = {0};
    int status = find_file(dir, prefix, "images-idx3", images_path, sizeof images_path);
    if (status == NB_OK) status = find_file(dir, prefix, "labels-idx1", labels_path, sizeof labels_path);
    if (status == NB_OK) status = nb_idx_load(images_path, &images);
    if (status == NB_OK) status = nb_idx_load(labels_path, &labels);
    if (status == NB_OK && images.ndim != 3)
        status = nb_fail(NB_ERR_FORMAT, "mnist: %s: images have %d dims, expected [N,H,W]",
                         images_path, images.ndim);
    if (status != NB_OK) {
        nb_idx_free(&images);
        nb_idx_free(&labels);
        return status;
    }
    /* Label errors name the labels file; the count check names it too. */
    return nb_dataset_from_idx(&images, &labels, 10, labels_path, out);
}

void nb_dataset_free(nb_dataset *dataset)
{
    if (!dataset) return;
    nb_free(dataset->images);
    nb_free(dataset->labels);
    memset(dataset, 0, sizeof *dataset);
}
