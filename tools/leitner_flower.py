"""Shared by tools/flower-client, tools/flower-server and tools/flower-sim (docs/federated.md).

Weights travel as one safetensors file per message (Flower `Parameters(tensors=[bytes],
tensor_type="safetensors")`): the model tensors of a Leitner checkpoint by their names
(docs/checkpoints.md), float32, without the optimizer's tensors. An empty `Parameters` in
round 1 means "the clients' common seeded initialisation" (every client runs with the same
--seed, so each starts from the same weights as a central run with that seed).
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
from safetensors.numpy import load as load_bytes, save as save_bytes, load_file

TENSOR_TYPE = "safetensors"


def model_tensors(path):
    """The model tensors of a Leitner checkpoint (optimizer.* dropped), as name -> float32 array."""
    return {name: value for name, value in load_file(path).items() if not name.startswith("optimizer.")}


def encode(tensors):
    """Safetensors bytes of name -> array, names sorted (the file's own order)."""
    return save_bytes({name: np.ascontiguousarray(tensors[name], dtype=np.float32) for name in sorted(tensors)})


def decode(blob):
    return load_bytes(blob)


def find_leitner(explicit=None):
    """--leitner, else `leitner` on PATH, else this repository's release build."""
    if explicit:
        return explicit
    found = shutil.which("leitner")
    if found:
        return found
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    built = os.path.join(root, ".build", "release", "leitner")
    if os.path.exists(built):
        return built
    raise SystemExit("leitner not found: pass --leitner PATH or put the release build on PATH")


def read_metrics(path, first_epoch, last_epoch):
    """The metrics.jsonl lines of epochs first_epoch..last_epoch (1-based, inclusive)."""
    lines = []
    with open(path) as handle:
        for line in handle:
            if line.strip():
                entry = json.loads(line)
                if first_epoch <= entry["epoch"] <= last_epoch:
                    lines.append(entry)
    return lines


def summarise_round(lines, samples):
    """One client's round from its epochs' metrics: what was computed and what it cost.
    compute_saved = 1 - sum(3 trained + scored) / (3 N epochs), as docs/metrics.md per epoch."""
    epochs = len(lines)
    trained = sum(entry["samples_trained"] for entry in lines)
    scored = sum(entry["samples_scored"] for entry in lines)
    joules = [entry.get("energy_joules") for entry in lines]
    return {
        "epochs": epochs,
        "samples": samples,
        "samples_trained": trained,
        "samples_scored": scored,
        "compute_saved": 1 - (3 * trained + scored) / (3 * samples * epochs) if epochs else 0.0,
        "energy_joules": sum(joules) if joules and all(j is not None for j in joules) else float("nan"),
        "energy_estimate": bool(lines and lines[-1].get("energy_estimate")),
        "energy_source": (lines[-1].get("energy_source") or "none") if lines else "none",
        "wall_seconds": sum(entry["wall_seconds"] for entry in lines),
        "train_loss": lines[-1]["train_loss"] if lines else float("nan"),
        "local_test_accuracy": lines[-1]["test_accuracy"] if lines else float("nan"),
    }


EVAL_LINE = re.compile(r"test: (\d+) samples, loss ([0-9.naif]+), accuracy ([0-9.]+)%")


def evaluate(leitner, weights_path, model, data, threads=1):
    """`leitner eval` of a weights file on DATA's test set: (loss, accuracy fraction, samples)."""
    result = subprocess.run([leitner, "eval", weights_path, "--model", model, "--data", data, "--threads", str(threads)],
                            capture_output=True, text=True)
    match = EVAL_LINE.search(result.stdout)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"leitner eval failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return float(match.group(2)), float(match.group(3)) / 100, int(match.group(1))
