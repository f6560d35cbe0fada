//! Loading an ONNX file into tract with one copy of the weights at a time, not two or three.
//!
//! tract's own path holds, at its peak, the file's bytes and the decoded protobuf (which copies
//! every weight), then the protobuf and tract's model (which copies them again). For a
//! ResNet-50 that is ~100 MB for 25 MB of int8 weights; on a Raspberry Pi that is the difference
//! between fitting and not. Here:
//! - [`decode_file`] decodes the protobuf from the file read in 256 KiB chunks, so the file's
//!   bytes are never all in memory beside the decoded message;
//! - [`take_weights`] moves the large initializers out of the protobuf before tract translates
//!   it (declaring them as graph inputs, so that tract's translation sees their type and shape
//!   and nothing else changes), and [`install_weights`] then turns each into the constant
//!   tract would have made, one at a time, dropping its protobuf as soon as it is converted.

use std::io::Read;
use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::ops::konst::Const;

use crate::error::{Error, Result};

/// Initializers smaller than this stay in the protobuf: tract's translation reads some small
/// constant inputs (shapes, axes, pads) while it parses their nodes.
const MIN_WEIGHT_BYTES: usize = 4096;

/// Ops whose large constant inputs are weights that tract only needs as constants once the
/// graph is translated (never while parsing the node).
const WEIGHT_OPS: [&str; 16] = [
    "Conv",
    "ConvTranspose",
    "ConvInteger",
    "QLinearConv",
    "Gemm",
    "MatMul",
    "MatMulInteger",
    "QLinearMatMul",
    "BatchNormalization",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "PRelu",
    "DequantizeLinear",
    "InstanceNormalization",
];

/// Reads and decodes the ONNX file at `path` without holding all its bytes at once.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Onnx`] if it is empty, not an ONNX
/// protobuf, or has no graph.
pub(crate) fn decode_file(path: &Path, origin: &str) -> Result<pb::ModelProto> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let Ok(len) = usize::try_from(len) else {
        return Err(Error::Onnx { origin: origin.to_string(), message: format!("the file is too large ({len} bytes)") });
    };
    let mut buf = FileBuf { file, remaining: len, chunk: Vec::new(), pos: 0, error: None };
    buf.fill();
    let decoded = crate::onnx::decode_buf(&mut buf, len, origin);
    if let Some(e) = buf.error {
        return Err(Error::io(path, e));
    }
    decoded
}

/// A [`prost::bytes::Buf`] over a file, read one chunk at a time. A read error ends the buffer
/// early (the decoder then fails) and is kept to be reported instead of the decoder's error.
struct FileBuf {
    file: std::fs::File,
    /// Bytes not yet consumed, the current chunk's included.
    remaining: usize,
    chunk: Vec<u8>,
    pos: usize,
    error: Option<std::io::Error>,
}

impl FileBuf {
    const CHUNK: usize = 256 << 10;

    /// Reads the next chunk once the current one is consumed.
    fn fill(&mut self) {
        if self.pos < self.chunk.len() || self.remaining == 0 || self.error.is_some() {
            return;
        }
        let n = self.remaining.min(Self::CHUNK);
        self.chunk.resize(n, 0);
        self.pos = 0;
        if let Err(e) = self.file.read_exact(&mut self.chunk) {
            self.error = Some(e);
            self.chunk.clear();
            self.remaining = 0;
        }
    }
}

impl prost::bytes::Buf for FileBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.chunk[self.pos..]
    }

    /// Consumes `cnt` bytes, across chunks if need be (prost skips an unknown field with one
    /// `advance` of its whole length). Past the end it stops at the end: the decoder then
    /// finds the buffer short and fails, a clean error.
    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 && self.remaining > 0 {
            let take = cnt.min(self.chunk.len() - self.pos);
            self.pos += take;
            self.remaining -= take;
            cnt -= take;
            // Refills an exhausted chunk; a read error sets `remaining` to 0, ending the loop.
            self.fill();
        }
    }
}

