//! Import of the ONNX op subset that edgenet writes and `torch.onnx.export` produces for
//! torchvision classifiers (ResNet, MobileNetV2/V3, EfficientNet, ShuffleNetV2, SqueezeNet,
//! MNASNet, GoogLeNet, DenseNet, RegNet; see [`SUPPORTED`]) into the graph IR.

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb;

use super::meta;
use super::proto::{self, Attrs, ReadError};
use crate::error::{Error, Result};
use crate::graph::{ConvSpec, GraphBuilder, Padding, Pool2d, Tensor, TensorId, Weights};
use crate::preprocess::Preprocess;

/// The ONNX ops the importer takes, for error messages.
pub const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip (as ReLU or ReLU6), Sigmoid, HardSigmoid, HardSwish, Add, Mul, MaxPool, AveragePool, \
     GlobalAveragePool, ReduceMean, Concat, Split, Slice, Transpose, Reshape, Flatten, Gemm, MatMul, Softmax, Dropout, Identity, Constant, and shape arithmetic \
     on constants (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Slice, Add, Sub, Mul, Div)";
use crate::model::{Model, ModelInfo};

fn err(origin: &str, message: impl Into<String>) -> Error {
    Error::Onnx { origin: origin.to_string(), message: message.into() }
}

/// Decodes ONNX protobuf bytes.
///
/// # Errors
/// [`Error::Onnx`] when the bytes are not a valid `ModelProto` or hold no graph.
pub fn decode(bytes: &[u8], origin: &str) -> Result<pb::ModelProto> {
    decode_buf(bytes, bytes.len(), origin)
}

/// Like [`decode`], from a buffer of `len` bytes that need not be contiguous (a file read in
/// chunks, see `engine::load`).
pub(crate) fn decode_buf(buf: impl prost::bytes::Buf, len: usize, origin: &str) -> Result<pb::ModelProto> {
    if len == 0 {
        return Err(err(origin, "the file is empty"));
    }
    let proto = pb::ModelProto::decode(buf).map_err(|e| err(origin, format!("not a valid ONNX protobuf: {e}")))?;
    if proto.graph.is_none() {
        return Err(err(origin, "the ONNX model has no graph"));
    }
    Ok(proto)
}

/// Numeric content of an initializer or constant.
#[derive(Debug, Clone)]
enum Const {
    F32(Tensor),
    I64(Vec<i64>),
}

fn const_of(t: &pb::TensorProto, origin: &str) -> Result<Const> {
    use pb::tensor_proto::DataType;
    let name = &t.name;
    if !t.external_data.is_empty() {
        return Err(err(origin, format!("tensor `{name}` uses external data, which edgenet does not read")));
    }
    let dims: Vec<usize> =
        t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| err(origin, format!("tensor `{name}` has a negative dimension {d}")))).collect::<Result<_>>()?;
    let too_large = || err(origin, format!("tensor `{name}` is too large"));
    let other_type = || err(origin, format!("tensor `{name}` has ONNX data type {}, edgenet reads float32 and int64", t.data_type));
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(too_large)?;
    // The readers check the type and the dims again (as here, so they pass). A wrong count is
    // named by the whole values the data holds; raw data with the right number of whole
    // values and bytes left over, by its bytes.
    let wrong = |e: ReadError| match e {
        ReadError::Count { values, raw_bytes: Some(bytes) } if values == n => {
            err(origin, format!("tensor `{name}` has shape {dims:?} but {bytes} bytes of raw data"))
        }
        ReadError::Count { values, .. } => err(origin, format!("tensor `{name}` has shape {dims:?} but {values} values")),
        ReadError::Dims => too_large(),
        ReadError::Type => other_type(),
    };
    if t.data_type == DataType::Float as i32 {
        let data = proto::read_f32(t).map_err(wrong)?;
        Ok(Const::F32(Tensor { shape: dims, data }))
    } else if t.data_type == DataType::Int64 as i32 {
        Ok(Const::I64(proto::read_i64(t).map_err(wrong)?))
    } else {
        Err(other_type())
    }
}

/// Turns the ONNX model in `bytes` into a [`Model`].
///
/// # Errors
/// [`Error::Onnx`] naming the op or tensor that edgenet cannot represent, or the bytes that
/// are not ONNX.
pub fn import(bytes: &[u8], origin: &str) -> Result<Model> {
    import_proto(&decode(bytes, origin)?, origin)
}

