//! Accuracy report of an int8 model against its f32 original: per-layer SQNR, output cosine
//! similarity, top-1 and top-5 agreement on an evaluation set.

use serde::Serialize;

use super::Quantized;
use crate::engine::{Engine, EngineOptions};
use crate::error::Result;
use crate::model::Model;
use crate::onnx::{export, tensor_names, ExportOptions};
use crate::runner::{top_k, TopK};

/// SQNR of one int8 layer output.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// f32 node name.
    pub node: String,
    /// Op kind.
    pub op: String,
    /// Signal-to-quantization-noise ratio in dB, `10 log10(Σ x² / Σ (x − x̂)²)`, over the
    /// evaluation set.
    pub sqnr_db: f64,
    /// Below the flag threshold.
    pub flagged: bool,
}

/// Per-input comparison of the outputs.
#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    /// Name of the input.
    pub name: String,
    /// Cosine similarity of int8 and f32 logits.
    pub cosine: f64,
    /// f32 top-1 class.
    pub f32_top1: usize,
    /// int8 top-1 class.
    pub int8_top1: usize,
    /// Whether the f32 top-1 is in the int8 top-5.
    pub top5_contains_f32_top1: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Quantization settings, in words.
    pub settings: String,
    /// Per-layer SQNR.
    pub layers: Vec<LayerReport>,
    /// Per-input output comparison.
    pub samples: Vec<SampleReport>,
    /// Share of inputs whose top-1 agrees.
    pub top1_agreement: f64,
    /// Share of inputs whose f32 top-1 is in the int8 top-5.
    pub top5_agreement: f64,
    /// Smallest output cosine.
    pub min_cosine: f64,
    /// SQNR flag threshold in dB.
    pub flag_below_db: f64,
    /// Size of the f32 ONNX file (BN folded) and of the int8 one.
    pub f32_bytes: usize,
    /// Size of the int8 ONNX file.
    pub int8_bytes: usize,
    /// Layers that compute in f32 between DequantizeLinear and QuantizeLinear, with why.
    pub float_layers: Vec<super::FloatLayer>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += *x as f64 * *x as f64;
        bb += *y as f64 * *y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn top1(v: &[f32]) -> (usize, TopK) {
    let mut t = TopK::new();
    top_k(v, 5, &mut t);
    (t.first().map_or(0, |p| p.index), t)
}

/// Compares `q` with the f32 `original` on `inputs` (`(name, tensor)` pairs that should not be
/// the calibration set). Layers whose SQNR is below `flag_below_db` are flagged.
///
/// # Errors
/// An engine failure or an input of the wrong size.
pub fn report(original: &Model, q: &Quantized, inputs: &[(String, Vec<f32>)], flag_below_db: f64) -> Result<Report> {
    let f32_bytes = export(original, &ExportOptions { fold_bn: true })?;
    let f32_engine = Engine::from_bytes(&f32_bytes, "f32 model", &EngineOptions::default())?;
    // The reference (folded, maybe equalized) model's tensors, named like its nodes.
    let ref_bytes = export(&q.reference, &ExportOptions::default())?;
    let all = tensor_names(&q.reference.graph);
    let index_of = |node: &str| q.reference.graph.nodes().iter().position(|n| n.name == node);
    let layers: Vec<(usize, &super::QuantTensor)> = q.tensors.iter().filter_map(|t| index_of(&t.node).map(|i| (i, t))).collect();
    let ref_names: Vec<String> = layers.iter().map(|(i, _)| all[*i].clone()).collect();
    let int8_names: Vec<String> = layers.iter().map(|(_, t)| t.tensor.clone()).collect();
    let mut sums = vec![(0f64, 0f64); layers.len()];
    let mut samples = Vec::new();
    if !layers.is_empty() {
        let ref_engine = Engine::with_outputs(&ref_bytes, "f32 reference", &EngineOptions::default(), &ref_names)?;
        let q_engine = Engine::with_outputs(&q.bytes, "int8 model", &EngineOptions::default(), &int8_names)?;
        for (_, x) in inputs {
            let r = ref_engine.run_all(x)?;
            let qv = q_engine.run_all(x)?;
            for (k, (_, t)) in layers.iter().enumerate() {
                for (a, b) in r[k].iter().zip(&qv[k]) {
                    let deq = (*b as f64 - t.params.zero_point as f64) * t.params.scale as f64;
                    sums[k].0 += (*a as f64).powi(2);
                    sums[k].1 += (*a as f64 - deq).powi(2);
                }
            }
        }
    }
    let q_out = Engine::from_bytes(&q.bytes, "int8 model", &EngineOptions::default())?;
    for (name, x) in inputs {
        let a = f32_engine.run(x)?;
        let b = q_out.run(x)?;
        let (ta, _) = top1(&a);
        let (tb, top5) = top1(&b);
        samples.push(SampleReport {
            name: name.clone(),
            cosine: cosine(&a, &b),
            f32_top1: ta,
            int8_top1: tb,
            top5_contains_f32_top1: top5.iter().any(|p| p.index == ta),
        });
    }
    let layer_reports = layers
        .iter()
        .zip(&sums)
        .map(|((_, t), (s, n))| {
            let sqnr = if *n == 0.0 {
                f64::INFINITY
            } else if *s == 0.0 {
                f64::NEG_INFINITY
            } else {
                10.0 * (s / n).log10()
            };
            LayerReport { node: t.node.clone(), op: t.op.to_string(), sqnr_db: sqnr, flagged: sqnr < flag_below_db }
        })
        .collect();
    let count = samples.len().max(1) as f64;
    Ok(Report {
        settings: format!("{:?}", q.options),
        layers: layer_reports,
        top1_agreement: samples.iter().filter(|s| s.f32_top1 == s.int8_top1).count() as f64 / count,
        top5_agreement: samples.iter().filter(|s| s.top5_contains_f32_top1).count() as f64 / count,
        min_cosine: samples.iter().map(|s| s.cosine).fold(f64::INFINITY, f64::min),
        samples,
        flag_below_db,
        f32_bytes: f32_bytes.len(),
        int8_bytes: q.bytes.len(),
        float_layers: q.float_layers.clone(),
    })
}

