//! Emission of the int8 ONNX model in the form tract runs with integer kernels: convs as
//! QLinearConv (int8 weights, per output channel or per tensor; int32 bias), ReLU/ReLU6 folded
//! into the output range, the classifier as QLinearMatMul; MaxPool, Flatten, Reshape,
//! Transpose and Slice directly on int8 (they move values without changing them); Concat on
//! int8 with one scale (a conv read only by the concat writes its output with the concat's
//! parameters; any other input is requantized); residual Add, averaging, the sigmoid family,
//! products and anything else through DequantizeLinear → f32 op → QuantizeLinear, each such
//! layer listed with its reason in [`Emitted::float_layers`].

use prost::Message;
use tract_onnx::pb;

use super::params::{quantize_bias, QParams};
use crate::error::{Error, Result};
use crate::graph::{Conv2d, Op};
use crate::model::Model;
use crate::onnx::{
    attr_float, attr_int, conv_attrs, hard_swish_nodes, metadata, model_proto, output_name, pool_attrs, simple_node, tensor_proto, tensor_proto_i32,
    tensor_proto_i64, tensor_proto_i8, value_info, INPUT_NAME,
};

/// One int8 tensor of the quantized model, with the f32 node it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    /// Node of the (equalized, folded) f32 graph whose output this tensor represents.
    pub node: String,
    /// Op kind of that node.
    pub op: &'static str,
    /// Name of the int8 tensor in the quantized file.
    pub tensor: String,
    /// Its quantization parameters.
    pub params: QParams,
}

/// A layer of the quantized model that computes in f32, between DequantizeLinear and
/// QuantizeLinear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FloatLayer {
    /// Node of the (folded) f32 graph.
    pub node: String,
    /// Its op kind.
    pub op: &'static str,
    /// Why it is not int8.
    pub reason: &'static str,
}

/// Why an op of the IR runs in f32 in the int8 model (for ops that do).
pub fn float_reason(op: &Op) -> &'static str {
    match op {
        Op::Add => "sum of two int8 tensors with different scales",
        Op::Mul => "product of two activations",
        Op::GlobalAvgPool | Op::ReduceMean { .. } | Op::AvgPool(_) => "an average rounded to int8 would not be exact",
        Op::Sigmoid | Op::HardSigmoid { .. } | Op::HardSwish => "non-linear activation, not an int8 output range",
        Op::Relu | Op::Relu6 => "activation not after a conv it could be folded into (or its input has other readers)",
        Op::BatchNorm { .. } => "BatchNorm not after a conv, so not folded into weights",
        Op::Softmax => "probabilities at the output",
        Op::Concat { .. } => "every reader computes in f32",
        _ => "input only available in f32",
    }
}

/// The reason recorded for a residual sum whose output is quantized.
const QADD_REASON: &str = "sum of two int8 tensors with different scales: f32 in the file, one int8 pass in edgenet's engine";

/// The reason recorded for an element-wise function of one int8 tensor.
const LUT_REASON: &str = "function of one int8 tensor: f32 in the file, one int8 lookup table in edgenet's engine";

/// What the emitter produced.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// Layers that compute in f32 between DequantizeLinear and QuantizeLinear, with why.
    pub float_layers: Vec<FloatLayer>,
    /// Concat inputs requantized to the concat's scale.
    pub requantized_concat_inputs: usize,
    /// The int8 ONNX file.
    pub bytes: Vec<u8>,
    /// Every int8 tensor produced by a quantized layer, in graph order.
    pub tensors: Vec<QuantTensor>,
    /// Biases that saturated int32.
    pub bias_saturations: usize,
    /// Quantization step of the final int8 layer's output (the logits' resolution).
    pub output_step: f32,
}

/// How weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightScheme {
    /// One scale per tensor instead of one per output channel.
    pub per_tensor: bool,
}

const F32: i32 = pb::tensor_proto::DataType::Float as i32;

#[derive(Debug, Clone)]
struct QT {
    name: String,
    p: QParams,
}

