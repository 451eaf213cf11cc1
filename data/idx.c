/* IDX files: the header checks are shared by the in-memory parser (the
 * fuzzing entry point) and the zlib file reader, and both refuse a file
 * before allocating anything its header does not justify. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "nabla/status.h"
#include "nabla/data.h"

enum { IDX_TYPE_UBYTE = 0x08, GZ_CHUNK = 1 << 30, TRAILING_COUNT_LIMIT = 1 << 16 };

static const char *type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return NULL;
}

/* Magic 00 00, type 0x08, ndim 1..4. */
static int check_prefix(const unsigned char prefix[4], const char *source)
{
    if (prefix[0] != 0 || prefix[1] != 0)
        return nb_fail(NB_ERR_FORMAT, "idx: %s: bad magic %02x %02x (expected 00 00): not an IDX file",
                       source, prefix[0], prefix[1]);
    if (prefix[2] != IDX_TYPE_UBYTE) {
        const char *name = type_name(prefix[2]);
        if (name)
            return nb_fail(NB_ERR_FORMAT, "idx: %s: element type 0x%02x (%s) is not supported, only "
                           "0x08 (unsigned byte)", source, prefix[2], name);
        return nb_fail(NB_ERR_FORMAT, "idx: %s: unknown element type 0x%02x", source, prefix[2]);
    }
    if (prefix[3] < 1 || prefix[3] > NB_IDX_MAX_DIMS)
        return nb_fail(NB_ERR_FORMAT, "idx: %s: ndim %d outside 1..%d", source, prefix[3],
                       NB_IDX_MAX_DIMS);
    return NB_OK;
}

