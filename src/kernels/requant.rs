//! Requantization (onnxruntime's, bit for bit) and the zero-point folding every kernel shares.
//!
//! The arithmetic is that of an ONNX `QLinearConv` with int8 input, symmetric int8 weights
//! (zero point 0), int32 bias and int8 output, and the requantization is onnxruntime's (MLAS):
//! `y = clamp(round_half_even(f32(acc + bias) · (s_x · s_w / s_y)), qmin − z_y, qmax − z_y) + z_y`
//! with the scale product computed in f32 in that order. The integer accumulation is exact, so
//! on the same file the output is bit-identical to onnxruntime's whenever the accumulator fits
//! f32's 24-bit mantissa, and within one step otherwise.

/// 1.5 · 2²³: adding then subtracting it rounds an f32 of magnitude < 2²² to the nearest
/// integer, ties to even, in the default rounding mode (what `cvtps2dq` and `vcvtnq` do).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `v.max(lo).min(hi)` for every `v` (NaN gives `lo`) when `lo ≤ hi`, written as comparisons:
/// armv7's VFP has no float max or min instruction, and `f32::max` there is a call to `fmaxf`.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2²²` (callers clamp first): the
/// mantissa bits of `v + 1.5·2²³` hold it. Pure bit arithmetic, so it vectorises, unlike a
/// saturating float-to-int cast.
#[inline(always)]
pub(crate) fn round_small(v: f32) -> i32 {
    (v + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32
}

/// Output quantization of a convolution: per-output-channel multipliers, zero point and the
/// clamp range relative to the zero point.
#[derive(Debug, Clone, PartialEq)]
pub struct Requant {
    /// `s_x · s_w[c] / s_y` per output channel, computed in f32 in that order.
    pub scale: Vec<f32>,
    /// Output zero point.
    pub zero_point: i32,
    pub(crate) lo: f32,
    pub(crate) hi: f32,
}

impl Requant {
    /// Requantization to int8 with the given per-channel multipliers and zero point.
    pub fn new(scale: Vec<f32>, zero_point: i8) -> Self {
        let zp = i32::from(zero_point);
        Requant { scale, zero_point: zp, lo: (-128 - zp) as f32, hi: (127 - zp) as f32 }
    }

    #[inline(always)]
    pub(crate) fn one(&self, acc: i32, scale: f32) -> i8 {
        let v = clamp(acc as f32 * scale, self.lo, self.hi);
        (round_small(v) + self.zero_point) as i8
    }

    #[inline(always)]
    pub(crate) fn row(&self, acc: &[i32], bias: i32, scale: f32, out: &mut [i8]) {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = self.one(a + bias, scale);
        }
    }
}

/// The biases with the input zero point folded in: `bias[row] − z_x · Σ_k w[row][k]`, so that
/// the kernels can multiply the raw int8 input (`k` weights per row). Modulo 2³², like the
/// accumulation itself.
pub(crate) fn fold_zero_point(bias: &[i32], weights: &[i8], k: usize, x_zp: i8) -> Vec<i32> {
    let zx = i32::from(x_zp);
    bias.iter().zip(weights.chunks_exact(k)).map(|(&b, w)| b.wrapping_sub(zx.wrapping_mul(w.iter().map(|&v| i32::from(v)).sum::<i32>()))).collect()
}
