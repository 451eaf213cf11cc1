"""Loss configurations for tests/torch_parity.py: every loss of nabla and
cosine_similarity, across every reduction and option (beta, delta,
log_target, margin, eps, class weights, ignore_index, label smoothing,
[C] / [N,C] / [N,C,d...] scores, weight and pos_weight), plus
configurations torch rejects. Each generator yields (header, inputs, fn,
extra) as the ones in torch_parity.py do; integer inputs are class labels
(the driver makes them int32), extra holds the weight tensors.
"""
import itertools
import warnings

import torch
import torch.nn.functional as F

# F.kl_div's note that its mean is not batchmean: both are checked on purpose.
warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")

REDUCTIONS = {0: "mean", 1: "sum", 2: "none", 3: "batchmean"}


def shape_of(rng, low_rank=0, high_rank=3):
    return tuple(rng.randint(1, 4) for _ in range(rng.randint(low_rank, high_rank)))


def pair_cases(rng, count):
    """mse, l1, smooth_l1, huber and kl_div: two equal-shape inputs."""
    for reduction in range(3):
        for repeat in range(2):
            shape = shape_of(rng)
            yield ("mse_loss %d" % reduction, [torch.randn(shape), torch.randn(shape)],
                   (lambda t, _, r=REDUCTIONS[reduction]: F.mse_loss(t[0], t[1], reduction=r)), ())
            x, target = torch.randn(shape), torch.randn(shape)
            if repeat:  # ties: the gradient is 0 where x == target
                target = torch.where(torch.rand(shape) < 0.4, x, target)
            yield ("l1_loss %d" % reduction, [x, target],
                   (lambda t, _, r=REDUCTIONS[reduction]: F.l1_loss(t[0], t[1], reduction=r)), ())
        for beta in (0.0, 0.5, 2.0, 1e-3):
            shape = shape_of(rng)
            yield ("smooth_l1_loss %d %r" % (reduction, beta), [torch.randn(shape) * 2, torch.randn(shape)],
                   (lambda t, _, r=REDUCTIONS[reduction], b=beta or 1.0:
                    F.smooth_l1_loss(t[0], t[1], reduction=r, beta=b)), ())
        for delta in (0.0, 0.5, 2.0):
            shape = shape_of(rng)
            yield ("huber_loss %d %r" % (reduction, delta), [torch.randn(shape) * 2, torch.randn(shape)],
                   (lambda t, _, r=REDUCTIONS[reduction], d=delta or 1.0:
                    F.huber_loss(t[0], t[1], reduction=r, delta=d)), ())
    for reduction, log_target, zeros in itertools.product(range(4), (0, 1), (0, 1)):
        shape = shape_of(rng, 1)
        x = F.log_softmax(torch.randn(shape), -1)
        if log_target:
            target = F.log_softmax(torch.randn(shape), -1)
        else:
            target = F.softmax(torch.randn(shape), -1)
            if zeros:  # t = 0: loss 0, the target's gradient NaN in both
                target = torch.where(torch.rand(shape) < 0.3, torch.zeros(shape), target)
        yield ("kl_div %d %d" % (reduction, log_target), [x, target],
               (lambda t, _, r=REDUCTIONS[reduction], lt=bool(log_target):
                F.kl_div(t[0], t[1], reduction=r, log_target=lt)), ())
    # Rejected by both: a reduction the loss does not have, shapes that differ.
    yield ("l1_loss 3", [torch.randn(3), torch.randn(3)],
           (lambda t, _: F.l1_loss(t[0], t[1], reduction="batchmean")), ())
    yield ("smooth_l1_loss 0 -1.0", [torch.randn(3), torch.randn(3)],
           (lambda t, _: F.smooth_l1_loss(t[0], t[1], beta=-1.0)), ())
    yield ("huber_loss 0 -2.0", [torch.randn(3), torch.randn(3)],
           (lambda t, _: F.huber_loss(t[0], t[1], delta=-2.0)), ())


def margin_cosine_cases(rng, count):
    """margin_ranking_loss (broadcasting among equal ranks) and
    cosine_similarity (broadcasting, dim, eps; tiny norms hit the clamp)."""
    for reduction, margin in itertools.product(range(3), (0.0, 0.5, -0.3, 1.0)):
        base = shape_of(rng, 1)
        shapes = [tuple(1 if rng.random() < 0.3 else d for d in base) for _ in range(3)]
        inputs = [torch.randn(shapes[0]), torch.randn(shapes[1]), torch.randn(shapes[2]).sign()]
        yield ("margin_ranking_loss %d %r" % (reduction, margin), inputs,
               (lambda t, _, r=REDUCTIONS[reduction], m=margin:
                F.margin_ranking_loss(t[0], t[1], t[2], margin=m, reduction=r)), ())
    yield ("margin_ranking_loss 0 0.0", [torch.randn(3, 4), torch.randn(4), torch.ones(3, 4)],
           (lambda t, _: F.margin_ranking_loss(t[0], t[1], t[2])), ())
    for eps, kind in itertools.product((0.0, 1e-6, 0.5), range(4)):
        a = shape_of(rng, 1)
        b = a if kind < 2 else tuple(1 if rng.random() < 0.4 else d for d in a[rng.randint(0, len(a) - 1):])
        if kind == 3:
            a, b = b, a
        x1, x2 = torch.randn(a), torch.randn(b)
        if kind == 1:
            x2 = x2 * 1e-9  # norms below eps: the clamp's gradient rule
        rank = max(len(a), len(b))
        dim = rng.randint(-rank, rank - 1)
        yield ("cosine_similarity %d %r" % (dim, eps), [x1, x2],
               (lambda t, _, d=dim, e=eps or 1e-8: F.cosine_similarity(t[0], t[1], d, e)), ())
    yield ("cosine_similarity 2 0.0", [torch.randn(2, 3), torch.randn(2, 3)],
           (lambda t, _: F.cosine_similarity(t[0], t[1], 2)), ())


