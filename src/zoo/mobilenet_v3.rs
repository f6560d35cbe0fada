//! MobileNetV3-Small and MobileNetV3-Large.
//!
//! Howard et al., "Searching for MobileNetV3", ICCV 2019 (arXiv:1905.02244), as torchvision's
//! `torchvision/models/mobilenetv3.py`: the `_mobilenet_v3_conf` tables below (the paper's
//! tables 1 and 2), every channel count rounded with `make_divisible(c · width_mult, 8)`, the
//! inverted residual block of [`blocks`](super::blocks) with ReLU or hard swish and, where the
//! table says so, a squeeze-excitation of `make_divisible(expanded / 4, 8)` channels with a
//! hard sigmoid gate; BatchNorm eps 1e-3; a hard-swish stem (3×3 stride 2 to 16 channels) and
//! last conv (1×1 to 6 × the last block's channels); the classifier Linear → hard swish →
//! (Dropout, an identity at inference) → Linear.
//!
//! Tensor names match torchvision's state dict: `features.0.0` (stem conv) / `features.0.1`
//! (its BN), `features.N.block.M.0`/`.1` (conv/BN of the M-th entry of block N's sequence),
//! `features.N.block.M.fc1`/`fc2` (the squeeze-excitation), `classifier.0`, `classifier.3`.
//! The `dilated` and `reduced_tail` options of torchvision (for detection and segmentation
//! backbones) are not provided: the classifiers use neither.

use super::blocks::{conv_bn_act, inverted_residual, Act, InvertedResidual, IrNaming};
use super::ZooConfig;
use crate::error::Result;
use crate::graph::{make_divisible, ConvSpec, Graph, GraphBuilder, Padding};

/// BatchNorm epsilon of torchvision's MobileNetV3 (`partial(nn.BatchNorm2d, eps=0.001)`).
pub const BN_EPS: f32 = 1e-3;

/// ReLU, `"RE"` in torchvision's tables.
const RE: Act = Act::Relu;
/// Hard swish, `"HS"` in torchvision's tables.
const HS: Act = Act::HardSwish;

/// One row of a MobileNetV3 table, torchvision's `InvertedResidualConfig` with dilation 1:
/// `(input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride)`,
/// channel counts before the width multiplier.
pub type Bneck = (usize, usize, usize, usize, bool, Act, usize);

/// MobileNetV3-Large (`_mobilenet_v3_conf("mobilenet_v3_large")`).
pub const LARGE: [Bneck; 15] = [
    (16, 3, 16, 16, false, RE, 1),
    (16, 3, 64, 24, false, RE, 2), // C1
    (24, 3, 72, 24, false, RE, 1),
    (24, 5, 72, 40, true, RE, 2), // C2
    (40, 5, 120, 40, true, RE, 1),
    (40, 5, 120, 40, true, RE, 1),
    (40, 3, 240, 80, false, HS, 2), // C3
    (80, 3, 200, 80, false, HS, 1),
    (80, 3, 184, 80, false, HS, 1),
    (80, 3, 184, 80, false, HS, 1),
    (80, 3, 480, 112, true, HS, 1),
    (112, 3, 672, 112, true, HS, 1),
    (112, 5, 672, 160, true, HS, 2), // C4
    (160, 5, 960, 160, true, HS, 1),
    (160, 5, 960, 160, true, HS, 1),
];

/// Width of MobileNetV3-Large's penultimate (classifier) layer, before the width multiplier.
pub const LARGE_LAST_CHANNEL: usize = 1280;

/// MobileNetV3-Small (`_mobilenet_v3_conf("mobilenet_v3_small")`).
pub const SMALL: [Bneck; 11] = [
    (16, 3, 16, 16, true, RE, 2),  // C1
    (16, 3, 72, 24, false, RE, 2), // C2
    (24, 3, 88, 24, false, RE, 1),
    (24, 5, 96, 40, true, HS, 2), // C3
    (40, 5, 240, 40, true, HS, 1),
    (40, 5, 240, 40, true, HS, 1),
    (40, 5, 120, 48, true, HS, 1),
    (48, 5, 144, 48, true, HS, 1),
    (48, 5, 288, 96, true, HS, 2), // C4
    (96, 5, 576, 96, true, HS, 1),
    (96, 5, 576, 96, true, HS, 1),
];

