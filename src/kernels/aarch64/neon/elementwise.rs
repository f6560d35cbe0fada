//! aarch64 NEON element-wise kernels: quantize, dequantize, the quantized add and table
//! lookups, each equal to the portable code (which finishes the tails).

use std::arch::aarch64::*;

use crate::kernels::layers::Elementwise;
use crate::kernels::portable;

/// The element-wise kernels of the `neon` and `dotprod` sets.
pub(crate) const ELEMENTWISE: Elementwise = Elementwise { quantize, dequantize, quantized_add, lookup };

/// `clamp(v, lo, hi)` rounded to nearest even, plus `zp`, saturated to int8, for 16 lanes: as
/// the portable `(v).max(lo).min(hi)` then round: `fmaxnm`/`fminnm` return the number when the
/// other operand is NaN, like Rust's `f32::max`/`min`, so NaN becomes `lo`.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
unsafe fn clamp_round16(v: [float32x4_t; 4], lo: float32x4_t, hi: float32x4_t, zp16: int16x8_t) -> int8x16_t {
    let r = |f: float32x4_t| vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(f, lo), hi));
    let l = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(r(v[0])), r(v[1])), zp16);
    let h = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(r(v[2])), r(v[3])), zp16);
    vqmovn_high_s16(vqmovn_s16(l), h)
}

/// [`clamp_round16`] for lanes that are not NaN: rounded to nearest even (`fcvtns`, which
/// saturates infinities), plus `zp`, saturated to int8. Rounding is monotonic and the bounds
/// are integers, so saturating after rounding equals clamping before it.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
unsafe fn round16(v: [float32x4_t; 4], zp16: int16x8_t) -> int8x16_t {
    let l = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(vcvtnq_s32_f32(v[0])), vcvtnq_s32_f32(v[1])), zp16);
    let h = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(vcvtnq_s32_f32(v[2])), vcvtnq_s32_f32(v[3])), zp16);
    vqmovn_high_s16(vqmovn_s16(l), h)
}

/// `QuantizeLinear` as the portable [`quantize`](crate::kernels::elementwise::quantize): `x / scale`
/// (a true division, as MLAS), clamped, rounded half to even, plus `zp`; 16 values at a time.
pub(crate) fn quantize(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    let n = x.len().min(y.len());
    let full = n / 16 * 16;
    let z = i32::from(zp);
    // SAFETY: 16-value chunks below `full` are within both slices.
    unsafe {
        let (lo, hi) = (vdupq_n_f32((-128 - z) as f32), vdupq_n_f32((127 - z) as f32));
        let (s, zp16) = (vdupq_n_f32(scale), vdupq_n_s16(i16::from(zp)));
        for i in (0..full).step_by(16) {
            let p = x.as_ptr().add(i);
            let v = [vdivq_f32(vld1q_f32(p), s), vdivq_f32(vld1q_f32(p.add(4)), s), vdivq_f32(vld1q_f32(p.add(8)), s), vdivq_f32(vld1q_f32(p.add(12)), s)];
            vst1q_s8(y.as_mut_ptr().add(i), clamp_round16(v, lo, hi, zp16));
        }
    }
    portable::quantize_body(&x[full..n], scale, zp, &mut y[full..n]);
}

/// `DequantizeLinear` as the portable [`dequantize`](crate::kernels::elementwise::dequantize):
/// `(x − zp) · scale`, the subtraction in integers; 16 values at a time.
pub(crate) fn dequantize(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    let n = x.len().min(y.len());
    let full = n / 16 * 16;
    // SAFETY: 16-value chunks below `full` are within both slices.
    unsafe {
        let z = vdupq_n_s8(zp);
        for i in (0..full).step_by(16) {
            let v = vld1q_s8(x.as_ptr().add(i));
            let (l, h) = (vsubl_s8(vget_low_s8(v), vget_low_s8(z)), vsubl_high_s8(v, z));
            let p = y.as_mut_ptr().add(i);
            vst1q_f32(p, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(l))), scale));
            vst1q_f32(p.add(4), vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(l)), scale));
            vst1q_f32(p.add(8), vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), scale));
            vst1q_f32(p.add(12), vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(h)), scale));
        }
    }
    portable::dequantize_body(&x[full..n], scale, zp, &mut y[full..n]);
}

