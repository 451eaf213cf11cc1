#!/usr/bin/python3
"""Runs nabla-bench, PyTorch (if importable) and NumPy's OpenBLAS (if
importable) on the same workloads, alternating them round by round, and
prints the medians and their ratios as a Markdown table.

    /usr/bin/python3 bench/compare.py --nabla build/bench/nabla-bench [--rounds 3]
    /usr/bin/python3 bench/compare.py --only-ops        # the fused ops alone
    /usr/bin/python3 bench/compare.py --only-lm         # the language models alone

Workloads (the same models as bench/models.c, real Fashion-MNIST batches):
training steps (batch 64: loader batch -> forward -> cross-entropy ->
backward -> optimizer step) and inference (batch 256, no grad) for lenet5,
convnet and mlp; square SGEMM (nabla vs numpy.dot); and one training step
(forward + backward of sum(y)) of each fused op of bench/ops.c at the same
language-model shapes (nabla-bench --op NAME): attention as PyTorch 1.13
writes it without a fused kernel (softmax(q k^T / sqrt(D) + causal mask) v),
F.layer_norm with weight and bias, F.gelu(approximate="tanh") and
torch._VF.lstm_cell with h' + c' summed; for those, torch gets as many
BLAS threads as intra-op threads; and training steps of the character-level
language models (nabla-bench --model gpt|lstm against bench/charlm.py
--bench: the same spec, real batches of the fortunes text, tokens/s).

Each PyTorch and NumPy measurement runs in its own process with OpenBLAS's
AVX-512 kernel forced (OPENBLAS_CORETYPE=Cooperlake, OPENBLAS_L2_SIZE
unset: Debian's 0.3.21 misdetects this CPU) and one BLAS thread for torch;
torch.set_num_threads is tried at 1 and 2 and the best is reported. Those
variables are set for these child processes only."""
import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time

DATA = "/usr/share/datasets/fashion-mnist"
OPS = "attention_t128,attention_t512,layer_norm,gelu,lstm_cell"
LM_MODELS = "gpt,lstm"
CHARLM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "charlm.py")
OP_SECONDS = 0.5   # as bench/ops.c
MEAN, STD = 0.2860, 0.3530
WARMUP = 10


def blas_env(threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_CORETYPE"] = "Cooperlake"
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


# ---- workers (run in child processes) ---------------------------------------
def load_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def torch_model(name):
    import torch.nn as nn
    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    if name == "convnet":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 12 * 12, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                         nn.ReLU(), nn.Linear(256, 10))


