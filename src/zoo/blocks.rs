//! The building blocks of the zoo: conv + BN + activation, ResNet's basic and bottleneck
//! residual blocks, and the inverted residual block of MobileNetV2, EfficientNet-Lite and (with
//! squeeze-excitation and hard-swish) MobileNetV3.
//!
//! Each block is added inside the caller's current name scope, with the local names the
//! torchvision (or EfficientNet-PyTorch) modules use, so the tensor names match the weight
//! files' keys.

use crate::error::{Error, Result};
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
    /// Hard swish `x · max(0, min(1, x/6 + 1/2))` (MobileNetV3's h-swish).
    HardSwish,
}

impl Act {
    /// Adds this activation as node `local` after `x` (`x` itself for [`Act::None`]).
    ///
    /// # Errors
    /// A duplicate name.
    pub fn apply(self, b: &mut GraphBuilder, local: &str, x: TensorId) -> Result<TensorId> {
        match self {
            Act::None => Ok(x),
            Act::Relu => b.relu(local, x),
            Act::Relu6 => b.relu6(local, x),
            Act::HardSwish => b.hard_swish(local, x),
        }
    }
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
    act.apply(b, act_name, y)
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
/// convs (and squeeze-excitation) onto the weight files' keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrNaming {
    /// torchvision `mobilenet_v2`: `conv.0.0`/`conv.0.1` (expand), `conv.1.0`/`conv.1.1`
    /// (depthwise), `conv.2`/`conv.3` (projection); without expansion everything shifts down
    /// by one. No squeeze-excitation.
    Torchvision,
    /// torchvision `mobilenet_v3_*`: the entries of `block` in order — expand `block.i.0`/
    /// `block.i.1` (when there is one), depthwise, squeeze-excitation `block.i` (its
    /// submodules `fc1`, `fc2`; when there is one), projection — numbered from 0.
    TorchvisionV3,
    /// EfficientNet-PyTorch: `_expand_conv`/`_bn0`, `_depthwise_conv`/`_bn1`,
    /// `_project_conv`/`_bn2`. No squeeze-excitation (the Lite models have none).
    EfficientNet,
}

/// Names of one conv + BN + activation triple.
pub type ConvNames = (&'static str, &'static str, &'static str);

/// The module names of one inverted residual block, from [`IrNaming::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrNames {
    /// The 1×1 expansion, `None` when the block has none.
    pub expand: Option<ConvNames>,
    /// The depthwise conv.
    pub depthwise: ConvNames,
    /// The scope of the squeeze-excitation, `None` when the block has none.
    pub se: Option<&'static str>,
    /// The 1×1 linear projection (no activation: its third name is empty).
    pub project: ConvNames,
}

/// `block.i.0`, `block.i.1`, `block.i.2` for the MobileNetV3 entries, in order.
const V3_ENTRIES: [ConvNames; 4] = [
    ("block.0.0", "block.0.1", "block.0.2"),
    ("block.1.0", "block.1.1", "block.1.2"),
    ("block.2.0", "block.2.1", "block.2.2"),
    ("block.3.0", "block.3.1", "block.3.2"),
];
/// `block.i` scopes, for a MobileNetV3 squeeze-excitation.
const V3_SCOPES: [&str; 4] = ["block.0", "block.1", "block.2", "block.3"];

impl IrNaming {
    /// The module names of a block with or without an expansion conv and a
    /// squeeze-excitation.
    ///
    /// # Errors
    /// [`Error::Config`] when `has_se` is asked of a naming without squeeze-excitation.
    pub fn names(self, has_expand: bool, has_se: bool) -> Result<IrNames> {
        if has_se && self != IrNaming::TorchvisionV3 {
            return Err(Error::Config(format!("{self:?} inverted residual blocks have no squeeze-excitation")));
        }
        Ok(match (self, has_expand) {
            (IrNaming::Torchvision, true) => IrNames {
                expand: Some(("conv.0.0", "conv.0.1", "conv.0.2")),
                depthwise: ("conv.1.0", "conv.1.1", "conv.1.2"),
                se: None,
                project: ("conv.2", "conv.3", ""),
            },
            (IrNaming::Torchvision, false) => {
                IrNames { expand: None, depthwise: ("conv.0.0", "conv.0.1", "conv.0.2"), se: None, project: ("conv.1", "conv.2", "") }
            }
            (IrNaming::EfficientNet, e) => IrNames {
                expand: e.then_some(("_expand_conv", "_bn0", "_expand_act")),
                depthwise: ("_depthwise_conv", "_bn1", "_depthwise_act"),
                se: None,
                project: ("_project_conv", "_bn2", ""),
            },
            (IrNaming::TorchvisionV3, e) => {
                let dw = usize::from(e);
                let project = V3_ENTRIES[dw + 1 + usize::from(has_se)];
                IrNames {
                    expand: e.then_some(V3_ENTRIES[0]),
                    depthwise: V3_ENTRIES[dw],
                    se: has_se.then_some(V3_SCOPES[dw + 1]),
                    project: (project.0, project.1, ""),
                }
            }
        })
    }
}

