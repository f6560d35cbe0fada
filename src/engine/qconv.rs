//! edgenet's int8 ops inside tract: `TypedOp`s running [`crate::kernels`]' int8 kernels, and the
//! rewrites of tract's typed model (before its optimisation) that put them in place of
//! - quantized convolutions and matmuls (`QLinearConv`, `QLinearMatMul`), which tract lowers
//!   through eager im2col, per-row or per-group matmuls and separate requantization passes;
//! - `QuantizeLinear` and `DequantizeLinear`, whose tract versions round differently from
//!   onnxruntime and run one element at a time;
//! - `QuantizeLinear(DequantizeLinear(a) + DequantizeLinear(b))`, fused into one pass;
//! - `QuantizeLinear(f(DequantizeLinear(x)))` for any element-wise `f` of `x` alone (sigmoid,
//!   hard sigmoid, hard swish, SiLU `x·σ(x)`, a requantization), which is an int8 → int8
//!   function: a 256-entry lookup table.
//!
//! Each op writes its output into a buffer the session keeps between runs
//! ([`super::pool`]), so a warm session allocates nothing in them; [`POOLED_OPS`] lists them
//! for the session's slot plan. This module depends on `pool` and the kernels, not on
//! [`super::reuse`] (which borrows [`replace_nodes`] from here).
//!
//! The ONNX file is untouched. A node the kernels do not cover (non-zero weight zero point,
//! uint8, grouped but not depthwise, `auto_pad`, weights that are not constants, constants
//! whose data disagree with their dims) is logged and left to tract.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::pool::{i8_values, i8_values_mut, is, reuse_output_eval, PooledOps, WriteOutput};
use crate::kernels::winograd::WinogradQConv;
use crate::kernels::{DenseQConv, DepthwiseQConv, Geometry, Requant};
use crate::kernels::{KernelSet, ThreadPool};

/// This module's ops, which all write their output through the pool (see [`super::pool`]).
pub(crate) const POOLED_OPS: PooledOps = &[is::<EdgeQConv>, is::<EdgeLut>, is::<EdgeQuantize>, is::<EdgeDequantize>, is::<EdgeQAdd>];

/// A quantized convolution's constants, read from the ONNX file.
#[derive(Debug, Clone)]
pub(crate) struct QConvSpec {
    /// Weight dims `[m, cin/group, kh, kw]`; the weights themselves are read from tract's model
    /// (its constant) when the op is built, so that they are not held twice while loading.
    w_dims: [usize; 4],
    bias: Vec<i32>,
    x_zp: i8,
    y_zp: i8,
    scale: Vec<f32>,
    group: usize,
    strides: (usize, usize),
    dilations: (usize, usize),
    pads: [usize; 4],
    /// A `QLinearMatMul` `[1, K] × [K, N]`, run as a 1×1 convolution over one position.
    matmul: bool,
}

fn initializer<'a>(inits: &HashMap<&str, &'a pb::TensorProto>, name: &str) -> Option<&'a pb::TensorProto> {
    inits.get(name).copied()
}

/// The number of values `t`'s dims give (1 for a scalar), if no dim is negative and the product
/// does not overflow.
fn element_count(t: &pb::TensorProto) -> Option<usize> {
    t.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

/// `t`'s values, if it is of type `data_type` and holds exactly as many as its dims give:
/// `raw_data` (little-endian, `size` bytes each, decoded by `raw`) when it has any, else the
/// `typed` field (decoded by `value`). A tensor that fails is left to tract (the caller says
/// why). The engine validates every initializer this way before (`onnx::validate`), so this
/// only keeps the readers correct on their own.
fn read<T, U: Copy>(
    t: &pb::TensorProto,
    data_type: pb::tensor_proto::DataType,
    size: usize,
    raw: impl Fn(&[u8]) -> T,
    typed: &[U],
    value: impl Fn(U) -> T,
) -> Option<Vec<T>> {
    if t.data_type != data_type as i32 {
        return None;
    }
    let n = element_count(t)?;
    if t.raw_data.is_empty() {
        (typed.len() == n).then(|| typed.iter().map(|&v| value(v)).collect())
    } else {
        (t.raw_data.len() == n.checked_mul(size)?).then(|| t.raw_data.chunks_exact(size).map(raw).collect())
    }
}

fn read_i8(t: &pb::TensorProto) -> Option<Vec<i8>> {
    read(t, pb::tensor_proto::DataType::Int8, 1, |b| b[0] as i8, &t.int32_data, |v| v as i8)
}

fn read_i32(t: &pb::TensorProto) -> Option<Vec<i32>> {
    read(t, pb::tensor_proto::DataType::Int32, 4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]), &t.int32_data, |v| v)
}

fn read_f32(t: &pb::TensorProto) -> Option<Vec<f32>> {
    read(t, pb::tensor_proto::DataType::Float, 4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]), &t.float_data, |v| v)
}

fn scalar<T: Copy>(v: Option<Vec<T>>) -> Option<T> {
    v.filter(|v| v.len() == 1).map(|v| v[0])
}

