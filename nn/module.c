/* Modules: naming, parameters, modes, printing and freeing. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "nn/module.h"

nb_module *nb_module_new(const char *kind, nb_module_forward_fn forward)
{
    nb_module *m = nb_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = kind;
    m->forward = forward;
    m->training = true;
    return m;
}

void nb_module_describe(nb_module *m, const char *fmt, ...)
{
    if (!m) return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(m->description, sizeof m->description, fmt, args);
    va_end(args);
}

const char *nb_pair_string(const int pair[2], char *buf, size_t size)
{
    if (pair[0] == pair[1]) snprintf(buf, size, "%d", pair[0]);
    else snprintf(buf, size, "(%d, %d)", pair[0], pair[1]);
    return buf;
}

/* dst = prefix + "." + name (or name alone); overlong names are cut, as
 * names are for people and files, never for lookups inside a step. */
static void join_name(char *dst, const char *prefix, const char *name)
{
    size_t used = 0;
    for (const char *parts[3] = {prefix, prefix[0] ? "." : "", name}, **p = parts; p < parts + 3; p++)
        for (const char *c = *p; *c && used + 1 < NB_MODULE_NAME_CAPACITY; c++) dst[used++] = *c;
    dst[used] = '\0';
}

static void update_names(nb_module *m)
{
    for (int i = 0; i < m->n_tensors; i++) join_name(m->full_names[i], m->prefix, m->tensor_names[i]);
    for (int c = 0; c < m->n_children; c++) {
        join_name(m->children[c]->prefix, m->prefix, m->child_names[c]);
        update_names(m->children[c]);
    }
}

/* Doubles the tensor arrays; NB_OK or NB_ERR_NOMEM (nothing changed). */
static int grow_tensors(nb_module *m)
{
    int capacity = m->tensors_capacity ? 2 * m->tensors_capacity : 4;
    nb_tensor **tensors = nb_calloc((size_t)capacity, sizeof *tensors);
    char (*names)[NB_MODULE_NAME_CAPACITY] = nb_calloc((size_t)capacity, sizeof *names);
    char (*full)[NB_MODULE_NAME_CAPACITY] = nb_calloc((size_t)capacity, sizeof *full);
    bool *is_buffer = nb_calloc((size_t)capacity, sizeof *is_buffer);
    if (!tensors || !names || !full || !is_buffer) {
        nb_free(tensors), nb_free(names), nb_free(full), nb_free(is_buffer);
        return NB_ERR_NOMEM;
    }
    if (m->n_tensors) {
        memcpy(tensors, m->tensors, (size_t)m->n_tensors * sizeof *tensors);
        memcpy(names, m->tensor_names, (size_t)m->n_tensors * sizeof *names);
        memcpy(full, m->full_names, (size_t)m->n_tensors * sizeof *full);
        memcpy(is_buffer, m->is_buffer, (size_t)m->n_tensors * sizeof *is_buffer);
    }
    nb_free(m->tensors), nb_free(m->tensor_names), nb_free(m->full_names), nb_free(m->is_buffer);
    m->tensors = tensors;
    m->tensor_names = names;
    m->full_names = full;
    m->is_buffer = is_buffer;
    m->tensors_capacity = capacity;
    return NB_OK;
}

int nb_module_add_tensor(nb_module *m, const char *name, nb_tensor *t, bool is_buffer)
{
    if (!t) return NB_ERR_NOMEM;
    const char *what = is_buffer ? "nb_module_add_buffer" : "nb_module_add_parameter";
    int status = NB_OK;
    if (!m || !name || !name[0] || strlen(name) >= NB_MODULE_NAME_CAPACITY || strchr(name, '.'))
        status = nb_fail(NB_ERR_INVALID, "%s: NULL module, or a name that is empty, too long or "
                         "holds a '.'", what);
    else if (nb_module_tensor(m, name))
        status = nb_fail(NB_ERR_INVALID, "%s: %s has a tensor named '%s' already", what, m->kind, name);
    else if (t->tape)
        status = nb_fail(NB_ERR_INVALID, "%s: '%s' is a tape tensor; modules own persistent ones",
                         what, name);
    else if (t->dtype != NB_FLOAT32 && t->dtype != NB_FLOAT64)
        status = nb_fail(NB_ERR_INVALID, "%s: '%s' has dtype %s; expected float32 or float64", what,
                         name, nb_dtype_name(t->dtype));
    else if (m->n_tensors == m->tensors_capacity)
        status = grow_tensors(m);
    if (status != NB_OK) {
        nb_tensor_free(t);
        return status;
    }
    int i = m->n_tensors++;
    m->tensors[i] = t;
    snprintf(m->tensor_names[i], NB_MODULE_NAME_CAPACITY, "%s", name);
    m->is_buffer[i] = is_buffer;
    nb_tensor_set_requires_grad(t, !is_buffer);
    update_names(m);
    nb_tensor_set_name(t, m->full_names[i]);
    return NB_OK;
}

