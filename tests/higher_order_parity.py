#!/usr/bin/env python3
"""nabla's second-order results against PyTorch's in float64, to 1e-10
relative (of the largest magnitude): a Hessian-vector product of an MLP's
cross-entropy and the parameter gradient of a conv net trained with an
input-gradient penalty (torch.autograd.grad with create_graph=True). The
inputs are value(k) = scale * sin(0.37 k + offset) over each tensor's flat
index, as tests/higher_order_parity_driver.c makes them. Exits 77 (skipped)
without torch.

    tests/higher_order_parity.py DRIVER"""
import subprocess
import sys

import torch_or_skip  # tests/torch_or_skip.py, beside this script

torch_or_skip.require("higher_order_parity")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOLERANCE = 1e-10


def make(shape, scale, offset, requires_grad):
    n = 1
    for s in shape:
        n *= s
    k = torch.arange(n, dtype=torch.float64)
    t = (scale * torch.sin(0.37 * k + offset)).reshape(shape)
    return t.requires_grad_(requires_grad)


def labels(n, classes):
    return torch.tensor([(3 * i + 1) % classes for i in range(n)])


def hvp():
    x = make((6, 12), 1.0, 0.1, False)
    shapes = [(10, 12), (10,), (10, 10), (10,), (4, 10), (4,)]
    scales = [0.4, 0.1, 0.4, 0.1, 0.4, 0.1]
    p = [make(s, c, 0.2 + 0.1 * i, True) for i, (s, c) in enumerate(zip(shapes, scales))]
    v = [make(s, 1.0, 1.0 + i, False) for i, s in enumerate(shapes)]
    h = x
    for layer in range(3):
        h = F.linear(h, p[2 * layer], p[2 * layer + 1])
        if layer < 2:
            h = F.relu(h)
    loss = F.cross_entropy(h, labels(6, 4))
    g = torch.autograd.grad(loss, p, create_graph=True)
    hv = torch.autograd.grad(g, p, grad_outputs=v)
    return torch.cat([t.reshape(-1) for t in hv])


def penalty():
    x = make((4, 2, 6, 6), 1.0, 0.1, True)
    p = [make((3, 2, 3, 3), 0.4, 0.2, True), make((3,), 0.1, 0.3, True),
         make((5, 27), 0.3, 0.4, True), make((5,), 0.1, 0.5, True)]
    h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1], padding=1)), 2)
    logits = F.linear(h.reshape(4, 27), p[2], p[3])
    loss = F.cross_entropy(logits, labels(4, 5))
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    total = loss + 0.5 * 4.0 * (gx * gx).sum()
    grads = torch.autograd.grad(total, p)
    return torch.cat([t.reshape(-1) for t in grads])


def main():
    driver = sys.argv[1]
    failures = 0
    for name, reference in (("hvp", hvp), ("penalty", penalty)):
        run = subprocess.run([driver, name], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{name}: driver failed: {run.stderr.strip()}")
            failures += 1
            continue
        ours = torch.tensor([float(line) for line in run.stdout.split()], dtype=torch.float64)
        theirs = reference().detach()
        if ours.shape != theirs.shape:
            print(f"{name}: {ours.numel()} values, torch has {theirs.numel()}")
            failures += 1
            continue
        scale = theirs.abs().max().item()
        error = (ours - theirs).abs().max().item() / scale
        ok = error <= TOLERANCE
        failures += not ok
        print(f"{name}: {ours.numel()} values, max |nabla - torch| / max |torch| = {error:.2e} "
              f"(|torch| up to {scale:.3g}) {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failures else 0)


main()