/// `QuantizeLinear` or `DequantizeLinear` (`op_type`) nodes of `proto` with a scalar f32 scale and int8 zero point, by output
/// tensor name: `(scale, zero_point)`.
pub(crate) fn collect_quantize(proto: &pb::ModelProto, op_type: &str) -> HashMap<String, (f32, i8)> {
    let mut out = HashMap::new();
    let Some(graph) = proto.graph.as_ref() else { return out };
    let inits: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for node in graph.node.iter().filter(|n| n.op_type == op_type && n.domain.is_empty()) {
        let (Some(out_name), Some(s), Some(z)) = (node.output.first(), node.input.get(1), node.input.get(2)) else { continue };
        let scale = inits.get(s.as_str()).and_then(|t| scalar(read_f32(t)));
        let zp = inits.get(z.as_str()).and_then(|t| scalar(read_i8(t)));
        if let (Some(scale), Some(zp)) = (scale, zp) {
            if scale.is_finite() && scale > 0.0 {
                out.insert(out_name.clone(), (scale, zp));
            }
        }
    }
    out
}

/// f32 → int8 quantization as onnxruntime (MLAS) computes it: `x / scale`, clamped to the
/// int8 range around the zero point, rounded half to even, plus the zero point. tract's own
/// multiplies by the reciprocal and rounds half away from zero, which differs by one step on
/// rare inputs; and it runs one element at a time.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQuantize {
    scale: f32,
    zero_point: i8,
    out_dt: DatumType,
    set: KernelSet,
}

impl PartialEq for EdgeQuantize {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits() && self.zero_point == other.zero_point && self.out_dt == other.out_dt
    }
}
impl Eq for EdgeQuantize {}

impl Op for EdgeQuantize {
    fn name(&self) -> StaticName {
        "EdgeQuantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("scale {} zero point {}", self.scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQuantize {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeQuantize takes one input");
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let x = inputs[0].try_as_plain_ram()?;
        let xs = x.as_slice::<f32>()?;
        let ys = i8_values_mut(y)?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::quantize_with(self.set, xs, self.scale, self.zero_point, ys);
        Ok(())
    }
}

impl EvalOp for EdgeQuantize {
    reuse_output_eval!();
}

impl TypedOp for EdgeQuantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// int8 → f32 as onnxruntime's `DequantizeLinear`: `(x − zp) · scale`, the subtraction in
/// integers. tract's folds the zero point into an f32 offset, which rounds differently.
#[derive(Debug, Clone)]
pub(crate) struct EdgeDequantize {
    scale: f32,
    zero_point: i8,
    set: KernelSet,
}

impl PartialEq for EdgeDequantize {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits() && self.zero_point == other.zero_point
    }
}
impl Eq for EdgeDequantize {}

impl Op for EdgeDequantize {
    fn name(&self) -> StaticName {
        "EdgeDequantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("scale {} zero point {}", self.scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeDequantize {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeDequantize takes one input");
        Ok((f32::datum_type(), inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        let mut view = y.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<f32>()?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::dequantize_with(self.set, xs, self.scale, self.zero_point, ys);
        Ok(())
    }
}

impl EvalOp for EdgeDequantize {
    reuse_output_eval!();
}

impl TypedOp for EdgeDequantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type.unquantized() == i8::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `QuantizeLinear(DequantizeLinear(a) + DequantizeLinear(b))` in one pass, computed with
/// exactly the f32 operations of the three ops it replaces (so bit-identical to them), without
/// writing and reading back the two f32 tensors in between. The residual Add of ResNet and
/// MobileNetV2 blocks.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQAdd {
    a: (f32, i8),
    b: (f32, i8),
    y: (f32, i8),
    out_dt: DatumType,
    set: KernelSet,
}

impl PartialEq for EdgeQAdd {
    fn eq(&self, other: &Self) -> bool {
        let bits = |q: (f32, i8)| (q.0.to_bits(), q.1);
        bits(self.a) == bits(other.a) && bits(self.b) == bits(other.b) && bits(self.y) == bits(other.y) && self.out_dt == other.out_dt
    }
}
impl Eq for EdgeQAdd {}

impl Op for EdgeQAdd {
    fn name(&self) -> StaticName {
        "EdgeQAdd".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("a {:?} + b {:?} → y {:?}", self.a, self.b, self.y)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQAdd {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 2, "EdgeQAdd takes two inputs");
        ensure!(inputs[0].shape() == inputs[1].shape(), "EdgeQAdd: shapes {:?} and {:?}", inputs[0].shape(), inputs[1].shape());
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let (xa, xb) = (i8_values(&inputs[0])?, i8_values(&inputs[1])?);
        let ys = i8_values_mut(y)?;
        ensure!(xa.len() == ys.len() && xb.len() == ys.len());
        crate::kernels::elementwise::quantized_add_with(self.set, xa, self.a, xb, self.b, self.y, ys);
        Ok(())
    }
}

impl EvalOp for EdgeQAdd {
    reuse_output_eval!();
}

