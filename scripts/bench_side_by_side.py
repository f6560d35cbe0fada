#!/usr/bin/env python3
"""edgenet (tract) and onnxruntime side by side on the same ONNX files, in one run.

For each network (MobileNetV2-1.0, ResNet-50, EfficientNet-Lite0, MobileNetV3-Large at 224²) and each file
(f32 with BatchNorm folded; int8 from `edgenet quantize`; and int8 from onnxruntime's own
quantizer, `quantize_static` in its recommended form: QDQ, QUInt8 activations, QInt8 weights
per channel, calibrated on the same photos with the model's own preprocessing, so that
onnxruntime is also measured at its best), this script

  * runs `edgenet bench FILE --json --threads 1 --warmup W --runs R` in a child process;
  * runs onnxruntime on the same file in a child Python process (CPU provider, one intra-op
    and one inter-op thread, sequential execution, default graph optimizations), with the same
    warm-up and number of timed runs;
  * takes each child's peak resident memory as the child itself reads it at the end (VmHWM of
    its own address space: `edgenet bench --json` memory.rss_peak_bytes, the onnxruntime
    child's VmHWM, `edgenet run --json` summary resident.peak_bytes), so each figure covers
    loading the model and running 1 + W + R inferences, and nothing else. Not wait4's
    ru_maxrss: Linux carries the parent's high-water mark across fork and exec into it, so a
    child of this Python process (tens of MB, hundreds after quantizing) would report at least
    the parent's size;
  * if this build has `edgenet run`, also runs it on a synthetic 640×480 stream of
    --run-frames frames (100 by default) and records its peak RSS the same way;

then writes a markdown table (median and mean latency, peak RSS, and the ratios edgenet int8
vs edgenet f32 and edgenet vs onnxruntime) with a description of the machine into
BENCHMARKS.md, between the markers

    <!-- side-by-side:begin -->  and  <!-- side-by-side:end -->

(everything outside them is kept). The inputs are synthetic: latency and memory do not depend
on pixel values for these networks.

usage:
  scripts/bench_side_by_side.py [--quick] [--models mobilenet_v2,resnet50,efficientnet_lite0,mobilenet_v3_large]
                                [--warmup W] [--runs R] [--run-frames N] [--edgenet BIN]
                                [--workdir DIR] [--rebuild] [--output BENCHMARKS.md] [--print-only]
                                [--note TEXT]

The ONNX files are built with the edgenet binary in --workdir (target/side-by-side by default)
and reused by later runs (--rebuild makes them again): `edgenet export ARCH --fold-bn` (Lite0
with the shipped pretrained weights, the others with edgenet's seeded weights, which cost the
same time) and `edgenet quantize --calibrate models/calibration`. Needs python3 with numpy,
onnxruntime and Pillow (`pip install onnxruntime numpy pillow`; Pillow reads the calibration
photos for onnxruntime's quantizer).
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "mobilenet_v2": ("MobileNetV2-1.0 224²", []),
    "resnet50": ("ResNet-50 224²", []),
    "efficientnet_lite0": ("EfficientNet-Lite0 224²", ["--weights", os.path.join(ROOT, "models", "efficientnet_lite0.safetensors")]),
    "mobilenet_v3_large": ("MobileNetV3-Large 224²", []),
}
BEGIN, END = "<!-- side-by-side:begin -->", "<!-- side-by-side:end -->"
# The file made by onnxruntime's own quantizer, as its row is labelled.
ORT_INT8 = "int8, onnxruntime's quantizer"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ort_quantize(f32, out, calib_dir):
    """onnxruntime's own int8: quantize_static (QDQ, QUInt8 activations, QInt8 per-channel
    weights) calibrated on the photos in `calib_dir`, each preprocessed as the file's
    `edgenet.preprocess` metadata says (resize, centre crop or squash, mean/std)."""
    import numpy as np
    import onnx
    from PIL import Image
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    meta = {p.key: p.value for p in onnx.load(f32, load_external_data=False).metadata_props}
    pre = json.loads(meta["edgenet.preprocess"])
    w, h = pre["width"], pre["height"]
    filt = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[pre["filter"]]
    mean, std = np.array(pre["mean"], np.float32), np.array(pre["std"], np.float32)

    def tensor(path):
        img = Image.open(path).convert("RGB")
        crop = pre["crop"]
        if isinstance(crop, dict) and "center" in crop:
            side = crop["center"]["fraction"] * min(img.size)
            left, top = (img.size[0] - side) / 2, (img.size[1] - side) / 2
            img = img.resize((w, h), filt, box=(left, top, left + side, top + side))
        else:
            img = img.resize((w, h), filt)
        x = (np.asarray(img, np.float32) - mean) / std
        return x.transpose(2, 0, 1)[None].astype(np.float32)

    name = onnx.load(f32, load_external_data=False).graph.input[0].name
    photos = sorted(os.path.join(calib_dir, f) for f in os.listdir(calib_dir) if f.lower().endswith((".png", ".jpg", ".jpeg")))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(photos)

        def get_next(self):
            p = next(self.it, None)
            return None if p is None else {name: tensor(p)}

    quantize_static(f32, out, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)


# --------------------------------------------------------------------------------------------
# The onnxruntime child: `bench_side_by_side.py --ort-child MODEL --warmup W --runs R`.

def vm_status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def ort_child(model, warmup, runs, threads=1):
    import numpy as np
    import onnxruntime as ort
    baseline = vm_status("VmRSS:")  # interpreter + numpy + onnxruntime, no model yet
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    first = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in first.shape]
    x = np.random.default_rng(1).uniform(-1.0, 1.0, size=shape).astype(np.float32)
    feed = {first.name: x}
    t0 = time.perf_counter()
    sess.run(None, feed)
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        sess.run(None, feed)
    lat = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        lat.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({
        "onnxruntime": ort.__version__, "load_ms": load_ms, "first_inference_ms": first_ms,
        "latency_ms": stats(lat), "runs": runs, "warmup": warmup,
        "rss_baseline_bytes": baseline, "rss_peak_bytes": vm_status("VmHWM:"),
    }))


# --------------------------------------------------------------------------------------------

def stats(samples):
    v = sorted(samples)
    n = len(v)
    rank = lambda p: v[min(n, max(1, math.ceil(p / 100 * n))) - 1]  # nearest rank, as `edgenet bench`
    mean = sum(v) / n
    return {"min": v[0], "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": v[-1], "mean": mean}


def run_child(cmd, what):
    """Runs cmd; returns (stdout, peak RSS in bytes from wait4's ru_maxrss)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise SystemExit(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{stderr}")
    return stdout, usage.ru_maxrss * 1024


def check_call(cmd):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def has_run_command(edgenet):
    return subprocess.run([edgenet, "run", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def git_describe():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tract_version():
    try:
        lock = open(os.path.join(ROOT, "Cargo.lock")).read()
        m = re.search(r'name = "tract-core"\nversion = "([^"]+)"', lock)
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def mib(b):
    return "–" if b is None else f"{b / 1048576:.1f} MiB"


def ratio(a, b, fmt="{:.2f}×"):
    return "–" if not a or not b else fmt.format(a / b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ort-child", help=argparse.SUPPRESS)
    ap.add_argument("--ort-quantize", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--ort-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="1,2", help="thread counts of the kernel-set and threads table (empty: no table)")
    ap.add_argument("--kernels", default="avx2,avx512vnni,neon,dotprod",
                    help="int8 kernel sets to force one by one in that table (EDGENET_KERNELS); sets this CPU lacks are listed as such")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--quick", action="store_true", help="1 warm-up, 5 timed runs, 10-frame run streams")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs after the first (default 3, --quick 1)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs (default 30, --quick 5)")
    ap.add_argument("--run-frames", type=int, default=None, help="frames of the `edgenet run` stream (default 100, --quick 10)")
    ap.add_argument("--edgenet", default=os.path.join(ROOT, "target", "release", "edgenet"), help="the edgenet binary (built with cargo build --release if missing)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "target", "side-by-side"), help="where the ONNX files are made and kept")
    ap.add_argument("--rebuild", action="store_true", help="make the ONNX files again")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--print-only", action="store_true", help="print the markdown, do not write BENCHMARKS.md")
    ap.add_argument("--note", default="", help="a sentence about the conditions, put under the machine description")
    args = ap.parse_args()
    if args.ort_child:
        ort_child(args.ort_child, args.warmup or 0, args.runs or 1, args.ort_threads)
        return
    if args.ort_quantize:
        ort_quantize(*args.ort_quantize, os.path.join(ROOT, "models", "calibration"))
        return
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    runs = args.runs if args.runs is not None else (5 if args.quick else 30)
    frames = args.run_frames if args.run_frames is not None else (10 if args.quick else 100)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for n in names:
        if n not in MODELS:
            raise SystemExit(f"unknown model {n!r}; choose from {', '.join(MODELS)}")
    if runs < 1 or warmup < 0 or frames < 1:
        raise SystemExit("--runs and --run-frames must be ≥ 1, --warmup ≥ 0")
    try:
        import onnxruntime  # noqa: F401  (the child needs it; fail early with a clear message)
        import PIL  # noqa: F401  (onnxruntime's quantizer reads the calibration photos with it)
    except ImportError:
        raise SystemExit("onnxruntime, numpy and Pillow are needed: pip install onnxruntime numpy pillow")
    edgenet = args.edgenet
    if not os.path.exists(edgenet):
        check_call(["cargo", "build", "--release", "--manifest-path", os.path.join(ROOT, "Cargo.toml")])
    os.makedirs(args.workdir, exist_ok=True)
    with_run = has_run_command(edgenet)
    log(f"edgenet run: {'measured' if with_run else 'not in this build, column left empty'}")

    rows = []
    machine = None
    ort_version = None
    ort_baseline = None
    edgenet_baseline = None
    for name in names:
        title, extra = MODELS[name]
        f32 = os.path.join(args.workdir, f"{name}.onnx")
        int8 = os.path.join(args.workdir, f"{name}.int8.onnx")
        if args.rebuild or not os.path.exists(f32):
            check_call([edgenet, "export", name, *extra, "--fold-bn", "-o", f32])
        if args.rebuild or not os.path.exists(int8):
            check_call([edgenet, "quantize", f32, "--calibrate", os.path.join(ROOT, "models", "calibration"), "-o", int8])
        ort_int8 = os.path.join(args.workdir, f"{name}.ort-int8.onnx")
        if args.rebuild or not os.path.exists(ort_int8):
            log(f"{title}: onnxruntime quantize_static")
            # In a child: this process stays small (it spawns the measured ones).
            run_child([sys.executable, os.path.abspath(__file__), "--ort-quantize", f32, ort_int8], "onnxruntime quantize_static")
        for precision, path in (("f32", f32), ("int8", int8), (ORT_INT8, ort_int8)):
            log(f"{title} {precision}: edgenet bench")
            try:
                out, e_rss = run_child([edgenet, "bench", path, "--json", "--threads", "1", "--warmup", str(warmup), "--runs", str(runs)], "edgenet bench")
                e = json.loads(out)
                e_rss = e["memory"].get("rss_peak_bytes") or e_rss
            except SystemExit as err:
                # onnxruntime's QDQ file may be one edgenet does not run: say so in the table.
                log(f"{title} {precision}: edgenet could not run it: {err}")
                e, e_rss = None, None
            if e is None:
                log(f"{title} {precision}: onnxruntime")
                out, o_rss = run_child([sys.executable, os.path.abspath(__file__), "--ort-child", path, "--warmup", str(warmup), "--runs", str(runs)], "onnxruntime")
                o = json.loads(out)
                o_rss = o.get("rss_peak_bytes") or o_rss
                rows.append({"model": title, "precision": precision, "file_bytes": os.path.getsize(path), "edgenet": None, "ort": o,
                             "edgenet_rss": None, "ort_rss": o_rss, "run_rss": None})
                continue
            machine = machine or e["machine"]
            edgenet_baseline = e["memory"].get("rss_start_bytes") or edgenet_baseline
            log(f"{title} {precision}: onnxruntime")
            out, o_rss = run_child([sys.executable, os.path.abspath(__file__), "--ort-child", path, "--warmup", str(warmup), "--runs", str(runs)], "onnxruntime")
            o = json.loads(out)
            o_rss = o.get("rss_peak_bytes") or o_rss
            ort_version = o["onnxruntime"]
            ort_baseline = o["rss_baseline_bytes"] or ort_baseline
            r_rss = None
            if with_run:
                log(f"{title} {precision}: edgenet run, {frames} synthetic frames")
                out, r_rss = run_child([edgenet, "run", path, "--source", "synthetic:640x480", "--max-frames", str(frames), "--threads", "1", "--json"], "edgenet run")
                summary = json.loads(out.strip().splitlines()[-1])
                r_rss = (summary.get("resident") or {}).get("peak_bytes") or r_rss
            rows.append({"model": title, "precision": precision, "file_bytes": os.path.getsize(path), "edgenet": e, "ort": o,
                         "edgenet_rss": e_rss, "ort_rss": o_rss, "run_rss": r_rss})

    md = render(rows, machine, ort_version, warmup, runs, frames, with_run, ort_baseline, edgenet_baseline, args.note)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if threads:
        md += threads_table(names, args.workdir, edgenet, warmup, runs, threads, [k for k in args.kernels.split(",") if k])
    if args.print_only:
        print(md)
        return
    write_section(args.output, md)
    log(f"wrote {args.output}")
    print(md)


def threads_table(names, workdir, edgenet, warmup, runs, threads, kernels):
    """edgenet int8 with each kernel set forced, and onnxruntime on its own quantizer's file, at
    each thread count: p50 latency, the ratio to onnxruntime at the same count, and the
    speed-up over one thread."""
    lines = ["", "### Kernel sets and threads", "",
             f"edgenet's int8 file with each kernel set forced (`EDGENET_KERNELS`), `--threads N`; onnxruntime on its own "
             f"quantizer's file with `intra_op_num_threads = N`. p50 of {runs} timed runs after {warmup} warm-up; "
             "the ratio is edgenet / onnxruntime at the same N (above 1× edgenet is slower), the speed-up is p50 at "
             "one thread / p50 at N.", ""]
    head = "| network | runtime, kernels | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}: p50, ratio, speed-up" for t in threads) + " |"
    lines += [head, "|---|---|" + "---:|" * len(threads)]
    missing = set()
    for name in names:
        title = MODELS[name][0]
        int8 = os.path.join(workdir, f"{name}.int8.onnx")
        ort_int8 = os.path.join(workdir, f"{name}.ort-int8.onnx")
        ort = {}
        for t in threads:
            log(f"{title}: onnxruntime, {t} threads")
            out, _ = run_child([sys.executable, os.path.abspath(__file__), "--ort-child", ort_int8, "--warmup", str(warmup),
                                "--runs", str(runs), "--ort-threads", str(t)], "onnxruntime")
            ort[t] = json.loads(out)["latency_ms"]["p50"]
        rows = []
        for k in kernels:
            got = {}
            for t in threads:
                log(f"{title}: edgenet int8, kernels {k}, {t} threads")
                env = dict(os.environ, EDGENET_KERNELS=k)
                p = subprocess.run([edgenet, "bench", int8, "--json", "--threads", str(t), "--warmup", str(warmup), "--runs", str(runs)],
                                   capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    missing.add(k)
                    break
                got[t] = json.loads(p.stdout)["latency_ms"]["p50"]
            if len(got) == len(threads):
                rows.append((f"edgenet, `{k}`", got))
        rows.append(("onnxruntime, its own int8 file", ort))
        for who, p50 in rows:
            cells = [f"{p50[t]:.2f} ms, {p50[t] / ort[t]:.2f}×, {p50[threads[0]] / p50[t]:.2f}×" for t in threads]
            lines.append(f"| {title} | {who} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"Kernel sets this CPU lacks (not measured here): {', '.join(sorted(missing))}."]
    return "\n".join(lines) + "\n"


def render(rows, machine, ort_version, warmup, runs, frames, with_run, ort_baseline, edgenet_baseline, note):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    isa = " ".join(machine.get("isa", [])) if machine else ""
    load = machine.get("load_average_1m") if machine else None
    lines = [
        f"Generated by `scripts/bench_side_by_side.py` on {now}, edgenet {git_describe()}, tract {tract_version()}, "
        f"onnxruntime {ort_version}, Python {platform.python_version()}.",
        "",
        f"Machine: {machine['cpu'] if machine else '?'}, {machine['logical_cores'] if machine else '?'} logical cores, "
        f"{machine['arch'] if machine else '?'} ({isa}), {machine['os'] if machine else ''}; "
        f"1-minute load average {load if load is not None else '?'} when the first model was measured.",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        f"One thread in both runtimes, the same ONNX file, a synthetic input; 1 first inference, {warmup} warm-up, "
        f"{runs} timed runs; latency of the model alone (no decoding or preprocessing). Peak RSS is the VmHWM each child process reads of itself at the end "
        "(loading the model and all of its inferences; not wait4's ru_maxrss, which Linux makes at least the parent's size).",
        "",
        "| network | precision | file | edgenet p50 | edgenet mean | onnxruntime p50 | onnxruntime mean | edgenet / onnxruntime (p50) "
        "| edgenet peak RSS | onnxruntime peak RSS | `edgenet run` peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        o = r["ort"]["latency_ms"]
        if r["edgenet"] is None:
            lines.append(
                f"| {r['model']} | {r['precision']} | {r['file_bytes'] / 1e6:.1f} MB | edgenet cannot run it | | "
                f"{o['p50']:.1f} ms | {o['mean']:.1f} ms | | | {mib(r['ort_rss'])} | |"
            )
            continue
        e = r["edgenet"]["latency_ms"]
        run_cell = mib(r["run_rss"]) if with_run and r["run_rss"] else "n/a"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['file_bytes'] / 1e6:.1f} MB | {e['p50']:.1f} ms | {e['mean']:.1f} ms "
            f"| {o['p50']:.1f} ms | {o['mean']:.1f} ms | {ratio(e['p50'], o['p50'])} | {mib(r['edgenet_rss'])} "
            f"| {mib(r['ort_rss'])} | {run_cell} |"
        )
    lines += ["", f"The rows \"{ORT_INT8}\" are onnxruntime's `quantize_static` output (QDQ, QUInt8 activations, "
              "QInt8 per-channel weights, the same calibration photos): the int8 form onnxruntime is fastest on. "
              "edgenet's int8 file (signed activations, QLinearConv) is one of onnxruntime's slow paths, so the "
              "comparison that counts for a user choosing a runtime is edgenet int8 against that row.", "",
              "Ratios of p50 latencies. The speed-up is f32 / int8 (above 1× the int8 model is faster); the other "
              "columns are edgenet / onnxruntime (above 1× edgenet is slower or bigger).", "",
              "| network | edgenet int8 speed-up over edgenet f32 | edgenet int8 / onnxruntime on edgenet's int8 file "
              "| **edgenet int8 / onnxruntime int8 on its own quantizer's file** | edgenet f32 / onnxruntime f32 "
              "| peak RSS edgenet int8 / onnxruntime int8 (own file) |",
              "|---|---:|---:|---:|---:|---:|"]
    by = {}
    for r in rows:
        by.setdefault(r["model"], {})[r["precision"]] = r
    for model, d in by.items():
        f, q, own = d.get("f32"), d.get("int8"), d.get(ORT_INT8)
        if not f or not q or not f["edgenet"] or not q["edgenet"]:
            continue
        fe, qe = f["edgenet"]["latency_ms"]["p50"], q["edgenet"]["latency_ms"]["p50"]
        speedup = ratio(fe, qe) if fe >= qe else f"{fe / qe:.2f}× (int8 {qe / fe:.1f}× slower)"
        own_cell = ratio(qe, own["ort"]["latency_ms"]["p50"]) if own else "n/a"
        own_rss = ratio(q["edgenet_rss"], own["ort_rss"]) if own else "n/a"
        lines.append(
            f"| {model} | {speedup} | {ratio(qe, q['ort']['latency_ms']['p50'])} | {own_cell} "
            f"| {ratio(fe, f['ort']['latency_ms']['p50'])} | {own_rss} |"
        )
    lines += [
        "",
        f"Baselines inside those peaks: the edgenet process before reading a model holds {mib(edgenet_baseline)} "
        f"(`bench`'s `rss_start_bytes`); the Python child with numpy and onnxruntime imported, before creating the "
        f"session, holds {mib(ort_baseline)}.",
    ]
    if not with_run:
        lines += ["", "`edgenet run` is not in this build: its column is empty until the camera runner lands."]
    else:
        lines += ["", f"`edgenet run`: `--source synthetic:640x480 --max-frames {frames} --threads 1 --json`, decoding, "
                  "preprocessing and top-K included."]
    return "\n".join(lines) + "\n"


def write_section(path, md):
    block = f"{BEGIN}\n{md}{END}\n"
    if os.path.exists(path):
        text = open(path).read()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            text = head + block + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
    else:
        text = "# Benchmarks\n\n" + block
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
