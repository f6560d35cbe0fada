//! The preprocessing options of `classify`, `run`, `bench` and `quantize`: a preset and single
//! fields, for models that carry no `edgenet.preprocess` metadata (a `torch.onnx.export` of
//! the user's own classifier) or to override it.

use clap::ValueEnum;
use edgenet::onnx::meta;
use edgenet::preprocess::{ChannelOrder, Preprocess, PreprocessOptions, PreprocessSource, Preset, Resolved, ValueRange};

/// A usage error found after parsing (an option that does not fit the model): exit code 2.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Order {
    /// Red, green, blue (torchvision, TensorFlow).
    Rgb,
    /// Blue, green, red (Caffe, OpenCV).
    Bgr,
}

/// How images become the model's input tensor, for models without edgenet metadata (or to
/// override it). Fields not given come from the preset, else the model's metadata, else
/// `--preset imagenet`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Preprocessing (edgenet's own models need none: it is in their metadata)")]
pub(crate) struct PreprocessArgs {
    /// Named preprocessing: imagenet (torchvision: resize crop·256/224, centre crop, mean
    /// 0.485,0.456,0.406, std 0.229,0.224,0.225 on 0..1), inception ((x−127.5)/127.5, resize
    /// crop/0.875), lite (EfficientNet-Lite: (x−127)/128, bicubic), raw (0..255 as is).
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    pub preset: Option<Preset>,
    /// Resize the shorter image side to N before the centre crop (default: the preset's ratio).
    #[arg(long, value_name = "N", value_parser = parse_resize)]
    pub resize: Option<usize>,
    /// Centre crop N or HxW: the model's input size (needed only when the file does not fix it).
    #[arg(long, value_name = "N|HxW", value_parser = parse_crop)]
    pub crop: Option<(usize, usize)>,
    /// Per-channel mean a,b,c (or one value for all), in --range units and --channel-order.
    #[arg(long, value_name = "a,b,c", value_parser = parse_mean, allow_hyphen_values = true)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation a,b,c (or one value for all), in --range units and
    /// --channel-order.
    #[arg(long, value_name = "a,b,c", value_parser = parse_std, allow_hyphen_values = true)]
    pub std: Option<[f32; 3]>,
    /// Channel order of the input tensor.
    #[arg(long, value_enum)]
    pub channel_order: Option<Order>,
    /// Pixel value range --mean and --std are given in: 0..1 (default, as torchvision) or 0..255.
    #[arg(long, value_name = "0..1|0..255", value_parser = parse_range)]
    pub range: Option<ValueRange>,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| format!("unknown preset `{s}` (known: {})", Preset::names()))
}

fn parse_resize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=65536).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a size in pixels (1 to 65536): the shorter image side after resizing")),
    }
}

fn parse_crop(s: &str) -> Result<(usize, usize), String> {
    let side = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (1..=8192).contains(n));
    let parsed = match s.split_once(['x', 'X', '×']) {
        Some((h, w)) => side(h).zip(side(w)),
        None => side(s).map(|n| (n, n)),
    };
    parsed.ok_or_else(|| format!("`{s}` is not a crop size N or HxW like 224 or 224x320 (1 to 8192 pixels)"))
}

fn parse_values(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s.split(',').map(|t| t.trim().parse::<f32>().map_err(|_| format!("`{}` is not a number", t.trim()))).collect::<Result<_, _>>()?;
    let v = match values.as_slice() {
        [a, b, c] => [*a, *b, *c],
        [a] => [*a; 3],
        _ => return Err(format!("`{s}` has {} values: give 3 (one per channel, a,b,c) or 1 for all", values.len())),
    };
    if v.iter().any(|x| !x.is_finite()) {
        return Err(format!("`{s}`: every value must be a finite number"));
    }
    Ok(v)
}

fn parse_mean(s: &str) -> Result<[f32; 3], String> {
    parse_values(s)
}

fn parse_std(s: &str) -> Result<[f32; 3], String> {
    let v = parse_values(s)?;
    if v.iter().any(|x| *x <= 0.0) {
        return Err(format!("`{s}`: every value must be greater than 0"));
    }
    Ok(v)
}

fn parse_range(s: &str) -> Result<ValueRange, String> {
    ValueRange::parse(s).ok_or_else(|| format!("`{s}` is not a range: 0..1 or 0..255"))
}

impl PreprocessArgs {
    /// The options as the library takes them.
    pub(crate) fn options(&self) -> PreprocessOptions {
        PreprocessOptions {
            preset: self.preset,
            resize: self.resize,
            crop: self.crop,
            mean: self.mean,
            std: self.std,
            channel_order: self.channel_order.map(|o| match o {
                Order::Rgb => ChannelOrder::Rgb,
                Order::Bgr => ChannelOrder::Bgr,
            }),
            range: self.range,
        }
    }