impl TypedOp for EdgeQAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs[0].shape == inputs[1].shape);
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// An int8 → int8 element-wise function as a 256-entry table, computed by running the f32
/// ops it replaces (edgenet's dequantizer, tract's f32 ops, edgenet's quantizer) on the 256
/// possible inputs: the same bits as those ops, in one byte lookup per element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeLut {
    /// `table[x as u8]` is the output for input `x`.
    table: Arc<[i8; 256]>,
    out_dt: DatumType,
    /// What the table stands for, for the plan report.
    what: String,
    /// The kernel set that applies it.
    set: KernelSet,
}

impl Op for EdgeLut {
    fn name(&self) -> StaticName {
        "EdgeLut".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![self.what.clone()])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeLut {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeLut takes one input");
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        let ys = i8_values_mut(y)?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::lookup_with(self.set, &self.table, xs, ys);
        Ok(())
    }
}

impl EvalOp for EdgeLut {
    reuse_output_eval!();
}

impl TypedOp for EdgeLut {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type.unquantized() == i8::datum_type());
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// At most this many f32 ops between a dequantizer and a quantizer become one table.
const LUT_MAX_OPS: usize = 8;

/// Fuses `EdgeQuantize(f(EdgeDequantize(x)))` into an [`EdgeLut`] where `f` is made of
/// element-wise tract ops (unary ones, and binary ones whose other operand is a scalar
/// constant or another value of the same region) reading nothing but `x`, and no value
/// computed in between is read outside.
pub(crate) fn fuse_lut(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    replace_nodes(model, |model, q| {
        let Some(quant) = q.op_as::<EdgeQuantize>() else { return Ok(None) };
        let mut region: Vec<usize> = Vec::new();
        let mut source: Option<usize> = None;
        let mut stack = vec![q.inputs[0]];
        while let Some(outlet) = stack.pop() {
            let n = model.node(outlet.node);
            if region.contains(&n.id) || source == Some(n.id) {
                continue;
            }
            if n.op_is::<EdgeDequantize>() {
                if source.is_some() {
                    return Ok(None);
                }
                source = Some(n.id);
                continue;
            }
            let elementwise = n.op_is::<ElementWiseOp>() || n.op_is::<TypedBinOp>();
            if !elementwise || n.outputs.len() != 1 || region.len() >= LUT_MAX_OPS {
                return Ok(None);
            }
            region.push(n.id);
            for i in &n.inputs {
                let fact = model.outlet_fact(*i)?;
                match &fact.konst {
                    // A constant operand must be one value, so the op stays element-wise.
                    Some(k) if k.len() == 1 => {}
                    Some(_) => return Ok(None),
                    None => stack.push(*i),
                }
            }
        }
        let Some(d) = source else { return Ok(None) };
        let shape = &model.outlet_fact(OutletId::new(d, 0))?.shape;
        for &id in region.iter().chain([d].iter()) {
            let n = model.node(id);
            if n.outputs[0].successors.iter().any(|s| s.node != q.id && !region.contains(&s.node)) || &n.outputs[0].fact.shape != shape {
                return Ok(None);
            }
        }
        let order: Vec<usize> = model.eval_order()?.into_iter().filter(|id| region.contains(id)).collect();
        let table = lut_table(model, d, &order, q)?;
        let what = format!("{} → int8 table", order.iter().map(|&id| model.node(id).op.name().to_string()).collect::<Vec<_>>().join(" · "));
        let op = EdgeLut { table: Arc::new(table), out_dt: quant.out_dt, what, set: quant.set };
        Ok(Some(Replacement { node: q.id, inputs: tvec![model.node(d).inputs[0]], op: Box::new(op), suffix: "edgenet_lut" }))
    })
}

/// Runs dequantizer `d`, the `region` ops (in evaluation order) and quantizer `q` of `model`
/// on the 256 int8 values.
fn lut_table(model: &TypedModel, d: usize, region: &[usize], q: &TypedNode) -> TractResult<[i8; 256]> {
    let dn = model.node(d);
    let src_fact = model.outlet_fact(dn.inputs[0])?;
    let rank = src_fact.rank().max(1);
    let mut shape = vec![1usize; rank - 1];
    shape.push(256);
    let mut adhoc = TypedModel::default();
    let src = adhoc.add_source("lut_input", src_fact.datum_type.fact(&shape))?;
    let mut map: HashMap<OutletId, OutletId> = HashMap::new();
    map.insert(OutletId::new(d, 0), adhoc.wire_node("dequantize", dn.op.clone(), &[src])?[0]);
    for &id in region {
        let n = model.node(id);
        let mut inputs = TVec::new();
        for (k, i) in n.inputs.iter().enumerate() {
            let w = match map.get(i) {
                Some(&w) => w,
                None => {
                    let k_value = model.outlet_fact(*i)?.konst.clone().ok_or_else(|| format_err!("{}: input {k} is neither computed nor constant", n.name))?;
                    adhoc.add_const(format!("{}.const{k}", n.name), k_value)?
                }
            };
            inputs.push(w);
        }
        map.insert(OutletId::new(id, 0), adhoc.wire_node(&*n.name, n.op.clone(), &inputs)?[0]);
    }
    let last = *map.get(&q.inputs[0]).ok_or_else(|| format_err!("{}: quantizer input not in the table's region", q.name))?;
    let out = adhoc.wire_node("quantize", q.op.clone(), &[last])?;
    adhoc.select_output_outlets(&out)?;
    let values: Vec<i8> = (0u8..=255).map(|v| v as i8).collect();
    let mut input = Tensor::from_shape(&shape, &values)?;
    if src_fact.datum_type != i8::datum_type() {
        // SAFETY: the source's type is an int8 one (EdgeDequantize checked it), which shares
        // i8's representation.
        unsafe { input.set_datum_type(src_fact.datum_type) };
    }
    let plan = SimplePlan::new(adhoc)?;
    let result = plan.run(tvec![input.into_tvalue()])?;
    let ys = i8_values(&result[0])?;
    ensure!(ys.len() == 256, "lookup table of {} values", ys.len());
    let mut table = [0i8; 256];
    table.copy_from_slice(ys);
    Ok(table)
}

