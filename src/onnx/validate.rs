//! Checks an ONNX model before tract sees it. tract assumes well-formed input in places: a graph
//! with no nodes, a convolution with a zero stride or dilation, a dimension of 2³⁰ or pads of
//! 2³⁰ crash it (a panic, or an allocation that aborts the process). These checks turn every such
//! defect into an [`Error::Onnx`] that names the file, the node and the attribute or tensor.
//!
//! What is checked:
//! - structure: at least one node; every input a node reads is a graph input, an initializer
//!   or the output of an earlier node (ONNX requires topological order, so a cycle fails here);
//!   no tensor produced twice; every declared output produced;
//! - tensors: known element types, non-negative dimensions, element counts that fit in memory,
//!   data lengths that match the shape, no external data (edgenet reads one file);
//! - graph inputs: positive fixed dimensions;
//! - convolution and pooling attributes: strides, dilations and kernel sizes ≥ 1, pads ≥ 0 and
//!   at most [`MAX_PAD`], `group` ≥ 1 and dividing the weights' output channels;
//! - quantization: scales that are constants are finite and positive;
//! - the memory budget: the weights, and the input, within [`Limits::memory_bytes`].

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use super::proto::{self, Attrs};
use crate::error::{Error, Result};

/// Pads beyond this are refused: no classification network pads by more than a few pixels, and
/// tract's shape arithmetic overflows on pads near 2³⁰.
pub const MAX_PAD: i64 = 1 << 16;

/// The default memory budget: 2 GiB on 64-bit systems, 1 GiB on 32-bit ones.
pub const DEFAULT_MEMORY_BYTES: u64 = if cfg!(target_pointer_width = "64") { 2 << 30 } else { 1 << 30 };

/// Limits a model must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most memory a model's weights may take, and separately any one tensor of its
    /// input or activations: a model over it is refused before anything of that size is
    /// allocated.
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: DEFAULT_MEMORY_BYTES }
    }
}

fn err(origin: &str, message: impl Into<String>) -> Error {
    Error::Onnx { origin: origin.to_string(), message: message.into() }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The bytes of one element of an ONNX tensor type, `None` for a type edgenet does not know.
fn elem_bytes(data_type: i32) -> Option<u64> {
    use pb::tensor_proto::DataType as D;
    Some(match D::try_from(data_type).ok()? {
        D::Float | D::Int32 | D::Uint32 => 4,
        D::Uint8 | D::Int8 | D::Bool => 1,
        D::Uint16 | D::Int16 | D::Float16 | D::Bfloat16 => 2,
        D::Int64 | D::Uint64 | D::Double | D::Complex64 => 8,
        D::Complex128 => 16,
        // Strings have no fixed size: counted as one byte each (what the data holds is checked
        // by count, not by bytes).
        D::String => 1,
        _ => return None,
    })
}

/// A node's name for messages: its name, else its first output, with its op.
fn node_name(node: &pb::NodeProto) -> String {
    let name = if !node.name.is_empty() { node.name.as_str() } else { node.output.first().map(String::as_str).unwrap_or("?") };
    format!("node `{name}` ({})", node.op_type)
}

/// The message that refuses something over the budget.
pub(crate) fn over_budget(what: &str, bytes: u64, limits: &Limits) -> String {
    format!(
        "{what} would need {}, over the memory limit of {} (raise it with --memory-limit MIB if the machine has the memory)",
        mib(bytes),
        mib(limits.memory_bytes)
    )
}

/// Checks `proto` (see the module's documentation); `origin` names it in errors.
///
/// # Errors
/// [`Error::Onnx`] naming the first defect found.
pub fn validate(proto: &pb::ModelProto, origin: &str, limits: &Limits) -> Result<()> {
    let graph = proto.graph.as_ref().ok_or_else(|| err(origin, "the ONNX model has no graph"))?;
    if graph.node.is_empty() {
        return Err(err(origin, "the graph has no nodes"));
    }
    // Initializers: types, shapes, data, budget.
    let mut weight_bytes: u64 = 0;
    let mut inits: HashMap<&str, &pb::TensorProto> = HashMap::new();
    for t in &graph.initializer {
        weight_bytes = weight_bytes.saturating_add(check_tensor(t, origin, limits)?);
        inits.insert(t.name.as_str(), t);
    }
    if weight_bytes > limits.memory_bytes {
        return Err(err(origin, over_budget("the weights", weight_bytes, limits)));
    }
    // Graph inputs: positive dimensions, within the budget.
    let mut defined: HashSet<&str> = inits.keys().copied().collect();
    for input in &graph.input {
        defined.insert(input.name.as_str());
        if inits.contains_key(input.name.as_str()) {
            continue;
        }
        check_input(input, origin, limits)?;
    }
    // Nodes in order: inputs defined earlier, outputs produced once, attributes.
    let produced_later: HashSet<&str> = graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(input.as_str()) {
                let why = if produced_later.contains(input.as_str()) {
                    "before any node produces it (the graph is not in topological order, or has a cycle)"
                } else {
                    "which no node, graph input or initializer defines"
                };
                return Err(err(origin, format!("{} reads `{input}` {why}", node_name(node))));
            }
        }
        check_attributes(node, &inits, origin)?;
        check_scales(node, &inits, origin)?;
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            if !defined.insert(output.as_str()) {
                return Err(err(origin, format!("{} produces `{output}`, which is already defined", node_name(node))));
            }
        }
    }
    for output in &graph.output {
        if !defined.contains(output.name.as_str()) {
            return Err(err(origin, format!("the graph output `{}` is produced by no node", output.name)));
        }
    }
    Ok(())
}