nb_tensor *nb_module_add_parameter(nb_module *m, const char *name, nb_tensor *t)
{
    return nb_module_add_tensor(m, name, t, false) == NB_OK ? t : NULL;
}

nb_tensor *nb_module_add_buffer(nb_module *m, const char *name, nb_tensor *t)
{
    return nb_module_add_tensor(m, name, t, true) == NB_OK ? t : NULL;
}

nb_tensor *nb_module_tensor(const nb_module *m, const char *name)
{
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensor_names[i], name) == 0) return m->tensors[i];
    return NULL;
}

int nb_module_to_dtype(nb_module *m, nb_dtype dtype)
{
    if (!m) return nb_fail(NB_ERR_INVALID, "nb_module_to_dtype: module is NULL");
    if (dtype != NB_FLOAT32 && dtype != NB_FLOAT64)
        return nb_fail(NB_ERR_INVALID, "nb_module_to_dtype: dtype %s; expected float32 or float64",
                       nb_dtype_name(dtype));
    for (int i = 0; i < m->n_tensors; i++) {
        nb_tensor *old = m->tensors[i];
        if (old->dtype == dtype) continue;
        nb_tensor *t = nb_tensor_new(dtype, old->ndim, old->shape);
        if (!t) return NB_ERR_NOMEM;
        nb_tensor_copy(t, old);
        nb_tensor_set_requires_grad(t, old->requires_grad);
        nb_tensor_set_name(t, m->full_names[i]);
        m->tensors[i] = t;
        nb_tensor_free(old);
    }
    for (int c = 0; c < m->n_children; c++) {
        int status = nb_module_to_dtype(m->children[c], dtype);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

nb_module *nb_module_add(nb_module *parent, const char *name, nb_module *child)
{
    if (!child) return NULL;   /* the child's constructor failed: its error stands */
    if (!parent || !name || !name[0] || strlen(name) >= NB_MODULE_NAME_CAPACITY) {
        nb_module_free(child);
        nb_fail(NB_ERR_INVALID, "nb_module_add: NULL parent or name (or name too long)");
        return NULL;
    }
    if (nb_module_child(parent, name)) {
        nb_module_free(child);
        nb_fail(NB_ERR_INVALID, "nb_module_add: a child named '%s' exists already", name);
        return NULL;
    }
    if (parent->n_children == parent->children_capacity) {
        int capacity = parent->children_capacity ? 2 * parent->children_capacity : 8;
        nb_module **children = nb_calloc((size_t)capacity, sizeof *children);
        char (*names)[NB_MODULE_NAME_CAPACITY] = nb_calloc((size_t)capacity, sizeof *names);
        if (!children || !names) {
            nb_free(children);
            nb_free(names);
            nb_module_free(child);
            return NULL;
        }
        if (parent->n_children) {
            memcpy(children, parent->children, (size_t)parent->n_children * sizeof *children);
            memcpy(names, parent->child_names, (size_t)parent->n_children * sizeof *names);
        }
        nb_free(parent->children);
        nb_free(parent->child_names);
        parent->children = children;
        parent->child_names = names;
        parent->children_capacity = capacity;
    }
    int c = parent->n_children++;
    parent->children[c] = child;
    snprintf(parent->child_names[c], NB_MODULE_NAME_CAPACITY, "%s", name);
    update_names(parent);
    for (int i = 0; i < child->n_tensors; i++) nb_tensor_set_name(child->tensors[i], child->full_names[i]);
    return child;
}

nb_module *nb_module_child(const nb_module *parent, const char *name)
{
    if (!parent || !name) return NULL;
    for (int c = 0; c < parent->n_children; c++)
        if (strcmp(parent->child_names[c], name) == 0) return parent->children[c];
    return NULL;
}

bool nb_module_input_ok(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    (void)m;
    return tape && x && !nb_tape_error(tape);
}

nb_tensor *nb_module_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    if (!m) {
        nb_fail(NB_ERR_INVALID, "nb_module_forward: module is NULL");
        return NULL;
    }
    if (!m->forward) {
        nb_fail(NB_ERR_INVALID, "%s: this module has no forward of its own; call its children",
                m->kind);
        return NULL;
    }
    if (m->precision == NB_PRECISION_INHERIT || !tape) return m->forward(m, tape, x);
    /* The module's own precision, for its forward only. */
    nb_precision outer = nb_tape_precision(tape);
    nb_tape_set_precision(tape, m->precision);
    nb_tensor *y = m->forward(m, tape, x);
    nb_tape_set_precision(tape, outer);
    return y;
}

int nb_module_set_precision(nb_module *m, nb_precision precision)
{
    if (!m) return nb_fail(NB_ERR_INVALID, "nb_module_set_precision: module is NULL");
    if (precision != NB_PRECISION_INHERIT && precision != NB_PRECISION_FP32 &&
        precision != NB_PRECISION_BF16)
        return nb_fail(NB_ERR_INVALID, "nb_module_set_precision: %s: %d is not a precision",
                       m->kind, (int)precision);
    m->precision = precision;
    return NB_OK;
}

void nb_module_train(nb_module *m, bool training)
{
    if (!m) return;
    m->training = training;
    for (int c = 0; c < m->n_children; c++) nb_module_train(m->children[c], training);
}

static int collect(nb_module *m, nb_named_tensor *out, int capacity, int count, bool buffers)
{
    for (int i = 0; i < m->n_tensors; i++) {
        if (m->is_buffer[i] && !buffers) continue;
        if (count < capacity) {
            out[count].name = m->full_names[i];
            out[count].tensor = m->tensors[i];
        }
        count++;
    }
    for (int c = 0; c < m->n_children; c++) count = collect(m->children[c], out, capacity, count, buffers);
    return count;
}

int nb_module_parameters(nb_module *m, nb_named_tensor *out, int capacity)
{
    return m ? collect(m, out, out ? capacity : 0, 0, false) : 0;
}

int nb_module_state(nb_module *m, nb_named_tensor *out, int capacity)
{
    return m ? collect(m, out, out ? capacity : 0, 0, true) : 0;
}

int64_t nb_module_parameter_count(nb_module *m)
{
    if (!m) return 0;
    int64_t total = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->is_buffer[i]) total += m->tensors[i]->numel;
    for (int c = 0; c < m->n_children; c++) total += nb_module_parameter_count(m->children[c]);
    return total;
}

