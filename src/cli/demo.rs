//! `edgenet demo`: the embedded default. EfficientNet-Lite0 is built from the shipped weights
//! with the graph builder, exported to ONNX, loaded in tract and run on the bundled photos.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use clap::Args;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::decode_rgb;
use edgenet::frames::preprocess::Preprocessor;
use edgenet::onnx::{export, ExportOptions};
use edgenet::quant::{quantize, QuantOptions};
use edgenet::runner::{Classifier, Labels, TopK};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

use super::classify::{label_of, predictions};

const WEIGHTS: &[u8] = include_bytes!("../../models/efficientnet_lite0.safetensors");

/// Calibration photos for the int8 model (models/README.md).
const CALIBRATION: [(&str, &[u8]); 10] = [
    ("brick.png", include_bytes!("../../models/calibration/brick.png")),
    ("clock_motion.png", include_bytes!("../../models/calibration/clock_motion.png")),
    ("coins.png", include_bytes!("../../models/calibration/coins.png")),
    ("grass.png", include_bytes!("../../models/calibration/grass.png")),
    ("gravel.png", include_bytes!("../../models/calibration/gravel.png")),
    ("horse.png", include_bytes!("../../models/calibration/horse.png")),
    ("hubble_deep_field.jpg", include_bytes!("../../models/calibration/hubble_deep_field.jpg")),
    ("ihc.png", include_bytes!("../../models/calibration/ihc.png")),
    ("motorcycle_left.png", include_bytes!("../../models/calibration/motorcycle_left.png")),
    ("retina.jpg", include_bytes!("../../models/calibration/retina.jpg")),
];

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

fn verdict(expect: Expect, top: &TopK) -> (Option<bool>, String) {
    match expect {
        Expect::Nothing => (None, "no ImageNet class fits".to_string()),
        Expect::Top1(classes) => {
            let ok = top.first().is_some_and(|p| classes.contains(&p.index));
            (Some(ok), format!("top-1 {} {classes:?}", if ok { "in" } else { "NOT in" }))
        }
        Expect::InTop5(class) => {
            let ok = top.iter().any(|p| p.index == class);
            (Some(ok), format!("{class} {} top-5", if ok { "in" } else { "NOT in" }))
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
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
    let opts = EngineOptions { threads: args.threads as usize, ..Default::default() };
    let f32_engine = Engine::from_bytes(&bytes, "efficientnet_lite0 f32 (embedded)", &opts)?;
    let f32_bytes = bytes.len();
    drop(bytes);
    writeln!(
        out,
        "EfficientNet-Lite0 (4,652,008 parameters) built with the graph builder from the shipped weights, BN folded, exported: {:.1} MB f32 ONNX in {:.0} ms",
        f32_bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64() * 1e3
    )?;
    let t1 = Instant::now();
    let pre = model.info.preprocess.clone();
    let mut cal = Vec::new();
    for (name, data) in CALIBRATION {
        let frame = decode_rgb(data, Path::new(name))?;
        let mut p = Preprocessor::new(&pre, frame.width, frame.height)?;
        let mut x = vec![0.0; pre.input_len()];
        p.run(&frame.data, &mut x)?;
        cal.push(x);
    }
    let q = quantize(&model, &cal, &QuantOptions::default(), &mut |_, _| {})?;
    drop(model);
    let int8_engine = Engine::from_bytes(&q.bytes, "efficientnet_lite0 int8", &opts)?;
    writeln!(
        out,
        "quantized to int8 (per-channel weights, min/max ranges, bias correction) on {} calibration photos: {:.1} MB ONNX in {:.0} ms",
        cal.len(),
        q.bytes.len() as f64 / 1e6,
        t1.elapsed().as_secs_f64() * 1e3
    )?;
    writeln!(out, "running with tract, {} thread(s)", args.threads)?;
    let labels = Labels::imagenet();
    let mut f32_c = Classifier::new(f32_engine, None)?;
    let mut int8_c = Classifier::new(int8_engine, None)?;
    let mut scratch = Vec::new();
    let (mut top_f, mut top_q) = (TopK::new(), TopK::new());
    let (mut lat_f, mut lat_q) = (Vec::new(), Vec::new());
    let (mut ok_f, mut ok_q, mut judged, mut same) = (0, 0, 0, 0);
    for (name, data, expect) in PHOTOS {
        let frame = decode_rgb(data, Path::new(name))?;
        for (c, top, lat) in [(&mut f32_c, &mut top_f, &mut lat_f), (&mut int8_c, &mut top_q, &mut lat_q)] {
            c.load_frame(&frame.data, frame.width, frame.height)?;
            let t = Instant::now();
            let logits = c.infer()?.to_vec();
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            predictions(&logits, false, &mut scratch, 5, top);
        }
        let (vf, tf) = verdict(expect, &top_f);
        let (vq, tq) = verdict(expect, &top_q);
        judged += usize::from(vf.is_some());
        ok_f += usize::from(vf == Some(true));
        ok_q += usize::from(vq == Some(true));
        same += usize::from(top_f.first().map(|p| p.index) == top_q.first().map(|p| p.index));
        writeln!(out, "\n{name} ({}×{})", frame.width, frame.height)?;
        let left = format!("f32  {:.1} ms — {tf}", lat_f.last().unwrap_or(&0.0));
        writeln!(out, "  {left:<46} | int8 {:.1} ms — {tq}", lat_q.last().unwrap_or(&0.0))?;
        for (a, b) in top_f.iter().zip(top_q.iter()) {
            let cell = |p: &edgenet::runner::Prediction| {
                let mut l = label_of(Some(&labels), p.index);
                l.truncate(30);
                format!("{:6.2}% {l} [{}]", p.score * 100.0, p.index)
            };
            writeln!(out, "  {:<46} | {}", cell(a), cell(b))?;
        }
    }
    let (mf, mq) = (median(&mut lat_f), median(&mut lat_q));
    writeln!(
        out,
        "\nf32: {ok_f}/{judged} photos as expected, median {mf:.1} ms   int8: {ok_q}/{judged} as expected, median {mq:.1} ms   same top-1 on {same}/{} photos",
        PHOTOS.len()
    )?;
    if mq > 0.0 && mf > 0.0 {
        let (ratio, word) = if mq <= mf { (mf / mq, "faster") } else { (mq / mf, "slower") };
        writeln!(out, "int8 ran {ratio:.2}× {word} than f32 here (one thread, including preprocessing; see BENCHMARKS.md)")?;
    }
    match edgenet::alloc::rss() {
        Some((peak, _)) => writeln!(out, "peak resident memory (VmHWM): {:.1} MiB", peak as f64 / 1048576.0)?,
        None => writeln!(out, "peak resident memory: not available on this system")?,
    }
    Ok(())
}
