//! 32-bit ARM (armv7, 32-bit Raspberry Pi OS on a Pi 2, 3 or Zero 2) NEON int8 GEMM.
//!
//! The armv7 targets do not assume NEON (a Cortex-A9 without it is still armv7), and Rust's
//! NEON intrinsics and `target_feature(enable = "neon")` are not stable for them, so the kernel
//! is `asm!` behind `.fpu neon`, run only when the kernel reports NEON and 32 double registers
//! (`HWCAP_NEON`, `HWCAP_VFPD32`; see `isa.rs`). It uses `d16`–`d31`, which code built for these
//! targets never touches (their baseline is VFPv3-D16) and which the calling convention leaves
//! to the callee anyway; `d0`–`d15` are declared as clobbered.
//!
//! The layout is "c16", as the aarch64 NEON kernel's: weights in blocks of 4 rows and columns in
//! panels of 2 output positions, each with 16 consecutive `k` contiguous. Per (row, column) pair
//! and 16 `k`: `vmull.s8` + `vmlal.s8` (16 products summed pairwise in i16) and `vpadal.s16`
//! into the pair's 4 i32 lanes, so 16 multiply-adds per 3 instructions. Two products fit i16
//! only while the weights avoid −128, as on aarch64 (`dense_set` gives such a layer the portable
//! kernel). The epilogue reduces the lanes (`vpadd`), adds the biases and requantises in
//! registers exactly as [`Requant::one`](crate::kernels::int8::Requant): `f32(acc) · scale`
//! clamped to `[−128 − zp, 127 − zp]`, rounded half to even with the `1.5 · 2²³` magic number
//! (armv7 NEON has no rounding conversion), plus `zp`. NEON flushes subnormals to zero, which
//! cannot change an integer rounded from them.

use crate::kernels::int8::Out;

/// Rows of a weight block.
pub(crate) const MR: usize = 4;
/// Columns of a panel.
pub(crate) const NR: usize = 2;
/// `k` per packed group.
pub(crate) const KC: usize = 16;

/// 1.5 · 2²³ (see the module doc).
const MAGIC: f32 = 12_582_912.0;

