//! Calibration: the f32 model runs in tract over the calibration inputs with every
//! intermediate tensor exposed as an extra output; observers collect their statistics.

use super::observe::{RangeMethod, TensorStats};
use crate::engine::{Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::model::Model;
use crate::onnx::{export, tensor_names, ExportOptions};

/// Statistics of every node output of a model (indexed like `graph.nodes()`).
#[derive(Debug, Clone)]
pub struct Calibration {
    /// One entry per node. For a Linear node the statistics are of its output *before* the
    /// bias (what the int8 matmul produces).
    pub stats: Vec<TensorStats>,
    /// Number of inputs observed.
    pub samples: usize,
}

/// Runs `model` (f32) over `inputs` (NCHW tensors) and observes every node output.
/// `progress(done, total)` is called after each inference (two passes for histogram methods).
///
/// # Errors
/// No inputs, an input of the wrong size, or an engine failure.
pub fn calibrate(model: &Model, inputs: &[Vec<f32>], method: RangeMethod, progress: &mut dyn FnMut(usize, usize)) -> Result<Calibration> {
    if inputs.is_empty() {
        return Err(Error::Config("calibration needs at least one input".into()));
    }
    let g = &model.graph;
    let names = tensor_names(g);
    let bytes = export(model, &ExportOptions { fold_bn: false })?;
    let engine = Engine::with_outputs(&bytes, "calibration model", &EngineOptions::default(), &names)?;
    drop(bytes);
    let biases: Vec<Option<Vec<f32>>> = g
        .nodes()
        .iter()
        .map(|n| match n.op {
            Op::Linear { bias: true, .. } => model.weights.get(&format!("{}.bias", n.name)).map(|t| t.data.clone()),
            _ => None,
        })
        .collect();
    let channels: Vec<usize> = g.nodes().iter().map(|n| if n.shape.len() == 4 { n.shape[1] } else { 0 }).collect();
    let mut stats = vec![TensorStats::default(); names.len()];
    let passes = if method.needs_histogram() { 2 } else { 1 };
    let total = inputs.len() * passes;
    let mut done = 0;
    for pass in 0..passes {
        for x in inputs {
            let outs = engine.run_all(x)?;
            for (i, mut v) in outs.into_iter().enumerate() {
                if let Some(b) = &biases[i] {
                    v.iter_mut().zip(b).for_each(|(y, b)| *y -= b);
                }
                if pass == 0 {
                    stats[i].observe(&v, channels[i]);
                } else {
                    stats[i].observe_histogram(&v);
                }
            }
            done += 1;
            progress(done, total);
        }
    }
    log::info!("calibrated {} tensors on {} inputs ({method:?})", names.len(), inputs.len());
    Ok(Calibration { stats, samples: inputs.len() })
}
