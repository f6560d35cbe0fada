#!/usr/bin/env python3
"""torchvision references for edgenet's MobileNetV3-Small/Large (tests/zoo_onnx.rs).

Writes, next to this script (or into OUTDIR):

* ``mobilenet_v3_{small,large}.torchvision_keys.txt``: every key of the state dict
  of torchvision's ``mobilenet_v3_small()`` / ``mobilenet_v3_large()`` (width 1.0,
  1000 classes), one ``key shape`` per line, in state-dict order, with the trainable
  parameter count (``sum(p.numel() for p in model.parameters())``) on the last line.
  The test checks that edgenet's graphs ask for exactly these names and shapes
  (``num_batches_tracked`` aside).
* ``mobilenet_v3_{small,large}_w025.safetensors``: the whole state dict (including
  the int64 ``num_batches_tracked`` counters, which edgenet must skip) of the same
  constructors with ``width_mult=0.25, num_classes=10``; random weights from
  ``torch.manual_seed(SEED)``: every float tensor redrawn so that nothing is an
  identity (BN weight and running_var uniform in [0.5, 1.5), BN bias and
  running_mean N(0, 0.1²), conv/linear weights He-normal over fan-in, biases
  N(0, 0.05²)).
* ``mobilenet_v3_w025_logits.json``: for each, the PyTorch logits (``eval()``, f32)
  on the deterministic input below at RESOLUTION², and the sha256 of the
  safetensors file.

Deterministic input (flattened NCHW index i, float32 arithmetic)::

    k = (i * 7919) % 1000
    x[i] = k / 1000 * 4 - 2      # Rust: (k as f32) / 1000.0 * 4.0 - 2.0

Usage (a Python with torch and torchvision; made with torch 2.15, torchvision 0.29.2):

    python tests/data/golden/make_mobilenet_v3_fixtures.py [OUTDIR]
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

SEED = 1905  # arXiv:1905.02244
RESOLUTION = 72  # not a multiple of 32: 72 → 36 → 18 → 9 → 5 → 3 exercises the odd sizes
WIDTH = 0.25
CLASSES = 10


def deterministic_input(n: int) -> np.ndarray:
    k = (np.arange(n, dtype=np.int64) * 7919) % 1000
    return (k.astype(np.float32) / np.float32(1000) * np.float32(4) - np.float32(2)).astype(np.float32)


def randomize(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=gen) + 0.5)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=gen))
            elif isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(math.sqrt(2.0 / fan_in) * torch.randn(mod.weight.shape, generator=gen))
                if mod.bias is not None:
                    mod.bias.copy_(0.05 * torch.randn(mod.bias.shape, generator=gen))


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """The safetensors format written by hand (the package is not needed): u64 header size,
    JSON header, then the little-endian tensor bytes in header order."""
    header: dict[str, dict] = {}
    blobs = []
    offset = 0
    for key, t in state.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().astype("<f4" if dtype == "F32" else "<i8").tobytes()
        header[key] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    logits = {"torch": torch.__version__, "torchvision": torchvision.__version__, "resolution": RESOLUTION, "width_mult": WIDTH, "num_classes": CLASSES, "seed": SEED, "models": {}}
    for name in ["mobilenet_v3_small", "mobilenet_v3_large"]:
        ctor = getattr(torchvision.models, name)
        full = ctor()
        lines = [f"{k} {list(v.shape)}" for k, v in full.state_dict().items()]
        lines.append(f"params {sum(p.numel() for p in full.parameters())}")
        (out / f"{name}.torchvision_keys.txt").write_text("\n".join(lines) + "\n")

        gen = torch.Generator().manual_seed(SEED)
        torch.manual_seed(SEED)
        model = ctor(width_mult=WIDTH, num_classes=CLASSES)
        randomize(model, gen)
        model.eval()
        path = out / f"{name}_w025.safetensors"
        save_safetensors(model.state_dict(), path)
        x = torch.from_numpy(deterministic_input(3 * RESOLUTION * RESOLUTION).reshape(1, 3, RESOLUTION, RESOLUTION))
        with torch.no_grad():
            y = model(x)[0].tolist()
        logits["models"][name] = {"safetensors_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "logits": y}
        print(name, path.stat().st_size, "bytes", y[:3])
    (out / "mobilenet_v3_w025_logits.json").write_text(json.dumps(logits, indent=1) + "\n")


if __name__ == "__main__":
    main()