static void dims_text(const nb_idx *idx, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < idx->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld",
                                 (long long)idx->dims[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Decodes the big-endian dims and checks their product against the cap;
 * the product saturates, so four dims of 2^32-1 cannot overflow it. */
static int read_dims(const unsigned char *bytes, const char *source, nb_idx *out)
{
    uint64_t total = 1;
    for (int i = 0; i < out->ndim; i++) {
        const unsigned char *b = bytes + 4 * i;
        uint64_t d = ((uint64_t)b[0] << 24) | ((uint64_t)b[1] << 16) | ((uint64_t)b[2] << 8) | b[3];
        out->dims[i] = (int64_t)d;
        total = d != 0 && total > NB_IDX_MAX_BYTES / d ? NB_IDX_MAX_BYTES + 1 : total * d;
    }
    if (total > NB_IDX_MAX_BYTES) {
        char dims[96];
        dims_text(out, dims, sizeof dims);
        return nb_fail(NB_ERR_FORMAT, "idx: %s: dims %s exceed the limit of %llu bytes", source,
                       dims, (unsigned long long)NB_IDX_MAX_BYTES);
    }
    out->count = (int64_t)total;
    return NB_OK;
}

static int size_error(const nb_idx *idx, const char *source, const char *problem)
{
    char dims[96];
    dims_text(idx, dims, sizeof dims);
    return nb_fail(NB_ERR_FORMAT, "idx: %s: %s (dims %s need %lld data bytes)", source, problem,
                   dims, (long long)idx->count);
}

int nb_idx_parse(const void *buffer, size_t length, const char *source, nb_idx *out)
{
    if (!out) return nb_fail(NB_ERR_INVALID, "nb_idx_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!source) source = "<memory>";
    if (!buffer && length) return nb_fail(NB_ERR_INVALID, "idx: %s: buffer is NULL", source);
    const unsigned char *bytes = buffer;
    if (length < 4)
        return nb_fail(NB_ERR_FORMAT, "idx: %s: truncated header (%zu bytes)", source, length);
    int status = check_prefix(bytes, source);
    if (status != NB_OK) return status;
    out->ndim = bytes[3];
    size_t header = 4 + 4 * (size_t)out->ndim;
    if (length < header) {
        out->ndim = 0;
        return nb_fail(NB_ERR_FORMAT, "idx: %s: truncated header (%zu bytes, %d dims need %zu)",
                       source, length, bytes[3], header);
    }
    status = read_dims(bytes + 4, source, out);
    size_t payload = length - header;
    if (status == NB_OK && payload < (uint64_t)out->count) {
        char problem[64];
        snprintf(problem, sizeof problem, "truncated data: %zu bytes", payload);
        status = size_error(out, source, problem);
    } else if (status == NB_OK && payload > (uint64_t)out->count) {
        char problem[64];
        snprintf(problem, sizeof problem, "%zu trailing bytes", payload - (size_t)out->count);
        status = size_error(out, source, problem);
    }
    if (status == NB_OK) {
        out->data = nb_malloc(out->count ? (size_t)out->count : 1);
        if (!out->data) status = NB_ERR_NOMEM;
        else memcpy(out->data, bytes + header, (size_t)out->count);
    }
    if (status != NB_OK) memset(out, 0, sizeof *out);
    return status;
}

/* Reads up to n bytes; returns how many (fewer only at the end of the
 * stream), or a negative status for a read error or corrupt gzip data. */
static int64_t gz_read(gzFile f, void *buffer, uint64_t n, const char *path)
{
    uint64_t done = 0;
    while (done < n) {
        unsigned chunk = n - done < GZ_CHUNK ? (unsigned)(n - done) : GZ_CHUNK;
        int got = gzread(f, (unsigned char *)buffer + done, chunk);
        int errnum = Z_OK;
        const char *message = gzerror(f, &errnum);
        if (errnum == Z_ERRNO)
            return nb_fail(NB_ERR_IO, "idx: %s: read failed: %s", path, strerror(errno));
        /* A truncated gzip stream reports Z_BUF_ERROR ("unexpected end of
         * file"); corrupt data reports Z_DATA_ERROR. */
        if (got < 0 || (errnum != Z_OK && errnum != Z_STREAM_END))
            return nb_fail(NB_ERR_FORMAT, "idx: %s: bad gzip data: %s", path, message);
        if (got == 0) break;
        done += (uint64_t)got;
    }
    return (int64_t)done;
}

static int load_stream(gzFile f, const char *path, nb_idx *out)
{
    unsigned char header[4 + 4 * NB_IDX_MAX_DIMS];
    int64_t got = gz_read(f, header, 4, path);
    if (got < 0) return (int)got;
    if (got < 4) return nb_fail(NB_ERR_FORMAT, "idx: %s: truncated header (%lld bytes)", path, (long long)got);
    int status = check_prefix(header, path);
    if (status != NB_OK) return status;
    out->ndim = header[3];
    int64_t dim_bytes = 4 * (int64_t)out->ndim;
    got = gz_read(f, header + 4, (uint64_t)dim_bytes, path);
    if (got < 0) return (int)got;
    if (got < dim_bytes)
        return nb_fail(NB_ERR_FORMAT, "idx: %s: truncated header (%lld bytes, %d dims need %lld)",
                       path, (long long)(4 + got), out->ndim, (long long)(4 + dim_bytes));
    status = read_dims(header + 4, path, out);
    if (status != NB_OK) return status;
    out->data = nb_malloc(out->count ? (size_t)out->count : 1);
    if (!out->data) return NB_ERR_NOMEM;
    got = gz_read(f, out->data, (uint64_t)out->count, path);
    if (got < 0) return (int)got;
    if (got < out->count) {
        char problem[64];
        snprintf(problem, sizeof problem, "truncated data: %lld bytes", (long long)got);
        return size_error(out, path, problem);
    }
    /* Count what follows, up to a bound, for the message. */
    unsigned char extra[4096];
    int64_t trailing = 0;
    do {
        got = gz_read(f, extra, sizeof extra, path);
        if (got < 0) return (int)got;
        trailing += got;
    } while (got > 0 && trailing <= TRAILING_COUNT_LIMIT);
    if (trailing > 0) {
        char problem[64];
        if (trailing > TRAILING_COUNT_LIMIT)
            snprintf(problem, sizeof problem, "over %d trailing bytes", TRAILING_COUNT_LIMIT);
        else
            snprintf(problem, sizeof problem, "%lld trailing bytes", (long long)trailing);
        return size_error(out, path, problem);
    }
    return NB_OK;
}

int nb_idx_load(const char *path, nb_idx *out)
{
    if (!out) return nb_fail(NB_ERR_INVALID, "nb_idx_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return nb_fail(NB_ERR_INVALID, "nb_idx_load: path is NULL");
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return nb_fail(NB_ERR_IO, "idx: %s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1 << 17);
    int status = load_stream(f, path, out);
    gzclose(f);
    if (status != NB_OK) nb_idx_free(out);
    return status;
}

void nb_idx_free(nb_idx *idx)
{
    if (!idx) return;
    nb_free(idx->data);
    memset(idx, 0, sizeof *idx);
}
