//! 32-bit ARM (armv7, 32-bit Raspberry Pi OS on a Pi 2, 3 or Zero 2) NEON int8 kernels: the
//! dense GEMM, its column packing, and the depthwise convolution ([`Depthwise`]).
//!
//! The armv7 targets do not assume NEON (some armv7 cores lack it), and Rust's NEON intrinsics
//! and `target_feature(enable = "neon")` are not stable for them, so the kernels are `asm!`
//! behind `.fpu neon`, run only when the kernel reports NEON and 32 double registers
//! (`HWCAP_NEON`, `HWCAP_VFPD32`; see `isa.rs`). It uses `d16`–`d31`, which code built for these
//! targets never touches (their baseline is VFPv3-D16) and which the calling convention leaves
//! to the callee anyway; `d0`–`d15` are declared as clobbered.
//!
//! The layout is "c16", as the aarch64 NEON kernel's: weights in blocks of 4 rows and columns in
//! panels of 2 output positions, each with 16 consecutive `k` contiguous. Per (row, column) pair
//! and 16 `k`: `vmull.s8` + `vmlal.s8` (16 products summed pairwise in i16) and `vpadal.s16`
//! into the pair's 4 i32 lanes, so 16 multiply-adds per 3 instructions. Two products fit i16
//! only while the weights avoid −128, as on aarch64 (the planner gives such a layer the portable
//! kernel). The epilogue reduces the lanes (`vpadd`), adds the biases and requantises in
//! registers exactly as [`Requant::one`](crate::kernels::Requant): `f32(acc) · scale`
//! clamped to `[−128 − zp, 127 − zp]`, rounded half to even with the `1.5 · 2²³` magic number
//! (armv7 NEON has no rounding conversion), plus `zp`. NEON flushes subnormals to zero, which
//! cannot change an integer rounded from them.

use crate::kernels::planes::{dw_channel_fits, TapOffsets};
use crate::kernels::requant::fold_zero_point;
use crate::kernels::tasks::Out;

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
    crate::kernels::packing::pack_blocks(weights, m, k, MR, KC)
}