struct Emitter<'a> {
    model: &'a Model,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    q: Vec<Option<QT>>,
    f: Vec<Option<String>>,
    params: &'a [QParams],
    tensors: Vec<QuantTensor>,
    float_layers: Vec<FloatLayer>,
}

fn node(op: &str, name: &str, inputs: Vec<String>, output: &str, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto { op_type: op.into(), name: name.into(), input: inputs, output: vec![output.into()], attribute, ..Default::default() }
}

/// Symmetric int8 weight scales of a tensor `[O, …]`: per output channel, or one per tensor
/// repeated `O` times.
pub fn weight_scales(w: &[f32], out_channels: usize, per_tensor: bool) -> Vec<f32> {
    let per = w.len() / out_channels.max(1);
    if per_tensor {
        let m = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        vec![QParams::symmetric(m).scale; out_channels]
    } else {
        (0..out_channels).map(|o| QParams::symmetric(w[o * per..(o + 1) * per].iter().fold(0f32, |m, v| m.max(v.abs()))).scale).collect()
    }
}

/// Quantizes `w` `[O, …]` with one scale per output channel, to −127..=127.
pub fn quantize_with_scales(w: &[f32], scales: &[f32]) -> Vec<i8> {
    let per = w.len() / scales.len().max(1);
    w.iter().enumerate().map(|(i, &v)| super::params::quantize(v, scales[i / per], 0).max(-127)).collect()
}

/// Quantizes a conv weight `[O, …]` per output channel (or per tensor), symmetric int8.
pub fn quantize_weights(w: &[f32], out_channels: usize, per_tensor: bool) -> (Vec<i8>, Vec<f32>) {
    let scales = weight_scales(w, out_channels, per_tensor);
    (quantize_with_scales(w, &scales), scales)
}

impl Emitter<'_> {
    fn scalar(&mut self, name: &str, p: QParams) -> (String, String) {
        let (s, z) = (format!("{name}.scale"), format!("{name}.zero_point"));
        if !self.inits.iter().any(|t| t.name == s) {
            self.inits.push(tensor_proto(&s, &[], &[p.scale]));
            self.inits.push(tensor_proto_i8(&z, &[], &[p.zero_point]));
        }
        (s, z)
    }

    fn quant_of(&mut self, i: usize) -> QT {
        if let Some(q) = &self.q[i] {
            return q.clone();
        }
        let name = self.model.graph.nodes()[i].name.clone();
        // Every node gets an int8 or an f32 form when it is emitted, before any consumer asks
        // (the input starts with its f32 form), so `f` is set whenever `q` is not.
        let f = self.f[i].clone().unwrap_or_else(|| INPUT_NAME.to_string());
        let p = self.params[i];
        let (s, z) = self.scalar(&format!("{name}_q"), p);
        let out = format!("{name}_q");
        self.nodes.push(node("QuantizeLinear", &format!("{name}/quantize"), vec![f, s, z], &out, vec![]));
        let qt = QT { name: out, p };
        self.record(i, &qt);
        self.q[i] = Some(qt.clone());
        qt
    }

    fn float_of(&mut self, i: usize) -> String {
        if let Some(f) = &self.f[i] {
            return f.clone();
        }
        let qt = self.quant_of(i);
        let name = &self.model.graph.nodes()[i].name;
        let out = format!("{name}_dq");
        let (s, z) = self.scalar(&qt.name, qt.p);
        self.nodes.push(node("DequantizeLinear", &format!("{name}/dequantize"), vec![qt.name.clone(), s, z], &out, vec![]));
        self.f[i] = Some(out.clone());
        out
    }

    fn float_layer(&mut self, i: usize) {
        let n = &self.model.graph.nodes()[i];
        self.float_layers.push(FloatLayer { node: n.name.clone(), op: n.op.kind(), reason: float_reason(&n.op) });
    }

    /// Writes node `i`'s op (one ONNX node, see [`simple_node`]) on `ins` to `out`, with the
    /// int64 constants it takes as initializers.
    fn push_simple(&mut self, i: usize, mut ins: Vec<String>, out: &str) -> Result<()> {
        let nd = &self.model.graph.nodes()[i];
        let (op_type, attrs, consts) =
            simple_node(&nd.op, &nd.shape).ok_or_else(|| Error::Config(format!("{}: {} cannot be quantized", nd.name, nd.op.kind())))?;
        for (suffix, values) in consts {
            let key = format!("{}.{suffix}", nd.name);
            self.inits.push(tensor_proto_i64(&key, &values));
            ins.push(key);
        }
        self.nodes.push(node(op_type, &nd.name, ins, out, attrs));
        Ok(())
    }

    /// `node`'s op in f32 on the f32 forms of its inputs.
    fn float_op(&mut self, i: usize) -> Result<()> {
        let nd = &self.model.graph.nodes()[i];
        let name = nd.name.clone();
        let ins: Vec<String> = nd.inputs.iter().map(|t| t.index()).collect::<Vec<_>>().into_iter().map(|t| self.float_of(t)).collect();
        let out = format!("{name}_f");
        let nd = &self.model.graph.nodes()[i];
        if nd.op == Op::HardSwish {
            self.nodes.extend(hard_swish_nodes(&name, &ins[0], &out));
        } else {
            self.push_simple(i, ins, &out)?;
        }
        self.f[i] = Some(out);
        self.float_layer(i);
        Ok(())
    }

    fn record(&mut self, i: usize, qt: &QT) {
        let n = &self.model.graph.nodes()[i];
        self.tensors.push(QuantTensor { node: n.name.clone(), op: n.op.kind(), tensor: qt.name.clone(), params: qt.p });
    }
}

