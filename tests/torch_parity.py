#!/usr/bin/env python3
"""PyTorch parity for nabla's ops: conv2d, max_pool2d, avg_pool2d,
batch_norm, dropout, cat, and the element-wise sqrt, rsqrt, abs, square,
sin, cos, pow (scalar and tensor exponents), maximum, minimum (ties
included), add_scalar, mul_scalar, clamp, and the activations sigmoid,
tanh, silu, logsigmoid, mish, elu, hardtanh, gelu (exact and tanh), and the
reductions logsumexp, amax, amin (ties included), the shape ops narrow,
select, slice, split, chunk, squeeze, unsqueeze, permute, expand, repeat,
stack, pad, the indexing ops index_select, gather, scatter_add and
embedding (index inputs carry no gradient), layer_norm, rms_norm,
group_norm and scaled_dot_product_attention; and, from
tests/torch_parity_reductions.py, argmax, argmin, max_dim, min_dim, var,
std, prod, norm, cumsum, sum_dims, mean_dims, where and softplus; and the
losses and cosine_similarity with all their options
(tests/torch_parity_losses.py); and conv_transpose2d, conv1d,
adaptive_avg_pool2d and interpolate (nearest and bilinear, align_corners,
sizes and scale factors).

For random configurations it runs tests/torch_parity_driver (argv[1]) in
float64 and float32 and compares the output, every input gradient (for a
random output seed) and batch-norm running statistics with torch in
float64. A configuration torch rejects must be rejected by nabla too. An
output without a gradient (argmax's indices) is compared as numbers, and an
input torch gives no gradient (where's condition) must get none or zeros.
NaN matches NaN and an infinity the same infinity.
Integer inputs are class labels: the driver makes them int32 and neither
side gives them a gradient.
Max-pool inputs are small integers half of the time, so ties are common
and the tie rule (first maximum in row-major window order) is compared.
Dropout cannot share torch's random stream, so its training output is
checked for structure (0 or x / (1-p), gradient on the same mask).

Skips (exit 77, which meson reports as SKIP) when torch cannot be imported
by python3 or /usr/bin/python3.
Usage: torch_parity.py DRIVER [CASES_PER_OP]
"""
import random
import subprocess
import sys

import torch_or_skip  # tests/torch_or_skip.py, beside this script

torch_or_skip.require("torch_parity")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_parity_reductions  # noqa: E402  (needs torch, imported above)
import torch_parity_shapes  # noqa: E402
import torch_parity_losses  # noqa: E402 (after torch is known to import)
import torch_parity_conv  # noqa: E402

torch.set_default_dtype(torch.float64)
TOLERANCE = {"f64": 1e-9, "f32": 2e-4}


def tensor_text(t):
    flat = t.detach().reshape(-1).tolist()
    return " ".join([str(t.dim())] + [str(s) for s in t.shape] + [repr(float(v)) for v in flat])


