#!/usr/bin/env python3
"""Writes the link order of the x86-64 runtime (`device`) binary: the functions a device run
executes, so that the linker puts them next to each other.

Why: the kernel maps a binary's code into memory 64 KiB around each page it faults on
("fault-around"), and resident pages count in RSS. A run of `edgenet run` executes about 1.5 MiB
of the 16 MiB of code, but scattered over the whole `.text`, so 8–9 MiB of code ended up
resident. Listed in `scripts/symbol-order/x86_64-unknown-linux-gnu.txt`, which `build.rs` hands
to the linker (`--symbol-ordering-file`, lld: Rust's default linker on x86-64 Linux) for the
`device` profile, they sit together and the rest of the code is never read.

How: builds the runtime binary as users build it (`cargo build --profile device
--no-default-features`) with a link map (`EDGENET_SYMBOL_MAP`, see `build.rs`), runs typical
device workloads under valgrind's callgrind (`classify`, `run` on rgb24 and yuv420 streams,
`bench`, `footprint`, int8 and f32, the zoo's networks), and lists every function of the
binary whose code executed (instruction addresses from callgrind, functions from the map), in
the order callgrind first met them, workload by workload. Needs valgrind, ffmpeg and a native
release build with the tools (to export and quantize the networks: `cargo build --release`).

`python3 scripts/symbol_order.py aarch64-unknown-linux-musl` (or `armv7-unknown-linux-gnueabihf`)
does the same for a static Raspberry Pi binary, which `build.rs` links with the toolchain's lld:
the workloads run under `qemu-aarch64 -cpu cortex-a76` and `-cpu cortex-a72` (both kernel
sets), or `qemu-arm -cpu cortex-a7`, and the TCG plugin `scripts/qemu/tbprof.c` lists the blocks
that ran, in the order qemu translated them. Needs qemu-user and gcc instead of valgrind.

A stale list is harmless but loses its gain: symbols it names that no longer exist are skipped,
and the functions it misses stay where the linker puts them. The hash at the end of a Rust
symbol comes from cargo's metadata for the crate (profile settings, features, the compiler),
so a change there renames every function of that crate, whether or not its code changed. On
2026-12-01 the profile's `strip` setting did that to all of edgenet's functions; `footprint`
showed it as 5.6–5.8 MiB of file pages instead of 5.1 MiB. Matching the names with their hashes
wildcarded does not work: the instances of a generic function differ only by that hash, so the
patterns took in thousands of instances no run executes (a 5.6 MB "hot" section, 7.7 MiB of file
pages). Regenerate the list after changing the engine, the `device` profile, or upgrading tract
or the compiler:

    python3 scripts/symbol_order.py
"""
import bisect
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl", "armv7-unknown-linux-gnueabihf"]
# The ARM workloads run under qemu user mode: the aarch64 binary on the Pi 5's core (dot-product
# kernels) and the Pi 4's (NEON kernels), so that both kernel sets are listed; the armv7 one (the
# static device build, glibc linked in) on a Pi 2/3's core.
QEMU = {"aarch64-unknown-linux-musl": ("qemu-aarch64", ["cortex-a76", "cortex-a72"]),
        "armv7-unknown-linux-gnueabihf": ("qemu-arm", ["cortex-a7"])}
WORK = ROOT / "target" / "arm-insns"  # where scripts/arm_insns.py exports the same networks
MODELS = ["mobilenet_v2", "efficientnet_lite0", "resnet18", "resnet50", "mobilenet_v3_large"]


def sh(cmd, **kw):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, **kw)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return p


def models(native):
    """The zoo's networks at 224², f32 and int8, exported as `scripts/arm_insns.py` does."""
    out = {}
    WORK.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        f32, int8 = WORK / f"{name}_224.onnx", WORK / f"{name}_224.int8.onnx"
        if not int8.exists():
            extra = ["--weights", "models/efficientnet_lite0.safetensors"] if name == "efficientnet_lite0" else []
            sh([native, "-q", "export", name, *extra, "--resolution", "224", "--fold-bn", "-o", f32])
            sh([native, "-q", "quantize", f32, "-o", int8, "--calibration", "models/calibration"])
        out[name] = (f32, int8)
    return out


def frames(fmt, n):
    """`n` ffmpeg test-pattern frames at 224² as raw `fmt` bytes."""
    pix = {"rgb24": "rgb24", "yuv420": "yuv420p"}[fmt]
    return sh(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=224x224:rate=30", "-frames:v", str(n),
               "-pix_fmt", pix, "-f", "rawvideo", "-"]).stdout


