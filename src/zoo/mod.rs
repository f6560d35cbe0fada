//! The model zoo: ResNet-18/34/50/101/152, MobileNetV2, MobileNetV3-Small/Large and
//! EfficientNet-Lite0, written with the graph builder from the blocks in [`blocks`].

pub mod blocks;
pub mod efficientnet_lite;
pub mod mobilenet_v2;
pub mod mobilenet_v3;
pub mod resnet;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::graph::{Graph, Weights};
use crate::model::{Model, ModelInfo};
use crate::preprocess::Preprocess;

/// The architectures edgenet can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// ResNet-18 (basic blocks).
    ResNet18,
    /// ResNet-34 (basic blocks).
    ResNet34,
    /// ResNet-50 (bottlenecks).
    ResNet50,
    /// ResNet-101.
    ResNet101,
    /// ResNet-152.
    ResNet152,
    /// MobileNetV2 (any width multiplier).
    MobileNetV2,
    /// MobileNetV3-Small (any width multiplier).
    MobileNetV3Small,
    /// MobileNetV3-Large (any width multiplier).
    MobileNetV3Large,
    /// EfficientNet-Lite0.
    EfficientNetLite0,
}

impl Arch {
    /// Every architecture, in a stable order.
    pub const ALL: [Arch; 9] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
        Arch::MobileNetV2,
        Arch::MobileNetV3Small,
        Arch::MobileNetV3Large,
        Arch::EfficientNetLite0,
    ];

    /// The name used on the command line and in model metadata.
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
            Arch::MobileNetV2 => "mobilenet_v2",
            Arch::MobileNetV3Small => "mobilenet_v3_small",
            Arch::MobileNetV3Large => "mobilenet_v3_large",
            Arch::EfficientNetLite0 => "efficientnet_lite0",
        }
    }

    /// Whether the architecture takes a channel width multiplier (the MobileNets); the others
    /// have a fixed width.
    pub fn has_width_mult(self) -> bool {
        matches!(self, Arch::MobileNetV2 | Arch::MobileNetV3Small | Arch::MobileNetV3Large)
    }

    /// The resolution the published weights were trained at.
    pub fn default_resolution(self) -> usize {
        224
    }

    /// How images must be prepared for this architecture's published weights.
    pub fn preprocess(self, resolution: usize) -> Preprocess {
        match self {
            Arch::EfficientNetLite0 => Preprocess::efficientnet_lite(resolution),
            _ => Preprocess::torchvision(resolution),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace(['-', '_'], "");
        Arch::ALL.into_iter().find(|a| a.name().replace('_', "") == norm).ok_or_else(|| {
            let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
            Error::Config(format!("unknown architecture `{s}`; choose one of {}", names.join(", ")))
        })
    }
}

/// The knobs of a zoo model.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooConfig {
    /// Channel width multiplier (the MobileNets, [`Arch::has_width_mult`]; 1.0 elsewhere).
    pub width_mult: f32,
    /// Square input resolution in pixels.
    pub resolution: usize,
    /// Classifier outputs.
    pub num_classes: usize,
}

impl Default for ZooConfig {
    fn default() -> Self {
        ZooConfig { width_mult: 1.0, resolution: 224, num_classes: 1000 }
    }
}

/// Smallest input side the zoo accepts: every model downsamples by 32.
pub const MIN_RESOLUTION: usize = 32;
/// Largest input side the zoo accepts (activation memory grows with its square).
pub const MAX_RESOLUTION: usize = 2048;

impl ZooConfig {
    /// The width multiplier as the decimal number it was written as: `0.35`, not the f32's
    /// 0.3499999940…. torchvision computes channel counts from a Python float, and
    /// `make_divisible` rounds 240 · 0.35 = 84 up to 88 channels but 240 · 0.3499999940 down
    /// to 80.
    pub fn width_mult_f64(&self) -> f64 {
        self.width_mult.to_string().parse().unwrap_or(self.width_mult as f64)
    }

