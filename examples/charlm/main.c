/* charlm: train a character-level language model (a small GPT or an LSTM)
 * on Debian's fortunes text, print the validation loss as it goes and a
 * sample at the end. The models are layers and ops only; the tape makes
 * every backward. The last line is `val loss: X.XXXX`. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "charlm.h"

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { BAR_WIDTH = 30 };
static const double REDRAW_SECONDS = 0.25;

typedef struct progress {
    bool terminal;
    double start, last_draw;
    double loss_sum;             /* training losses since the last report */
    int64_t loss_count;
} progress;

/* On a terminal, a bar redrawn in place: step, loss, tokens/s and ETA. */
static void progress_draw(progress *p, const options *o, int64_t step, double tokens_per_step,
                          double loss)
{
    double now = now_seconds();
    if (!p->terminal || (now - p->last_draw < REDRAW_SECONDS && step + 1 < o->train.steps)) return;
    p->last_draw = now;
    double elapsed = now - p->start, fraction = (double)(step + 1) / (double)o->train.steps;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < (int)(fraction * BAR_WIDTH) ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    printf("\rstep %5lld/%lld [%s] loss %.4f  %7.0f tokens/s  ETA %4.0fs ", (long long)(step + 1),
           (long long)o->train.steps, bar, loss, (double)(step + 1) * tokens_per_step / elapsed,
           elapsed * (1.0 - fraction) / fraction);
    fflush(stdout);
}

static int report(charlm_trainer *t, const nb_text *text, const options *o, progress *p, int64_t steps_done,
                  double tokens_per_step, double *val_loss)
{
    int status = charlm_trainer_validation_loss(t, text, &o->train, val_loss);
    if (status != NB_OK) return status;
    double elapsed = now_seconds() - p->start;
    if (p->terminal) printf("\r%*s\r", 100, "");
    printf("step %lld/%lld  train loss %.4f  val loss %.4f  tokens/s %.0f\n", (long long)steps_done,
           (long long)o->train.steps, p->loss_count ? p->loss_sum / (double)p->loss_count : NAN,
           *val_loss, elapsed > 0 ? (double)steps_done * tokens_per_step / elapsed : 0.0);
    fflush(stdout);
    p->loss_sum = 0.0;
    p->loss_count = 0;
    return NB_OK;
}

static int run(const options *o, charlm_trainer *t, const nb_text *text)
{
    printf("charlm %s: %lld parameters, %lld training and %lld validation bytes, %d threads\n", o->train.model,
           (long long)nb_module_parameter_count(t->model), (long long)text->train_length,
           (long long)(text->length - text->train_length), nb_get_num_threads());
    const double tokens_per_step = (double)(o->train.batch * t->config.context);
    progress p = {.terminal = isatty(STDOUT_FILENO), .start = now_seconds()};
    double val_loss = NAN;
    bool reported_last = false;
    for (int64_t step = 0; step < o->train.steps; step++) {
        double loss;
        if (charlm_trainer_step(t, text, &o->train, step, &loss) != NB_OK) return 1;
        p.loss_sum += loss;
        p.loss_count++;
        progress_draw(&p, o, step, tokens_per_step, loss);
        reported_last = o->eval_every && (step + 1) % o->eval_every == 0;
        if (reported_last && report(t, text, o, &p, step + 1, tokens_per_step, &val_loss) != NB_OK)
            return 1;
    }
    if (!reported_last && report(t, text, o, &p, o->train.steps, tokens_per_step, &val_loss) != NB_OK) return 1;
    if (o->save && nb_module_save(t->model, o->save) != NB_OK) return 1;
    if (o->sample_bytes) {
        printf("sample (%lld bytes, temperature %g):\n", (long long)o->sample_bytes, o->temperature);
        if (charlm_sample(t, o, o->sample_bytes) != NB_OK) return 1;
    }
    printf("val loss: %.4f\n", val_loss);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int parsed = options_parse(argc, argv, &o);
    if (parsed) return parsed == 1 ? 0 : 2;
    if (o.threads && nb_set_num_threads(o.threads) != NB_OK) {
        fprintf(stderr, "charlm: %s\n", nb_last_error());
        return 2;
    }
    nb_text text;
    if (nb_fortunes_load(o.data, &text) != NB_OK) {
        fprintf(stderr, "charlm: %s\n", nb_last_error());
        return 1;
    }
    charlm_trainer t;
    int status = charlm_trainer_init(&t, &o.train) == NB_OK ? run(&o, &t, &text) : 1;
    if (status) {
        const char *tape_error = t.tape ? nb_tape_error(t.tape) : NULL;
        fprintf(stderr, "charlm: %s\n", tape_error ? tape_error : nb_last_error());
    }
    charlm_trainer_free(&t);
    nb_text_free(&text);
    return status;
}