/// Bytes of packed columns for `ncols` columns of `k` values.
pub(crate) fn packed_len(k: usize, ncols: usize) -> usize {
    ncols.div_ceil(NR) * k.div_ceil(KC) * NR * KC
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels
/// `[ncols / 2][k / 16][2][16]`, zero beyond `k` and `ncols`. Blocks of 16 columns × 16 `k` are
/// transposed in registers ([`transpose16`]; a group short of 16 `k` through a zero-padded copy),
/// the columns past the last such block one byte at a time.
///
/// # Safety
/// The CPU has NEON with 32 double registers.
///
/// # Panics
/// If `src` is too short for `k` rows of those columns or `packed` shorter than
/// [`packed_len`]`(k, ncols)`.
pub(crate) unsafe fn pack_b(src: &[i8], k: usize, stride: usize, c0: usize, ncols: usize, packed: &mut [i8]) {
    let kb = k.div_ceil(KC);
    let panel = kb * NR * KC;
    let packed = &mut packed[..packed_len(k, ncols)];
    assert!(k == 0 || ncols == 0 || src.len() >= (k - 1) * stride + c0 + ncols, "pack_b past its source");
    let blocks = ncols / 16;
    let mut short = [0i8; 16 * 16];
    for g in 0..kb {
        let rows = (k - g * KC).min(KC);
        for j in 0..blocks {
            let at = g * KC * stride + c0 + 16 * j;
            // 8 panels from panel 8j, group g of each: `panel` bytes apart.
            let dst = packed[8 * j * panel + g * NR * KC..].as_mut_ptr();
            // SAFETY: 16 rows of 16 bytes from `at` (a full group) or from `short` are read,
            // within `src` by the assert above; 8 runs of 32 bytes written, `panel` apart, all
            // within `packed` (panels 8j..8j + 8 exist: 16 (j + 1) ≤ ncols).
            unsafe {
                if rows == KC {
                    transpose16(src.as_ptr().add(at), stride, dst, panel);
                } else {
                    for r in 0..rows {
                        short[16 * r..16 * r + 16].copy_from_slice(&src[at + r * stride..at + r * stride + 16]);
                    }
                    short[16 * rows..].fill(0);
                    transpose16(short.as_ptr(), 16, dst, panel);
                }
            }
        }
    }
    for (p, dst) in packed.chunks_exact_mut(panel).enumerate().skip(8 * blocks) {
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

/// 16 rows of 16 bytes from `src` (`stride` apart) transposed: column `c`'s 16 bytes go to
/// `dst + (c / 2) · dst_stride + (c % 2) · 16`, so each pair of columns is one group of a panel.
/// Byte, halfword and word `vtrn`s, then doubleword swaps: 48 instructions for 256 bytes.
///
/// # Safety
/// The CPU has NEON with 32 double registers; the 16 rows are readable, the 8 runs of 32
/// bytes writable.
#[inline]
unsafe fn transpose16(src: *const i8, stride: usize, dst: *mut i8, dst_stride: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        std::arch::asm!(
            ".fpu neon",
            "vld1.8 {{d0-d1}}, [{s}], {ss}",
            "vld1.8 {{d2-d3}}, [{s}], {ss}",
            "vld1.8 {{d4-d5}}, [{s}], {ss}",
            "vld1.8 {{d6-d7}}, [{s}], {ss}",
            "vld1.8 {{d8-d9}}, [{s}], {ss}",
            "vld1.8 {{d10-d11}}, [{s}], {ss}",
            "vld1.8 {{d12-d13}}, [{s}], {ss}",
            "vld1.8 {{d14-d15}}, [{s}], {ss}",
            "vld1.8 {{d16-d17}}, [{s}], {ss}",
            "vld1.8 {{d18-d19}}, [{s}], {ss}",
            "vld1.8 {{d20-d21}}, [{s}], {ss}",
            "vld1.8 {{d22-d23}}, [{s}], {ss}",
            "vld1.8 {{d24-d25}}, [{s}], {ss}",
            "vld1.8 {{d26-d27}}, [{s}], {ss}",
            "vld1.8 {{d28-d29}}, [{s}], {ss}",
            "vld1.8 {{d30-d31}}, [{s}]",
            "vtrn.8 q0, q1",
            "vtrn.8 q2, q3",
            "vtrn.8 q4, q5",
            "vtrn.8 q6, q7",
            "vtrn.8 q8, q9",
            "vtrn.8 q10, q11",
            "vtrn.8 q12, q13",
            "vtrn.8 q14, q15",
            "vtrn.16 q0, q2",
            "vtrn.16 q1, q3",
            "vtrn.16 q4, q6",
            "vtrn.16 q5, q7",
            "vtrn.16 q8, q10",
            "vtrn.16 q9, q11",
            "vtrn.16 q12, q14",
            "vtrn.16 q13, q15",
            "vtrn.32 q0, q4",
            "vtrn.32 q1, q5",
            "vtrn.32 q2, q6",
            "vtrn.32 q3, q7",
            "vtrn.32 q8, q12",
            "vtrn.32 q9, q13",
            "vtrn.32 q10, q14",
            "vtrn.32 q11, q15",
            "vswp d1, d16",
            "vswp d3, d18",
            "vswp d5, d20",
            "vswp d7, d22",
            "vswp d9, d24",
            "vswp d11, d26",
            "vswp d13, d28",
            "vswp d15, d30",
            "vst1.8 {{d0-d3}}, [{d}], {ds}",
            "vst1.8 {{d4-d7}}, [{d}], {ds}",
            "vst1.8 {{d8-d11}}, [{d}], {ds}",
            "vst1.8 {{d12-d15}}, [{d}], {ds}",
            "vst1.8 {{d16-d19}}, [{d}], {ds}",
            "vst1.8 {{d20-d23}}, [{d}], {ds}",
            "vst1.8 {{d24-d27}}, [{d}], {ds}",
            "vst1.8 {{d28-d31}}, [{d}]",
            s = inout(reg) src => _,
            ss = in(reg) stride,
            d = inout(reg) dst => _,
            ds = in(reg) dst_stride,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _, out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _, out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nostack),
        );
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

/// One 4 × 2 tile over `kb ≥ 1` groups, its 8 outputs requantised: row `r`'s two at
/// `out + r · pitch` when `pitch > 0`, else to `out` as `[r0c0, r0c1, r1c0, r1c1, …, r3c1]`.
/// 29 instructions per group (24 for the products, 3 loads, the loop's 2), about 40 for the
/// epilogue.
///
/// # Safety
/// The CPU has NEON with 32 double registers; `a` is readable for `kb · 64` bytes, `b` for
/// `kb · 32`; `out` writable for 2 bytes at each of the 4 rows (`pitch > 0`) or for 8.
#[inline]
unsafe fn tile(a: *const i8, b: *const i8, kb: usize, params: &Params, out: *mut i8, pitch: usize) {
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
            "vmovn.i32 d0, q8",
            "vmovn.i32 d1, q12",
            "vmovn.i16 d2, q0",
            // A whole tile straight to the 4 output rows, two bytes each; else the 8 bytes.
            "cmp {pitch}, #0",
            "beq 5f",
            "vst1.16 {{d2[0]}}, [{out}], {pitch}",
            "vst1.16 {{d2[1]}}, [{out}], {pitch}",
            "vst1.16 {{d2[2]}}, [{out}], {pitch}",
            "vst1.16 {{d2[3]}}, [{out}]",
            "b 6f",
            "5:",
            "vst1.8 {{d2}}, [{out}]",
            "6:",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            kb = inout(reg) kb => _,
            p = inout(reg) params as *const Params => _,
            out = inout(reg) out => _,
            pitch = in(reg) pitch,
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
                let b = packed.as_ptr().add(p * kb * NR * KC);
                let cols = (ncols - p * NR).min(NR);
                let d = dst.add(p * NR);
                if rows == MR && cols == NR {
                    tile(ab, b, kb, &params, d, n);
                    continue;
                }
                tile(ab, b, kb, &params, t.as_mut_ptr(), 0);
                for r in 0..rows {
                    for c in 0..cols {
                        *d.add(r * n + c) = t[NR * r + c];
                    }
                }
            }
        }
    }
}