fn all_equal(v: &[i64]) -> Option<usize> {
    let first = *v.first()?;
    (v.iter().all(|&x| x == first) && first >= 0).then_some(first as usize)
}

/// Like [`import`], from a decoded `ModelProto`.
///
/// # Errors
/// As [`import`].
pub fn import_proto(proto: &pb::ModelProto, origin: &str) -> Result<Model> {
    super::validate(proto, origin, &super::Limits::default())?;
    let graph = proto.graph.as_ref().ok_or_else(|| err(origin, "the ONNX model has no graph"))?;
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &graph.initializer {
        consts.insert(t.name.clone(), const_of(t, origin)?);
    }
    let inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
    let [input] = inputs.as_slice() else {
        return Err(err(origin, format!("edgenet models have exactly one input, this one has {}", inputs.len())));
    };
    let dims = input_dims(input, origin)?;
    let mut b = GraphBuilder::new();
    let x = b.input(dims[1], dims[2], dims[3])?;
    let mut tensors: HashMap<String, TensorId> = HashMap::from([(input.name.clone(), x)]);
    let mut weights = Weights::new();
    let mut used_names = HashSet::new();

    for (index, node) in graph.node.iter().enumerate() {
        let a = Attrs::of(node);
        let op = node.op_type.as_str();
        let what = || format!("node #{index} `{}` ({op})", node.name);
        let output = node.output.first().ok_or_else(|| err(origin, format!("{} has no output", what())))?.clone();
        if op == "Constant" {
            let c = if let Some(t) = a.get("value").and_then(|v| v.t.as_ref()) {
                const_of(t, origin)?
            } else if let Some(v) = a.get("value_ints") {
                Const::I64(v.ints.clone())
            } else if let Some(v) = a.get("value_int") {
                Const::I64(vec![v.i])
            } else if let Some(v) = a.get("value_float") {
                Const::F32(Tensor { shape: vec![], data: vec![v.f] })
            } else if let Some(v) = a.get("value_floats") {
                Const::F32(Tensor { shape: vec![v.floats.len()], data: v.floats.clone() })
            } else {
                return Err(err(origin, format!("{} has no `value`", what())));
            };
            consts.insert(output, c);
            continue;
        }
        // Shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape, as exports without
        // constant folding write it) is evaluated here: every shape is fixed.
        if let Some(c) = fold_constant(node, op, &a, &consts, &tensors, &b).map_err(|m| err(origin, format!("{}: {m}", what())))? {
            consts.insert(output, c);
            continue;
        }
        let tensor = |i: usize| -> Result<TensorId> {
            let name = node.input.get(i).ok_or_else(|| err(origin, format!("{} lacks input #{i}", what())))?;
            tensors.get(name).copied().ok_or_else(|| err(origin, format!("{}: input `{name}` is not a computed tensor", what())))
        };
        let constant = |i: usize| -> Result<Option<&Const>> {
            match node.input.get(i) {
                None => Ok(None),
                Some(n) if n.is_empty() => Ok(None),
                Some(n) => consts.get(n).map(Some).ok_or_else(|| err(origin, format!("{}: input `{n}` must be a constant", what()))),
            }
        };
        let f32_const = |i: usize| -> Result<Option<Tensor>> {
            match constant(i)? {
                None => Ok(None),
                Some(Const::F32(t)) => Ok(Some(t.clone())),
                Some(Const::I64(..)) => Err(err(origin, format!("{}: input #{i} must be float", what()))),
            }
        };
        let i64_const = |i: usize| -> Result<Option<Vec<i64>>> {
            match constant(i)? {
                None => Ok(None),
                Some(Const::I64(v)) => Ok(Some(v.clone())),
                Some(Const::F32(..)) => Err(err(origin, format!("{}: input #{i} must be int64", what()))),
            }
        };
        if matches!(op, "Identity" | "Dropout") {
            // Dropout is the identity at inference; its optional mask output is not supported.
            if node.output.get(1).is_some_and(|m| !m.is_empty()) {
                return Err(err(origin, format!("{}: the Dropout mask output is not supported", what())));
            }
            if let Some(c) = constant(0).ok().flatten() {
                consts.insert(output, c.clone());
            } else {
                let t = tensor(0)?;
                tensors.insert(output, t);
            }
            continue;
        }
        let mut name = if node.name.is_empty() { output.clone() } else { node.name.clone() };
        if used_names.contains(&name) {
            name = format!("{name}_{index}");
        }
        used_names.insert(name.clone());
        // A negative axis counts from the end.
        let axis_of = |v: i64, rank: usize| -> Result<usize> {
            let r = rank as i64;
            let x = if v < 0 { v + r } else { v };
            if (0..r).contains(&x) {
                Ok(x as usize)
            } else {
                Err(err(origin, format!("{}: axis {v} out of range for rank {rank}", what())))
            }
        };
        if op == "Split" {
            let x = tensor(0)?;
            let shape = b.shape(x).to_vec();
            let axis = axis_of(a.int("axis", 0), shape.len())?;
            let n_out = node.output.len();
            let sizes: Vec<usize> = match i64_const(1)?.or_else(|| a.ints("split").map(<[i64]>::to_vec)) {
                Some(v) => v.iter().map(|&s| usize::try_from(s).map_err(|_| err(origin, format!("{}: negative split {s}", what())))).collect::<Result<_>>()?,
                None if n_out > 0 && shape[axis].is_multiple_of(n_out) => vec![shape[axis] / n_out; n_out],
                None => return Err(err(origin, format!("{}: {} does not split evenly into {n_out}", what(), shape[axis]))),
            };
            if sizes.len() != n_out || sizes.iter().sum::<usize>() != shape[axis] {
                return Err(err(origin, format!("{}: split {sizes:?} of {} into {n_out} outputs", what(), shape[axis])));
            }
            let mut start = 0;
            for (k, (out, size)) in node.output.iter().zip(sizes).enumerate() {
                let y = b.slice(&format!("{name}.{k}"), x, axis, start, start + size)?;
                start += size;
                tensors.insert(out.clone(), y);
            }
            continue;
        }
        let pool = |avg: bool| -> Result<Pool2d> {
            let k = a.ints("kernel_shape").unwrap_or_default();
            let s = a.ints("strides").unwrap_or(&[1, 1]);
            let p = a.ints("pads").unwrap_or(&[0; 4]);
            let plain = a.string("auto_pad").is_none_or(|s| s.is_empty() || s == "NOTSET") && a.ints("dilations").is_none_or(|d| d.iter().all(|&x| x == 1));
            let u = |v: &[i64]| v.iter().map(|&x| usize::try_from(x).ok().filter(|&x| x < 1 << 16)).collect::<Option<Vec<usize>>>();
            match (u(k).as_deref(), u(s).as_deref(), u(p).as_deref(), plain) {
                (Some(&[kh, kw]), Some(&[sh, sw]), Some(&[t, l, bo, r]), true) => Ok(Pool2d {
                    kernel: [kh, kw],
                    stride: [sh, sw],
                    pads: [t, l, bo, r],
                    ceil_mode: a.int("ceil_mode", 0) != 0,
                    count_include_pad: avg && a.int("count_include_pad", 0) != 0,
                }),
                _ => Err(err(origin, format!("{}: 2-D pooling with explicit pads and no dilation only (kernel {k:?}, strides {s:?}, pads {p:?})", what()))),
            }
        };
        let y = match op {
            "Conv" => {
                let w = f32_const(1)?.ok_or_else(|| err(origin, format!("{} has no weight", what())))?;
                let bias = f32_const(2)?;
                let [o, _, kh, kw] = *w.shape.as_slice() else {
                    return Err(err(origin, format!("{}: 2-D convs only, weight shape {:?}", what(), w.shape)));
                };
                if kh != kw {
                    return Err(err(origin, format!("{}: non-square kernel {kh}×{kw} is not supported", what())));
                }
                let stride =
                    all_equal(a.ints("strides").unwrap_or(&[1, 1])).ok_or_else(|| err(origin, format!("{}: unequal strides are not supported", what())))?;
                let dilation =
                    all_equal(a.ints("dilations").unwrap_or(&[1, 1])).ok_or_else(|| err(origin, format!("{}: unequal dilations are not supported", what())))?;
                let padding = match a.string("auto_pad").as_deref() {
                    None | Some("NOTSET") | Some("") => {
                        let p = a.ints("pads").unwrap_or(&[0; 4]);
                        let p: Vec<usize> = p.iter().map(|&v| usize::try_from(v).unwrap_or(usize::MAX)).collect();
                        match p.as_slice() {
                            [t, l, b, r] if p.iter().all(|&v| v < 1 << 16) => Padding::Explicit([*t, *l, *b, *r]),
                            _ => return Err(err(origin, format!("{}: invalid pads {p:?}", what()))),
                        }
                    }
                    Some("SAME_UPPER") => Padding::Same,
                    Some("VALID") => Padding::Symmetric(0),
                    Some(other) => return Err(err(origin, format!("{}: auto_pad {other} is not supported", what()))),
                };
                let groups = usize::try_from(a.int("group", 1)).map_err(|_| err(origin, format!("{}: bad group", what())))?;
                let spec = ConvSpec::new(o, kh).stride(stride).dilation(dilation).groups(groups).padding(padding).bias(bias.is_some());
                let y = b.conv2d(&name, tensor(0)?, spec)?;
                weights.insert(format!("{name}.weight"), w);
                if let Some(bias) = bias {
                    weights.insert(format!("{name}.bias"), bias);
                }
                y
            }
            "BatchNormalization" => {
                let y = b.batch_norm(&name, tensor(0)?, a.float("epsilon", 1e-5))?;
                for (i, s) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
                    let t = f32_const(i)?.ok_or_else(|| err(origin, format!("{} lacks `{s}`", what())))?;
                    weights.insert(format!("{name}.{s}"), Tensor { shape: vec![t.data.len()], data: t.data });
                }
                y
            }
            "Relu" => b.relu(&name, tensor(0)?)?,
            "Clip" => {
                let scalar = |i: usize, attr: &str| -> Result<Option<f32>> {
                    if let Some(t) = f32_const(i)? {
                        return t.data.first().copied().map(Some).ok_or_else(|| err(origin, format!("{}: empty bound", what())));
                    }
                    Ok(a.get(attr).map(|x| x.f))
                };
                let lo = scalar(1, "min")?.unwrap_or(f32::NEG_INFINITY);
                let hi = scalar(2, "max")?.unwrap_or(f32::INFINITY);
                match (lo, hi) {
                    (0.0, 6.0) => b.relu6(&name, tensor(0)?)?,
                    (0.0, h) if h == f32::INFINITY => b.relu(&name, tensor(0)?)?,
                    _ => return Err(err(origin, format!("{}: Clip to [{lo}, {hi}] is not supported (only ReLU and ReLU6)", what()))),
                }
            }
            "Sigmoid" => b.sigmoid(&name, tensor(0)?)?,
            "HardSigmoid" => b.hard_sigmoid(&name, tensor(0)?, a.float("alpha", 0.2), a.float("beta", 0.5))?,
            "HardSwish" => b.hard_swish(&name, tensor(0)?)?,
            "Add" | "Mul" => {
                let (x0, x1) = (node.input.first().and_then(|n| tensors.get(n)).copied(), node.input.get(1).and_then(|n| tensors.get(n)).copied());
                match (op, x0, x1) {
                    ("Add", Some(x), Some(y)) => b.add(&name, x, y)?,
                    ("Mul", Some(x), Some(y)) => b.mul(&name, x, y)?,
                    ("Add", Some(x), None) | ("Add", None, Some(x)) => {
                        // A bias after a MatMul (the exported form of a Linear on a tensor
                        // that is not 2-D): folded into the Linear.
                        let c = if x0.is_some() { f32_const(1)? } else { f32_const(0)? };
                        let out = b.shape(x).get(1).copied().unwrap_or(0);
                        match c {
                            Some(bias) if bias.data.len() == out && b.shape(x).len() == 2 && b.set_linear_bias(x) => {
                                let lin = b_node_name(&b, x);
                                weights.insert(format!("{lin}.bias"), Tensor { shape: vec![out], data: bias.data });
                                used_names.remove(&name);
                                tensors.insert(output, x);
                                continue;
                            }
                            _ => return Err(err(origin, format!("{}: adding a constant is supported only as the bias of a preceding MatMul", what()))),
                        }
                    }
                    _ => return Err(err(origin, format!("{}: {op} of a constant is not supported (both inputs must be computed tensors)", what()))),
                }
            }
            "MaxPool" => {
                if node.output.get(1).is_some_and(|m| !m.is_empty()) {
                    return Err(err(origin, format!("{}: the MaxPool indices output is not supported", what())));
                }
                b.max_pool2d(&name, tensor(0)?, pool(false)?)?
            }
            "AveragePool" => b.avg_pool2d(&name, tensor(0)?, pool(true)?)?,
            "GlobalAveragePool" => b.global_avg_pool(&name, tensor(0)?)?,
            "ReduceMean" => {
                let x = tensor(0)?;
                let rank = b.shape(x).len();
                let axes = match i64_const(1)?.or_else(|| a.ints("axes").map(<[i64]>::to_vec)) {
                    Some(v) => v,
                    None => (0..rank as i64).collect(),
                };
                let mut axes: Vec<usize> = axes.iter().map(|&v| axis_of(v, rank)).collect::<Result<_>>()?;
                axes.sort_unstable();
                axes.dedup();
                b.reduce_mean(&name, x, &axes, a.int("keepdims", 1) != 0)?
            }
            "Concat" => {
                let xs: Vec<TensorId> = (0..node.input.len()).map(tensor).collect::<Result<_>>()?;
                let rank = xs.first().map_or(0, |&x| b.shape(x).len());
                b.concat(&name, &xs, axis_of(a.int("axis", 0), rank)?)?
            }
            "Transpose" => {
                let x = tensor(0)?;
                let rank = b.shape(x).len();
                let perm: Vec<usize> = match a.ints("perm") {
                    Some(p) => p.iter().map(|&v| axis_of(v, rank)).collect::<Result<_>>()?,
                    None => (0..rank).rev().collect(),
                };
                b.transpose(&name, x, &perm)?
            }
            "Slice" => {
                let x = tensor(0)?;
                let shape = b.shape(x).to_vec();
                let starts = i64_const(1)?.ok_or_else(|| err(origin, format!("{}: starts must be a constant", what())))?;
                let ends = i64_const(2)?.ok_or_else(|| err(origin, format!("{}: ends must be a constant", what())))?;
                let axes = i64_const(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = i64_const(4)?.unwrap_or_else(|| vec![1; starts.len()]);
                if starts.len() != 1 || ends.len() != 1 || axes.len() != 1 || steps != [1] {
                    return Err(err(origin, format!("{}: slicing one axis with step 1 only (starts {starts:?}, axes {axes:?}, steps {steps:?})", what())));
                }
                let axis = axis_of(axes[0], shape.len())?;
                let (start, end) = clamp_range(starts[0], ends[0], shape[axis]);
                b.slice(&name, x, axis, start, end)?
            }
            "Flatten" => {
                if a.int("axis", 1) != 1 {
                    return Err(err(origin, format!("{}: only Flatten with axis 1 is supported", what())));
                }
                b.flatten(&name, tensor(0)?)?
            }
            "Reshape" => {
                let x = tensor(0)?;
                let shape = b.shape(x).to_vec();
                let target = i64_const(1)?.ok_or_else(|| err(origin, format!("{}: the shape must be an int64 constant", what())))?;
                let target = resolve_reshape(&shape, &target, a.int("allowzero", 0) != 0).map_err(|m| err(origin, format!("{}: {m}", what())))?;
                if target.len() == 2 && shape.len() > 2 && target[0] == 1 {
                    b.flatten(&name, x)?
                } else if target == shape {
                    used_names.remove(&name);
                    tensors.insert(output, x);
                    continue;
                } else {
                    b.reshape(&name, x, &target)?
                }
            }
            "Gemm" | "MatMul" => {
                let gemm = op == "Gemm";
                if gemm && a.int("transA", 0) != 0 {
                    return Err(err(origin, format!("{}: only Gemm with transA=0 is supported", what())));
                }
                let x = tensor(0)?;
                let mut w = f32_const(1)?.ok_or_else(|| err(origin, format!("{}: the weight must be a constant", what())))?;
                let [r, c] = *w.shape.as_slice() else {
                    return Err(err(origin, format!("{}: weight of shape {:?}", what(), w.shape)));
                };
                // edgenet stores [out, in]: Gemm's transB=1 form, MatMul's transposed.
                if !gemm || a.int("transB", 0) == 0 {
                    let mut t = vec![0.0; w.data.len()];
                    for i in 0..r {
                        for j in 0..c {
                            t[j * r + i] = w.data[i * c + j];
                        }
                    }
                    w = Tensor { shape: vec![c, r], data: t };
                }
                let alpha = if gemm { a.float("alpha", 1.0) } else { 1.0 };
                let beta = if gemm { a.float("beta", 1.0) } else { 1.0 };
                if alpha != 1.0 {
                    w.data.iter_mut().for_each(|v| *v *= alpha);
                }
                let out = w.shape[0];
                let bias = if gemm { f32_const(2)? } else { None };
                if w.shape[1] != b.shape(x).get(1).copied().unwrap_or(0) || b.shape(x).len() != 2 {
                    return Err(err(origin, format!("{}: weight {:?} does not fit input {:?}", what(), w.shape, b.shape(x))));
                }
                let y = b.linear(&name, x, out, bias.is_some())?;
                weights.insert(format!("{name}.weight"), w);
                if let Some(bias) = bias {
                    let data = match bias.data.len() {
                        n if n == out => bias.data.iter().map(|v| v * beta).collect(),
                        1 => vec![bias.data[0] * beta; out],
                        n => return Err(err(origin, format!("{}: bias of {n} values for {out} outputs", what()))),
                    };
                    weights.insert(format!("{name}.bias"), Tensor { shape: vec![out], data });
                }
                y
            }
            "Softmax" => {
                let x = tensor(0)?;
                let rank = b.shape(x).len();
                if axis_of(a.int("axis", -1), rank)? != rank - 1 || rank != 2 {
                    return Err(err(origin, format!("{}: softmax over the classes of a [1, N] tensor only", what())));
                }
                b.softmax(&name, x)?
            }
            other => return Err(err(origin, format!("{}: op `{other}` is not supported; edgenet imports {SUPPORTED}", what()))),
        };
        tensors.insert(output, y);
    }
    let outputs = &graph.output;
    let [out] = outputs.as_slice() else {
        return Err(err(origin, format!("edgenet models have exactly one output, this one has {}", outputs.len())));
    };
    let y = *tensors.get(&out.name).ok_or_else(|| err(origin, format!("output `{}` is not computed by any node", out.name)))?;
    let g = b.finish(y)?;
    let metadata: HashMap<&str, &str> = proto.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    let classes = g.output_shape().get(1).copied().unwrap_or(0);
    let preprocess = match metadata.get(meta::PREPROCESS) {
        Some(json) => serde_json::from_str(json).map_err(|e| err(origin, format!("metadata {}: {e}", meta::PREPROCESS)))?,
        None => Preprocess::torchvision(dims[2]),
    };
    let info = ModelInfo {
        arch: metadata.get(meta::ARCH).map_or("imported".to_string(), |s| s.to_string()),
        preprocess,
        labels: metadata.get(meta::LABELS).map(|s| s.to_string()).unwrap_or_else(|| {
            if classes == 1000 {
                "imagenet-1k".into()
            } else {
                format!("{classes} classes")
            }
        }),
    };
    Model::new(info, g, weights).map_err(|e| err(origin, e.to_string()))
}