/// Emits the int8 model.
///
/// `params[i]` are the activation parameters of node `i`'s output; `act_of[i]` names the
/// ReLU/ReLU6 folded into node `i`'s output range; `input_means[i]`, when given, are the
/// per-channel means of conv `i`'s input for bias correction.
///
/// # Errors
/// Weights missing from the model, or an op edgenet cannot quantize.
pub fn emit(model: &Model, params: &[QParams], input_means: &[Option<Vec<f32>>], scheme: WeightScheme, origin_meta: &[(String, String)]) -> Result<Emitted> {
    let g = &model.graph;
    let n = g.nodes().len();
    let consumers = g.consumer_counts();
    // Activations folded into their producer's output range.
    let mut fused_into: Vec<Option<usize>> = vec![None; n];
    let mut act_of: Vec<Option<usize>> = vec![None; n];
    for (i, node) in g.nodes().iter().enumerate() {
        if matches!(node.op, Op::Relu | Op::Relu6) {
            let p = node.inputs[0].index();
            if matches!(g.nodes()[p].op, Op::Conv2d(_) | Op::Add) && consumers[p] == 1 && p != g.output().index() {
                fused_into[i] = Some(p);
                act_of[p] = Some(i);
            }
        }
    }
    // Nodes all of whose readers compute in f32 (a concat before DenseNet's BatchNorm): a
    // concat there is cheaper in f32 than requantizing its inputs to one scale.
    let mut float_readers = vec![true; n];
    float_readers[g.output().index()] = false;
    for (j, nd) in g.nodes().iter().enumerate() {
        let f32_reader = matches!(nd.op, Op::BatchNorm { .. } | Op::Add | Op::Mul | Op::GlobalAvgPool | Op::ReduceMean { .. } | Op::AvgPool(_) | Op::Softmax)
            || (matches!(nd.op, Op::Relu | Op::Relu6) && fused_into[j].is_none());
        if !f32_reader {
            for t in &nd.inputs {
                float_readers[t.index()] = false;
            }
        }
    }
    let mut out_params: Vec<QParams> = (0..n).map(|i| params[act_of[i].unwrap_or(i)]).collect();
    // Concat runs on int8 with one scale: a conv (with its folded activation) read only by the
    // concat writes its output with the concat's parameters, so it needs no requantization.
    for (i, nd) in g.nodes().iter().enumerate() {
        if matches!(nd.op, Op::Concat { .. }) && !float_readers[i] {
            for t in nd.inputs.iter().map(|t| t.index()) {
                let src = fused_into[t].unwrap_or(t);
                if consumers[t] == 1 && matches!(g.nodes()[src].op, Op::Conv2d(_)) && t != g.output().index() {
                    out_params[src] = params[i];
                    out_params[t] = params[i];
                }
            }
        }
    }
    let mut e = Emitter { model, nodes: vec![], inits: vec![], q: vec![None; n], f: vec![None; n], params: &out_params, tensors: vec![], float_layers: vec![] };
    let mut requantized_concat_inputs = 0;
    // Element-wise functions of one int8 tensor — an activation, or `x · act(x)` (SiLU, and
    // hard swish as PyTorch exports it) — are written as DequantizeLinear → f32 ops →
    // QuantizeLinear with nothing else reading the f32 values, which the engine turns into one
    // int8 lookup table. `gate[a]`: activation `a` is the `act(x)` of such a product.
    let is_act = |op: &Op| matches!(op, Op::Sigmoid | Op::HardSigmoid { .. } | Op::HardSwish);
    let mut gate = vec![false; n];
    let mut self_gated = vec![false; n];
    for (i, nd) in g.nodes().iter().enumerate() {
        if nd.op == Op::Mul {
            let (a, b) = (nd.inputs[0].index(), nd.inputs[1].index());
            for (x, act) in [(a, b), (b, a)] {
                let an = &g.nodes()[act];
                if is_act(&an.op) && an.inputs[0].index() == x && consumers[act] == 1 && an.shape == nd.shape {
                    gate[act] = true;
                    self_gated[i] = true;
                }
            }
        }
    }
    e.f[0] = Some(INPUT_NAME.to_string());
    let mut bias_saturations = 0;
    let mut output_step = 0.0;
    for (i, nd) in g.nodes().iter().enumerate().skip(1) {
        let name = nd.name.clone();
        let inp = |k: usize| nd.inputs[k].index();
        match &nd.op {
            Op::Input => {}
            Op::Conv2d(c) => {
                let x = e.quant_of(inp(0));
                let (wq, ws, bq, sat) = conv_weights(model, &name, c, x.p, input_means[i].as_deref(), scheme)?;
                bias_saturations += sat;
                let p = out_params[i];
                let wname = format!("{name}.weight_q");
                e.inits.push(tensor_proto_i8(&wname, &c.weight_shape(), &wq));
                let (wsn, wzn) = (format!("{name}.weight_scale"), format!("{name}.weight_zero_point"));
                if scheme.per_tensor {
                    e.inits.push(tensor_proto(&wsn, &[], &ws[..1]));
                    e.inits.push(tensor_proto_i8(&wzn, &[], &[0]));
                } else {
                    e.inits.push(tensor_proto(&wsn, &[c.out_channels], &ws));
                    e.inits.push(tensor_proto_i8(&wzn, &[c.out_channels], &vec![0; c.out_channels]));
                }
                let bname = format!("{name}.bias_q");
                e.inits.push(tensor_proto_i32(&bname, &[c.out_channels], &bq));
                let (xs, xz) = e.scalar(&x.name, x.p);
                let out = format!("{}_q", act_of[i].map_or(name.clone(), |a| g.nodes()[a].name.clone()));
                let (ys, yz) = e.scalar(&out, p);
                e.nodes.push(node("QLinearConv", &name, vec![x.name, xs, xz, wname, wsn, wzn, ys, yz, bname], &out, conv_attrs(c)));
                let qt = QT { name: out, p };
                e.record(act_of[i].unwrap_or(i), &qt);
                e.q[i] = Some(qt);
            }
            Op::Relu | Op::Relu6 => {
                if let Some(p) = fused_into[i] {
                    // The producer (a conv or an add) already wrote its int8 output with this
                    // activation's range, which is where the activation happens.
                    e.q[i] = e.q[p].clone();
                } else {
                    let x = e.float_of(inp(0));
                    let out = format!("{name}_f");
                    if nd.op == Op::Relu {
                        e.nodes.push(node("Relu", &name, vec![x], &out, vec![]));
                    } else {
                        if !e.inits.iter().any(|t| t.name == "edgenet.clip_min") {
                            e.inits.push(tensor_proto("edgenet.clip_min", &[], &[0.0]));
                            e.inits.push(tensor_proto("edgenet.clip_max", &[], &[6.0]));
                        }
                        e.nodes.push(node("Clip", &name, vec![x, "edgenet.clip_min".into(), "edgenet.clip_max".into()], &out, vec![]));
                    }
                    e.f[i] = Some(out);
                    e.float_layer(i);
                }
            }
            Op::Add => {
                let (a, b) = (e.float_of(inp(0)), e.float_of(inp(1)));
                let out = format!("{name}_f");
                e.nodes.push(node("Add", &name, vec![a, b], &out, vec![]));
                e.f[i] = Some(out);
                e.float_layer(i);
                if act_of[i].is_some() {
                    // The sum is only ever read through its activation's int8 range.
                    let qt = e.quant_of(i);
                    e.f[i] = None;
                    if let Some(last) = e.tensors.last_mut() {
                        let a = &g.nodes()[act_of[i].unwrap_or(i)];
                        last.node = a.name.clone();
                        last.op = a.op.kind();
                    }
                    e.q[i] = Some(qt);
                } else if !float_readers[i] && i != g.output().index() {
                    // A sum some layer reads in int8 (the next block's conv) is quantized once,
                    // and every reader takes that int8 form, as in a QDQ model: the engine then
                    // fuses DequantizeLinear + Add + QuantizeLinear into one int8 pass.
                    let qt = e.quant_of(i);
                    e.f[i] = None;
                    e.q[i] = Some(qt);
                }
                if e.q[i].is_some() {
                    if let Some(l) = e.float_layers.iter_mut().rev().find(|l| l.node == name) {
                        l.reason = QADD_REASON;
                    }
                }
            }
            Op::MaxPool(p) => {
                let x = e.quant_of(inp(0));
                let out = format!("{name}_q");
                e.nodes.push(node("MaxPool", &name, vec![x.name], &out, pool_attrs(p, false)));
                e.q[i] = Some(QT { name: out, p: x.p });
            }
            Op::Reshape | Op::Transpose { .. } | Op::Slice { .. } => {
                // Values moved, not changed: on int8 when the input is int8 already.
                let x = inp(0);
                match e.q[x].clone() {
                    Some(qx) => {
                        let out = format!("{name}_q");
                        e.push_simple(i, vec![qx.name], &out)?;
                        e.q[i] = Some(QT { name: out, p: qx.p });
                    }
                    None => e.float_op(i)?,
                }
            }
            Op::Concat { .. } if float_readers[i] => e.float_op(i)?,
            Op::Concat { axis } => {
                let p = out_params[i];
                let mut ins = Vec::with_capacity(nd.inputs.len());
                for k in 0..nd.inputs.len() {
                    let t = inp(k);
                    match e.q[t].clone() {
                        Some(qt) if qt.p == p => ins.push(qt.name),
                        _ => {
                            // Requantized to the concat's scale (from the f32 form).
                            let f = e.float_of(t);
                            let (s, z) = e.scalar(&format!("{name}_q"), p);
                            let rq = format!("{name}.input{k}_q");
                            e.nodes.push(node("QuantizeLinear", &format!("{name}/requantize{k}"), vec![f, s, z], &rq, vec![]));
                            ins.push(rq);
                            requantized_concat_inputs += 1;
                        }
                    }
                }
                let out = format!("{name}_q");
                e.nodes.push(node("Concat", &name, ins, &out, vec![attr_int("axis", *axis as i64)]));
                let qt = QT { name: out, p };
                e.record(i, &qt);
                e.q[i] = Some(qt);
            }
            Op::Sigmoid | Op::HardSigmoid { .. } | Op::HardSwish | Op::Mul if (is_act(&nd.op) && !gate[i]) || self_gated[i] => {
                e.float_op(i)?;
                let gated: Vec<String> = nd.inputs.iter().map(|t| t.index()).filter(|&a| gate[a]).map(|a| g.nodes()[a].name.clone()).collect();
                for l in e.float_layers.iter_mut().filter(|l| l.node == name || gated.contains(&l.node)) {
                    l.reason = LUT_REASON;
                }
                if i != g.output().index() {
                    // Readers take the int8 form, so the f32 values stay between the two.
                    let qt = e.quant_of(i);
                    e.f[i] = None;
                    e.q[i] = Some(qt);
                }
            }
            Op::AvgPool(_) | Op::Sigmoid | Op::HardSigmoid { .. } | Op::HardSwish | Op::Mul | Op::ReduceMean { .. } => e.float_op(i)?,
            Op::Flatten => {
                let x = e.quant_of(inp(0));
                let out = format!("{name}_q");
                e.nodes.push(node("Flatten", &name, vec![x.name], &out, vec![attr_int("axis", 1)]));
                e.q[i] = Some(QT { name: out, p: x.p });
            }
            Op::GlobalAvgPool => {
                let x = e.float_of(inp(0));
                let out = format!("{name}_f");
                e.nodes.push(node("GlobalAveragePool", &name, vec![x], &out, vec![]));
                e.f[i] = Some(out);
                e.float_layer(i);
            }
            Op::Linear { in_features, out_features, bias } => {
                let x = e.quant_of(inp(0));
                let w = model.weights.require(&format!("{name}.weight"))?;
                let (wq, ws) = quantize_weights(&w.data, 1, true);
                let mut wt = vec![0i8; wq.len()];
                for o in 0..*out_features {
                    for k in 0..*in_features {
                        wt[k * out_features + o] = wq[o * in_features + k];
                    }
                }
                let wname = format!("{name}.weight_q");
                e.inits.push(tensor_proto_i8(&wname, &[*in_features, *out_features], &wt));
                let (wsn, wzn) = (format!("{name}.weight_scale"), format!("{name}.weight_zero_point"));
                e.inits.push(tensor_proto(&wsn, &[], &ws));
                e.inits.push(tensor_proto_i8(&wzn, &[], &[0]));
                let p = params[i];
                output_step = p.scale;
                let (xs, xz) = e.scalar(&x.name, x.p);
                let mm = format!("{name}_mm_q");
                let (ys, yz) = e.scalar(&mm, p);
                e.nodes.push(node("QLinearMatMul", &name, vec![x.name, xs, xz, wname, wsn, wzn, ys.clone(), yz.clone()], &mm, vec![]));
                let qt = QT { name: mm.clone(), p };
                e.record(i, &qt);
                let deq = format!("{name}_mm");
                e.nodes.push(node("DequantizeLinear", &format!("{name}/dequantize"), vec![mm, ys, yz], &deq, vec![]));
                let out = if *bias {
                    let b = model.weights.require(&format!("{name}.bias"))?;
                    let bname = format!("{name}.bias");
                    e.inits.push(tensor_proto(&bname, &[1, *out_features], &b.data));
                    let out = format!("{name}_f");
                    e.nodes.push(node("Add", &format!("{name}/bias"), vec![deq, bname], &out, vec![]));
                    out
                } else {
                    deq
                };
                e.f[i] = Some(out);
            }
            Op::Softmax => {
                let x = e.float_of(inp(0));
                let out = format!("{name}_f");
                e.nodes.push(node("Softmax", &name, vec![x], &out, vec![attr_int("axis", 1)]));
                e.f[i] = Some(out);
                e.float_layer(i);
            }
            Op::BatchNorm { eps, .. } => {
                let x = e.float_of(inp(0));
                let mut ins = vec![x];
                for s in ["weight", "bias", "running_mean", "running_var"] {
                    let t = model.weights.require(&format!("{name}.{s}"))?;
                    let k = format!("{name}.{s}");
                    e.inits.push(tensor_proto(&k, &t.shape, &t.data));
                    ins.push(k);
                }
                let out = format!("{name}_f");
                e.nodes.push(node("BatchNormalization", &name, ins, &out, vec![attr_float("epsilon", *eps)]));
                e.f[i] = Some(out);
                e.float_layer(i);
            }
        }
    }
    let out_name = output_name(g);
    let last = e.float_of(g.output().index());
    e.nodes.push(node("Identity", "output", vec![last], out_name, vec![]));
    let mut meta = metadata(model, true)?;
    meta.extend(origin_meta.iter().map(|(k, v)| pb::StringStringEntryProto { key: k.clone(), value: v.clone() }));
    let graph = pb::GraphProto {
        name: format!("{} int8", model.info.arch),
        node: e.nodes,
        initializer: e.inits,
        input: vec![value_info(INPUT_NAME, F32, g.input_shape())],
        output: vec![value_info(out_name, F32, g.output_shape())],
        ..Default::default()
    };
    let proto = model_proto(graph, format!("{} quantized to int8 by edgenet", model.info.arch), meta);
    Ok(Emitted { bytes: proto.encode_to_vec(), tensors: e.tensors, bias_saturations, output_step, float_layers: e.float_layers, requantized_concat_inputs })
}