    /// Checks that `self` makes sense for `arch`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the option: a width multiplier that is not positive and finite
    /// (or not 1 for a fixed-width model), a resolution outside
    /// [`MIN_RESOLUTION`]..=[`MAX_RESOLUTION`], zero classes.
    pub fn validate(&self, arch: Arch) -> Result<()> {
        let wm = self.width_mult;
        if !(wm.is_finite() && wm > 0.0) {
            return Err(Error::Config(format!("--width-mult must be a positive number, got {wm}")));
        }
        if arch.has_width_mult() && !(0.1..=4.0).contains(&wm) {
            return Err(Error::Config(format!("--width-mult {wm} is outside the supported range 0.1..=4.0")));
        }
        if !arch.has_width_mult() && wm != 1.0 {
            let mobilenets: Vec<&str> = Arch::ALL.iter().filter(|a| a.has_width_mult()).map(|a| a.name()).collect();
            return Err(Error::Config(format!("--width-mult applies to {} only; {arch} has a fixed width", mobilenets.join(", "))));
        }
        if !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(&self.resolution) {
            return Err(Error::Config(format!("--resolution {} is not supported: {arch} needs {MIN_RESOLUTION}..={MAX_RESOLUTION} pixels", self.resolution)));
        }
        if self.num_classes == 0 || self.num_classes > 1_000_000 {
            return Err(Error::Config(format!("--num-classes must be in 1..=1000000, got {}", self.num_classes)));
        }
        Ok(())
    }
}

/// Builds the graph of `arch`.
///
/// # Errors
/// An invalid configuration ([`ZooConfig::validate`]).
pub fn graph(arch: Arch, cfg: &ZooConfig) -> Result<Graph> {
    cfg.validate(arch)?;
    match arch {
        Arch::ResNet18 => resnet::resnet(18, cfg),
        Arch::ResNet34 => resnet::resnet(34, cfg),
        Arch::ResNet50 => resnet::resnet(50, cfg),
        Arch::ResNet101 => resnet::resnet(101, cfg),
        Arch::ResNet152 => resnet::resnet(152, cfg),
        Arch::MobileNetV2 => mobilenet_v2::mobilenet_v2(cfg),
        Arch::MobileNetV3Small => mobilenet_v3::mobilenet_v3(mobilenet_v3::Variant::Small, cfg),
        Arch::MobileNetV3Large => mobilenet_v3::mobilenet_v3(mobilenet_v3::Variant::Large, cfg),
        Arch::EfficientNetLite0 => efficientnet_lite::efficientnet_lite0(cfg),
    }
}

/// Where a zoo model's weights come from.
#[derive(Debug, Clone)]
pub enum WeightSource<'a> {
    /// Deterministic random weights from this seed.
    Seeded(u64),
    /// A safetensors file with torchvision (or EfficientNet-PyTorch) key names.
    Safetensors(&'a Path),
    /// Safetensors bytes already in memory (embedded, say); `origin` names them in errors.
    SafetensorsBytes {
        /// The file's content.
        bytes: &'a [u8],
        /// Where it came from.
        origin: &'a Path,
    },
}

/// The metadata of a zoo model: architecture, preprocessing of its published weights, label
/// set.
pub fn model_info(arch: Arch, cfg: &ZooConfig) -> ModelInfo {
    ModelInfo {
        arch: arch.name().to_string(),
        preprocess: arch.preprocess(cfg.resolution),
        labels: if cfg.num_classes == 1000 { "imagenet-1k".into() } else { format!("{} classes", cfg.num_classes) },
    }
}

/// Builds `arch` with its weights and metadata.
///
/// # Errors
/// An invalid configuration, or a weights file that does not fit the graph (the error names
/// the key).
pub fn build(arch: Arch, cfg: &ZooConfig, weights: WeightSource<'_>) -> Result<Model> {
    let graph = graph(arch, cfg)?;
    let weights = match weights {
        WeightSource::Seeded(seed) => Weights::seeded(&graph, seed),
        WeightSource::Safetensors(path) => Weights::from_safetensors_file(path, &graph)?,
        WeightSource::SafetensorsBytes { bytes, origin } => Weights::from_safetensors_bytes(bytes, origin, &graph)?,
    };
    Model::new(model_info(arch, cfg), graph, weights)
}