/// The NEON form of a depthwise convolution (any kernel size, stride and dilation) on raw int8
/// planes padded with the input zero point, whose products the folded bias cancels
/// (`bias − z_x · Σ w`), as aarch64's: taps in pairs, per 16 outputs two loads, `vmull.s8` and
/// `vmlal.s8` of each half (two taps' products summed in i16, exact for weights in
/// −127..=127) and four `vaddw.s16` into the i32 accumulators. A layer with a −128 weight gets
/// no NEON form ([`Depthwise::new`] returns `None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Depthwise {
    taps: usize,
    /// `[c][taps]`, as given.
    w: Vec<i8>,
    /// Bias with the input zero point folded in.
    bias: Vec<i32>,
}

impl Depthwise {
    /// The NEON form of `[c][taps]` weights, or `None` if a weight is −128.
    pub(crate) fn new(taps: usize, weights: &[i8], bias: &[i32], x_zp: i8) -> Option<Self> {
        if taps == 0 || weights.len() != taps * bias.len() || weights.contains(&i8::MIN) {
            return None;
        }
        Some(Depthwise { taps, w: weights.to_vec(), bias: fold_zero_point(bias, weights, taps, x_zp) })
    }

    /// Bytes held: weights and biases.
    pub(crate) fn held_bytes(&self) -> usize {
        self.w.len() + 4 * self.bias.len()
    }
}

/// What [`dw_tile`]'s epilogue loads, in order, for one channel.
#[repr(C, align(16))]
struct DwParams {
    bias: [i32; 4],
    scale: [f32; 4],
    lo: [f32; 4],
    hi: [f32; 4],
    magic: [f32; 4],
    unmagic: [i32; 4],
}