/// Quantized weights, their scales, the int32 bias and the number of saturated bias values
/// of one conv. With `input_means`, the bias is corrected for the expected error the weight
/// rounding adds (Nagel et al. 2019, §4.2, empirical form).
fn conv_weights(
    model: &Model,
    name: &str,
    c: &Conv2d,
    x: QParams,
    input_means: Option<&[f32]>,
    scheme: WeightScheme,
) -> Result<(Vec<i8>, Vec<f32>, Vec<i32>, usize)> {
    let w = model.weights.require(&format!("{name}.weight"))?;
    let mut bias = match model.weights.get(&format!("{name}.bias")) {
        Some(b) => b.data.clone(),
        None => vec![0.0; c.out_channels],
    };
    let mut ws = weight_scales(&w.data, c.out_channels, scheme.per_tensor);
    // A (nearly) dead channel gets a tiny weight scale, and its bias, divided by
    // s_in · s_w, would overflow int32. Its weights round to zero at any small scale, so the
    // scale is raised until the bias fits in 2^30.
    const BIAS_LIMIT: f64 = (1u64 << 30) as f64;
    let needed: Vec<f32> = bias.iter().map(|b| (b.abs() as f64 / (x.scale as f64 * BIAS_LIMIT)) as f32).collect();
    if scheme.per_tensor {
        let m = needed.iter().fold(0f32, |a, &b| a.max(b));
        ws.iter_mut().for_each(|s| *s = s.max(m));
    } else {
        ws.iter_mut().zip(&needed).for_each(|(s, &n)| *s = s.max(n));
    }
    let wq = quantize_with_scales(&w.data, &ws);
    let per = w.data.len() / c.out_channels;
    let k = c.kernel[0] * c.kernel[1];
    let cin_g = c.in_channels / c.groups;
    let cout_g = c.out_channels / c.groups;
    if let Some(means) = input_means {
        if means.len() != c.in_channels {
            return Err(Error::Config(format!("{name}: {} input means for {} channels", means.len(), c.in_channels)));
        }
        for o in 0..c.out_channels {
            let g = o / cout_g;
            let mut err = 0f64;
            for ci in 0..cin_g {
                let m = means[g * cin_g + ci] as f64;
                for t in 0..k {
                    let idx = o * per + ci * k + t;
                    let dw = wq[idx] as f64 * ws[o] as f64 - w.data[idx] as f64;
                    err += dw * m;
                }
            }
            bias[o] -= err as f32;
        }
    }
    let mut sat = 0;
    let bq = bias
        .iter()
        .enumerate()
        .map(|(o, &b)| {
            let (v, s) = quantize_bias(b, x.scale * ws[o]);
            sat += usize::from(s);
            v
        })
        .collect();
    Ok((wq, ws, bq, sat))
}