def run_driver(driver, dtype, header, inputs, extra, seed):
    lines = ["dtype %s" % dtype, "op " + header]
    index_inputs = sum(1 << i for i, t in enumerate(inputs) if not t.is_floating_point())
    if index_inputs:
        lines.append("index_inputs %d" % index_inputs)
    lines.append("inputs %d" % len(inputs))
    lines += [tensor_text(t) for t in inputs + extra + [seed]]
    done = subprocess.run([driver], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if done.returncode == 2:
        return {"error": done.stdout.strip()}
    if done.returncode != 0:
        raise RuntimeError("driver failed (%d): %s" % (done.returncode, done.stderr))
    result = {}
    for line in done.stdout.splitlines():
        words = line.split()
        if words[0] == "grad":
            key, rest = "grad %s" % words[1], words[2:]
        else:
            key, rest = words[0], words[1:]
        if rest == ["none"]:
            result[key] = None
            continue
        ndim = int(rest[0])
        shape = [int(v) for v in rest[1:1 + ndim]]
        values = [float(v) for v in rest[1 + ndim:]]
        result[key] = torch.tensor(values).reshape(shape)
    return result


def close(name, got, want, tolerance, failures):
    if got is None or tuple(got.shape) != tuple(want.shape):
        failures.append("%s: shape %s vs torch %s" % (name, None if got is None else tuple(got.shape),
                                                       tuple(want.shape)))
        return
    want = want.double()
    same = (got == want) | (got.isnan() & want.isnan())
    error = torch.where(same, torch.zeros_like(got), (got - want).abs() / (1 + want.abs()))
    error = error.max().item() if want.numel() else 0.0
    if not error <= tolerance:
        failures.append("%s: max relative error %.3g > %.1g" % (name, error, tolerance))


def check(driver, label, header, inputs, torch_fn, extra=(), failures=None, structure=None):
    """Runs torch_fn(*clones) in float64 and the driver in both dtypes."""
    leaves = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
    extra_torch = [t.clone() for t in extra]
    try:
        y = torch_fn(leaves, extra_torch)
    except (RuntimeError, ValueError, IndexError) as error:
        check.rejected += 1
        for dtype in ("f64", "f32"):
            got = run_driver(driver, dtype, header, list(inputs), list(extra), torch.zeros(1))
            if "error" not in got:
                failures.append("%s [%s]: torch rejects (%s) but nabla accepts" %
                                (label, dtype, str(error).splitlines()[0]))
        return
    seed = torch.randn(y.shape) if y.requires_grad else torch.zeros(y.shape)
    if y.requires_grad:
        y.backward(seed)
    for dtype in ("f64", "f32"):
        got = run_driver(driver, dtype, header, list(inputs), list(extra), seed)
        if "error" in got:
            failures.append("%s [%s]: nabla rejects a config torch accepts: %s" % (label, dtype, got["error"]))
            continue
        tolerance = TOLERANCE[dtype]
        before = len(failures)
        if structure:
            structure(got, inputs, seed, failures, label + " [%s]" % dtype)
        else:
            close(label + " [%s] output" % dtype, got["output"], y.detach(), tolerance, failures)
            for i, leaf in enumerate(leaves):
                if not leaf.is_floating_point():   # int labels: no gradient either side
                    continue
                name, grad = label + " [%s] grad %d" % (dtype, i), got["grad %d" % i]
                if leaf.grad is not None:
                    close(name, grad, leaf.grad, tolerance, failures)
                elif grad is not None and grad.abs().max().item() != 0:
                    failures.append("%s: torch gives no gradient, nabla a nonzero one" % name)
        for i, name in enumerate(("running_mean", "running_var")):
            if header.startswith("batch_norm") and len(extra_torch) == 2:
                close(label + " [%s] %s" % (dtype, name), got[name], extra_torch[i], tolerance, failures)
        if len(failures) > before:
            failures.append("    config: " + header)


check.rejected = 0


def conv2d_cases(rng, count):
    for _ in range(count):
        groups = rng.choice([1, 1, 2, 3])
        C, K = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        kh, kw = rng.randint(1, 4), rng.randint(1, 4)
        stride = [rng.randint(1, 3), rng.randint(1, 3)]
        pad = [rng.randint(0, 2), rng.randint(0, 2)]
        dil = [rng.randint(1, 2), rng.randint(1, 2)]
        span = [dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1]
        H = max(1, span[0] - 2 * pad[0] + rng.randint(-1, 5))   # -1: sometimes too small
        W = max(1, span[1] - 2 * pad[1] + rng.randint(0, 5))
        N, bias = rng.randint(1, 3), rng.random() < 0.7
        inputs = [torch.randn(N, C, H, W), torch.randn(K, C // groups, kh, kw)]
        if bias:
            inputs.append(torch.randn(K))
        header = "conv2d %d %d %d %d %d %d %d %d" % (*stride, *pad, *dil, groups, bias)

        def fn(t, _, s=stride, p=pad, d=dil, g=groups):
            return F.conv2d(t[0], t[1], t[2] if len(t) == 3 else None, s, p, d, g)
        yield header, inputs, fn, ()


def pool_input(rng, N, C, H, W, ties):
    if ties:
        return torch.randint(0, 4, (N, C, H, W)).double()
    values = torch.randperm(N * C * H * W).double() * 0.1
    return values.reshape(N, C, H, W)


def has_empty_window(size, kernel, stride, pad, dilation, ceil):
    """Whether some window of a valid config holds no real cell: torch then
    records an argmax outside the input and its backward writes out of
    bounds (nabla outputs -inf and routes no gradient), so such configs are
    left out."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil else 0)
    out = span // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return any(all(not 0 <= o * stride - pad + i * dilation < size for i in range(kernel))
               for o in range(max(out, 0)))


def max_pool_cases(rng, count):
    for index in range(count):
        while True:
            k = [rng.randint(1, 4), rng.randint(1, 4)]
            stride = [rng.randint(0, 3), rng.randint(0, 3)]
            pad = [rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2)]
            dil = [rng.randint(1, 2), rng.randint(1, 2)]
            ceil = rng.random() < 0.5
            H, W = rng.randint(1, 9), rng.randint(1, 9)
            if not any(has_empty_window((H, W)[a], k[a], stride[a] or k[a], pad[a], dil[a], ceil)
                       for a in range(2)):
                break
        x = pool_input(rng, rng.randint(1, 2), rng.randint(1, 2), H, W, index % 2 == 1)
        header = "max_pool2d %d %d %d %d %d %d %d %d %d" % (*k, *stride, *pad, *dil, ceil)

        def fn(t, _, k=k, s=stride, p=pad, d=dil, c=ceil):
            return F.max_pool2d(t[0], k, [s[a] or k[a] for a in range(2)], p, d, c)
        yield header, [x], fn, ()


def avg_pool_cases(rng, count):
    for _ in range(count):
        k = [rng.randint(1, 4), rng.randint(1, 4)]
        stride = [rng.randint(0, 3), rng.randint(0, 3)]
        pad = [rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2)]
        ceil, include = rng.random() < 0.5, rng.random() < 0.5
        override = rng.choice([0, 0, 0, rng.randint(1, 5)])
        x = torch.randn(rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 9), rng.randint(1, 9))
        header = "avg_pool2d %d %d %d %d %d %d %d %d %d" % (*k, *stride, *pad, ceil, include, override)

        def fn(t, _, k=k, s=stride, p=pad, c=ceil, i=include, o=override):
            return F.avg_pool2d(t[0], k, [s[a] or k[a] for a in range(2)], p, c, i, o or None)
        yield header, [x], fn, ()


def batch_norm_cases(rng, count):
    for _ in range(count):
        rank = rng.choice([2, 3, 4])
        shape = [rng.randint(1, 4), rng.randint(1, 3)] + [rng.randint(1, 3) for _ in range(rank - 2)]
        training, affine = rng.random() < 0.6, rng.random() < 0.7
        running = (not training) or rng.random() < 0.6
        # A zero momentum or eps is nabla's zeroed field: PyTorch's default.
        momentum, eps = rng.choice([0.1, 0.3, 1.0, 0.0]), rng.choice([1e-5, 1e-3, 0.1, 0.0])
        C = shape[1]
        inputs = [torch.randn(*shape) * 2 + 0.5]
        if affine:
            inputs += [torch.rand(C) + 0.5, torch.randn(C)]
        extra = (torch.randn(C) * 0.3, torch.rand(C) + 0.5) if running else ()
        header = "batch_norm %d %r %r %d %d" % (training, momentum, eps, affine, running)

        def fn(t, e, tr=training, m=momentum or 0.1, ep=eps or 1e-5, a=affine):
            rm, rv = (e[0], e[1]) if e else (None, None)
            return F.batch_norm(t[0], rm, rv, t[1] if a else None, t[2] if a else None, tr, m, ep)
        yield header, inputs, fn, extra


def cat_cases(rng, count):
    for _ in range(count):
        rank, n = rng.randint(1, 4), rng.randint(1, 4)
        base = [rng.randint(1, 3) for _ in range(rank)]
        dim = rng.randint(-rank, rank - 1)
        inputs = []
        for _ in range(n):
            shape = list(base)
            shape[dim] = rng.randint(1, 3)
            inputs.append(torch.randn(*shape))
        yield "cat %d" % dim, inputs, (lambda t, _, d=dim: torch.cat(t, d)), ()


# Element-wise math: inputs drawn where each function is smooth (sqrt and
# rsqrt on positive numbers, abs away from its kink at 0).
UNARY = {
    "sqrt": (torch.sqrt, 0.1, 3.0), "rsqrt": (torch.rsqrt, 0.2, 3.0),
    "abs": (torch.abs, -3.0, 3.0), "square": (torch.square, -3.0, 3.0),
    "sin": (torch.sin, -4.0, 4.0), "cos": (torch.cos, -4.0, 4.0),
    "silu": (F.silu, -5.0, 5.0), "logsigmoid": (F.logsigmoid, -30.0, 30.0),
    "mish": (F.mish, -5.0, 25.0), "sigmoid": (torch.sigmoid, -20.0, 20.0),
    "tanh": (torch.tanh, -10.0, 10.0),
}


def unary_cases(rng, count):
    for index in range(count):
        name = sorted(UNARY)[index % len(UNARY)]
        fn, low, high = UNARY[name]
        shape = [rng.randint(1, 4) for _ in range(rng.randint(0, 3))]
        x = torch.rand(tuple(shape)) * (high - low) + low
        if name == "abs":
            x = torch.where(x.abs() < 0.1, torch.full_like(x, 0.5), x)
        yield name, [x], (lambda t, _, f=fn: f(t[0])), ()


def random_shape(rng):
    return tuple(rng.randint(1, 4) for _ in range(rng.randint(0, 3)))


def broadcast_pair(rng):
    """Two shapes that broadcast: b drops leading dims and sets some to 1."""
    a = random_shape(rng)
    b = [1 if rng.random() < 0.3 else d for d in a[rng.randint(0, len(a)):]]
    return (a, tuple(b)) if rng.random() < 0.5 else (tuple(b), a)


def scalar_math_cases(rng, count):
    for index in range(count):
        kind = index % 7
        if kind == 0:
            c = rng.uniform(-3, 3)
            yield "add_scalar %r" % c, [torch.randn(random_shape(rng))], (lambda t, _, c=c: t[0] + c), ()
        elif kind == 1:
            c = rng.uniform(-3, 3)
            yield "mul_scalar %r" % c, [torch.randn(random_shape(rng))], (lambda t, _, c=c: t[0] * c), ()
        elif kind == 2:
            e = rng.choice([2.0, 3.0, 0.5, -1.5, 0.0, 1.0])
            x = torch.rand(random_shape(rng)) * 1.5 + 0.5
            yield "pow_scalar %r" % e, [x], (lambda t, _, e=e: torch.pow(t[0], e)), ()
        elif kind == 3:
            sa, sb = broadcast_pair(rng)
            a, b = torch.rand(sa) * 1.5 + 0.5, torch.rand(sb) * 4 - 2
            yield "pow", [a, b], (lambda t, _: torch.pow(t[0], t[1])), ()
        elif kind in (4, 5):
            sa, sb = broadcast_pair(rng)
            # Small integers half of the time, so ties (gradient split) are common.
            if rng.random() < 0.5:
                a, b = torch.randint(-2, 3, sa).double(), torch.randint(-2, 3, sb).double()
            else:
                a, b = torch.randn(sa), torch.randn(sb)
            name = "maximum" if kind == 4 else "minimum"
            fn = torch.maximum if kind == 4 else torch.minimum
            yield name, [a, b], (lambda t, _, f=fn: f(t[0], t[1])), ()
        else:
            has_min, has_max = rng.choice([(1, 1), (1, 0), (0, 1)])
            low, high = rng.uniform(-1, 0), rng.uniform(0, 1)
            x = torch.randn(random_shape(rng))
            x = torch.where(((x - low).abs() < 0.01) | ((x - high).abs() < 0.01), x + 0.05, x)
            header = "clamp %d %r %d %r" % (has_min, low, has_max, high)
            fn = (lambda t, _, lo=low if has_min else None, hi=high if has_max else None:
                  torch.clamp(t[0], lo, hi))
            yield header, [x], fn, ()


def activation_cases(rng, count):
    """The activations with settings: elu's alpha, hardtanh's bounds (inputs
    kept off them: the gradient there is a kink) and gelu's two forms."""
    for index in range(count):
        x = torch.randn(random_shape(rng)) * 2
        kind = index % 3
        if kind == 0:
            alpha = rng.choice([1.0, 0.5, 2.0])
            yield "elu %r" % alpha, [x], (lambda t, _, a=alpha: F.elu(t[0], a)), ()
        elif kind == 1:
            low, high = rng.uniform(-2, 0), rng.uniform(0, 2)
            x = torch.where(((x - low).abs() < 0.01) | ((x - high).abs() < 0.01), x + 0.05, x)
            yield ("hardtanh %r %r" % (low, high), [x],
                   (lambda t, _, lo=low, hi=high: F.hardtanh(t[0], lo, hi)), ())
        else:
            form = rng.choice([0, 1])
            yield ("gelu %d" % form, [x],
                   (lambda t, _, f=form: F.gelu(t[0], approximate="tanh" if f else "none")), ())


def reduction_cases(rng, count):
    """logsumexp, amax and amin over one dim or (amax, amin) every element;
    small integers half of the time so ties (an even split) are common."""
    for index in range(count):
        shape = tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 3)))
        dim = rng.randint(-len(shape), len(shape) - 1)
        keepdim = rng.randint(0, 1)
        if index % 3 == 0:
            x = torch.randn(shape) * 3
            yield ("logsumexp %d %d" % (dim, keepdim), [x],
                   (lambda t, _, d=dim, k=keepdim: torch.logsumexp(t[0], d, bool(k))), ())
            continue
        name = "amax" if index % 3 == 1 else "amin"
        fn = torch.amax if name == "amax" else torch.amin
        x = torch.randint(-2, 3, shape).double() if rng.random() < 0.5 else torch.randn(shape)
        every = rng.random() < 0.25
        yield ("%s %d %d %d" % (name, dim, keepdim, every), [x],
               (lambda t, _, f=fn, d=dim, k=keepdim, e=every:
                f(t[0]) if e else f(t[0], d, bool(k))), ())


