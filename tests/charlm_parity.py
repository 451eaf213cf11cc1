#!/usr/bin/env python3
"""The charlm models against the same models written with PyTorch's nn
modules (bench/charlm.py): examples/charlm trains a few steps on a text,
saves its weights and prints the validation loss over the first windows;
the weights load into the PyTorch model by their state_dict names (strict),
and PyTorch's loss over the same windows (its own loader, split and window
code) must agree to float32 precision. Exits 77 (skipped) without torch.

    tests/charlm_parity.py CHARLM BENCH_CHARLM_PY TEXT_DIR

Runs under python3, or under Debian's /usr/bin/python3 when only that one
has torch (as tests/torch_parity.py)."""
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch_or_skip  # tests/torch_or_skip.py, beside this script

torch_or_skip.require("charlm_parity", ("numpy", "torch"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

WINDOWS, BATCH, STEPS = 8, 4, 3
DTYPES = {"F32": np.float32, "F64": np.float64}


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    data = raw[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def main():
    charlm, script, text_dir = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("charlm_reference", script)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    failures = 0
    for model_name in ("gpt", "lstm"):
        with tempfile.TemporaryDirectory() as scratch:
            weights = os.path.join(scratch, "model.safetensors")
            run = subprocess.run([charlm, "--model", model_name, "--steps", str(STEPS), "--batch",
                                  str(BATCH), "--val-windows", str(WINDOWS), "--sample", "0",
                                  "--threads", "1", "--save", weights, "--data", text_dir],
                                 capture_output=True, text=True, timeout=300)
            if run.returncode != 0:
                print(f"FAIL {model_name}: charlm exited {run.returncode}: {run.stderr}")
                failures += 1
                continue
            nabla_loss = float(run.stdout.strip().splitlines()[-1].split(":")[1])
            state = load_safetensors(weights)
        seq = reference.CONFIGS[model_name]["seq"]
        model = reference.build_model(model_name, seq)
        model.load_state_dict(state, strict=True)
        _, val = reference.split_text(reference.load_text(text_dir))
        windows = reference.validation_windows(val, seq)[:WINDOWS]
        torch_loss = reference.validation_loss(model, windows, BATCH)
        error = abs(torch_loss - nabla_loss) / abs(torch_loss)
        # nabla prints 4 decimals: half a unit of the last digit, relative.
        ok = error <= 0.5e-4 / abs(torch_loss) + 1e-5
        print(f"{'ok  ' if ok else 'FAIL'} {model_name}: nabla {nabla_loss:.4f}, torch {torch_loss:.6f} "
              f"({len(state)} tensors loaded by name)")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