def torch_worker(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = "train" if args.only == "train" else "t10k"
    images = torch.from_numpy(load_idx(f"{args.data}/{split}-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(load_idx(f"{args.data}/{split}-labels-idx1-ubyte.gz").astype("int64"))
    model = torch_model(args.model)
    batch = args.batch if args.only == "train" else 256
    if args.only == "train":
        opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if args.model == "convnet" else
               torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    order = torch.randperm(len(images))
    position = [0]

    def next_batch():
        if position[0] + batch > len(order):
            order.copy_(torch.randperm(len(images)))
            position[0] = 0
        index = order[position[0]:position[0] + batch]
        position[0] += batch
        x = (images[index].unsqueeze(1).float() / 255.0 - MEAN) / STD
        return x, labels[index]

    def train_step():
        x, y = next_batch()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            x, _ = next_batch()
            model(x)

    step = train_step if args.only == "train" else infer_step
    model.train(args.only == "train")
    for _ in range(WARMUP):
        step()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"bench": args.only, "model": args.model, "threads": args.threads,
                      "batch": batch, "images_per_s": batch * args.steps / seconds,
                      "ms_per_step": 1e3 * seconds / args.steps,
                      "cpu_ms_per_step": 1e3 * cpu / args.steps,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# The fused ops of bench/ops.c, the same shapes (uniform(-1, 1) inputs
# that require grad). Each builds its inputs and returns the step's output.
def torch_op_cases():
    import math
    import torch
    import torch.nn.functional as F

    def attention(B, heads, T, D):
        def make():
            q, k, v = (torch.rand(B, heads, T, D) * 2 - 1 for _ in range(3))
            mask = torch.ones(T, T, dtype=torch.bool).triu(1)
            return [q, k, v], mask

        def run(t, mask):
            scores = t[0] @ t[1].transpose(-2, -1) * (1.0 / math.sqrt(D))
            return F.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ t[2]
        return make, run

    def uniform(*shapes):
        return lambda: ([torch.rand(*s) * 2 - 1 for s in shapes], None)

    return {
        "attention_t128": attention(32, 4, 128, 32),
        "attention_t512": attention(8, 4, 512, 32),
        "layer_norm": (uniform((4096, 128), (128,), (128,)),
                       lambda t, _: F.layer_norm(t[0], (128,), t[1], t[2])),
        "gelu": (uniform((4096, 512)), lambda t, _: F.gelu(t[0], approximate="tanh")),
        "lstm_cell": (uniform((32, 64), (32, 256), (32, 256), (1024, 64), (1024, 256), (1024,), (1024,)),
                      lambda t, _: sum(torch._VF.lstm_cell(t[0], (t[1], t[2]), t[3], t[4], t[5], t[6]))),
    }


def torch_ops_worker(args):
    """One training step of each op, timed as nabla-bench --op times it:
    one untimed step, then steps until OP_SECONDS have passed."""
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(5)
    cases = torch_op_cases()
    for name in args.op_names.split(","):
        make, run = cases[name]
        inputs, extra = make()
        for t in inputs:
            t.requires_grad_(True)
        run(inputs, extra).sum().backward()
        reps, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while reps == 0 or time.perf_counter() - start < OP_SECONDS:
            run(inputs, extra).sum().backward()
            reps += 1
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        print(json.dumps({"bench": "op", "op": name, "threads": args.threads,
                          "us": 1e6 * seconds / reps, "cpu_us": 1e6 * cpu / reps}), flush=True)


def openblas_corename():
    import ctypes
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "not OpenBLAS"


def numpy_worker(args):
    import numpy as np
    n = args.gemm
    rng = np.random.default_rng(1)
    a = rng.random((n, n), dtype=np.float32) - 0.5
    b = rng.random((n, n), dtype=np.float32) - 0.5
    np.dot(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.3 or reps < 3:
        np.dot(a, b)
        reps += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": "gemm", "n": n, "threads": args.threads,
                      "gflops": 2 * n ** 3 * reps / seconds * 1e-9,
                      "openblas_core": openblas_corename()}))


# ---- the driver ---------------------------------------------------------------
def run_json_lines(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:
        sys.stderr.write(f"failed: {' '.join(command)}\n{result.stderr}\n")
        return []
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def run_json(command, env=None):
    lines = run_json_lines(command, env)
    return lines[-1] if lines else None


def have(module):
    check = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return check.returncode == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nabla", default="build/bench/nabla-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="lenet5,convnet,mlp")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--gemm-sizes", default="256,512,1024")
    parser.add_argument("--ops", default=OPS, help="fused ops of nabla-bench --op ('' for none)")
    parser.add_argument("--lm-models", default=LM_MODELS,
                        help="language models of bench/charlm.py ('' for none)")
    parser.add_argument("--only-ops", action="store_true",
                        help="no models, no SGEMM, no language models")
    parser.add_argument("--only-lm", action="store_true", help="the language models alone")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--worker", choices=["torch", "numpy", "torch-ops"])
    parser.add_argument("--op-names", default=OPS)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--only", default="train")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--gemm", type=int, default=0)
    args = parser.parse_args()
    args.threads_list = [int(t) for t in args.threads.split(",")]
    if args.worker:
        args.threads = args.threads_list[0]
        workers = {"torch": torch_worker, "numpy": numpy_worker, "torch-ops": torch_ops_worker}
        return workers[args.worker](args)
    if args.only_ops:
        args.models, args.gemm_sizes, args.lm_models = "", "", ""
    if args.only_lm:
        args.models, args.gemm_sizes, args.ops = "", "", ""
    args.model_list = [m for m in args.models.split(",") if m]
    args.op_list = [o for o in args.ops.split(",") if o]
    args.lm_list = [m for m in args.lm_models.split(",") if m]

    use_torch, use_numpy = have("torch"), have("numpy")
    steps = {"lenet5": 200, "convnet": 40, "mlp": 200}
    jobs = []  # (key, implementation, command, env)
    for model in args.model_list:
        for only in ("train", "infer"):
            s = steps[model] if only == "train" else steps[model] // 2
            for t in args.threads_list:
                key = (only, model, t)
                jobs.append((key, "nabla", [args.nabla, "--model", model, "--threads", str(t),
                                            "--only", only, "--steps", str(s), "--data", args.data,
                                            "--json"], None))
                if use_torch:
                    jobs.append((key, "torch", [sys.executable, __file__, "--worker", "torch",
                                                "--model", model, "--only", only, "--threads",
                                                str(t), "--steps", str(s), "--data", args.data],
                                 blas_env(1)))
    for n in (int(x) for x in args.gemm_sizes.split(",") if x):
        for t in args.threads_list:
            key = ("gemm", n, t)
            jobs.append((key, "nabla", [args.nabla, "--gemm", str(n), "--threads", str(t), "--json"], None))
            if use_numpy:
                jobs.append((key, "numpy", [sys.executable, __file__, "--worker", "numpy", "--gemm",
                                            str(n), "--threads", str(t)], blas_env(t)))
    # Every op in one process per thread count (torch is imported once).
    for t in args.threads_list if args.op_list else []:
        key = ("ops", t)
        names = ",".join(args.op_list)
        jobs.append((key, "nabla", [args.nabla, "--op", "all", "--threads", str(t), "--json"], None))
        if use_torch:
            jobs.append((key, "torch", [sys.executable, __file__, "--worker", "torch-ops", "--op-names",
                                        names, "--threads", str(t)], blas_env(t)))
    for model in args.lm_list:
        for t in args.threads_list:
            key = ("lm", model, t)
            jobs.append((key, "nabla", [args.nabla, "--model", model, "--threads", str(t), "--json"],
                         None))
            if use_torch:
                jobs.append((key, "torch", [sys.executable, CHARLM, "--bench", "--model", model,
                                            "--threads", str(t)], blas_env(1)))
    results = {}
    for round_index in range(args.rounds):
        # Alternate which implementation goes first, so neither always runs
        # right after the other on a warm (or busy) machine.
        ordered = jobs if round_index % 2 == 0 else [
            j for pair in zip(jobs[1::2], jobs[0::2]) for j in pair] + (jobs[-1:] if len(jobs) % 2 else [])
        for key, impl, command, env in ordered:
            if key[0] == "ops":   # one line per op
                for out in run_json_lines(command, env):
                    if out.get("op") in args.op_list:
                        results.setdefault((("op", out["op"], key[1]), impl), []).append(out)
                continue
            out = run_json(command, env)
            if out:
                results.setdefault((key, impl), []).append(out)
        sys.stderr.write(f"round {round_index + 1}/{args.rounds} done\n")
    report(results, args, use_torch, use_numpy)


