#!/usr/bin/env python3
"""Loads a safetensors file with the reference `safetensors` package and prints every tensor's
name, dtype and shape and the metadata. With --reference REF.json it also verifies the file
against REF: {"tensors": {name: {"shape": [...], "values": [...]}}, "metadata": {key: value}}
(values compared exactly as float32; every reference tensor and metadata pair must be present).

Usage: tools/check-safetensors.py FILE [--reference REF.json] [--exact-names]
  --exact-names  the file must hold exactly the reference's tensors, no others.
Exit status: 0 when loaded (and verified), 1 on a mismatch or load failure. When the
`safetensors` or `numpy` package is missing it prints a line starting with "SKIP" and exits 0.
"""
import argparse
import json
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as missing:  # pragma: no cover - depends on the machine
    print(f"SKIP check-safetensors: {missing} (pip install safetensors numpy)")
    sys.exit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--reference")
    parser.add_argument("--exact-names", action="store_true")
    args = parser.parse_args()

    try:
        tensors = load_file(args.file)
        with safe_open(args.file, framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # the package raises several types for malformed files
        print(f"FAIL {args.file}: safetensors could not load it: {error}")
        return 1

    for name in sorted(tensors):
        array = tensors[name]
        print(f"tensor {name} {array.dtype} {list(array.shape)}")
    for key in sorted(metadata):
        print(f"metadata {key} = {metadata[key]!r}")

    if args.reference is None:
        print(f"OK loaded {len(tensors)} tensors and {len(metadata)} metadata pairs")
        return 0

    with open(args.reference) as handle:
        reference = json.load(handle)
    problems = []
    for name, expected in reference.get("tensors", {}).items():
        if name not in tensors:
            problems.append(f"missing tensor {name}")
            continue
        array = tensors[name]
        if array.dtype != np.float32:
            problems.append(f"{name}: dtype {array.dtype}, expected float32")
        if list(array.shape) != list(expected["shape"]):
            problems.append(f"{name}: shape {list(array.shape)}, expected {expected['shape']}")
            continue
        values = np.asarray(expected["values"], dtype=np.float32).reshape(expected["shape"])
        if not np.array_equal(array, values):
            index = np.argwhere(array != values)[0]
            problems.append(f"{name}: value at {index.tolist()} is {array[tuple(index)]}, expected {values[tuple(index)]}")
    if args.exact_names:
        for name in sorted(set(tensors) - set(reference.get("tensors", {}))):
            problems.append(f"unexpected tensor {name}")
    for key, value in reference.get("metadata", {}).items():
        if metadata.get(key) != value:
            problems.append(f"metadata {key}: {metadata.get(key)!r}, expected {value!r}")
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    print(f"OK verified {len(reference.get('tensors', {}))} tensors and {len(reference.get('metadata', {}))} metadata pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
