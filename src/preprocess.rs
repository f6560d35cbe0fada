//! What a model expects of its input image — size, crop, resampling filter, channel order,
//! mean and std — as recorded in its ONNX metadata ([`Preprocess`]), and the named conventions
//! ([`Preset`]) and single options ([`PreprocessOptions`]) that describe it for models that
//! carry no such metadata. A description that belongs to the model; the pixel work that
//! follows it is [`crate::frames::preprocess::Preprocessor`].

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

/// Order of the colour channels in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (torchvision, TensorFlow).
    #[default]
    Rgb,
    /// Blue, green, red (Caffe, OpenCV).
    Bgr,
}

impl ChannelOrder {
    fn is_rgb(&self) -> bool {
        *self == ChannelOrder::Rgb
    }

    /// `rgb` or `bgr`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelOrder::Rgb => "rgb",
            ChannelOrder::Bgr => "bgr",
        }
    }
}

/// The preprocessing a model expects: `tensor = (pixel − mean) / std` per channel, with
/// pixels in 0..=255, NCHW, channels in `channel_order`.
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
    /// Per-channel mean, in pixel units, in the tensor's channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in pixel units, in the tensor's channel order.
    pub std: [f32; 3],
    /// Channel order of the tensor. Files written before this field existed have none: RGB.
    /// Not written when RGB, so those files read the same in older versions.
    #[serde(default, skip_serializing_if = "ChannelOrder::is_rgb")]
    pub channel_order: ChannelOrder,
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
            channel_order: ChannelOrder::Rgb,
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
            channel_order: ChannelOrder::Rgb,
        }
    }
}

use crate::error::{Error, Result};

impl Preprocess {
    /// The source rectangle `(x0, y0, width, height)` this preprocessing reads from a
    /// `w`×`h` image: for a square input, the centred square crop of side
    /// `c = ⌊fraction · min(w, h)⌋` at offset `((w − c + 1) / 2, (h − c + 1) / 2)`; or the whole
    /// image.
    ///
    /// For an input that is not square, the centred rectangle of the input's aspect ratio whose
    /// shorter side is `fraction · min(w, h)`, as torchvision's `Resize(r)` then
    /// `CenterCrop((height, width))` with `fraction = min(height, width) / r` (clipped to the
    /// image).
    pub fn source_rect(&self, w: usize, h: usize) -> (usize, usize, usize, usize) {
        match self.crop {
            Crop::Center { fraction } => {
                let short = w.min(h);
                let (cw, ch) = if self.width == self.height {
                    let c = ((fraction as f64 * short as f64).floor() as usize).clamp(1, short.max(1));
                    (c, c)
                } else {
                    let unit = fraction as f64 * short as f64 / self.width.min(self.height).max(1) as f64;
                    (((unit * self.width as f64).floor() as usize).clamp(1, w.max(1)), ((unit * self.height as f64).floor() as usize).clamp(1, h.max(1)))
                };
                ((w - cw).div_ceil(2), (h - ch).div_ceil(2), cw, ch)
            }
            Crop::Squash => (0, 0, w, h),
        }
    }

    /// The shorter side the image is resized to before the centre crop (torchvision's
    /// `Resize(r)`): `round(min(width, height) / fraction)`; `None` for [`Crop::Squash`].
    pub fn resize(&self) -> Option<usize> {
        match self.crop {
            Crop::Center { fraction } if fraction > 0.0 => Some((self.width.min(self.height) as f64 / fraction as f64).round() as usize),
            _ => None,
        }
    }

    /// One line for logs and warnings: `resize 256, crop 224, bilinear, mean 0.485,0.456,0.406,
    /// std 0.229,0.224,0.225 on 0..1, rgb`. Mean and std are shown on 0..1 when they are round
    /// numbers there (torchvision's way of writing them), else on 0..255.
    pub fn describe(&self) -> String {
        let size = if self.width == self.height { self.width.to_string() } else { format!("{}x{}", self.height, self.width) };
        let geometry = match self.resize() {
            Some(r) => format!("resize {r}, crop {size}"),
            None => format!("squash to {size}"),
        };
        let filter = match self.filter {
            Filter::Nearest => "nearest",
            Filter::Bilinear => "bilinear",
            Filter::Bicubic => "bicubic",
        };
        let round_on_unit = self.mean.iter().chain(&self.std).all(|v| {
            let x = *v as f64 / 255.0 * 1e4;
            (x - x.round()).abs() < 1e-2
        });
        let (k, range) = if round_on_unit { (255.0, ValueRange::Unit) } else { (1.0, ValueRange::Byte) };
        let list = |v: &[f32; 3]| v.iter().map(|x| number(*x as f64 / k)).collect::<Vec<_>>().join(",");
        format!("{geometry}, {filter}, mean {}, std {} on {}, {}", list(&self.mean), list(&self.std), range.name(), self.channel_order.name())
    }
}

