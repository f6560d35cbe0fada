//! The building blocks of the zoo: conv + BN + activation, ResNet's basic and bottleneck
//! residual blocks, and MobileNetV2's inverted residual block.
//!
//! Each block is added inside the caller's current name scope, with the local names the
//! torchvision (or EfficientNet-PyTorch) modules use, so the tensor names match the weight
//! files' keys.

use crate::error::Result;
use crate::graph::{ConvSpec, GraphBuilder, Padding, TensorId};

/// Activation after a conv + BN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None (a linear layer, e.g. the MobileNetV2 projection).
    None,
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
}

/// Conv → BatchNorm → activation, with the three nodes named `conv`, `bn` and `act`
/// (relative to the current scope).
///
/// # Shapes
/// As [`GraphBuilder::conv2d`].
///
/// # Errors
/// Any shape error of the three nodes.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_act(b: &mut GraphBuilder, x: TensorId, names: (&str, &str, &str), spec: ConvSpec, eps: f32, act: Act) -> Result<TensorId> {
    let (conv, bn, act_name) = names;
    let y = b.conv2d(conv, x, spec)?;
    let y = b.batch_norm(bn, y, eps)?;
    match act {
        Act::None => Ok(y),
        Act::Relu => b.relu(act_name, y),
        Act::Relu6 => b.relu6(act_name, y),
    }
}

/// BatchNorm epsilon of torchvision models.
pub const TORCH_BN_EPS: f32 = 1e-5;

/// Output channels of a bottleneck block of the given width (expansion 4).
pub const BOTTLENECK_EXPANSION: usize = 4;

/// The optional shortcut projection of a ResNet block: `downsample.0` (1×1 strided conv) and
/// `downsample.1` (BN), added when the stride or the channel count changes.
fn shortcut(b: &mut GraphBuilder, x: TensorId, out: usize, stride: usize) -> Result<TensorId> {
    let c_in = b.shape(x)[1];
    if stride == 1 && c_in == out {
        return Ok(x);
    }
    b.scoped("downsample", |b| {
        let spec = ConvSpec::new(out, 1).stride(stride).padding(Padding::Symmetric(0));
        conv_bn_act(b, x, ("0", "1", ""), spec, TORCH_BN_EPS, Act::None)
    })
}

/// ResNet v1.5 bottleneck block, as torchvision's `Bottleneck`.
///
/// 1×1 conv to `width` → BN → ReLU → 3×3 conv with `stride` → BN → ReLU → 1×1 conv to
/// `4·width` → BN; plus the shortcut (the input, or `downsample`: 1×1 strided conv + BN when
/// the stride or channel count changes); add; ReLU. Each conv consumes the previous conv's
/// output.
///
/// Nodes: `conv1 bn1 relu1 conv2 bn2 relu2 conv3 bn3 [downsample.0 downsample.1] add relu`.
///
/// # Shapes
/// `[1, C, H, W]` → `[1, 4·width, ⌈H/stride⌉, ⌈W/stride⌉]`.
///
/// # Errors
/// Any shape error, named by node path.
pub fn bottleneck(b: &mut GraphBuilder, x: TensorId, width: usize, stride: usize) -> Result<TensorId> {
    let out = width * BOTTLENECK_EXPANSION;
    let y = conv_bn_act(b, x, ("conv1", "bn1", "relu1"), ConvSpec::new(width, 1).padding(Padding::Symmetric(0)), TORCH_BN_EPS, Act::Relu)?;
    let y = conv_bn_act(b, y, ("conv2", "bn2", "relu2"), ConvSpec::new(width, 3).stride(stride), TORCH_BN_EPS, Act::Relu)?;
    let y = conv_bn_act(b, y, ("conv3", "bn3", ""), ConvSpec::new(out, 1).padding(Padding::Symmetric(0)), TORCH_BN_EPS, Act::None)?;
    let s = shortcut(b, x, out, stride)?;
    let y = b.add("add", y, s)?;
    b.relu("relu", y)
}

/// ResNet basic block (ResNet-18/34), as torchvision's `BasicBlock`: 3×3 conv with `stride`
/// → BN → ReLU → 3×3 conv → BN; plus the shortcut; add; ReLU.
///
/// # Shapes
/// `[1, C, H, W]` → `[1, planes, ⌈H/stride⌉, ⌈W/stride⌉]`.
///
/// # Errors
/// Any shape error, named by node path.
pub fn basic_block(b: &mut GraphBuilder, x: TensorId, planes: usize, stride: usize) -> Result<TensorId> {
    let y = conv_bn_act(b, x, ("conv1", "bn1", "relu1"), ConvSpec::new(planes, 3).stride(stride), TORCH_BN_EPS, Act::Relu)?;
    let y = conv_bn_act(b, y, ("conv2", "bn2", ""), ConvSpec::new(planes, 3), TORCH_BN_EPS, Act::None)?;
    let s = shortcut(b, x, planes, stride)?;
    let y = b.add("add", y, s)?;
    b.relu("relu", y)
}

