"""PyTorch parity configurations for argmax, argmin, max_dim, min_dim, var,
std, prod, norm, cumsum, sum_dims, mean_dims, where and softplus; the
generators tests/torch_parity.py runs. Each yields (driver header, inputs,
torch function, extra tensors), as the generators there do.

Small integers half of the time give ties (argmax and max_dim take the
first extreme) and equal values (std 0); NaN sometimes for the first-NaN
rule; var and std see corrections with N - correction <= 0 (torch's nan
and inf) over a dim. Lists of dims and where's three shapes are sometimes
invalid, so torch's rejections are compared too."""
import torch
import torch.nn.functional as F


def random_shape(rng, min_rank=0):
    return tuple(rng.randint(1, 4) for _ in range(rng.randint(min_rank, 3)))


def values(rng, shape, nan=False):
    """Small integers (ties) or normal values; a NaN somewhere when asked."""
    x = torch.randint(-2, 3, shape).double() if rng.random() < 0.5 else torch.randn(shape)
    if nan and x.numel():
        x.view(-1)[rng.randrange(x.numel())] = float("nan")
    return x


def reduce_args(rng, shape):
    """dim, keepdim, and whether to reduce every element (then keepdim is 0:
    nabla's _all forms give a scalar)."""
    rank = max(len(shape), 1)
    every = rng.random() < 0.25
    return rng.randint(-rank, rank - 1), 0 if every else rng.randint(0, 1), every


def index_cases(rng, count):
    """argmax, argmin (int32 indices, no gradient), max_dim, min_dim."""
    for index in range(count):
        name = ("argmax", "argmin", "max_dim", "min_dim")[index % 4]
        shape = random_shape(rng)
        x = values(rng, shape, nan=rng.random() < 0.2)
        dim, keepdim, every = reduce_args(rng, shape)
        if name.startswith("arg"):
            fn = torch.argmax if name == "argmax" else torch.argmin
            yield ("%s %d %d %d" % (name, dim, keepdim, every), [x],
                   (lambda t, _, f=fn, d=dim, k=keepdim, e=every:
                    f(t[0]) if e else f(t[0], d, bool(k))), ())
        else:
            fn = torch.max if name == "max_dim" else torch.min
            yield ("%s %d %d" % (name, dim, keepdim), [x],
                   (lambda t, _, f=fn, d=dim, k=keepdim: f(t[0], d, bool(k)).values), ())


def moment_cases(rng, count):
    """var and std over a dim or every element, correction 0 to 3."""
    for index in range(count):
        name = "var" if index % 2 == 0 else "std"
        shape = random_shape(rng)
        x = values(rng, shape)
        dim, keepdim, every = reduce_args(rng, shape)
        correction = rng.choice([0, 1, 1, 2, 3])
        # torch 1.13 fails its own backward over every element of a non-0-dim
        # x when N == correction, so those are left out.
        if every and len(shape) > 0 and x.numel() == correction:
            correction -= 1
        fn = torch.var if name == "var" else torch.std
        yield ("%s %d %d %d %d" % (name, dim, correction, keepdim, every), [x],
               (lambda t, _, f=fn, d=dim, c=correction, k=keepdim, e=every:
                f(t[0], None, correction=c) if e else f(t[0], d, correction=c, keepdim=bool(k))), ())


def product_cases(rng, count):
    """prod (zeros placed at random), norm (a zero row sometimes), cumsum."""
    for index in range(count):
        kind = index % 3
        shape = random_shape(rng)
        x = torch.randn(shape)
        dim, keepdim, every = reduce_args(rng, shape)
        if kind == 0:
            for _ in range(rng.choice([0, 0, 1, 2])):
                x.view(-1)[rng.randrange(x.numel())] = 0.0
            yield ("prod %d %d %d" % (dim, keepdim, every), [x],
                   (lambda t, _, d=dim, k=keepdim, e=every:
                    torch.prod(t[0]) if e else torch.prod(t[0], d, bool(k))), ())
        elif kind == 1:
            if rng.random() < 0.3:
                x = x * (torch.rand(shape) < 0.5)
            yield ("norm %d %d %d" % (dim, keepdim, every), [x],
                   (lambda t, _, d=dim, k=keepdim, e=every:
                    torch.linalg.vector_norm(t[0], 2, None if e else d, bool(k))), ())
        else:
            yield "cumsum %d" % dim, [x], (lambda t, _, d=dim: torch.cumsum(t[0], d)), ()


def dims_cases(rng, count):
    """sum_dims and mean_dims: distinct dims, none, or (sometimes) a repeat or
    one out of range; now and then a dim of size 0."""
    for index in range(count):
        name = "sum_dims" if index % 2 == 0 else "mean_dims"
        shape = list(random_shape(rng))
        if shape and rng.random() < 0.1:
            shape[rng.randrange(len(shape))] = 0
        rank = max(len(shape), 1)
        dims = [d - rank if rng.random() < 0.5 else d
                for d in rng.sample(range(rank), rng.randint(0, rank))]
        if dims and rng.random() < 0.15:
            dims.append(dims[0] - rank if dims[0] >= 0 else dims[0] + rank)   # a repeat
        elif rng.random() < 0.1:
            dims.append(rank)                                                  # out of range
        keepdim = rng.randint(0, 1)
        fn = torch.sum if name == "sum_dims" else torch.mean
        header = "%s %d %d %s" % (name, keepdim, len(dims), " ".join(str(d) for d in dims))
        yield (header, [torch.randn(tuple(shape))],
               (lambda t, _, f=fn, ds=tuple(dims), k=keepdim: f(t[0], list(ds), bool(k))), ())


def where_cases(rng, count):
    """Three shapes that broadcast (each drops leading dims and sets some to
    1), and sometimes one that does not."""
    for _ in range(count):
        full = random_shape(rng, 1)
        shapes = [tuple(1 if rng.random() < 0.3 else d for d in full[rng.randint(0, len(full)):])
                  for _ in range(3)]
        if rng.random() < 0.1:
            shapes[rng.randrange(3)] = tuple(d + 1 for d in full)
        condition = (torch.rand(shapes[0]) < 0.5).double()
        inputs = [condition, torch.randn(shapes[1]), torch.randn(shapes[2])]
        yield "where", inputs, (lambda t, _: torch.where(t[0] != 0, t[1], t[2])), ()


def softplus_cases(rng, count):
    """beta and threshold (0: PyTorch's defaults), inputs on both sides of the
    threshold but not within 0.05 of it (the function jumps there)."""
    for _ in range(count):
        beta, threshold = rng.choice([0.0, 1.0, 2.0, 0.5, -1.0]), rng.choice([0.0, 20.0, 5.0, 3.0])
        b, th = beta or 1.0, threshold or 20.0
        x = torch.randn(random_shape(rng)) * rng.choice([3.0, 12.0])
        x = torch.where((x * b - th).abs() < 0.05, x + 0.1 / abs(b), x)
        yield ("softplus %r %r" % (beta, threshold), [x],
               (lambda t, _, b=b, th=th: F.softplus(t[0], b, th)), ())


GENERATORS = [("index", index_cases), ("moment", moment_cases), ("product", product_cases),
              ("dims", dims_cases), ("where", where_cases), ("softplus", softplus_cases)]