def median_of(results, key, impl, field):
    runs = results.get((key, impl))
    return statistics.median(r[field] for r in runs) if runs else None


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results, args, use_torch, use_numpy):
    print(f"nabla vs PyTorch {'(torch found)' if use_torch else '(torch not importable)'}, "
          f"medians of {args.rounds} alternating rounds. images/s and tokens/s are wall-clock "
          f"throughput; CPU ms/step is the process CPU time (all threads) per step, which other "
          f"load on the machine disturbs less (with 2 threads it includes time spent spinning)\n")
    if args.model_list:
        report_models(results, args)
    if args.op_list:
        report_ops(results, args)
    if args.lm_list:
        report_lm(results, args)
    report_gemm(results, args)


def report_ops(results, args):
    print("\nFused ops, one training step (forward + backward of sum(y)) at bench/ops.c's "
          "shapes; torch/nabla > 1 means nabla is faster\n")
    print("| op | threads | nabla CPU ms | torch CPU ms | torch/nabla CPU | nabla wall ms "
          "| torch wall ms | torch/nabla wall |")
    print("|---|---|---|---|---|---|---|---|")
    for op in args.op_list:
        for t in args.threads_list:
            key = ("op", op, t)
            cpu, torch_cpu = (median_of(results, key, impl, "cpu_us") for impl in ("nabla", "torch"))
            wall, torch_wall = (median_of(results, key, impl, "us") for impl in ("nabla", "torch"))
            cpu_ratio = torch_cpu / cpu if cpu and torch_cpu else None
            wall_ratio = torch_wall / wall if wall and torch_wall else None
            ms = [None if v is None else v / 1e3 for v in (cpu, torch_cpu, wall, torch_wall)]
            print(f"| {op} | {t} | {fmt(ms[0], 2)} | {fmt(ms[1], 2)} | {fmt(cpu_ratio, 2)} "
                  f"| {fmt(ms[2], 2)} | {fmt(ms[3], 2)} | {fmt(wall_ratio, 2)} |")


