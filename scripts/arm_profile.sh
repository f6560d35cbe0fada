#!/usr/bin/env bash
# Where one inference's guest instructions go on an emulated ARM core: per function and per
# translated block, for `edgenet bench` of a model, counted under qemu user mode with the TCG
# plugin scripts/qemu/tbprof.c (instructions, not cycles). One inference = (5 runs − 1 run) / 4,
# so loading and the first inference cancel out.
#
#   scripts/arm_profile.sh cortex-a72 target/arm-insns/mobilenet_v2_224.int8.onnx [TOP]
#
# Needs the aarch64 release build (unstripped: cargo build --release --target
# aarch64-unknown-linux-gnu), qemu-user, gcc and the aarch64 cross libc (see .ci/run). The 32-bit
# cores (cortex-a7, -a9, -a15) run the armv7 release build under qemu-arm instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: arm_profile.sh CPU MODEL [TOP]" >&2; exit 2; }
cpu=$1; model=$2; top=${3:-14}
case $cpu in
  cortex-a7|cortex-a9|cortex-a15) qemu=qemu-arm; sysroot=/usr/arm-linux-gnueabihf; target=armv7-unknown-linux-gnueabihf ;;
  *) qemu=qemu-aarch64; sysroot=/usr/aarch64-linux-gnu; target=aarch64-unknown-linux-gnu ;;
esac
bin=$root/target/$target/release/edgenet
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
gcc -O2 -shared -fPIC -o "$work/libtbprof.so" "$root/scripts/qemu/tbprof.c"
for r in 1 5; do
  TBPROF_OUT=$work/runs$r.txt $qemu -cpu "$cpu" -L "$sysroot" -plugin "$work/libtbprof.so,top=1" \
    "$bin" bench "$model" --warmup 0 --runs $r >/dev/null 2>&1
done
python3 - "$work" "$top" <<'PY'
import collections, sys
work, top = sys.argv[1], int(sys.argv[2])
def load(f):
    d = {}
    for line in open(f):
        va, n, count, sym = line.split()[:4]
        d[(va, sym)] = (int(n), int(count))
    return d
five, one = load(f"{work}/runs5.txt"), load(f"{work}/runs1.txt")
per_fn, blocks = collections.Counter(), []
for key, (n, count) in five.items():
    d = n * (count - one.get(key, (n, 0))[1]) / 4
    per_fn[key[1]] += d
    blocks.append((d, key[0], n, (count - one.get(key, (n, 0))[1]) / 4, key[1]))
print(f"per inference: {sum(per_fn.values()) / 1e6:.2f} M instructions (emulated)")
for sym, v in per_fn.most_common(top):
    print(f"{v / 1e6:9.2f} M  {sym[:110]}")
print("\nhottest translated blocks (address, instructions, executions per inference):")
for d, va, n, x, sym in sorted(blocks, reverse=True)[:top]:
    print(f"{d / 1e6:9.2f} M  {va} n={n} x{x:.0f}  {sym[:70]}")
PY
