/* Gradient hooks (nb_tensor_set_hook) and anomaly mode
 * (nb_tape_set_anomaly_mode). Expected gradients are worked out by hand in
 * the comments. */
#include <float.h>

#include "helpers.h"

/* ---- hooks ------------------------------------------------------------------ */

/* What a hook saw, and how it answers. */
typedef struct probe {
    int calls;
    const nb_tensor *tensor;
    double seen[8];
    double scale;         /* grad *= scale */
    int status;           /* returned; NB_OK unless testing failures */
    const char *message;  /* set with the failure when not NULL */
} probe;

static int probe_hook(nb_tensor *t, nb_tensor *grad, void *user)
{
    probe *p = user;
    p->calls++;
    p->tensor = t;
    for (int64_t i = 0; i < grad->numel && i < 8; i++) {
        p->seen[i] = nb_tensor_get(grad, i);
        nb_tensor_set(grad, i, p->seen[i] * p->scale);
    }
    if (p->status != NB_OK && p->message) {
        /* A user hook has no nb_fail; any failing nabla call sets a message.
         * Here: backward with a NULL tape gives "backward: tape is NULL". */
        (void)nb_backward(NULL, NULL, NULL);
    }
    return p->status;
}

/* loss = sum(w * w) + sum(w), w = [1, 2, 3]: dL/dw = 2w + 1 = [3, 5, 7],
 * reaching w from two ops; the leaf hook sees the total, once. */
Test(hooks, leaf_hook_sees_the_complete_gradient_once)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    probe p = {.scale = 1.0};
    nb_tensor_set_hook(w, probe_hook, &p);
    nb_tensor *loss = nb_add(tape, nb_sum(tape, nb_mul(tape, w, w)), nb_sum(tape, w));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.tensor, w);
    cr_assert_float_eq(p.seen[0], 3, 0);
    cr_assert_float_eq(p.seen[1], 5, 0);
    cr_assert_float_eq(p.seen[2], 7, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* Records the order hooks run in. */
typedef struct order_log {
    int count;
    const nb_tensor *who[8];
} order_log;

static int order_hook(nb_tensor *t, nb_tensor *grad, void *user)
{
    (void)grad;
    order_log *log = user;
    if (log->count < 8) log->who[log->count] = t;
    log->count++;
    return NB_OK;
}

/* loss = sum((x * a) * b), a made before b. The sweep meets b's consumer
 * first: b's gradient is complete after that node, before the sweep
 * reaches the node of h = x * a (whose hook runs just before that node's
 * backward) and long before a's. A hook that ran only at the end of the
 * sweep would come after h's. */
Test(hooks, leaf_hook_runs_once_its_gradient_is_complete)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *a = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){3, 4});
    nb_tensor *b = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){5, 6});
    order_log log = {0};
    nb_tensor_set_hook(a, order_hook, &log);
    nb_tensor_set_hook(b, order_hook, &log);
    nb_tensor *h = nb_mul(tape, x, a);
    nb_tensor_set_hook(h, order_hook, &log);
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, h, b));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.who[0], b, "b's hook runs first, right after its consumer's backward");
    cr_assert_eq(log.who[1], h);
    cr_assert_eq(log.who[2], a);
    /* db = x * a = [3, 8]; da = x * b = [5, 12] */
    cr_assert_float_eq(nb_tensor_get(b->grad, 1), 8, 0);
    cr_assert_float_eq(nb_tensor_get(a->grad, 1), 12, 0);
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(a);
    nb_tensor_free(b);
}

/* A shared weight (used by the first and the last op) gets its hook once,
 * after its earliest consumer, with the sum of both uses:
 * loss = sum((w * x) * w) = sum(x w^2), dL/dw = 2 x w = [4, 12]. */
Test(hooks, shared_leaf_hook_waits_for_its_earliest_consumer)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){2, 3});
    probe p = {.scale = 1.0};
    nb_tensor_set_hook(w, probe_hook, &p);
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, nb_mul(tape, w, x), w));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    cr_assert_eq(p.calls, 1);
    cr_assert_float_eq(p.seen[0], 4, 0);
    cr_assert_float_eq(p.seen[1], 12, 0);
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(w);
}

/* A leaf hook's change is what stays in w->grad: scale 0 zeroes it. */
Test(hooks, leaf_hook_can_replace_the_gradient)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){4, 5});
    probe p = {.scale = 0.0};
    nb_tensor_set_hook(w, probe_hook, &p);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, w, w)), NULL), NB_OK);
    assert_values(w->grad, (double[]){0, 0}, 2, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* h = w * c with c = [3, 3]; loss = sum(h * h). dL/dh = 2h = 6w = [6, 12];
 * the hook halves it to [3, 6], so dL/dw = 3 * [3, 6] = [9, 18] (without the
 * hook: [18, 36]). */
Test(hooks, intermediate_hook_change_flows_upstream)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *c = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){3, 3}, false);
    nb_tensor *h = nb_mul(tape, w, c);
    probe p = {.scale = 0.5};
    nb_tensor_set_hook(h, probe_hook, &p);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, h, h)), NULL), NB_OK, "%s",
                 nb_last_error());
    cr_assert_eq(p.calls, 1);
    cr_assert_float_eq(p.seen[0], 6, 0);
    cr_assert_float_eq(p.seen[1], 12, 0);
    assert_values(w->grad, (double[]){9, 18}, 2, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* loss = sum(h) + sum(w * d) with h = w * c: zeroing dL/dh in a hook cuts
 * that branch, leaving dL/dw = d = [5, 7]. */
Test(hooks, zeroing_an_intermediate_cuts_only_its_branch)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *c = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){3, 3}, false);
    nb_tensor *d = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){5, 7}, false);
    nb_tensor *h = nb_mul(tape, w, c);
    probe p = {.scale = 0.0};
    nb_tensor_set_hook(h, probe_hook, &p);
    nb_tensor *loss = nb_add(tape, nb_sum(tape, h), nb_sum(tape, nb_mul(tape, w, d)));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){5, 7}, 2, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* The output's own hook sees the seed (1 for a scalar); doubling it doubles
 * every gradient: loss = sum(w * w), dL/dw = 2 * 2w = [4, 8]. */
