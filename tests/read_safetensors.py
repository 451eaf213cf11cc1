#!/usr/bin/env python3
"""Reads a safetensors file using only json and struct and prints it, for
the interop test in test_safetensors.c: what nabla writes must be readable
by an independent reader. Checks what the format requires (header length,
UTF-8 JSON, unique names, data covered exactly) plus the 8-byte padding
of the reference writer, and exits non-zero on any violation.

Prints, in header order:
  metadata KEY=VALUE
  tensor NAME DTYPE [SHAPE] [VALUES]   (floats via repr of the exact value)

Usage: read_safetensors.py FILE
"""
import json
import struct
import sys

FORMATS = {"F32": ("f", 4), "F64": ("d", 8), "I32": ("i", 4)}


def fail(message):
    print("read_safetensors.py: " + message, file=sys.stderr)
    sys.exit(1)


def no_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate key")
    return dict(pairs)


def main():
    sys.stdout.reconfigure(encoding="utf-8")
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 != 0 or 8 + n > len(blob):
        fail("bad header length %d" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    data = blob[8 + n:]
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            for key, value in info.items():
                print("metadata %s=%s" % (key, value))
            continue
        fmt, size = FORMATS[info["dtype"]]
        begin, end = info["data_offsets"]
        count = 1
        for dim in info["shape"]:
            count *= dim
        if end - begin != count * size:
            fail("%s: wrong byte count" % name)
        spans.append((begin, end))
        values = list(struct.unpack("<%d%s" % (count, fmt), data[begin:end]))
        shape = ",".join(str(d) for d in info["shape"])
        print("tensor %s %s [%s] [%s]" % (name, info["dtype"], shape,
                                          ", ".join(repr(v) for v in values)))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            fail("hole or overlap at byte %d" % begin)
        covered = end
    if covered != len(data):
        fail("data not fully covered")


if __name__ == "__main__":
    main()