def report_lm(results, args):
    print("\nCharacter-level language models, training steps (bench/charlm.py's spec: "
          "gpt T=128, lstm T=64, batch 32); nabla/torch > 1 means nabla is faster\n")
    print("| model | threads | nabla tokens/s | torch tokens/s | nabla/torch | nabla CPU ms/step "
          "| torch CPU ms/step | nabla RSS MiB | torch RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    best = {}
    for model in args.lm_list:
        for t in args.threads_list:
            key = ("lm", model, t)
            ours, theirs = (median_of(results, key, impl, "tokens_per_s") for impl in ("nabla", "torch"))
            cpu, torch_cpu = (median_of(results, key, impl, "cpu_ms_per_step")
                              for impl in ("nabla", "torch"))
            rss, torch_rss = (median_of(results, key, impl, "peak_rss_mb") for impl in ("nabla", "torch"))
            ratio = ours / theirs if ours and theirs else None
            print(f"| {model} | {t} | {fmt(ours)} | {fmt(theirs)} | {fmt(ratio, 2)} "
                  f"| {fmt(cpu, 1)} | {fmt(torch_cpu, 1)} | {fmt(rss, 1)} | {fmt(torch_rss, 1)} |")
            for impl, value in (("nabla", ours), ("torch", theirs)):
                if value and value > best.get((model, impl), (0, 0))[0]:
                    best[(model, impl)] = (value, t)
    print("\nBest thread count of each (in brackets):\n")
    print("| model | nabla best tokens/s | torch best tokens/s | nabla/torch |")
    print("|---|---|---|---|")
    for model in args.lm_list:
        ours, theirs = best.get((model, "nabla")), best.get((model, "torch"))
        ratio = ours[0] / theirs[0] if ours and theirs else None
        print(f"| {model} | {fmt(ours and ours[0])} [{ours and ours[1]}] | "
              f"{fmt(theirs and theirs[0])} [{theirs and theirs[1]}] | {fmt(ratio, 2)} |")


def report_models(results, args):
    print("| workload | threads | nabla images/s | torch images/s | nabla/torch | nabla CPU ms/step "
          "| torch CPU ms/step | torch/nabla CPU | nabla RSS MiB | torch RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = {}
    for model in args.model_list:
        for only in ("train", "infer"):
            for t in args.threads_list:
                key = (only, model, t)
                ours = median_of(results, key, "nabla", "images_per_s")
                theirs = median_of(results, key, "torch", "images_per_s")
                rss = median_of(results, key, "nabla", "peak_rss_mb")
                torch_rss = median_of(results, key, "torch", "peak_rss_mb")
                ratio = ours / theirs if ours and theirs else None
                cpu = median_of(results, key, "nabla", "cpu_ms_per_step")
                torch_cpu = median_of(results, key, "torch", "cpu_ms_per_step")
                cpu_ratio = torch_cpu / cpu if cpu and torch_cpu else None
                print(f"| {only} {model} | {t} | {fmt(ours)} | {fmt(theirs)} | {fmt(ratio, 2)} "
                      f"| {fmt(cpu, 2)} | {fmt(torch_cpu, 2)} | {fmt(cpu_ratio, 2)} "
                      f"| {fmt(rss, 1)} | {fmt(torch_rss, 1)} |")
                for impl, value in (("nabla", ours), ("torch", theirs)):
                    if value and value > best.get((only, model, impl), (0, 0))[0]:
                        best[(only, model, impl)] = (value, t)
    print("\nBest configuration of each (threads in brackets):\n")
    print("| workload | nabla best | torch best | ratio |")
    print("|---|---|---|---|")
    for model in args.model_list:
        for only in ("train", "infer"):
            ours, theirs = best.get((only, model, "nabla")), best.get((only, model, "torch"))
            ratio = ours[0] / theirs[0] if ours and theirs else None
            print(f"| {only} {model} | {fmt(ours and ours[0])} [{ours and ours[1]}] | "
                  f"{fmt(theirs and theirs[0])} [{theirs and theirs[1]}] | {fmt(ratio, 2)} |")


def report_gemm(results, args):
    sizes = [int(x) for x in args.gemm_sizes.split(",") if x]
    if sizes:
        core = next((r[0].get("openblas_core") for k, r in results.items() if k[1] == "numpy"), None)
        print(f"\nSGEMM GFLOP/s, nabla vs numpy.dot (OpenBLAS kernel: {core or '-'})\n")
        print("| n | threads | nabla | numpy | nabla/numpy |")
        print("|---|---|---|---|---|")
        for n in sizes:
            for t in args.threads_list:
                ours = median_of(results, ("gemm", n, t), "nabla", "gflops")
                theirs = median_of(results, ("gemm", n, t), "numpy", "gflops")
                ratio = ours / theirs if ours and theirs else None
                print(f"| {n} | {t} | {fmt(ours, 1)} | {fmt(theirs, 1)} | {fmt(ratio, 2)} |")


if __name__ == "__main__":
    main()
