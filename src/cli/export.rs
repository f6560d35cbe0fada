//! `edgenet export`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Architecture: resnet18, resnet34, resnet50, resnet101, resnet152, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_lite0.
    #[arg(value_parser = parse_arch)]
    pub arch: Arch,
    /// Channel width multiplier (mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large).
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f32,
    /// Square input resolution.
    #[arg(long, default_value_t = 224)]
    pub resolution: usize,
    /// Classifier outputs.
    #[arg(long, default_value_t = 1000)]
    pub num_classes: usize,
    /// Weights as safetensors with torchvision / EfficientNet-PyTorch key names (default:
    /// seeded random weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random weights when no file is given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fold BatchNorm into the convs.
    #[arg(long)]
    pub fold_bn: bool,
    /// Output ONNX file.
    #[arg(short, long)]
    pub output: PathBuf,
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse().map_err(|e: edgenet::Error| e.to_string())
}

pub fn run(args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let arch = args.arch;
    let cfg = ZooConfig { width_mult: args.width_mult, resolution: args.resolution, num_classes: args.num_classes };
    let source = match &args.weights {
        Some(p) => WeightSource::Safetensors(p),
        None => WeightSource::Seeded(args.seed),
    };
    let model = zoo::build(arch, &cfg, source).with_context(|| format!("building {arch}"))?;
    let bytes = export(&model, &ExportOptions { fold_bn: args.fold_bn })?;
    std::fs::write(&args.output, &bytes).with_context(|| format!("writing {}", args.output.display()))?;
    writeln!(
        out,
        "wrote {} ({arch}, {} parameters, {:.2} GMACs, {:.1} MB{})",
        args.output.display(),
        model.graph.param_count(),
        model.graph.macs() as f64 / 1e9,
        bytes.len() as f64 / 1e6,
        if args.fold_bn { ", BatchNorm folded" } else { "" }
    )?;
    Ok(())
}
