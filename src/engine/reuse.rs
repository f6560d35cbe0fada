//! edgenet versions of the few tract ops an int8 plan still has after optimisation, which
//! allocate their output on every run: these write it through the session's output pool
//! ([`super::pool`]) instead, so that a [`super::Session`] running an int8 plan allocates
//! nothing once warm. Each computes exactly what tract's computes (same operations in the same
//! order, so bit-identical); [`replace_allocating_ops`] puts them in place of tract's in the
//! optimised model:
//! - `OptAddUnicast` on f32 (the residual additions MobileNetV2 and EfficientNet keep in f32,
//!   and the classifier's bias) → [`EdgeAdd`];
//! - `Reduce<Sum>` over H and W followed by `OptMulByScalar` (tract's global average pool,
//!   whose division by H·W its optimiser turned into a multiplication by the reciprocal) →
//!   [`EdgeGlobalAvgPool`];
//! - `IntoShape` (a flatten; tract's re-wraps its input in a new `Arc`, and would copy a
//!   buffer that the pool still holds) → [`EdgeReshape`], a copy of a few kilobytes;
//! - `OptMaxPool` on int8 (ResNet's stem) → [`EdgeMaxPool`];
//! - `OptMulByScalar` on f32 with a tensor operand (a squeeze-and-excitation block's scale,
//!   MobileNetV3's) → [`EdgeMulByScalar`].
//!
//! The max pool, the global average pool and the multiplication split their channels over the
//! int8 kernels' thread pool (tract's own threading is not in the runtime build).
//!
//! edgenet's int8 ops (in [`super::ops`]) write through the pool too; this module uses
//! [`super::rewrite`]'s graph-patching helper, `rewrite` nothing of this one.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{OptBinByScalar, OptBinUnicast, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::OptMaxPool;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer};

use std::sync::Arc;

use super::ops::Threads;
use super::pool::{f32_values, f32_values_mut, i8_values, i8_values_mut, is, reuse_output_eval, PooledOps, WriteOutput};
use super::rewrite::{replace_nodes, Replacement};
use crate::kernels::{par_chunks_mut, plan, Parallel, ThreadPool};

/// This module's ops, which all write their output through the pool (see [`super::pool`]).
pub(crate) const POOLED_OPS: PooledOps = &[is::<EdgeAdd>, is::<EdgeGlobalAvgPool>, is::<EdgeReshape>, is::<EdgeMaxPool>, is::<EdgeMulByScalar>];

/// Whether `b` lines up with `a` as tract's `OptBinUnicast` takes it: same rank, and past
/// `b`'s leading unit axes the same dimensions (so `b` repeats over blocks of `b.len()`).
fn unicast(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).skip_while(|(_, &b)| b == 1).all(|(a, b)| a == b)
}

/// `a + b` in f32, `b` equal in shape to `a` or repeating over its leading axes (see
/// [`unicast`]). IEEE addition is exact-rounded and commutative, so this is bit-identical to
/// tract's vectorised `OptAddUnicast`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeAdd;

impl Op for EdgeAdd {
    fn name(&self) -> StaticName {
        "EdgeAdd".into()
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeAdd {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 2, "EdgeAdd takes two inputs");
        ensure!(unicast(inputs[0].shape(), inputs[1].shape()), "EdgeAdd: shapes {:?} and {:?}", inputs[0].shape(), inputs[1].shape());
        Ok((f32::datum_type(), inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let (a, b) = (f32_values(&inputs[0])?, f32_values(&inputs[1])?);
        let y = f32_values_mut(y)?;
        ensure!(y.len() == a.len() && !b.is_empty() && a.len() % b.len() == 0);
        for (y, a) in y.chunks_exact_mut(b.len()).zip(a.chunks_exact(b.len())) {
            for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                *y = a + b;
            }
        }
        Ok(())
    }
}

impl EvalOp for EdgeAdd {
    reuse_output_eval!();
}

impl TypedOp for EdgeAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        let (a, b) = (inputs[0].shape.as_concrete(), inputs[1].shape.as_concrete());
        ensure!(a.zip(b).is_some_and(|(a, b)| unicast(a, b)), "EdgeAdd: shapes {:?} and {:?}", inputs[0].shape, inputs[1].shape);
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Whether `b` has `a`'s shape up to some axis and 1 from there on: one value per block of `a`
/// (tract's `OptBinByScalar` shapes: `[1, C, H, W]` and `[1, C, 1, 1]`).
fn by_scalar(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).skip_while(|(a, b)| a == b).all(|(_, &b)| b == 1)
}

