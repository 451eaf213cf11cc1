"""PyTorch parity configurations for the shape and indexing ops (narrow,
select, slice, split, chunk, squeeze, unsqueeze, permute, expand, repeat,
stack, pad, index_select, gather, scatter_add, embedding), the norms
(layer_norm, rms_norm, group_norm), scaled_dot_product_attention and
the recurrent cells lstm_cell and gru_cell, the lstm layer; the
generators tests/torch_parity.py runs. Each yields (driver header, inputs,
torch function, extra tensors), as the generators there do."""
import torch
import torch.nn.functional as F


def shape_cases(rng, count):
    """The slicing and shape ops: narrow, select, slice (Python's clamping,
    steps), split and chunk (joined again), squeeze, unsqueeze, permute,
    expand, repeat, stack, pad (crops too); some configurations are out of
    range, and both must refuse them."""
    for index in range(count):
        shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 4))]
        x = torch.randn(shape)
        nd = len(shape)
        dim = rng.randint(-nd, nd - 1)
        size = shape[dim]
        kind = index % 13
        if kind == 0:
            start, length = rng.randint(-size, size), rng.randint(0, size)
            yield ("narrow 3 %d %d %d" % (dim, start, length), [x],
                   (lambda t, _, d=dim, a=start, n=length: t[0].narrow(d, a, n)), ())
        elif kind == 1:
            at = rng.randint(-size - 1, size)
            yield "select 2 %d %d" % (dim, at), [x], (lambda t, _, d=dim, i=at: t[0].select(d, i)), ()
        elif kind == 2:
            start, end, step = rng.randint(-5, 5), rng.randint(-5, 6), rng.randint(1, 3)
            index_tuple = [slice(None)] * nd
            index_tuple[dim] = slice(start, end, step)
            yield ("slice 4 %d %d %d %d" % (dim, start, end, step), [x],
                   (lambda t, _, i=tuple(index_tuple): t[0][i]), ())
        elif kind == 3:
            piece = rng.randint(1, 3)
            yield ("split 2 %d %d" % (piece, dim), [x],
                   (lambda t, _, p=piece, d=dim: torch.cat(torch.split(t[0], p, d), d)), ())
        elif kind == 4:
            chunks = rng.randint(1, 4)
            yield ("chunk 2 %d %d" % (chunks, dim), [x],
                   (lambda t, _, c=chunks, d=dim: torch.cat(torch.chunk(t[0], c, d), d)), ())
        elif kind == 5:
            x = torch.randn([rng.choice([1, 2]) for _ in range(nd)])
            if rng.random() < 0.3:
                yield "squeeze_all 0", [x], (lambda t, _: t[0].squeeze()), ()
            else:
                yield "squeeze 1 %d" % dim, [x], (lambda t, _, d=dim: t[0].squeeze(d)), ()
        elif kind == 6:
            at = rng.randint(-nd - 2, nd + 1)
            yield "unsqueeze 1 %d" % at, [x], (lambda t, _, d=at: t[0].unsqueeze(d)), ()
        elif kind == 7:
            order = list(range(nd))
            rng.shuffle(order)
            order = [d - nd if rng.random() < 0.3 else d for d in order]
            yield ("permute %d %s" % (nd, " ".join(map(str, order))), [x],
                   (lambda t, _, o=tuple(order): t[0].permute(o)), ())
        elif kind == 8:
            x = torch.randn([rng.choice([1, 1, 3]) for _ in range(nd)])
            sizes = [rng.randint(1, 3)] * rng.randint(0, 1) + [
                rng.choice([-1, 2, 3]) if s == 1 else rng.choice([-1, s]) for s in x.shape]
            yield ("expand %d %s" % (len(sizes), " ".join(map(str, sizes))), [x],
                   (lambda t, _, z=tuple(sizes): t[0].expand(z)), ())
        elif kind == 9:
            times = [rng.randint(1, 3) for _ in range(nd + rng.randint(0, 1))]
            yield ("repeat %d %s" % (len(times), " ".join(map(str, times))), [x],
                   (lambda t, _, z=tuple(times): t[0].repeat(*z)), ())
        elif kind == 10:
            n = rng.randint(1, 3)
            at = rng.randint(-nd - 1, nd)
            yield ("stack 1 %d" % at, [torch.randn(shape) for _ in range(n)],
                   (lambda t, _, d=at: torch.stack(t, d)), ())
        else:
            count_pads = 4 if nd >= 2 and rng.random() < 0.6 else 2
            pads = [rng.randint(-1, 2) for _ in range(count_pads)]
            value = rng.choice([0.0, 1.5])
            yield ("pad %d %s %r" % (count_pads, " ".join(map(str, pads)), value), [x],
                   (lambda t, _, p=tuple(pads), v=value: F.pad(t[0], p, value=v)), ())