void nb_module_zero_grad(nb_module *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) nb_tensor_zero_grad(m->tensors[i]);
    for (int c = 0; c < m->n_children; c++) nb_module_zero_grad(m->children[c]);
}

static void print_tree(const nb_module *m, const char *name, int depth, FILE *out)
{
    fprintf(out, "%*s%s%s%s", 2 * depth, "", name ? "(" : "", name ? name : "", name ? "): " : "");
    fprintf(out, "%s(%s", m->kind, m->description);
    for (int i = 0; !m->description[0] && i < m->n_tensors; i++) {
        char shape[96];
        fprintf(out, "%s%s=%s", i ? ", " : "", m->tensor_names[i],
                nb_shape_string(m->tensors[i], shape, sizeof shape));
    }
    if (m->n_children) {
        fprintf(out, "\n");
        for (int c = 0; c < m->n_children; c++) print_tree(m->children[c], m->child_names[c], depth + 1, out);
        fprintf(out, "%*s", 2 * depth, "");
    }
    fprintf(out, ")\n");
}

void nb_module_print(const nb_module *m, FILE *out)
{
    if (m) print_tree(m, NULL, 0, out);
}

int nb_module_save(nb_module *m, const char *path)
{
    enum { CAPACITY = 1024 };
    /* Before the file is opened: a NULL module would save an empty file. */
    if (!m) return nb_fail(NB_ERR_INVALID, "nb_module_save: module is NULL");
    nb_named_tensor state[CAPACITY];
    int count = nb_module_state(m, state, CAPACITY);
    if (count > CAPACITY) return nb_fail(NB_ERR_INVALID, "nb_module_save: more than %d tensors", CAPACITY);
    return nb_safetensors_save(path, state, count);
}

int nb_module_load(nb_module *m, const char *path)
{
    enum { CAPACITY = 1024 };
    if (!m) return nb_fail(NB_ERR_INVALID, "nb_module_load: module is NULL");
    nb_named_tensor state[CAPACITY];
    int count = nb_module_state(m, state, CAPACITY);
    if (count > CAPACITY) return nb_fail(NB_ERR_INVALID, "nb_module_load: more than %d tensors", CAPACITY);
    return nb_safetensors_load_into(path, state, count);
}

void nb_module_free(nb_module *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) nb_tensor_free(m->tensors[i]);
    for (int c = 0; c < m->n_children; c++) nb_module_free(m->children[c]);
    if (m->free_user) m->free_user(m->user);
    nb_free(m->tensors), nb_free(m->tensor_names), nb_free(m->full_names), nb_free(m->is_buffer);
    nb_free(m->children);
    nb_free(m->child_names);
    nb_free(m);
}
