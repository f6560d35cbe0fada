//! The one error type of the library, with the context a user needs to find the culprit.

use std::path::PathBuf;

/// Everything that can go wrong in edgenet. Every variant names what it is about: a node
/// path, a weight key, a file, an option.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node could not be added to a graph: its input shapes do not fit the op.
    #[error("node `{node}`: {message}")]
    Shape {
        /// Scope path of the node being added.
        node: String,
        /// What mismatched.
        message: String,
    },
    /// An impossible or unsupported configuration (width multiplier, resolution, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A weight tensor is missing, unexpected or of the wrong shape.
    #[error("weight `{key}`: {message}")]
    Weight {
        /// The tensor name, as in the weight file.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A weights file could not be parsed.
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// An ONNX model could not be decoded, translated or understood.
    #[error("ONNX model {origin}: {message}")]
    Onnx {
        /// Where the model came from (a path or "from bytes").
        origin: String,
        /// What went wrong, with tract's whole error chain.
        message: String,
    },
    /// The inference engine failed on a loaded model.
    #[error("inference: {0}")]
    Engine(String),
    /// An input tensor does not fit the model.
    #[error("input: {0}")]
    Input(String),
    /// An image could not be decoded or is unusable.
    #[error("image {path}: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A labels file does not fit the model.
    #[error("labels {path}: {message}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A frame source could not be opened or configured (a device, a stream, a spec).
    #[error("frame source {source_name}: {message}")]
    Source {
        /// The source: a path, `stdin`, `/dev/videoN`, `synthetic`.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// One frame of a stream is unusable (truncated, corrupt).
    #[error("frame source {source_name}: frame {index} (byte offset {offset}): {message}")]
    Frame {
        /// The source.
        source_name: String,
        /// Index of the frame in the stream, from 0.
        index: u64,
        /// Byte offset of the frame's start in the stream (0 where bytes do not apply).
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for a shape error on `node`.
    pub(crate) fn shape(node: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Shape { node: node.into(), message: message.into() }
    }
    /// Shorthand for a weight error on `key`.
    pub(crate) fn weight(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Weight { key: key.into(), message: message.into() }
    }
    /// Shorthand for an I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
