//! The graph IR: a small, typed description of an image-classification network.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order; every node produces one tensor,
//! identified by a [`TensorId`]. Shapes are fixed (batch 1) and computed as nodes are added by
//! the [`GraphBuilder`]. Parameters are not stored in the graph: each node names the tensors
//! it needs ([`Node::params`]) and a [`Weights`] map holds them, keyed by those names.

mod builder;
mod dump;
mod fold;
pub mod reference;
mod weights;

pub use builder::{ConvSpec, GraphBuilder, Padding};
pub use fold::fold_batch_norms;
pub use weights::{Tensor, Weights};

/// Identifies the tensor produced by one node of a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

impl TensorId {
    /// Index of the producing node in [`Graph::nodes`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// A 2-D convolution, in ONNX terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right (the ONNX `pads` order).
    pub pads: [usize; 4],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups (`in_channels` for a depthwise conv).
    pub groups: usize,
    /// Whether the conv has a bias tensor.
    pub bias: bool,
}

impl Conv2d {
    /// Shape of the weight tensor: `[out, in / groups, kh, kw]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.out_channels, self.in_channels / self.groups, self.kernel[0], self.kernel[1]]
    }
    /// True for a depthwise conv (one input channel per group, `groups == in_channels`).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels
    }
}

/// A 2-D pooling window (max or average), in ONNX terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool2d {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Output size rounded up (a last, partial window), as PyTorch's `ceil_mode=True`; a
    /// window that would start in the bottom/right padding is dropped, as PyTorch, ONNX
    /// Runtime and tract do.
    pub ceil_mode: bool,
    /// Average pooling only: padded pixels count in the divisor.
    pub count_include_pad: bool,
}

impl Pool2d {
    /// A square `kernel` window with `stride` and the same `padding` on every side, floor mode.
    pub fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2d { kernel: [kernel; 2], stride: [stride; 2], pads: [padding; 4], ceil_mode: false, count_include_pad: false }
    }
}

/// The operations of the IR.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The graph input, `[1, C, H, W]` f32.
    Input,
    /// 2-D convolution; params `NAME.weight` and optionally `NAME.bias`.
    Conv2d(Conv2d),
    /// Inference-mode batch normalisation over channels; params `NAME.weight`, `NAME.bias`,
    /// `NAME.running_mean`, `NAME.running_var`.
    BatchNorm {
        /// Channels normalised.
        channels: usize,
        /// Variance epsilon (1e-5 in torchvision, 1e-3 in EfficientNet).
        eps: f32,
    },
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// Element-wise sum of two tensors of equal shape.
    Add,
    /// Max pooling.
    MaxPool(Pool2d),
    /// Mean over the spatial axes: `[1, C, H, W]` → `[1, C, 1, 1]`.
    GlobalAvgPool,
    /// `[1, …]` → `[1, product]`.
    Flatten,
    /// Fully connected layer `y = x Wᵀ + b`; params `NAME.weight` `[out, in]`, `NAME.bias`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether there is a bias.
        bias: bool,
    },
    /// Softmax over axis 1.
    Softmax,
    /// Average pooling (`AveragePool`).
    AvgPool(Pool2d),
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// max(0, min(1, alpha·x + beta)); PyTorch's hardsigmoid is alpha 1/6, beta 1/2.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// x · max(0, min(1, x/6 + 1/2)) (MobileNetV3's h-swish).
    HardSwish,
    /// Element-wise product with NumPy broadcasting (squeeze-excitation's channel scale,
    /// SiLU's x · sigmoid(x)).
    Mul,
    /// Concatenation along `axis` of tensors equal in every other dimension.
    Concat {
        /// Axis (1 for channels).
        axis: usize,
    },
    /// Mean over `axes`.
    ReduceMean {
        /// Axes reduced, ascending.
        axes: Vec<usize>,
        /// Whether the reduced axes stay, with size 1.
        keepdims: bool,
    },
    /// The same values in the node's shape (row-major order kept).
    Reshape,
    /// Axes permuted: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// `start..end` along `axis` (step 1).
    Slice {
        /// Axis sliced.
        axis: usize,
        /// First index kept.
        start: usize,
        /// One past the last index kept.
        end: usize,
    },
}