def index_cases(rng, count):
    """index_select, gather, scatter_add (repeated indices sum) and
    embedding (padding_idx rows get no gradient); some indices are out of
    range, and both must refuse them."""
    for index in range(count):
        shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
        nd = len(shape)
        dim = rng.randint(-nd, nd - 1)
        size = shape[dim]
        bad = rng.random() < 0.1
        kind = index % 4
        if kind == 0:
            idx = torch.randint(0, size + bad, (rng.randint(1, 5),)).double()
            yield ("index_select 1 %d" % dim, [torch.randn(shape), idx],
                   (lambda t, _, d=dim: torch.index_select(t[0], d, t[1].long())), ())
        elif kind == 1:
            ishape = [rng.randint(1, s) if i != dim % nd else rng.randint(1, 4)
                      for i, s in enumerate(shape)]
            idx = torch.randint(0, size + bad, ishape).double()
            yield ("gather 1 %d" % dim, [torch.randn(shape), idx],
                   (lambda t, _, d=dim: torch.gather(t[0], d, t[1].long())), ())
        elif kind == 2:
            ishape = [rng.randint(1, s) if i != dim % nd else rng.randint(1, 4)
                      for i, s in enumerate(shape)]
            # src the index's shape: torch 1.13 cannot differentiate a larger src.
            src = torch.randn(ishape)
            idx = torch.randint(0, size + bad, ishape).double()
            yield ("scatter_add 1 %d" % dim, [torch.randn(shape), idx, src],
                   (lambda t, _, d=dim: torch.scatter_add(t[0], d, t[1].long(), t[2])), ())
        else:
            V, D = rng.randint(1, 5), rng.randint(1, 4)
            idx = torch.randint(0, V + bad, shape).double()
            has_pad = rng.random() < 0.5
            pad = rng.randint(-V, V - 1)
            yield ("embedding 2 %d %d" % (has_pad, pad), [idx, torch.randn(V, D)],
                   (lambda t, _, h=has_pad, p=pad:
                    F.embedding(t[0].long(), t[1], padding_idx=p if h else None)), ())


def norm_cases(rng, count):
    """layer_norm (normalized_shape over 1-3 trailing dims, weight and/or
    bias), rms_norm (PyTorch 2.4's formula, written out: 1.13 has no
    F.rms_norm) and group_norm, with default and given eps."""
    for index in range(count):
        kind = index % 3
        # 0 is the default eps; rms_norm's is the dtype's epsilon, which a
        # float64 reference cannot give the float32 run, so it gets a number.
        eps = rng.choice([0.0, 1e-3] if kind != 1 else [1e-6, 1e-3])
        if kind == 2:
            groups = rng.randint(1, 3)
            shape = [rng.randint(1, 3), groups * rng.randint(1, 3)] + \
                [rng.randint(1, 4) for _ in range(rng.randint(0, 2))]
            if rng.random() < 0.1:
                groups += 1   # sometimes does not divide C: both refuse
            affine = rng.random() < 0.7
            x = torch.randn(shape) * 2 + 1
            extra = [torch.rand(shape[1]) + 0.5, torch.randn(shape[1])] if affine else []
            yield ("group_norm 1 %d %r" % (groups, eps), [x] + extra,
                   (lambda t, _, g=groups, e=eps or 1e-5:
                    F.group_norm(t[0], g, *(t[1:3] if len(t) == 3 else (None, None)), eps=e)), ())
            continue
        shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 4))]
        norm_ndim = rng.randint(1, len(shape))
        normalized = shape[len(shape) - norm_ndim:]
        affine = rng.randint(0, 3) if kind == 0 else rng.randint(0, 1)
        x = torch.randn(shape) * 2 + 1
        extra = ([torch.rand(normalized) + 0.5] if affine & 1 else []) + \
            ([torch.randn(normalized)] if affine & 2 else [])
        header = "%s %d %d %s %r" % ("layer_norm" if kind == 0 else "rms_norm", norm_ndim + 1, affine,
                                     " ".join(map(str, normalized)), eps)
        if kind == 0:
            def fn(t, _, a=affine, z=tuple(normalized), e=eps or 1e-5):
                weight = t[1] if a & 1 else None
                bias = t[-1] if a & 2 else None
                return F.layer_norm(t[0], z, weight, bias, e)
        else:
            def fn(t, _, a=affine, k=norm_ndim, e=eps or torch.finfo(torch.float64).eps):
                dims = tuple(range(-k, 0))
                y = t[0] * torch.rsqrt(t[0].pow(2).mean(dims, keepdim=True) + e)
                return y * t[1] if a & 1 else y
        yield header, [x] + extra, fn, ()


