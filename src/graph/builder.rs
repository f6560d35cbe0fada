//! [`GraphBuilder`]: add nodes one by one, with shapes checked at once and names taken from
//! the current scope path.

use std::collections::HashSet;

use super::{Conv2d, Graph, Node, Op, Pool2d, TensorId};
use crate::error::{Error, Result};

/// How a convolution or pooling window is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The same amount on every side.
    Symmetric(usize),
    /// Explicit top, left, bottom, right.
    Explicit([usize; 4]),
    /// TensorFlow "SAME" (ONNX `SAME_UPPER`): output size `ceil(in / stride)`, the odd pixel
    /// of padding after. Resolved to explicit pads from the input size when the node is added.
    Same,
}

/// Builder-style description of a convolution, to pass to [`GraphBuilder::conv2d`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Padding rule.
    pub padding: Padding,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether the conv has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel`×`kernel` conv to `out_channels`, stride 1, padding `kernel / 2`, no bias.
    pub fn new(out_channels: usize, kernel: usize) -> Self {
        ConvSpec { out_channels, kernel, stride: 1, padding: Padding::Symmetric(kernel / 2), dilation: 1, groups: 1, bias: false }
    }
    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the channel groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Gives the conv a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// Builds a [`Graph`] node by node.
///
/// Every call checks the input shapes and returns an [`Error::Shape`] naming the node path on
/// a mismatch. Names are the current scope path plus the local name, joined by dots, so that
/// they match the keys of torchvision-style weight files.
///
/// ```
/// use edgenet::graph::{ConvSpec, GraphBuilder};
/// # fn main() -> edgenet::Result<()> {
/// let mut b = GraphBuilder::new();
/// let x = b.input(3, 32, 32)?;
/// b.push_scope("stem");
/// let x = b.conv2d("conv", x, ConvSpec::new(8, 3).stride(2))?;
/// let x = b.relu("relu", x)?;
/// b.pop_scope();
/// let x = b.global_avg_pool("pool", x)?;
/// let x = b.flatten("flatten", x)?;
/// let y = b.linear("fc", x, 10, true)?;
/// let g = b.finish(y)?;
/// assert_eq!(g.node(g.output()).shape, vec![1, 10]);
/// assert_eq!(g.nodes()[1].name, "stem.conv");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    scopes: Vec<String>,
    names: HashSet<String>,
}

fn out_dim(node: &str, axis: &str, size: usize, k: usize, s: usize, d: usize, before: usize, after: usize) -> Result<usize> {
    if s == 0 || d == 0 || k == 0 {
        return Err(Error::shape(node, format!("kernel, stride and dilation must be ≥ 1 (got k={k}, s={s}, d={d})")));
    }
    let span = d.checked_mul(k - 1).and_then(|v| v.checked_add(1)).ok_or_else(|| Error::shape(node, "kernel span overflows"))?;
    let padded = size.checked_add(before).and_then(|v| v.checked_add(after)).ok_or_else(|| Error::shape(node, "padding overflows"))?;
    if padded < span {
        return Err(Error::shape(
            node,
            format!("{axis} {size} (+{before}+{after} padding) is smaller than the kernel span {span}: the input resolution is too small for this network"),
        ));
    }
    Ok((padded - span) / s + 1)
}

/// Output size of a pooling window along one axis, floor or ceil mode (ONNX, PyTorch and
/// tract agree: in ceil mode a last window that would start in the trailing padding is dropped).
fn pool_out_dim(node: &str, axis: &str, size: usize, k: usize, s: usize, before: usize, after: usize, ceil: bool) -> Result<usize> {
    let floor = out_dim(node, axis, size, k, s, 1, before, after)?;
    if !ceil {
        return Ok(floor);
    }
    let span = size + before + after - k;
    let mut out = span.div_ceil(s) + 1;
    if (out - 1) * s >= size + before {
        out -= 1;
    }
    Ok(out.max(floor))
}

