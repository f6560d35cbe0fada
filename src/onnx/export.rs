//! Export of a [`Model`] to ONNX bytes.

use prost::Message;
use tract_onnx::pb;

use super::{meta, INPUT_NAME, IR_VERSION, OPSET, OUTPUT_LOGITS, OUTPUT_PROBABILITIES};
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::model::Model;

/// Export options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    /// Fold BatchNorm into the convs first (exact in f64, rounded once to f32).
    pub fold_bn: bool,
}

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
const CLIP_MIN: &str = "edgenet.clip_min";
const CLIP_MAX: &str = "edgenet.clip_max";

pub(crate) fn attr_ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

pub(crate) fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::Int as i32, i: v, ..Default::default() }
}

pub(crate) fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::Float as i32, f: v, ..Default::default() }
}

/// A float initializer.
pub(crate) fn tensor_proto(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A tensor type with a fixed shape.
pub(crate) fn value_info(name: &str, elem_type: i32, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = pb::TensorShapeProto { dim: dims.iter().map(|&d| Dimension { value: Some(Value::DimValue(d as i64)), ..Default::default() }).collect() };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type, shape: Some(shape) })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `metadata_props` entries describing `model`.
pub(crate) fn metadata(model: &Model, bn_folded: bool) -> Result<Vec<pb::StringStringEntryProto>> {
    let pre = serde_json::to_string(&model.info.preprocess).map_err(|e| Error::Config(format!("cannot serialise preprocessing: {e}")))?;
    let kv = |k: &str, v: String| pb::StringStringEntryProto { key: k.into(), value: v };
    Ok(vec![
        kv(meta::ARCH, model.info.arch.clone()),
        kv(meta::PREPROCESS, pre),
        kv(meta::LABELS, model.info.labels.clone()),
        kv(meta::BN_FOLDED, bn_folded.to_string()),
    ])
}

/// Name of the exported graph output: `probabilities` after a softmax, else `logits`.
pub fn output_name(g: &Graph) -> &'static str {
    if matches!(g.node(g.output()).op, Op::Softmax) {
        OUTPUT_PROBABILITIES
    } else {
        OUTPUT_LOGITS
    }
}

/// The ONNX tensor name of every node's output in an export of `g`: `input`, node names,
/// and the output name for the last node.
pub fn tensor_names(g: &Graph) -> Vec<String> {
    g.nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i == 0 {
                INPUT_NAME.to_string()
            } else if i == g.output().index() {
                output_name(g).to_string()
            } else {
                n.name.clone()
            }
        })
        .collect()
}

/// An int8 initializer.
pub(crate) fn tensor_proto_i8(name: &str, dims: &[usize], data: &[i8]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Int8 as i32,
        raw_data: data.iter().map(|&v| v as u8).collect(),
        ..Default::default()
    }
}

/// An int64 initializer.
pub(crate) fn tensor_proto_i64(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int32 initializer.
pub(crate) fn tensor_proto_i32(name: &str, dims: &[usize], data: &[i32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Int32 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An attribute list helper for the quantized export.
pub(crate) fn conv_attrs(c: &crate::graph::Conv2d) -> Vec<pb::AttributeProto> {
    vec![
        attr_ints("kernel_shape", &c.kernel),
        attr_ints("strides", &c.stride),
        attr_ints("pads", &c.pads),
        attr_ints("dilations", &c.dilation),
        attr_int("group", c.groups as i64),
    ]
}

/// Attributes of a pooling node (`avg`: AveragePool, which has `count_include_pad`).
pub(crate) fn pool_attrs(p: &crate::graph::Pool2d, avg: bool) -> Vec<pb::AttributeProto> {
    let mut v = vec![attr_ints("kernel_shape", &p.kernel), attr_ints("strides", &p.stride), attr_ints("pads", &p.pads)];
    if p.ceil_mode {
        v.push(attr_int("ceil_mode", 1));
    }
    if avg && p.count_include_pad {
        v.push(attr_int("count_include_pad", 1));
    }
    v
}

/// How one IR node that is not a parameterised layer is written in ONNX: op type,
/// attributes, and the int64 constants it takes as extra inputs (name suffix, values).
/// `None` for the ops that need more than one ONNX node or parameters.
pub(crate) fn simple_node(op: &Op, shape: &[usize]) -> Option<(&'static str, Vec<pb::AttributeProto>, Vec<(&'static str, Vec<i64>)>)> {
    let i64s = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
    Some(match op {
        Op::Relu => ("Relu", vec![], vec![]),
        Op::Add => ("Add", vec![], vec![]),
        Op::MaxPool(p) => ("MaxPool", pool_attrs(p, false), vec![]),
        Op::AvgPool(p) => ("AveragePool", pool_attrs(p, true), vec![]),
        Op::GlobalAvgPool => ("GlobalAveragePool", vec![], vec![]),
        Op::Flatten => ("Flatten", vec![attr_int("axis", 1)], vec![]),
        Op::Softmax => ("Softmax", vec![attr_int("axis", 1)], vec![]),
        Op::Sigmoid => ("Sigmoid", vec![], vec![]),
        Op::HardSigmoid { alpha, beta } => ("HardSigmoid", vec![attr_float("alpha", *alpha), attr_float("beta", *beta)], vec![]),
        Op::Mul => ("Mul", vec![], vec![]),
        Op::Concat { axis } => ("Concat", vec![attr_int("axis", *axis as i64)], vec![]),
        Op::ReduceMean { axes, keepdims } => ("ReduceMean", vec![attr_ints("axes", axes), attr_int("keepdims", i64::from(*keepdims))], vec![]),
        Op::Reshape => ("Reshape", vec![], vec![("shape", i64s(shape))]),
        Op::Transpose { perm } => ("Transpose", vec![attr_ints("perm", perm)], vec![]),
        Op::Slice { axis, start, end } => ("Slice", vec![], vec![("starts", i64s(&[*start])), ("ends", i64s(&[*end])), ("axes", i64s(&[*axis]))]),
        _ => return None,
    })
}

/// Writes an [`Op::HardSwish`] at opset 13 (which has no HardSwish): `x · HardSigmoid(x)`
/// with PyTorch's alpha 1/6, beta 1/2, as `torch.onnx.export` writes it.
pub(crate) fn hard_swish_nodes(name: &str, x: &str, out: &str) -> [pb::NodeProto; 2] {
    let hs = format!("{name}/hardsigmoid");
    [
        pb::NodeProto {
            name: hs.clone(),
            op_type: "HardSigmoid".into(),
            input: vec![x.into()],
            output: vec![hs.clone()],
            attribute: vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)],
            ..Default::default()
        },
        pb::NodeProto { name: name.into(), op_type: "Mul".into(), input: vec![x.into(), hs], output: vec![out.into()], ..Default::default() },
    ]
}