Test(hooks, output_hook_sees_the_seed)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, w, w));
    probe p = {.scale = 2.0};
    nb_tensor_set_hook(loss, probe_hook, &p);
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK);
    cr_assert_float_eq(p.seen[0], 1, 0);
    assert_values(w->grad, (double[]){4, 8}, 2, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(hooks, a_hook_runs_in_every_backward)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    probe p = {.scale = 1.0};
    nb_tensor_set_hook(w, probe_hook, &p);
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, w, w));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK);
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK);
    cr_assert_eq(p.calls, 2);
    /* Leaf gradients accumulate: 2w twice; the hook saw the running total. */
    cr_assert_float_eq(p.seen[1], 8, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* The failing hook is on h, so the sweep stops before h's producer: w never
 * gets a gradient. The message names the tensor and keeps the hook's own. */
Test(hooks, failing_hook_stops_backward_with_its_message)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *c = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){3, 3}, false);
    nb_tensor *h = nb_mul(tape, w, c);
    nb_tensor_set_name(h, "hidden");
    probe p = {.scale = 1.0, .status = NB_ERR_INVALID, .message = "set"};
    nb_tensor_set_hook(h, probe_hook, &p);
    int status = nb_backward(tape, nb_sum(tape, h), NULL);
    cr_assert_eq(status, NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(),
                     "backward: gradient hook on hidden [2] failed: backward: tape is NULL");
    cr_assert_null(w->grad, "the sweep went past the failing hook");
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* A hook that fails without a message gets one; an older message from
 * before the backward is not mistaken for the hook's. */
Test(hooks, failing_hook_without_message_gets_one)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    probe p = {.scale = 1.0, .status = NB_ERR_STATE};
    nb_tensor_set_hook(w, probe_hook, &p);
    nb_tensor *loss = nb_sum(tape, w);
    (void)nb_backward(NULL, NULL, NULL); /* leaves "backward: tape is NULL" behind */
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_ERR_STATE);
    cr_assert_str_eq(nb_last_error(), "backward: gradient hook on tensor [3] failed with status -5");
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(hooks, removing_a_hook)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    probe p = {.scale = 0.0};
    nb_tensor_set_hook(w, probe_hook, &p);
    nb_tensor_set_hook(w, NULL, NULL);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, w, w)), NULL), NB_OK);
    cr_assert_eq(p.calls, 0);
    assert_values(w->grad, (double[]){2, 4}, 2, 0); /* 2w, untouched */
    nb_tape_free(tape);
    nb_tensor_free(w);
}

/* ---- anomaly mode ----------------------------------------------------------- */

Test(anomaly, off_by_default)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){-1, 2}, true);
    nb_tensor *y = nb_log(tape, x);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    cr_assert(isnan(nb_tensor_get(y, 0)), "log(-1) is NaN");
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    cr_assert_null(nb_tape_error(tape));
    nb_tape_free(tape);
}

Test(anomaly, forward_nan_from_log_of_minus_one)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_anomaly_mode(tape, true);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){2, 3},
                               (double[]){1, 2, 3, 4, -1, 6}, true);
    nb_tensor *e = nb_exp(tape, x); /* finite: passes */
    cr_assert_not_null(e, "%s", nb_tape_error(tape));
    cr_assert_null(nb_log(tape, nb_neg(tape, x)), "log of [-1,-2,..,1,-6] has NaNs");
    assert_tape_error(tape, "anomaly: forward of log produced NaN or Inf (inputs [2,3])");
    cr_assert_null(nb_exp(tape, x), "the error is sticky");
    assert_tape_error(tape, "anomaly: forward of log");
    nb_tape_free(tape);
}

Test(anomaly, forward_inf_names_the_op_and_all_input_shapes)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_anomaly_mode(tape, true);
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){1, 2}, (double[]){1e30, 1}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, (double[]){1e30, 1}, false);
    cr_assert_null(nb_mul(tape, a, b), "1e60 overflows float32");
    assert_tape_error(tape, "anomaly: forward of mul produced NaN or Inf (inputs [1,2], [2])");
    nb_tape_free(tape);
}

/* y = 1 / h with h = w * 1 and w = [1e-30, 1] in float32: y = [1e30, 1] is
 * finite, but dy/dh = -1/h^2 = -1e60 overflows to -inf in div's backward.
 * The sweep stops there: mul's backward never runs, w gets no gradient. */
Test(anomaly, backward_inf_from_division_by_a_tiny_number)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_anomaly_mode(tape, true);
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){2}, (double[]){1e-30, 1});
    nb_tensor *one = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, (double[]){1, 1}, false);
    nb_tensor *y = nb_div(tape, one, nb_mul(tape, w, one));
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    cr_assert(nb_tensor_get(y, 0) < FLT_MAX, "forward stays finite");
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "anomaly: backward of div produced NaN or Inf (inputs [2], [2])");
    cr_assert_null(w->grad, "the sweep stopped at div");
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(anomaly, can_be_switched_off_again)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_anomaly_mode(tape, true);
    nb_tape_set_anomaly_mode(tape, false);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){1}, (double[]){-1}, false);
    cr_assert_not_null(nb_log(tape, x));
    cr_assert_null(nb_tape_error(tape));
    nb_tape_free(tape);
}