/// `a × b` in f32 where `b` holds one value per block of `a` (see [`by_scalar`]): the scale of a
/// squeeze-and-excitation block, `[1, C, H, W] × [1, C, 1, 1]`. It replaces tract's
/// `OptMulByScalar`, which the runtime build runs on one thread: the blocks split over the int8
/// kernels' pool. IEEE multiplication is exactly rounded and commutative, so the bits are
/// tract's whatever the split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeMulByScalar {
    threads: Threads,
}

impl Op for EdgeMulByScalar {
    fn name(&self) -> StaticName {
        "EdgeMulByScalar".into()
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeMulByScalar {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 2, "EdgeMulByScalar takes two inputs");
        ensure!(by_scalar(inputs[0].shape(), inputs[1].shape()), "EdgeMulByScalar: shapes {:?} and {:?}", inputs[0].shape(), inputs[1].shape());
        Ok((f32::datum_type(), inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let (a, b) = (f32_values(&inputs[0])?, f32_values(&inputs[1])?);
        let y = f32_values_mut(y)?;
        ensure!(y.len() == a.len() && !b.is_empty() && a.len() % b.len() == 0);
        if a.is_empty() {
            return Ok(());
        }
        let block = a.len() / b.len();
        // Blocks `first..` into `y`, whole blocks of `block` values.
        let blocks = |first: usize, y: &mut [f32]| {
            for ((y, a), &s) in y.chunks_exact_mut(block).zip(a[first * block..].chunks_exact(block)).zip(&b[first..]) {
                y.iter_mut().zip(a).for_each(|(y, a)| *y = a * s);
            }
        };
        let (per, tasks) = plan::channel_split(b.len(), block, self.threads.0.threads());
        if tasks <= 1 {
            blocks(0, y);
        } else {
            par_chunks_mut(y, per * block, &*self.threads.0, &|i, ys| blocks(i * per, ys));
        }
        Ok(())
    }
}

impl EvalOp for EdgeMulByScalar {
    reuse_output_eval!();
}

impl TypedOp for EdgeMulByScalar {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        let (a, b) = (inputs[0].shape.as_concrete(), inputs[1].shape.as_concrete());
        ensure!(a.zip(b).is_some_and(|(a, b)| by_scalar(a, b)), "EdgeMulByScalar: shapes {:?} and {:?}", inputs[0].shape, inputs[1].shape);
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Global average pooling of an f32 `[N, C, H, W]` tensor into `[N, C, 1, 1]`, computed as
/// tract computes its `GlobalAveragePool` once optimised: each channel summed by ndarray's
/// `sum` (what tract's `Reduce<Sum>` over two axes runs: an eight-way unrolled fold), then
/// multiplied by `scale`, the constant tract's optimiser made of `1 / (H·W)`. Channels split
/// over the int8 kernels' pool; each channel's sum is the same whatever the split.
#[derive(Debug, Clone)]
pub(crate) struct EdgeGlobalAvgPool {
    scale: f32,
    out_shape: TVec<usize>,
    threads: Threads,
}

impl PartialEq for EdgeGlobalAvgPool {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits() && self.out_shape == other.out_shape
    }
}
impl Eq for EdgeGlobalAvgPool {}

impl Op for EdgeGlobalAvgPool {
    fn name(&self) -> StaticName {
        "EdgeGlobalAvgPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("sum × {}", self.scale)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeGlobalAvgPool {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeGlobalAvgPool takes one input");
        let s = inputs[0].shape();
        ensure!(s.len() == 4 && s[..2] == self.out_shape[..2], "EdgeGlobalAvgPool: input {s:?} for output {:?}", self.out_shape);
        Ok((f32::datum_type(), &self.out_shape))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let x = f32_values(&inputs[0])?;
        let y = f32_values_mut(y)?;
        ensure!(!y.is_empty() && x.len() % y.len() == 0);
        let hw = x.len() / y.len();
        if hw == 0 {
            y.fill(0.0);
            return Ok(());
        }
        // Channels `first..` into `y`.
        let sums = |first: usize, y: &mut [f32]| {
            for (y, x) in y.iter_mut().zip(x[first * hw..].chunks_exact(hw)) {
                *y = tract_ndarray::ArrayView1::from(x).sum() * self.scale;
            }
        };
        let (per, tasks) = plan::channel_split(y.len(), hw, self.threads.0.threads());
        if tasks <= 1 {
            sums(0, y);
        } else {
            par_chunks_mut(y, per, &*self.threads.0, &|i, ys| sums(i * per, ys));
        }
        Ok(())
    }
}

impl EvalOp for EdgeGlobalAvgPool {
    reuse_output_eval!();
}

impl TypedOp for EdgeGlobalAvgPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    as_op!();
}

