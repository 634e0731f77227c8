"""Leitner's reference models (Sources/NN/ModelZoo.swift) in PyTorch, for tools/compare-pytorch.

Module names follow the `as=` names of the Leitner descriptions, so a Leitner safetensors file
(Sources/NN/Model+Tensors.swift naming: "<layer>.weight", ".bias", ".running_mean",
".running_var") loads with `model.load_state_dict(tensors, strict=False)`; the only keys a
Leitner file lacks are batch norm's `num_batches_tracked` counters. Initialisation does not
matter: the comparison always loads Leitner's initial weights.

Also the Fashion-MNIST reader shared by the parity check and the speed worker: gzipped or plain
IDX files read with numpy, normalised like Leitner's batch assembly
(Sources/Data/Dataset.swift): (pixel/255 - 0.2860) / 0.3530, float32, NCHW.
"""
import gzip
import os
import re

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

MODEL_NAMES = ("mlp", "cnn-s", "resnet8")

# Fashion-MNIST's training-set statistics of pixel/255, as Normalization.fashionMNIST.
MEAN = 0.2860
STD = 0.3530


class MLP(nn.Module):
    """flatten; linear 256 (fc1), ReLU; linear 128 (fc2), ReLU; linear 10 (fc3)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class CNNS(nn.Module):
    """conv1 3x3 1->32 p1, ReLU, maxpool 2; conv2 3x3 32->64 p1, ReLU, maxpool 2; flatten;
    fc1 3136->128, ReLU; fc2 128->10. `widths` (conv1, conv2, fc1) and the input `size` give
    the same topology smaller (tools/make-torch-fixture)."""

    def __init__(self, widths=(32, 64, 128), size=28):
        super().__init__()
        first, second, hidden = widths
        self.conv1 = nn.Conv2d(1, first, 3, padding=1)
        self.conv2 = nn.Conv2d(first, second, 3, padding=1)
        self.fc1 = nn.Linear(second * (size // 4) * (size // 4), hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (identity, or conv1x1 with stride and BN named
    shortcut.0 / shortcut.1), ReLU after the add. No conv has a bias."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet8(nn.Module):
    """conv1 3x3 1->16 (no bias), bn1, ReLU; layer1 16->16, layer2 16->32 stride 2,
    layer3 32->64 stride 2; global average pool; fc 64->10. `widths` (the three stages) gives
    the same topology narrower (tools/make-torch-fixture); the input size is free."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        first, second, third = widths
        self.conv1 = nn.Conv2d(1, first, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.layer1 = BasicBlock(first, first, 1)
        self.layer2 = BasicBlock(first, second, 2)
        self.layer3 = BasicBlock(second, third, 2)
        self.fc = nn.Linear(third, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


# ---- backbone blocks (tools/make-torch-fixture blocks) --------------------------------------
# Tiny blocks of torchvision's mobilenet_v2, mobilenet_v3_small and resnet18, written as the
# Leitner texts in make-torch-fixture (module names = Leitner's `as=` names). `dropout` is the
# dropout function to use (the fixture passes one that draws Leitner's masks).


class MobileNetV2Block(nn.Module):
    """Inverted residual: expand 1x1 + BN + ReLU6, depthwise 3x3 + BN + ReLU6, project 1x1 +
    BN, + input; global average pool, dropout, classifier."""

    def __init__(self, channels=4, expansion=3, classes=5, dropout=None):
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, classes)
        self.dropout = dropout

    def forward(self, x):
        y = F.relu6(self.expand_bn(self.expand(x)))
        y = F.relu6(self.dw_bn(self.dw(y)))
        y = self.project_bn(self.project(y)) + x
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        return self.classifier(self.dropout(y))


class MobileNetV3Block(nn.Module):
    """Expand 1x1 + BN + hardswish, depthwise 3x3 + BN + hardswish, squeeze-excitation as
    torchvision's (pool, fc1 conv 1x1 with bias + ReLU, fc2 conv 1x1 with bias + hardsigmoid,
    scale), project 1x1 + BN, + input; pool, head linear + hardswish + dropout, classifier."""

    def __init__(self, channels=4, hidden=8, squeeze=4, head=6, classes=5, dropout=None):
        super().__init__()
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.se_fc1 = nn.Conv2d(hidden, squeeze, 1)
        self.se_fc2 = nn.Conv2d(squeeze, hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, head)
        self.classifier = nn.Linear(head, classes)
        self.dropout = dropout

    def forward(self, x):
        y = F.hardswish(self.expand_bn(self.expand(x)))
        y = F.hardswish(self.dw_bn(self.dw(y)))
        scale = F.hardsigmoid(self.se_fc2(F.relu(self.se_fc1(F.adaptive_avg_pool2d(y, 1)))))
        y = self.project_bn(self.project(y * scale)) + x
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        return self.classifier(self.dropout(F.hardswish(self.head(y))))


class ResNet18Block(nn.Module):
    """torchvision's BasicBlock with a downsample: conv 3x3 s2 + BN + ReLU, conv 3x3 + BN,
    shortcut conv 1x1 s2 + BN, add, ReLU; global average pool, fc."""

    def __init__(self, inputs=3, outputs=6, classes=5, dropout=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample = nn.Conv2d(inputs, outputs, 1, stride=2, bias=False)
        self.downsample_bn = nn.BatchNorm2d(outputs)
        self.fc = nn.Linear(outputs, classes)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = F.relu(y + self.downsample_bn(self.downsample(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


# ---- whole torchvision backbones ------------------------------------------------------------
# Named ARCH[_WIDTH]@SIZE: ARCH a torchvision constructor (mobilenet_v2, mobilenet_v3_small,
# resnet18), _WIDTH an optional width multiplier written without its point (_035 = 0.35,
# mobilenet_v2 only), SIZE the square input side (input 3 x SIZE x SIZE). Always 10 classes and,
# for the mobilenets, dropout=0.0: Leitner's dropout masks cannot equal PyTorch's, so a parity
# run with dropout would compare different functions.

BACKBONE_ARCHS = ("mobilenet_v2", "mobilenet_v3_small", "resnet18")
BACKBONE_NAMES = ("mobilenet_v2_035@96", "mobilenet_v2@96", "mobilenet_v3_small@96", "resnet18@64")


def parse_backbone(name):
    """(constructor, keyword arguments, input side) for a backbone name, or None for another name."""
    match = re.fullmatch(r"(mobilenet_v2|mobilenet_v3_small|resnet18)(?:_(\d+))?@(\d+)", name)
    if not match:
        return None
    arch, width, size = match.group(1), match.group(2), int(match.group(3))
    kwargs = {"num_classes": 10}
    if width is not None:
        if arch != "mobilenet_v2":
            raise ValueError(f"{name}: a width multiplier applies to mobilenet_v2 only")
        kwargs["width_mult"] = float("0." + width[1:]) if width.startswith("0") else float(width)
    if arch.startswith("mobilenet"):
        kwargs["dropout"] = 0.0
    if size < 32:
        raise ValueError(f"{name}: input side {size} is below 32 (the backbones downsample 32x)")
    return arch, kwargs, size


def backbone_spec(name):
    """The tools/import-torch SPEC of a backbone name: torchvision:ARCH(k=v,...)."""
    arch, kwargs, _ = parse_backbone(name)
    return f"torchvision:{arch}(" + ",".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


def build_backbone(name):
    """The torchvision module of a backbone name (random weights; load Leitner's after)."""
    import sys
    import types
    # torchvision's compiled ops are a CUDA build the CPU torch cannot load; its model
    # definitions load once this module is stubbed (as tools/import-torch does).
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    arch, kwargs, _ = parse_backbone(name)
    return getattr(torchvision.models, arch)(weights=None, **kwargs)


def is_known_model(name):
    try:
        return name in MODEL_NAMES or parse_backbone(name) is not None
    except ValueError:
        return False


def build_model(name):
    """A fresh PyTorch model for one of MODEL_NAMES or a backbone name."""
    if parse_backbone(name) is not None:
        return build_backbone(name)
    models = {"mlp": MLP, "cnn-s": CNNS, "resnet8": ResNet8}
    if name not in models:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)})")
    return models[name]()


def load_leitner_weights(model, tensors):
    """Loads a Leitner tensor dict into `model`; checks that the only keys the file lacks are
    batch norm's num_batches_tracked and that the file has no key the model lacks."""
    result = model.load_state_dict(tensors, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"state_dict mismatch: missing {missing}, unexpected {result.unexpected_keys}")


# ---- Fashion-MNIST ------------------------------------------------------------------------

SYSTEM_DATA = "/usr/share/datasets/fashion-mnist"
SUBSET_DATA = "data/fashion-mnist-subset"
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


PACKS = {"train": "train.pack", "t10k": "test.pack"}


def _has_packs(directory):
    return all(os.path.exists(os.path.join(directory, name)) for name in PACKS.values())


def locate_data(explicit, repository_root):
    """The data directory Leitner's DatasetLocator would pick: --data, else the Debian
    package's full set, else the subset shipped in the repository (train.pack and test.pack,
    or the four IDX files)."""
    candidates = [explicit] if explicit else [SYSTEM_DATA, os.path.join(repository_root, SUBSET_DATA)]
    for directory in candidates:
        if _has_packs(directory) or all(_find(directory, stem) for stem in STEMS):
            return directory
    raise FileNotFoundError(f"no Fashion-MNIST in {', '.join(candidates)} (install dataset-fashion-mnist or pass --data)")


def _open(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path, limit=None):
    """The first `limit` items (all when None) of an IDX file as a uint8 array [N, ...]."""
    with _open(path) as handle:
        header = handle.read(4)
        if len(header) != 4 or header[0] != 0 or header[1] != 0 or header[2] != 8:
            raise ValueError(f"{path}: not an unsigned-byte IDX file")
        dims = np.frombuffer(handle.read(4 * header[3]), dtype=">u4").astype(np.int64)
        count = int(dims[0]) if limit is None else min(int(dims[0]), limit)
        item = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        data = handle.read(count * item)
    if len(data) != count * item:
        raise ValueError(f"{path}: truncated")
    return np.frombuffer(data, dtype=np.uint8).reshape((count,) + tuple(int(d) for d in dims[1:]))


def read_pack_header(path):
    """The fields of a Leitner pack header (docs/pack-format.md) that a reader of uint8
    records needs: it is the extra field ("LH") of the file's first, empty gzip member."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] != b"\x1f\x8b\x08\x04":
            raise ValueError(f"{path}: not a Leitner pack")
        extra = handle.read(int.from_bytes(head[10:12], "little"))
    data = extra[4:]
    if extra[:2] != b"LH" or data[:8] != b"LTNRPACK" or int.from_bytes(data[8:12], "little") != 1:
        raise ValueError(f"{path}: not a version-1 Leitner pack")
    count = int.from_bytes(data[16:24], "little")
    element, label = data[24], data[25]
    channels, height, width = (int.from_bytes(data[o:o + 4], "little") for o in (28, 32, 36))
    return {"count": count, "element": element, "label": label, "shape": (channels, height, width)}


def read_pack(path, limit=None):
    """The first `limit` samples of a uint8 pack: (pixels uint8 [N, C, H, W], labels uint8 [N]).
    The header and index are empty gzip members, so gzip yields exactly the records."""
    header = read_pack_header(path)
    if header["element"] != 1 or header["label"] != 1:
        raise ValueError(f"{path}: only uint8 samples with uint8 labels are read here")
    channels, height, width = header["shape"]
    record = 1 + channels * height * width
    count = header["count"] if limit is None else min(header["count"], limit)
    with gzip.open(path, "rb") as handle:
        data = handle.read(count * record)
    if len(data) != count * record:
        raise ValueError(f"{path}: truncated")
    records = np.frombuffer(data, dtype=np.uint8).reshape(count, record)
    return records[:, 1:].reshape(count, channels, height, width), records[:, 0].copy()


def read_split(directory, split, limit=None):
    """Images uint8 [N, H, W] and labels uint8 [N] of split "train" or "t10k", from a pack or IDX."""
    if _has_packs(directory):
        pixels, labels = read_pack(os.path.join(directory, PACKS[split]), limit)
        return pixels[:, 0], labels
    return (read_idx(_find(directory, f"{split}-images-idx3-ubyte"), limit),
            read_idx(_find(directory, f"{split}-labels-idx1-ubyte"), limit))


def train_count(directory):
    """Number of training samples (from the pack's or the label file's header)."""
    if _has_packs(directory):
        return read_pack_header(os.path.join(directory, PACKS["train"]))["count"]
    with _open(_find(directory, STEMS[1])) as handle:
        return int(np.frombuffer(handle.read(8)[4:], dtype=">u4")[0])


def load_train(directory, limit):
    """The first `limit` training samples in file order: (x float32 [N, 1, 28, 28] normalised,
    y int64 [N])."""
    images, labels = read_split(directory, "train", limit)
    # float32 arithmetic in the order Leitner's Normalization.normalize uses.
    x = (images.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    x = x.reshape(len(images), 1, images.shape[1], images.shape[2])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64))


def pack_normalization(path):
    """Per-channel (mean, std) float32 arrays from a pack's header: what Leitner normalises a
    photo pack with (the training pack's own statistics, Sources/Data/Dataset.swift)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        extra = handle.read(int.from_bytes(head[10:12], "little"))
    data = extra[4:]
    channels = int.from_bytes(data[28:32], "little")
    mean = np.frombuffer(data[80:80 + 4 * channels], dtype="<f4").astype(np.float32)
    std = np.frombuffer(data[80 + 4 * channels:80 + 8 * channels], dtype="<f4").astype(np.float32)
    return mean, std


def load_pack_train(directory, limit):
    """The first `limit` samples of DIR/train.pack in file order, normalised as Leitner
    normalises a photo pack: (pixel/255 - mean[c]) / std[c] in float32 with the pack's own
    header statistics: (x float32 [N, C, H, W], y int64 [N])."""
    path = os.path.join(directory, PACKS["train"])
    pixels, labels = read_pack(path, limit)
    mean, std = pack_normalization(path)
    x = (pixels.astype(np.float32) / np.float32(255) - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(labels.astype(np.int64))