/// `quantize(dequantize(a) + dequantize(b))` as the portable
/// [`quantized_add`](crate::kernels::elementwise::quantized_add): the same f32 operations in the same
/// order (two products and a sum, never fused), 16 values at a time.
///
/// When no lane can be NaN the clamp is left to the saturating narrowing, as in [`requant4`]
/// (4 fewer instructions per 16 values than [`clamp_round16`]): that holds when the output
/// scale is finite and non-zero and the two products cannot both be infinite (`|a − z_a| ≤ 255`,
/// so scales below 10³⁶ keep them finite). An infinite quotient saturates like the clamp.
pub(crate) fn quantized_add(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    let n = a.len().min(b.len()).min(y.len());
    let full = n / 16 * 16;
    let z = i32::from(qy.1);
    let no_nan = qy.0 != 0.0 && qy.0.is_finite() && qa.0.abs() < 1e36 && qb.0.abs() < 1e36;
    // SAFETY: 16-value chunks below `full` are within the three slices.
    unsafe {
        let (lo, hi) = (vdupq_n_f32((-128 - z) as f32), vdupq_n_f32((127 - z) as f32));
        let (sy, zp16) = (vdupq_n_f32(qy.0), vdupq_n_s16(i16::from(qy.1)));
        let (za, zb) = (vdupq_n_s8(qa.1), vdupq_n_s8(qb.1));
        // The four f32 quarters of 16 int8 values minus their zero point.
        let quarters = |v: int8x16_t, z: int8x16_t, s: f32| {
            let (l, h) = (vsubl_s8(vget_low_s8(v), vget_low_s8(z)), vsubl_high_s8(v, z));
            [
                vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(l))), s),
                vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(l)), s),
                vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), s),
                vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(h)), s),
            ]
        };
        for i in (0..full).step_by(16) {
            let fa = quarters(vld1q_s8(a.as_ptr().add(i)), za, qa.0);
            let fb = quarters(vld1q_s8(b.as_ptr().add(i)), zb, qb.0);
            let v = [
                vdivq_f32(vaddq_f32(fa[0], fb[0]), sy),
                vdivq_f32(vaddq_f32(fa[1], fb[1]), sy),
                vdivq_f32(vaddq_f32(fa[2], fb[2]), sy),
                vdivq_f32(vaddq_f32(fa[3], fb[3]), sy),
            ];
            let q = if no_nan { round16(v, zp16) } else { clamp_round16(v, lo, hi, zp16) };
            vst1q_s8(y.as_mut_ptr().add(i), q);
        }
    }
    portable::quantized_add_body(&a[full..n], qa, &b[full..n], qb, qy, &mut y[full..n]);
}

/// `y[i] = table[x[i] as u8]` as the portable [`lookup_with`](crate::kernels::elementwise::lookup_with),
/// 16 values at a time: the table sits in 16 registers as four 64-byte quarters; `tbl` looks
/// up the first quarter (indices past 63 give 0) and `tbx` each following one with the index
/// less 64, 128, 192 (indices outside 0..64 then leave the byte as it is).
pub(crate) fn lookup(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    let n = x.len().min(y.len());
    let full = n / 16 * 16;
    // SAFETY: the table loads read its 256 bytes; 16-value chunks below `full` are within both
    // slices. NEON is part of every aarch64 CPU.
    unsafe {
        let t = table.as_ptr();
        let q = |i: usize| vld1q_s8_x4(t.add(64 * i));
        let (t0, t1, t2, t3) = (q(0), q(1), q(2), q(3));
        let (k64, k128, k192) = (vdupq_n_u8(64), vdupq_n_u8(128), vdupq_n_u8(192));
        for i in (0..full).step_by(16) {
            let idx = vreinterpretq_u8_s8(vld1q_s8(x.as_ptr().add(i)));
            let r = vqtbl4q_s8(t0, idx);
            let r = vqtbx4q_s8(r, t1, vsubq_u8(idx, k64));
            let r = vqtbx4q_s8(r, t2, vsubq_u8(idx, k128));
            let r = vqtbx4q_s8(r, t3, vsubq_u8(idx, k192));
            vst1q_s8(y.as_mut_ptr().add(i), r);
        }
    }
    portable::lookup_body(table, &x[full..n], &mut y[full..n]);
}