/// Width of MobileNetV3-Small's penultimate (classifier) layer, before the width multiplier.
pub const SMALL_LAST_CHANNEL: usize = 1024;

/// The two MobileNetV3 classifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// MobileNetV3-Small.
    Small,
    /// MobileNetV3-Large.
    Large,
}

impl Variant {
    /// The block table.
    pub fn table(self) -> &'static [Bneck] {
        match self {
            Variant::Small => &SMALL,
            Variant::Large => &LARGE,
        }
    }

    /// The classifier's hidden width, before the width multiplier.
    pub fn last_channel(self) -> usize {
        match self {
            Variant::Small => SMALL_LAST_CHANNEL,
            Variant::Large => LARGE_LAST_CHANNEL,
        }
    }
}

/// Builds MobileNetV3-`variant` with `cfg.width_mult`, `cfg.resolution` and `cfg.num_classes`.
///
/// # Errors
/// An input too small for the network.
pub fn mobilenet_v3(variant: Variant, cfg: &ZooConfig) -> Result<Graph> {
    let wm = cfg.width_mult_f64();
    let adjust = |c: usize| make_divisible(c as f64 * wm, 8);
    let table = variant.table();
    let mut b = GraphBuilder::new();
    let x = b.input(3, cfg.resolution, cfg.resolution)?;
    let stem = ConvSpec::new(adjust(table[0].0), 3).stride(2);
    let mut x = b.scoped("features.0", |b| conv_bn_act(b, x, ("0", "1", "2"), stem, BN_EPS, Act::HardSwish))?;
    for (i, &(_, kernel, expanded, out, use_se, act, stride)) in table.iter().enumerate() {
        let expanded = adjust(expanded);
        let block = InvertedResidual {
            expanded_channels: expanded,
            out_channels: adjust(out),
            kernel,
            stride,
            bn_eps: BN_EPS,
            padding: Padding::Symmetric((kernel - 1) / 2),
            act,
            se: use_se.then(|| make_divisible((expanded / 4) as f64, 8)),
            naming: IrNaming::TorchvisionV3,
        };
        x = b.scoped(format!("features.{}", i + 1), |b| inverted_residual(b, x, &block))?;
    }
    let last_in = adjust(table[table.len() - 1].3);
    let spec = ConvSpec::new(6 * last_in, 1).padding(Padding::Symmetric(0));
    x = b.scoped(format!("features.{}", table.len() + 1), |b| conv_bn_act(b, x, ("0", "1", "2"), spec, BN_EPS, Act::HardSwish))?;
    x = b.global_avg_pool("avgpool", x)?;
    x = b.flatten("flatten", x)?;
    x = b.linear("classifier.0", x, adjust(variant.last_channel()), true)?;
    x = b.hard_swish("classifier.1", x)?;
    let y = b.linear("classifier.3", x, cfg.num_classes, true)?;
    b.finish(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row's input channels are the previous row's output, the first row's the stem's
    /// 16: the builder reads the input channels from the graph, so the tables must chain.
    #[test]
    fn tables_chain() {
        for table in [&SMALL[..], &LARGE[..]] {
            assert_eq!(table[0].0, 16);
            for w in table.windows(2) {
                assert_eq!(w[1].0, w[0].3, "{w:?}");
            }
        }
    }

    #[test]
    fn squeeze_excitation_widths_are_torchvisions() {
        // make_divisible(expanded // 4, 8): 16 → 8, 72 → 24 (18 rounds to 16 < 0.9·18, so 24),
        // 96 → 24, 240 → 64, 120 → 32, 144 → 40, 288 → 72, 576 → 144, 480 → 120, 672 → 168.
        let w = |e: usize| make_divisible((e / 4) as f64, 8);
        let got: Vec<usize> = [16, 72, 96, 240, 120, 144, 288, 576, 480, 672, 960].iter().map(|&e| w(e)).collect();
        assert_eq!(got, [8, 24, 24, 64, 32, 40, 72, 144, 120, 168, 240]);
    }
}
