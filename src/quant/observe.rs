//! Activation observers: running min/max, a histogram for percentile and MSE-optimal ranges,
//! and per-channel means (for bias correction).

use serde::{Deserialize, Serialize};

/// How an activation range is chosen from the calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RangeMethod {
    /// The observed minimum and maximum.
    MinMax,
    /// Clip both tails at this percentile (e.g. 99.99).
    Percentile(f64),
    /// The clipping range that minimises the expected squared quantization error.
    Mse,
}

impl RangeMethod {
    /// Whether a second pass with histograms is needed.
    pub fn needs_histogram(self) -> bool {
        !matches!(self, RangeMethod::MinMax)
    }
}

/// Bins of the calibration histograms.
pub const BINS: usize = 2048;

/// Statistics of one tensor over the calibration set.
#[derive(Debug, Clone)]
pub struct TensorStats {
    /// Observed minimum.
    pub min: f32,
    /// Observed maximum.
    pub max: f32,
    /// Histogram over `[min, max]` (second pass), if one was collected.
    pub hist: Option<Vec<u64>>,
    /// Per-channel sums (axis 1 of a `[1, C, H, W]` tensor) and the count behind each.
    channel_sum: Vec<f64>,
    channel_count: u64,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats { min: f32::INFINITY, max: f32::NEG_INFINITY, hist: None, channel_sum: vec![], channel_count: 0 }
    }
}

impl TensorStats {
    /// First pass: min, max and channel sums of one sample with `channels` channels.
    pub fn observe(&mut self, values: &[f32], channels: usize) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
        if channels > 0 && values.len().is_multiple_of(channels) {
            let per = values.len() / channels;
            if self.channel_sum.len() != channels {
                self.channel_sum = vec![0.0; channels];
            }
            for (c, chunk) in values.chunks_exact(per).enumerate() {
                self.channel_sum[c] += chunk.iter().map(|&v| v as f64).sum::<f64>();
            }
            self.channel_count += per as u64;
        }
    }

    /// Second pass: adds `values` to the histogram over `[min, max]`.
    pub fn observe_histogram(&mut self, values: &[f32]) {
        let (lo, hi) = (self.min, self.max);
        let hist = self.hist.get_or_insert_with(|| vec![0; BINS]);
        if !(hi > lo) {
            hist[0] += values.len() as u64;
            return;
        }
        let k = BINS as f32 / (hi - lo);
        for &v in values {
            if v.is_finite() {
                let b = (((v - lo) * k) as usize).min(BINS - 1);
                hist[b] += 1;
            }
        }
    }

    /// Mean of each channel, if channel sums were collected.
    pub fn channel_means(&self) -> Option<Vec<f32>> {
        (self.channel_count > 0).then(|| self.channel_sum.iter().map(|s| (s / self.channel_count as f64) as f32).collect())
    }

    /// The range chosen by `method` (min/max when no histogram is available).
    pub fn range(&self, method: RangeMethod) -> (f32, f32) {
        if !(self.min <= self.max) {
            return (0.0, 0.0);
        }
        let Some(hist) = &self.hist else { return (self.min, self.max) };
        match method {
            RangeMethod::MinMax => (self.min, self.max),
            RangeMethod::Percentile(p) => self.percentile_range(hist, p),
            RangeMethod::Mse => self.mse_range(hist),
        }
    }

    fn bin_center(&self, b: usize) -> f64 {
        let w = (self.max as f64 - self.min as f64) / BINS as f64;
        self.min as f64 + (b as f64 + 0.5) * w
    }

    fn percentile_range(&self, hist: &[u64], p: f64) -> (f32, f32) {
        let total: u64 = hist.iter().sum();
        if total == 0 {
            return (self.min, self.max);
        }
        let tail = ((1.0 - p.clamp(50.0, 100.0) / 100.0) * total as f64).floor() as u64;
        let w = (self.max as f64 - self.min as f64) / BINS as f64;
        let (mut acc, mut lo_b) = (0u64, 0usize);
        for (b, &n) in hist.iter().enumerate() {
            if acc + n > tail {
                lo_b = b;
                break;
            }
            acc += n;
        }
        let (mut acc, mut hi_b) = (0u64, BINS - 1);
        for (b, &n) in hist.iter().enumerate().rev() {
            if acc + n > tail {
                hi_b = b;
                break;
            }
            acc += n;
        }
        let lo = self.min as f64 + lo_b as f64 * w;
        let hi = self.min as f64 + (hi_b + 1) as f64 * w;
        (lo.max(self.min as f64) as f32, hi.min(self.max as f64) as f32)
    }

    fn mse_range(&self, hist: &[u64]) -> (f32, f32) {
        let (lo0, hi0) = (self.min.min(0.0) as f64, self.max.max(0.0) as f64);
        let mut best = (f64::INFINITY, self.min, self.max);
        for step in 0..=70 {
            let a = 0.3 + 0.01 * step as f64;
            let (lo, hi) = (lo0 * a, hi0 * a);
            let scale = (hi - lo) / 255.0;
            if scale <= 0.0 {
                continue;
            }
            let mut err = 0.0;
            for (b, &n) in hist.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let c = self.bin_center(b);
                let e = if c < lo {
                    (lo - c).powi(2)
                } else if c > hi {
                    (c - hi).powi(2)
                } else {
                    scale * scale / 12.0
                };
                err += e * n as f64;
            }
            if err < best.0 {
                best = (err, lo as f32, hi as f32);
            }
        }
        (best.1, best.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32], method: RangeMethod) -> (f32, f32) {
        let mut s = TensorStats::default();
        s.observe(values, 1);
        if method.needs_histogram() {
            s.observe_histogram(values);
        }
        s.range(method)
    }

    #[test]
    fn percentile_and_mse_clip_outliers_minmax_does_not() {
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(50.0);
        assert_eq!(stats(&v, RangeMethod::MinMax), (0.0, 50.0));
        let (_, hi) = stats(&v, RangeMethod::Percentile(99.9));
        assert!(hi < 1.1, "{hi}");
        let (_, hi) = stats(&v, RangeMethod::Mse);
        assert!(hi < 50.0, "{hi}");
        let mut s = TensorStats::default();
        s.observe(&[1.0, 2.0, 3.0, 4.0, 10.0, 20.0], 2);
        assert_eq!(s.channel_means().unwrap(), vec![2.0, 34.0 / 3.0]);
    }
}
