//! int8 quantization: the int8 files run in tract and onnxruntime and agree; EfficientNet-Lite0
//! keeps its accuracy on real photos; size; foreign models; bad input.
//!
//! Needs the judge (onnxruntime, through tests/common): every test here but
//! `quantize_command_writes_model_and_report_and_rejects_bad_input` runs it.

#![allow(clippy::type_complexity)]

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::load_inputs;
use edgenet::quant::{quantize, report::report, QuantOptions, Quantized, RangeMethod};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// int8 tract vs int8 onnxruntime on the same file (needs the judge).
//
// edgenet's int8 ops reproduce onnxruntime's arithmetic, so with onnxruntime executing the
// file literally every int8 tensor is the same (asserted: within one step). With its default
// graph optimisations onnxruntime fuses DequantizeLinear/QuantizeLinear pairs into its own
// int8 ops, which round differently on rare values; the logits must then agree within
// `steps` quantization steps and give the same top-1. Measured on this suite (x86-64,
// 2026-11-30): 0 steps on every network but ResNet-50 at 224², 2 steps. The figures are
// printed.

/// tract (with edgenet's int8 kernels) against onnxruntime on the same int8 file:
/// - onnxruntime executing the file's ops as written: every int8 tensor and every logit within
///   one quantization step (edgenet's kernels reproduce its arithmetic, so in practice 0);
/// - onnxruntime as users run it, with its QDQ fusions: logits within `steps` steps and the
///   same top-1 (its fused QLinearAdd rounds differently, and a deep random-weight network
///   amplifies single-step differences).
fn tract_and_ort_agree(name: &str, q: &Quantized, inputs: &[Vec<f32>], steps: f32) {
    let dir = scratch(&format!("quant_{name}"));
    let path = dir.join(format!("{name}.int8.onnx"));
    std::fs::write(&path, &q.bytes).unwrap();
    onnx_check(&path);
    let engine = Engine::from_bytes(&q.bytes, name, &EngineOptions::default()).unwrap();
    // Winograd F(2×2, 3×3) is exact: the logits are the same bits with and without it.
    let direct = Engine::from_bytes(&q.bytes, name, &EngineOptions { winograd: false, ..Default::default() }).unwrap();
    for x in inputs {
        assert_eq!(engine.run(x).unwrap(), direct.run(x).unwrap(), "{name}: logits with and without Winograd differ");
    }
    let mut names: Vec<String> = q.tensors.iter().map(|t| t.tensor.clone()).collect();
    names.push(engine.output_name().to_string());
    let layers = Engine::with_outputs(&q.bytes, name, &EngineOptions::default(), &names).unwrap();
    for x in inputs {
        let ours = layers.run_all(x).unwrap();
        let theirs = ort_run_tensors_literal(&path, x, &names);
        let (mut worst_diff, mut worst_mean) = (0f32, 0f64);
        let mut first_diff: Option<String> = None;
        for (k, ((n, a), b)) in names.iter().zip(&ours).zip(&theirs).enumerate() {
            assert_eq!(a.len(), b.len(), "{name} {n}");
            let step = if k + 1 == names.len() { q.output_step } else { 1.0 };
            let diff = max_abs_diff(a, b) / step;
            let mean = a.iter().zip(b).map(|(p, q)| (p - q).abs() as f64).sum::<f64>() / a.len() as f64 / step as f64;
            assert!(diff <= 1.001, "{name} {n}: tract and onnxruntime (literal) differ by {diff} steps");
            if diff > 0.0 && first_diff.is_none() {
                first_diff = Some(format!("{n} (#{k}, max {diff}, mean {mean:.4})"));
            }
            worst_diff = worst_diff.max(diff);
            worst_mean = worst_mean.max(mean);
        }
        println!(
            "{name}: {} tensors, tract vs onnxruntime (literal): max {worst_diff} steps, worst mean {worst_mean:.4}; first difference: {}",
            names.len(),
            first_diff.as_deref().unwrap_or("none")
        );
        let ours = engine.run(x).unwrap();
        let theirs = ort_run(&path, x);
        let diff = max_abs_diff(&ours, &theirs);
        println!("{name}: logits vs onnxruntime (default optimisations): {:.2} steps", diff / q.output_step);
        assert!(diff <= steps * q.output_step * 1.001, "{name}: logits differ by {diff} > {steps} × step {}", q.output_step);
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        assert_eq!(argmax(&ours), argmax(&theirs), "{name}: top-1 differs");
    }
}

