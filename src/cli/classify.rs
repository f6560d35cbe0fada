//! `edgenet classify`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use edgenet::engine::Engine;
use edgenet::frames::image_file::load_rgb;
use edgenet::onnx::{meta, OUTPUT_PROBABILITIES};
use edgenet::runner::{softmax_in_place, top_k, Classifier, Labels, TopK, MAX_TOP_K};

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// ONNX model (edgenet's own files carry their preprocessing and label set; for others,
    /// give --preset or the preprocessing options, else ImageNet's is assumed with a warning).
    pub model: PathBuf,
    /// Image files (JPEG, PNG, BMP, PNM).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=MAX_TOP_K as i64))]
    pub top: u16,
    /// Class names, one per line (default: the model's label set, if edgenet ships it).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// One JSON object per image instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: super::EngineArgs,
    #[command(flatten)]
    pub preprocess: super::preprocess::PreprocessArgs,
}

/// Labels from a file, else from the model's metadata. A bad file is reported and the
/// images are still classified (with class numbers).
pub fn resolve_labels(file: Option<&Path>, engine: &Engine) -> (Option<Labels>, Option<anyhow::Error>) {
    let classes = engine.output_len();
    match file {
        Some(p) => match Labels::from_file(p, classes) {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(e.into())),
        },
        None => (Labels::for_metadata(engine.metadata(meta::LABELS), classes), None),
    }
}

/// Logits (or probabilities) → top-K probabilities.
pub fn predictions(classifier_out: &[f32], is_prob: bool, scratch: &mut Vec<f32>, k: usize, out: &mut TopK) {
    scratch.clear();
    scratch.extend_from_slice(classifier_out);
    if !is_prob {
        softmax_in_place(scratch);
    }
    top_k(scratch, k, out);
}

pub fn label_of(labels: Option<&Labels>, i: usize) -> String {
    labels.map_or_else(|| format!("class {i}"), |l| l.name(i).into_owned())
}

pub fn run(args: &ClassifyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let opts = args.engine.options();
    let model = super::ModelSource::File(args.model.clone());
    let engine = model.load_sized(&opts, &args.preprocess, &mut |_| {})?;
    let preprocess = args.preprocess.resolve_for(&model, &engine)?;
    let (labels, label_err) = resolve_labels(args.labels.as_deref(), &engine);
    if let Some(e) = &label_err {
        eprintln!("error: {e:#}; showing class numbers");
    }
    let is_prob = engine.output_name() == OUTPUT_PROBABILITIES;
    let mut classifier = Classifier::new(engine, Some(preprocess)).with_context(|| format!("preparing {}", args.model.display()))?;
    let mut failed = usize::from(label_err.is_some());
    let mut scratch = Vec::new();
    let mut top = TopK::new();
    for path in &args.images {
        let t0 = Instant::now();
        let result = load_rgb(path).and_then(|frame| classifier.classify(&frame).map(|l| l.to_vec()));
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                if args.json {
                    writeln!(out, "{}", serde_json::json!({"image": path, "error": e.to_string()}))?;
                }
                continue;
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        predictions(&logits, is_prob, &mut scratch, args.top as usize, &mut top);
        if args.json {
            let items: Vec<_> =
                top.iter().map(|p| serde_json::json!({"index": p.index, "label": label_of(labels.as_ref(), p.index), "probability": p.score})).collect();
            writeln!(out, "{}", serde_json::json!({"image": path, "top": items, "latency_ms": ms}))?;
        } else {
            writeln!(out, "{}  ({ms:.1} ms)", path.display())?;
            for (rank, p) in top.iter().enumerate() {
                writeln!(out, "  {}. {:6.2}%  {} [{}]", rank + 1, p.score * 100.0, label_of(labels.as_ref(), p.index), p.index)?;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} inputs failed (see above)", args.images.len() + usize::from(label_err.is_some()));
    }
    Ok(())
}
