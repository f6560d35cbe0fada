//! [`Model`]: a graph, its weights and what a runner needs to know about it.

use crate::error::Result;
use crate::graph::{fold_batch_norms, Graph, Weights};
use crate::preprocess::Preprocess;

/// What a runner needs to know about a model besides its graph: stored in the exported
/// ONNX file's `metadata_props`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Architecture name (`resnet50`, `mobilenet_v2`, …, or `imported` for foreign models).
    pub arch: String,
    /// How to turn an image into the input tensor.
    pub preprocess: Preprocess,
    /// Label set of the outputs (`imagenet-1k`, or a description).
    pub labels: String,
}

/// A graph with validated weights.
#[derive(Debug, Clone)]
pub struct Model {
    /// Metadata.
    pub info: ModelInfo,
    /// The network.
    pub graph: Graph,
    /// Its parameters, exactly the tensors the graph needs.
    pub weights: Weights,
}

impl Model {
    /// A model from parts; the weights are checked against the graph.
    ///
    /// # Errors
    /// A missing, mis-shaped or unexpected weight (named).
    pub fn new(info: ModelInfo, graph: Graph, weights: Weights) -> Result<Self> {
        weights.validate(&graph)?;
        Ok(Model { info, graph, weights })
    }

    /// The same model with every foldable BatchNorm folded into its conv (exact up to f32
    /// rounding).
    ///
    /// # Errors
    /// Only if the weights do not fit the graph, which [`Model::new`] already excludes.
    pub fn fold_batch_norms(&self) -> Result<Model> {
        let (graph, weights) = fold_batch_norms(&self.graph, &self.weights)?;
        Ok(Model { info: self.info.clone(), graph, weights })
    }
}
