#!/usr/bin/env python3
"""PyTorch parity for nabla's nn layers (LSTM, GRU, MultiheadAttention,
LayerNorm, GroupNorm, Embedding, GELU, SiLU, ConvTranspose2d, Conv1d) in
float64: the driver
(tests/layer_parity_driver, argv[1]) saves a seeded layer's state_dict and
one forward/backward; this script loads the state into the same torch.nn
module by name (load_state_dict, strict), runs the same input and compares
the output and the gradients of the input and of every parameter.

Skips (exit 77) when torch cannot be imported.
Usage: layer_parity.py DRIVER"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch_or_skip  # tests/torch_or_skip.py, beside this script

torch_or_skip.require("layer_parity")
import torch  # noqa: E402

FORMATS = {"F32": ("f", torch.float32), "F64": ("d", torch.float64), "I32": ("i", torch.int32)}


def read(path):
    """A safetensors file as {name: tensor} (json + struct only)."""
    with open(path, "rb") as f:
        data = f.read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        code, dtype = FORMATS[entry["dtype"]]
        begin, end = entry["data_offsets"]
        raw = data[8 + size + begin:8 + size + end]
        values = struct.unpack("<%d%s" % (len(raw) // struct.calcsize(code), code), raw)
        out[name] = torch.tensor(values, dtype=dtype).reshape(entry["shape"])
    return out


def torch_layer(name):
    nn = torch.nn
    return {
        "lstm": lambda: nn.LSTM(5, 4, 2, batch_first=True),
        "gru": lambda: nn.GRU(5, 4, 2),
        "mha": lambda: nn.MultiheadAttention(8, 2, batch_first=True),
        "layer_norm": lambda: nn.LayerNorm((3, 4)),
        "group_norm": lambda: nn.GroupNorm(2, 4),
        "embedding": lambda: nn.Embedding(6, 3, padding_idx=1),
        "gelu": lambda: nn.GELU(approximate="tanh"),
        "silu": lambda: nn.SiLU(),
        "conv_transpose2d": lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                                       groups=2),
        "conv1d": lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
    }[name]().double()


def forward(name, layer, x):
    if name in ("lstm", "gru"):
        return layer(x)[0]
    if name == "mha":
        T = x.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        return layer(x, x, x, attn_mask=causal, need_weights=False)[0]
    return layer(x)


def close(label, got, want, failures):
    error = ((got - want).abs() / (1 + want.abs())).max().item() if want.numel() else 0.0
    if not error <= 1e-9:
        failures.append("%s: max relative error %.3g" % (label, error))


def main():
    driver, failures, names = sys.argv[1], [], ["lstm", "gru", "mha", "layer_norm", "group_norm",
                                                "embedding", "gelu", "silu", "conv_transpose2d",
                                                "conv1d"]
    for name in names:
        with tempfile.TemporaryDirectory() as directory:
            done = subprocess.run([driver, name, directory], capture_output=True, text=True)
            if done.returncode != 0:
                failures.append("%s: driver failed: %s" % (name, done.stderr.strip()))
                continue
            state = read(os.path.join(directory, "state.safetensors"))
            run = read(os.path.join(directory, "run.safetensors"))
        layer = torch_layer(name)
        layer.load_state_dict(state, strict=True)
        x = run["input"]
        x = x.long() if x.dtype == torch.int32 else x.clone().requires_grad_(True)
        y = forward(name, layer, x)
        close(name + " output", run["output"], y.detach(), failures)
        w = torch.tensor([math.sin(i) for i in range(y.numel())], dtype=torch.float64).reshape(y.shape)
        (y * w).sum().backward()
        if "input_grad" in run:
            close(name + " input grad", run["input_grad"], x.grad, failures)
        for pname, p in layer.named_parameters():
            close("%s grad %s" % (name, pname), run["grad." + pname], p.grad, failures)
    for line in failures:
        print("FAIL " + line)
    print("layer_parity: %d layers, %d failures" % (len(names), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
