/* The float64 reference attention (attention.h): plain loops over one
 * query row at a time, its full row of scores in scratch [S]. */
#include <math.h>

#include "kernels/attention.h"

/* s [S] = the scores of row i (-inf where causal hides a key) */
static void row_scores(const nb_attention_dims *d, const nb_attention_head_f64 *h, int64_t i,
                       double *s)
{
    for (int64_t j = 0; j < d->S; j++) {
        if (d->causal && j > i) {
            s[j] = -INFINITY;
            continue;
        }
        double dot = 0.0;
        for (int64_t c = 0; c < d->D; c++) dot += h->q[i * d->D + c] * h->k[j * d->D + c];
        s[j] = d->scale * dot + (h->mask ? h->mask[i * h->mask_row + j * h->mask_col] : 0.0);
    }
}

/* s [S] = softmax of the scores of row i; returns their log-sum-exp */
static double row_probabilities(const nb_attention_dims *d, const nb_attention_head_f64 *h,
                                int64_t i, double *s)
{
    row_scores(d, h, i, s);
    double top = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < d->S; j++) top = s[j] > top ? s[j] : top;
    for (int64_t j = 0; j < d->S; j++) sum += s[j] = top == -INFINITY ? 0.0 : exp(s[j] - top);
    for (int64_t j = 0; j < d->S; j++) s[j] /= sum;   /* 0 / 0: NaN for an all-masked row */
    return top + log(sum);
}

void nb_attention_forward_f64(const nb_attention_dims *d, const nb_attention_head_f64 *h,
                              double *scratch)
{
    for (int64_t i = 0; i < d->T; i++) {
        h->lse[i] = row_probabilities(d, h, i, scratch);
        for (int64_t c = 0; c < d->Dv; c++) {
            double sum = 0.0;
            for (int64_t j = 0; j < d->S; j++) sum += scratch[j] * h->v[j * d->Dv + c];
            h->o[i * d->Dv + c] = sum;
        }
    }
}

void nb_attention_backward_f64(const nb_attention_dims *d, const nb_attention_head_f64 *h,
                               const double *dout, double *dq, double *dk, double *dv,
                               double *dmask, double *scratch)
{
    for (int64_t i = 0; i < d->T; i++) {
        double *p = scratch;
        row_probabilities(d, h, i, p);
        const double *g = dout + i * d->Dv;
        double delta = 0.0;
        for (int64_t c = 0; c < d->Dv; c++) delta += g[c] * h->o[i * d->Dv + c];
        for (int64_t j = 0; j < d->S; j++) {
            if (p[j] == 0.0) continue;   /* masked: no gradient reaches it */
            double dp = 0.0;
            for (int64_t c = 0; c < d->Dv; c++) dp += g[c] * h->v[j * d->Dv + c];
            double ds = p[j] * (dp - delta);
            for (int64_t c = 0; dv && c < d->Dv; c++) dv[j * d->Dv + c] += p[j] * g[c];
            for (int64_t c = 0; dq && c < d->D; c++) dq[i * d->D + c] += d->scale * ds * h->k[j * d->D + c];
            for (int64_t c = 0; dk && c < d->D; c++) dk[j * d->D + c] += d->scale * ds * h->q[i * d->D + c];
            if (dmask) dmask[i * h->mask_row + j * h->mask_col] += ds;
        }
    }
}