impl Depthwise {
    /// One channel: `out[oy][ox]` for the `oh × ow` outputs, where output `(oy, ox)` reads tap
    /// `t` at `planes[oy · row_step + offsets[t] + ox]`; 16 outputs at a time, a row's last
    /// tile through a scratch tile.
    ///
    /// # Safety
    /// The CPU has NEON with 32 double registers.
    ///
    /// # Panics
    /// If a tile would read past `planes` (the caller leaves 16 bytes of slack after the last
    /// row), `offsets` does not have one entry per tap, or `out` is not `oh · ow` long.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn channel(
        &self,
        c: usize,
        planes: &[i8],
        offsets: &TapOffsets,
        row_step: usize,
        scale: f32,
        zp: i32,
        oh: usize,
        ow: usize,
        out: &mut [i8],
    ) {
        if !dw_channel_fits(planes.len(), offsets, self.taps, row_step, oh, ow, out.len()) {
            return;
        }
        let offsets = offsets.offsets();
        let params = DwParams {
            bias: [self.bias[c]; 4],
            scale: [scale; 4],
            lo: [(-128 - zp) as f32; 4],
            hi: [(127 - zp) as f32; 4],
            magic: [MAGIC; 4],
            unmagic: [MAGIC.to_bits() as i32 - zp; 4],
        };
        let w = self.w[c * self.taps..(c + 1) * self.taps].as_ptr();
        let mut tail = [0i8; 16];
        for oy in 0..oh {
            let row = &mut out[oy * ow..(oy + 1) * ow];
            let mut ox = 0;
            while ox < ow {
                // SAFETY: the tile's loads lie within `planes` (asserted above for the last row,
                // the largest offset and the last tile); it writes 16 bytes of `row` or `tail`.
                unsafe {
                    let p = planes.as_ptr().add(oy * row_step + ox);
                    if ox + 16 <= ow {
                        dw_tile(p, offsets.as_ptr(), w, self.taps, &params, row.as_mut_ptr().add(ox));
                    } else {
                        dw_tile(p, offsets.as_ptr(), w, self.taps, &params, tail.as_mut_ptr());
                        row[ox..].copy_from_slice(&tail[..ow - ox]);
                    }
                }
                ox += 16;
            }
        }
    }
}

/// 16 outputs of one depthwise channel: `out[i] = requant(bias + Σ_t w[t] · p[offs[t] + i])`.
///
/// # Safety
/// The CPU has NEON with 32 double registers; `offs` and `w` hold `taps ≥ 1` entries, each
/// `p + offs[t]` is readable for 16 bytes, `out` writable for 16.
#[inline]
unsafe fn dw_tile(p: *const i8, offs: *const usize, w: *const i8, taps: usize, params: &DwParams, out: *mut i8) {
    // SAFETY: the caller's contract; the asm reads `params` whole.
    unsafe {
        std::arch::asm!(
            ".fpu neon",
            "vld1.32 {{d0-d1}}, [{prm}]!",
            "vmov q1, q0",
            "vmov q2, q0",
            "vmov q3, q0",
            "cmp {n}, #2",
            "blt 3f",
            // Two taps: their products summed in i16 (|w| ≤ 127), then widened into q0–q3.
            "1:",
            "ldr {t0}, [{offs}], #4",
            "ldr {t1}, [{offs}], #4",
            "add {t0}, {p}, {t0}",
            "add {t1}, {p}, {t1}",
            "vld1.8 {{d8-d9}}, [{t0}]",
            "vld1.8 {{d10-d11}}, [{t1}]",
            "vld1.8 {{d12[]}}, [{w}]!",
            "vld1.8 {{d13[]}}, [{w}]!",
            "vmull.s8 q7, d8, d12",
            "vmull.s8 q8, d9, d12",
            "vmlal.s8 q7, d10, d13",
            "vmlal.s8 q8, d11, d13",
            "vaddw.s16 q0, q0, d14",
            "vaddw.s16 q1, q1, d15",
            "vaddw.s16 q2, q2, d16",
            "vaddw.s16 q3, q3, d17",
            "sub {n}, {n}, #2",
            "cmp {n}, #2",
            "bge 1b",
            "3:",
            "cmp {n}, #1",
            "bne 4f",
            "ldr {t0}, [{offs}]",
            "add {t0}, {p}, {t0}",
            "vld1.8 {{d8-d9}}, [{t0}]",
            "vld1.8 {{d12[]}}, [{w}]",
            "vmull.s8 q7, d8, d12",
            "vmull.s8 q8, d9, d12",
            "vaddw.s16 q0, q0, d14",
            "vaddw.s16 q1, q1, d15",
            "vaddw.s16 q2, q2, d16",
            "vaddw.s16 q3, q3, d17",
            "4:",
            // Requantised as `tile`'s epilogue: scale, clamp, magic rounding, zero point.
            "vld1.32 {{d8-d11}}, [{prm}]!",
            "vld1.32 {{d12-d15}}, [{prm}]!",
            "vld1.32 {{d16-d17}}, [{prm}]",
            "vcvt.f32.s32 q0, q0",
            "vcvt.f32.s32 q1, q1",
            "vcvt.f32.s32 q2, q2",
            "vcvt.f32.s32 q3, q3",
            "vmul.f32 q0, q0, q4",
            "vmul.f32 q1, q1, q4",
            "vmul.f32 q2, q2, q4",
            "vmul.f32 q3, q3, q4",
            "vmax.f32 q0, q0, q5",
            "vmax.f32 q1, q1, q5",
            "vmax.f32 q2, q2, q5",
            "vmax.f32 q3, q3, q5",
            "vmin.f32 q0, q0, q6",
            "vmin.f32 q1, q1, q6",
            "vmin.f32 q2, q2, q6",
            "vmin.f32 q3, q3, q6",
            "vadd.f32 q0, q0, q7",
            "vadd.f32 q1, q1, q7",
            "vadd.f32 q2, q2, q7",
            "vadd.f32 q3, q3, q7",
            "vsub.i32 q0, q0, q8",
            "vsub.i32 q1, q1, q8",
            "vsub.i32 q2, q2, q8",
            "vsub.i32 q3, q3, q8",
            "vmovn.i32 d8, q0",
            "vmovn.i32 d9, q1",
            "vmovn.i32 d10, q2",
            "vmovn.i32 d11, q3",
            "vmovn.i16 d12, q4",
            "vmovn.i16 d13, q5",
            "vst1.8 {{d12-d13}}, [{out}]",
            p = in(reg) p,
            offs = inout(reg) offs => _,
            w = inout(reg) w => _,
            n = inout(reg) taps => _,
            prm = inout(reg) params as *const DwParams => _,
            out = in(reg) out,
            t0 = out(reg) _,
            t1 = out(reg) _,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _, out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _, out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nostack),
        );
    }
}