def attention_reference(q, k, v, mask, causal, scale):
    """PyTorch 2.x's F.scaled_dot_product_attention, written out (1.13 has
    none): softmax(scale q k^T + mask, top-left causal) v."""
    scores = q @ k.transpose(-1, -2) * (scale or 1 / q.shape[-1] ** 0.5)
    if mask is not None:
        scores = scores + mask
    if causal:
        T, S = scores.shape[-2:]
        hidden = torch.ones(T, S, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    return torch.softmax(scores, -1) @ v


def attention_cases(rng, count):
    """scaled_dot_product_attention: 2-4 dims, T != S, causal or not, masks
    of every broadcast shape (with gradients), default and given scale,
    sizes across the float32 path's key tiles (64) and query blocks (32)."""
    for index in range(count):
        lead = [rng.randint(1, 3) for _ in range(rng.randint(0, 2))]
        big = index % 5 == 4
        T = rng.randint(1, 80 if big else 6)
        S = T if rng.random() < 0.5 else rng.randint(1, 140 if big else 7)
        D, Dv = rng.randint(1, 9), rng.randint(1, 9)
        causal = rng.random() < 0.5
        scale = rng.choice([0.0, 0.5])
        inputs = [torch.randn(lead + [T, D]), torch.randn(lead + [S, D]), torch.randn(lead + [S, Dv])]
        if rng.random() < 0.4:
            full = lead + [T, S]
            mshape = [s if rng.random() < 0.6 else 1 for s in full][rng.randint(0, len(lead)):]
            inputs.append(torch.randn(mshape))
        if rng.random() < 0.05:
            inputs[2] = torch.randn(lead + [S + 1, Dv])   # v does not fit: both refuse
        header = "scaled_dot_product_attention 2 %d %d %r" % (causal, len(inputs) > 3, scale)
        yield (header, inputs,
               (lambda t, _, c=causal, s=scale:
                attention_reference(t[0], t[1], t[2], t[3] if len(t) > 3 else None, c, s)), ())


def cell_cases(rng, count):
    """lstm_cell (h' and c' stacked) and gru_cell, with and without biases,
    against torch's own cells (torch._VF, what nn.LSTMCell runs)."""
    for index in range(count):
        B, I, H = rng.randint(1, 4), rng.randint(1, 5), rng.randint(1, 6)
        bias = rng.random() < 0.7
        gates = 4 if index % 2 == 0 else 3
        weights = [torch.randn(gates * H, I) * 0.5, torch.randn(gates * H, H) * 0.5]
        biases = [torch.randn(gates * H) * 0.5, torch.randn(gates * H) * 0.5] if bias else []
        if rng.random() < 0.05:
            weights[1] = torch.randn(gates * H, H + 1)   # does not fit: both refuse
        if gates == 4:
            inputs = [torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)] + weights + biases
            yield ("lstm_cell 0", inputs,
                   lambda t, _: torch.stack(torch._VF.lstm_cell(t[0], (t[1], t[2]), *t[3:5],
                                                                *(t[5:7] or [None, None]))), ())
        else:
            inputs = [torch.randn(B, I), torch.randn(B, H)] + weights + biases
            yield ("gru_cell 0", inputs,
                   lambda t, _: torch._VF.gru_cell(t[0], t[1], *t[2:4], *(t[4:6] or [None, None])), ())


def lstm_cases(rng, count):
    """lstm: one layer over a sequence (batch first, zero initial state),
    against torch._VF.lstm, what nn.LSTM runs."""
    for _ in range(count):
        B, T, I, H = rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 5)
        bias = rng.random() < 0.7
        inputs = [torch.randn(B, T, I), torch.randn(4 * H, I) * 0.5, torch.randn(4 * H, H) * 0.5]
        if bias:
            inputs += [torch.randn(4 * H) * 0.5, torch.randn(4 * H) * 0.5]
        if rng.random() < 0.05:
            inputs[1] = torch.randn(4 * H, I + 1)   # does not fit x: both refuse

        def run(t, _, b=bias):
            zeros = torch.zeros(1, t[0].shape[0], t[2].shape[1], dtype=t[0].dtype)
            return torch._VF.lstm(t[0], (zeros, zeros), list(t[1:]), b, 1, 0.0, False, False, True)[0]
        yield ("lstm 0", inputs, run, ())


GENERATORS = [("shape", shape_cases), ("index", index_cases), ("norm", norm_cases),
              ("attention", attention_cases), ("cell", cell_cases), ("lstm", lstm_cases)]
