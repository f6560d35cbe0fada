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
