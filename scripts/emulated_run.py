#!/usr/bin/env python3
"""End to end on the Raspberry Pi binaries, under qemu: a yuv420 stream from ffmpeg into
`edgenet run`, and the same labels as the x86-64 binary.

The model is EfficientNet-Lite0 with its real weights (models/efficientnet_lite0.safetensors),
exported and quantized to int8 on the calibration photos by the host binary (the full build).
The stream is photos from models/calibration, each scaled to 320x240 and converted to yuv420p
by ffmpeg, one frame a photo. Each runtime binary given with --target runs the same stream
under its emulator; every frame must have the same top-1 class as on the host, and the top-5
probabilities must agree within 1e-4 (the int8 layers are bit-identical across kernel sets;
the float epilogue goes through another libm). Each runtime binary must also refuse
`quantize` with an error naming the `tools` feature.

    scripts/emulated_run.py --host target/release/edgenet \
        --target "qemu-aarch64 -cpu cortex-a72" target/aarch64-unknown-linux-musl/device/edgenet \
        --target "qemu-arm -cpu cortex-a7" target/armv7-unknown-linux-gnueabihf/device/edgenet

Exit status 0 when every target agrees with the host, 1 otherwise (with what differed).
Needs ffmpeg and the qemu user-mode emulators on the PATH. Prints the comparison table.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ["brick.png", "clock_motion.png", "coins.png", "grass.png", "horse.png", "motorcycle_left.png"]
W, H = 320, 240


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {shlex.join(cmd)}\n{r.stderr.decode(errors='replace')[-2000:]}")
    return r


def make_model(host, work):
    f32 = os.path.join(work, "lite0.onnx")
    int8 = os.path.join(work, "lite0.int8.onnx")
    weights = os.path.join(ROOT, "models", "efficientnet_lite0.safetensors")
    run([host, "-q", "export", "efficientnet_lite0", "--weights", weights, "--fold-bn", "-o", f32])
    run([host, "-q", "quantize", f32, "--calibrate", os.path.join(ROOT, "models", "calibration"), "-o", int8])
    return int8


def make_stream(work):
    frames = bytearray()
    for p in PHOTOS:
        r = run(["ffmpeg", "-v", "error", "-i", os.path.join(ROOT, "models", "calibration", p),
                 "-vf", f"scale={W}:{H}", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"])
        assert len(r.stdout) == W * H * 3 // 2, (p, len(r.stdout))
        frames += r.stdout
    path = os.path.join(work, "photos.yuv")
    with open(path, "wb") as f:
        f.write(frames)
    return path


def classify(prefix, binary, model, stream):
    cmd = prefix + [binary, "run", model, "--source", "-", "--format", "yuv420", "--size", f"{W}x{H}",
                    "--live", "off", "--json", "--top", "5"]
    t = time.time()
    with open(stream, "rb") as f:
        r = run(cmd, stdin=f)
    frames, summary = [], None
    for line in r.stdout.decode().splitlines():
        obj = json.loads(line)
        if obj.get("type") == "frame":
            frames.append(obj["top"])
        elif obj.get("type") == "summary":
            summary = obj
    return frames, summary, time.time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True, help="the x86-64 edgenet (full build: it makes the model)")
    ap.add_argument("--target", nargs=2, action="append", metavar=("EMULATOR", "BINARY"), default=[],
                    help='an emulator command ("qemu-aarch64 -cpu cortex-a72") and a runtime binary')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgenet-emulated-") as work:
        model = make_model(args.host, work)
        stream = make_stream(work)
        want, summary, secs = classify([], args.host, model, stream)
        if len(want) != len(PHOTOS) or summary is None or summary["processed"] != len(PHOTOS):
            sys.exit(f"the host classified {len(want)} of {len(PHOTOS)} frames: {summary}")
        print(f"host {args.host}: {len(want)} frames in {secs:.1f} s")
        for p, top in zip(PHOTOS, want):
            print(f"  {p:22} {top[0]['label'][:40]:40} {top[0]['probability']:.4f}")
        failures = []
        for emulator, binary in args.target:
            got, summary, secs = classify(shlex.split(emulator), binary, model, stream)
            size = os.path.getsize(binary)
            bad = []
            if len(got) != len(want) or summary is None or summary["processed"] != len(PHOTOS):
                bad.append(f"{len(got)} frames reported, summary {summary}")
            for i, (a, b) in enumerate(zip(want, got)):
                if a[0]["index"] != b[0]["index"]:
                    bad.append(f"frame {i} ({PHOTOS[i]}): top-1 {b[0]['label']!r}, host {a[0]['label']!r}")
                diff = max(abs(x["probability"] - y["probability"]) for x, y in zip(a, b))
                if [x["index"] for x in a] != [y["index"] for y in b] or diff > 1e-4:
                    bad.append(f"frame {i} ({PHOTOS[i]}): top-5 {[y['index'] for y in b]} vs host "
                               f"{[x['index'] for x in a]}, probabilities differ by up to {diff:.2e}")
            # The runtime build names the feature a missing verb needs.
            r = subprocess.run(shlex.split(emulator) + [binary, "quantize", model], capture_output=True)
            if r.returncode == 0 or b"`tools` feature" not in r.stderr:
                bad.append(f"`edgenet quantize` in the runtime build: exit {r.returncode}, {r.stderr.decode(errors='replace')!r}")
            status = "same top-1 and top-5 as the host" if not bad else "DIFFERS"
            print(f"{emulator} {binary} ({size / 2**20:.2f} MiB): {len(got)} frames in {secs:.1f} s (emulated), {status}")
            for b in bad:
                print("  " + b)
            failures += bad
        if failures:
            sys.exit(1)


if __name__ == "__main__":
    main()
