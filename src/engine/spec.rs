//! The ONNX side of edgenet's int8 path: the constants of the quantized nodes of the ONNX file
//! (`QLinearConv`, `QLinearMatMul`, `QuantizeLinear`, `DequantizeLinear`), by output tensor
//! name, which is how [`super::rewrite`] finds the nodes tract made of them. They are read with
//! [`crate::onnx::proto`]'s readers, which return values only when a tensor's data holds
//! exactly what its dims say; the engine validates every initializer before
//! (`onnx::validate`), so those checks only keep the readers correct on their own.
//!
//! The ONNX file is untouched. A convolution or matmul the kernels do not cover (non-zero weight
//! zero point, uint8, `auto_pad`, constants that are not initializers, constants whose data
//! disagree with their dims) is returned with the reason, and left to tract; so is a quantizer
//! whose scale and zero point are not one finite positive f32 and one int8 (without a reason).

use std::collections::HashMap;

use tract_onnx::pb;

use crate::onnx::proto::{initializers, read_f32, read_i32, read_i8, scalar, Attrs};

/// A quantized convolution's constants, read from the ONNX file.
#[derive(Debug, Clone)]
pub(crate) struct QConvSpec {
    /// Weight dims `[m, cin/group, kh, kw]`; the weights themselves are read from tract's model
    /// (its constant) when the op is built, so that they are not held twice while loading.
    pub(super) w_dims: [usize; 4],
    pub(super) bias: Vec<i32>,
    pub(super) x_zp: i8,
    pub(super) y_zp: i8,
    pub(super) scale: Vec<f32>,
    pub(super) group: usize,
    pub(super) strides: (usize, usize),
    pub(super) dilations: (usize, usize),
    pub(super) pads: [usize; 4],
    /// A `QLinearMatMul` `[1, K] × [K, N]`, run as a 1×1 convolution over one position.
    pub(super) matmul: bool,
}

/// `QuantizeLinear` or `DequantizeLinear` (`op_type`) nodes of `proto` with a scalar f32 scale and int8 zero point, by output
/// tensor name: `(scale, zero_point)`.
pub(crate) fn collect_quantize(proto: &pb::ModelProto, op_type: &str) -> HashMap<String, (f32, i8)> {
    let mut out = HashMap::new();
    let Some(graph) = proto.graph.as_ref() else { return out };
    let inits = initializers(graph);
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

/// The `QLinearConv` and `QLinearMatMul` nodes of `proto` that edgenet's kernels can run, by output tensor name;
/// with the reason for each one they cannot.
pub(crate) fn collect(proto: &pb::ModelProto) -> (HashMap<String, QConvSpec>, Vec<(String, String)>) {
    let mut specs = HashMap::new();
    let mut skipped = Vec::new();
    let Some(graph) = proto.graph.as_ref() else { return (specs, skipped) };
    let inits = initializers(graph);
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
        inits.get(name.as_str()).copied().ok_or(format!("input `{name}` is not an initializer"))
    };
    let a_scale = scalar(read_f32(input(1)?)).ok_or("a_scale is not one f32")?;
    let a_zp = scalar(read_i8(input(2)?)).ok_or("a_zero_point is not one int8")?;
    let bt = input(3)?;
    if bt.data_type != pb::tensor_proto::DataType::Int8 as i32 {
        return Err("b is not int8".into());
    }
    let [k, n] = <[i64; 2]>::try_from(bt.dims.as_slice()).map_err(|_| "b is not 2-D")?;
    let (k, n) = (k as usize, n as usize);
    let b_scale = read_f32(input(4)?).map_err(|_| "b_scale is not f32")?;
    let b_zp = read_i8(input(5)?).map_err(|_| "b_zero_point is not int8")?;
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
        inits.get(name.as_str()).copied().ok_or(format!("input `{name}` is not an initializer"))
    };
    let attrs = Attrs::of(node);
    if attrs.get("auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
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
    let w_scale = read_f32(input(4)?).map_err(|_| "w_scale is not f32")?;
    let w_zp = read_i8(input(5)?).map_err(|_| "w_zero_point is not int8")?;
    if w_zp.iter().any(|&z| z != 0) {
        return Err("non-zero weight zero point".into());
    }
    let y_scale = scalar(read_f32(input(6)?)).ok_or("y_scale is not one f32")?;
    let y_zp = scalar(read_i8(input(7)?)).ok_or("y_zero_point is not one int8")?;
    let bias = match node.input.get(8).filter(|n| !n.is_empty()) {
        Some(_) => read_i32(input(8)?).map_err(|_| "bias is not int32")?,
        None => vec![0; cout],
    };
    if bias.len() != cout || !(w_scale.len() == 1 || w_scale.len() == cout) {
        return Err(format!("{cout} output channels, {} biases, {} weight scales", bias.len(), w_scale.len()));
    }
    // onnxruntime's order: (x_scale · w_scale) / y_scale, in f32.
    let scale = (0..cout).map(|c| x_scale * w_scale[if w_scale.len() == 1 { 0 } else { c }] / y_scale).collect();
    let ints = |name: &str, default: Vec<i64>| attrs.ints(name).map_or(default, <[i64]>::to_vec);
    let group = attrs.int("group", 1) as usize;
    let strides = ints("strides", vec![1, 1]);
    let dilations = ints("dilations", vec![1, 1]);
    let pads = ints("pads", vec![0; 4]);
    if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 || pads.iter().chain(&strides).chain(&dilations).any(|&v| v < 0) {
        return Err("not a 2-D convolution".into());
    }
    if let Some(ks) = attrs.ints("kernel_shape") {
        if ks.iter().map(|&v| v as usize).ne(w_dims[2..].iter().copied()) {
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