/// Checks one initializer and returns its bytes.
fn check_tensor(t: &pb::TensorProto, origin: &str, limits: &Limits) -> Result<u64> {
    let name = &t.name;
    let what = |m: String| err(origin, format!("tensor `{name}`: {m}"));
    if !t.external_data.is_empty() || t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(what("its data is in an external file, which edgenet does not read (save the model with its data inside)".into()));
    }
    let size = elem_bytes(t.data_type).ok_or_else(|| what(format!("unknown element type {}", t.data_type)))?;
    let mut count: u64 = 1;
    for (i, &d) in t.dims.iter().enumerate() {
        let d = u64::try_from(d).map_err(|_| what(format!("dimension #{i} is negative ({d})")))?;
        count = count.checked_mul(d).ok_or_else(|| what(format!("its dimensions {:?} overflow", t.dims)))?;
    }
    let bytes = count.checked_mul(size).filter(|&b| b <= limits.memory_bytes).ok_or_else(|| what(over_budget("it", count.saturating_mul(size), limits)))?;
    use pb::tensor_proto::DataType as D;
    let typed = match D::try_from(t.data_type) {
        Ok(D::Float) => t.float_data.len() as u64,
        Ok(D::Complex64) => t.float_data.len() as u64 / 2,
        Ok(D::Double) => t.double_data.len() as u64,
        Ok(D::Complex128) => t.double_data.len() as u64 / 2,
        Ok(D::Int64) => t.int64_data.len() as u64,
        Ok(D::Uint32 | D::Uint64) => t.uint64_data.len() as u64,
        Ok(D::String) => t.string_data.len() as u64,
        _ => t.int32_data.len() as u64,
    };
    let raw = t.raw_data.len() as u64;
    let ok = if raw > 0 { D::try_from(t.data_type) == Ok(D::String) || raw == bytes } else { typed == count };
    if !ok {
        let got = if raw > 0 { format!("{raw} bytes of raw data") } else { format!("{typed} values") };
        return Err(what(format!("shape {:?} holds {count} values, but it has {got}", t.dims)));
    }
    Ok(bytes)
}

/// Checks a graph input's declared shape: fixed dimensions positive, and the tensor within the
/// budget.
fn check_input(input: &pb::ValueInfoProto, origin: &str, limits: &Limits) -> Result<()> {
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return Ok(()) };
    let Some(shape) = t.shape.as_ref() else { return Ok(()) };
    let size = elem_bytes(t.elem_type).unwrap_or(4);
    let mut count: u64 = 1;
    for (i, dim) in shape.dim.iter().enumerate() {
        if let Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)) = dim.value {
            if d <= 0 {
                return Err(err(origin, format!("graph input `{}`: dimension #{i} is {d}", input.name)));
            }
            count = count.saturating_mul(d as u64);
        }
    }
    let bytes = count.saturating_mul(size);
    if bytes > limits.memory_bytes {
        return Err(err(origin, format!("graph input `{}`: {}", input.name, over_budget("one input tensor", bytes, limits))));
    }
    Ok(())
}

