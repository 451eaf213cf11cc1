/* Internal: the forcing half of an op family's named paths (conv2d's
 * table, max_pool2d's two paths): which path an environment variable or a
 * call to nb_<op>_force_path names, read once and kept. Choosing among the
 * paths that apply stays with each op. */
#ifndef NABLA_OPS_DISPATCH_H
#define NABLA_OPS_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>

enum { NB_DISPATCH_NOT_READ = -3, NB_DISPATCH_UNKNOWN = -2, NB_DISPATCH_AUTOMATIC = -1 };

typedef struct nb_dispatch {
    const char *variable;       /* e.g. "NABLA_CONV2D_PATH" */
    const char *(*name_at)(int index); /* the paths' names, NULL past the end */
    atomic_int forced;          /* a path's index or one of the values above */
} nb_dispatch;

#define NB_DISPATCH_INIT(variable, name_at) {(variable), (name_at), NB_DISPATCH_NOT_READ}

/* The forced path's index, NB_DISPATCH_AUTOMATIC, or NB_DISPATCH_UNKNOWN
 * when the environment names no path. The variable is read at the first
 * call. */
int nb_dispatch_forced(nb_dispatch *d);
/* Forces `name` (NULL: automatic). NB_ERR_INVALID, the message naming
 * `who` and the known paths, for an unknown name. */
int nb_dispatch_force(nb_dispatch *d, const char *who, const char *name);
/* "a, b, c": the known names, for messages. */
const char *nb_dispatch_known(const nb_dispatch *d, char *buf, size_t size);

#endif
