/* Graphviz export of a recorded tape (include/nabla/graph.h). Two passes
 * over the nodes from nb_tape_visit: the first finds each input's producer
 * (an earlier node, or an outside tensor given an id on first sight) and
 * which nodes are consumed; the second writes the text. Bookkeeping lives
 * in the tape's arena; ids are positions, so the output is deterministic. */
#include <errno.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/graph.h"

typedef struct graph {
    const nb_node **nodes;        /* creation order */
    size_t node_count;
    const nb_tensor **outside;    /* tensors entering from outside, first seen first */
    size_t outside_count;
    bool *consumed;               /* per node: some recorded op reads its output */
} graph;

static int collect(const nb_node *node, void *user)
{
    graph *g = user;
    g->nodes[g->node_count++] = node;
    return NB_OK;
}

/* The position of input's producer among nodes [0, before), or -1. Producers
 * are usually recent, so the search runs backwards. */
static long producer_of(const graph *g, const nb_tensor *input, size_t before)
{
    if (!input->node) return -1;
    for (size_t i = before; i-- > 0;)
        if (g->nodes[i] == input->node) return (long)i;
    return -1;
}

static size_t outside_id(graph *g, const nb_tensor *t)
{
    for (size_t i = 0; i < g->outside_count; i++)
        if (g->outside[i] == t) return i;
    g->outside[g->outside_count] = t;
    return g->outside_count++;
}

/* Writes s inside a DOT double-quoted string. */
static void put_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
}

static void write_outside(FILE *out, size_t id, const nb_tensor *t)
{
    char shape[96];
    fprintf(out, "  t%zu [shape=ellipse, style=filled, fillcolor=\"%s\", label=\"", id,
            t->requires_grad ? "#cfe2f3" : "#eeeeee");
    put_escaped(out, t->name ? t->name : "tensor");
    fprintf(out, "\\n%s %s\\n%s\"];\n", nb_shape_str(t, shape, sizeof shape),
            nb_dtype_name(t->dtype), t->requires_grad ? "requires grad" : "no grad");
}

static void write_op(FILE *out, size_t id, const nb_op_ctx *ctx, bool consumed)
{
    char shape[96];
    fprintf(out, "  op%zu [shape=box, style=\"rounded,filled\", fillcolor=\"#fff2cc\"%s, label=\"",
            id, consumed ? "" : ", peripheries=2");
    put_escaped(out, ctx->op->name);
    fprintf(out, "\\n%s\"];\n", nb_shape_str(ctx->output, shape, sizeof shape));
}

static void write_edges(FILE *out, graph *g, size_t id)
{
    const nb_op_ctx *ctx = nb_node_ctx(g->nodes[id]);
    for (int i = 0; i < ctx->n_inputs; i++) {
        const nb_tensor *input = ctx->inputs[i];
        long producer = producer_of(g, input, id);
        if (producer >= 0) fprintf(out, "  op%ld -> op%zu", producer, id);
        else fprintf(out, "  t%zu -> op%zu", outside_id(g, input), id);
        bool gradient = input->requires_grad && input->dtype != NB_INT32;
        if (ctx->n_inputs > 1 && !gradient) fprintf(out, " [label=\"%d\", style=dashed]", i);
        else if (ctx->n_inputs > 1) fprintf(out, " [label=\"%d\"]", i);
        else if (!gradient) fprintf(out, " [style=dashed]");
        fputs(";\n", out);
    }
}

/* Pass 1: every node, every input: mark producers consumed, give outside
 * tensors their ids. */
static int build(nb_tape *tape, graph *g)
{
    size_t count = nb_tape_node_count(tape), inputs = 0;
    if (count == 0) return NB_OK;
    g->nodes = nb_arena_alloc(&tape->arena, count * sizeof *g->nodes);
    g->consumed = nb_arena_alloc(&tape->arena, count * sizeof *g->consumed);
    if (!g->nodes || !g->consumed) return nb_fail(NB_ERR_NOMEM, "nb_tape_write_dot: out of memory");
    int status = nb_tape_visit(tape, collect, g);
    if (status != NB_OK) return status;
    memset(g->consumed, 0, count * sizeof *g->consumed);
    for (size_t i = 0; i < g->node_count; i++) inputs += (size_t)nb_node_ctx(g->nodes[i])->n_inputs;
    g->outside = nb_arena_alloc(&tape->arena, (inputs ? inputs : 1) * sizeof *g->outside);
    if (!g->outside) return nb_fail(NB_ERR_NOMEM, "nb_tape_write_dot: out of memory");
    for (size_t i = 0; i < g->node_count; i++) {
        const nb_op_ctx *ctx = nb_node_ctx(g->nodes[i]);
        for (int j = 0; j < ctx->n_inputs; j++) {
            long producer = producer_of(g, ctx->inputs[j], i);
            if (producer >= 0) g->consumed[producer] = true;
            else outside_id(g, ctx->inputs[j]);
        }
    }
    return NB_OK;
}

int nb_tape_write_dot(nb_tape *tape, FILE *out, const char *title)
{
    if (!tape || !out) return nb_fail(NB_ERR_INVALID, "nb_tape_write_dot: tape or file is NULL");
    graph g = {0};
    int status = build(tape, &g);
    if (status != NB_OK) return status;
    fputs("digraph nabla {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [fontname=\"Helvetica\", fontsize=9];\n", out);
    if (title) {
        fputs("  labelloc=t;\n  label=\"", out);
        put_escaped(out, title);
        fputs("\";\n", out);
    }
    for (size_t i = 0; i < g.outside_count; i++) write_outside(out, i, g.outside[i]);
    for (size_t i = 0; i < g.node_count; i++)
        write_op(out, i, nb_node_ctx(g.nodes[i]), g.consumed[i]);
    for (size_t i = 0; i < g.node_count; i++) write_edges(out, &g, i);
    fputs("}\n", out);
    if (fflush(out) != 0 || ferror(out))
        return nb_fail(NB_ERR_IO, "nb_tape_write_dot: write failed: %s", strerror(errno));
    return NB_OK;
}

int nb_tape_save_dot(nb_tape *tape, const char *path, const char *title)
{
    if (!path) return nb_fail(NB_ERR_INVALID, "nb_tape_save_dot: path is NULL");
    if (!tape) return nb_fail(NB_ERR_INVALID, "nb_tape_write_dot: tape or file is NULL");
    FILE *out = fopen(path, "w");
    if (!out) return nb_fail(NB_ERR_IO, "nb_tape_save_dot: cannot open '%s': %s", path, strerror(errno));
    int status = nb_tape_write_dot(tape, out, title);
    if (fclose(out) != 0 && status == NB_OK)
        status = nb_fail(NB_ERR_IO, "nb_tape_save_dot: cannot write '%s': %s", path, strerror(errno));
    return status;
}
