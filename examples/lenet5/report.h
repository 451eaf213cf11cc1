/* Progress, confusion matrix and the SVG training curves of lenet5. */
#ifndef LENET5_REPORT_H
#define LENET5_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { CLASSES = 10, MAX_POINTS = 4096 };

typedef struct progress {
    bool terminal;          /* a bar redrawn in place, or plain lines */
    double start_seconds;
    int64_t total_steps;
    int64_t images;
} progress;

double now_seconds(void);
void progress_start(progress *p, int64_t total_steps);
/* Called every step; prints at most a few times a second. */
void progress_update(progress *p, int epoch, int64_t step, double loss, double accuracy,
                     int64_t batch);
void progress_end(progress *p);

void confusion_print(const int64_t confusion[CLASSES][CLASSES], const char *const *names, FILE *out);

/* Loss per logged step and accuracy per epoch, plotted as two panels. */
typedef struct curves {
    int n_loss, n_accuracy;
    double loss_x[MAX_POINTS], loss_y[MAX_POINTS];
    double accuracy_x[MAX_POINTS], train_accuracy[MAX_POINTS], test_accuracy[MAX_POINTS];
} curves;
int curves_write_svg(const curves *c, const char *path);

#endif