/// A replacement for one node: the outlets feeding the new op, the op, and a name suffix.
pub(crate) struct Replacement {
    pub(crate) node: usize,
    pub(crate) inputs: TVec<OutletId>,
    pub(crate) op: Box<dyn TypedOp>,
    pub(crate) suffix: &'static str,
}

/// Applies the first replacement `pick` finds, again and again until it finds none, one patch
/// at a time (applying a patch invalidates outlet ids taken before it). Returns how many.
pub(crate) fn replace_nodes(model: &mut TypedModel, pick: impl FnMut(&TypedModel, &TypedNode) -> TractResult<Option<Replacement>>) -> TractResult<usize> {
    replace_nodes_with(model, false, pick)
}

/// [`replace_nodes`]; with `compact_each`, the model is compacted after every replacement, so
/// that what only the replaced node used (a convolution's weights, which the new op has packed
/// into its own layout) is dropped at once instead of when the model is next optimized: the
/// two layouts of all the weights are then never in memory together.
pub(crate) fn replace_nodes_with(
    model: &mut TypedModel,
    compact_each: bool,
    mut pick: impl FnMut(&TypedModel, &TypedNode) -> TractResult<Option<Replacement>>,
) -> TractResult<usize> {
    let mut done = 0;
    loop {
        let mut found = None;
        for node in model.nodes() {
            if let Some(r) = pick(model, node)? {
                found = Some(r);
                break;
            }
        }
        let Some(r) = found else { return Ok(done) };
        let mut patch = TypedModelPatch::default();
        let inputs = r.inputs.iter().map(|&i| patch.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
        let name = format!("{}.{}", model.node(r.node).name, r.suffix);
        let y = patch.wire_node(name, r.op, &inputs)?;
        patch.shunt_outside(model, OutletId::new(r.node, 0), y[0])?;
        patch.apply(model)?;
        if compact_each {
            model.compact()?;
        }
        done += 1;
    }
}

/// `(scale, zero point)` of the single-input node whose output tensor is named in `specs`.
fn labelled<'a>(model: &TypedModel, node: &TypedNode, specs: &'a HashMap<String, (f32, i8)>) -> Option<&'a (f32, i8)> {
    if node.outputs.len() != 1 || node.inputs.len() != 1 {
        return None;
    }
    specs.get(model.outlet_label(OutletId::new(node.id, 0))?)
}

/// Fuses `EdgeQuantize(Add(EdgeDequantize(a), EdgeDequantize(b)))` into [`EdgeQAdd`] where the
/// f32 tensors in between have no other use and the shapes are equal.
pub(crate) fn fuse_qadd(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, |model, q| {
        let Some(quant) = q.op_as::<EdgeQuantize>() else { return Ok(None) };
        let add = model.node(q.inputs[0].node);
        if add.op().name() != "Add" || add.inputs.len() != 2 || add.outputs[0].successors.len() != 1 {
            return Ok(None);
        }
        let deq: Vec<_> = add.inputs.iter().map(|i| model.node(i.node)).collect();
        let (Some(da), Some(db)) = (deq[0].op_as::<EdgeDequantize>(), deq[1].op_as::<EdgeDequantize>()) else { return Ok(None) };
        if deq.iter().any(|d| d.outputs[0].successors.len() != 1) || deq[0].id == deq[1].id {
            return Ok(None);
        }
        let (fa, fb) = (model.outlet_fact(deq[0].inputs[0])?, model.outlet_fact(deq[1].inputs[0])?);
        if fa.shape != fb.shape || fa.shape != q.outputs[0].fact.shape {
            return Ok(None);
        }
        let op =
            EdgeQAdd { a: (da.scale, da.zero_point), b: (db.scale, db.zero_point), y: (quant.scale, quant.zero_point), out_dt: quant.out_dt, set: quant.set };
        Ok(Some(Replacement { node: q.id, inputs: tvec![deq[0].inputs[0], deq[1].inputs[0]], op: Box::new(op), suffix: "edgenet_qadd" }))
    })
}

