//! Criterion benches: one inference of each zoo network in f32 and int8 through
//! [`edgenet::engine::Engine`] (one thread, synthetic input), and preprocessing of a 640×480
//! frame to 224².
//!
//! `cargo bench --bench inference` runs the real sizes (MobileNetV2-1.0, ResNet-50 and
//! EfficientNet-Lite0 at 224², built through the library: zoo → ONNX export → int8 quantization
//! calibrated on `models/calibration`). `cargo test --release --benches` (CI) runs every bench
//! once on small versions of the same networks, to prove the benches build and run without
//! paying for the big models. Filter as usual: `cargo bench --bench inference -- resnet50`.
//!
//! The numbers depend on the machine and its load; `edgenet bench` and
//! `scripts/bench_side_by_side.py` report the same latencies with the machine described.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::load_inputs;
use edgenet::frames::preprocess::Preprocessor;
use edgenet::onnx::{export, ExportOptions};
use edgenet::quant::{quantize, QuantOptions};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

/// Real sizes under `cargo bench`; small ones when the harness runs in test mode.
fn full_size() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn manifest(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// f32 and int8 ONNX bytes of one zoo network, built through the library as `edgenet export
/// --fold-bn` and `edgenet quantize --calibrate models/calibration` would.
fn models(arch: Arch, cfg: &ZooConfig) -> (Vec<u8>, Vec<u8>) {
    let lite0_weights = manifest("models/efficientnet_lite0.safetensors");
    let source = if arch == Arch::EfficientNetLite0 && cfg.resolution == 224 && cfg.num_classes == 1000 {
        WeightSource::Safetensors(&lite0_weights)
    } else {
        WeightSource::Seeded(1)
    };
    let model = zoo::build(arch, cfg, source).expect("zoo model");
    let f32_bytes = export(&model, &ExportOptions { fold_bn: true }).expect("export");
    let (cal, _) = load_inputs(&manifest("models/calibration"), &model.info.preprocess).expect("calibration photos");
    let cal: Vec<Vec<f32>> = cal.into_iter().map(|(_, x)| x).collect();
    let q = quantize(&model, &cal, &QuantOptions::default(), &mut |_, _| {}).expect("quantize");
    (f32_bytes, q.bytes)
}

fn synthetic(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

fn networks(c: &mut Criterion) {
    let full = full_size();
    let nets: [(&str, Arch, ZooConfig); 3] = if full {
        [
            ("mobilenet_v2", Arch::MobileNetV2, ZooConfig { width_mult: 1.0, resolution: 224, num_classes: 1000 }),
            ("resnet50", Arch::ResNet50, ZooConfig { width_mult: 1.0, resolution: 224, num_classes: 1000 }),
            ("efficientnet_lite0", Arch::EfficientNetLite0, ZooConfig { width_mult: 1.0, resolution: 224, num_classes: 1000 }),
        ]
    } else {
        [
            ("mobilenet_v2", Arch::MobileNetV2, ZooConfig { width_mult: 0.35, resolution: 64, num_classes: 10 }),
            ("resnet50", Arch::ResNet50, ZooConfig { width_mult: 1.0, resolution: 32, num_classes: 10 }),
            ("efficientnet_lite0", Arch::EfficientNetLite0, ZooConfig { width_mult: 1.0, resolution: 64, num_classes: 10 }),
        ]
    };
    for (name, arch, cfg) in nets {
        let (f32_bytes, int8_bytes) = models(arch, &cfg);
        let mut group = c.benchmark_group(format!("{name}_{}", cfg.resolution));
        // One inference of int8 ResNet-50 takes seconds in tract today: flat sampling keeps a
        // sample at one iteration instead of criterion's growing linear series.
        group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
        for (precision, bytes) in [("f32", &f32_bytes), ("int8", &int8_bytes)] {
            let engine = Engine::from_bytes(bytes, &format!("{name} {precision}"), &EngineOptions::default()).expect("engine");
            let x = synthetic(engine.input_len());
            let mut y = vec![0.0; engine.output_len()];
            group.bench_function(BenchmarkId::from_parameter(precision), |b| b.iter(|| engine.run_into(&x, &mut y).expect("inference")));
        }
        group.finish();
    }
}

fn preprocessing(c: &mut Criterion) {
    let (w, h) = (640, 480);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("preprocess_640x480_to_224");
    for (name, arch) in [("torchvision", Arch::MobileNetV2), ("efficientnet_lite", Arch::EfficientNetLite0)] {
        let pre = arch.preprocess(224);
        let mut p = Preprocessor::new(&pre, w, h).expect("preprocessor");
        let mut out = vec![0.0; pre.input_len()];
        group.bench_function(name, |b| b.iter(|| p.run(&rgb, &mut out).expect("preprocess")));
    }
    group.finish();
}

/// Pixel-format conversions of camera frames (YUV420 → RGB and friends) land with the camera
/// runner (issue 6), in a parallel branch.
// TODO(after runner merge): fill the group "pixel_format_640x480" with the runner's
// conversions (yuv420 → rgb24, and any others it ships), one bench_function each, on a
// synthetic 640×480 frame; it is already registered in `criterion_group!` below.
fn pixel_formats(_c: &mut Criterion) {}

criterion_group!(benches, networks, preprocessing, pixel_formats);
criterion_main!(benches);