/// Which module names an inverted residual block uses — the one table that maps the block's
/// three convs onto the weight files' keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrNaming {
    /// torchvision `mobilenet_v2`: `conv.0.0`/`conv.0.1` (expand), `conv.1.0`/`conv.1.1`
    /// (depthwise), `conv.2`/`conv.3` (projection); without expansion everything shifts down
    /// by one.
    Torchvision,
    /// EfficientNet-PyTorch: `_expand_conv`/`_bn0`, `_depthwise_conv`/`_bn1`,
    /// `_project_conv`/`_bn2`.
    EfficientNet,
}

/// Names of one conv + BN + activation triple.
pub type ConvNames = (&'static str, &'static str, &'static str);

impl IrNaming {
    /// `(expand, depthwise, project)` names, each `(conv, bn, activation)`; `expand` is
    /// `None` when the block has no expansion conv.
    pub fn names(self, has_expand: bool) -> (Option<ConvNames>, ConvNames, ConvNames) {
        match (self, has_expand) {
            (IrNaming::Torchvision, true) => (Some(("conv.0.0", "conv.0.1", "conv.0.2")), ("conv.1.0", "conv.1.1", "conv.1.2"), ("conv.2", "conv.3", "")),
            (IrNaming::Torchvision, false) => (None, ("conv.0.0", "conv.0.1", "conv.0.2"), ("conv.1", "conv.2", "")),
            (IrNaming::EfficientNet, e) => {
                (e.then_some(("_expand_conv", "_bn0", "_expand_act")), ("_depthwise_conv", "_bn1", "_depthwise_act"), ("_project_conv", "_bn2", ""))
            }
        }
    }
}

/// Configuration of one inverted residual block.
#[derive(Debug, Clone, PartialEq)]
pub struct InvertedResidual {
    /// Expansion factor t (1 = no expansion conv).
    pub expand_ratio: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Depthwise kernel size (3 or 5).
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// BatchNorm epsilon.
    pub bn_eps: f32,
    /// `Padding::Symmetric(kernel / 2)` as torchvision, or `Padding::Same` as TensorFlow.
    pub padding: Padding,
    /// Module names.
    pub naming: IrNaming,
}

/// MobileNetV2's inverted residual block: optional 1×1 expansion (×t) → BN → ReLU6 → k×k
/// depthwise conv with the stride → BN → ReLU6 → 1×1 linear projection → BN, no activation;
/// the input is added only when the stride is 1 and input and output channels match.
///
/// # Shapes
/// `[1, C, H, W]` → `[1, out, ⌈H/stride⌉, ⌈W/stride⌉]`.
///
/// # Errors
/// Any shape error, named by node path.
pub fn inverted_residual(b: &mut GraphBuilder, x: TensorId, cfg: &InvertedResidual) -> Result<TensorId> {
    let c_in = b.shape(x)[1];
    let hidden = c_in * cfg.expand_ratio;
    let (expand, dw, project) = cfg.naming.names(cfg.expand_ratio != 1);
    let mut y = x;
    if let Some(names) = expand {
        let spec = ConvSpec::new(hidden, 1).padding(Padding::Symmetric(0));
        y = conv_bn_act(b, y, names, spec, cfg.bn_eps, Act::Relu6)?;
    }
    let dw_pad = match cfg.padding {
        Padding::Same => Padding::Same,
        _ => Padding::Symmetric(cfg.kernel / 2),
    };
    let spec = ConvSpec::new(hidden, cfg.kernel).stride(cfg.stride).groups(hidden).padding(dw_pad);
    y = conv_bn_act(b, y, dw, spec, cfg.bn_eps, Act::Relu6)?;
    let spec = ConvSpec::new(cfg.out_channels, 1).padding(Padding::Symmetric(0));
    y = conv_bn_act(b, y, project, spec, cfg.bn_eps, Act::None)?;
    if cfg.stride == 1 && c_in == cfg.out_channels {
        y = b.add("add", y, x)?;
    }
    Ok(y)
}