/// Replaces tract's `DequantizeLinear` nodes named in `specs` by [`EdgeDequantize`].
pub(crate) fn rewrite_dequantize(model: &mut TypedModel, specs: &HashMap<String, (f32, i8)>, set: KernelSet) -> TractResult<usize> {
    replace_nodes(model, |model, node| {
        let Some(&(scale, zero_point)) = labelled(model, node, specs) else { return Ok(None) };
        if node.op_is::<EdgeDequantize>()
            || model.outlet_fact(node.inputs[0])?.datum_type.unquantized() != i8::datum_type()
            || node.outputs[0].fact.datum_type != f32::datum_type()
        {
            return Ok(None);
        }
        Ok(Some(Replacement { node: node.id, inputs: tvec![node.inputs[0]], op: Box::new(EdgeDequantize { scale, zero_point, set }), suffix: "edgenet" }))
    })
}

/// Replaces tract's `QuantizeLinear` nodes named in `specs` by [`EdgeQuantize`].
pub(crate) fn rewrite_quantize(model: &mut TypedModel, specs: &HashMap<String, (f32, i8)>, set: KernelSet) -> TractResult<usize> {
    replace_nodes(model, |model, node| {
        let Some(&(scale, zero_point)) = labelled(model, node, specs) else { return Ok(None) };
        let out_dt = node.outputs[0].fact.datum_type;
        if node.op_is::<EdgeQuantize>() || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() || out_dt.unquantized() != i8::datum_type() {
            return Ok(None);
        }
        Ok(Some(Replacement { node: node.id, inputs: tvec![node.inputs[0]], op: Box::new(EdgeQuantize { scale, zero_point, out_dt, set }), suffix: "edgenet" }))
    })
}

/// The `QLinearConv` nodes of `proto` that edgenet's kernels can run, by output tensor name;
/// with the reason for each one they cannot.
pub(crate) fn collect(proto: &pb::ModelProto) -> (HashMap<String, QConvSpec>, Vec<(String, String)>) {
    let mut specs = HashMap::new();
    let mut skipped = Vec::new();
    let Some(graph) = proto.graph.as_ref() else { return (specs, skipped) };
    let inits: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for node in graph.node.iter().filter(|n| (n.op_type == "QLinearConv" || n.op_type == "QLinearMatMul") && n.domain.is_empty()) {
        let Some(out) = node.output.first() else { continue };
        let spec = if node.op_type == "QLinearConv" { spec_of(node, &inits) } else { matmul_spec_of(node, &inits) };
        match spec {
            Ok(s) => {
                specs.insert(out.clone(), s);
            }
            Err(why) => skipped.push((out.clone(), why)),
        }
    }
    (specs, skipped)
}

