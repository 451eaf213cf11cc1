#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/idx and fuzz/corpus/safetensors:
small valid files plus a few near misses, so the fuzzers start from inputs
that get past the first checks. (fuzz/corpus/ops comes from the ops' own
gradcheck samples: NABLA_FUZZ_WRITE_SEEDS=fuzz/corpus/ops fuzz_ops.)
Run from anywhere: python3 fuzz/make_seeds.py"""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def idx(dims, payload=None, type_byte=0x08):
    count = 1
    for d in dims:
        count *= d
    if payload is None:
        payload = bytes(i % 256 for i in range(count))
    head = b"\x00\x00" + bytes([type_byte, len(dims)])
    return head + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_seeds():
    # Mode byte 0: parse; 1: file read vs parse; 2: dataset + loader.
    images = idx([3, 2, 2])
    labels = idx([3], bytes([0, 1, 2]))
    for mode in (0, 1):
        write("idx", f"images-{mode}", bytes([mode]) + images)
        write("idx", f"labels-{mode}", bytes([mode]) + labels)
        write("idx", f"4d-{mode}", bytes([mode]) + idx([2, 1, 2, 3]))
        write("idx", f"empty-{mode}", bytes([mode]) + idx([0, 5]))
        write("idx", f"truncated-{mode}", bytes([mode]) + idx([4, 4])[:-3])
        write("idx", f"int-type-{mode}", bytes([mode]) + idx([2], b"\0" * 8, 0x0C))
    write("idx", "gzip-1", bytes([1]) + gzip.compress(images, mtime=0))

    def pair(images, labels, classes, batch, flags):
        return (bytes([2]) + struct.pack("<H", len(images)) +
                bytes([classes + 3, batch + 1, flags]) + images + labels)

    write("idx", "dataset-2", pair(images, labels, 3, 2, 0))
    write("idx", "dataset-shuffle-2", pair(idx([5, 1, 2, 2]), idx([5], bytes([0, 1, 0, 1, 1])), 2, 2, 7))
    write("idx", "dataset-empty-2", pair(idx([0, 3, 3]), idx([0]), 10, 4, 1))
    write("idx", "dataset-bad-label-2", pair(images, idx([3], bytes([0, 9, 2])), 3, 1, 0))


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, 2, 3, -4, 0.5, 6)
    f64 = struct.pack("<2d", 1.5, -2.25)
    i32 = struct.pack("<3i", 1, -2, 3)
    write("safetensors", "one-f32", safetensors([("weight", "F32", [2, 3], f32)]))
    write("safetensors", "mixed", safetensors([
        ("conv1.weight", "F32", [1, 2, 3], f32), ("running_var", "F64", [2], f64),
        ("labels", "I32", [3], i32), ("scalar", "F32", [], struct.pack("<f", 7))],
        metadata={"format": "pt", "epoch": "3"}))
    write("safetensors", "other-dtypes", safetensors([
        ("half", "F16", [2], b"\x00\x3c\x00\xc0"), ("bf", "BF16", [1], b"\x80\x3f"),
        ("bytes", "U8", [3], b"abc"), ("flags", "BOOL", [2], b"\x01\x00"),
        ("big", "I64", [1], struct.pack("<q", -5))]))
    write("safetensors", "empty-tensor", safetensors([("e", "F32", [0, 4], b""), ("x", "F64", [1], f64[:8])]))
    write("safetensors", "empty-header", safetensors([]))
    write("safetensors", "escaped-name", safetensors([('a"\\\u00e9\n', "F32", [1], f32[:4])]))
    write("safetensors", "unpadded", safetensors([("w", "F32", [6], f32)], pad=False))
    good = safetensors([("a", "F32", [2], f32[:8]), ("b", "F32", [1], f32[8:12])])
    write("safetensors", "truncated", good[:-2])
    header = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    write("safetensors", "overlap", struct.pack("<Q", len(header)) + header + f32[:8])


if __name__ == "__main__":
    idx_seeds()
    safetensors_seeds()