/// Wraps a graph into an edgenet `ModelProto`: IR version, opset 13, producer, metadata.
pub(crate) fn model_proto(graph: pb::GraphProto, doc_string: String, metadata_props: Vec<pb::StringStringEntryProto>) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "edgenet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string,
        graph: Some(graph),
        metadata_props,
        ..Default::default()
    }
}

/// Builds the ONNX `ModelProto` of `model`.
///
/// # Errors
/// A weight the graph needs is missing (excluded by [`Model::new`]).
pub fn to_proto(model: &Model, opts: &ExportOptions) -> Result<pb::ModelProto> {
    let folded;
    let model = if opts.fold_bn {
        folded = model.fold_batch_norms()?;
        &folded
    } else {
        model
    };
    let g = &model.graph;
    let out_name = output_name(g);
    let names = tensor_names(g);
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut need_clip = false;
    for (i, n) in g.nodes().iter().enumerate().skip(1) {
        let mut inputs: Vec<String> = n.inputs.iter().map(|t| names[t.index()].clone()).collect();
        for p in n.params() {
            let t = model.weights.require(&p.key)?;
            initializers.push(tensor_proto(&p.key, &t.shape, &t.data));
        }
        let param_keys: Vec<String> = n.params().into_iter().map(|p| p.key).collect();
        let (op_type, attrs) = match &n.op {
            Op::Input => continue,
            Op::Conv2d(c) => ("Conv", conv_attrs(c)),
            Op::BatchNorm { eps, .. } => ("BatchNormalization", vec![attr_float("epsilon", *eps)]),
            Op::Relu6 => {
                need_clip = true;
                inputs.push(CLIP_MIN.into());
                inputs.push(CLIP_MAX.into());
                ("Clip", vec![])
            }
            Op::Linear { .. } => ("Gemm", vec![attr_int("transB", 1)]),
            Op::HardSwish => {
                nodes.extend(hard_swish_nodes(&n.name, &inputs[0], &names[i]));
                continue;
            }
            op => {
                let Some((op_type, attrs, consts)) = simple_node(op, &n.shape) else {
                    return Err(Error::Config(format!("{}: no ONNX form for {}", n.name, op.kind())));
                };
                for (suffix, values) in consts {
                    let key = format!("{}.{suffix}", n.name);
                    initializers.push(tensor_proto_i64(&key, &values));
                    inputs.push(key);
                }
                (op_type, attrs)
            }
        };
        inputs.extend(param_keys);
        nodes.push(pb::NodeProto {
            name: n.name.clone(),
            op_type: op_type.into(),
            input: inputs,
            output: vec![names[i].clone()],
            attribute: attrs,
            ..Default::default()
        });
    }
    if need_clip {
        initializers.push(tensor_proto(CLIP_MIN, &[], &[0.0]));
        initializers.push(tensor_proto(CLIP_MAX, &[], &[6.0]));
    }
    let graph = pb::GraphProto {
        name: model.info.arch.clone(),
        node: nodes,
        initializer: initializers,
        input: vec![value_info(INPUT_NAME, FLOAT, g.input_shape())],
        output: vec![value_info(out_name, FLOAT, g.output_shape())],
        ..Default::default()
    };
    Ok(model_proto(graph, format!("{} exported by edgenet", model.info.arch), metadata(model, opts.fold_bn)?))
}

/// Exports `model` as ONNX bytes: opset 13, input `input` `[1, 3, H, W]` f32, output `logits`
/// (`probabilities` after a softmax), named initializers, metadata in `metadata_props`.
///
/// # Errors
/// As [`to_proto`].
pub fn export(model: &Model, opts: &ExportOptions) -> Result<Vec<u8>> {
    Ok(to_proto(model, opts)?.encode_to_vec())
}
