#include "report.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BAR_WIDTH = 30 };
static const double REDRAW_SECONDS = 0.2, LINE_SECONDS = 5.0;

double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void progress_start(progress *p, int64_t total_steps)
{
    p->terminal = isatty(STDOUT_FILENO);
    p->start_seconds = now_seconds();
    p->total_steps = total_steps;
    p->images = 0;
}

void progress_update(progress *p, int epoch, int64_t step, double loss, double accuracy,
                     int64_t batch)
{
    static double last_print;
    p->images += batch;
    double now = now_seconds();
    bool last = step + 1 == p->total_steps;
    if (!last && now - last_print < (p->terminal ? REDRAW_SECONDS : LINE_SECONDS)) return;
    last_print = now;
    double elapsed = now - p->start_seconds;
    double rate = elapsed > 0 ? (double)p->images / elapsed : 0.0;
    double fraction = p->total_steps ? (double)(step + 1) / (double)p->total_steps : 1.0;
    double eta = fraction > 0 ? elapsed * (1.0 - fraction) / fraction : 0.0;
    if (p->terminal) {
        char bar[BAR_WIDTH + 1];
        int filled = (int)(fraction * BAR_WIDTH);
        for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        printf("\repoch %2d [%s] %3.0f%%  loss %.4f  acc %5.2f%%  %6.0f img/s  ETA %4.0fs ", epoch, bar,
               100 * fraction, loss, 100 * accuracy, rate, eta);
    } else {
        printf("epoch %d step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %.0fs\n", epoch,
               (long long)(step + 1), (long long)p->total_steps, loss, 100 * accuracy, rate, eta);
    }
    fflush(stdout);
}

void progress_end(progress *p)
{
    if (p->terminal) printf("\n");
}

void confusion_print(const int64_t confusion[CLASSES][CLASSES], const char *const *names, FILE *out)
{
    fprintf(out, "confusion matrix (rows: true class, columns: predicted)\n%12s", "");
    for (int j = 0; j < CLASSES; j++) fprintf(out, "%6d", j);
    fprintf(out, "   recall\n");
    for (int i = 0; i < CLASSES; i++) {
        int64_t row = 0;
        for (int j = 0; j < CLASSES; j++) row += confusion[i][j];
        fprintf(out, "%d %-10.10s", i, names[i]);
        for (int j = 0; j < CLASSES; j++) fprintf(out, "%6lld", (long long)confusion[i][j]);
        fprintf(out, "   %5.1f%%\n", row ? 100.0 * (double)confusion[i][i] / (double)row : 0.0);
    }
}

/* One panel: axes, ticks and polylines scaled into a box. */
typedef struct panel {
    double left, top, width, height, x_max, y_min, y_max;
} panel;

static double px(const panel *p, double x) { return p->left + p->width * (p->x_max > 0 ? x / p->x_max : 0); }
static double py(const panel *p, double y)
{
    return p->top + p->height * (1.0 - (y - p->y_min) / (p->y_max - p->y_min));
}

static void draw_axes(FILE *f, const panel *p, const char *title, const char *x_label)
{
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#444'/>\n", p->left,
            p->top, p->width, p->height);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='14' text-anchor='middle'>%s</text>\n",
            p->left + p->width / 2, p->top - 8, title);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>%s</text>\n",
            p->left + p->width / 2, p->top + p->height + 32, x_label);
    for (int i = 0; i <= 4; i++) {
        double y = p->y_min + (p->y_max - p->y_min) * i / 4.0;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>\n", p->left - 4,
                py(p, y) + 4, y);
        double x = p->x_max * i / 4.0;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%.3g</text>\n", px(p, x),
                p->top + p->height + 15, x);
    }
}

static void draw_line(FILE *f, const panel *p, const double *x, const double *y, int n, const char *color)
{
    if (n == 0) return;
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", color);
    for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", px(p, x[i]), py(p, y[i]));
    fprintf(f, "'/>\n");
}

static void range_of(const double *v, int n, double *lo, double *hi)
{
    for (int i = 0; i < n; i++) {
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

int curves_write_svg(const curves *c, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='360' font-family='sans-serif'>\n"
               "<rect width='100%%' height='100%%' fill='white'/>\n");
    panel loss = {60, 30, 360, 270, 1, 0, 1};
    double lo = INFINITY, hi = -INFINITY;
    range_of(c->loss_y, c->n_loss, &lo, &hi);
    if (c->n_loss) {
        loss.x_max = c->loss_x[c->n_loss - 1];
        loss.y_min = 0;
        loss.y_max = hi > 0 ? hi : 1;
    }
    draw_axes(f, &loss, "training loss", "epoch");
    draw_line(f, &loss, c->loss_x, c->loss_y, c->n_loss, "#1f77b4");
    panel accuracy = {510, 30, 360, 270, 1, 0, 100};
    lo = INFINITY;
    hi = -INFINITY;
    range_of(c->train_accuracy, c->n_accuracy, &lo, &hi);
    range_of(c->test_accuracy, c->n_accuracy, &lo, &hi);
    if (c->n_accuracy) {
        accuracy.x_max = c->accuracy_x[c->n_accuracy - 1];
        accuracy.y_min = floor(lo / 5) * 5;
        accuracy.y_max = fmin(100, ceil(hi / 5) * 5 + (hi == accuracy.y_min ? 5 : 0));
    }
    draw_axes(f, &accuracy, "accuracy (%): train (orange), test (green)", "epoch");
    draw_line(f, &accuracy, c->accuracy_x, c->train_accuracy, c->n_accuracy, "#ff7f0e");
    draw_line(f, &accuracy, c->accuracy_x, c->test_accuracy, c->n_accuracy, "#2ca02c");
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}
