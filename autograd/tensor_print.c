/* PyTorch-style repr: values right-aligned to a common width, fixed
 * notation with 4 decimals unless the magnitudes call for scientific, and
 * large dimensions summarised as "first 3, ..., last 3". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"

enum { SUMMARY_THRESHOLD = 1000, EDGE_ITEMS = 3, NUMBER_CAPACITY = 64 };

typedef enum { STYLE_INTEGER, STYLE_FIXED, STYLE_SCIENTIFIC } number_style;

typedef struct printer {
    const nb_tensor *tensor;
    FILE *out;
    number_style style;
    int width;
    bool summarize;
    int64_t strides[NB_MAX_DIMS];
} printer;

static int format_number(const printer *p, double v, char *buf)
{
    if (isnan(v)) return snprintf(buf, NUMBER_CAPACITY, "nan");
    if (isinf(v)) return snprintf(buf, NUMBER_CAPACITY, v > 0 ? "inf" : "-inf");
    switch (p->style) {
    case STYLE_INTEGER: return snprintf(buf, NUMBER_CAPACITY, "%.0f.", v);
    case STYLE_FIXED: return snprintf(buf, NUMBER_CAPACITY, "%.4f", v);
    case STYLE_SCIENTIFIC: return snprintf(buf, NUMBER_CAPACITY, "%.4e", v);
    }
    return 0;
}

static void choose_style(printer *p)
{
    const nb_tensor *t = p->tensor;
    bool integral = true;
    double max_abs = 0.0, min_abs = INFINITY;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = nb_tensor_get(t, i);
        if (!isfinite(v)) continue;
        if (v != floor(v)) integral = false;
        double a = fabs(v);
        if (a > max_abs) max_abs = a;
        if (a > 0 && a < min_abs) min_abs = a;
    }
    if (integral && max_abs < 1e8) p->style = STYLE_INTEGER;
    else if (max_abs >= 1e8 || (min_abs < 1e-4) || (min_abs < INFINITY && max_abs / min_abs > 1e3 && min_abs < 1e-3))
        p->style = STYLE_SCIENTIFIC;
    else p->style = STYLE_FIXED;
    char buf[NUMBER_CAPACITY];
    p->width = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        int w = format_number(p, nb_tensor_get(t, i), buf);
        if (w > p->width) p->width = w;
    }
}

static void print_level(const printer *p, int dim, int64_t offset, int indent)
{
    const nb_tensor *t = p->tensor;
    int64_t n = t->shape[dim];
    fputc('[', p->out);
    for (int64_t i = 0; i < n; i++) {
        if (p->summarize && n > 2 * EDGE_ITEMS && i == EDGE_ITEMS) {
            if (dim == t->ndim - 1) fprintf(p->out, "..., ");
            else fprintf(p->out, "...,\n%*s", indent + 1, "");
            i = n - EDGE_ITEMS - 1;
            continue;
        }
        if (dim == t->ndim - 1) {
            char buf[NUMBER_CAPACITY];
            format_number(p, nb_tensor_get(t, offset + i), buf);
            fprintf(p->out, "%*s", p->width, buf);
            if (i + 1 < n) fprintf(p->out, ", ");
        } else {
            print_level(p, dim + 1, offset + i * p->strides[dim], indent + 1);
            if (i + 1 < n) {
                fputc(',', p->out);
                for (int k = dim; k < t->ndim - 1; k++) fputc('\n', p->out);
                fprintf(p->out, "%*s", indent + 1, "");
            }
        }
    }
    fputc(']', p->out);
}

void nb_tensor_print(const nb_tensor *t, FILE *out)
{
    if (!t) {
        fprintf(out, "tensor(NULL)\n");
        return;
    }
    printer p = {.tensor = t, .out = out, .summarize = t->numel > SUMMARY_THRESHOLD};
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        p.strides[d] = stride;
        stride *= t->shape[d];
    }
    choose_style(&p);
    const int prefix = (int)strlen("tensor(");
    fprintf(out, "tensor(");
    if (t->ndim == 0) {
        char buf[NUMBER_CAPACITY];
        format_number(&p, nb_tensor_get(t, 0), buf);
        fputs(buf, out);
    } else if (t->numel == 0) {
        char shape[96];
        fprintf(out, "[], size=%s", nb_shape_string(t, shape, sizeof shape));
    } else {
        print_level(&p, 0, 0, prefix);
    }
    if (t->dtype != NB_FLOAT32) fprintf(out, ", dtype=%s", nb_dtype_name(t->dtype));
    if (t->node) fprintf(out, ", grad_fn=<%s>", t->node->ctx.op->name);
    else if (t->requires_grad) fprintf(out, ", requires_grad=True");
    fprintf(out, ")\n");
}