fn matmul_spec_of(node: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Result<QConvSpec, String> {
    let input = |i: usize| -> Result<&pb::TensorProto, String> {
        let name = node.input.get(i).filter(|n| !n.is_empty()).ok_or(format!("input #{i} missing"))?;
        initializer(inits, name).ok_or(format!("input `{name}` is not an initializer"))
    };
    let a_scale = scalar(read_f32(input(1)?)).ok_or("a_scale is not one f32")?;
    let a_zp = scalar(read_i8(input(2)?)).ok_or("a_zero_point is not one int8")?;
    let bt = input(3)?;
    if bt.data_type != pb::tensor_proto::DataType::Int8 as i32 {
        return Err("b is not int8".into());
    }
    let [k, n] = <[i64; 2]>::try_from(bt.dims.as_slice()).map_err(|_| "b is not 2-D")?;
    let (k, n) = (k as usize, n as usize);
    let b_scale = read_f32(input(4)?).ok_or("b_scale is not f32")?;
    let b_zp = read_i8(input(5)?).ok_or("b_zero_point is not int8")?;
    if b_zp.iter().any(|&z| z != 0) {
        return Err("non-zero weight zero point".into());
    }
    if !(b_scale.len() == 1 || b_scale.len() == n) {
        return Err(format!("{n} columns, {} scales", b_scale.len()));
    }
    let y_scale = scalar(read_f32(input(6)?)).ok_or("y_scale is not one f32")?;
    let y_zp = scalar(read_i8(input(7)?)).ok_or("y_zero_point is not one int8")?;
    let scale = (0..n).map(|j| a_scale * b_scale[if b_scale.len() == 1 { 0 } else { j }] / y_scale).collect();
    Ok(QConvSpec { w_dims: [n, k, 1, 1], bias: vec![0; n], x_zp: a_zp, y_zp, scale, group: 1, strides: (1, 1), dilations: (1, 1), pads: [0; 4], matmul: true })
}

fn spec_of(node: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Result<QConvSpec, String> {
    let input = |i: usize| -> Result<&pb::TensorProto, String> {
        let name = node.input.get(i).filter(|n| !n.is_empty()).ok_or(format!("input #{i} missing"))?;
        initializer(inits, name).ok_or(format!("input `{name}` is not an initializer"))
    };
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    if attr("auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
        return Err("auto_pad".into());
    }
    let x_scale = scalar(read_f32(input(1)?)).ok_or("x_scale is not one f32")?;
    let x_zp = scalar(read_i8(input(2)?)).ok_or("x_zero_point is not one int8")?;
    let wt = input(3)?;
    if wt.data_type != pb::tensor_proto::DataType::Int8 as i32 {
        return Err("weights are not int8".into());
    }
    let w_dims: [usize; 4] = wt.dims.iter().map(|&d| d as usize).collect::<Vec<_>>().try_into().map_err(|_| "weights are not 4-D")?;
    let cout = w_dims[0];
    let w_scale = read_f32(input(4)?).ok_or("w_scale is not f32")?;
    let w_zp = read_i8(input(5)?).ok_or("w_zero_point is not int8")?;
    if w_zp.iter().any(|&z| z != 0) {
        return Err("non-zero weight zero point".into());
    }
    let y_scale = scalar(read_f32(input(6)?)).ok_or("y_scale is not one f32")?;
    let y_zp = scalar(read_i8(input(7)?)).ok_or("y_zero_point is not one int8")?;
    let bias = match node.input.get(8).filter(|n| !n.is_empty()) {
        Some(_) => read_i32(input(8)?).ok_or("bias is not int32")?,
        None => vec![0; cout],
    };
    if bias.len() != cout || !(w_scale.len() == 1 || w_scale.len() == cout) {
        return Err(format!("{cout} output channels, {} biases, {} weight scales", bias.len(), w_scale.len()));
    }
    // onnxruntime's order: (x_scale · w_scale) / y_scale, in f32.
    let scale = (0..cout).map(|c| x_scale * w_scale[if w_scale.len() == 1 { 0 } else { c }] / y_scale).collect();
    let ints = |name: &str, default: Vec<i64>| attr(name).map_or(default, |a| a.ints.clone());
    let group = attr("group").map_or(1, |a| a.i) as usize;
    let strides = ints("strides", vec![1, 1]);
    let dilations = ints("dilations", vec![1, 1]);
    let pads = ints("pads", vec![0; 4]);
    if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 || pads.iter().chain(&strides).chain(&dilations).any(|&v| v < 0) {
        return Err("not a 2-D convolution".into());
    }
    if let Some(ks) = attr("kernel_shape") {
        if ks.ints.iter().map(|&v| v as usize).ne(w_dims[2..].iter().copied()) {
            return Err("kernel_shape disagrees with the weights".into());
        }
    }
    Ok(QConvSpec {
        w_dims,
        bias,
        x_zp,
        y_zp,
        scale,
        group,
        strides: (strides[0] as usize, strides[1] as usize),
        dilations: (dilations[0] as usize, dilations[1] as usize),
        pads: [pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize],
        matmul: false,
    })
}

#[derive(Debug)]
enum Kernel {
    Dense(DenseQConv),
    Winograd(WinogradQConv),
    Depthwise(DepthwiseQConv),
}

/// Whether Winograd F(2×2, 3×3) pays for a convolution: 3×3, stride 1, no dilation, and enough
/// channels that the GEMMs outweigh the input and output transforms (measured with
/// `examples/kernels.rs`: 1.1× at 64→64, 1.8× at 512→512 with AVX2).
fn winograd_pays(geo: &Geometry, m: usize, set: KernelSet) -> bool {
    // Winograd's GEMM multiplies i16 values (the transforms widen them): 4 multiply-adds per
    // NEON instruction on 2.25× fewer products. On the Cortex-A72 that beats the dense NEON
    // kernel (16 int8 multiply-adds per 3 instructions) by 22–31% in instructions from 64→64
    // at 56² to 256→256 at 14² (examples/kernels.rs under qemu, emulated), so NEON takes it
    // from 64 channels (32 was not measured). In cycles the gain should be small: the A72
    // issues `smull` (8 byte lanes) and `smlal` (4 halfword lanes) at the same rate, so 8
    // against 9 equivalent multiply-adds per multiply cycle. With `sdot` (16 per instruction)
    // the dense kernel executes fewer instructions.
    let channels = match set {
        KernelSet::Avx2 | KernelSet::Portable => 32,
        KernelSet::Neon if cfg!(target_arch = "aarch64") => 64,
        // armv7: Winograd has only its portable form there, slower than the dense NEON kernel.
        KernelSet::Neon | KernelSet::Dotprod => return false,
    };
    (geo.kh, geo.kw, geo.stride, geo.dilation) == (3, 3, (1, 1), (1, 1)) && geo.cin >= channels && m >= channels
}

/// The tract op running one of edgenet's int8 convolutions on a `[1, C, H, W]` int8 input.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQConv {
    kernel: Arc<Kernel>,
    /// The engine's threads (`EngineOptions::threads`), shared by all its convolutions.
    pool: Arc<ThreadPool>,
    in_len: usize,
    out_shape: TVec<usize>,
    out_dt: DatumType,
}

impl PartialEq for EdgeQConv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.kernel, &other.kernel)
    }
}
impl Eq for EdgeQConv {}