def executed(binary, args, stdin=None):
    """Addresses (the binary's own, as in its link map) of the instructions of `binary` that ran,
    in the order callgrind lists them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        p = subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--dump-line=no", "--compress-pos=no", f"--callgrind-out-file={out}",
                            binary, *map(str, args)], cwd=ROOT, input=stdin, capture_output=True)
        if p.returncode != 0:
            sys.exit(f"failed under callgrind ({p.returncode}): {args}\n{p.stderr[-3000:].decode(errors='replace')}")
        objects, addrs = {}, []
        mine = False
        for line in out.read_text(errors="replace").splitlines():
            m = re.match(r"^c?ob=\((\d+)\)(?: (.*))?$", line)
            if m:
                if m.group(2) is not None:
                    objects[m.group(1)] = m.group(2)
                if line.startswith("ob="):
                    mine = Path(objects.get(m.group(1), "")).resolve() == Path(binary).resolve()
                continue
            # Cost lines start with the instruction's address (`--compress-pos=no`: absolute).
            m = re.match(r"^(0x[0-9a-f]+)\s", line)
            if m and mine:
                addrs.append(int(m.group(1), 16))
        return addrs


def executed_qemu(qemu, binary, args, stdin, cpu, plugin):
    """As `executed`, for an ARM binary under `qemu -cpu CPU`: the first address of each
    translated block that ran, in the order qemu translated them (scripts/qemu/tbprof.c)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tb.txt"
        p = subprocess.run([qemu, "-cpu", cpu, "-plugin", f"{plugin},top=1", binary, *map(str, args)], cwd=ROOT, input=stdin,
                           capture_output=True, env=dict(os.environ, TBPROF_OUT=str(out)))
        if p.returncode != 0:
            sys.exit(f"failed under qemu ({p.returncode}): {args}\n{p.stderr[-3000:].decode(errors='replace')}")
        return [int(line.split()[0], 16) for line in out.read_text().splitlines() if line.strip()]


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else TARGETS[0]
    if target not in TARGETS:
        sys.exit(f"usage: symbol_order.py [{'|'.join(TARGETS)}]")
    out_list = ROOT / "scripts" / "symbol-order" / f"{target}.txt"
    native = ROOT / "target" / "release" / "edgenet"
    if not native.exists():
        sys.exit("build the native binary first: cargo build --release")
    mapfile = ROOT / "target" / "symbol-order" / f"device-{target}.map"
    mapfile.parent.mkdir(parents=True, exist_ok=True)
    cross = [] if target == TARGETS[0] else ["--target", target]
    env = dict(os.environ, EDGENET_NO_SYMBOL_ORDER="1", EDGENET_SYMBOL_MAP=str(mapfile))
    if target.startswith("armv7"):
        # The static armv7 recipe of docs/raspberry-pi.md.
        env["CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS"] = "-C target-feature=+crt-static"
    sh(["cargo", "build", "--profile", "device", "--no-default-features", *cross], env=env)
    binary = ROOT / "target" / (target if cross else "") / "device" / "edgenet"
    if cross:
        plugin = mapfile.parent / "libtbprof.so"
        sh(["gcc", "-O2", "-shared", "-fPIC", "-o", plugin, ROOT / "scripts" / "qemu" / "tbprof.c"])
        qemu, cpus = QEMU[target]
        runs = [lambda args, stdin, cpu=cpu: executed_qemu(qemu, binary, args, stdin, cpu, plugin) for cpu in cpus]
    else:
        runs = [lambda args, stdin: executed(binary, args, stdin)]
    # The map's input sections: `.text.<function>` at its address, with its size.
    sections = []
    for line in mapfile.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*:\(\.text\.(?:unlikely\.|startup\.|hot\.)?(\S+)\)$", line)
        if m:
            sections.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    sections.sort()
    starts = [a for a, _, _ in sections]
    nets = models(native)
    photo = ROOT / "models" / "calibration" / "horse.png"
    stream = ["--source", "-", "--size", "224x224", "--json", "--threads", "1"]
    workloads = [
        (["run", nets["mobilenet_v2"][1], *stream, "--format", "rgb24"], frames("rgb24", 3)),
        (["run", nets["efficientnet_lite0"][1], *stream, "--format", "yuv420"], frames("yuv420", 3)),
        (["run", nets["resnet50"][1], *stream, "--format", "yuv420", "--no-winograd"], frames("yuv420", 2)),
        (["classify", nets["resnet18"][1], photo], None),
        (["classify", nets["mobilenet_v3_large"][1], photo], None),
        (["classify", nets["mobilenet_v2"][0], photo], None),
        (["bench", nets["mobilenet_v2"][1], "--warmup", "0", "--runs", "2"], None),
        # A Pi runs with --threads 3 or 4: the int8 kernels' thread pool.
        (["bench", nets["mobilenet_v2"][1], "--warmup", "0", "--runs", "2", "--threads", "2"], None),
        (["footprint", nets["mobilenet_v2"][1]], None),
    ]
    order, seen = [], set()
    for run, (args, stdin) in ((r, w) for r in runs for w in workloads):
        new = 0
        for addr in run(args, stdin):
            i = bisect.bisect_right(starts, addr) - 1
            if i < 0 or addr >= sections[i][0] + sections[i][1]:
                continue
            name = sections[i][2]
            if name not in seen and name not in ("unlikely", "startup", "hot"):
                seen.add(name)
                order.append(name)
                new += 1
        print(f"{' '.join(str(a) for a in args[:2])}: {new} new functions", file=sys.stderr)
    size = sum(sz for _, sz, name in sections if name in seen)
    out_list.parent.mkdir(parents=True, exist_ok=True)
    out_list.write_text("".join(f"{f}\n" for f in order))
    print(f"{out_list.relative_to(ROOT)}: {len(order)} functions, {size / 2**20:.2f} MiB of code", file=sys.stderr)


if __name__ == "__main__":
    main()
