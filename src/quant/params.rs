//! Affine int8 quantization parameters and the arithmetic of quantize / dequantize, as ONNX
//! defines them (`q = saturate(round_half_even(x / s) + zp)`, `x = (q − zp) · s`).

/// Scale and zero point of an int8 tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Step between two int8 values.
    pub scale: f32,
    /// The int8 value that represents 0.0.
    pub zero_point: i8,
}

/// Smallest scale handed out, so a constant tensor still gets a usable step.
pub const MIN_SCALE: f32 = 1e-8;

impl QParams {
    /// Asymmetric parameters covering `[lo, hi]` (widened to contain 0, so that 0.0, ReLU's
    /// floor and padding, is exact).
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let lo = if lo.is_finite() { lo.min(0.0) } else { 0.0 };
        let hi = if hi.is_finite() { hi.max(0.0) } else { 0.0 };
        let scale = ((hi as f64 - lo as f64) / 255.0).max(MIN_SCALE as f64);
        let zp = (-128.0 - lo as f64 / scale).round().clamp(-128.0, 127.0);
        QParams { scale: scale as f32, zero_point: zp as i8 }
    }

    /// Symmetric parameters (zero point 0) covering `[-max_abs, max_abs]` with ±127.
    pub fn symmetric(max_abs: f32) -> QParams {
        let m = if max_abs.is_finite() { max_abs.abs() } else { 0.0 };
        QParams { scale: (m / 127.0).max(MIN_SCALE), zero_point: 0 }
    }

    /// Quantizes one value (round half to even, saturate).
    pub fn quantize(&self, x: f32) -> i8 {
        quantize(x, self.scale, self.zero_point)
    }

    /// Dequantizes one value.
    pub fn dequantize(&self, q: i8) -> f32 {
        (q as i32 - self.zero_point as i32) as f32 * self.scale
    }

    /// The smallest and largest representable values.
    pub fn range(&self) -> (f32, f32) {
        (self.dequantize(i8::MIN), self.dequantize(i8::MAX))
    }
}

/// `saturate(round_half_even(x / scale) + zero_point)` to int8; NaN maps to the zero point.
pub fn quantize(x: f32, scale: f32, zero_point: i8) -> i8 {
    let v = (x / scale).round_ties_even() + zero_point as f32;
    if v.is_nan() {
        zero_point
    } else {
        v.clamp(-128.0, 127.0) as i8
    }
}

/// Quantizes a bias to int32 with scale `scale` (= input scale × weight scale). Returns the
/// value and whether it saturated.
pub fn quantize_bias(b: f32, scale: f32) -> (i32, bool) {
    let v = (b as f64 / scale as f64).round();
    if v > i32::MAX as f64 {
        (i32::MAX, true)
    } else if v < i32::MIN as f64 {
        (i32::MIN, true)
    } else {
        (v as i32, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relu_range_puts_zero_at_minus_128() {
        let p = QParams::from_range(0.0, 6.0);
        assert_eq!(p.zero_point, -128);
        assert_eq!(p.dequantize(-128), 0.0);
        assert_eq!(p.quantize(-3.0), -128);
        assert_eq!(p.quantize(100.0), 127);
        assert_eq!(quantize(f32::NAN, 0.1, 3), 3);
        assert_eq!(QParams::from_range(0.0, 0.0).scale, MIN_SCALE);
        assert_eq!(quantize(0.5, 1.0, 0), 0); // half to even
        assert_eq!(quantize(1.5, 1.0, 0), 2);
        assert_eq!(quantize_bias(1e12, 1e-3), (i32::MAX, true));
    }

    proptest! {
        #[test]
        fn round_trip_error_is_at_most_half_a_step(lo in -100f32..0.0, span in 1e-3f32..200.0, t in 0f32..1.0) {
            let hi = lo + span;
            let p = QParams::from_range(lo, hi);
            let x = lo + t * span;
            let (rlo, rhi) = p.range();
            // The representable range covers [lo, hi] up to the rounding of the zero point.
            prop_assert!(rlo <= lo.min(0.0) + p.scale && rhi >= hi.max(0.0) - p.scale);
            let err = (p.dequantize(p.quantize(x)) - x).abs();
            if x >= rlo && x <= rhi {
                prop_assert!(err <= 0.5 * p.scale * 1.0001 + 1e-7, "x {x} err {err} scale {}", p.scale);
            }
            prop_assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        }

        #[test]
        fn saturates_outside_the_range(lo in -10f32..0.0, hi in 0.1f32..10.0, x in prop_oneof![-1e9f32..-20.0, 20.0f32..1e9]) {
            let p = QParams::from_range(lo, hi);
            let q = p.quantize(x);
            prop_assert!(q == i8::MIN || q == i8::MAX);
            prop_assert_eq!(q == i8::MAX, x > 0.0);
        }

        #[test]
        fn symmetric_weights_use_plus_minus_127(m in 1e-6f32..100.0, t in -1f32..1.0) {
            let p = QParams::symmetric(m);
            let q = p.quantize(t * m);
            prop_assert!(q >= -127);
            prop_assert!((p.dequantize(q) - t * m).abs() <= 0.5 * p.scale * 1.0001);
        }
    }
}