def class_scores(rng, kind):
    """[C], [N,C], [N,C,d] or [N,C,d1,d2] scores and the label shape."""
    C = rng.randint(1, 5)
    N = rng.randint(1, 4)
    extra = [[], [], [rng.randint(1, 3)], [rng.randint(1, 3), rng.randint(1, 2)]][kind]
    if kind == 0:
        return (C,), ()
    return (N, C, *extra), (N, *extra)


def class_cases(rng, count):
    """cross_entropy and nll_loss: every reduction, weights or not, no /
    the default (-100) / a chosen ignore index, label smoothing."""
    combos = list(itertools.product(("cross_entropy", "nll_loss"), range(3), (0, 1), range(3),
                                    (0.0, 0.2, 1.0), (None,)))
    # The short forms' settings (mean, -100 labels) on every layout: [N,C] is
    # cross_entropy's row path.
    combos += [(name, 0, 0, 1, 0.0, kind) for name in ("cross_entropy", "nll_loss") for kind in range(4)]
    for index, (name, reduction, weighted, ignore_mode, smoothing, kind) in enumerate(combos):
        if name == "nll_loss" and smoothing:
            continue
        scores, label_shape = class_scores(rng, index % 4 if kind is None else kind)
        C = scores[0] if len(scores) == 1 else scores[1]
        x = torch.randn(scores) * 2
        if name == "nll_loss":
            x = F.log_softmax(x, 0 if len(scores) == 1 else 1)
        labels = torch.randint(0, C, label_shape)
        ignore = [-100, -100, rng.randint(-3, C)][ignore_mode]
        if ignore_mode:
            labels = torch.where(torch.rand(label_shape) < 0.3, torch.full(label_shape, ignore), labels)
        extra = (torch.rand(C) + 0.5,) if weighted else ()
        header = "%s %d %d %d %d %r" % (name, reduction, weighted, ignore_mode == 2, ignore, smoothing)

        def fn(t, e, n=name, r=REDUCTIONS[reduction], i=ignore, s=smoothing):
            w = e[0] if e else None
            if n == "nll_loss":
                return F.nll_loss(t[0], t[1], w, ignore_index=i, reduction=r)
            return F.cross_entropy(t[0], t[1], w, ignore_index=i, reduction=r, label_smoothing=s)
        yield header, [x, labels], fn, extra
    # Rejected by both: a label out of range, a weight of the wrong size,
    # label smoothing above 1.
    yield ("cross_entropy 0 0 0 0 0.0", [torch.randn(2, 3), torch.tensor([0, 3])],
           (lambda t, _: F.cross_entropy(t[0], t[1])), ())
    yield ("nll_loss 0 1 0 0 0.0", [torch.randn(2, 3), torch.tensor([0, 1])],
           (lambda t, e: F.nll_loss(t[0], t[1], e[0])), (torch.rand(4),))
    yield ("cross_entropy 0 0 0 0 1.5", [torch.randn(2, 3), torch.tensor([0, 1])],
           (lambda t, _: F.cross_entropy(t[0], t[1], label_smoothing=1.5)), ())


def suffix_shape(rng, shape):
    """A shape that broadcasts to `shape` without growing it."""
    tail = shape[rng.randint(0, len(shape)):]
    return tuple(1 if rng.random() < 0.3 else d for d in tail)


def bce_cases(rng, count):
    """binary_cross_entropy (weight; p at exactly 0 and 1) and
    binary_cross_entropy_with_logits (weight, pos_weight, large logits)."""
    for reduction, weighted, edges in itertools.product(range(3), (0, 1), (0, 1)):
        shape = shape_of(rng, 1)
        p = torch.rand(shape) * 0.96 + 0.02
        if edges:  # the log clamp at -100 and the target's infinite gradient
            p = torch.where(torch.rand(shape) < 0.3, torch.rand(shape).round(), p)
        extra = (torch.rand(suffix_shape(rng, shape)) + 0.5,) if weighted else ()
        yield ("binary_cross_entropy %d %d 0" % (reduction, weighted), [p, torch.rand(shape)],
               (lambda t, e, r=REDUCTIONS[reduction]:
                F.binary_cross_entropy(t[0], t[1], e[0] if e else None, reduction=r)), extra)
    for reduction, weighted, positive, large in itertools.product(range(3), (0, 1), (0, 1), (0, 1)):
        shape = shape_of(rng, 1)
        x = torch.randn(shape) * (40 if large else 3)
        extra = ((torch.rand(suffix_shape(rng, shape)) + 0.5,) if weighted else ()) + \
                ((torch.rand(shape[-1]) * 3 + 0.2,) if positive else ())
        header = "binary_cross_entropy_with_logits %d %d %d" % (reduction, weighted, positive)

        def fn(t, e, r=REDUCTIONS[reduction], w=weighted, pw=positive):
            return F.binary_cross_entropy_with_logits(t[0], t[1], e[0] if w else None, reduction=r,
                                                      pos_weight=e[-1] if pw else None)
        yield header, [x, torch.rand(shape)], fn, extra
    # Rejected by both: a weight that would grow the input's shape.
    yield ("binary_cross_entropy_with_logits 0 1 0", [torch.randn(2, 3), torch.rand(2, 3)],
           (lambda t, e: F.binary_cross_entropy_with_logits(t[0], t[1], e[0])), (torch.rand(4, 2, 3),))


GENERATORS = [("pair_loss", pair_cases), ("margin_cosine", margin_cosine_cases),
              ("class_loss", class_cases), ("bce", bce_cases)]
