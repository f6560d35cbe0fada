//! MobileNetV2.
//!
//! Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
//! (arXiv:1801.04381), as torchvision's `torchvision/models/mobilenetv2.py`: the `(t, c, n, s)`
//! table below, channels rounded with `make_divisible(c · width_mult, 8)`, the last conv
//! widened to `1280 · max(1, width_mult)`, and tensor names `features.N…`, `classifier.1`.

use super::blocks::{conv_bn_act, inverted_residual, Act, InvertedResidual, IrNaming, TORCH_BN_EPS};
use super::ZooConfig;
use crate::error::Result;
use crate::graph::{make_divisible, ConvSpec, Graph, GraphBuilder, Padding};

/// The inverted residual settings `(t, c, n, s)`: expansion, output channels, repeats, stride
/// of the first repeat.
pub const SETTINGS: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Builds MobileNetV2 with `cfg.width_mult`, `cfg.resolution` and `cfg.num_classes`.
///
/// # Errors
/// An input too small for the network.
pub fn mobilenet_v2(cfg: &ZooConfig) -> Result<Graph> {
    let wm = cfg.width_mult_f64();
    let mut b = GraphBuilder::new();
    let x = b.input(3, cfg.resolution, cfg.resolution)?;
    let stem = make_divisible(32.0 * wm, 8);
    let last = make_divisible(1280.0 * wm.max(1.0), 8);
    let mut x = b.scoped("features.0", |b| conv_bn_act(b, x, ("0", "1", "2"), ConvSpec::new(stem, 3).stride(2), TORCH_BN_EPS, Act::Relu6))?;
    let mut index = 1;
    let mut c_in = stem;
    for &(t, c, n, s) in &SETTINGS {
        let out = make_divisible(c as f64 * wm, 8);
        for i in 0..n {
            let cfg = InvertedResidual {
                expanded_channels: c_in * t,
                out_channels: out,
                kernel: 3,
                stride: if i == 0 { s } else { 1 },
                bn_eps: TORCH_BN_EPS,
                padding: Padding::Symmetric(1),
                act: Act::Relu6,
                se: None,
                naming: IrNaming::Torchvision,
            };
            x = b.scoped(format!("features.{index}"), |b| inverted_residual(b, x, &cfg))?;
            index += 1;
            c_in = out;
        }
    }
    let spec = ConvSpec::new(last, 1).padding(Padding::Symmetric(0));
    x = b.scoped(format!("features.{index}"), |b| conv_bn_act(b, x, ("0", "1", "2"), spec, TORCH_BN_EPS, Act::Relu6))?;
    x = b.global_avg_pool("avgpool", x)?;
    x = b.flatten("flatten", x)?;
    let y = b.linear("classifier.1", x, cfg.num_classes, true)?;
    b.finish(y)
}
