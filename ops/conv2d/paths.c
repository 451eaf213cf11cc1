/* conv2d's dispatch table: every path, in the order the automatic choice
 * tries them, and the one place a node's path is chosen.
 *
 * Automatic: the first entry that applies to the node and pays. Forced:
 * nb_conv2d_force_path(name), or NABLA_CONV2D_PATH=name in the
 * environment (read at the first conv2d node), runs that entry for every
 * node it applies to and fails the others with a message naming the path
 * and the shapes. meProp nodes take the meProp paths, dense nodes the
 * dense ones, so forcing never drops or adds a sparse backward silently. */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/alloc.h"
#include "nabla/paths.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"

static const nb_conv2d_path *const PATHS[] = {
    &nb_conv2d_path_meprop_implicit,
    &nb_conv2d_path_meprop_direct,
    &nb_conv2d_path_meprop_im2col,
    &nb_conv2d_path_implicit_unfold,
    &nb_conv2d_path_implicit_winograd,
    &nb_conv2d_path_implicit,
    &nb_conv2d_path_im2col,
};
enum { PATH_COUNT = sizeof PATHS / sizeof PATHS[0] };

/* The forced entry's index; AUTOMATIC, or NOT_READ until the environment
 * was read, or UNKNOWN_NAME when the environment names no path. */
enum { NOT_READ = INT_MIN, UNKNOWN_NAME = -2, AUTOMATIC = -1 };
static atomic_int forced = NOT_READ;

static int index_of(const char *name)
{
    for (int i = 0; i < PATH_COUNT; i++)
        if (strcmp(PATHS[i]->name, name) == 0) return i;
    return UNKNOWN_NAME;
}

static int forced_index(void)
{
    int index = atomic_load_explicit(&forced, memory_order_acquire);
    if (index != NOT_READ) return index;
    const char *name = getenv("NABLA_CONV2D_PATH");
    index = name && *name ? index_of(name) : AUTOMATIC;
    /* Racing first calls read the same environment; storing twice is fine. */
    atomic_store_explicit(&forced, index, memory_order_release);
    return index;
}

/* "im2col, implicit, ..." for messages. */
static const char *known_names(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < PATH_COUNT && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", PATHS[i]->name);
    return buf;
}

static int fail_forced(nb_op_ctx *ctx, const nb_conv2d_path *path)
{
    char sx[96], sw[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    nb_op_error(ctx, "input %s, weight %s (%s): forced path \"%s\" does not apply (%s)", sx, sw,
                nb_dtype_name(ctx->inputs[0]->dtype), path->name, path->summary);
    return NB_ERR_INVALID;
}

const nb_conv2d_path *nb_conv2d_choose_path(nb_op_ctx *ctx, const nb_conv2d_choice *c)
{
    int index = forced_index();
    if (index == UNKNOWN_NAME) {
        char names[256];
        nb_op_error(ctx, "NABLA_CONV2D_PATH=\"%s\" names no path (known: %s)",
                    getenv("NABLA_CONV2D_PATH"), known_names(names, sizeof names));
        return NULL;
    }
    if (index >= 0) {
        const nb_conv2d_path *path = PATHS[index];
        if (path->applies(c)) return path;
        fail_forced(ctx, path);
        return NULL;
    }
    for (int i = 0; i < PATH_COUNT; i++)
        if (PATHS[i]->applies(c) && (!PATHS[i]->pays || PATHS[i]->pays(c))) return PATHS[i];
    /* im2col and meprop_im2col apply to every dense and sparse node. */
    nb_op_error(ctx, "no path applies");
    return NULL;
}

int nb_conv2d_path_count(void) { return PATH_COUNT; }

const char *nb_conv2d_path_at(int index)
{
    return index >= 0 && index < PATH_COUNT ? PATHS[index]->name : NULL;
}

int nb_conv2d_force_path(const char *name)
{
    if (!name) {
        atomic_store_explicit(&forced, AUTOMATIC, memory_order_release);
        return NB_OK;
    }
    int index = index_of(name);
    if (index < 0) {
        char names[256];
        return nb_fail(NB_ERR_INVALID, "nb_conv2d_force_path: \"%s\" names no path (known: %s)",
                       name, known_names(names, sizeof names));
    }
    atomic_store_explicit(&forced, index, memory_order_release);
    return NB_OK;
}

const char *nb_conv2d_path_name(const nb_tensor *output)
{
    if (!output || !output->node) return NULL;
    const nb_op_ctx *ctx = nb_node_ctx(output->node);
    if (!ctx || ctx->op != &nb_op_conv2d || !ctx->saved) return NULL;
    const nb_conv2d_state *state = ctx->saved;
    return state->path->name;
}
