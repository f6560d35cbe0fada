//! `edgenet quantize`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use edgenet::frames::image_file::load_inputs;
use edgenet::onnx::meta;
use edgenet::quant::{quantize, report::report, QuantOptions, RangeMethod};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    /// Observed min and max.
    Minmax,
    /// Clip the tails at --percentile.
    Percentile,
    /// Minimise the expected squared error.
    Mse,
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// f32 ONNX model: an edgenet export, or a torchvision classifier exported by torch.onnx.export
    /// (give its preprocessing with --preset or the options, else ImageNet's is assumed with a
    /// warning; it is written into the int8 file's metadata).
    pub model: PathBuf,
    /// Directory of calibration images (frames from your own camera are best).
    #[arg(long)]
    pub calibrate: PathBuf,
    /// How activation ranges are chosen.
    #[arg(long, value_enum, default_value_t = Method::Minmax)]
    pub method: Method,
    /// Percentile for --method percentile.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// One weight scale per tensor (default: per output channel).
    #[arg(long)]
    pub per_tensor: bool,
    /// Cross-layer equalization first (Nagel et al. 2019); ReLU6 between equalized convs becomes ReLU.
    #[arg(long)]
    pub equalize: bool,
    /// Skip the empirical bias correction of the weight-rounding error (on by default).
    #[arg(long)]
    pub no_bias_correction: bool,
    /// Directory of evaluation images (not the calibration set) for the accuracy report.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Flag layers whose SQNR is below this (dB).
    #[arg(long, default_value_t = 20.0)]
    pub flag_below: f64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Output int8 ONNX file.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub preprocess: super::preprocess::PreprocessArgs,
}

pub fn run(args: &QuantizeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let origin = args.model.display().to_string();
    let proto = edgenet::onnx::decode(&bytes, &origin)?;
    drop(bytes);
    let has_metadata = proto.metadata_props.iter().any(|e| e.key == meta::PREPROCESS);
    let mut model = edgenet::onnx::import_proto(&proto, &origin)?;
    drop(proto);
    // The import fills in torchvision's preprocessing for a file without metadata; the options
    // (or the assumed preset, with a warning) decide it here, and the int8 file records it.
    let metadata = if has_metadata {
        match model.info.preprocess.validate() {
            Ok(()) => Some(&model.info.preprocess),
            Err(e) if args.preprocess.preset.is_some() => {
                log::warn!("{origin}: ignoring its {} metadata, which --preset replaces: {e}", meta::PREPROCESS);
                None
            }
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{origin}: metadata {} (give --preset to replace it)", meta::PREPROCESS))),
        }
    } else {
        None
    };
    let input = match *model.graph.input_shape() {
        [_, _, h, w] => (h, w),
        ref other => anyhow::bail!("{origin}: input shape {other:?} is not [1, C, H, W]"),
    };
    model.info.preprocess = args.preprocess.resolve(&args.model.display(), metadata, input)?;
    let pre = &model.info.preprocess;
    let (cal, skipped) = load_inputs(&args.calibrate, pre).with_context(|| format!("calibration set {}", args.calibrate.display()))?;
    for e in &skipped {
        eprintln!("warning: skipped {e}");
    }
    if cal.is_empty() {
        anyhow::bail!("calibration set {}: none of its {} files could be decoded", args.calibrate.display(), skipped.len());
    }
    writeln!(out, "calibrating on {} images from {} ({} skipped)", cal.len(), args.calibrate.display(), skipped.len())?;
    let method = match args.method {
        Method::Minmax => RangeMethod::MinMax,
        Method::Percentile => RangeMethod::Percentile(args.percentile),
        Method::Mse => RangeMethod::Mse,
    };
    let opts = QuantOptions { method, per_tensor: args.per_tensor, equalize: args.equalize, bias_correction: !args.no_bias_correction };
    let tensors: Vec<Vec<f32>> = cal.into_iter().map(|(_, x)| x).collect();
    let tty = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if tty {
            let w = 30 * done / total.max(1);
            eprint!("\rcalibrating [{}{}] {done}/{total}", "#".repeat(w), ".".repeat(30 - w));
            if done == total {
                eprintln!();
            }
        }
    };
    let q = quantize(&model, &tensors, &opts, &mut progress)?;
    std::fs::write(&args.output, &q.bytes).with_context(|| format!("writing {}", args.output.display()))?;
    writeln!(
        out,
        "wrote {} ({:.2} MB, {} int8 layers, {} conv pairs equalized, {} int32 bias saturations)",
        args.output.display(),
        q.bytes.len() as f64 / 1e6,
        q.tensors.len(),
        q.equalized_pairs,
        q.bias_saturations
    )?;
    if let Some(dir) = &args.eval {
        let (eval, skipped) = load_inputs(dir, pre).with_context(|| format!("evaluation set {}", dir.display()))?;
        for e in &skipped {
            eprintln!("warning: skipped {e}");
        }
        let r = report(&model, &q, &eval, args.flag_below)?;
        writeln!(out, "\n{}", r.to_text())?;
        if let Some(p) = &args.report_json {
            let json = serde_json::to_string_pretty(&r)?;
            std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?;
        }
    } else if args.report_json.is_some() {
        anyhow::bail!("--report-json needs --eval DIR");
    }
    Ok(())
}
