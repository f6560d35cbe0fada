//! Image preprocessing: what a model expects, recorded in its ONNX metadata.

use serde::{Deserialize, Serialize};

/// Resampling filter for resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (torchvision's default).
    Bilinear,
    /// Bicubic (the EfficientNet reference).
    Bicubic,
}

/// How the image is fitted to the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crop {
    /// Centre square crop of side `fraction · min(w, h)`, then resize (224/256 = 0.875 is the
    /// ImageNet convention).
    Center {
        /// Side of the crop relative to the shorter image side.
        fraction: f32,
    },
    /// Resize the whole image to the input size, ignoring the aspect ratio.
    Squash,
}

/// The preprocessing a model expects: `tensor = (pixel − mean) / std` per RGB channel, with
/// pixels in 0..=255, NCHW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Input width in pixels.
    pub width: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Resampling filter.
    pub filter: Filter,
    /// Fitting rule.
    pub crop: Crop,
    /// Per-channel mean, in pixel units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in pixel units.
    pub std: [f32; 3],
}

impl Preprocess {
    /// torchvision's ImageNet preprocessing: bilinear, centre crop 0.875, ImageNet mean/std.
    pub fn torchvision(resolution: usize) -> Self {
        Preprocess {
            width: resolution,
            height: resolution,
            filter: Filter::Bilinear,
            crop: Crop::Center { fraction: 0.875 },
            mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
            std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
        }
    }

    /// EfficientNet-Lite's preprocessing: bicubic, centre crop 224/256, `(x − 127) / 128`.
    pub fn efficientnet_lite(resolution: usize) -> Self {
        Preprocess {
            width: resolution,
            height: resolution,
            filter: Filter::Bicubic,
            crop: Crop::Center { fraction: 224.0 / 256.0 },
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }
}

use crate::error::{Error, Result};

impl Preprocess {
    /// The source rectangle `(x0, y0, width, height)` this preprocessing reads from a
    /// `w`×`h` image: the centred square crop of side `⌊fraction · min(w, h)⌋` at offset
    /// `((w − c + 1) / 2, (h − c + 1) / 2)`, or the whole image.
    pub fn source_rect(&self, w: usize, h: usize) -> (usize, usize, usize, usize) {
        match self.crop {
            Crop::Center { fraction } => {
                let c = ((fraction as f64 * w.min(h) as f64).floor() as usize).clamp(1, w.min(h).max(1));
                ((w - c).div_ceil(2), (h - c).div_ceil(2), c, c)
            }
            Crop::Squash => (0, 0, w, h),
        }
    }

    /// Values in the NCHW input tensor, `3 · width · height`.
    pub fn input_len(&self) -> usize {
        3 * self.width * self.height
    }

    /// Checks the numbers make sense (from a file's metadata, they might not).
    ///
    /// # Errors
    /// [`Error::Config`] for a zero size, a crop fraction outside (0, 1], a zero or
    /// non-finite std.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(Error::Config(format!("preprocessing size {}×{} is not usable", self.width, self.height)));
        }
        if let Crop::Center { fraction } = self.crop {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(Error::Config(format!("crop fraction {fraction} must be in (0, 1]")));
            }
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0) || self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::Config(format!("normalisation mean {:?} std {:?} is not usable", self.mean, self.std)));
        }
        Ok(())
    }
}

/// Resampling taps for one axis: for each output index, the first source index and the
/// normalised weights (`taps` per output, zero-padded).
#[derive(Debug, Clone, Default)]
struct Taps {
    start: Vec<usize>,
    weights: Vec<f32>,
    taps: usize,
}

fn kernel(filter: Filter, x: f64) -> f64 {
    let x = x.abs();
    match filter {
        Filter::Nearest => 0.0,
        Filter::Bilinear => (1.0 - x).max(0.0),
        Filter::Bicubic => {
            // Keys cubic with a = −0.5, as PIL's BICUBIC.
            let a = -0.5;
            if x < 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
            } else {
                0.0
            }
        }
    }
}