impl EdgeQConv {
    /// `weights`: OIHW for a convolution, `[K, N]` for a matmul.
    fn new(
        spec: &QConvSpec,
        weights: &[i8],
        in_shape: &[usize],
        out_dt: DatumType,
        winograd: bool,
        set: KernelSet,
        pool: &Arc<ThreadPool>,
    ) -> Result<Self, String> {
        if weights.len() != spec.w_dims.iter().product::<usize>() {
            return Err(format!("{} weights for dims {:?}", weights.len(), spec.w_dims));
        }
        let transposed;
        let weights = if spec.matmul {
            let [n, k, _, _] = spec.w_dims;
            let mut t = vec![0i8; k * n];
            for (kk, row) in weights.chunks_exact(n).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    t[j * k + kk] = v;
                }
            }
            transposed = t;
            &transposed[..]
        } else {
            weights
        };
        let [n, c, h, w] = match (spec.matmul, in_shape) {
            (false, &[n, c, h, w]) => [n, c, h, w],
            (true, &[n, k]) => [n, k, 1, 1],
            _ => return Err(format!("input shape {in_shape:?}")),
        };
        if n != 1 {
            return Err(format!("batch {n}"));
        }
        let [m, cin_g, kh, kw] = spec.w_dims;
        let geo = Geometry { cin: c, h, w, kh, kw, stride: spec.strides, dilation: spec.dilations, pads: spec.pads }.with_strides_clamped();
        let rq = Requant::new(spec.scale.clone(), spec.y_zp);
        let kernel = if spec.group == 1 && cin_g == c && winograd && winograd_pays(&geo, m, set) {
            Kernel::Winograd(WinogradQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?)
        } else if spec.group == 1 && cin_g == c {
            Kernel::Dense(DenseQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?)
        } else if spec.group == c && cin_g == 1 && m == c {
            Kernel::Depthwise(DepthwiseQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?)
        } else {
            return Err(format!("group {} with {c} input and {m} output channels", spec.group));
        };
        let (oh, ow) = match &kernel {
            Kernel::Dense(k) => k.output_hw(),
            Kernel::Winograd(k) => k.output_hw(),
            Kernel::Depthwise(k) => k.output_hw(),
        };
        let out_shape = if spec.matmul { tvec![1, m] } else { tvec![1, m, oh, ow] };
        Ok(EdgeQConv { kernel: Arc::new(kernel), pool: Arc::clone(pool), in_len: c * h * w, out_shape, out_dt })
    }
}

impl EdgeQConv {
    /// What the weights held are, for the footprint report.
    pub(crate) fn held_kind(&self) -> &'static str {
        match &*self.kernel {
            Kernel::Winograd(_) => "I16 Winograd-transformed weights, i32 bias (edgenet int8 kernels)",
            _ => "I8 weights, i32 bias (edgenet int8 kernels)",
        }
    }

    /// Bytes of weights, biases and scales the op holds.
    pub(crate) fn held_bytes(&self) -> usize {
        match &*self.kernel {
            Kernel::Dense(k) => k.held_bytes(),
            Kernel::Winograd(k) => k.held_bytes(),
            Kernel::Depthwise(k) => k.held_bytes(),
        }
    }
}

impl Op for EdgeQConv {
    fn name(&self) -> StaticName {
        "EdgeQConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![match &*self.kernel {
            Kernel::Dense(k) => format!("dense {}×{} int8 → {:?}, {} MACs", k.kernel_hw().0, k.kernel_hw().1, self.out_shape, k.macs()),
            Kernel::Winograd(k) => format!("dense 3×3 int8 Winograd F(2×2,3×3) → {:?}, {} MACs", self.out_shape, k.macs()),
            Kernel::Depthwise(k) => format!("depthwise int8 → {:?}, {} MACs", self.out_shape, k.macs()),
        }])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQConv {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeQConv takes one input");
        Ok((self.out_dt, &self.out_shape))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        ensure!(xs.len() == self.in_len, "EdgeQConv: input of {} values, expected {}", xs.len(), self.in_len);
        let ys = i8_values_mut(y)?;
        ensure!(ys.len() == self.out_shape.iter().product::<usize>(), "EdgeQConv: output of {} values", ys.len());
        let pool = &*self.pool;
        match &*self.kernel {
            Kernel::Dense(k) => k.run_par(xs, ys, pool),
            Kernel::Winograd(k) => k.run_par(xs, ys, pool),
            Kernel::Depthwise(k) => k.run_par(xs, ys, pool),
        }
        Ok(())
    }
}

impl EvalOp for EdgeQConv {
    reuse_output_eval!();
}

impl TypedOp for EdgeQConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1);
        ensure!(inputs[0].datum_type.unquantized() == i8::datum_type(), "EdgeQConv takes int8, got {:?}", inputs[0].datum_type);
        Ok(tvec!(self.out_dt.fact(&*self.out_shape)))
    }

    as_op!();
}