/// NumPy broadcasting of two shapes.
fn broadcast(node: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let at = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(Error::shape(node, format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

fn same_pads(size: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let out = size.div_ceil(s.max(1));
    let span = d * (k.max(1) - 1) + 1;
    let total = ((out.saturating_sub(1)) * s + span).saturating_sub(size);
    (total / 2, total - total / 2)
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enters a name scope: nodes added until [`pop_scope`](Self::pop_scope) are named
    /// `SCOPE.name`.
    pub fn push_scope(&mut self, scope: impl Into<String>) {
        self.scopes.push(scope.into());
    }

    /// Leaves the innermost name scope.
    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// Runs `f` inside the scope `scope`.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn scoped<R>(&mut self, scope: impl Into<String>, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.push_scope(scope);
        let r = f(self);
        self.pop_scope();
        r
    }

    /// The full path a node called `local` would get here.
    pub fn path(&self, local: &str) -> String {
        let mut parts: Vec<&str> = self.scopes.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        if !local.is_empty() {
            parts.push(local);
        }
        parts.join(".")
    }

    /// Shape of a tensor made so far.
    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.nodes[t.0].shape
    }

    /// Name of the node that made a tensor.
    pub fn node_name(&self, t: TensorId) -> &str {
        &self.nodes[t.0].name
    }

    fn check_id(&self, node: &str, t: TensorId) -> Result<&[usize]> {
        self.nodes.get(t.0).map(|n| n.shape.as_slice()).ok_or_else(|| Error::shape(node, format!("input tensor #{} does not exist in this builder", t.0)))
    }

    fn push(&mut self, local: &str, op: Op, inputs: Vec<TensorId>, shape: Vec<usize>) -> Result<TensorId> {
        let name = self.path(local);
        if !self.names.insert(name.clone()) {
            return Err(Error::shape(&name, "a node with this name already exists"));
        }
        self.nodes.push(Node { name, op, inputs, shape });
        Ok(TensorId(self.nodes.len() - 1))
    }

    fn nchw(&self, node: &str, x: TensorId) -> Result<[usize; 4]> {
        let s = self.check_id(node, x)?;
        match *s {
            [n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(Error::shape(node, format!("expects a [N, C, H, W] input, got {s:?}"))),
        }
    }

    /// Declares the graph input `[1, channels, height, width]`. Must be the first node.
    ///
    /// # Errors
    /// A second input, or a zero dimension.
    pub fn input(&mut self, channels: usize, height: usize, width: usize) -> Result<TensorId> {
        if !self.nodes.is_empty() {
            return Err(Error::shape("input", "the input must be the first node, and there is only one"));
        }
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::shape("input", format!("zero dimension in [1, {channels}, {height}, {width}]")));
        }
        self.nodes.push(Node { name: "input".into(), op: Op::Input, inputs: vec![], shape: vec![1, channels, height, width] });
        self.names.insert("input".into());
        Ok(TensorId(0))
    }

    /// A 2-D convolution.
    ///
    /// # Shapes
    /// `[1, C, H, W]` → `[1, out, H', W']` with `H' = (H + pads - dilation·(k−1) − 1) / stride + 1`.
    ///
    /// # Errors
    /// Wrong input rank, channels not divisible by `groups`, an output smaller than one pixel.
    pub fn conv2d(&mut self, local: &str, x: TensorId, spec: ConvSpec) -> Result<TensorId> {
        let node = self.path(local);
        let [_, c, h, w] = self.nchw(&node, x)?;
        let g = spec.groups;
        if g == 0 || c % g != 0 || !spec.out_channels.is_multiple_of(g) || spec.out_channels == 0 {
            return Err(Error::shape(&node, format!("{c} input and {} output channels do not split into {g} groups", spec.out_channels)));
        }
        let k = spec.kernel;
        let pads = match spec.padding {
            Padding::Symmetric(p) => [p; 4],
            Padding::Explicit(p) => p,
            Padding::Same => {
                let (t, b) = same_pads(h, k, spec.stride, spec.dilation);
                let (l, r) = same_pads(w, k, spec.stride, spec.dilation);
                [t, l, b, r]
            }
        };
        let oh = out_dim(&node, "height", h, k, spec.stride, spec.dilation, pads[0], pads[2])?;
        let ow = out_dim(&node, "width", w, k, spec.stride, spec.dilation, pads[1], pads[3])?;
        let conv = Conv2d {
            in_channels: c,
            out_channels: spec.out_channels,
            kernel: [k, k],
            stride: [spec.stride; 2],
            pads,
            dilation: [spec.dilation; 2],
            groups: g,
            bias: spec.bias,
        };
        self.push(local, Op::Conv2d(conv), vec![x], vec![1, spec.out_channels, oh, ow])
    }

    /// Inference-mode batch normalisation.
    ///
    /// # Shapes
    /// `[1, C, H, W]` → same.
    ///
    /// # Errors
    /// Wrong input rank, or a non-positive `eps`.
    pub fn batch_norm(&mut self, local: &str, x: TensorId, eps: f32) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.nchw(&node, x)?;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::shape(&node, format!("epsilon must be positive, got {eps}")));
        }
        self.push(local, Op::BatchNorm { channels: s[1], eps }, vec![x], s.to_vec())
    }

    fn unary(&mut self, local: &str, x: TensorId, op: Op) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?.to_vec();
        self.push(local, op, vec![x], s)
    }

    /// ReLU. Any shape → same.
    ///
    /// # Errors
    /// An unknown input or a duplicate name.
    pub fn relu(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        self.unary(local, x, Op::Relu)
    }

    /// ReLU6 (clip to [0, 6]). Any shape → same.
    ///
    /// # Errors
    /// An unknown input or a duplicate name.
    pub fn relu6(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        self.unary(local, x, Op::Relu6)
    }

    /// Softmax over axis 1 of a `[1, N]` tensor.
    ///
    /// # Errors
    /// Input not of rank 2.
    pub fn softmax(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?;
        if s.len() != 2 {
            return Err(Error::shape(&node, format!("softmax expects [1, N], got {s:?}")));
        }
        self.unary(local, x, Op::Softmax)
    }

    /// Element-wise sum.
    ///
    /// # Shapes
    /// Both inputs must have the same shape; the output has it too.
    ///
    /// # Errors
    /// The shapes differ.
    pub fn add(&mut self, local: &str, a: TensorId, b: TensorId) -> Result<TensorId> {
        let node = self.path(local);
        let sa = self.check_id(&node, a)?.to_vec();
        let sb = self.check_id(&node, b)?;
        if sa != sb {
            return Err(Error::shape(&node, format!("cannot add {sa:?} and {sb:?}")));
        }
        self.push(local, Op::Add, vec![a, b], sa)
    }

    /// Max pooling with a square window.
    ///
    /// # Shapes
    /// `[1, C, H, W]` → `[1, C, H', W']` as for a conv.
    ///
    /// # Errors
    /// Wrong rank, or an output smaller than one pixel.
    pub fn max_pool(&mut self, local: &str, x: TensorId, kernel: usize, stride: usize, padding: usize) -> Result<TensorId> {
        let node = self.path(local);
        let [_, c, h, w] = self.nchw(&node, x)?;
        let oh = out_dim(&node, "height", h, kernel, stride, 1, padding, padding)?;
        let ow = out_dim(&node, "width", w, kernel, stride, 1, padding, padding)?;
        let pool = Pool2d::square(kernel, stride, padding);
        self.push(local, Op::MaxPool(pool), vec![x], vec![1, c, oh, ow])
    }

    fn pool(&mut self, local: &str, x: TensorId, pool: Pool2d, avg: bool) -> Result<TensorId> {
        let node = self.path(local);
        let [_, c, h, w] = self.nchw(&node, x)?;
        let (k, s, p) = (pool.kernel, pool.stride, pool.pads);
        if p[0] >= k[0] || p[2] >= k[0] || p[1] >= k[1] || p[3] >= k[1] {
            return Err(Error::shape(&node, format!("pads {p:?} must be smaller than the window {k:?}")));
        }
        let oh = pool_out_dim(&node, "height", h, k[0], s[0], p[0], p[2], pool.ceil_mode)?;
        let ow = pool_out_dim(&node, "width", w, k[1], s[1], p[1], p[3], pool.ceil_mode)?;
        let op = if avg { Op::AvgPool(pool) } else { Op::MaxPool(pool) };
        self.push(local, op, vec![x], vec![1, c, oh, ow])
    }

    /// Max pooling with any window, strides, pads and rounding.
    ///
    /// # Shapes
    /// `[1, C, H, W]` → `[1, C, H', W']`, `H' = (H + pads − k) / stride + 1`, rounded up in
    /// ceil mode.
    ///
    /// # Errors
    /// Wrong rank, a pad not smaller than the window, or an output smaller than one pixel.
    pub fn max_pool2d(&mut self, local: &str, x: TensorId, pool: Pool2d) -> Result<TensorId> {
        self.pool(local, x, pool, false)
    }

    /// Average pooling; the divisor counts padded pixels when `count_include_pad`.
    ///
    /// # Shapes
    /// As [`max_pool2d`](Self::max_pool2d).
    ///
    /// # Errors
    /// As [`max_pool2d`](Self::max_pool2d).
    pub fn avg_pool2d(&mut self, local: &str, x: TensorId, pool: Pool2d) -> Result<TensorId> {
        self.pool(local, x, pool, true)
    }

    /// Logistic sigmoid. Any shape → same.
    ///
    /// # Errors
    /// An unknown input or a duplicate name.
    pub fn sigmoid(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        self.unary(local, x, Op::Sigmoid)
    }

    /// Hard sigmoid `max(0, min(1, alpha·x + beta))`. Any shape → same.
    ///
    /// # Errors
    /// Non-finite parameters.
    pub fn hard_sigmoid(&mut self, local: &str, x: TensorId, alpha: f32, beta: f32) -> Result<TensorId> {
        if !(alpha.is_finite() && beta.is_finite()) {
            return Err(Error::shape(self.path(local), format!("hard sigmoid needs finite alpha and beta, got {alpha}, {beta}")));
        }
        self.unary(local, x, Op::HardSigmoid { alpha, beta })
    }

    /// Hard swish `x · max(0, min(1, x/6 + 1/2))`. Any shape → same.
    ///
    /// # Errors
    /// An unknown input or a duplicate name.
    pub fn hard_swish(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        self.unary(local, x, Op::HardSwish)
    }

    /// Element-wise product with NumPy broadcasting.
    ///
    /// # Shapes
    /// `[1, C, H, W]` × `[1, C, 1, 1]` → `[1, C, H, W]`, and so on.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn mul(&mut self, local: &str, a: TensorId, b: TensorId) -> Result<TensorId> {
        let node = self.path(local);
        let sa = self.check_id(&node, a)?.to_vec();
        let sb = self.check_id(&node, b)?.to_vec();
        let shape = broadcast(&node, &sa, &sb)?;
        self.push(local, Op::Mul, vec![a, b], shape)
    }

    /// Concatenation along `axis`.
    ///
    /// # Shapes
    /// Inputs equal but along `axis`; the output's `axis` is their sum.
    ///
    /// # Errors
    /// No input, an axis out of range, or shapes that differ elsewhere.
    pub fn concat(&mut self, local: &str, xs: &[TensorId], axis: usize) -> Result<TensorId> {
        let node = self.path(local);
        let Some(&first) = xs.first() else {
            return Err(Error::shape(&node, "concat needs at least one input"));
        };
        let mut shape = self.check_id(&node, first)?.to_vec();
        if axis == 0 || axis >= shape.len() {
            return Err(Error::shape(&node, format!("concat axis {axis} of a rank-{} tensor (batch axis 0 excluded)", shape.len())));
        }
        for &x in &xs[1..] {
            let s = self.check_id(&node, x)?;
            let fits = s.len() == shape.len() && s.iter().zip(&shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !fits {
                return Err(Error::shape(&node, format!("cannot concatenate {s:?} to {shape:?} along axis {axis}")));
            }
            shape[axis] += s[axis];
        }
        self.push(local, Op::Concat { axis }, xs.to_vec(), shape)
    }

    /// Mean over `axes` (ascending, the batch axis excluded).
    ///
    /// # Shapes
    /// `[1, C, H, W]` over `[2, 3]` → `[1, C, 1, 1]` with `keepdims`, else `[1, C]`.
    ///
    /// # Errors
    /// No axis, an axis out of range or repeated.
    pub fn reduce_mean(&mut self, local: &str, x: TensorId, axes: &[usize], keepdims: bool) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?.to_vec();
        let ok = !axes.is_empty() && axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&a| a >= 1 && a < s.len());
        if !ok {
            return Err(Error::shape(&node, format!("cannot reduce axes {axes:?} of {s:?}")));
        }
        let shape: Vec<usize> = s.iter().enumerate().filter_map(|(i, &d)| if axes.contains(&i) { keepdims.then_some(1) } else { Some(d) }).collect();
        self.push(local, Op::ReduceMean { axes: axes.to_vec(), keepdims }, vec![x], shape)
    }

    /// The same values in `shape` (batch first, 1).
    ///
    /// # Errors
    /// A different number of elements, or a batch other than 1.
    pub fn reshape(&mut self, local: &str, x: TensorId, shape: &[usize]) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?;
        let n: usize = s.iter().product();
        if shape.first() != Some(&1) || shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(n) {
            return Err(Error::shape(&node, format!("cannot reshape {s:?} to {shape:?}")));
        }
        self.push(local, Op::Reshape, vec![x], shape.to_vec())
    }

    /// Axes permuted: output axis `i` is input axis `perm[i]`; the batch axis stays first.
    ///
    /// # Errors
    /// `perm` not a permutation of the input's axes, or one that moves the batch axis.
    pub fn transpose(&mut self, local: &str, x: TensorId, perm: &[usize]) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?.to_vec();
        let mut seen = vec![false; s.len()];
        let ok = perm.len() == s.len() && perm.first() == Some(&0) && perm.iter().all(|&p| p < s.len() && !std::mem::replace(&mut seen[p], true));
        if !ok {
            return Err(Error::shape(&node, format!("{perm:?} is not a permutation of the axes of {s:?} that keeps the batch first")));
        }
        let shape = perm.iter().map(|&p| s[p]).collect();
        self.push(local, Op::Transpose { perm: perm.to_vec() }, vec![x], shape)
    }

    /// `start..end` along `axis`.
    ///
    /// # Errors
    /// An empty or out-of-range slice, or the batch axis.
    pub fn slice(&mut self, local: &str, x: TensorId, axis: usize, start: usize, end: usize) -> Result<TensorId> {
        let node = self.path(local);
        let mut s = self.check_id(&node, x)?.to_vec();
        if axis == 0 || axis >= s.len() || start >= end || end > s[axis] {
            return Err(Error::shape(&node, format!("cannot slice {start}..{end} along axis {axis} of {s:?}")));
        }
        s[axis] = end - start;
        self.push(local, Op::Slice { axis, start, end }, vec![x], s)
    }

    /// Gives the bias-less [`Op::Linear`] node `t` a bias (for imports where the bias is a
    /// separate Add after a MatMul).
    pub(crate) fn set_linear_bias(&mut self, t: TensorId) -> bool {
        match self.nodes.get_mut(t.0).map(|n| &mut n.op) {
            Some(Op::Linear { bias, .. }) if !*bias => {
                *bias = true;
                true
            }
            _ => false,
        }
    }

    /// Global average pooling.
    ///
    /// # Shapes
    /// `[1, C, H, W]` → `[1, C, 1, 1]`.
    ///
    /// # Errors
    /// Wrong rank.
    pub fn global_avg_pool(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        let node = self.path(local);
        let [_, c, _, _] = self.nchw(&node, x)?;
        self.push(local, Op::GlobalAvgPool, vec![x], vec![1, c, 1, 1])
    }

    /// Flattens everything after the batch axis.
    ///
    /// # Shapes
    /// `[1, a, b, …]` → `[1, a·b·…]`.
    ///
    /// # Errors
    /// An unknown input.
    pub fn flatten(&mut self, local: &str, x: TensorId) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?;
        let n: usize = s.iter().skip(1).product();
        self.push(local, Op::Flatten, vec![x], vec![1, n])
    }

    /// Fully connected layer.
    ///
    /// # Shapes
    /// `[1, in]` → `[1, out_features]`.
    ///
    /// # Errors
    /// Input not of rank 2, or zero output features.
    pub fn linear(&mut self, local: &str, x: TensorId, out_features: usize, bias: bool) -> Result<TensorId> {
        let node = self.path(local);
        let s = self.check_id(&node, x)?;
        let [_, in_features] = *s else {
            return Err(Error::shape(&node, format!("linear expects [1, features] (flatten first), got {s:?}")));
        };
        if out_features == 0 {
            return Err(Error::shape(&node, "zero output features"));
        }
        self.push(local, Op::Linear { in_features, out_features, bias }, vec![x], vec![1, out_features])
    }

    /// Closes the graph with `output` as its result.
    ///
    /// # Errors
    /// No input node, or an unknown output.
    pub fn finish(self, output: TensorId) -> Result<Graph> {
        if self.nodes.first().map(|n| &n.op) != Some(&Op::Input) {
            return Err(Error::shape("input", "the graph has no input node"));
        }
        if output.0 >= self.nodes.len() {
            return Err(Error::shape("output", "unknown output tensor"));
        }
        Ok(Graph { nodes: self.nodes, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_tensorflow_same_upper() {
        // 224 → 112 with a 3×3 stride-2 window: 0 before, 1 after; 5×5: 1 before, 2 after.
        assert_eq!(same_pads(224, 3, 2, 1), (0, 1));
        assert_eq!(same_pads(112, 5, 2, 1), (1, 2));
        assert_eq!(same_pads(14, 5, 1, 1), (2, 2));
        assert_eq!(same_pads(7, 3, 1, 1), (1, 1));
    }

    #[test]
    fn shape_errors_name_the_node() {
        let mut b = GraphBuilder::new();
        let x = b.input(3, 8, 8).unwrap();
        b.push_scope("layer1");
        let err = b.conv2d("conv1", x, ConvSpec::new(4, 3).groups(2)).unwrap_err().to_string();
        assert!(err.contains("layer1.conv1") && err.contains("groups"), "{err}");
        let y = b.conv2d("conv2", x, ConvSpec::new(4, 1)).unwrap();
        let err = b.add("add", x, y).unwrap_err().to_string();
        assert!(err.contains("layer1.add") && err.contains("[1, 3, 8, 8]"), "{err}");
        let err = b.conv2d("big", x, ConvSpec::new(4, 11).padding(Padding::Symmetric(0))).unwrap_err().to_string();
        assert!(err.contains("layer1.big") && err.contains("too small"), "{err}");
        let err = b.conv2d("conv2", x, ConvSpec::new(4, 1)).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let err = b.linear("fc", x, 3, true).unwrap_err().to_string();
        assert!(err.contains("layer1.fc") && err.contains("flatten"), "{err}");
    }

    #[test]
    fn conv_output_shapes() {
        let mut b = GraphBuilder::new();
        let x = b.input(3, 224, 224).unwrap();
        let y = b.conv2d("c", x, ConvSpec::new(64, 7).stride(2)).unwrap();
        assert_eq!(b.shape(y), &[1, 64, 112, 112]);
        let z = b.max_pool("p", y, 3, 2, 1).unwrap();
        assert_eq!(b.shape(z), &[1, 64, 56, 56]);
        let s = b.conv2d("s", x, ConvSpec::new(32, 3).stride(2).padding(Padding::Same)).unwrap();
        assert_eq!(b.shape(s), &[1, 32, 112, 112]);
        let d = b.conv2d("dw", s, ConvSpec::new(32, 3).groups(32)).unwrap();
        assert_eq!(b.shape(d), &[1, 32, 112, 112]);
    }
}
