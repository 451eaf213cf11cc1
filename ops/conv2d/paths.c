/* conv2d's dispatch table: every path, in the order the automatic choice
 * tries them, and the one place a node's path is chosen.
 *
 * Automatic: the first entry that applies to the node and pays. Forced:
 * nb_conv2d_force_path(name), or NABLA_CONV2D_PATH=name in the
 * environment (read at the first conv2d node), runs that entry for every
 * node it applies to and fails the others with a message naming the path
 * and the shapes. meProp nodes take the meProp paths, dense nodes the
 * dense ones, so forcing never drops or adds a sparse backward silently. */
#include <stdlib.h>

#include "nabla/paths.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"
#include "ops/dispatch.h"

static const nb_conv2d_path *const PATHS[] = {
    &nb_conv2d_path_meprop_implicit,
    &nb_conv2d_path_meprop_direct,
    &nb_conv2d_path_meprop_im2col,
    &nb_conv2d_path_implicit_unfold,
    &nb_conv2d_path_implicit_winograd,
    &nb_conv2d_path_implicit,
    &nb_conv2d_path_implicit_rounded,
    &nb_conv2d_path_gathered,
    &nb_conv2d_path_im2col,
};
enum { PATH_COUNT = sizeof PATHS / sizeof PATHS[0] };

int nb_conv2d_path_count(void) { return PATH_COUNT; }

const char *nb_conv2d_path_at(int index)
{
    return index >= 0 && index < PATH_COUNT ? PATHS[index]->name : NULL;
}

static nb_dispatch forcing = NB_DISPATCH_INIT("NABLA_CONV2D_PATH", nb_conv2d_path_at);

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
    int index = nb_dispatch_forced(&forcing);
    if (index == NB_DISPATCH_UNKNOWN) {
        char names[256];
        nb_op_error(ctx, "NABLA_CONV2D_PATH=\"%s\" names no path (known: %s)",
                    getenv("NABLA_CONV2D_PATH"), nb_dispatch_known(&forcing, names, sizeof names));
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

int nb_conv2d_force_path(const char *name)
{
    return nb_dispatch_force(&forcing, "nb_conv2d_force_path", name);
}

const char *nb_conv2d_path_name(const nb_tensor *output)
{
    if (!output || !output->node) return NULL;
    const nb_op_ctx *ctx = nb_node_ctx(output->node);
    if (!ctx || ctx->op != &nb_op_conv2d || !ctx->saved) return NULL;
    const nb_conv2d_state *state = ctx->saved;
    return state->path->name;
}