/// Moves the large initializers that only weight-consuming ops read out of `proto`, each
/// declared instead as a graph input of its type and shape; [`install_weights`] puts them back
/// into tract's model as constants. Nothing is taken from a graph with subgraphs (their nodes
/// may read any initializer), nor any initializer with external data, nor one the graph
/// already declares as an input or names as an output.
pub(crate) fn take_weights(proto: &mut pb::ModelProto) -> Vec<pb::TensorProto> {
    let Some(graph) = proto.graph.as_mut() else { return Vec::new() };
    let subgraphs = graph.node.iter().any(|n| n.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()));
    if subgraphs {
        return Vec::new();
    }
    let declared: std::collections::HashSet<&str> = graph.input.iter().chain(&graph.output).map(|v| v.name.as_str()).collect();
    let mut readers_ok: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for node in &graph.node {
        let weighty = node.domain.is_empty() && WEIGHT_OPS.contains(&node.op_type.as_str());
        for input in &node.input {
            let ok = readers_ok.entry(input.as_str()).or_insert(true);
            *ok &= weighty;
        }
    }
    let take: Vec<bool> = graph
        .initializer
        .iter()
        .map(|t| {
            t.external_data.is_empty()
                && payload_bytes(t) >= MIN_WEIGHT_BYTES
                && !declared.contains(t.name.as_str())
                && readers_ok.get(t.name.as_str()).copied().unwrap_or(false)
        })
        .collect();
    drop(declared);
    drop(readers_ok);
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(graph.initializer.len());
    for (t, take) in std::mem::take(&mut graph.initializer).into_iter().zip(take) {
        if take {
            taken.push(t);
        } else {
            kept.push(t);
        }
    }
    graph.initializer = kept;
    for t in &taken {
        let dim = t
            .dims
            .iter()
            .map(|&d| pb::tensor_shape_proto::Dimension { denotation: String::new(), value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)) })
            .collect();
        graph.input.push(pb::ValueInfoProto {
            name: t.name.clone(),
            r#type: Some(pb::TypeProto {
                denotation: String::new(),
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: t.data_type, shape: Some(pb::TensorShapeProto { dim }) })),
            }),
            doc_string: String::new(),
        });
    }
    taken
}

/// Bytes of an initializer's values, in whichever field they are.
fn payload_bytes(t: &pb::TensorProto) -> usize {
    t.raw_data.len() + 4 * (t.float_data.len() + t.int32_data.len()) + 8 * (t.int64_data.len() + t.double_data.len() + t.uint64_data.len())
}

