//! Small NEON helpers the aarch64 kernels share: a 16×16 byte transpose and the requantising
//! epilogues (exactly [`Requant::one`](crate::kernels::Requant)'s arithmetic).

use std::arch::aarch64::*;

/// A 16×16 byte transpose: `out[j][i] = r[i][j]`.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
pub(crate) unsafe fn transpose16(r: [int8x16_t; 16]) -> [int8x16_t; 16] {
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
/// [`Requant::one`](crate::kernels::Requant): `round_half_even(f32(acc + bias) · scale)`
/// clamped to `[−128 − zp, 127 − zp]`, plus `zp`. Here the clamp is done by saturating
/// narrowing after `fcvtns` (round to nearest, ties to even): rounding is monotonic and the
/// bounds are integers, so clamping before or after rounding gives the same integer, and
/// `sat_i8(sat_i16(r) + zp) = clamp(r, −128 − zp, 127 − zp) + zp`. Returns the rounded i32;
/// [`narrow_zp`] adds the zero point and saturates.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
pub(crate) unsafe fn requant4(acc: int32x4_t, bias: i32, scale: f32) -> int32x4_t {
    let f = vmulq_n_f32(vcvtq_f32_s32(vaddq_s32(acc, vdupq_n_s32(bias))), scale);
    vcvtnq_s32_f32(f)
}

/// Two requantised rows (`lo`, `hi`, rounded i32) plus the zero point, saturated to int8: the
/// bytes 0..4 are `lo`, 4..8 `hi`.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
pub(crate) unsafe fn narrow_zp(lo: int32x4_t, hi: int32x4_t, zp: int16x8_t) -> int8x8_t {
    vqmovn_s16(vqaddq_s16(vqmovn_high_s32(vqmovn_s32(lo), hi), zp))
}

/// 16 requantised accumulators (bias included) → 16 int8, as [`requant4`] + [`narrow_zp`].
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
pub(crate) unsafe fn requant16(acc: [int32x4_t; 4], scale: f32, zp16: int16x8_t) -> int8x16_t {
    let q = |a: int32x4_t| vcvtnq_s32_f32(vmulq_n_f32(vcvtq_f32_s32(a), scale));
    let lo = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(q(acc[0])), q(acc[1])), zp16);
    let hi = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(q(acc[2])), q(acc[3])), zp16);
    vqmovn_high_s16(vqmovn_s16(lo), hi)
}
