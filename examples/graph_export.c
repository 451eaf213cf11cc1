/* graph_export: records one LeNet-5 training step (forward, cross-entropy
 * loss, backward) on random data and writes the tape as Graphviz DOT,
 * then renders it to SVG when the `dot` program is installed.
 *
 *   graph_export [OUTPUT_PREFIX]      (default "lenet5": lenet5.dot, lenet5.svg) */
#include <stdio.h>
#include <stdlib.h>

#include "models/lenet5.h"
#include "nabla.h"

enum { BATCH = 4 };

int main(int argc, char **argv)
{
    const char *prefix = argc > 1 ? argv[1] : "lenet5";
    char dot_path[512], svg_path[512], command[1200];
    snprintf(dot_path, sizeof dot_path, "%s.dot", prefix);
    snprintf(svg_path, sizeof svg_path, "%s.svg", prefix);

    nb_manual_seed(1);
    nb_module *model = lenet5_new();
    nb_tape *tape = nb_tape_new();
    if (!model || !tape) return fprintf(stderr, "graph_export: %s\n", nb_last_error()), 1;
    nb_tensor *images = nb_tape_tensor(tape, NB_FLOAT32, 4, (int64_t[]){BATCH, 1, 28, 28}, NULL);
    nb_tensor *labels = nb_tape_tensor(tape, NB_INT32, 1, (int64_t[]){BATCH}, NULL);
    int status = images && labels ? nb_add_noise(images, 1.0, NULL) : NB_ERR_NOMEM;
    for (int64_t i = 0; labels && i < BATCH; i++) ((int32_t *)labels->data)[i] = (int32_t)(i % 10);
    nb_tensor_set_name(images, "images");
    nb_tensor_set_name(labels, "labels");
    nb_tensor *loss = nb_cross_entropy(tape, nb_module_forward(model, tape, images), labels);
    if (status == NB_OK && !loss) status = NB_ERR_INVALID;
    if (status == NB_OK) status = nb_backward(tape, loss, NULL);
    if (status == NB_OK) status = nb_tape_save_dot(tape, dot_path, "LeNet-5: one training step");
    if (status != NB_OK) {
        const char *e = nb_tape_error(tape);
        fprintf(stderr, "graph_export: %s\n", e ? e : nb_last_error());
    } else {
        printf("wrote %s (%zu recorded ops)\n", dot_path, nb_tape_node_count(tape));
        if (system("command -v dot > /dev/null 2>&1") == 0) {
            snprintf(command, sizeof command, "dot -Tsvg '%s' -o '%s'", dot_path, svg_path);
            if (system(command) == 0) printf("wrote %s\n", svg_path);
            else fprintf(stderr, "graph_export: '%s' failed\n", command), status = NB_ERR_IO;
        } else {
            printf("graphviz 'dot' not found: render with  dot -Tsvg %s -o %s\n", dot_path, svg_path);
        }
    }
    nb_tape_free(tape);
    nb_module_free(model);
    return status == NB_OK ? 0 : 1;
}
