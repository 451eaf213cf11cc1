/* Graphviz export (nb_tape_write_dot). The expected lines follow the
 * format documented in include/nabla/graph.h; ids are positions (outside
 * tensors t0, t1, ... in order of first use, ops op0, op1, ... in creation
 * order). With graphviz installed, `dot -Tsvg` must accept the output. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"
#include "nabla/graph.h"

/* The DOT text of the tape, in a malloc'd string. */
static char *dot_of(nb_tape *tape, const char *title)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    cr_assert_not_null(out);
    cr_assert_eq(nb_tape_write_dot(tape, out, title), NB_OK, "%s", nb_last_error());
    fclose(out);
    return text;
}

static void assert_contains(const char *text, const char *needle)
{
    cr_assert(strstr(text, needle) != NULL, "missing:\n%s\nin:\n%s", needle, text);
}

static int count_of(const char *text, const char *needle)
{
    int count = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle)) count++;
    return count;
}

/* loss = sum(relu(linear(x, W))): x [4,2] (data), W "fc.weight" [3,2]. */
Test(graph_export, small_graph_shows_ops_shapes_names_and_gradients)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){3, 2}, (double[6]){0});
    nb_tensor_set_name(w, "fc.weight");
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){4, 2}, (double[8]){0}, false);
    nb_tensor *loss = nb_sum(tape, nb_relu(tape, nb_linear(tape, x, w, NULL)));
    cr_assert_not_null(loss, "%s", nb_tape_error(tape));
    char *text = dot_of(tape, "a \"small\" net");
    assert_contains(text, "digraph nabla {\n");
    assert_contains(text, "  label=\"a \\\"small\\\" net\";\n");
    assert_contains(text, "  t0 [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", "
                          "label=\"tensor\\n[4,2] float32\\nno grad\"];\n");
    assert_contains(text, "  t1 [shape=ellipse, style=filled, fillcolor=\"#cfe2f3\", "
                          "label=\"fc.weight\\n[3,2] float32\\nrequires grad\"];\n");
    assert_contains(text, "  op0 [shape=box, style=\"rounded,filled\", fillcolor=\"#fff2cc\", "
                          "label=\"linear\\n[4,3]\"];\n");
    assert_contains(text, "label=\"relu\\n[4,3]\"];\n");
    /* The loss is consumed by nothing: double border. */
    assert_contains(text, "  op2 [shape=box, style=\"rounded,filled\", fillcolor=\"#fff2cc\", "
                          "peripheries=2, label=\"sum\\n[]\"];\n");
    assert_contains(text, "  t0 -> op0 [label=\"0\", style=dashed];\n");
    assert_contains(text, "  t1 -> op0 [label=\"1\"];\n");
    assert_contains(text, "  op0 -> op1;\n");
    assert_contains(text, "  op1 -> op2;\n");
    cr_assert_eq(count_of(text, "->"), 4);
    cr_assert_eq(count_of(text, "peripheries"), 1);
    cr_assert_str_eq(text + strlen(text) - 2, "}\n");
    free(text);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* A tensor used twice is one node with two edges; the output of an op run
 * without grad mode enters as an outside tensor; names are escaped. */
Test(graph_export, shared_inputs_unrecorded_ops_and_escaping)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor_set_name(w, "odd\\name");
    bool was = nb_tape_set_grad_enabled(tape, false);
    nb_tensor *constant = nb_exp(tape, w); /* not recorded */
    nb_tape_set_grad_enabled(tape, was);
    nb_tensor *y = nb_mul(tape, w, w);
    nb_tensor *z = nb_add(tape, y, constant);
    cr_assert_not_null(z, "%s", nb_tape_error(tape));
    char *text = dot_of(tape, NULL);
    assert_contains(text, "label=\"odd\\\\name\\n[2] float64\\nrequires grad\"");
    assert_contains(text, "  t0 -> op0 [label=\"0\"];\n");
    assert_contains(text, "  t0 -> op0 [label=\"1\"];\n");
    assert_contains(text, "  t1 [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", "
                          "label=\"tensor\\n[2] float64\\nno grad\"];\n");
    assert_contains(text, "  t1 -> op1 [label=\"1\", style=dashed];\n");
    cr_assert_null(strstr(text, "label=\"exp"), "an unrecorded op is not drawn");
    cr_assert_null(strstr(text, "labelloc"), "no title");
    free(text);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(graph_export, empty_tape_is_an_empty_graph)
{
    nb_tape *tape = nb_tape_new();
    char *text = dot_of(tape, NULL);
    cr_assert_null(strstr(text, "->"));
    cr_assert_null(strstr(text, "shape="));
    cr_assert_str_eq(text + strlen(text) - 2, "}\n");
    free(text);
    nb_tape_free(tape);
}

Test(graph_export, errors)
{
    nb_tape *tape = nb_tape_new();
    cr_assert_eq(nb_tape_write_dot(NULL, stdout, NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tape_write_dot: tape or file is NULL");
    cr_assert_eq(nb_tape_write_dot(tape, NULL, NULL), NB_ERR_INVALID);
    cr_assert_eq(nb_tape_save_dot(tape, NULL, NULL), NB_ERR_INVALID);
    cr_assert_eq(nb_tape_save_dot(tape, "/nonexistent-dir/graph.dot", NULL), NB_ERR_IO);
    cr_assert(strstr(nb_last_error(), "nb_tape_save_dot: cannot open '/nonexistent-dir/graph.dot'") != NULL,
              "%s", nb_last_error());
    nb_tape_free(tape);
}

/* A small CNN step written to a file and rendered by graphviz. */
Test(graph_export, dot_renders_the_output_as_svg)
{
    if (system("command -v dot > /dev/null 2>&1") != 0) {
        cr_skip_test("graphviz 'dot' is not installed: skipping the render check");
        return;
    }
    nb_manual_seed(3);
    nb_module *conv = nb_nn_conv2d(1, 2, 3, 3, NULL, true);
    nb_module *fc = nb_nn_linear(2 * 4 * 4, 3, true);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){2, 1, 6, 6}, (double[72]){0}, false);
    nb_tensor *labels = nb_tape_tensor(tape, NB_INT32, 1, (int64_t[]){2}, NULL);
    nb_tensor *h = nb_flatten(tape, nb_relu(tape, nb_module_forward(conv, tape, x)), 1, -1);
    nb_tensor *loss = nb_cross_entropy(tape, nb_module_forward(fc, tape, h), labels);
    cr_assert_not_null(loss, "%s", nb_tape_error(tape));
    char dot_path[] = "/tmp/nabla_graph_XXXXXX";
    int fd = mkstemp(dot_path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(nb_tape_save_dot(tape, dot_path, "conv step"), NB_OK, "%s", nb_last_error());
    char svg_path[64], command[256];
    snprintf(svg_path, sizeof svg_path, "%s.svg", dot_path);
    snprintf(command, sizeof command, "dot -Tsvg '%s' -o '%s' 2>&1", dot_path, svg_path);
    cr_assert_eq(system(command), 0, "dot rejected the output");
    FILE *svg = fopen(svg_path, "r");
    cr_assert_not_null(svg);
    char buffer[1 << 16];
    size_t got = fread(buffer, 1, sizeof buffer - 1, svg);
    buffer[got] = '\0';
    fclose(svg);
    assert_contains(buffer, "<svg");
    assert_contains(buffer, "conv2d");
    remove(dot_path);
    remove(svg_path);
    nb_tape_free(tape);
    nb_module_free(conv);
    nb_module_free(fc);
}