/// A reshape that copies its input (a flattened feature vector: a few kilobytes) into its own
/// reused buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeReshape {
    shape: TVec<usize>,
}

impl Op for EdgeReshape {
    fn name(&self) -> StaticName {
        "EdgeReshape".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("to {:?} (a copy)", self.shape)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeReshape {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeReshape takes one input");
        ensure!(inputs[0].len() == self.shape.iter().product::<usize>(), "EdgeReshape: {:?} into {:?}", inputs[0].shape(), self.shape);
        ensure!(inputs[0].datum_type().is_copy() && inputs[0].is_plain_ram(), "EdgeReshape: {:?}", inputs[0].datum_type());
        Ok((inputs[0].datum_type(), &self.shape))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let x = &inputs[0];
        ensure!(y.is_plain_ram() && x.is_plain_ram() && y.datum_type() == x.datum_type() && y.len() == x.len());
        // `len()` elements, not `as_bytes()`: a pooled tensor's storage may be longer (see
        // `pool::OutputPool`).
        let n = x.len() * x.datum_type().size_of();
        y.as_bytes_mut()[..n].copy_from_slice(&x.as_bytes()[..n]);
        Ok(())
    }
}

impl EvalOp for EdgeReshape {
    reuse_output_eval!();
}

impl TypedOp for EdgeReshape {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].is_plain() && inputs[0].datum_type.is_copy());
        ensure!(inputs[0].shape.as_concrete().is_some_and(|s| s.iter().product::<usize>() == self.shape.iter().product::<usize>()));
        Ok(tvec!(inputs[0].datum_type.fact(&*self.shape)))
    }

    as_op!();
}

/// 2-D max pooling of an int8 `[1, C, H, W]` tensor. Padding takes no part in the maximum, as
/// in tract's `OptMaxPool` (a window with no input position gives `i8::MIN`, as tract's does);
/// a maximum is exact, so the output is identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeMaxPool {
    /// `[C, H, W]` of the input.
    chw: [usize; 3],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    /// Padding before, on H and W.
    pads: [usize; 2],
    out_shape: TVec<usize>,
    dt: DatumType,
    /// Groups of channels run as tasks on the int8 kernels' pool.
    threads: Threads,
}

impl Op for EdgeMaxPool {
    fn name(&self) -> StaticName {
        "EdgeMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} stride {:?} pad {:?} int8 → {:?}", self.kernel, self.strides, self.pads, self.out_shape)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeMaxPool {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeMaxPool takes one input");
        let [c, h, w] = self.chw;
        ensure!(inputs[0].shape() == [1, c, h, w], "EdgeMaxPool: input {:?}, expected {:?}", inputs[0].shape(), [1, c, h, w]);
        Ok((self.dt, &self.out_shape))
    }

    /// Separable: for each output row, the maximum over the window's input rows, column by
    /// column (a vectorisable pass), into a scratch row padded with `i8::MIN` on both sides;
    /// then the maximum over the window's columns of that row, one pass per kernel column. A maximum is exact and
    /// `i8::MIN` is neutral for it, so this is what tract's window-by-window maximum gives.
    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let x = i8_values(&inputs[0])?;
        let y = i8_values_mut(y)?;
        let [c, h, w] = self.chw;
        let (oh, ow) = (self.out_shape[2], self.out_shape[3]);
        ensure!(x.len() == c * h * w && y.len() == c * oh * ow);
        if y.is_empty() {
            return Ok(());
        }
        ensure!(h * w > 0, "EdgeMaxPool: an empty input");
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let [dh, dw] = self.dilations;
        let [ph, pw] = self.pads;
        // Groups of channels as tasks, each with its thread's scratch row: channel `first` on
        // writes `y`, a chunk of whole output planes.
        let (per, tasks) = plan::channel_split(c, oh * ow * kh * kw, self.threads.0.threads());
        let planes = |first: usize, y: &mut [i8]| {
            // Scratch row: `pw` padding, the `w` columns, padding up to the last window's end and
            // one stride more (so that the stride-2 pass below reads whole pairs).
            let len = (w + pw).max(ow * sw + kw.saturating_sub(1) * dw + 1);
            MAX_POOL_ROW.with(|row| {
                let mut row = row.borrow_mut();
                row.clear();
                row.resize(len, i8::MIN);
                for (x, y) in x[first * h * w..].chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
                    for (oy, out) in y.chunks_exact_mut(ow).enumerate() {
                        let cols = &mut row[pw..pw + w];
                        cols.fill(i8::MIN);
                        for ky in 0..kh {
                            let Some(iy) = (oy * sh + ky * dh).checked_sub(ph).filter(|&iy| iy < h) else { continue };
                            for (m, &v) in cols.iter_mut().zip(&x[iy * w..][..w]) {
                                *m = (*m).max(v);
                            }
                        }
                        // One pass per kernel column, each vectorisable (strides 1 and 2).
                        out.fill(i8::MIN);
                        for kx in 0..kw {
                            let r = &row[kx * dw..];
                            match sw {
                                1 => out.iter_mut().zip(r).for_each(|(o, &v)| *o = (*o).max(v)),
                                2 => out.iter_mut().zip(r.chunks_exact(2)).for_each(|(o, p)| *o = (*o).max(p[0])),
                                _ => out.iter_mut().enumerate().for_each(|(ox, o)| *o = (*o).max(r[ox * sw])),
                            }
                        }
                    }
                }
            });
        };
        if tasks <= 1 {
            planes(0, y);
        } else {
            par_chunks_mut(y, per * oh * ow, &*self.threads.0, &|i, ys| planes(i * per, ys));
        }
        Ok(())
    }
}

