//! ONNX: export of edgenet graphs (opset 13, built from `tract_onnx::pb` messages and encoded
//! with prost) and import of the op subset that torchvision exports use.

#[cfg(feature = "tools")]
mod export;
mod import;
pub(crate) mod proto;
pub mod validate;

#[cfg(feature = "tools")]
pub(crate) use export::{
    attr_float, attr_int, conv_attrs, hard_swish_nodes, metadata, model_proto, pool_attrs, simple_node, tensor_proto, tensor_proto_i32, tensor_proto_i64,
    tensor_proto_i8, value_info,
};
#[cfg(feature = "tools")]
pub use export::{export, output_name, tensor_names, to_proto, ExportOptions};
pub(crate) use import::decode_buf;
pub use import::{decode, import, import_proto};
pub use validate::{validate, Limits};

/// The ONNX opset edgenet writes.
pub const OPSET: i64 = 13;
/// The ONNX IR version edgenet writes (supported by onnxruntime ≥ 1.10 and tract).
pub const IR_VERSION: i64 = 8;
/// Name of the graph output when the graph ends in logits.
pub const OUTPUT_LOGITS: &str = "logits";
/// Name of the graph output when the graph ends in a softmax.
pub const OUTPUT_PROBABILITIES: &str = "probabilities";
/// Name of the graph input.
pub const INPUT_NAME: &str = "input";

/// Keys of the `metadata_props` edgenet writes and reads.
pub mod meta {
    /// Architecture name.
    pub const ARCH: &str = "edgenet.architecture";
    /// Preprocessing, as JSON ([`crate::preprocess::Preprocess`]).
    pub const PREPROCESS: &str = "edgenet.preprocess";
    /// Label set.
    pub const LABELS: &str = "edgenet.labels";
    /// Whether BatchNorm was folded into the convs.
    pub const BN_FOLDED: &str = "edgenet.bn_folded";
}
