#!/usr/bin/env python3
"""Export small torchvision classifiers to ONNX as test fixtures.

Writes, under tests/data/torchvision/ (or OUTDIR):

* one ``<name>.onnx`` per torchvision architecture family, exported by the
  TorchScript exporter exactly as current guides show::

      torch.onnx.export(model.eval(), (x,), path, opset_version=13, dynamo=False,
                        input_names=["input"], output_names=["output"])

  (constant folding left at its default, on), plus ``shufflenet_v2_nofold.onnx``
  exported with ``do_constant_folding=False``;
* ``expected.json``: for every file its sha256, size, input/output names and
  shapes, sorted unique op types, op counts, and the onnxruntime and PyTorch
  outputs (all logits) on the deterministic input described below.

Models are built from torchvision's own classes and constructor arguments,
made small (width multipliers, fewer blocks, 10 classes, low resolution) so the
files stay around 1 MB while the op patterns stay torchvision's. Weights are
random: ``torch.manual_seed(model_seed)`` before each model is built; after
the constructor's own initialisation, every BatchNorm's affine parameters and
running statistics are redrawn from that same seeded stream (see
``randomize_batchnorm``) so that BN folding is actually exercised (torchvision
initialises BN to the identity: weight 1, bias 0, mean 0, var 1).

Deterministic input (flattened NCHW index i, float32 arithmetic throughout)::

    k = (i * 7919) % 1000            # integer
    x[i] = k / 1000 * 4 - 2          # float32: ((f32(k) / 1000) * 4) - 2

Each operation is rounded to float32 (Rust: ``(k as f32) / 1000.0 * 4.0 - 2.0``);
computing in float64 and rounding once gives a value 1 ulp away for 541 of the
1000 possible k, so the order and precision matter.

The script fails unless, for every file, onnx.checker.check_model passes and
max |PyTorch - onnxruntime| < 1e-4 over all logits.

Full-size mode (``--full OUTDIR``): exports the full-size torchvision
classifiers the way a user would, for the ignored Rust test
``judge_full_size_exports`` in tests/torchvision.rs. For each of
mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, shufflenet_v2_x1_0,
squeezenet1_1, mnasnet1_0, googlenet, densenet121, regnet_y_400mf,
regnet_x_400mf and resnet18: ``torch.manual_seed(0)``, then
``torchvision.models.<name>(weights=None)`` (1000 classes, default constructor
arguments; googlenet gets ``init_weights=True``, which is what its default
``None`` resolves to, only to silence the FutureWarning; its aux heads are
built but eval-mode export leaves them out, so the file has one output), the
same BatchNorm redraw, ``.eval()``, input 1x3x224x224 (the deterministic
input), and the same export call (opset 13, dynamo=False, constant folding
on). Only ``<name>.onnx`` files are written, into OUTDIR, which should be
outside the repository (they are 5-47 MB each, 230 MB in all); no
expected.json. The same checks apply (onnx.checker, max |PyTorch -
onnxruntime| < 1e-4 over all 1000 logits).

Usage (in a venv with torch, torchvision, onnx, onnxruntime; see
tests/data/torchvision/README.md):

    /tmp/tvenv/bin/python scripts/make_torchvision_fixtures.py [OUTDIR]
    /tmp/tvenv/bin/python scripts/make_torchvision_fixtures.py --full OUTDIR
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision
from torchvision.models import efficientnet, mnasnet, mobilenetv3, regnet, resnet

# torchvision.models.googlenet is shadowed by the googlenet() builder function.
tv_googlenet = importlib.import_module("torchvision.models.googlenet")

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "torchvision"
OPSET = 13
TOLERANCE = 1e-4
NUM_CLASSES = 10


# --------------------------------------------------------------------------
# Model builders (each called right after torch.manual_seed(0)).
# --------------------------------------------------------------------------


def build_mobilenet_v3_small() -> nn.Module:
    setting, last_channel = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return mobilenetv3.MobileNetV3(setting, last_channel, num_classes=NUM_CLASSES)


def build_mobilenet_v3_large() -> nn.Module:
    setting, last_channel = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25)
    return mobilenetv3.MobileNetV3(setting, last_channel, num_classes=NUM_CLASSES)


def build_efficientnet_b0() -> nn.Module:
    # efficientnet_b0() is _efficientnet_conf(width_mult=1.0, depth_mult=1.0), dropout 0.2.
    setting, last_channel = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.5)
    return efficientnet.EfficientNet(setting, 0.2, num_classes=NUM_CLASSES, last_channel=last_channel)


def build_shufflenet_v2() -> nn.Module:
    return torchvision.models.shufflenet_v2_x0_5(num_classes=NUM_CLASSES)


def build_squeezenet1_1() -> nn.Module:
    return torchvision.models.squeezenet1_1(num_classes=NUM_CLASSES)


def build_mnasnet() -> nn.Module:
    # mnasnet0_5(num_classes=10) is 3.9 MB of float32; alpha=0.25 is the same
    # class with its own width argument (mnasnet0_5 is MNASNet(0.5)).
    return mnasnet.MNASNet(0.25, num_classes=NUM_CLASSES)


class SmallGoogLeNet(nn.Module):
    """GoogLeNet-style net from torchvision's BasicConv2d and Inception blocks.

    Same layer kinds and forward order as torchvision.models.GoogLeNet
    (stem BasicConv2d, ceil-mode MaxPool, Inception blocks, ceil-mode MaxPool
    between them, AdaptiveAvgPool2d((1, 1)), flatten, Dropout, Linear), with
    two Inception blocks and small channel counts; no aux heads, no
    transform_input (both are off in eval / by default for random weights).
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        BasicConv2d, Inception = tv_googlenet.BasicConv2d, tv_googlenet.Inception
        self.conv1 = BasicConv2d(3, 16, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(16, 16, kernel_size=1)
        self.conv3 = BasicConv2d(16, 32, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
        self.inception3a = Inception(32, 16, 16, 24, 4, 8, 8)  # -> 56
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(56, 24, 16, 32, 4, 12, 12)  # -> 80
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(80, num_classes)
        # torchvision GoogLeNet.__init__(init_weights=True) initialisation
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.maxpool2(x)
        x = self.inception3a(x)
        x = self.maxpool3(x)
        x = self.inception4a(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.fc(x)


def build_googlenet() -> nn.Module:
    return SmallGoogLeNet()


def build_densenet() -> nn.Module:
    return torchvision.models.DenseNet(
        growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=NUM_CLASSES
    )


def build_regnet() -> nn.Module:
    # regnet_y_400mf is BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89,
    # w_m=2.09, group_width=8, se_ratio=0.25) (15.7 MB at 10 classes); same
    # Y block (group conv + SE with ReLU/Sigmoid), smaller parameters.
    params = regnet.BlockParams.from_init_params(depth=8, w_0=16, w_a=12.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return regnet.RegNet(params, num_classes=NUM_CLASSES, stem_width=16)


def build_resnet18() -> nn.Module:
    """ResNet-18 topology (BasicBlock, [2, 2, 2, 2]) with widths 8/16/32/64.

    torchvision's ResNet hard-codes 64/128/256/512 (ResNet(BasicBlock,
    [1, 1, 1, 1]) alone is 19.7 MB), so the stem and the four stages are
    rebuilt with ResNet's own _make_layer at smaller widths; forward() is
    torchvision's unchanged. Weights re-initialised as ResNet.__init__ does.
    """
    widths = (8, 16, 32, 64)
    m = resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes=NUM_CLASSES)
    m.inplanes = widths[0]
    m.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(widths[0])
    m.layer1 = m._make_layer(resnet.BasicBlock, widths[0], 2)
    m.layer2 = m._make_layer(resnet.BasicBlock, widths[1], 2, stride=2)
    m.layer3 = m._make_layer(resnet.BasicBlock, widths[2], 2, stride=2)
    m.layer4 = m._make_layer(resnet.BasicBlock, widths[3], 2, stride=2)
    m.fc = nn.Linear(widths[3], NUM_CLASSES)
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.constant_(mod.weight, 1)
            nn.init.constant_(mod.bias, 0)
    return m


# name, builder, input H=W, extra export kwargs, description
MODELS = [
    ("mobilenet_v3_small", build_mobilenet_v3_small, 112, {},
     'MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25), num_classes=10)'),
    ("mobilenet_v3_large", build_mobilenet_v3_large, 112, {},
     'MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25), num_classes=10)'),
    ("efficientnet_b0", build_efficientnet_b0, 96, {},
     'EfficientNet(*_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.5), dropout=0.2, num_classes=10)'),
    ("shufflenet_v2", build_shufflenet_v2, 96, {},
     "shufflenet_v2_x0_5(num_classes=10)"),
    ("shufflenet_v2_nofold", build_shufflenet_v2, 96, {"do_constant_folding": False},
     "shufflenet_v2_x0_5(num_classes=10), exported with do_constant_folding=False"),
    ("squeezenet1_1", build_squeezenet1_1, 96, {},
     "squeezenet1_1(num_classes=10)"),
    ("mnasnet", build_mnasnet, 96, {},
     "MNASNet(alpha=0.25, num_classes=10)"),
    ("googlenet_small", build_googlenet, 96, {},
     "stem BasicConv2d + 2 torchvision Inception blocks (see SmallGoogLeNet)"),
    ("densenet", build_densenet, 96, {},
     "DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=10)"),
    ("regnet_y", build_regnet, 96, {},
     "RegNet(BlockParams.from_init_params(depth=8, w_0=16, w_a=12.0, w_m=2.0, group_width=8, se_ratio=0.25), stem_width=16, num_classes=10)"),
    ("resnet18", build_resnet18, 96, {},
     "ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10) with stem/stages rebuilt by _make_layer at widths 8/16/32/64"),
]


# Full-size mode: torchvision builder name, extra constructor kwargs.
FULL_MODELS = [
    ("mobilenet_v3_small", {}),
    ("mobilenet_v3_large", {}),
    ("efficientnet_b0", {}),
    ("shufflenet_v2_x1_0", {}),
    ("squeezenet1_1", {}),
    ("mnasnet1_0", {}),
    # init_weights=None (the default) warns and then means True; aux_logits stays at its
    # default (True): the aux heads only run in training mode, so eval export has one output.
    ("googlenet", {"init_weights": True}),
    ("densenet121", {}),
    ("regnet_y_400mf", {}),
    ("regnet_x_400mf", {}),
    ("resnet18", {}),
]
FULL_HW = 224


def randomize_batchnorm(model: nn.Module) -> None:
    """Redraw every BatchNorm's weight, bias, running_mean and running_var.

    Uses the global torch RNG (seeded before the model was built), so the
    result is deterministic. Values stay mild so deep nets do not blow up.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                if m.weight is not None:
                    m.weight.copy_(torch.rand(c) * 0.5 + 0.75)  # [0.75, 1.25)
                    m.bias.copy_((torch.rand(c) - 0.5) * 0.2)  # [-0.1, 0.1)
                m.running_mean.copy_((torch.rand(c) - 0.5) * 0.2)  # [-0.1, 0.1)
                m.running_var.copy_(torch.rand(c) * 0.5 + 0.75)  # [0.75, 1.25)


def deterministic_input(shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    k = ((i * 7919) % 1000).astype(np.float32)
    x = k / np.float32(1000.0) * np.float32(4.0) - np.float32(2.0)
    assert x.dtype == np.float32
    return x.reshape(shape)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def value_shape(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]


def export_one(name, builder, hw, extra, desc, outdir: pathlib.Path) -> dict:
    torch.manual_seed(0)
    model = builder()
    randomize_batchnorm(model)
    model.eval()
    shape = (1, 3, hw, hw)
    x = torch.from_numpy(deterministic_input(shape))
    path = outdir / f"{name}.onnx"
    torch.onnx.export(
        model.eval(), (x,), str(path),
        opset_version=OPSET, dynamo=False,
        input_names=["input"], output_names=["output"],
        **extra,
    )
    with torch.no_grad():
        torch_out = model(x).numpy().astype(np.float32)

    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    counts = collections.Counter(ops)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    # Execute the file literally (no fusions), like tests/data/int8's reference.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {"input": x.numpy()})
    diff = float(np.max(np.abs(ort_out - torch_out)))
    if not diff < TOLERANCE:
        raise SystemExit(f"{name}: max |torch - onnxruntime| = {diff:g} >= {TOLERANCE}")

    assert [i.name for i in m.graph.input] == ["input"], [i.name for i in m.graph.input]
    assert [o.name for o in m.graph.output] == ["output"]
    return {
        "file": path.name,
        "description": desc,
        "sha256": sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "do_constant_folding": extra.get("do_constant_folding", True),
        "input": {"name": "input", "shape": value_shape(m.graph.input[0])},
        "output": {"name": "output", "shape": value_shape(m.graph.output[0])},
        "op_types": sorted(counts),
        "op_counts": dict(sorted(counts.items())),
        "node_count": len(ops),
        "parameter_count": int(sum(p.numel() for p in model.parameters())),
        "input_first_values": [float(v) for v in x.numpy().reshape(-1)[:8]],
        "input_sum_f64": float(x.numpy().astype(np.float64).sum()),
        "output_abs_max": float(np.max(np.abs(ort_out))),
        "max_abs_diff_torch_vs_onnxruntime": diff,
        "onnxruntime_output": [float(v) for v in ort_out.reshape(-1)],
        "pytorch_output": [float(v) for v in torch_out.reshape(-1)],
    }


def export_full(outdir: pathlib.Path) -> int:
    """``--full``: the full-size torchvision classifiers, as a user exports them."""
    outdir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, kwargs in FULL_MODELS:
        builder = getattr(torchvision.models, name)
        desc = f"torchvision.models.{name}(weights=None" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")"
        e = export_one(name, lambda: builder(weights=None, **kwargs), FULL_HW, {}, desc, outdir)
        assert e["output"]["shape"] == [1, 1000], e["output"]["shape"]
        total += e["size_bytes"]
        print(f"{e['file']:24s} {e['size_bytes']:>10d} B  params={e['parameter_count']:>9d}  "
              f"|logit|max={e['output_abs_max']:.3g}  max|d|={e['max_abs_diff_torch_vs_onnxruntime']:.2e}  "
              f"{' '.join(f'{k} {v}' for k, v in e['op_counts'].items())}", flush=True)
    print(f"total .onnx size: {total} B")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--full", metavar="OUTDIR", type=pathlib.Path,
                    help="export the full-size torchvision classifiers (224x224, 1000 classes) into OUTDIR "
                         "(keep it outside the repository) instead of the small fixtures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.full is not None:
        return export_full(args.full)
    args.outdir.mkdir(parents=True, exist_ok=True)

    entries = []
    for name, builder, hw, extra, desc in MODELS:
        e = export_one(name, builder, hw, extra, desc, args.outdir)
        entries.append(e)
        print(f"{e['file']:28s} {e['size_bytes']:>9d} B  max|d|={e['max_abs_diff_torch_vs_onnxruntime']:.2e}  "
              f"{' '.join(e['op_types'])}", flush=True)

    doc = {
        "generator": "scripts/make_torchvision_fixtures.py",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "export_call": 'torch.onnx.export(model.eval(), (x,), path, opset_version=13, dynamo=False, '
                       'input_names=["input"], output_names=["output"])',
        "input_formula": "x[i] = f32((i * 7919) % 1000) / 1000 * 4 - 2, float32 arithmetic, i = flattened NCHW index",
        "onnxruntime_session": "CPUExecutionProvider, graph_optimization_level=ORT_DISABLE_ALL, intra_op_num_threads=1",
        "tolerance_torch_vs_onnxruntime": TOLERANCE,
        "models": entries,
    }
    with open(args.outdir / "expected.json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    total = sum(e["size_bytes"] for e in entries)
    print(f"total .onnx size: {total} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