impl Op {
    /// Short op name, as in dumps and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Conv2d(_) => "Conv2d",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::Relu => "Relu",
            Op::Relu6 => "Relu6",
            Op::Add => "Add",
            Op::MaxPool(_) => "MaxPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Flatten => "Flatten",
            Op::Linear { .. } => "Linear",
            Op::Softmax => "Softmax",
            Op::AvgPool(_) => "AvgPool",
            Op::Sigmoid => "Sigmoid",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::HardSwish => "HardSwish",
            Op::Mul => "Mul",
            Op::Concat { .. } => "Concat",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Slice { .. } => "Slice",
        }
    }
}

/// One node: an op applied to the tensors of earlier nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Scope path, unique in the graph (`layer3.2.conv2`, `features.4.conv.1.0`, …).
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// The tensors it consumes.
    pub inputs: Vec<TensorId>,
    /// Shape of the tensor it produces (batch first, always 1).
    pub shape: Vec<usize>,
}

/// Which parameter tensors a node needs, and whether they count as trainable parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Tensor name, `NODE.weight` and so on.
    pub key: String,
    /// Expected shape.
    pub shape: Vec<usize>,
    /// Trainable parameter (counted in parameter totals) or buffer (BN running statistics).
    pub trainable: bool,
}

impl Node {
    /// The parameter tensors this node reads from [`Weights`].
    pub fn params(&self) -> Vec<ParamSpec> {
        let p = |suffix: &str, shape: Vec<usize>, trainable: bool| ParamSpec { key: format!("{}.{suffix}", self.name), shape, trainable };
        match &self.op {
            Op::Conv2d(c) => {
                let mut v = vec![p("weight", c.weight_shape(), true)];
                if c.bias {
                    v.push(p("bias", vec![c.out_channels], true));
                }
                v
            }
            Op::BatchNorm { channels, .. } => vec![
                p("weight", vec![*channels], true),
                p("bias", vec![*channels], true),
                p("running_mean", vec![*channels], false),
                p("running_var", vec![*channels], false),
            ],
            Op::Linear { in_features, out_features, bias } => {
                let mut v = vec![p("weight", vec![*out_features, *in_features], true)];
                if *bias {
                    v.push(p("bias", vec![*out_features], true));
                }
                v
            }
            _ => vec![],
        }
    }

    /// Multiply-accumulate operations of this node for one image.
    pub fn macs(&self) -> u64 {
        let elems: u64 = self.shape.iter().map(|&d| d as u64).product();
        match &self.op {
            Op::Conv2d(c) => elems * (c.in_channels / c.groups) as u64 * (c.kernel[0] * c.kernel[1]) as u64,
            Op::Linear { in_features, .. } => elems * *in_features as u64,
            _ => 0,
        }
    }
}

/// A whole network: nodes in topological order, one input and one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) output: TensorId,
}

impl Graph {
    /// All nodes, in topological order; node 0 is the input.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// The node producing `t`.
    pub fn node(&self, t: TensorId) -> &Node {
        &self.nodes[t.0]
    }
    /// The graph output.
    pub fn output(&self) -> TensorId {
        self.output
    }
    /// Input shape `[1, C, H, W]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }
    /// Output shape, `[1, classes]` for a classifier.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output.0].shape
    }
    /// Every parameter tensor the graph needs, in node order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        self.nodes.iter().flat_map(Node::params).collect()
    }
    /// Number of trainable parameters (BN running statistics excluded, as torchvision counts).
    pub fn param_count(&self) -> u64 {
        self.param_specs().iter().filter(|p| p.trainable).map(|p| p.shape.iter().map(|&d| d as u64).product::<u64>()).sum()
    }
    /// Multiply-accumulates for one image.
    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(Node::macs).sum()
    }
    /// How many nodes consume each node's output (the graph output counts as one consumer).
    pub fn consumer_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for i in &n.inputs {
                counts[i.0] += 1;
            }
        }
        counts[self.output.0] += 1;
        counts
    }
}

/// Returns `make_divisible(v, divisor)` as torchvision and the MobileNet reference code define
/// it: round to the nearest multiple of `divisor`, at least `divisor`, and never more than 10 %
/// below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) / d).floor() * d;
    if new_v < d {
        new_v = d;
    }
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24); // 18 → 16 would be > 10 % down
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        for i in 1..2000 {
            let v = i as f64 * 0.37;
            let r = make_divisible(v, 8);
            assert_eq!(r % 8, 0);
            assert!(r as f64 >= 0.9 * v, "{v} → {r}");
        }
    }
}
