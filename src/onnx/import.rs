//! Import of the ONNX op subset that edgenet writes and `torch.onnx.export` produces for
//! torchvision classifiers (Conv, BatchNormalization, Relu, Clip, Add, MaxPool,
//! GlobalAveragePool, Flatten, Reshape, Gemm, Softmax, Constant, Identity) into the graph IR.

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb;

use super::meta;
use crate::error::{Error, Result};
use crate::frames::preprocess::Preprocess;
use crate::graph::{ConvSpec, GraphBuilder, Padding, Tensor, TensorId, Weights};
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
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err(origin, format!("tensor `{name}` is too large")))?;
    let bad_len = |got: usize| err(origin, format!("tensor `{name}` has shape {dims:?} but {got} values"));
    if t.data_type == DataType::Float as i32 {
        let data: Vec<f32> = if !t.raw_data.is_empty() {
            t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            t.float_data.clone()
        };
        if data.len() != n {
            return Err(bad_len(data.len()));
        }
        Ok(Const::F32(Tensor { shape: dims, data }))
    } else if t.data_type == DataType::Int64 as i32 {
        let data: Vec<i64> = if !t.raw_data.is_empty() {
            t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
        } else {
            t.int64_data.clone()
        };
        if data.len() != n {
            return Err(bad_len(data.len()));
        }
        Ok(Const::I64(data))
    } else {
        Err(err(origin, format!("tensor `{name}` has ONNX data type {}, edgenet reads float32 and int64", t.data_type)))
    }
}

struct Attrs<'a>(&'a [pb::AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
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
        let a = Attrs(&node.attribute);
        let op = node.op_type.as_str();
        let what = || format!("node #{index} `{}` ({op})", node.name);
        let output = node.output.first().ok_or_else(|| err(origin, format!("{} has no output", what())))?.clone();
        if op == "Constant" {
            let t = a.get("value").and_then(|v| v.t.as_ref()).ok_or_else(|| err(origin, format!("{} has no tensor `value`", what())))?;
            consts.insert(output, const_of(t, origin)?);
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
        if op == "Identity" {
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
                let stride = all_equal(&a.ints("strides").unwrap_or(vec![1, 1]))
                    .ok_or_else(|| err(origin, format!("{}: unequal strides are not supported", what())))?;
                let dilation = all_equal(&a.ints("dilations").unwrap_or(vec![1, 1]))
                    .ok_or_else(|| err(origin, format!("{}: unequal dilations are not supported", what())))?;
                let padding = match a.string("auto_pad").as_deref() {
                    None | Some("NOTSET") | Some("") => {
                        let p = a.ints("pads").unwrap_or(vec![0; 4]);
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
            "Add" => b.add(&name, tensor(0)?, tensor(1)?)?,
            "MaxPool" => {
                let k = all_equal(&a.ints("kernel_shape").unwrap_or_default());
                let s = all_equal(&a.ints("strides").unwrap_or(vec![1, 1]));
                let p = all_equal(&a.ints("pads").unwrap_or(vec![0; 4]));
                let plain = a.int("ceil_mode", 0) == 0
                    && a.string("auto_pad").is_none_or(|s| s.is_empty() || s == "NOTSET")
                    && a.ints("dilations").is_none_or(|d| d.iter().all(|&x| x == 1));
                match (k, s, p, plain) {
                    (Some(k), Some(s), Some(p), true) => b.max_pool(&name, tensor(0)?, k, s, p)?,
                    _ => return Err(err(origin, format!("{}: only square, symmetric, floor-mode max pooling is supported", what()))),
                }
            }
            "GlobalAveragePool" => b.global_avg_pool(&name, tensor(0)?)?,
            "Flatten" => {
                if a.int("axis", 1) != 1 {
                    return Err(err(origin, format!("{}: only Flatten with axis 1 is supported", what())));
                }
                b.flatten(&name, tensor(0)?)?
            }
            "Reshape" => {
                let x = tensor(0)?;
                let total: usize = b.shape(x).iter().product();
                let target = match constant(1)? {
                    Some(Const::I64(v)) => v.clone(),
                    _ => return Err(err(origin, format!("{}: the shape must be an int64 constant", what()))),
                };
                let flat = matches!(target.as_slice(), [1, -1] | [-1, _] | [1, _] | [0, -1]) && target.get(1).is_none_or(|&v| v == -1 || v == total as i64);
                if !flat {
                    return Err(err(origin, format!("{}: only a reshape to [1, N] is supported, got {target:?}", what())));
                }
                b.flatten(&name, x)?
            }
            "Gemm" => {
                if a.int("transA", 0) != 0 || a.float("alpha", 1.0) != 1.0 || a.float("beta", 1.0) != 1.0 {
                    return Err(err(origin, format!("{}: only Gemm with transA=0, alpha=beta=1 is supported", what())));
                }
                let mut w = f32_const(1)?.ok_or_else(|| err(origin, format!("{} has no weight", what())))?;
                let [r, c] = *w.shape.as_slice() else {
                    return Err(err(origin, format!("{}: weight of shape {:?}", what(), w.shape)));
                };
                if a.int("transB", 0) == 0 {
                    let mut t = vec![0.0; w.data.len()];
                    for i in 0..r {
                        for j in 0..c {
                            t[j * r + i] = w.data[i * c + j];
                        }
                    }
                    w = Tensor { shape: vec![c, r], data: t };
                }
                let out = w.shape[0];
                let bias = f32_const(2)?;
                let y = b.linear(&name, tensor(0)?, out, bias.is_some())?;
                if w.shape[1] != b.shape(tensor(0)?)[1] {
                    return Err(err(origin, format!("{}: weight {:?} does not fit input {:?}", what(), w.shape, b.shape(tensor(0)?))));
                }
                weights.insert(format!("{name}.weight"), w);
                if let Some(bias) = bias {
                    if bias.data.len() != out {
                        return Err(err(origin, format!("{}: bias of {} values for {out} outputs", what(), bias.data.len())));
                    }
                    weights.insert(format!("{name}.bias"), Tensor { shape: vec![out], data: bias.data });
                }
                y
            }
            "Softmax" => b.softmax(&name, tensor(0)?)?,
            other => {
                return Err(err(
                    origin,
                    format!("{}: op `{other}` is not supported; edgenet imports Conv, BatchNormalization, Relu, Clip, Add, MaxPool, GlobalAveragePool, Flatten, Reshape, Gemm, Softmax, Constant and Identity", what()),
                ))
            }
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