    /// The input size to give a model whose file does not fix it: `--crop`, else the default.
    pub(crate) fn input_shape(&self) -> [usize; 4] {
        let (h, w) = self.crop.unwrap_or((Preset::DEFAULT_SIZE, Preset::DEFAULT_SIZE));
        [1, 3, h, w]
    }

    /// The options resolved against the model's metadata and input size, with a log line that
    /// says what was chosen: a warning when the model has no metadata and nothing was given
    /// (the assumed preset and its values), info when the options override the metadata.
    ///
    /// # Errors
    /// [`Usage`] for options that do not fit the model; the library's error for metadata
    /// that is malformed.
    pub(crate) fn resolve(&self, model: &dyn std::fmt::Display, metadata: Option<&Preprocess>, input: (usize, usize)) -> anyhow::Result<Preprocess> {
        let r = self.options().resolve(metadata, Some(input)).map_err(usage)?;
        report(model, &r);
        Ok(r.preprocess)
    }

    /// As [`resolve`](Self::resolve), for a loaded engine (reading its metadata).
    pub(crate) fn resolve_for(&self, model: &dyn std::fmt::Display, engine: &edgenet::engine::Engine) -> anyhow::Result<Preprocess> {
        let metadata = match edgenet::runner::preprocess_metadata(engine) {
            Ok(m) => m,
            Err(e) if self.preset.is_some() => {
                log::warn!("{model}: ignoring its {} metadata, which --preset replaces: {e}", meta::PREPROCESS);
                None
            }
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{model} (give --preset to replace its preprocessing)"))),
        };
        let [_, _, h, w] = engine.input_shape();
        self.resolve(model, metadata.as_ref(), (h, w))
    }
}

/// The library's error for options that do not fit (it names the option) as a usage error.
fn usage(e: edgenet::Error) -> anyhow::Error {
    match e {
        edgenet::Error::Config(m) => Usage(m).into(),
        other => other.into(),
    }
}

fn report(model: &dyn std::fmt::Display, r: &Resolved) {
    let p = &r.preprocess;
    match &r.source {
        PreprocessSource::Metadata => log::debug!("{model}: preprocessing from its metadata: {}", p.describe()),
        PreprocessSource::OverridesMetadata { metadata } => {
            log::info!(
                "{model}: the preprocessing options override its {} metadata: {} (the file says {})",
                meta::PREPROCESS,
                p.describe(),
                metadata.describe()
            )
        }
        PreprocessSource::Options { defaults: Some(d) } => {
            log::info!("{model}: no {} metadata; preprocessing {} (the options not given from --preset {d})", meta::PREPROCESS, p.describe())
        }
        PreprocessSource::Options { defaults: None } => log::info!("{model}: no {} metadata; preprocessing {}", meta::PREPROCESS, p.describe()),
        PreprocessSource::Assumed(preset) => log::warn!(
            "{model} has no {} metadata; assuming --preset {preset} ({}); give --preset or the preprocessing options if the model was trained otherwise",
            meta::PREPROCESS,
            p.describe()
        ),
    }
}

/// Whether loading failed because the file does not fix the input size (a `torch.onnx.export`
/// with dynamic axes): then the model can be loaded with the size of the preprocessing.
pub(crate) fn is_unfixed_input(e: &edgenet::Error) -> bool {
    matches!(e, edgenet::Error::Onnx { message, .. } if message.contains("input shape is not fixed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_three_or_one() {
        assert_eq!(parse_mean("0.485, 0.456,0.406"), Ok([0.485, 0.456, 0.406]));
        assert_eq!(parse_mean("-1"), Ok([-1.0; 3]));
        assert!(parse_mean("1,2").unwrap_err().contains("2 values"));
        assert!(parse_mean("1,2,3,4").unwrap_err().contains("4 values"));
        assert!(parse_mean("1,x,3").unwrap_err().contains("`x`"));
        assert!(parse_mean("1,inf,3").is_err());
        assert!(parse_std("0.2,0,0.2").unwrap_err().contains("greater than 0"));
        assert!(parse_std("NaN").is_err());
    }

    #[test]
    fn sizes_presets_and_ranges_parse() {
        assert_eq!(parse_crop("224"), Ok((224, 224)));
        assert_eq!(parse_crop("224x320"), Ok((224, 320)));
        assert!(parse_crop("0").is_err() && parse_crop("224x").is_err() && parse_crop("big").is_err());
        assert!(parse_resize("0").is_err());
        assert_eq!(parse_preset("Inception"), Ok(Preset::Inception));
        let e = parse_preset("vgg").unwrap_err();
        assert!(e.contains("imagenet, inception, lite, raw"), "{e}");
        assert_eq!(parse_range("0..255"), Ok(ValueRange::Byte));
        assert!(parse_range("0..2").is_err());
    }
}
