//! The pixel work of preprocessing: [`Preprocessor`] turns RGB8 frames into a model's input
//! tensor as a [`Preprocess`] (the model's description, in [`crate::preprocess`]) says.
//! The description's types are re-exported here.

pub use crate::preprocess::*;

use crate::error::{Error, Result};

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
    /// For each tensor channel, the RGB channel it takes.
    order: [usize; 3],
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
        let order = match cfg.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        Ok(Preprocessor { cfg: cfg.clone(), src: (src_w, src_h), rect, h, v, tmp, order })
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
                for (c, &from) in self.order.iter().enumerate() {
                    let v = acc[from].round().clamp(0.0, 255.0);
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

    fn opts() -> PreprocessOptions {
        PreprocessOptions::default()
    }

    fn err(o: &PreprocessOptions, meta: Option<&Preprocess>, input: Option<(usize, usize)>) -> String {
        o.resolve(meta, input).unwrap_err().to_string()
    }

    #[test]
    fn metadata_is_used_as_it_is_when_nothing_is_given() {
        let m = Preprocess::efficientnet_lite(224);
        let r = opts().resolve(Some(&m), Some((224, 224))).unwrap();
        assert_eq!(r, Resolved { preprocess: m, source: PreprocessSource::Metadata });
    }

    #[test]
    fn without_metadata_or_options_imagenet_is_assumed_at_the_model_size() {
        let r = opts().resolve(None, Some((224, 224))).unwrap();
        assert_eq!(r.source, PreprocessSource::Assumed(Preset::Imagenet));
        assert_eq!(r.preprocess, Preprocess::torchvision(224));
        assert_eq!(r.preprocess.resize(), Some(256));
        assert_eq!(r.preprocess.describe(), "resize 256, crop 224, bilinear, mean 0.485,0.456,0.406, std 0.229,0.224,0.225 on 0..1, rgb");
        // The size follows the model; the resize scales with it (round(crop · 256/224)).
        let r = opts().resolve(None, Some((96, 96))).unwrap();
        assert_eq!((r.preprocess.width, r.preprocess.height, r.preprocess.resize()), (96, 96, Some(110)));
        // An input size that is not fixed: the default size.
        let r = opts().resolve(None, None).unwrap();
        assert_eq!((r.preprocess.width, r.preprocess.height), (224, 224));
    }

    #[test]
    fn presets_have_their_published_values() {
        let lite = Preset::Lite.preprocess(224, 224);
        assert_eq!(lite, Preprocess::efficientnet_lite(224));
        assert_eq!(lite.describe(), "resize 256, crop 224, bicubic, mean 127,127,127, std 128,128,128 on 0..255, rgb");
        let inc = Preset::Inception.preprocess(299, 299);
        assert_eq!((inc.mean, inc.std, inc.filter), ([127.5; 3], [127.5; 3], Filter::Bilinear));
        assert_eq!(inc.resize(), Some(342));
        assert!(inc.describe().contains("mean 0.5,0.5,0.5, std 0.5,0.5,0.5 on 0..1"), "{}", inc.describe());
        let raw = Preset::Raw.preprocess(224, 224);
        assert_eq!((raw.mean, raw.std), ([0.0; 3], [1.0; 3]));
        assert!(raw.describe().contains("mean 0,0,0, std 1,1,1 on 0..255"), "{}", raw.describe());
        for p in Preset::ALL {
            assert_eq!(Preset::parse(&p.name().to_uppercase()), Some(p));
            p.preprocess(224, 320).validate().unwrap();
        }
        assert_eq!(Preset::parse("vgg"), None);
        // Not square: the resize scales with the longer side, so the crop fits.
        let wide = Preset::Imagenet.preprocess(224, 320);
        assert_eq!(wide.resize(), Some(366));
        assert_eq!(wide.describe().split(',').next(), Some("resize 366"));
    }

    #[test]
    fn a_preset_or_options_override_the_metadata() {
        let m = Preprocess::efficientnet_lite(224);
        let o = PreprocessOptions { preset: Some(Preset::Imagenet), ..opts() };
        let r = o.resolve(Some(&m), Some((224, 224))).unwrap();
        assert_eq!(r.preprocess, Preprocess::torchvision(224));
        assert_eq!(r.source, PreprocessSource::OverridesMetadata { metadata: m.clone() });
        // One field: the others stay the metadata's.
        let o = PreprocessOptions { std: Some([0.5; 3]), ..opts() };
        let r = o.resolve(Some(&m), Some((224, 224))).unwrap();
        assert_eq!(r.preprocess, Preprocess { std: [127.5; 3], ..m.clone() });
    }

    #[test]
    fn explicit_imagenet_values_equal_the_preset_exactly() {
        let o = PreprocessOptions { mean: Some([0.485, 0.456, 0.406]), std: Some([0.229, 0.224, 0.225]), resize: Some(256), ..opts() };
        let r = o.resolve(None, Some((224, 224))).unwrap();
        assert_eq!(r.preprocess, Preprocess::torchvision(224));
        assert_eq!(r.source, PreprocessSource::Options { defaults: Some(Preset::Imagenet) });
        // The same in pixel units with --range 0..255 (to f32 rounding).
        let o = PreprocessOptions { mean: Some([123.675, 116.28, 103.53]), std: Some([58.395, 57.12, 57.375]), range: Some(ValueRange::Byte), ..opts() };
        let p = o.resolve(None, Some((224, 224))).unwrap().preprocess;
        let t = Preprocess::torchvision(224);
        for c in 0..3 {
            assert!((p.mean[c] - t.mean[c]).abs() < 1e-4 && (p.std[c] - t.std[c]).abs() < 1e-4);
        }
    }

    #[test]
    fn options_replace_single_fields_of_the_preset() {
        let o = PreprocessOptions { preset: Some(Preset::Inception), resize: Some(320), ..opts() };
        let p = o.resolve(None, Some((299, 299))).unwrap().preprocess;
        assert_eq!((p.resize(), p.mean, p.crop), (Some(320), [127.5; 3], Crop::Center { fraction: 299.0 / 320.0 }));
        // --crop for a model whose size is not fixed; the resize scales with it.
        let o = PreprocessOptions { preset: Some(Preset::Imagenet), crop: Some((160, 160)), ..opts() };
        let p = o.resolve(None, None).unwrap().preprocess;
        assert_eq!((p.width, p.height, p.resize()), (160, 160, Some(183)));
        // The same --crop as the fixed size is accepted.
        assert!(PreprocessOptions { crop: Some((224, 224)), ..opts() }.resolve(None, Some((224, 224))).is_ok());
    }

    #[test]
    fn bgr_reorders_the_preset_values_and_takes_given_values_in_tensor_order() {
        let o = PreprocessOptions { channel_order: Some(ChannelOrder::Bgr), ..opts() };
        let p = o.resolve(None, Some((224, 224))).unwrap().preprocess;
        let t = Preprocess::torchvision(224);
        assert_eq!((p.mean, p.std), ([t.mean[2], t.mean[1], t.mean[0]], [t.std[2], t.std[1], t.std[0]]));
        assert_eq!(p.channel_order, ChannelOrder::Bgr);
        let o = PreprocessOptions {
            channel_order: Some(ChannelOrder::Bgr),
            mean: Some([104.0, 117.0, 123.0]),
            std: Some([1.0; 3]),
            range: Some(ValueRange::Byte),
            ..opts()
        };
        let p = o.resolve(None, Some((224, 224))).unwrap().preprocess;
        assert_eq!((p.mean, p.std), ([104.0, 117.0, 123.0], [1.0; 3]));
        assert!(p.describe().ends_with(", bgr"));
    }

    #[test]
    fn bad_options_are_errors_naming_the_option() {
        let m = Some((224, 224));
        assert!(err(&PreprocessOptions { std: Some([0.2, 0.0, 0.2]), ..opts() }, None, m).contains("--std"));
        assert!(err(&PreprocessOptions { std: Some([0.2, -1.0, 0.2]), ..opts() }, None, m).contains("--std"));
        assert!(err(&PreprocessOptions { std: Some([0.2, f32::NAN, 0.2]), ..opts() }, None, m).contains("--std"));
        assert!(err(&PreprocessOptions { mean: Some([f32::INFINITY, 0.0, 0.2]), ..opts() }, None, m).contains("--mean"));
        let e = err(&PreprocessOptions { crop: Some((256, 256)), ..opts() }, None, m);
        assert!(e.contains("--crop 256x256") && e.contains("224x224"), "{e}");
        let e = err(&PreprocessOptions { crop: Some((256, 256)), resize: Some(240), ..opts() }, None, None);
        assert!(e.contains("--crop 256 is larger than --resize 240"), "{e}");
        let e = err(&PreprocessOptions { resize: Some(200), ..opts() }, None, m);
        assert!(e.contains("--resize 200"), "{e}");
        assert!(err(&PreprocessOptions { range: Some(ValueRange::Byte), ..opts() }, None, m).contains("--range"));
        assert!(err(&PreprocessOptions { crop: Some((0, 3)), ..opts() }, None, None).contains("--crop"));
        assert!(err(&PreprocessOptions { resize: Some(0), ..opts() }, None, None).contains("--resize"));
    }

    #[test]
    fn channel_order_is_optional_in_json_and_bgr_swaps_the_planes() {
        let old = r#"{"width":2,"height":2,"filter":"bilinear","crop":"squash","mean":[0,0,0],"std":[1,1,1]}"#;
        let p: Preprocess = serde_json::from_str(old).unwrap();
        assert_eq!(p.channel_order, ChannelOrder::Rgb);
        assert!(!serde_json::to_string(&p).unwrap().contains("channel_order"));
        let bgr = Preprocess { channel_order: ChannelOrder::Bgr, ..p.clone() };
        let json = serde_json::to_string(&bgr).unwrap();
        assert!(json.contains(r#""channel_order":"bgr""#), "{json}");
        assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), bgr);
        let rgb: Vec<u8> = (0..12).map(|i| i as u8 * 10).collect();
        let (mut a, mut b) = (vec![0.0; 12], vec![0.0; 12]);
        Preprocessor::new(&p, 2, 2).unwrap().run(&rgb, &mut a).unwrap();
        Preprocessor::new(&bgr, 2, 2).unwrap().run(&rgb, &mut b).unwrap();
        assert_eq!(&a[0..4], &b[8..12]);
        assert_eq!(&a[4..8], &b[4..8]);
        assert_eq!(&a[8..12], &b[0..4]);
    }

    #[test]
    fn a_crop_that_is_not_square_keeps_its_aspect_ratio() {
        // Resize(r) then CenterCrop((224, 320)) of a 640×480 image, with r = 320 / 0.875
        // (≈ 366): the source rectangle is (320, 224) · 480 / r = (420, 294).
        let p = Preset::Imagenet.preprocess(224, 320);
        let (x0, y0, w, h) = p.source_rect(640, 480);
        assert_eq!((w, h), (420, 294));
        assert_eq!((x0, y0), (110, 93));
        // Never larger than the image.
        let tall = Preprocess { crop: Crop::Center { fraction: 1.0 }, ..Preset::Imagenet.preprocess(100, 400) };
        let (_, _, w, h) = tall.source_rect(200, 200);
        assert!(w <= 200 && h <= 200);
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