impl Taps {
    /// PIL's coefficient rule: when shrinking, the kernel is stretched by the scale so every
    /// source pixel contributes (antialiasing).
    fn new(filter: Filter, in_size: usize, out_size: usize) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        if filter == Filter::Nearest {
            let start = (0..out_size).map(|i| (((i as f64 + 0.5) * scale) as usize).min(in_size - 1)).collect();
            return Taps { start, weights: vec![1.0; out_size], taps: 1 };
        }
        let support = if filter == Filter::Bicubic { 2.0 } else { 1.0 };
        let filterscale = scale.max(1.0);
        let support = support * filterscale;
        let taps = (support.ceil() as usize) * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut weights = vec![0f32; out_size * taps];
        for i in 0..out_size {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).max(0.0)) as usize;
            let hi = ((center + support + 0.5) as usize).min(in_size);
            let n = hi.saturating_sub(lo).min(taps);
            let w: Vec<f64> = (0..n).map(|k| kernel(filter, (k as f64 + lo as f64 - center + 0.5) / filterscale)).collect();
            let total: f64 = w.iter().sum();
            for (k, v) in w.iter().enumerate() {
                weights[i * taps + k] = if total != 0.0 { (v / total) as f32 } else { 0.0 };
            }
            start.push(lo);
        }
        Taps { start, weights, taps }
    }
}

/// Turns packed RGB8 images of one size into model input tensors, with all coefficients and
/// scratch memory made once: after construction, [`run`](Self::run) allocates nothing.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    cfg: Preprocess,
    src: (usize, usize),
    rect: (usize, usize, usize, usize),
    h: Taps,
    v: Taps,
    /// Horizontally resampled rows: `rect.3` rows × `width` × 3.
    tmp: Vec<f32>,
}

impl Preprocessor {
    /// A preprocessor for `src_w`×`src_h` images.
    ///
    /// # Errors
    /// An empty image size or an unusable configuration.
    pub fn new(cfg: &Preprocess, src_w: usize, src_h: usize) -> Result<Self> {
        cfg.validate()?;
        if src_w == 0 || src_h == 0 {
            return Err(Error::Input(format!("image of size {src_w}×{src_h} has no pixels")));
        }
        let rect = cfg.source_rect(src_w, src_h);
        let h = Taps::new(cfg.filter, rect.2, cfg.width);
        let v = Taps::new(cfg.filter, rect.3, cfg.height);
        let tmp = vec![0.0; rect.3 * cfg.width * 3];
        Ok(Preprocessor { cfg: cfg.clone(), src: (src_w, src_h), rect, h, v, tmp })
    }

    /// The source size this preprocessor was made for.
    pub fn source_size(&self) -> (usize, usize) {
        self.src
    }

    /// The configuration.
    pub fn config(&self) -> &Preprocess {
        &self.cfg
    }

