//! aarch64 NEON (ARMv8.0: the Raspberry Pi 3 and 4) int8 micro-kernels.
//!
//! Dense GEMM, "c16" layout: the weights of a block of 4 rows and the columns of a panel of 4
//! output positions are both packed with 16 consecutive `k` contiguous, so one `smull` (8
//! products into i16) and one `smlal2` (8 more, added pairwise) followed by one `sadalp`
//! (pairs into 4 i32 lanes) compute 16 multiply-adds of one (row, column) pair in 3
//! instructions. Two int8 products fit i16 only while the weights avoid −128 (`|w| ≤ 127`,
//! `|x| ≤ 128`: 2 · 16256 < 2¹⁵), which symmetric quantizers guarantee; a layer with a −128
//! weight stays on the portable kernel (checked at load). The requantisation happens in
//! registers with saturating narrowing, which equals the portable clamp-then-round exactly
//! (see [`requant4`]).

use std::arch::aarch64::*;

use crate::kernels::int8::Out;

/// Rows of a c16 weight block.
pub(crate) const MR: usize = 4;
/// Columns of a c16 panel.
pub(crate) const NR: usize = 4;
/// `k` per packed group.
pub(crate) const KC: usize = 16;

/// Packs `[m][k]` weights into `[m / 4][k / 16][4][16]` (zero-padded rows and `k`).
pub(crate) fn pack_a(weights: &[i8], m: usize, k: usize) -> Vec<i8> {
    let kb = k.div_ceil(KC);
    let mut a = vec![0i8; m.div_ceil(MR) * kb * MR * KC];
    for (row, w) in weights.chunks_exact(k).enumerate().take(m) {
        let (blk, r) = (row / MR, row % MR);
        for (kk, &v) in w.iter().enumerate() {
            a[((blk * kb + kk / KC) * MR + r) * KC + kk % KC] = v;
        }
    }
    a
}