fn b_node_name(b: &GraphBuilder, t: TensorId) -> String {
    b.node_name(t).to_string()
}

/// `start..end` of an ONNX Slice on an axis of `dim` elements (negative counts from the end,
/// out of range clamps), as a range that may be empty.
fn clamp_range(start: i64, end: i64, dim: usize) -> (usize, usize) {
    let d = dim as i64;
    let norm = |v: i64| if v < 0 { (v + d).max(0) } else { v.min(d) };
    let (s, e) = (norm(start), norm(end));
    (s as usize, e.max(s) as usize)
}

/// The target of an ONNX Reshape with its `0` (copy) and `-1` (infer) entries resolved.
fn resolve_reshape(shape: &[usize], target: &[i64], allowzero: bool) -> std::result::Result<Vec<usize>, String> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*shape.get(i).ok_or_else(|| format!("shape {target:?}: 0 at axis {i} beyond the input's rank"))?),
            t if t > 0 => out.push(usize::try_from(t).map_err(|_| format!("shape {target:?} too large"))?),
            _ => return Err(format!("cannot reshape {shape:?} to {target:?}")),
        }
    }
    let known = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("shape {target:?} too large"))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {shape:?} to {target:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {shape:?} ({total} values) to {target:?}"));
    }
    Ok(out)
}