def dropout_structure(p, training):
    def structure(got, inputs, seed, failures, label):
        x, y, grad = inputs[0].reshape(-1), got["output"].reshape(-1), got["grad 0"].reshape(-1)
        scale = 1.0 / (1.0 - p) if p < 1 else 0.0
        for i in range(x.numel()):
            kept = (not training) or p == 0 or (p < 1 and y[i].item() != 0)
            want_y = x[i].item() * (scale if training and p > 0 else 1.0) if kept else 0.0
            want_grad = seed.reshape(-1)[i].item() * (scale if training and p > 0 else 1.0) if kept else 0.0
            if abs(y[i].item() - want_y) > 1e-4 * (1 + abs(want_y)) or \
               abs(grad[i].item() - want_grad) > 1e-4 * (1 + abs(want_grad)):
                failures.append("%s: element %d: y %g grad %g, expected %g %g" %
                                (label, i, y[i].item(), grad[i].item(), want_y, want_grad))
                return
    return structure


def main():
    if len(sys.argv) < 2:
        print("usage: torch_parity.py DRIVER [CASES_PER_OP]")
        return 2
    driver, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    rng = random.Random(20240611)
    torch.manual_seed(20240611)
    passed, failed = 0, 0
    generators = [("conv2d", conv2d_cases), ("max_pool2d", max_pool_cases),
                  ("avg_pool2d", avg_pool_cases), ("batch_norm", batch_norm_cases), ("cat", cat_cases),
                  ("unary", unary_cases), ("scalar_math", scalar_math_cases),
                  ("activation", activation_cases), ("reduction", reduction_cases)]
    generators += torch_parity_shapes.GENERATORS
    generators += torch_parity_reductions.GENERATORS
    generators += torch_parity_losses.GENERATORS
    generators += torch_parity_conv.GENERATORS
    for name, generator in generators:
        for index, (header, inputs, fn, extra) in enumerate(generator(rng, count)):
            failures = []
            check(driver, "%s #%d" % (name, index), header, inputs, fn, extra, failures)
            passed, failed = passed + (not failures), failed + bool(failures)
            for line in failures:
                print("FAIL " + line)
    for p, training in [(0.3, True), (0.5, True), (0.0, True), (0.5, False), (1.0, True)]:
        failures = []
        x = torch.randn(5, 7)
        header = "dropout %r %d %d" % (p, training, rng.randint(0, 1000))
        check(driver, "dropout p=%g" % p, header, [x], lambda t, _: t[0] * 1.0, (), failures,
              dropout_structure(p, training))
        passed, failed = passed + (not failures), failed + bool(failures)
        for line in failures:
            print("FAIL " + line)
    print("torch %s: %d configurations, %d of them rejected by both" %
          (torch.__version__, passed + failed, check.rejected))
    print("torch_parity: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