/// Packs `[m][k]` weights as `[m / 4][k / 16][4][16]`, zero beyond `k` and `m`.
pub(crate) fn pack_a(weights: &[i8], m: usize, k: usize) -> Vec<i8> {
    let kb = k.div_ceil(KC);
    let mut a = vec![0i8; m.div_ceil(MR) * kb * MR * KC];
    for (row, w) in weights.chunks_exact(k).enumerate().take(m) {
        let (blk, r) = (row / MR, row % MR);
        for (g, chunk) in w.chunks(KC).enumerate() {
            let at = ((blk * kb + g) * MR + r) * KC;
            a[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
    a
}

/// Bytes of packed columns for `ncols` columns of `k` values.
pub(crate) fn packed_len(k: usize, ncols: usize) -> usize {
    ncols.div_ceil(NR) * k.div_ceil(KC) * NR * KC
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels
/// `[ncols / 2][k / 16][2][16]`, zero beyond `k` and `ncols`.
///
/// # Panics
/// If `src` is too short for `k` rows of those columns or `packed` shorter than
/// [`packed_len`]`(k, ncols)`.
pub(crate) fn pack_b(src: &[i8], k: usize, stride: usize, c0: usize, ncols: usize, packed: &mut [i8]) {
    let kb = k.div_ceil(KC);
    let panel = kb * NR * KC;
    let packed = &mut packed[..packed_len(k, ncols)];
    assert!(k == 0 || ncols == 0 || src.len() >= (k - 1) * stride + c0 + ncols, "pack_b past its source");
    for (p, dst) in packed.chunks_exact_mut(panel).enumerate() {
        let col = c0 + p * NR;
        let two = p * NR + 1 < ncols;
        for (g, group) in dst.chunks_exact_mut(NR * KC).enumerate() {
            let (first, second) = group.split_at_mut(KC);
            let rows = (k - g * KC).min(KC);
            for i in 0..rows {
                let at = (g * KC + i) * stride + col;
                first[i] = src[at];
                second[i] = if two { src[at + 1] } else { 0 };
            }
            first[rows..].fill(0);
            second[rows..].fill(0);
        }
    }
}

/// Per row block: what the epilogue loads, in the order it loads it.
#[repr(C, align(16))]
struct Params {
    /// Rows' biases as `[b0, b0, b1, b1, b2, b2, b3, b3]` (the lanes of two rows' two columns).
    bias: [i32; 8],
    /// Rows' scales, in the same order.
    scale: [f32; 8],
    lo: [f32; 4],
    hi: [f32; 4],
    magic: [f32; 4],
    /// The bits of [`MAGIC`] minus the zero point.
    unmagic: [i32; 4],
}

/// The `asm!` text of one group of 16 `k` in [`tile`]: rows in `q0`–`q3`, columns in `q4`,
/// `q5`; the pair (row r, column c) summed pairwise in i16 through `q6`/`q7`, then into its
/// accumulator `q(8 + 2r + c)` by `$op`: `vpaddl.s16` for the first group, `vpadal.s16` after.
#[rustfmt::skip]
macro_rules! c16_pairs {
    ($op:literal) => {
        concat!(
            "vmull.s8 q6, d0, d8\n", "vmlal.s8 q6, d1, d9\n", $op, " q8, q6\n",
            "vmull.s8 q7, d0, d10\n", "vmlal.s8 q7, d1, d11\n", $op, " q9, q7\n",
            "vmull.s8 q6, d2, d8\n", "vmlal.s8 q6, d3, d9\n", $op, " q10, q6\n",
            "vmull.s8 q7, d2, d10\n", "vmlal.s8 q7, d3, d11\n", $op, " q11, q7\n",
            "vmull.s8 q6, d4, d8\n", "vmlal.s8 q6, d5, d9\n", $op, " q12, q6\n",
            "vmull.s8 q7, d4, d10\n", "vmlal.s8 q7, d5, d11\n", $op, " q13, q7\n",
            "vmull.s8 q6, d6, d8\n", "vmlal.s8 q6, d7, d9\n", $op, " q14, q6\n",
            "vmull.s8 q7, d6, d10\n", "vmlal.s8 q7, d7, d11\n", $op, " q15, q7\n",
        )
    };
}

/// One 4 × 2 tile over `kb ≥ 1` groups: the 8 outputs, requantised, to `out` as
/// `[r0c0, r0c1, r1c0, r1c1, r2c0, r2c1, r3c0, r3c1]`. 29 instructions per group (24 for the
/// products, 3 loads, the loop's 2), 38 for the epilogue.
///
/// # Safety
/// The CPU has NEON with 32 double registers; `a` is readable for `kb · 64` bytes, `b` for
/// `kb · 32`, `out` writable for 8.
#[inline]
unsafe fn tile(a: *const i8, b: *const i8, kb: usize, params: &Params, out: *mut i8) {
    debug_assert!(kb >= 1);
    // SAFETY: the caller's contract; the asm reads `params` whole and writes `out[..8]`.
    unsafe {
        std::arch::asm!(
            ".fpu neon",
            "vld1.8 {{d0-d3}}, [{a}]!",
            "vld1.8 {{d4-d7}}, [{a}]!",
            "vld1.8 {{d8-d11}}, [{b}]!",
            c16_pairs!("vpaddl.s16"),
            "subs {kb}, {kb}, #1",
            "beq 2f",
            "1:",
            "vld1.8 {{d0-d3}}, [{a}]!",
            "vld1.8 {{d4-d7}}, [{a}]!",
            "vld1.8 {{d8-d11}}, [{b}]!",
            c16_pairs!("vpadal.s16"),
            "subs {kb}, {kb}, #1",
            "bne 1b",
            "2:",
            // Each pair's 4 lanes to one sum: rows 0, 1 in q8 and rows 2, 3 in q12, as
            // [r c0, r c1, r' c0, r' c1].
            "vpadd.i32 d16, d16, d17",
            "vpadd.i32 d18, d18, d19",
            "vpadd.i32 d16, d16, d18",
            "vpadd.i32 d20, d20, d21",
            "vpadd.i32 d22, d22, d23",
            "vpadd.i32 d17, d20, d22",
            "vpadd.i32 d24, d24, d25",
            "vpadd.i32 d26, d26, d27",
            "vpadd.i32 d24, d24, d26",
            "vpadd.i32 d28, d28, d29",
            "vpadd.i32 d30, d30, d31",
            "vpadd.i32 d25, d28, d30",
            "vld1.32 {{d0-d3}}, [{p}]!",
            "vld1.32 {{d4-d7}}, [{p}]!",
            "vld1.32 {{d8-d11}}, [{p}]!",
            "vld1.32 {{d12-d15}}, [{p}]",
            "vadd.i32 q8, q8, q0",
            "vadd.i32 q12, q12, q1",
            "vcvt.f32.s32 q8, q8",
            "vcvt.f32.s32 q12, q12",
            "vmul.f32 q8, q8, q2",
            "vmul.f32 q12, q12, q3",
            "vmax.f32 q8, q8, q4",
            "vmax.f32 q12, q12, q4",
            "vmin.f32 q8, q8, q5",
            "vmin.f32 q12, q12, q5",
            "vadd.f32 q8, q8, q6",
            "vadd.f32 q12, q12, q6",
            "vsub.i32 q8, q8, q7",
            "vsub.i32 q12, q12, q7",
            "vmovn.i32 d16, q8",
            "vmovn.i32 d17, q12",
            "vmovn.i16 d16, q8",
            "vst1.8 {{d16}}, [{out}]",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            kb = inout(reg) kb => _,
            p = inout(reg) params as *const Params => _,
            out = in(reg) out,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _, out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _, out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nostack),
        );
    }
}

/// The GEMM of packed columns with the requantisation: `y[row][col0 + c]` for every row `< m`
/// and column `c < ncols`, from weights packed by [`pack_a`] (`kb` groups per row) and columns
/// packed by [`pack_b`]; `bias` has the input zero point folded in.
///
/// # Safety
/// The CPU has NEON with 32 double registers ([`KernelSet::Neon`](crate::kernels::KernelSet)
/// is available); the caller owns columns `col0..col0 + ncols` of the `m` rows of `y` (row
/// length `n`).
///
/// # Panics
/// If `a`, `packed`, `bias`, `scale` or `y` is too short for the sizes given.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(a: &[i8], kb: usize, m: usize, packed: &[i8], ncols: usize, bias: &[i32], scale: &[f32], zp: i32, y: Out, n: usize, col0: usize) {
    if m == 0 || ncols == 0 {
        return;
    }
    assert!(kb > 0, "k = 0");
    let panels = ncols.div_ceil(NR);
    assert!(a.len() >= m.div_ceil(MR) * kb * MR * KC && packed.len() >= panels * kb * NR * KC, "GEMM operands too short");
    assert!(bias.len() >= m && scale.len() >= m, "GEMM without a bias and scale per row");
    let (y, len) = y.raw();
    assert!(col0 + ncols <= n && (m - 1) * n + col0 + ncols <= len, "GEMM columns past the output");
    let mut params = Params {
        bias: [0; 8],
        scale: [0.0; 8],
        lo: [(-128 - zp) as f32; 4],
        hi: [(127 - zp) as f32; 4],
        magic: [MAGIC; 4],
        unmagic: [MAGIC.to_bits() as i32 - zp; 4],
    };
    let mut t = [0i8; MR * NR];
    for blk in 0..m.div_ceil(MR) {
        let rows = (m - blk * MR).min(MR);
        for r in 0..MR {
            let (b, s) = if r < rows { (bias[blk * MR + r], scale[blk * MR + r]) } else { (0, 0.0) };
            params.bias[2 * r..2 * r + 2].fill(b);
            params.scale[2 * r..2 * r + 2].fill(s);
        }
        // SAFETY: within `a` and `packed` (asserted above); the rows' columns col0..col0 + ncols
        // are this caller's and within `y` (asserted).
        unsafe {
            let ab = a.as_ptr().add(blk * kb * MR * KC);
            let dst = y.add(blk * MR * n + col0);
            for p in 0..panels {
                tile(ab, packed.as_ptr().add(p * kb * NR * KC), kb, &params, t.as_mut_ptr());
                let cols = (ncols - p * NR).min(NR);
                let d = dst.add(p * NR);
                if cols == NR {
                    for r in 0..rows {
                        std::ptr::write_unaligned(d.add(r * n) as *mut [i8; 2], [t[2 * r], t[2 * r + 1]]);
                    }
                } else {
                    for r in 0..rows {
                        *d.add(r * n) = t[2 * r];
                    }
                }
            }
        }
    }
}