/// Evaluates a node whose inputs are all constants (or the Shape of a computed tensor) when it
/// is shape arithmetic; `Ok(None)` when the node computes on tensors.
fn fold_constant(
    node: &pb::NodeProto,
    op: &str,
    a: &Attrs,
    consts: &HashMap<String, Const>,
    tensors: &HashMap<String, TensorId>,
    b: &GraphBuilder,
) -> std::result::Result<Option<Const>, String> {
    let ins: Vec<&str> = node.input.iter().map(String::as_str).collect();
    if op == "Shape" {
        let Some(&x) = ins.first() else { return Err("Shape without input".into()) };
        let dims: Vec<i64> = if let Some(&t) = tensors.get(x) {
            b.shape(t).iter().map(|&d| d as i64).collect()
        } else if let Some(Const::F32(t)) = consts.get(x) {
            t.shape.iter().map(|&d| d as i64).collect()
        } else if let Some(Const::I64(v)) = consts.get(x) {
            vec![v.len() as i64]
        } else {
            return Err(format!("input `{x}` is unknown"));
        };
        let r = dims.len() as i64;
        let norm = |v: i64| if v < 0 { (v + r).clamp(0, r) } else { v.min(r) };
        let (s, e) = (norm(a.int("start", 0)), norm(a.get("end").map_or(r, |x| x.i)));
        return Ok(Some(Const::I64(dims[s as usize..e.max(s) as usize].to_vec())));
    }
    if !matches!(op, "Gather" | "Unsqueeze" | "Squeeze" | "Concat" | "Cast" | "Slice" | "Add" | "Sub" | "Mul" | "Div") {
        return Ok(None);
    }
    let vals: Vec<Option<&Const>> = ins.iter().map(|n| if n.is_empty() { None } else { consts.get(*n) }).collect();
    let present = ins.iter().zip(&vals).filter(|(n, _)| !n.is_empty());
    if ins.is_empty() || present.clone().any(|(_, v)| v.is_none()) {
        return Ok(None);
    }
    let i64s = |k: usize| -> Option<&Vec<i64>> {
        match vals.get(k).copied().flatten() {
            Some(Const::I64(v)) => Some(v),
            _ => None,
        }
    };
    let Some(data) = i64s(0) else {
        // Float constants: only a cast to int64 of a shape-like value is arithmetic here.
        return match (op, vals[0]) {
            ("Cast", Some(Const::F32(t))) if a.int("to", 0) == pb::tensor_proto::DataType::Int64 as i64 => {
                Ok(Some(Const::I64(t.data.iter().map(|&v| v as i64).collect())))
            }
            _ => Ok(None),
        };
    };
    let out = match op {
        "Unsqueeze" | "Squeeze" => data.clone(),
        "Cast" => match a.int("to", 0) {
            t if t == pb::tensor_proto::DataType::Int64 as i64 => data.clone(),
            t if t == pb::tensor_proto::DataType::Float as i64 => {
                return Ok(Some(Const::F32(Tensor { shape: vec![data.len()], data: data.iter().map(|&v| v as f32).collect() })))
            }
            t => return Err(format!("Cast of a shape to ONNX type {t}")),
        },
        "Gather" => {
            let idx = i64s(1).ok_or("Gather indices must be int64")?;
            let n = data.len() as i64;
            idx.iter()
                .map(|&i| {
                    let j = if i < 0 { i + n } else { i };
                    usize::try_from(j).ok().and_then(|j| data.get(j).copied()).ok_or_else(|| format!("Gather index {i} out of range for {n} values"))
                })
                .collect::<std::result::Result<Vec<i64>, String>>()?
        }
        "Concat" => {
            let mut v = Vec::new();
            for k in 0..ins.len() {
                v.extend(i64s(k).ok_or("Concat of int64 and float constants")?);
            }
            v
        }
        "Slice" => {
            let (s, e) = (i64s(1).and_then(|v| v.first()).copied(), i64s(2).and_then(|v| v.first()).copied());
            let (Some(s), Some(e)) = (s, e) else { return Err("Slice bounds must be int64 constants".into()) };
            if i64s(4).is_some_and(|st| st.iter().any(|&x| x != 1)) {
                return Err("Slice of a shape with a step other than 1".into());
            }
            let (s, e) = clamp_range(s, e, data.len());
            data[s..e].to_vec()
        }
        _ => {
            let rhs = i64s(1).ok_or("arithmetic on int64 and float constants")?;
            let n = data.len().max(rhs.len());
            let at = |v: &Vec<i64>, i: usize| if v.len() == 1 { v[0] } else { v.get(i).copied().unwrap_or(0) };
            if !(data.len() == rhs.len() || data.len() == 1 || rhs.len() == 1) {
                return Err(format!("{op} of {} and {} values", data.len(), rhs.len()));
            }
            (0..n)
                .map(|i| {
                    let (x, y) = (at(data, i), at(rhs, i));
                    match op {
                        "Add" => x.checked_add(y),
                        "Sub" => x.checked_sub(y),
                        "Mul" => x.checked_mul(y),
                        _ => x.checked_div(y),
                    }
                    .ok_or_else(|| format!("{op} of {x} and {y} overflows or divides by zero"))
                })
                .collect::<std::result::Result<Vec<i64>, String>>()?
        }
    };
    Ok(Some(Const::I64(out)))
}

