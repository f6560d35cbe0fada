//! ResNet-18/34/50/101/152.
//!
//! He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
//! (arXiv:1512.03385), in the v1.5 form of torchvision's `torchvision/models/resnet.py`:
//! the stride of a downsampling bottleneck sits on its 3×3 conv, not its first 1×1 conv.
//! Tensor names match torchvision's state dict (`conv1`, `bn1`, `layer3.2.conv2`,
//! `layer2.0.downsample.0`, `fc`).

use super::blocks::{basic_block, bottleneck, conv_bn_act, Act, TORCH_BN_EPS};
use super::ZooConfig;
use crate::error::Result;
use crate::graph::{ConvSpec, Graph, GraphBuilder};

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convs (ResNet-18/34).
    Basic,
    /// 1×1 → 3×3 → 1×1 with expansion 4 (ResNet-50/101/152).
    Bottleneck,
}

/// Blocks per stage; the stage widths and strides are the same for every depth.
pub fn stage_depths(depth: usize) -> Option<(Block, [usize; 4])> {
    Some(match depth {
        18 => (Block::Basic, [2, 2, 2, 2]),
        34 => (Block::Basic, [3, 4, 6, 3]),
        50 => (Block::Bottleneck, [3, 4, 6, 3]),
        101 => (Block::Bottleneck, [3, 4, 23, 3]),
        152 => (Block::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

/// The stage table: `(width, blocks, stride)` for `layer1`…`layer4`.
pub fn stage_table(depth: usize) -> Option<(Block, [(usize, usize, usize); 4])> {
    let (block, n) = stage_depths(depth)?;
    Some((block, [(64, n[0], 1), (128, n[1], 2), (256, n[2], 2), (512, n[3], 2)]))
}

/// Builds ResNet-`depth` (18, 34, 50, 101 or 152).
///
/// # Errors
/// An unsupported depth, or an input too small for the network.
pub fn resnet(depth: usize, cfg: &ZooConfig) -> Result<Graph> {
    let (block, table) = stage_table(depth).ok_or_else(|| crate::Error::Config(format!("ResNet-{depth} does not exist; choose 18, 34, 50, 101 or 152")))?;
    let mut b = GraphBuilder::new();
    let x = b.input(3, cfg.resolution, cfg.resolution)?;
    let mut x = conv_bn_act(&mut b, x, ("conv1", "bn1", "relu"), ConvSpec::new(64, 7).stride(2), TORCH_BN_EPS, Act::Relu)?;
    x = b.max_pool("maxpool", x, 3, 2, 1)?;
    for (i, &(width, blocks, stride)) in table.iter().enumerate() {
        for j in 0..blocks {
            let s = if j == 0 { stride } else { 1 };
            b.push_scope(format!("layer{}", i + 1));
            b.push_scope(j.to_string());
            let r = match block {
                Block::Basic => basic_block(&mut b, x, width, s),
                Block::Bottleneck => bottleneck(&mut b, x, width, s),
            };
            b.pop_scope();
            b.pop_scope();
            x = r?;
        }
    }
    x = b.global_avg_pool("avgpool", x)?;
    x = b.flatten("flatten", x)?;
    let y = b.linear("fc", x, cfg.num_classes, true)?;
    b.finish(y)
}