/// Configuration of one inverted residual block.
#[derive(Debug, Clone, PartialEq)]
pub struct InvertedResidual {
    /// Channels after the 1×1 expansion (input channels × t in MobileNetV2); equal to the
    /// input channels, the block has no expansion conv.
    pub expanded_channels: usize,
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
    /// Activation after the expansion and the depthwise conv: ReLU6 in MobileNetV2 and
    /// EfficientNet-Lite, ReLU or hard swish in MobileNetV3.
    pub act: Act,
    /// Squeeze channels of a squeeze-excitation after the depthwise conv
    /// ([`squeeze_excitation`]), or `None`.
    pub se: Option<usize>,
    /// Module names.
    pub naming: IrNaming,
}

/// Squeeze-and-excitation as torchvision's `SqueezeExcitation` in MobileNetV3 (Hu et al.,
/// arXiv:1709.01507, with the hard sigmoid gate of Howard et al., arXiv:1905.02244): global
/// average pool → 1×1 conv `fc1` with bias to `squeeze_channels` → ReLU → 1×1 conv `fc2` with
/// bias back to C → hard sigmoid (alpha 1/6, beta 1/2) → channel scale of the input.
///
/// Nodes: `avgpool fc1 activation fc2 scale_activation mul`.
///
/// # Shapes
/// `[1, C, H, W]` → `[1, C, H, W]`.
///
/// # Errors
/// Zero squeeze channels, or any shape error, named by node path.
pub fn squeeze_excitation(b: &mut GraphBuilder, x: TensorId, squeeze_channels: usize) -> Result<TensorId> {
    let c = b.shape(x)[1];
    let s = b.global_avg_pool("avgpool", x)?;
    let s = b.conv2d("fc1", s, ConvSpec::new(squeeze_channels, 1).padding(Padding::Symmetric(0)).bias(true))?;
    let s = b.relu("activation", s)?;
    let s = b.conv2d("fc2", s, ConvSpec::new(c, 1).padding(Padding::Symmetric(0)).bias(true))?;
    let s = b.hard_sigmoid("scale_activation", s, 1.0 / 6.0, 0.5)?;
    b.mul("mul", x, s)
}

/// The inverted residual block of MobileNetV2, EfficientNet-Lite and MobileNetV3: optional
/// 1×1 expansion → BN → activation → k×k depthwise conv with the stride → BN → activation →
/// optional squeeze-excitation → 1×1 linear projection → BN, no activation; the input is added
/// only when the stride is 1 and input and output channels match.
///
/// # Shapes
/// `[1, C, H, W]` → `[1, out, ⌈H/stride⌉, ⌈W/stride⌉]`.
///
/// # Errors
/// A squeeze-excitation with a naming that has none, or any shape error, named by node path.
pub fn inverted_residual(b: &mut GraphBuilder, x: TensorId, cfg: &InvertedResidual) -> Result<TensorId> {
    let c_in = b.shape(x)[1];
    let hidden = cfg.expanded_channels;
    let names = cfg.naming.names(hidden != c_in, cfg.se.is_some())?;
    let mut y = x;
    if let Some(n) = names.expand {
        let spec = ConvSpec::new(hidden, 1).padding(Padding::Symmetric(0));
        y = conv_bn_act(b, y, n, spec, cfg.bn_eps, cfg.act)?;
    }
    let dw_pad = match cfg.padding {
        Padding::Same => Padding::Same,
        _ => Padding::Symmetric(cfg.kernel / 2),
    };
    let spec = ConvSpec::new(hidden, cfg.kernel).stride(cfg.stride).groups(hidden).padding(dw_pad);
    y = conv_bn_act(b, y, names.depthwise, spec, cfg.bn_eps, cfg.act)?;
    if let (Some(scope), Some(squeeze)) = (names.se, cfg.se) {
        y = b.scoped(scope, |b| squeeze_excitation(b, y, squeeze))?;
    }
    let spec = ConvSpec::new(cfg.out_channels, 1).padding(Padding::Symmetric(0));
    y = conv_bn_act(b, y, names.project, spec, cfg.bn_eps, Act::None)?;
    if cfg.stride == 1 && c_in == cfg.out_channels {
        y = b.add("add", y, x)?;
    }
    Ok(y)
}