/// `v` with at most 4 decimals and no trailing zeros.
fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl Preprocess {
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

/// The pixel value range that mean and std are given in (`--range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRange {
    /// Pixels scaled to 0..1 before the mean is subtracted (torchvision).
    Unit,
    /// Pixels as they are, 0..255 (Caffe, EfficientNet-Lite).
    Byte,
}

impl ValueRange {
    /// `0..1` or `0..255`.
    pub fn name(self) -> &'static str {
        match self {
            ValueRange::Unit => "0..1",
            ValueRange::Byte => "0..255",
        }
    }

    /// `0..1` (also `0-1`, `1`) or `0..255` (also `0-255`, `255`).
    pub fn parse(s: &str) -> Option<ValueRange> {
        match s.trim() {
            "0..1" | "0-1" | "1" => Some(ValueRange::Unit),
            "0..255" | "0-255" | "255" => Some(ValueRange::Byte),
            _ => None,
        }
    }

    /// Pixel units per unit of this range.
    fn scale(self) -> f32 {
        match self {
            ValueRange::Unit => 255.0,
            ValueRange::Byte => 1.0,
        }
    }
}

/// Named preprocessing conventions (`--preset`), for models that carry no metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// torchvision's ImageNet convention: bilinear, shorter side `crop · 256/224`, centre crop,
    /// mean 0.485,0.456,0.406, std 0.229,0.224,0.225 on 0..1, RGB ([`Preprocess::torchvision`]).
    Imagenet,
    /// torchvision's Inception v3 / GoogLeNet convention: `(x − 127.5) / 127.5` (mean and std
    /// 0.5 on 0..1), bilinear, shorter side `crop / 0.875`, centre crop, RGB.
    Inception,
    /// EfficientNet-Lite's (and edgenet's zoo model's) convention: `(x − 127) / 128` on 0..255,
    /// bicubic, shorter side `crop · 256/224`, centre crop, RGB
    /// ([`Preprocess::efficientnet_lite`]).
    Lite,
    /// Pixels 0..255 unnormalised, bilinear, shorter side `crop · 256/224`, centre crop, RGB.
    Raw,
}

impl Preset {
    /// Every preset, in the order they are listed to users.
    pub const ALL: [Preset; 4] = [Preset::Imagenet, Preset::Inception, Preset::Lite, Preset::Raw];

    /// The preset assumed for a model that carries no preprocessing and was given none.
    pub const DEFAULT: Preset = Preset::Imagenet;

    /// The input size assumed when a model's input size is not fixed and no crop is given.
    pub const DEFAULT_SIZE: usize = 224;

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Imagenet => "imagenet",
            Preset::Inception => "inception",
            Preset::Lite => "lite",
            Preset::Raw => "raw",
        }
    }

    /// The preset called `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The names of all presets, comma-separated.
    pub fn names() -> String {
        Preset::ALL.map(Preset::name).join(", ")
    }

    /// This convention for a `height`×`width` input. The resize scales with the crop; for an
    /// input that is not square, with its longer side (so the crop fits).
    pub fn preprocess(self, height: usize, width: usize) -> Preprocess {
        let side = height.min(width);
        let base = match self {
            Preset::Imagenet => Preprocess::torchvision(side),
            Preset::Inception => Preprocess { mean: [0.5 * 255.0; 3], std: [0.5 * 255.0; 3], ..Preprocess::torchvision(side) },
            Preset::Lite => Preprocess::efficientnet_lite(side),
            Preset::Raw => Preprocess { mean: [0.0; 3], std: [1.0; 3], ..Preprocess::torchvision(side) },
        };
        let crop = match base.crop {
            Crop::Center { fraction } if height != width => Crop::Center { fraction: fraction * side as f32 / height.max(width) as f32 },
            c => c,
        };
        Preprocess { width, height, crop, ..base }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Preprocessing given field by field (the command line's `--preset`, `--resize`, `--crop`,
/// `--mean`, `--std`, `--channel-order`, `--range`): a preset, and single fields overriding it
/// or the model's metadata. Error messages name the options as the command line spells them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreprocessOptions {
    /// A named convention; it replaces the model's metadata.
    pub preset: Option<Preset>,
    /// Shorter side to resize to before the centre crop.
    pub resize: Option<usize>,
    /// Centre crop `(height, width)`: the model's input size.
    pub crop: Option<(usize, usize)>,
    /// Per-channel mean, in `range` units and the tensor's channel order.
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, in `range` units and the tensor's channel order.
    pub std: Option<[f32; 3]>,
    /// Channel order of the tensor.
    pub channel_order: Option<ChannelOrder>,
    /// The units of `mean` and `std` (default 0..1, as torchvision).
    pub range: Option<ValueRange>,
}

/// Where a [`Resolved`] preprocessing came from.
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessSource {
    /// The model's metadata, as it is.
    Metadata,
    /// A preset or single options replacing or changing the model's metadata.
    OverridesMetadata {
        /// What the metadata says.
        metadata: Preprocess,
    },
    /// The model has no metadata; a preset and/or single options gave it, the fields not given
    /// taken from `defaults` when no preset was given.
    Options {
        /// The preset the fields not given come from, when no preset was given.
        defaults: Option<Preset>,
    },
    /// The model has no metadata and nothing was given: this preset is assumed.
    Assumed(Preset),
}

/// The preprocessing to use, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The preprocessing, validated.
    pub preprocess: Preprocess,
    /// Where it came from.
    pub source: PreprocessSource,
}

