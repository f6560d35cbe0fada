//! The rewrites of tract's typed model (before its optimisation) that put edgenet's int8 ops
//! ([`super::ops`]) in place of
//! - quantized convolutions and matmuls (`QLinearConv`, `QLinearMatMul`), which tract lowers
//!   through eager im2col, per-row or per-group matmuls and separate requantization passes;
//! - `QuantizeLinear` and `DequantizeLinear`, whose tract versions round differently from
//!   onnxruntime and run one element at a time;
//! - `QuantizeLinear(DequantizeLinear(a) + DequantizeLinear(b))`, fused into one pass;
//! - `QuantizeLinear(f(DequantizeLinear(x)))` for any element-wise `f` of `x` alone (sigmoid,
//!   hard sigmoid, hard swish, SiLU `x·σ(x)`, a requantization), which is an int8 → int8
//!   function: a 256-entry lookup table.
//!
//! A node is rewritten when its output tensor has a spec read from the ONNX file
//! ([`super::spec`]) and tract's op for it is the one expected. A node the kernels do not
//! cover (grouped but not depthwise, weights that are not an int8 constant in tract's model, a
//! shape edgenet's op computes differently) is logged and left to tract.
//!
//! The int8 path's matches on tract's ops (downcasts to `Conv`, `EinSum`, the element-wise and
//! binary ops, an `Add` by name) and to edgenet's own ops ([`POOLED_OPS`] included) are all in
//! this module, so that a tract upgrade that changes them touches the int8 path here alone.
//! It also holds the graph-patching helper [`replace_nodes`], which [`super::reuse`] borrows;
//! this module uses nothing of that one.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::ops::{EdgeDequantize, EdgeLut, EdgeQAdd, EdgeQConv, EdgeQuantize, Threads};
use super::pool::{i8_values, is, PooledOps};
use super::spec::QConvSpec;
use crate::kernels::{KernelSet, ThreadPool};

/// The ops these rewrites put in tract's model, which all write their output through the pool
/// (see [`super::pool`]).
pub(crate) const POOLED_OPS: PooledOps = &[is::<EdgeQConv>, is::<EdgeLut>, is::<EdgeQuantize>, is::<EdgeDequantize>, is::<EdgeQAdd>];

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
        let op = EdgeQAdd {
            a: (da.scale, da.zero_point),
            b: (db.scale, db.zero_point),
            y: (quant.scale, quant.zero_point),
            out_dt: quant.out_dt,
            set: quant.set,
            threads: quant.threads.clone(),
        };
        Ok(Some(Replacement { node: q.id, inputs: tvec![deq[0].inputs[0], deq[1].inputs[0]], op: Box::new(op), suffix: "edgenet_qadd" }))
    })
}

/// Replaces tract's `DequantizeLinear` nodes named in `specs` by [`EdgeDequantize`].
pub(crate) fn rewrite_dequantize(model: &mut TypedModel, specs: &HashMap<String, (f32, i8)>, set: KernelSet, pool: &Arc<ThreadPool>) -> TractResult<usize> {
    replace_nodes(model, |model, node| {
        let Some(&(scale, zero_point)) = labelled(model, node, specs) else { return Ok(None) };
        if node.op_is::<EdgeDequantize>()
            || model.outlet_fact(node.inputs[0])?.datum_type.unquantized() != i8::datum_type()
            || node.outputs[0].fact.datum_type != f32::datum_type()
        {
            return Ok(None);
        }
        Ok(Some(Replacement {
            node: node.id,
            inputs: tvec![node.inputs[0]],
            op: Box::new(EdgeDequantize { scale, zero_point, set, threads: Threads(Arc::clone(pool)) }),
            suffix: "edgenet",
        }))
    })
}

/// Replaces tract's `QuantizeLinear` nodes named in `specs` by [`EdgeQuantize`].
pub(crate) fn rewrite_quantize(model: &mut TypedModel, specs: &HashMap<String, (f32, i8)>, set: KernelSet, pool: &Arc<ThreadPool>) -> TractResult<usize> {
    replace_nodes(model, |model, node| {
        let Some(&(scale, zero_point)) = labelled(model, node, specs) else { return Ok(None) };
        let out_dt = node.outputs[0].fact.datum_type;
        if node.op_is::<EdgeQuantize>() || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() || out_dt.unquantized() != i8::datum_type() {
            return Ok(None);
        }
        Ok(Some(Replacement {
            node: node.id,
            inputs: tvec![node.inputs[0]],
            op: Box::new(EdgeQuantize { scale, zero_point, out_dt, set, threads: Threads(Arc::clone(pool)) }),
            suffix: "edgenet",
        }))
    })
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
        let op = EdgeLut { table: Arc::new(table), out_dt: quant.out_dt, what, set: quant.set, threads: quant.threads.clone() };
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
