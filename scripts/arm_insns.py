#!/usr/bin/env python3
"""Instructions per inference on emulated ARM cores: tract f32 against edgenet int8.

Counts guest instructions under qemu user mode with the TCG plugin of `qemu-insn/insns`
(instructions, not cycles or time: an `sdot` doing 16 multiply-adds counts as one, like a
scalar add, and memory stalls do not show). Per model and CPU model: `edgenet bench --warmup 0`
with `--runs 1` and `--runs 3`; (second − first) / 2 is one inference, loading and the first
inference cancelling out. Prints a Markdown table (the one in BENCHMARKS.md).

Needs: a native release build (`cargo build --release`, to export and quantize the models), the
cross build to measure (`cargo build --release --target aarch64-unknown-linux-gnu`, and/or
armv7-unknown-linux-gnueabihf), qemu-user and the cross libc (see .ci/run), and the insns tool
(`--insns`, default `../shared/tools/qemu-insn/insns`).

    python3 scripts/arm_insns.py                      # the four networks, A72 and A76
    python3 scripts/arm_insns.py --models mobilenet_v2 --cpus cortex-a72 --kernels neon,portable
    python3 scripts/arm_insns.py --kernels-example    # MACs per instruction per kernel and shape
                                                      # (cargo build --release --example kernels --target ...)
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "mobilenet_v2": ("MobileNetV2-1.0", ["mobilenet_v2"]),
    "resnet18": ("ResNet-18", ["resnet18"]),
    "resnet50": ("ResNet-50", ["resnet50"]),
    "efficientnet_lite0": ("EfficientNet-Lite0", ["efficientnet_lite0", "--weights", "models/efficientnet_lite0.safetensors"]),
    "mobilenet_v3_large": ("MobileNetV3-Large", ["mobilenet_v3_large"]),
}
# CPU model → (qemu architecture, cross target, what it stands for)
CPUS = {
    "cortex-a72": ("aarch64", "aarch64-unknown-linux-gnu", "Raspberry Pi 4"),
    "cortex-a76": ("aarch64", "aarch64-unknown-linux-gnu", "Raspberry Pi 5"),
    "cortex-a53": ("aarch64", "aarch64-unknown-linux-gnu", "Raspberry Pi 3 / Zero 2, 64-bit"),
    "cortex-a7": ("arm", "armv7-unknown-linux-gnueabihf", "32-bit Raspberry Pi OS"),
}
SYSROOT = {"aarch64": "/usr/aarch64-linux-gnu", "arm": "/usr/arm-linux-gnueabihf"}


def run(cmd, env=None):
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-2000:]}")
    return p


def count(insns, arch, cpu, binary, model, runs, kernels):
    env = dict(os.environ, QEMU_LD_PREFIX=SYSROOT[arch])
    env.pop("EDGENET_KERNELS", None)
    if kernels:
        env["EDGENET_KERNELS"] = kernels
    p = run([insns, arch, cpu, "--", binary, "bench", model, "--warmup", "0", "--runs", str(runs)], env)
    m = re.search(r"insns (\d+)", p.stderr)
    if not m:
        sys.exit(f"no instruction count in the output of {model} on {cpu}:\n{p.stderr[-2000:]}")
    used = re.search(r"int8 kernels (\w+)", p.stdout)
    return int(m.group(1)), used.group(1) if used else "?"


def model_files(native, work, name, resolution):
    """The f32 and int8 files of network `name` in `work`, exported (BatchNorm folded; Lite0 with
    the shipped weights, the others with seeded ones) and quantized on models/calibration by the
    native binary if they are not there yet."""
    _, export = MODELS[name]
    f32 = work / f"{name}_{resolution}.onnx"
    int8 = work / f"{name}_{resolution}.int8.onnx"
    if not int8.exists():
        res = [] if name == "efficientnet_lite0" else ["--resolution", str(resolution)]
        run([native, "export", *export, *res, "--fold-bn", "-o", f32])
        run([native, "quantize", f32, "--calibrate", "models/calibration", "-o", int8])
    return f32, int8


def per_inference(insns, arch, cpu, binary, model, kernels=None):
    one, used = count(insns, arch, cpu, binary, model, 1, kernels)
    three, _ = count(insns, arch, cpu, binary, model, 3, kernels)
    return (three - one) / 2, used


def fmt(n):
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.0f} M"


def kernels_example(args):
    """examples/kernels.rs under qemu: multiply-accumulates per guest instruction per case."""
    cpus = args.cpus.split(",")
    print("| kernel and shape | " + " | ".join(f"`{c}` MACs/instruction" for c in cpus) + " |")
    print("|---|" + "---:|" * len(cpus))
    listing = None
    results = {}
    for cpu in cpus:
        arch, target, _ = CPUS[cpu]
        binary = ROOT / "target" / target / "release/examples/kernels"
        if not binary.exists():
            sys.exit(f"build {binary} first: cargo build --release --example kernels --target {target}")
        env = dict(os.environ, QEMU_LD_PREFIX=SYSROOT[arch])
        if listing is None:
            out = run(["qemu-" + ("aarch64" if arch == "aarch64" else "arm"), "-cpu", cpu, binary, "--list"], env).stdout
            listing = [line.split("\t") for line in out.splitlines() if "\t" in line]
        for name, macs in listing:
            counts = []
            for reps in (1, 3):
                p = run([args.insns, arch, cpu, "--", binary, "--case", name, "--reps", str(reps)], env)
                counts.append(int(re.search(r"insns (\d+)", p.stderr).group(1)))
            per_run = (counts[1] - counts[0]) / 2
            results[(name, cpu)] = int(macs) / per_run
            print(f"{name} {cpu}: {int(macs) / per_run:.2f} MACs/instruction", file=sys.stderr)
    for name, _ in listing:
        label = name + (" (elements/instruction)" if name.startswith("quantized add") else "")
        print(f"| {label} | " + " | ".join(f"{results[(name, c)]:.2f}" for c in cpus) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--cpus", default="cortex-a72,cortex-a76", help="comma-separated: " + ", ".join(CPUS))
    ap.add_argument("--kernels", default="", help="also count int8 with these forced kernel sets (e.g. portable)")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--work", default="target/arm-insns", help="where the exported models go")
    ap.add_argument("--insns", default=str(ROOT.parent / "shared/tools/qemu-insn/insns"))
    ap.add_argument("--kernels-example", action="store_true", help="count examples/kernels.rs per case instead of whole models")
    args = ap.parse_args()
    if args.kernels_example:
        return kernels_example(args)
    native = ROOT / "target/release/edgenet"
    if not native.exists():
        sys.exit("build the native binary first: cargo build --release")
    work = ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        title = MODELS[name][0]
        f32, int8 = model_files(native, work, name, args.resolution)
        for cpu in args.cpus.split(","):
            arch, target, board = CPUS[cpu]
            binary = ROOT / "target" / target / "release/edgenet"
            if not binary.exists():
                sys.exit(f"build {binary} first: cargo build --release --target {target}")
            f, _ = per_inference(args.insns, arch, cpu, binary, f32)
            q, used = per_inference(args.insns, arch, cpu, binary, int8)
            extra = []
            for k in filter(None, args.kernels.split(",")):
                n, _ = per_inference(args.insns, arch, cpu, binary, int8, k)
                extra.append(f"{k} {fmt(n)} ({n / f:.2f}×)")
            rows.append((title, f"`{cpu}` ({board})", fmt(f), fmt(q), used, f"{q / f:.2f}×", "; ".join(extra)))
            # The exact counts too: a ratio printed as 0.60× may be either side of 0.6.
            print(f"{title} {cpu}: f32 {fmt(f)} ({f:.0f}), int8 {fmt(q)} ({q:.0f}) [{used}] = {q / f:.4f}× {' '.join(extra)}", file=sys.stderr)
    print(f"| network ({args.resolution}²) | CPU model (emulated) | tract f32 | edgenet int8 | int8 kernels | int8 / f32 | other int8 kernel sets |")
    print("|---|---|---:|---:|---|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
