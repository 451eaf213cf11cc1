/* The loss half of tests/torch_parity_driver.c. Header arguments
 * (R: the nb_reduction):
 *   op mse_loss R                 op l1_loss R
 *   op smooth_l1_loss R beta      op huber_loss R delta
 *   op kl_div R log_target        op margin_ranking_loss R margin
 *   op cosine_similarity dim eps
 *   op cross_entropy R has_weight has_ignore ignore_index label_smoothing
 *   op nll_loss R has_weight has_ignore ignore_index label_smoothing
 *   op binary_cross_entropy R has_weight has_pos_weight
 *   op binary_cross_entropy_with_logits R has_weight has_pos_weight
 * The weight, then the pos_weight, follow the inputs when present. */
#include <string.h>

#include "tests/torch_parity.h"

static const char *const LOSSES[] = {
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "margin_ranking_loss",
    "cosine_similarity", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
};

static bool is(const parity_loss *loss, const char *name) { return strcmp(loss->op, name) == 0; }

bool parity_loss_read_header(const char *op, parity_loss *loss)
{
    memset(loss, 0, sizeof *loss);
    for (size_t i = 0; i < sizeof LOSSES / sizeof LOSSES[0]; i++)
        if (strcmp(op, LOSSES[i]) == 0) loss->op = LOSSES[i];
    if (!loss->op) return false;
    if (is(loss, "cosine_similarity")) {
        loss->dim = parity_read_int();
        loss->value = parity_read_double();
        return true;
    }
    loss->reduction = parity_read_int();
    if (is(loss, "smooth_l1_loss") || is(loss, "huber_loss") || is(loss, "margin_ranking_loss")) {
        loss->value = parity_read_double();
    } else if (is(loss, "kl_div")) {
        loss->flag = parity_read_int();
    } else if (is(loss, "cross_entropy") || is(loss, "nll_loss")) {
        loss->has_weight = parity_read_int();
        loss->has_ignore = parity_read_int();
        loss->ignore_index = parity_read_int();
        loss->value = parity_read_double();
    } else if (is(loss, "binary_cross_entropy") || is(loss, "binary_cross_entropy_with_logits")) {
        loss->has_weight = parity_read_int();
        loss->has_pos_weight = parity_read_int();
    }
    return true;
}

void parity_loss_read_tensors(parity_loss *loss, nb_dtype dtype)
{
    if (loss->has_weight) loss->weight = parity_read_tensor(dtype);
    if (loss->has_pos_weight) loss->pos_weight = parity_read_tensor(dtype);
}

nb_tensor *parity_loss_apply(nb_tape *tape, const parity_loss *loss, nb_tensor *const *inputs,
                             int n)
{
    nb_tensor *a = n > 0 ? inputs[0] : NULL, *b = n > 1 ? inputs[1] : NULL;
    nb_reduction reduction = (nb_reduction)loss->reduction;
    if (is(loss, "mse_loss")) return nb_mse_loss_ex(tape, a, b, reduction);
    if (is(loss, "l1_loss")) return nb_l1_loss_ex(tape, a, b, reduction);
    if (is(loss, "smooth_l1_loss")) {
        const nb_smooth_l1_params p = {loss->reduction, loss->value};
        return nb_smooth_l1_loss_ex(tape, a, b, &p);
    }
    if (is(loss, "huber_loss")) {
        const nb_huber_params p = {loss->reduction, loss->value};
        return nb_huber_loss_ex(tape, a, b, &p);
    }
    if (is(loss, "kl_div")) {
        const nb_kl_div_params p = {loss->reduction, loss->flag != 0};
        return nb_kl_div_ex(tape, a, b, &p);
    }
    if (is(loss, "margin_ranking_loss")) {
        const nb_margin_ranking_params p = {loss->reduction, loss->value};
        return nb_margin_ranking_loss_ex(tape, a, b, n > 2 ? inputs[2] : NULL, &p);
    }
    if (is(loss, "cosine_similarity")) return nb_cosine_similarity(tape, a, b, loss->dim, loss->value);
    if (is(loss, "cross_entropy") || is(loss, "nll_loss")) {
        nb_cross_entropy_params p = {loss->weight, loss->reduction, loss->has_ignore != 0,
                                     loss->ignore_index, loss->value};
        return is(loss, "cross_entropy") ? nb_cross_entropy_ex(tape, a, b, &p)
                                         : nb_nll_loss_ex(tape, a, b, &p);
    }
    nb_bce_params p = {loss->weight, loss->pos_weight, loss->reduction};
    return is(loss, "binary_cross_entropy") ? nb_binary_cross_entropy_ex(tape, a, b, &p)
                                            : nb_binary_cross_entropy_with_logits_ex(tape, a, b, &p);
}

void parity_loss_free(parity_loss *loss)
{
    nb_tensor_free(loss->weight);
    nb_tensor_free(loss->pos_weight);
}