/// Copies `rows` runs of `width` bytes from `src` (row pitch `src_pitch`) to `dst` (pitch
/// `dst_pitch`).
///
/// # Panics
/// If a run lies past either buffer.
pub(crate) fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
    for r in 0..rows {
        dst[r * dst_pitch..r * dst_pitch + width].copy_from_slice(&src[r * src_pitch..r * src_pitch + width]);
    }
}

/// `even[j] = src[2j]`, `odd[j] = src[2j + 1]`: one input row split into the column phases of a
/// stride-2 layer.
///
/// # Panics
/// If `even` or `odd` is too short.
pub(crate) fn deal_row(src: &[i8], even: &mut [i8], odd: &mut [i8]) {
    let pairs = src.len() / 2;
    assert!(even.len() >= src.len().div_ceil(2) && odd.len() >= pairs, "deal_row past a phase");
    // 16 bytes at a time with `vld2.8` when the CPU has NEON (this runs for NEON's form only,
    // but the function is safe, so it checks), the rest pair by pair.
    let chunks = if crate::kernels::KernelSet::Neon.available() { pairs / 8 } else { 0 };
    if chunks > 0 {
        // SAFETY: NEON is present (checked); `chunks` runs of 16 bytes of `src` are read and 8
        // bytes of `even` and `odd` written per run, within their lengths (asserted).
        unsafe {
            std::arch::asm!(
                ".fpu neon",
                "1:",
                "vld2.8 {{d0-d1}}, [{s}]!",
                "vst1.8 {{d0}}, [{e}]!",
                "vst1.8 {{d1}}, [{o}]!",
                "subs {n}, {n}, #1",
                "bne 1b",
                s = inout(reg) src.as_ptr() => _,
                e = inout(reg) even.as_mut_ptr() => _,
                o = inout(reg) odd.as_mut_ptr() => _,
                n = inout(reg) chunks => _,
                out("d0") _, out("d1") _,
                options(nostack),
            );
        }
    }
    let done = 8 * chunks;
    for ((e, o), p) in even[done..pairs].iter_mut().zip(&mut odd[done..pairs]).zip(src[2 * done..].chunks_exact(2)) {
        *e = p[0];
        *o = p[1];
    }
    if src.len() % 2 == 1 {
        even[pairs] = src[src.len() - 1];
    }
}