fn lite0() -> &'static (edgenet::model::Model, Vec<(String, Vec<f32>)>, Vec<(String, Vec<f32>)>) {
    static CELL: OnceLock<(edgenet::model::Model, Vec<(String, Vec<f32>)>, Vec<(String, Vec<f32>)>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let w = root().join("models/efficientnet_lite0.safetensors");
        let m = zoo::build(Arch::EfficientNetLite0, &ZooConfig::default(), WeightSource::Safetensors(&w)).unwrap();
        let (cal, skipped) = load_inputs(&root().join("models/calibration"), &m.info.preprocess).unwrap();
        assert!(skipped.is_empty() && cal.len() == 10);
        let (eval, _) = load_inputs(&root().join("models/demo"), &m.info.preprocess).unwrap();
        assert_eq!(eval.len(), 6);
        (m, cal, eval)
    })
}

#[test]
fn efficientnet_lite0_int8_keeps_top1_and_cosine() {
    let (m, cal, eval) = lite0();
    let cal: Vec<Vec<f32>> = cal.iter().map(|(_, x)| x.clone()).collect();
    let q = quantize(m, &cal, &QuantOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(q.bias_saturations, 0);
    let r = report(m, &q, eval, 20.0).unwrap();
    println!("{}", r.to_text());
    for s in &r.samples {
        assert_eq!(s.f32_top1, s.int8_top1, "{}: int8 top-1 differs", s.name);
        assert!(s.cosine >= 0.99, "{}: cosine {}", s.name, s.cosine);
    }
    assert!((r.int8_bytes as f64) <= 0.30 * r.f32_bytes as f64, "int8 {} vs f32 {}", r.int8_bytes, r.f32_bytes);
    let eval_x: Vec<Vec<f32>> = eval.iter().map(|(_, x)| x.clone()).collect();
    tract_and_ort_agree("efficientnet_lite0", &q, &eval_x[..3], 4.0);
}

/// Seeded zoo model at `resolution`, calibrated on the calibration photos.
fn zoo_int8(arch: Arch, resolution: usize, opts: &QuantOptions) -> (edgenet::model::Model, Quantized, Vec<Vec<f32>>) {
    let cfg = ZooConfig { resolution, ..Default::default() };
    let m = zoo::build(arch, &cfg, WeightSource::Seeded(17)).unwrap();
    let (cal, _) = load_inputs(&root().join("models/calibration"), &m.info.preprocess).unwrap();
    let cal: Vec<Vec<f32>> = cal.into_iter().map(|(_, x)| x).collect();
    let q = quantize(&m, &cal[..4], opts, &mut |_, _| {}).unwrap();
    (m, q, cal[4..6].to_vec())
}

#[test]
fn resnet50_int8_runs_in_tract_and_onnxruntime_alike() {
    let (_, q, eval) = zoo_int8(Arch::ResNet50, 224, &QuantOptions::default());
    assert_eq!(q.bias_saturations, 0);
    tract_and_ort_agree("resnet50", &q, &eval, 4.0);
}

#[test]
fn mobilenet_v2_int8_runs_in_tract_and_onnxruntime_alike() {
    let (_, q, eval) = zoo_int8(Arch::MobileNetV2, 224, &QuantOptions::default());
    assert_eq!(q.bias_saturations, 0);
    tract_and_ort_agree("mobilenet_v2", &q, &eval, 4.0);
    let per_tensor = QuantOptions { per_tensor: true, equalize: true, method: RangeMethod::Mse, ..Default::default() };
    let (_, q, eval) = zoo_int8(Arch::MobileNetV2, 160, &per_tensor);
    assert!(q.equalized_pairs > 30, "{} pairs", q.equalized_pairs);
    tract_and_ort_agree("mobilenet_v2_per_tensor", &q, &eval, 4.0);
}

#[test]
fn other_zoo_models_quantize_without_bias_overflow() {
    for (arch, res) in [(Arch::ResNet18, 96), (Arch::ResNet34, 64), (Arch::ResNet101, 64), (Arch::ResNet152, 64)] {
        let (_, q, eval) = zoo_int8(arch, res, &QuantOptions::default());
        assert_eq!(q.bias_saturations, 0, "{arch}");
        tract_and_ort_agree(&format!("{arch}"), &q, &eval[..1], 4.0);
    }
}

/// A model edgenet did not write: torchvision mobilenet_v2 exported by torch.onnx.export
/// (random weights, so only agreement is judged, not accuracy).
#[test]
fn foreign_torchvision_mobilenet_v2_quantizes() {
    let bytes = std::fs::read(root().join("tests/data/mobilenet_v2_torchvision.onnx")).unwrap();
    let m = edgenet::onnx::import(&bytes, "foreign").unwrap();
    assert_eq!(m.graph.param_count(), 3_504_872);
    // The import is faithful: same logits as the original file in onnxruntime.
    let dir = scratch("foreign");
    let orig = dir.join("orig.onnx");
    std::fs::write(&orig, &bytes).unwrap();
    let x = random_input(3 * 224 * 224, 5);
    let ours = Engine::from_bytes(&edgenet::onnx::export(&m, &Default::default()).unwrap(), "re-export", &EngineOptions::default()).unwrap().run(&x).unwrap();
    let theirs = ort_run(&orig, &x);
    assert!(max_abs_diff(&ours, &theirs) <= 1e-4 * max_abs(&theirs));
    let (cal, _) = load_inputs(&root().join("models/calibration"), &m.info.preprocess).unwrap();
    let cal: Vec<Vec<f32>> = cal.into_iter().map(|(_, x)| x).collect();
    let q = quantize(&m, &cal[..4], &QuantOptions::default(), &mut |_, _| {}).unwrap();
    tract_and_ort_agree("foreign_mobilenet_v2", &q, &cal[4..6], 4.0);
}

#[test]
fn quantize_command_writes_model_and_report_and_rejects_bad_input() {
    use std::process::Command;
    let dir = scratch("quantize_cli");
    let f32_path = dir.join("m.onnx");
    let st = Command::new(bin()).args(["export", "mobilenet_v2", "--width-mult", "0.5", "--resolution", "96", "-o"]).arg(&f32_path).status().unwrap();
    assert!(st.success());
    // A calibration directory with one broken file: skipped, counted, warned.
    let cal = dir.join("cal");
    std::fs::create_dir_all(&cal).unwrap();
    for f in ["coins.png", "horse.png", "brick.png"] {
        std::fs::copy(root().join("models/calibration").join(f), cal.join(f)).unwrap();
    }
    std::fs::write(cal.join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let out_path = dir.join("m.int8.onnx");
    let json = dir.join("report.json");
    let out = Command::new(bin())
        .arg("quantize")
        .arg(&f32_path)
        .arg("--calibrate")
        .arg(&cal)
        .arg("--eval")
        .arg(root().join("models/demo"))
        .arg("--report-json")
        .arg(&json)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    assert!(stdout.contains("3 images") && stdout.contains("1 skipped"), "{stdout}");
    assert!(stdout.contains("per-layer SQNR") && stdout.contains("top-1 agreement"), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["samples"].as_array().unwrap().len(), 6);
    assert!(r["layers"].as_array().unwrap().len() > 40);
    // The int8 file classifies through `classify` like any model.
    let out = Command::new(bin()).arg("classify").arg(&out_path).arg(root().join("models/demo/coffee.png")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(bin()).arg("quantize").arg(&f32_path).arg("--calibrate").arg(&empty).arg("-o").arg(dir.join("x.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image files"), "{}", String::from_utf8_lossy(&out.stderr));

    let only_broken = dir.join("broken");
    std::fs::create_dir_all(&only_broken).unwrap();
    std::fs::write(only_broken.join("a.png"), b"nope").unwrap();
    let out = Command::new(bin()).arg("quantize").arg(&f32_path).arg("--calibrate").arg(&only_broken).arg("-o").arg(dir.join("x.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could be decoded"), "{}", String::from_utf8_lossy(&out.stderr));

    // A model with an op outside the supported subset.
    use prost::Message;
    let mut proto = edgenet::onnx::decode(&std::fs::read(&f32_path).unwrap(), "m").unwrap();
    let g = proto.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.op_type == "Clip").unwrap();
    n.op_type = "Tanh".into();
    n.input.truncate(1);
    let bad = dir.join("tanh.onnx");
    std::fs::write(&bad, proto.encode_to_vec()).unwrap();
    let out = Command::new(bin()).arg("quantize").arg(&bad).arg("--calibrate").arg(&cal).arg("-o").arg(dir.join("x.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Tanh") && err.contains("tanh.onnx") && err.contains("HardSwish"), "{err}");
}

/// The int8 fixture that the library tests check on every architecture CI covers (aarch64 under
/// qemu has no onnxruntime): a small MobileNetV2 quantized by edgenet, an input, and the
/// logits onnxruntime gives when it executes the file literally. Here, on x86-64 where the
/// judge runs, the committed logits are checked against onnxruntime again, so the fixture
/// cannot drift from the judge; `EDGENET_BLESS=1` regenerates it.
#[test]
fn int8_golden_fixture_matches_onnxruntime() {
    let dir = root().join("tests/data/int8");
    let model_path = dir.join("mobilenet_v2_035_48.int8.onnx");
    let read_f32 = |p: &Path| -> Vec<f32> {
        std::fs::read(p)
            .unwrap_or_else(|e| panic!("{}: {e} (EDGENET_BLESS=1 creates it)", p.display()))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    if std::env::var_os("EDGENET_BLESS").is_some() {
        let cfg = ZooConfig { width_mult: 0.35, resolution: 48, num_classes: 10 };
        let model = zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(21)).unwrap();
        let inputs: Vec<Vec<f32>> = (0..4).map(|k| random_input(3 * 48 * 48, 100 + k)).collect();
        let q = quantize(&model, &inputs, &QuantOptions::default(), &mut |_, _| {}).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&model_path, &q.bytes).unwrap();
        let x = random_input(3 * 48 * 48, 7);
        std::fs::write(dir.join("input.f32"), x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let work = scratch("int8_fixture_bless").join("m.onnx");
        std::fs::copy(&model_path, &work).unwrap();
        let logits = &ort_run_tensors_literal(&work, &x, &["logits".to_string()])[0];
        std::fs::write(dir.join("ort_logits.f32"), logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        std::fs::write(dir.join("output_step.txt"), format!("{}\n", q.output_step)).unwrap();
    }
    let x = read_f32(&dir.join("input.f32"));
    let want = read_f32(&dir.join("ort_logits.f32"));
    let work = scratch("int8_fixture").join("m.onnx");
    std::fs::copy(&model_path, &work).unwrap();
    let theirs = &ort_run_tensors_literal(&work, &x, &["logits".to_string()])[0];
    assert_eq!(theirs, &want, "onnxruntime no longer gives the committed logits");
    let bytes = std::fs::read(&model_path).unwrap();
    let engine = Engine::from_bytes(&bytes, "fixture", &EngineOptions::default()).unwrap();
    assert_eq!(engine.run(&x).unwrap(), want, "tract with edgenet's kernels vs onnxruntime on the fixture");
}
