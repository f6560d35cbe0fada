//! `edgenet demo`: the embedded default. EfficientNet-Lite0 is built from the shipped weights
//! with the graph builder, exported to ONNX, loaded in tract and run on the bundled photos.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use clap::Args;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::decode_rgb;
use edgenet::onnx::{export, ExportOptions};
use edgenet::runner::{Classifier, Labels, TopK};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

use super::classify::{label_of, predictions};

const WEIGHTS: &[u8] = include_bytes!("../../models/efficientnet_lite0.safetensors");

/// What a person would accept for a bundled photo (see models/README.md).
#[derive(Clone, Copy)]
enum Expect {
    /// Top-1 is one of these classes.
    Top1(&'static [usize]),
    /// This class is among the top 5 (Grace Hopper with the centre crop: 652 military
    /// uniform; top-1 is academic gown).
    InTop5(usize),
    /// No ImageNet class fits.
    Nothing,
}

const PHOTOS: [(&str, &[u8], Expect); 6] = [
    ("chelsea.png", include_bytes!("../../models/demo/chelsea.png"), Expect::Top1(&[281, 282, 285])),
    ("coffee.png", include_bytes!("../../models/demo/coffee.png"), Expect::Top1(&[967, 968, 504])),
    ("camera.png", include_bytes!("../../models/demo/camera.png"), Expect::Top1(&[872, 759])),
    ("rocket.jpg", include_bytes!("../../models/demo/rocket.jpg"), Expect::Top1(&[657, 744, 812])),
    ("grace_hopper.jpg", include_bytes!("../../models/demo/grace_hopper.jpg"), Expect::InTop5(652)),
    ("astronaut.png", include_bytes!("../../models/demo/astronaut.png"), Expect::Nothing),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Intra-op threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Also write the exported model here.
    #[arg(long)]
    pub save_onnx: Option<std::path::PathBuf>,
}

/// Peak resident memory (VmHWM) of this process in KiB, where /proc has it.
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(args: &DemoArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let cfg = ZooConfig::default();
    let source = WeightSource::SafetensorsBytes { bytes: WEIGHTS, origin: Path::new("models/efficientnet_lite0.safetensors") };
    let model = zoo::build(Arch::EfficientNetLite0, &cfg, source)?;
    let bytes = export(&model, &ExportOptions { fold_bn: true })?;
    if let Some(p) = &args.save_onnx {
        std::fs::write(p, &bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    }
    let engine = Engine::from_bytes(&bytes, "efficientnet_lite0 (embedded)", &EngineOptions { threads: args.threads as usize, input_shape: None })?;
    drop(bytes);
    drop(model);
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    writeln!(
        out,
        "EfficientNet-Lite0 f32 (4,652,008 parameters, built with the graph builder from the shipped weights, BN folded): ready in {build_ms:.0} ms, {} thread(s)",
        args.threads
    )?;
    let labels = Labels::imagenet();
    let mut classifier = Classifier::new(engine, None)?;
    let mut scratch = Vec::new();
    let mut top = TopK::new();
    let mut latencies = Vec::new();
    let mut correct = 0;
    let mut judged = 0;
    for (name, data, expect) in PHOTOS {
        let frame = decode_rgb(data, Path::new(name))?;
        let t = Instant::now();
        classifier.load_frame(&frame.data, frame.width, frame.height)?;
        let pre_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let logits = classifier.infer()?.to_vec();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        latencies.push(ms);
        predictions(&logits, false, &mut scratch, 5, &mut top);
        let (ok, verdict) = match expect {
            Expect::Nothing => (None, "no ImageNet class fits".to_string()),
            Expect::Top1(classes) => {
                let ok = top.first().is_some_and(|p| classes.contains(&p.index));
                (Some(ok), format!("top-1 {} the accepted classes {classes:?}", if ok { "among" } else { "NOT among" }))
            }
            Expect::InTop5(class) => {
                let ok = top.iter().any(|p| p.index == class);
                (Some(ok), format!("class {class} {} the top 5", if ok { "in" } else { "NOT in" }))
            }
        };
        judged += usize::from(ok.is_some());
        correct += usize::from(ok == Some(true));
        writeln!(out, "\n{name} ({}×{}): inference {ms:.1} ms, preprocessing {pre_ms:.1} ms — {verdict}", frame.width, frame.height)?;
        for (rank, p) in top.iter().enumerate() {
            writeln!(out, "  {}. {:6.2}%  {} [{}]", rank + 1, p.score * 100.0, label_of(Some(&labels), p.index), p.index)?;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    writeln!(out, "\n{correct}/{judged} photos classified as expected; median inference {median:.1} ms")?;
    match peak_rss_kib() {
        Some(k) => writeln!(out, "peak resident memory (VmHWM): {:.1} MiB", k as f64 / 1024.0)?,
        None => writeln!(out, "peak resident memory: not available on this system")?,
    }
    Ok(())
}
