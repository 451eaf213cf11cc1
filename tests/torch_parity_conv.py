"""PyTorch parity configurations for conv_transpose2d, conv1d,
adaptive_avg_pool2d and interpolate (nearest and bilinear, align_corners,
sizes and scale factors); the generators tests/torch_parity.py runs. Each
yields (driver header, inputs, torch function, extra tensors)."""
import torch
import torch.nn.functional as F


def conv_transpose2d_cases(rng, count):
    """Random stride, padding, output_padding (below stride or dilation, or
    at the limit, which both must refuse), dilation, groups and odd sizes;
    zeros in the header stand for PyTorch's defaults."""
    for _ in range(count):
        groups = rng.choice([1, 1, 2, 3])
        C, K = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        kh, kw = rng.randint(1, 4), rng.randint(1, 4)
        stride = [rng.randint(1, 3), rng.randint(1, 3)]
        pad = [rng.randint(0, 2), rng.randint(0, 2)]
        dil = [rng.randint(1, 2), rng.randint(1, 2)]
        limit = [max(stride[a], dil[a]) for a in range(2)]
        out_pad = [limit[a] if rng.random() < 0.05 else rng.randint(0, limit[a] - 1) for a in range(2)]
        N, H, W = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
        bias = rng.random() < 0.7
        inputs = [torch.randn(N, C, H, W), torch.randn(C, K // groups, kh, kw)]
        if bias:
            inputs.append(torch.randn(K))
        zero = rng.random() < 0.3   # defaults spelled as zeros

        def written(v):
            return 0 if zero and v == 1 else v
        header = "conv_transpose2d %d %d %d %d %d %d %d %d %d %d" % (
            written(stride[0]), written(stride[1]), *pad, *out_pad, written(dil[0]),
            written(dil[1]), written(groups), bias)

        def fn(t, _, s=stride, p=pad, o=out_pad, d=dil, g=groups):
            return F.conv_transpose2d(t[0], t[1], t[2] if len(t) == 3 else None, s, p, o, g, d)
        yield header, inputs, fn, ()


def conv1d_cases(rng, count):
    for _ in range(count):
        groups = rng.choice([1, 1, 2, 3])
        C, K = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        k, stride, pad, dil = rng.randint(1, 5), rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 3)
        L = max(1, dil * (k - 1) + 1 - 2 * pad + rng.randint(-1, 6))   # -1: sometimes too short
        N, bias = rng.randint(1, 3), rng.random() < 0.7
        inputs = [torch.randn(N, C, L), torch.randn(K, C // groups, k)]
        if bias:
            inputs.append(torch.randn(K))
        header = "conv1d %d %d %d %d %d" % (stride, pad, dil, groups, bias)

        def fn(t, _, s=stride, p=pad, d=dil, g=groups):
            return F.conv1d(t[0], t[1], t[2] if len(t) == 3 else None, s, p, d, g)
        yield header, inputs, fn, ()


def adaptive_avg_pool_cases(rng, count):
    """Output sizes that divide the input, that do not (overlapping
    windows) and larger than it; [C,H,W] inputs too. (An empty output is
    left to tests/test_conv_family.c: torch 1.13's backward refuses it.)"""
    for _ in range(count):
        H, W = rng.randint(1, 9), rng.randint(1, 9)
        shape = ([rng.randint(1, 2)] if rng.random() < 0.7 else []) + [rng.randint(1, 3), H, W]
        out = [rng.choice([1, 2, 3, 4, 5, 7, 10, H, W]) for _ in range(2)]
        yield ("adaptive_avg_pool2d %d %d" % tuple(out), [torch.randn(shape)],
               (lambda t, _, o=tuple(out): F.adaptive_avg_pool2d(t[0], o)), ())


def interpolate_cases(rng, count):
    """nearest and bilinear (align_corners both ways; with nearest both
    must refuse it), by size or by scale factor (PyTorch's 1/scale_factor
    for the source position), up and down, odd sizes. nearest keeps to
    what torch 1.13 computes consistently: at least 2 channels (a tensor
    that is also channels-last takes another forward), and no scale factor
    other than 1 or 2 whose output size is the input's or twice it (its
    backward then copies or halves indices while its forward does not)."""
    factors = [0.5, 0.6, 1.0, 1.2, 1.5, 1.7, 2.0, 2.5, 3.0, 1.0 / 3.0, 0.75]

    def inconsistent(sizes, scale):
        return any(int(n * f) in (n, 2 * n) and f not in (1.0, 2.0) for n, f in zip(sizes, scale))
    for _ in range(count):
        bilinear = rng.random() < 0.5
        H, W = rng.randint(1, 7), rng.randint(1, 7)
        x = torch.randn(rng.randint(1, 2), rng.randint(1 if bilinear else 2, 3), H, W)
        align = rng.random() < 0.5 if bilinear else rng.random() < 0.08
        if rng.random() < 0.5:
            size, scale = [rng.randint(1, 9), rng.randint(1, 9)], None
        else:
            size, scale = None, None
            while scale is None or (not bilinear and inconsistent((H, W), scale)):
                scale = [rng.choice(factors) if rng.random() < 0.7 else
                         round(rng.uniform(0.3, 3.2), 3) for _ in range(2)]
        header = "interpolate %d %d %r %r %d %d" % (
            *(size or [0, 0]), *(scale or [0.0, 0.0]), bilinear, align)

        def fn(t, _, z=size, s=scale, b=bilinear, a=align):
            return F.interpolate(t[0], size=z, scale_factor=s, mode="bilinear" if b else "nearest",
                                 align_corners=a if (b or a) else None)
        yield header, [x], fn, ()


GENERATORS = [("conv_transpose2d", conv_transpose2d_cases), ("conv1d", conv1d_cases),
              ("adaptive_avg_pool2d", adaptive_avg_pool_cases), ("interpolate", interpolate_cases)]
