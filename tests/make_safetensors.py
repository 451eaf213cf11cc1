#!/usr/bin/env python3
"""Writes a safetensors file using only json and struct, for the interop
test in test_safetensors.c: nabla must load what an independent writer
makes. The layout is valid but deliberately unlike nabla's own: keys are
unsorted, the data is stored in a different order than the header lists
it, the JSON is indented and escapes a non-ASCII name.

Usage: make_safetensors.py OUTPUT
"""
import json
import struct
import sys

# name -> (dtype, shape, struct format, values)
TENSORS = {
    "weight": ("F32", [2, 3], "<6f", [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
    "bias": ("F64", [3], "<3d", [0.1, -2.25, 1e300]),
    "counts": ("I32", [4], "<4i", [-2147483648, -1, 0, 2147483647]),
    "scalar": ("F32", [], "<f", [3.25]),
    "empty": ("F32", [0, 5], "<0f", []),
    "caf\u00e9": ("I32", [1], "<i", [7]),
}
HEADER_ORDER = ["counts", "weight", "caf\u00e9", "scalar", "bias", "empty"]
DATA_ORDER = ["bias", "empty", "scalar", "caf\u00e9", "weight", "counts"]


def main():
    data = b""
    offsets = {}
    for name in DATA_ORDER:
        _, _, fmt, values = TENSORS[name]
        blob = struct.pack(fmt, *values)
        offsets[name] = [len(data), len(data) + len(blob)]
        data += blob
    header = {"__metadata__": {"format": "pt", "source": "make_safetensors.py"}}
    for name in HEADER_ORDER:
        dtype, shape, _, _ = TENSORS[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets[name]}
    text = json.dumps(header, indent=1, ensure_ascii=True).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(sys.argv[1], "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        out.write(data)


if __name__ == "__main__":
    main()