/// Strides, dilations, kernel sizes, pads and groups of convolutions and pools.
fn check_attributes(node: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>, origin: &str) -> Result<()> {
    const CONVS: [&str; 4] = ["Conv", "ConvInteger", "QLinearConv", "ConvTranspose"];
    const POOLS: [&str; 4] = ["MaxPool", "AveragePool", "LpPool", "MaxUnpool"];
    let op = node.op_type.as_str();
    let conv = CONVS.contains(&op);
    if !node.domain.is_empty() || !(conv || POOLS.contains(&op)) {
        return Ok(());
    }
    let bad = |attr: &str, m: String| err(origin, format!("{}: attribute `{attr}` {m}", node_name(node)));
    let a = Attrs::of(node);
    for attr in ["strides", "dilations", "kernel_shape"] {
        if let Some(v) = a.ints(attr) {
            if let Some(&x) = v.iter().find(|&&x| x < 1) {
                return Err(bad(attr, format!("is {v:?}: each must be at least 1, not {x}")));
            }
        }
    }
    for attr in ["pads", "output_padding"] {
        if let Some(v) = a.ints(attr) {
            if let Some(&x) = v.iter().find(|&&x| !(0..=MAX_PAD).contains(&x)) {
                return Err(bad(attr, format!("is {v:?}: each must be between 0 and {MAX_PAD}, not {x}")));
            }
        }
    }
    if conv {
        let group = a.int("group", 1);
        if group < 1 {
            return Err(bad("group", format!("is {group}: it must be at least 1")));
        }
        // The weights: input 1, or 3 for QLinearConv.
        let w = node.input.get(if op == "QLinearConv" { 3 } else { 1 }).and_then(|n| inits.get(n.as_str()));
        if let Some(w) = w {
            if w.dims.len() < 3 {
                return Err(err(origin, format!("{}: weights `{}` have shape {:?}: a convolution needs [M, C/group, k…]", node_name(node), w.name, w.dims)));
            }
            // ConvTranspose's weights are [C, M/group, …]: both lead with a multiple of group.
            if w.dims[0] % group != 0 {
                return Err(bad("group", format!("is {group}, which does not divide the {} channels of weights `{}`", w.dims[0], w.name)));
            }
            if let Some(k) = a.ints("kernel_shape") {
                if k != &w.dims[2..] {
                    return Err(bad("kernel_shape", format!("is {k:?}, but weights `{}` have shape {:?}", w.name, w.dims)));
                }
            }
            let spatial = w.dims.len() - 2;
            for (attr, len) in [("strides", spatial), ("dilations", spatial), ("pads", 2 * spatial)] {
                if let Some(v) = a.ints(attr) {
                    if v.len() != len {
                        return Err(bad(attr, format!("is {v:?}: {len} values expected for {spatial}-D weights")));
                    }
                }
            }
        }
    }
    // A pad wider than the window it pads only adds outputs made of padding. No network does
    // that, and tract's shape inference can run away on the mismatched shapes it leads to (a
    // residual Add of a 65,583-high map with a 12-high one never finished).
    if op != "ConvTranspose" && op != "MaxUnpool" {
        let w = if conv { node.input.get(if op == "QLinearConv" { 3 } else { 1 }).and_then(|n| inits.get(n.as_str())) } else { None };
        let kernel: Option<Vec<i64>> = a.ints("kernel_shape").map(<[i64]>::to_vec).or_else(|| w.filter(|w| w.dims.len() >= 3).map(|w| w.dims[2..].to_vec()));
        if let (Some(k), Some(p)) = (kernel, a.ints("pads")) {
            let d = a.ints("dilations").map(<[i64]>::to_vec).unwrap_or_default();
            for (i, &pad) in p.iter().enumerate() {
                let Some(&ki) = k.get(i % k.len().max(1)) else { continue };
                let di = d.get(i % k.len().max(1)).copied().unwrap_or(1);
                let extent = di.saturating_mul(ki.saturating_sub(1)).saturating_add(1);
                if pad > extent {
                    return Err(bad("pads", format!("is {p:?}: a pad of {pad} is wider than the window it pads ({extent})")));
                }
            }
        }
    }
    Ok(())
}

/// Quantization scales that are constants: finite and positive.
fn check_scales(node: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>, origin: &str) -> Result<()> {
    let positions: &[usize] = match (node.domain.as_str(), node.op_type.as_str()) {
        ("", "QuantizeLinear" | "DequantizeLinear") => &[1],
        ("", "QLinearConv" | "QLinearMatMul") => &[1, 4, 6],
        ("com.microsoft", "QLinearAdd" | "QLinearMul") => &[1, 4, 6],
        ("com.microsoft", "QLinearGlobalAveragePool" | "QLinearSigmoid" | "QLinearLeakyRelu") => &[1, 3],
        _ => return Ok(()),
    };
    for &p in positions {
        let Some(t) = node.input.get(p).and_then(|n| inits.get(n.as_str())) else { continue };
        // A scale that is not float is not checked here. `check_tensor` has checked every
        // initializer's data against its dims already, so a float one reads.
        let Ok(values) = proto::read_f32(t) else { continue };
        if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(err(origin, format!("{}: scale `{}` holds {v}: a quantization scale must be finite and positive", node_name(node), t.name)));
        }
    }
    Ok(())
}