    /// Resamples the packed RGB8 image `rgb` (`width · height · 3` bytes, the size given at
    /// construction) into `out`, NCHW f32 of [`Preprocess::input_len`] values. Like PIL, each
    /// resampling pass rounds to 8 bits.
    ///
    /// # Errors
    /// [`Error::Input`] when a buffer has the wrong length.
    pub fn run(&mut self, rgb: &[u8], out: &mut [f32]) -> Result<()> {
        let (sw, sh) = self.src;
        if rgb.len() != sw * sh * 3 {
            return Err(Error::Input(format!("frame has {} bytes, {sw}×{sh} RGB needs {}", rgb.len(), sw * sh * 3)));
        }
        let (ow, oh) = (self.cfg.width, self.cfg.height);
        if out.len() != 3 * ow * oh {
            return Err(Error::Input(format!("input buffer of {} values, the model needs {}", out.len(), 3 * ow * oh)));
        }
        let (x0, y0, _, rh) = self.rect;
        let ht = self.h.taps;
        for ry in 0..rh {
            let row = &rgb[((y0 + ry) * sw + x0) * 3..];
            for ox in 0..ow {
                let s = self.h.start[ox];
                let w = &self.h.weights[ox * ht..(ox + 1) * ht];
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    if wk == 0.0 {
                        continue;
                    }
                    let p = &row[(s + k) * 3..(s + k) * 3 + 3];
                    acc[0] += wk * p[0] as f32;
                    acc[1] += wk * p[1] as f32;
                    acc[2] += wk * p[2] as f32;
                }
                let t = &mut self.tmp[(ry * ow + ox) * 3..(ry * ow + ox) * 3 + 3];
                for c in 0..3 {
                    t[c] = acc[c].round().clamp(0.0, 255.0);
                }
            }
        }
        let vt = self.v.taps;
        let plane = ow * oh;
        for oy in 0..oh {
            let s = self.v.start[oy];
            let w = &self.v.weights[oy * vt..(oy + 1) * vt];
            for ox in 0..ow {
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    if wk == 0.0 {
                        continue;
                    }
                    let t = &self.tmp[((s + k) * ow + ox) * 3..((s + k) * ow + ox) * 3 + 3];
                    acc[0] += wk * t[0];
                    acc[1] += wk * t[1];
                    acc[2] += wk * t[2];
                }
                for c in 0..3 {
                    let v = acc[c].round().clamp(0.0, 255.0);
                    out[c * plane + oy * ow + ox] = (v - self.cfg.mean[c]) / self.cfg.std[c];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_rect_follows_the_reference_rule() {
        let p = Preprocess::efficientnet_lite(224);
        // 451×300 (chelsea): c = ⌊0.875·300⌋ = 262, offset ((451−262+1)/2, (300−262+1)/2).
        assert_eq!(p.source_rect(451, 300), (95, 19, 262, 262));
        let s = Preprocess { crop: Crop::Squash, ..p };
        assert_eq!(s.source_rect(451, 300), (0, 0, 451, 300));
    }

    #[test]
    fn same_size_bicubic_is_the_identity() {
        let cfg = Preprocess { width: 5, height: 4, crop: Crop::Squash, ..Preprocess::efficientnet_lite(5) };
        let rgb: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let mut p = Preprocessor::new(&cfg, 5, 4).unwrap();
        let mut out = vec![0.0; cfg.input_len()];
        p.run(&rgb, &mut out).unwrap();
        for y in 0..4 {
            for x in 0..5 {
                for c in 0..3 {
                    let want = (rgb[(y * 5 + x) * 3 + c] as f32 - 127.0) / 128.0;
                    assert_eq!(out[c * 20 + y * 5 + x], want);
                }
            }
        }
    }

    #[test]
    fn downscaling_a_flat_image_keeps_it_flat_and_weights_sum_to_one() {
        for filter in [Filter::Bicubic, Filter::Bilinear, Filter::Nearest] {
            let t = Taps::new(filter, 517, 224);
            for i in 0..224 {
                let s: f32 = t.weights[i * t.taps..(i + 1) * t.taps].iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{filter:?} {i}: {s}");
                assert!(t.start[i] + t.weights[i * t.taps..(i + 1) * t.taps].iter().rposition(|w| *w != 0.0).unwrap_or(0) < 517);
            }
        }
        let cfg = Preprocess::torchvision(32);
        let rgb = vec![200u8; 90 * 70 * 3];
        let mut p = Preprocessor::new(&cfg, 90, 70).unwrap();
        let mut out = vec![0.0; cfg.input_len()];
        p.run(&rgb, &mut out).unwrap();
        let want = (200.0 - cfg.mean[1]) / cfg.std[1];
        assert!(out[32 * 32..2 * 32 * 32].iter().all(|v| (v - want).abs() < 1e-6));
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        let cfg = Preprocess::torchvision(8);
        let mut p = Preprocessor::new(&cfg, 10, 10).unwrap();
        assert!(p.run(&[0; 10], &mut vec![0.0; cfg.input_len()]).is_err());
        assert!(p.run(&[0; 300], &mut [0.0; 3]).is_err());
        assert!(Preprocessor::new(&cfg, 0, 10).is_err());
    }
}