impl Report {
    /// The report as text for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "settings: {}", self.settings);
        let _ = writeln!(
            s,
            "size: f32 {:.2} MB → int8 {:.2} MB ({:.1} %)",
            self.f32_bytes as f64 / 1e6,
            self.int8_bytes as f64 / 1e6,
            100.0 * self.int8_bytes as f64 / self.f32_bytes.max(1) as f64
        );
        let _ = writeln!(s, "\nper-layer SQNR (dB) on the evaluation set; ! marks < {:.0} dB:", self.flag_below_db);
        for l in &self.layers {
            let _ = writeln!(s, "  {} {:<40} {:<10} {:7.2}", if l.flagged { "!" } else { " " }, l.node, l.op, l.sqnr_db);
        }
        let flagged = self.layers.iter().filter(|l| l.flagged).count();
        let _ = writeln!(s, "  {flagged} of {} layers flagged", self.layers.len());
        let _ = writeln!(s, "\nlayers left in f32 (between DequantizeLinear and QuantizeLinear): {}", self.float_layers.len());
        for (op, n, why) in super::float_summary(&self.float_layers) {
            let names: Vec<&str> = self.float_layers.iter().filter(|l| l.op == op).map(|l| l.node.as_str()).collect();
            let shown = if names.len() > 4 { format!("{}, … {}", names[..3].join(", "), names[names.len() - 1]) } else { names.join(", ") };
            let _ = writeln!(s, "  {n:4} {op:<12} {why}: {shown}");
        }
        let _ = writeln!(s, "\noutputs, int8 vs f32:");
        for x in &self.samples {
            let _ = writeln!(
                s,
                "  {:<28} cosine {:.5}  top-1 f32 {:4} int8 {:4} {}",
                x.name,
                x.cosine,
                x.f32_top1,
                x.int8_top1,
                if x.f32_top1 == x.int8_top1 {
                    "same"
                } else if x.top5_contains_f32_top1 {
                    "differs (f32 top-1 in int8 top-5)"
                } else {
                    "DIFFERS"
                }
            );
        }
        let _ = writeln!(
            s,
            "\ntop-1 agreement {:.1} %, top-5 agreement {:.1} %, min cosine {:.5} over {} inputs",
            100.0 * self.top1_agreement,
            100.0 * self.top5_agreement,
            self.min_cosine,
            self.samples.len()
        );
        s
    }
}