/// Turns the graph inputs [`take_weights`] declared back into constants of `model`, as tract
/// would have made them from the initializers, converting and dropping one protobuf at a time.
///
/// # Errors
/// A tensor tract cannot read (its error, naming the tensor), or a declared input missing from
/// the translated model.
pub(crate) fn install_weights(model: &mut InferenceModel, onnx: &tract_onnx::Onnx, weights: Vec<pb::TensorProto>) -> TractResult<()> {
    for t in weights {
        let id = model.node_id_by_name(&t.name).with_context(|| format!("weight `{}` is not in tract's model", t.name))?;
        let tensor = tract_onnx::tensor::load_tensor(&*onnx.provider, &t, None).with_context(|| format!("reading tensor `{}`", t.name))?;
        drop(t);
        let tensor = tensor.into_arc_tensor();
        let fact = TypedFact::try_from(tensor.clone())?;
        let node = model.node_mut(id);
        ensure!(node.inputs.is_empty() && node.outputs.len() == 1, "weight `{}` is not a source in tract's model", node.name);
        node.op = Box::new(Const::new(tensor)?);
        node.outputs[0].fact = fact.into();
        model.inputs.retain(|o| o.node != id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], n: usize) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Int8 as i32,
            raw_data: (0..n).map(|i| (i * 31 % 251) as u8).collect(),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto { op_type: op.into(), input: inputs.iter().map(|s| s.to_string()).collect(), output: vec![output.into()], ..Default::default() }
    }

    fn model(initializer: Vec<pb::TensorProto>, nodes: Vec<pb::NodeProto>) -> pb::ModelProto {
        pb::ModelProto { ir_version: 8, graph: Some(pb::GraphProto { node: nodes, initializer, name: "g".into(), ..Default::default() }), ..Default::default() }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("edgenet-load-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("model.onnx")
    }

    #[test]
    fn chunked_decoding_equals_decoding_the_bytes() {
        use prost::Message;
        // Tensors larger than a chunk and straddling chunk boundaries at odd offsets.
        let inits = vec![tensor("a", &[3], 3), tensor("w", &[700_001], 700_001), tensor("v", &[300_007], 300_007)];
        let bytes = model(inits, vec![node("Conv", &["x", "w"], "y")]).encode_to_vec();
        assert!(bytes.len() > 3 * FileBuf::CHUNK);
        let path = scratch("chunks");
        std::fs::write(&path, &bytes).unwrap();
        let got = decode_file(&path, "chunks").unwrap();
        assert_eq!(got, crate::onnx::decode(&bytes, "chunks").unwrap());
        // A truncated file is an error naming it, as `decode` would give.
        std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
        let e = decode_file(&path, "truncated.onnx").unwrap_err().to_string();
        assert!(e.contains("truncated.onnx") && e.contains("not a valid ONNX protobuf"), "{e}");
        std::fs::write(&path, b"").unwrap();
        assert!(decode_file(&path, "empty.onnx").unwrap_err().to_string().contains("empty"));
        // An unknown field longer than a chunk, which prost skips with one `advance` across
        // chunks: decoded like the bytes, not a panic.
        let mut with_unknown = bytes.clone();
        let payload = vec![7u8; 600_000];
        prost::encoding::bytes::encode(999, &payload, &mut with_unknown);
        std::fs::write(&path, &with_unknown).unwrap();
        assert_eq!(decode_file(&path, "unknown").unwrap(), crate::onnx::decode(&with_unknown, "unknown").unwrap());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn only_large_weights_of_weight_ops_are_taken() {
        let mut m = model(
            vec![
                tensor("w", &[64, 64], 4096),     // a Conv weight: taken
                tensor("small", &[16], 16),       // too small
                tensor("shape", &[8, 512], 4096), // also read by Reshape: kept
                tensor("both", &[4096], 4096),    // read by Conv and Add: taken
            ],
            vec![
                node("Conv", &["x", "w", "both"], "c"),
                node("Add", &["c", "small"], "d"),
                node("Reshape", &["d", "shape"], "e"),
                node("Add", &["e", "both"], "y"),
                node("Mul", &["y", "shape"], "z"),
            ],
        );
        let taken = take_weights(&mut m);
        let names = |ts: &[pb::TensorProto]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&taken), ["w", "both"]);
        let g = m.graph.as_ref().unwrap();
        assert_eq!(names(&g.initializer), ["small", "shape"]);
        // Declared as inputs of their type and shape.
        let w = g.input.iter().find(|i| i.name == "w").unwrap();
        let Some(pb::type_proto::Value::TensorType(t)) = w.r#type.as_ref().and_then(|t| t.value.as_ref()) else { panic!("{w:?}") };
        assert_eq!(t.elem_type, pb::tensor_proto::DataType::Int8 as i32);
        let dims: Vec<_> = t.shape.as_ref().unwrap().dim.iter().map(|d| d.value.clone()).collect();
        use pb::tensor_shape_proto::dimension::Value::DimValue;
        assert_eq!(dims, [Some(DimValue(64)), Some(DimValue(64))]);

        // A graph with a subgraph keeps everything.
        let mut m = model(vec![tensor("w", &[64, 64], 4096)], vec![node("Conv", &["x", "w"], "y")]);
        let g = m.graph.as_mut().unwrap();
        g.node[0].attribute.push(pb::AttributeProto { name: "body".into(), g: Some(pb::GraphProto::default()), ..Default::default() });
        assert!(take_weights(&mut m).is_empty());
    }
}
