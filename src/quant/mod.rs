//! Post-training int8 quantization: BatchNorm folding, optional cross-layer equalization,
//! calibration in tract, per-channel (or per-tensor) int8 weights with optional bias
//! correction, int8 activations, and an int8 ONNX model in the QLinearConv / QLinearMatMul
//! form that tract executes with integer kernels. [`report`] measures what it cost.

pub mod calibrate;
pub mod equalize;
pub mod observe;
pub mod params;
pub mod report;
pub mod rewrite;

use crate::error::Result;
use crate::model::Model;
pub use calibrate::{calibrate, Calibration};
pub use observe::RangeMethod;
pub use params::QParams;
pub use rewrite::{FloatLayer, QuantTensor, WeightScheme};

/// Quantization settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOptions {
    /// How activation ranges are chosen.
    pub method: RangeMethod,
    /// One weight scale per tensor instead of per output channel.
    pub per_tensor: bool,
    /// Cross-layer equalization before calibration.
    pub equalize: bool,
    /// Empirical bias correction of the weight rounding error.
    pub bias_correction: bool,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions { method: RangeMethod::MinMax, per_tensor: false, equalize: false, bias_correction: true }
    }
}

/// An int8 model and what is needed to judge it.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The int8 ONNX file.
    pub bytes: Vec<u8>,
    /// The f32 model the int8 one approximates layer by layer (folded, maybe equalized).
    pub reference: Model,
    /// Every int8 activation tensor with its parameters.
    pub tensors: Vec<QuantTensor>,
    /// Number of conv biases that saturated int32 (0 on every zoo model).
    pub bias_saturations: usize,
    /// Quantization step of the logits.
    pub output_step: f32,
    /// Conv pairs equalized.
    pub equalized_pairs: usize,
    /// Layers left in f32 (between DequantizeLinear and QuantizeLinear), with why.
    pub float_layers: Vec<FloatLayer>,
    /// Concat inputs requantized to their concat's scale.
    pub requantized_concat_inputs: usize,
    /// The settings.
    pub options: QuantOptions,
}

impl Quantized {
    /// The layers left in f32, grouped by op in graph order: `(op, count, why)`.
    pub fn float_summary(&self) -> Vec<(&'static str, usize, &'static str)> {
        float_summary(&self.float_layers)
    }
}

/// [`FloatLayer`]s grouped by op, in order of first appearance: `(op, count, why)`.
pub fn float_summary(layers: &[FloatLayer]) -> Vec<(&'static str, usize, &'static str)> {
    let mut out: Vec<(&'static str, usize, &'static str)> = Vec::new();
    for l in layers {
        match out.iter_mut().find(|(op, _, _)| *op == l.op) {
            Some(e) => e.1 += 1,
            None => out.push((l.op, 1, l.reason)),
        }
    }
    out
}

/// Quantizes `model` with activation ranges calibrated on `inputs` (preprocessed NCHW
/// tensors); `progress(done, total)` follows calibration.
///
/// # Errors
/// No calibration input, an input of the wrong size, or an engine failure.
pub fn quantize(model: &Model, inputs: &[Vec<f32>], options: &QuantOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Quantized> {
    let mut reference = model.fold_batch_norms()?;
    let mut equalized_pairs = 0;
    if options.equalize {
        let (m, n) = equalize::equalize(&reference, 20)?;
        reference = m;
        equalized_pairs = n;
        log::info!("equalized {n} conv pairs");
    }
    let cal = calibrate(&reference, inputs, options.method, progress)?;
    let params: Vec<QParams> = cal
        .stats
        .iter()
        .map(|s| {
            let (lo, hi) = s.range(options.method);
            QParams::from_range(lo, hi)
        })
        .collect();
    let g = &reference.graph;
    let input_means: Vec<Option<Vec<f32>>> = g
        .nodes()
        .iter()
        .map(|n| match n.op {
            crate::graph::Op::Conv2d(_) if options.bias_correction => cal.stats[n.inputs[0].index()].channel_means(),
            _ => None,
        })
        .collect();
    let meta = vec![(
        "edgenet.quantization".to_string(),
        format!(
            "int8; weights {}; activations per tensor, asymmetric; ranges {:?}; equalization {}; bias correction {}; {} calibration inputs",
            if options.per_tensor { "per tensor" } else { "per output channel" },
            options.method,
            options.equalize,
            options.bias_correction,
            cal.samples
        ),
    )];
    let out = rewrite::emit(&reference, &params, &input_means, WeightScheme { per_tensor: options.per_tensor }, &meta)?;
    if out.bias_saturations > 0 {
        log::warn!("{} int32 bias values saturated", out.bias_saturations);
    }
    Ok(Quantized {
        bytes: out.bytes,
        reference,
        tensors: out.tensors,
        bias_saturations: out.bias_saturations,
        output_step: out.output_step,
        equalized_pairs,
        float_layers: out.float_layers,
        requantized_concat_inputs: out.requantized_concat_inputs,
        options: options.clone(),
    })
}
