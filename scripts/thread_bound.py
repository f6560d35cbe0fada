#!/usr/bin/env python3
"""How far edgenet's int8 scales with threads on emulated Raspberry Pi cores (issue 34's bound).

Runs `edgenet bench --threads N` under qemu user mode with the TCG plugin `scripts/qemu/threads.c`
on a binary built with the cargo feature `insn-marks` (marker no-ops around the thread pool's
jobs and tasks). Every guest instruction is attributed to serial work (the calling thread outside
the int8 kernels' parallel jobs: tract's ops, edgenet's element-wise int8 ops), a task of a job
(on any thread), or the pool (posting, claiming, waiting, spinning). Per inference (runs 1 and
3, difference / 2) it prints, for each thread count N:

- serial share: serial instructions / (serial + task instructions), measured at N threads;
- work at N / at 1: serial + task instructions at N threads over the same at one thread (a finer
  split repacks columns, so more tasks can mean more work);
- bound: one-thread instructions over (serial + each job's tasks replayed, in the order they
  began, on N equal threads, each next task to the thread free first). An instruction-count
  bound: it leaves out cycles, the memory bandwidth four cores share, and the pool's wake-up,
  which on a board all lower the real speed-up (`edgenet bench --threads N` measures it there).

Needs what scripts/arm_insns.py needs (qemu-user, the aarch64 cross libc, a native release build
for the models) and builds the marked aarch64 runtime binary itself into target/thread-bound.

    python3 scripts/thread_bound.py                                   # MobileNetV2, ResNet-18; A72, A76
    python3 scripts/thread_bound.py --models resnet50 --cpus cortex-a76 --threads 1,2,4
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm_insns import CPUS, MODELS, ROOT, SYSROOT, model_files, run  # noqa: E402

TARGET = "aarch64-unknown-linux-gnu"


def plugin():
    src = ROOT / "scripts/qemu/threads.c"
    so = ROOT / "target/thread-bound/libthreads.so"
    so.parent.mkdir(parents=True, exist_ok=True)
    if not so.exists() or so.stat().st_mtime < src.stat().st_mtime:
        run(["gcc", "-O2", "-shared", "-fPIC", "-o", so, src])
    return so


def binary():
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target/thread-bound"))
    run(["cargo", "build", "--release", "--no-default-features", "--features", "insn-marks", "--target", TARGET], env)
    return ROOT / "target/thread-bound" / TARGET / "release/edgenet"


def counts(so, cpu, exe, model, threads, runs):
    arch = CPUS[cpu][0]
    qemu = "qemu-aarch64" if arch == "aarch64" else "qemu-arm"
    cmd = [qemu, "-cpu", cpu, "-L", SYSROOT[arch], "-plugin", str(so), exe, "bench", model,
           "--warmup", "0", "--runs", str(runs), "--threads", str(threads)]
    p = run(cmd, dict(os.environ, QEMU_LD_PREFIX=SYSROOT[arch]))
    got = dict((k, int(v)) for k, v in re.findall(r"^threads_(\w+) (\d+)$", p.stderr, re.M))
    if "serial" not in got:
        sys.exit(f"no counts from the plugin for {model} on {cpu}:\n{p.stderr[-2000:]}")
    return got


def per_inference(so, cpu, exe, model, threads):
    one, three = (counts(so, cpu, exe, model, threads, r) for r in (1, 3))
    return {k: (three[k] - one[k]) / 2 for k in one}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet_v2,resnet18", help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--cpus", default="cortex-a72,cortex-a76", help="comma-separated aarch64 CPU models")
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--binary", help="measure this aarch64 binary (built with --features insn-marks) instead of building one")
    ap.add_argument("--work", default="target/arm-insns", help="where the exported models are (made as scripts/arm_insns.py makes them)")
    args = ap.parse_args()
    native = ROOT / "target/release/edgenet"
    if not native.exists():
        sys.exit("build the native binary first: cargo build --release")
    so, exe = plugin(), Path(args.binary) if args.binary else binary()
    work = ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",")]
    print("| network, core (emulated) | threads | serial share | work at N / at 1 | pool share | bound (speed-up) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        title = MODELS[name][0]
        _, int8 = model_files(native, work, name, args.resolution)
        for cpu in args.cpus.split(","):
            one = None
            for t in threads:
                c = per_inference(so, cpu, exe, int8, t)
                work_n = c["serial"] + c["task"]
                if one is None:
                    one = work_n  # the first thread count given is the baseline (1 by default)
                bound = one / c[f"bound_{t}"]
                print(f"{title} {cpu} threads {t}: serial {c['serial']:.0f} task {c['task']:.0f} pool {c['pool']:.0f} "
                      f"jobs {c['jobs']:.0f} tasks {c['tasks']:.0f} bound {c[f'bound_{t}']:.0f}", file=sys.stderr)
                print(f"| {title}, `{cpu}` ({CPUS[cpu][2]}) | {t} | {100 * c['serial'] / work_n:.2f} % | {work_n / one:.3f} | "
                      f"{100 * c['pool'] / (work_n + c['pool']):.1f} % | {bound:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