thread_local! {
    /// [`EdgeMaxPool`]'s scratch row: grown to the widest row once, reused after.
    static MAX_POOL_ROW: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl EvalOp for EdgeMaxPool {
    reuse_output_eval!();
}

impl TypedOp for EdgeMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == self.dt);
        Ok(tvec!(self.dt.fact(&*self.out_shape)))
    }

    as_op!();
}

impl EdgeMaxPool {
    /// The edgenet version of tract's `OptMaxPool` on `input` (`[1, C, H, W]`, int8), if it
    /// has one: NCHW, two spatial axes, no index output.
    fn of(op: &OptMaxPool, input: &TypedFact, output: &TypedFact, threads: &Arc<ThreadPool>) -> Option<EdgeMaxPool> {
        let spec = &op.pool_spec;
        if op.with_index_outputs.is_some() || spec.data_format != DataFormat::NCHW || spec.kernel_shape.len() != 2 {
            return None;
        }
        if input.datum_type.unquantized() != i8::datum_type() || output.datum_type != input.datum_type {
            return None;
        }
        let &[1, c, h, w] = input.shape.as_concrete()? else { return None };
        let padding = spec.computed_padding(&[h, w]);
        let (strides, dilations) = (spec.strides(), spec.dilations());
        let (&[kh, kw], &[sh, sw], &[dh, dw], [py, px]) = (&spec.kernel_shape[..], &strides[..], &dilations[..], &padding[..]) else {
            return None;
        };
        let out_shape: TVec<usize> = tvec![1, c, py.convoluted, px.convoluted];
        if output.shape.as_concrete()? != &*out_shape || spec.input_channels != c || spec.output_channels != c {
            return None;
        }
        if [kh, kw, sh, sw, dh, dw].contains(&0) {
            return None;
        }
        Some(EdgeMaxPool {
            chw: [c, h, w],
            kernel: [kh, kw],
            strides: [sh, sw],
            dilations: [dh, dw],
            pads: [py.pad_before, px.pad_before],
            out_shape,
            dt: input.datum_type,
            threads: Threads(Arc::clone(threads)),
        })
    }
}

/// The value of a constant scalar (one element) f32 input.
fn const_scalar(model: &TypedModel, outlet: OutletId) -> Option<f32> {
    let node = model.node(outlet.node);
    let k = match node.op_as::<Const>() {
        Some(c) => c.val().clone(),
        None => model.outlet_fact(outlet).ok()?.konst.clone()?,
    };
    if k.len() != 1 || k.datum_type() != f32::datum_type() || !k.is_plain_ram() {
        return None;
    }
    k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.first().copied()
}

/// `Reduce<Sum>` over axes 2 and 3 of an f32 `[N, C, H, W]` tensor (into `[N, C, 1, 1]`).
fn sum_hw(model: &TypedModel, node: &TypedNode) -> TractResult<Option<OutletId>> {
    let Some(reduce) = node.op_as::<Reduce>() else { return Ok(None) };
    let x = model.outlet_fact(node.inputs[0])?;
    let out = &node.outputs[0].fact;
    let f32s = x.datum_type == f32::datum_type() && out.datum_type == f32::datum_type() && x.is_plain();
    let shapes = x.rank() == 4 && x.shape.as_concrete().is_some() && out.shape.as_concrete().is_some_and(|s| s.len() == 4 && s[2..] == [1, 1]);
    Ok((reduce.reducer == Reducer::Sum && reduce.axes[..] == [2, 3] && f32s && shapes).then_some(node.inputs[0]))
}