/// Bytes of packed columns for `ncols` columns of `k` values.
pub(crate) fn packed_len(k: usize, ncols: usize) -> usize {
    ncols.div_ceil(NR) * k.div_ceil(KC) * NR * KC
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels
/// `[ncols / 4][k / 16][4][16]` (zero beyond `k`; columns beyond `ncols` are left as they are,
/// never stored).
///
/// # Safety
/// `src` holds `k` rows of `stride ≥ c0 + ncols` bytes; `packed` holds
/// [`packed_len`]`(k, ncols)` bytes.
pub(crate) unsafe fn pack_b(src: &[i8], k: usize, stride: usize, c0: usize, ncols: usize, packed: &mut [i8]) {
    debug_assert!(src.len() >= (k - 1) * stride + c0 + ncols && packed.len() >= packed_len(k, ncols));
    let kb = k.div_ceil(KC);
    let panel = kb * NR * KC;
    let full = ncols / 16;
    let s = src.as_ptr();
    let d = packed.as_mut_ptr();
    for b in 0..kb {
        let rows = (k - b * KC).min(KC);
        for j in 0..full {
            // 16 rows (k) × 16 columns, transposed in registers: column c's 16 k values.
            let mut r = [vdupq_n_s8(0); 16];
            for (i, ri) in r.iter_mut().enumerate().take(rows) {
                *ri = vld1q_s8(s.add((b * KC + i) * stride + c0 + 16 * j));
            }
            let cols = transpose16(r);
            for (c, v) in cols.into_iter().enumerate() {
                let p = 4 * j + c / NR;
                vst1q_s8(d.add(p * panel + (b * NR + c % NR) * KC), v);
            }
        }
        // Remaining columns one byte at a time.
        for c in 16 * full..ncols {
            let (p, cc) = (c / NR, c % NR);
            let dst = d.add(p * panel + (b * NR + cc) * KC);
            for i in 0..KC {
                *dst.add(i) = if i < rows { *s.add((b * KC + i) * stride + c0 + c) } else { 0 };
            }
        }
    }
}

/// A 16×16 byte transpose: `out[j][i] = r[i][j]`.
#[inline(always)]
unsafe fn transpose16(r: [int8x16_t; 16]) -> [int8x16_t; 16] {
    let mut a = [vdupq_n_s8(0); 16];
    for i in (0..16).step_by(2) {
        a[i] = vtrn1q_s8(r[i], r[i + 1]);
        a[i + 1] = vtrn2q_s8(r[i], r[i + 1]);
    }
    let mut b = [vdupq_n_s8(0); 16];
    for i in (0..16).step_by(4) {
        for c in 0..2 {
            let (x, y) = (vreinterpretq_s16_s8(a[i + c]), vreinterpretq_s16_s8(a[i + 2 + c]));
            b[i + c] = vreinterpretq_s8_s16(vtrn1q_s16(x, y));
            b[i + 2 + c] = vreinterpretq_s8_s16(vtrn2q_s16(x, y));
        }
    }
    let mut c8 = [vdupq_n_s8(0); 16];
    for i in (0..16).step_by(8) {
        for c in 0..4 {
            let (x, y) = (vreinterpretq_s32_s8(b[i + c]), vreinterpretq_s32_s8(b[i + 4 + c]));
            c8[i + c] = vreinterpretq_s8_s32(vtrn1q_s32(x, y));
            c8[i + 4 + c] = vreinterpretq_s8_s32(vtrn2q_s32(x, y));
        }
    }
    let mut out = [vdupq_n_s8(0); 16];
    for c in 0..8 {
        let (x, y) = (vreinterpretq_s64_s8(c8[c]), vreinterpretq_s64_s8(c8[8 + c]));
        out[c] = vreinterpretq_s8_s64(vtrn1q_s64(x, y));
        out[8 + c] = vreinterpretq_s8_s64(vtrn2q_s64(x, y));
    }
    out
}

/// Requantises 4 accumulators of one output row (bias not yet added) to 4 int8, as
/// [`Requant::one`](crate::kernels::int8::Requant): `round_half_even(f32(acc + bias) · scale)`
/// clamped to `[−128 − zp, 127 − zp]`, plus `zp`. Here the clamp is done by saturating
/// narrowing after `fcvtns` (round to nearest, ties to even): rounding is monotonic and the
/// bounds are integers, so clamping before or after rounding gives the same integer, and
/// `sat_i8(sat_i16(r) + zp) = clamp(r, −128 − zp, 127 − zp) + zp`. The result is returned in
/// the low 4 lanes of an i16x4 before the last narrowing (see [`narrow_store`]).
#[inline(always)]
pub(crate) unsafe fn requant4(acc: int32x4_t, bias: i32, scale: f32) -> int32x4_t {
    let f = vmulq_n_f32(vcvtq_f32_s32(vaddq_s32(acc, vdupq_n_s32(bias))), scale);
    vcvtnq_s32_f32(f)
}

/// Two requantised rows (`lo`, `hi`, rounded i32) plus the zero point, saturated to int8: the
/// bytes 0..4 are `lo`, 4..8 `hi`.
#[inline(always)]
pub(crate) unsafe fn narrow_zp(lo: int32x4_t, hi: int32x4_t, zp: int16x8_t) -> int8x8_t {
    vqmovn_s16(vqaddq_s16(vqmovn_high_s32(vqmovn_s32(lo), hi), zp))
}

/// The register tile: rows `4·blk..` × the 4 columns of one panel, over `kb` groups of 16.
#[inline(always)]
unsafe fn tile(a: *const i8, b: *const i8, kb: usize) -> [int32x4_t; 16] {
    let mut acc = [vdupq_n_s32(0); 16];
    for g in 0..kb {
        let a = a.add(g * MR * KC);
        let b = b.add(g * NR * KC);
        let av = [vld1q_s8(a), vld1q_s8(a.add(16)), vld1q_s8(a.add(32)), vld1q_s8(a.add(48))];
        let bv = [vld1q_s8(b), vld1q_s8(b.add(16)), vld1q_s8(b.add(32)), vld1q_s8(b.add(48))];
        for r in 0..MR {
            for c in 0..NR {
                let p = vmull_s8(vget_low_s8(av[r]), vget_low_s8(bv[c]));
                let p = vmlal_high_s8(p, av[r], bv[c]);
                acc[r * NR + c] = vpadalq_s16(acc[r * NR + c], p);
            }
        }
    }
    acc
}

/// The GEMM of a block of columns with the requantisation: `y[row][col0 + c]` for every row
/// `< m` and `c < ncols`, from weights packed by [`pack_a`] and columns packed by [`pack_b`].
///
/// # Safety
/// `a` and `packed` are as packed for `m`, `k` and `ncols`; `bias`/`scale` hold `m` values;
/// the caller owns columns `col0..col0 + ncols` of the `m` rows of `y` (row length `n`).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(a: &[i8], packed: &[i8], m: usize, k: usize, ncols: usize, bias: &[i32], scale: &[f32], zp: i32, y: Out, n: usize, col0: usize) {
    let kb = k.div_ceil(KC);
    let panels = ncols.div_ceil(NR);
    let zp16 = vdupq_n_s16(zp as i16);
    for blk in 0..m.div_ceil(MR) {
        let ab = a.as_ptr().add(blk * kb * MR * KC);
        let rows = (m - blk * MR).min(MR);
        let mut bs = [0i32; MR];
        let mut ss = [0f32; MR];
        for r in 0..rows {
            bs[r] = bias[blk * MR + r];
            ss[r] = scale[blk * MR + r];
        }
        for p in 0..panels {
            let acc = tile(ab, packed.as_ptr().add(p * kb * NR * KC), kb);
            let mut q = [vdupq_n_s32(0); MR];
            for r in 0..MR {
                // The row's 4 partial sums per column, reduced pairwise: lanes = columns 0..4.
                let s01 = vpaddq_s32(acc[r * NR], acc[r * NR + 1]);
                let s23 = vpaddq_s32(acc[r * NR + 2], acc[r * NR + 3]);
                q[r] = requant4(vpaddq_s32(s01, s23), bs[r], ss[r]);
            }
            let b01 = narrow_zp(q[0], q[1], zp16);
            let b23 = narrow_zp(q[2], q[3], zp16);
            let c = p * NR;
            let cols = (ncols - c).min(NR);
            let words = [
                vget_lane_u32::<0>(vreinterpret_u32_s8(b01)),
                vget_lane_u32::<1>(vreinterpret_u32_s8(b01)),
                vget_lane_u32::<0>(vreinterpret_u32_s8(b23)),
                vget_lane_u32::<1>(vreinterpret_u32_s8(b23)),
            ];
            for (r, w) in words.iter().enumerate().take(rows) {
                let out = y.slice((blk * MR + r) * n + col0 + c, cols);
                if cols == NR {
                    std::ptr::write_unaligned(out.as_mut_ptr() as *mut u32, *w);
                } else {
                    for (o, b) in out.iter_mut().zip(w.to_le_bytes()) {
                        *o = b as i8;
                    }
                }
            }
        }
    }
}
