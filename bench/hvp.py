#!/usr/bin/python3
"""Hessian-vector products against gradients, nabla and PyTorch in the same
run: the 784-500-500-10 ReLU MLP with cross-entropy, float32, batch 128.
A gradient is forward + backward; H v is forward, the gradient with
create_graph=True and the gradient of <gradient, v>. Rounds alternate
nabla-bench --hvp and a PyTorch child process at 1 and 2 threads each;
medians of the per-round medians are printed as a Markdown table.

    /usr/bin/python3 bench/hvp.py --nabla build/bench/nabla-bench [--rounds 3]"""
import argparse
import json
import os
import statistics
import subprocess
import sys

TORCH_CHILD = r"""
import json, sys, time, torch
import torch.nn.functional as F
threads, steps, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(1)
sizes = [784, 500, 500, 10]
p = []
for i in range(3):
    p += [torch.empty(sizes[i + 1], sizes[i]).uniform_(-0.04, 0.04).requires_grad_(),
          torch.empty(sizes[i + 1]).uniform_(-0.04, 0.04).requires_grad_()]
v = [torch.randn_like(t) for t in p]
x = torch.randn(batch, 784)
y = torch.arange(batch) % 10
def loss():
    h = x
    for i in range(3):
        h = F.linear(h, p[2 * i], p[2 * i + 1])
        if i < 2:
            h = F.relu(h)
    return F.cross_entropy(h, y)
def gradient():
    torch.autograd.grad(loss(), p)
def product():
    g = torch.autograd.grad(loss(), p, create_graph=True)
    torch.autograd.grad(g, p, grad_outputs=v)
times = {"gradient": [], "hvp": []}
for r in range(-2, steps):
    for name, fn in (("gradient", gradient), ("hvp", product)):
        start = time.perf_counter()
        fn()
        if r >= 0:
            times[name].append(time.perf_counter() - start)
med = lambda t: sorted(t)[len(t) // 2]
print(json.dumps({"gradient_ms": 1e3 * med(times["gradient"]), "hvp_ms": 1e3 * med(times["hvp"])}))
"""


def blas_env():
    env = dict(os.environ)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_CORETYPE"] = "Cooperlake"   # Debian's OpenBLAS 0.3.21 misdetects recent CPUs
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nabla", default="build/bench/nabla-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    results = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            run = subprocess.run([args.nabla, "--hvp", "--json", "--threads", str(threads),
                                  "--steps", str(args.steps), "--batch", str(args.batch)],
                                 capture_output=True, text=True, check=True)
            results.setdefault(("nabla", threads), []).append(json.loads(run.stdout))
            run = subprocess.run([sys.executable, "-c", TORCH_CHILD, str(threads), str(args.steps),
                                  str(args.batch)], capture_output=True, text=True, check=True,
                                 env=blas_env())
            results.setdefault(("torch", threads), []).append(json.loads(run.stdout))
    print(f"784-500-500-10 MLP, float32, batch {args.batch}, medians of {args.rounds} rounds "
          f"of {args.steps} steps\n")
    print("| engine | threads | gradient ms | H v ms | H v / gradient |")
    print("|---|---|---|---|---|")
    for (engine, threads), rows in sorted(results.items()):
        g = statistics.median(r["gradient_ms"] for r in rows)
        h = statistics.median(r["hvp_ms"] for r in rows)
        print(f"| {engine} | {threads} | {g:.3f} | {h:.3f} | {h / g:.2f}x |")


main()