/// tract's global average pool, once optimised: [`sum_hw`] then, if H·W > 1, `OptMulByScalar`
/// by a constant (the reciprocal of H·W). At the `Mul` (or at a `Reduce` with no such `Mul`
/// after it): the pooled tensor and the factor.
fn global_avg_pool(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(OutletId, f32)>> {
    if let Some(mul) = node.op_as::<OptBinByScalar>() {
        let sum = model.node(node.inputs[0].node);
        if mul.binop.name() != "Mul" || node.outputs[0].fact.datum_type != f32::datum_type() || sum.outputs[0].successors.len() != 1 {
            return Ok(None);
        }
        let (Some(x), Some(scale)) = (sum_hw(model, sum)?, const_scalar(model, node.inputs[1])) else { return Ok(None) };
        return Ok(Some((x, scale)));
    }
    let Some(x) = sum_hw(model, node)? else { return Ok(None) };
    // Left for the `Mul` after it, if there is one.
    let succ = &node.outputs[0].successors;
    if succ.len() == 1 && succ[0].slot == 0 && global_avg_pool(model, model.node(succ[0].node))?.is_some() {
        return Ok(None);
    }
    // A sum alone (H·W = 1, where tract drops the division): × 1 is exact.
    Ok(Some((x, 1.0)))
}

/// Puts edgenet's buffer-reusing ops in place of the tract ops of an *optimised* int8 plan that
/// allocate their output on every run (see the module's documentation). Each replacement
/// computes exactly what the op it replaces computed. Returns how many nodes were replaced;
/// the dead nodes left behind are removed.
pub(crate) fn replace_allocating_ops(model: &mut TypedModel, threads: &Arc<ThreadPool>) -> TractResult<usize> {
    let n = replace_nodes(model, |model, node| {
        if node.outputs.len() != 1 {
            return Ok(None);
        }
        let out = &node.outputs[0].fact;
        let fact = |i: usize| model.outlet_fact(node.inputs[i]);
        // An f32 addition tract made unicast, or left as a plain binary op (a small
        // classifier's bias: `[1, 10] + [1, 10]`).
        let add = node.op_as::<OptBinUnicast>().map(|o| o.binop.name()).or_else(|| node.op_as::<TypedBinOp>().map(|o| o.0.name()));
        if add.is_some_and(|name| name == "Add") && node.inputs.len() == 2 {
            let (a, b) = (fact(0)?, fact(1)?);
            let f32s = [a, b, out].iter().all(|f| f.datum_type == f32::datum_type() && f.is_plain());
            let shapes = a.shape.as_concrete().zip(b.shape.as_concrete()).is_some_and(|(sa, sb)| unicast(sa, sb));
            if f32s && shapes && a.shape == out.shape {
                return Ok(Some(Replacement { node: node.id, inputs: node.inputs.iter().copied().collect(), op: Box::new(EdgeAdd), suffix: "edgenet" }));
            }
        }
        if let Some((x, scale)) = global_avg_pool(model, node)? {
            let Some(out_shape) = out.shape.as_concrete() else { return Ok(None) };
            let op = EdgeGlobalAvgPool { scale, out_shape: out_shape.into(), threads: Threads(Arc::clone(threads)) };
            return Ok(Some(Replacement { node: node.id, inputs: tvec![x], op: Box::new(op), suffix: "edgenet_gap" }));
        }
        // A squeeze-and-excitation scale: f32 `[1, C, H, W] × [1, C, 1, 1]`.
        if let Some(by) = node.op_as::<OptBinByScalar>() {
            let (a, b) = (fact(0)?, fact(1)?);
            let f32s = [a, b, out].iter().all(|f| f.datum_type == f32::datum_type() && f.is_plain());
            let shapes = a.shape.as_concrete().zip(b.shape.as_concrete()).is_some_and(|(sa, sb)| by_scalar(sa, sb));
            if by.binop.name() == "Mul" && node.inputs.len() == 2 && f32s && shapes && a.shape == out.shape {
                let op = EdgeMulByScalar { threads: Threads(Arc::clone(threads)) };
                return Ok(Some(Replacement { node: node.id, inputs: node.inputs.iter().copied().collect(), op: Box::new(op), suffix: "edgenet" }));
            }
        }
        if node.op().name() == "IntoShape" && node.inputs.len() == 1 {
            let x = fact(0)?;
            if let (true, Some(shape)) = (x.is_plain() && x.datum_type.is_copy() && x.shape.as_concrete().is_some(), out.shape.as_concrete()) {
                let op = EdgeReshape { shape: shape.into() };
                return Ok(Some(Replacement { node: node.id, inputs: tvec![node.inputs[0]], op: Box::new(op), suffix: "edgenet" }));
            }
        }
        if let Some(pool) = node.op_as::<OptMaxPool>() {
            if let Some(op) = EdgeMaxPool::of(pool, fact(0)?, out, threads) {
                return Ok(Some(Replacement { node: node.id, inputs: tvec![node.inputs[0]], op: Box::new(op), suffix: "edgenet" }));
            }
        }
        Ok(None)
    })?;
    if n > 0 {
        model.compact()?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    //! Each replacement against the tract op it replaces, bit for bit, on the shapes the zoo's
    //! int8 models give them and on awkward ones.
    use super::*;
    use crate::engine::pool::{OutputPool, SlotPlan};
    use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};

    /// The slot plan of `plan`, whose pooled ops are this module's alone.
    fn slot_plan(plan: &TypedSimplePlan) -> SlotPlan {
        SlotPlan::new(plan.model(), plan.order_without_consts(), |op| POOLED_OPS.iter().any(|is| is(op)))
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 8.0 - 4.0
            })
            .collect()
    }

    fn f32_tensor(shape: &[usize], seed: u32) -> TValue {
        Tensor::from_shape(shape, &values(shape.iter().product(), seed)).unwrap().into_tvalue()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        f32_values(t).unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// Optimises `model` (one input of `shape`) and returns tract's and edgenet's plans'
    /// outputs, and the ops of edgenet's plan.
    fn both(model: TypedModel, input: TValue) -> (TValue, TValue, Vec<String>) {
        both_on(model, input, 3)
    }

    /// [`both`] with edgenet's ops on `threads` threads (the max pool splits its channels when
    /// the layer is big enough).
    fn both_on(model: TypedModel, input: TValue, threads: usize) -> (TValue, TValue, Vec<String>) {
        let model = model.into_optimized().unwrap();
        let theirs = SimplePlan::new(model.clone()).unwrap().run(tvec![input.clone()]).unwrap().remove(0);
        let mut ours = model;
        replace_allocating_ops(&mut ours, &Arc::new(ThreadPool::new(threads))).unwrap();
        let ops = ours.nodes().iter().map(|n| n.op().name().to_string()).collect();
        let plan = SimplePlan::new(ours).unwrap();
        let mut state = pooled(&plan);
        let first = state.run(tvec![input.clone()]).unwrap().remove(0);
        // Run again through the same state: the reused buffer gives the same output.
        let again = state.run(tvec![input]).unwrap().remove(0);
        assert_eq!(first, again);
        (theirs, again, ops)
    }

    #[test]
    fn global_avg_pool_and_flatten_are_bit_identical_to_tracts() {
        crate::engine::avoid_tract_amx_int8();
        for (c, h, w) in [(1280, 7, 7), (16, 1, 1), (8, 3, 5), (5, 4, 4), (3, 14, 14), (2, 2, 3), (4, 9, 1)] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
            let s = model.wire_node("sum", Reduce::new(tvec![2, 3], Reducer::Sum), &[x]).unwrap();
            let d = model.add_const("div", tensor4(&[[[[(h * w) as f32]]]])).unwrap();
            let y = model.wire_node("norm", tract_onnx::tract_core::ops::math::div(), &[s[0], d]).unwrap();
            let flat = model.wire_node("flat", AxisOp::Reshape(1, tvec![c.to_dim(), 1.to_dim(), 1.to_dim()], tvec![c.to_dim()]), &y).unwrap();
            model.select_output_outlets(&flat).unwrap();
            // Its channels split over 1 to 4 and 16 threads.
            for threads in [1, 2, 3, 4, 16] {
                let (theirs, ours, ops) = both_on(model.clone(), f32_tensor(&[1, c, h, w], (c * h * w) as u32), threads);
                assert!(ops.iter().any(|o| o == "EdgeGlobalAvgPool"), "{c}×{h}×{w}: {ops:?}");
                assert!(!ops.iter().any(|o| o.starts_with("Reduce") || o.starts_with("OptMul")), "{c}×{h}×{w}: {ops:?}");
                assert_eq!(theirs.shape(), ours.shape());
                assert_eq!(bits(&theirs), bits(&ours), "{c}×{h}×{w} on {threads} threads");
            }
        }
    }

    #[test]
    fn f32_add_is_bit_identical_to_tracts() {
        crate::engine::avoid_tract_amx_int8();
        for (a, b) in [(vec![1, 32, 28, 28], vec![1, 32, 28, 28]), (vec![1, 1000], vec![1, 1000]), (vec![1, 8, 64], vec![1, 1, 64])] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&a)).unwrap();
            let bias = model.add_const("b", f32_tensor(&b, 7).into_tensor()).unwrap();
            let y = model.wire_node("add", tract_onnx::tract_core::ops::math::add(), &[x, bias]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let (theirs, ours, ops) = both(model, f32_tensor(&a, 3));
            assert!(ops.iter().any(|o| o == "EdgeAdd"), "{a:?} + {b:?}: {ops:?}");
            assert_eq!(bits(&theirs), bits(&ours), "{a:?} + {b:?}");
        }
    }

    /// A squeeze-and-excitation scale, `[1, C, H, W] × [1, C, 1, 1]` with both operands computed
    /// (tract's `OptMulByScalar`), on 1 to 4 and 16 threads.
    #[test]
    fn f32_mul_by_scalar_is_bit_identical_to_tracts() {
        crate::engine::avoid_tract_amx_int8();
        for (c, h, w) in [(72, 28, 28), (960, 7, 7), (40, 14, 14)] {
            for threads in [1, 2, 3, 4, 16] {
                let mut model = TypedModel::default();
                let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
                let s = model.wire_node("sum", Reduce::new(tvec![2, 3], Reducer::Sum), &[x]).unwrap();
                let y = model.wire_node("scale", tract_onnx::tract_core::ops::math::mul(), &[x, s[0]]).unwrap();
                model.select_output_outlets(&y).unwrap();
                let (theirs, ours, ops) = both_on(model, f32_tensor(&[1, c, h, w], (c + h) as u32), threads);
                assert!(ops.iter().any(|o| o == "EdgeMulByScalar"), "{c}×{h}×{w}: {ops:?}");
                assert_eq!(bits(&theirs), bits(&ours), "{c}×{h}×{w} on {threads} threads");
            }
        }
    }

    #[test]
    fn int8_max_pool_is_identical_to_tracts() {
        crate::engine::avoid_tract_amx_int8();
        use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};
        let cases = [
            (64, 112, 112, [3, 3], [2, 2], [1, 1], PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            // Split over three threads into groups of 2, 2 and 1 channels.
            (5, 40, 41, [3, 3], [2, 2], [1, 1], PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            (3, 9, 7, [3, 3], [2, 2], [1, 1], PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            (2, 8, 8, [2, 2], [2, 2], [1, 1], PaddingSpec::Valid),
            (2, 10, 11, [3, 2], [1, 3], [2, 1], PaddingSpec::Explicit(tvec![2, 0], tvec![1, 3])),
            (1, 5, 5, [3, 3], [1, 1], [1, 1], PaddingSpec::SameUpper),
        ];
        for (c, h, w, kernel, strides, dilations, padding) in cases {
            let dt = DatumType::QI8(QParams::ZpScale { zero_point: -3, scale: 0.05 });
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: kernel.into_iter().collect(),
                padding: padding.clone(),
                dilations: Some(dilations.into_iter().collect()),
                strides: Some(strides.into_iter().collect()),
                input_channels: c,
                output_channels: c,
            };
            let mut model = TypedModel::default();
            let x = model.add_source("x", dt.fact([1, c, h, w])).unwrap();
            let y = model.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[x]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let xs: Vec<i8> = (0..c * h * w).map(|i| (i * 7919 % 251) as i8).collect();
            let mut input = Tensor::from_shape(&[1, c, h, w], &xs).unwrap();
            // SAFETY: QI8 has i8's representation.
            unsafe { input.set_datum_type(dt) };
            // One thread, 2 to 4, and more threads than channels.
            for threads in [1, 2, 3, 4, 16] {
                let (theirs, ours, ops) = both_on(model.clone(), input.clone().into_tvalue(), threads);
                assert!(ops.iter().any(|o| o == "EdgeMaxPool"), "{padding:?}: {ops:?}");
                assert_eq!(theirs.shape(), ours.shape(), "{padding:?}");
                assert_eq!(theirs.datum_type(), ours.datum_type());
                let at = format!("{c}×{h}×{w} {kernel:?} {strides:?} {dilations:?} {padding:?} on {threads} threads");
                assert_eq!(i8_values(&theirs).unwrap(), i8_values(&ours).unwrap(), "{at}");
            }
        }
    }

    fn pooled(plan: &Arc<TypedSimplePlan>) -> TypedSimpleState {
        let mut state = SimpleState::new(plan).unwrap();
        let slots = slot_plan(plan);
        state.turn_state.shared.insert(OutputPool::new(plan.model().nodes().len(), slots));
        state
    }

    fn held(state: &TypedSimpleState) -> (usize, usize) {
        state.turn_state.shared.get::<OutputPool>().unwrap().held()
    }

    #[test]
    fn a_shared_output_is_not_overwritten() {
        crate::engine::avoid_tract_amx_int8();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4])).unwrap();
        let y = model.wire_node("add", EdgeAdd, &[x, x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let plan = SimplePlan::new(model).unwrap();
        let mut state = pooled(&plan);
        let one = tensor2(&[[1f32, 2., 3., 4.]]).into_tvalue();
        let first = state.run(tvec![one]).unwrap().remove(0);
        // `first` is still held, so the second run must write elsewhere (a new buffer, or a
        // fresh tensor once the pool is full).
        let two = tensor2(&[[10f32, 20., 30., 40.]]).into_tvalue();
        let second = state.run(tvec![two]).unwrap().remove(0);
        assert_eq!(f32_values(&first).unwrap(), [2., 4., 6., 8.]);
        assert_eq!(f32_values(&second).unwrap(), [20., 40., 60., 80.]);
        let (p, q) = (first.as_arc_tensor().unwrap(), second.as_arc_tensor().unwrap());
        assert!(!Arc::ptr_eq(p, q));
        // Once dropped, the pool's buffer is written over in place.
        let p = Arc::as_ptr(p);
        drop((first, second));
        let third = state.run(tvec![tensor2(&[[0f32; 4]]).into_tvalue()]).unwrap().remove(0);
        assert_eq!(Arc::as_ptr(third.as_arc_tensor().unwrap()), p);
        assert!(held(&state).0 <= plan.model().nodes().len());
    }

    #[test]
    fn slots_hold_outputs_of_other_lengths_and_types_in_turn() {
        crate::engine::avoid_tract_amx_int8();
        // x [1,8,4,4] → a (EdgeAdd) → g (global average pool, [1,8,1,1]) → r (reshape, [1,8])
        // → y (EdgeAdd, the output). a lives over steps 0–1, g 1–2, r 2–3: r goes into a's
        // slot (512 bytes for its 32), g into a second one.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 8, 4, 4])).unwrap();
        let a = model.wire_node("a", EdgeAdd, &[x, x]).unwrap();
        let g = model
            .wire_node("g", EdgeGlobalAvgPool { scale: 1.0 / 16.0, out_shape: tvec![1, 8, 1, 1], threads: Threads(Arc::new(ThreadPool::new(1))) }, &a)
            .unwrap();
        let r = model.wire_node("r", EdgeReshape { shape: tvec![1, 8] }, &g).unwrap();
        let y = model.wire_node("y", EdgeAdd, &[r[0], r[0]]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let plan = SimplePlan::new(model).unwrap();
        let slots = slot_plan(&plan);
        let slot = |name: &str| slots.slot_of(plan.model().node_by_name(name).unwrap().id);
        assert_eq!((slot("a"), slot("g"), slot("r"), slot("y")), (Some(0), Some(1), Some(0), None));
        assert_eq!(slots.slot_bytes(), [512, 32]);
        let input = f32_tensor(&[1, 8, 4, 4], 3);
        // The same plan without a pool: every op writes a new tensor.
        let want = SimpleState::new(&plan).unwrap().run(tvec![input.clone()]).unwrap().remove(0);
        let mut state = pooled(&plan);
        for _ in 0..3 {
            let out = state.run(tvec![input.clone()]).unwrap().remove(0);
            assert_eq!(out.shape(), [1, 8]);
            assert_eq!(bits(&out), bits(&want));
        }
        assert_eq!(held(&state), (3, 512 + 32 + 32));
    }

    #[test]
    fn the_pool_lends_buffers_from_node_to_node_and_stops_growing() {
        crate::engine::avoid_tract_amx_int8();
        // x → a1 → a2 → a3 → a4, all [1, 256]: each buffer is free again two nodes later.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 256])).unwrap();
        let mut w = x;
        for i in 0..4 {
            w = model.wire_node(format!("a{i}"), EdgeAdd, &[w, w]).unwrap()[0];
        }
        model.select_output_outlets(&[w]).unwrap();
        let plan = SimplePlan::new(model).unwrap();
        let mut state = pooled(&plan);
        let input = f32_tensor(&[1, 256], 1);
        let want: Vec<f32> = f32_values(&input).unwrap().iter().map(|v| v * 16.0).collect();
        let first = state.run(tvec![input.clone()]).unwrap().remove(0);
        assert_eq!(f32_values(&first).unwrap(), want);
        drop(first);
        let after_one = held(&state);
        // a0, a1 and a2 are read by edgenet's ops alone: two slots take turns (a0 and a2 share
        // one); a3, the model's output, has an exact buffer of its own.
        assert_eq!(after_one, (3, 3 * 256 * 4), "two slots take turns, and one buffer for the output");
        for _ in 0..3 {
            let y = state.run(tvec![input.clone()]).unwrap().remove(0);
            assert_eq!(f32_values(&y).unwrap(), want);
        }
        assert_eq!(held(&state), after_one);
    }
}