fn input_dims(input: &pb::ValueInfoProto, origin: &str) -> Result<[usize; 4]> {
    use pb::tensor_shape_proto::dimension::Value;
    let bad = |m: String| err(origin, format!("input `{}`: {m}", input.name));
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(bad("not a tensor".into()));
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(bad(format!("element type {} is not float32", t.elem_type)));
    }
    let dims: Vec<Option<usize>> = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match dims.as_slice() {
        [n, Some(c), Some(h), Some(w)] if n.is_none_or(|n| n == 1) => Ok([1, *c, *h, *w]),
        _ => Err(bad(format!("expected a fixed [1, C, H, W] shape, got {dims:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::tensor_proto::DataType;

    fn message(r: Result<Const>) -> String {
        match r {
            Err(Error::Onnx { message, .. }) => message,
            other => panic!("expected an ONNX error, got {other:?}"),
        }
    }

    /// A constant's data must hold exactly what its dims say: a count that differs is named by
    /// the values it holds, and raw data with bytes left over by its bytes (the shared reader
    /// refuses them; before it, the importer dropped the trailing bytes).
    #[test]
    fn constants_hold_exactly_what_their_dims_say() {
        let t = |data_type: DataType, dims: &[i64], raw: Vec<u8>| pb::TensorProto {
            name: "c".into(),
            data_type: data_type as i32,
            dims: dims.to_vec(),
            raw_data: raw,
            ..Default::default()
        };
        let two: Vec<u8> = [0.5f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(matches!(const_of(&t(DataType::Float, &[2], two.clone()), "m"), Ok(Const::F32(x)) if x.data == [0.5, 2.0] && x.shape == [2]));
        assert_eq!(message(const_of(&t(DataType::Float, &[3], two.clone()), "m")), "tensor `c` has shape [3] but 2 values");
        assert_eq!(message(const_of(&t(DataType::Float, &[2], [&two[..], &[0]].concat()), "m")), "tensor `c` has shape [2] but 9 bytes of raw data");
        assert_eq!(message(const_of(&t(DataType::Float, &[-1], two.clone()), "m")), "tensor `c` has a negative dimension -1");
        assert_eq!(message(const_of(&t(DataType::Int32, &[2], two), "m")), "tensor `c` has ONNX data type 6, edgenet reads float32 and int64");
        let longs = pb::TensorProto { int64_data: vec![1, -1], ..t(DataType::Int64, &[2], vec![]) };
        assert!(matches!(const_of(&longs, "m"), Ok(Const::I64(v)) if v == [1, -1]));
        assert_eq!(message(const_of(&pb::TensorProto { dims: vec![1], ..longs }, "m")), "tensor `c` has shape [1] but 2 values");
    }
}