fn list(v: &[f32; 3]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

impl PreprocessOptions {
    /// Whether nothing is given.
    pub fn is_empty(&self) -> bool {
        *self == PreprocessOptions::default()
    }

    /// The preprocessing for a model whose metadata holds `metadata` (or none) and whose input
    /// is `input` = `(height, width)` when the file fixes it.
    ///
    /// The crop is the model's input size (`--crop` must match it when the input is fixed;
    /// without either, the metadata's size, else [`Preset::DEFAULT_SIZE`]). A preset replaces
    /// the metadata; single options replace single fields of the preset, else of the metadata,
    /// else of [`Preset::DEFAULT`]. Changing the channel order reorders a mean and std that are
    /// not given, so each colour keeps its value; `mean` and `std` given are in `range` units
    /// (default 0..1) and the tensor's channel order.
    ///
    /// # Errors
    /// [`Error::Config`] naming the option: mean or std not finite, std ≤ 0, `range` without
    /// mean or std, an empty or huge crop or resize, a crop that is not the model's input size
    /// or is larger than the resize; or metadata that is not usable.
    pub fn resolve(&self, metadata: Option<&Preprocess>, input: Option<(usize, usize)>) -> Result<Resolved> {
        let usage = |m: String| Err(Error::Config(m));
        if let Some(m) = self.mean {
            if m.iter().any(|v| !v.is_finite()) {
                return usage(format!("--mean {}: every value must be a finite number", list(&m)));
            }
        }
        if let Some(s) = self.std {
            if s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
                return usage(format!("--std {}: every value must be a finite number greater than 0", list(&s)));
            }
        }
        if let Some(r) = self.range {
            if self.mean.is_none() && self.std.is_none() {
                return usage(format!("--range {} gives the units of --mean and --std: give them with it", r.name()));
            }
        }
        if let Some((h, w)) = self.crop {
            if h == 0 || w == 0 || h > 8192 || w > 8192 {
                return usage(format!("--crop {h}x{w}: sides must be 1 to 8192 pixels"));
            }
            if let Some((ih, iw)) = input {
                if (h, w) != (ih, iw) {
                    return usage(format!(
                        "--crop {h}x{w} does not match the model's input size {ih}x{iw} (the crop is the tensor the model takes; leave --crop out for this model)"
                    ));
                }
            }
        }
        if let Some(r) = self.resize {
            if r == 0 || r > 65536 {
                return usage(format!("--resize {r}: must be 1 to 65536 pixels"));
            }
        }
        let size = self.crop.or(input).or(metadata.map(|m| (m.height, m.width))).unwrap_or((Preset::DEFAULT_SIZE, Preset::DEFAULT_SIZE));
        if let Some(r) = self.resize {
            if r < size.0.max(size.1) {
                let crop = if size.0 == size.1 { size.0.to_string() } else { format!("{}x{}", size.0, size.1) };
                return match self.crop {
                    Some(_) => usage(format!("--crop {crop} is larger than --resize {r}: the crop is taken from the resized image")),
                    None => usage(format!("--resize {r} is smaller than the crop, the model's input size {crop}: the crop is taken from the resized image")),
                };
            }
        }
        let (mut p, source) = match (self.preset, metadata) {
            (None, Some(m)) if self.is_empty() => {
                m.validate()?;
                return Ok(Resolved { preprocess: m.clone(), source: PreprocessSource::Metadata });
            }
            (Some(preset), m) => {
                let source = match m {
                    Some(m) => PreprocessSource::OverridesMetadata { metadata: m.clone() },
                    None => PreprocessSource::Options { defaults: None },
                };
                (preset.preprocess(size.0, size.1), source)
            }
            (None, Some(m)) => (Preprocess { height: size.0, width: size.1, ..m.clone() }, PreprocessSource::OverridesMetadata { metadata: m.clone() }),
            (None, None) => {
                let source =
                    if self.is_empty() { PreprocessSource::Assumed(Preset::DEFAULT) } else { PreprocessSource::Options { defaults: Some(Preset::DEFAULT) } };
                (Preset::DEFAULT.preprocess(size.0, size.1), source)
            }
        };
        if let Some(r) = self.resize {
            p.crop = Crop::Center { fraction: size.0.min(size.1) as f32 / r as f32 };
        }
        if let Some(order) = self.channel_order {
            if order != p.channel_order {
                p.mean.reverse();
                p.std.reverse();
                p.channel_order = order;
            }
        }
        let k = self.range.unwrap_or(ValueRange::Unit).scale();
        if let Some(m) = self.mean {
            p.mean = m.map(|v| v * k);
        }
        if let Some(s) = self.std {
            p.std = s.map(|v| v * k);
        }
        p.validate()?;
        Ok(Resolved { preprocess: p, source })
    }
}
