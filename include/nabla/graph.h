/* nabla: the recorded graph as Graphviz DOT.
 *
 * Writes the nodes on the tape (nb_tape_visit order, i.e. creation order)
 * as a left-to-right digraph:
 *   - each op node is a box "name\n[output shape]";
 *   - each tensor that enters the graph from outside (a parameter, an input
 *     batch, a tensor made by an unrecorded op) is an ellipse with its name
 *     (tensor->name, e.g. "conv1.weight", set by nn modules) or "tensor",
 *     its shape and dtype, filled blue when it requires a gradient and
 *     grey when it does not;
 *   - an edge runs from each input's producer to the op using it, labelled
 *     with the input's position when the op has several; edges that carry
 *     no gradient (the input does not require one) are dashed;
 *   - op outputs that no recorded op consumes (a loss) get a double border.
 * Render with e.g. `dot -Tsvg graph.dot -o graph.svg`.
 * Names and ids are deterministic, so the same step writes the same text. */
#ifndef NABLA_GRAPH_H
#define NABLA_GRAPH_H

#include "nabla/export.h"

#include <stdio.h>

#include "nabla/tape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the tape's graph to `out`; title (may be NULL) labels it. Uses
 * the tape's arena for bookkeeping (released by the next reset). Returns
 * NB_OK, or NB_ERR_INVALID / NB_ERR_IO / NB_ERR_NOMEM. */
NB_API int nb_tape_write_dot(nb_tape *tape, FILE *out, const char *title);
/* The same into a file at `path` (created or truncated). */
NB_API int nb_tape_save_dot(nb_tape *tape, const char *path, const char *title);

#ifdef __cplusplus
}
#endif
#endif