/// Replaces every quantized convolution of `model` (a typed, not yet optimised tract model)
/// that has a spec in `specs` by an [`EdgeQConv`]. Returns how many were replaced; the others
/// are logged and left to tract.
pub(crate) fn rewrite(
    model: &mut TypedModel,
    specs: &HashMap<String, QConvSpec>,
    origin: &str,
    winograd: bool,
    set: KernelSet,
    pool: &Arc<ThreadPool>,
) -> TractResult<usize> {
    let mut skipped = std::collections::HashSet::new();
    replace_nodes_with(model, true, |model, node| {
        let quantized = node.op_as::<Conv>().is_some_and(|c| c.q_params.is_some()) || node.op_as::<EinSum>().is_some_and(|e| e.q_params.is_some());
        if node.outputs.len() != 1 || !quantized {
            return Ok(None);
        }
        let Some(label) = model.outlet_label(OutletId::new(node.id, 0)) else { return Ok(None) };
        let Some(spec) = specs.get(label) else { return Ok(None) };
        if skipped.contains(label) {
            return Ok(None);
        }
        let fact = model.outlet_fact(node.inputs[0])?;
        let out_dt = node.outputs[0].fact.datum_type;
        let konst = model.outlet_fact(node.inputs[1])?.konst.clone();
        let weights: Option<&[i8]> = match &konst {
            // SAFETY: i8 and the quantized i8 datum types share their representation (checked).
            Some(k) if k.datum_type().unquantized() == i8::datum_type() && k.is_plain() => Some(unsafe { k.try_as_plain_ram()?.as_slice_unchecked::<i8>() }),
            _ => None,
        };
        let why = match fact.shape.as_concrete() {
            None => "no fixed input shape".to_string(),
            Some(_) if weights.is_none() => "its weights are not an int8 constant in tract's model".to_string(),
            Some(_) if out_dt.unquantized() != i8::datum_type() || fact.datum_type.unquantized() != i8::datum_type() => {
                format!("{:?} → {out_dt:?} is not int8", fact.datum_type)
            }
            Some(shape) => match EdgeQConv::new(spec, weights.unwrap_or_default(), shape, out_dt, winograd, set, pool) {
                Ok(op) if op.out_shape[..] == *node.outputs[0].fact.shape.as_concrete().unwrap_or(&[]) => {
                    return Ok(Some(Replacement { node: node.id, inputs: tvec![node.inputs[0]], op: Box::new(op), suffix: "edgenet" }));
                }
                Ok(op) => format!("edgenet's output shape {:?} differs from tract's", op.out_shape),
                Err(why) => why,
            },
        };
        log::info!("{origin}: `{label}`: {why}; left to tract");
        skipped.insert(label.to_string());
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::tensor_proto::DataType;

    fn tensor(data_type: DataType, dims: &[i64], raw: &[u8]) -> pb::TensorProto {
        pb::TensorProto { data_type: data_type as i32, dims: dims.to_vec(), raw_data: raw.to_vec(), ..Default::default() }
    }

    /// The readers return values only when the data holds exactly what the dims say, so that a
    /// malformed constant leaves its node to tract instead of feeding the kernels a wrong count.
    #[test]
    fn readers_check_the_data_against_the_dims() {
        let f = |v: f32| v.to_le_bytes();
        let two: Vec<u8> = [f(0.5), f(2.0)].concat();
        assert_eq!(read_f32(&tensor(DataType::Float, &[2], &two)), Some(vec![0.5, 2.0]));
        assert_eq!(scalar(read_f32(&tensor(DataType::Float, &[], &two[..4]))), Some(0.5), "no dims: a scalar");
        assert_eq!(read_f32(&tensor(DataType::Float, &[3], &two)), None, "8 bytes for 3 values");
        assert_eq!(read_f32(&tensor(DataType::Float, &[2], &two[..7])), None, "not a multiple of 4");
        assert_eq!(read_f32(&tensor(DataType::Float, &[-2], &two)), None, "a negative dim");
        assert_eq!(read_f32(&tensor(DataType::Int32, &[2], &two)), None, "another type");
        assert_eq!(read_i32(&tensor(DataType::Int32, &[1], &[1, 0, 0, 0, 2])), None);
        assert_eq!(read_i32(&tensor(DataType::Int32, &[2], &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])), Some(vec![1, -1]));
        assert_eq!(read_i8(&tensor(DataType::Int8, &[3], &[1, 0xff, 7])), Some(vec![1, -1, 7]));
        assert_eq!(read_i8(&tensor(DataType::Int8, &[2, 2], &[1, 2, 3])), None);
        // Typed fields (no raw data) are counted the same way.
        let typed = pb::TensorProto { data_type: DataType::Int8 as i32, dims: vec![2], int32_data: vec![3, -4], ..Default::default() };
        assert_eq!(read_i8(&typed), Some(vec![3, -4]));
        assert_eq!(read_i8(&pb::TensorProto { dims: vec![3], ..typed.clone() }), None);
        let floats = pb::TensorProto { data_type: DataType::Float as i32, dims: vec![1], float_data: vec![0.25], ..Default::default() };
        assert_eq!(scalar(read_f32(&floats)), Some(0.25));
        assert_eq!(read_f32(&pb::TensorProto { float_data: vec![0.25, 1.0], ..floats }), None);
    }
}
