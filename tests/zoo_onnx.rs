//! Every zoo model, exported to ONNX: accepted by the onnx checker, run by tract and by
//! onnxruntime (the external judge) with agreeing outputs; the BN-folded export agrees with
//! the unfolded one; published parameter counts and MACs.

mod common;

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

fn cfg(resolution: usize) -> ZooConfig {
    ZooConfig { width_mult: 1.0, resolution, num_classes: 1000 }
}

#[test]
fn parameter_counts_match_the_published_ones() {
    let expect = [
        (Arch::ResNet18, 11_689_512),
        (Arch::ResNet34, 21_797_672),
        (Arch::ResNet50, 25_557_032),
        (Arch::ResNet101, 44_549_160),
        (Arch::ResNet152, 60_192_808),
        (Arch::MobileNetV2, 3_504_872),
        (Arch::MobileNetV3Small, 2_542_856),
        (Arch::MobileNetV3Large, 5_483_032),
        (Arch::EfficientNetLite0, 4_652_008),
    ];
    for (arch, n) in expect {
        let g = zoo::graph(arch, &cfg(224)).unwrap();
        assert_eq!(g.param_count(), n, "{arch}");
    }
    let macs = |a| zoo::graph(a, &cfg(224)).unwrap().macs() as f64 / 1e9;
    let r50 = macs(Arch::ResNet50);
    assert!((4.0..4.2).contains(&r50), "ResNet-50 {r50} GMACs");
    let mb = macs(Arch::MobileNetV2);
    assert!((0.29..0.31).contains(&mb), "MobileNetV2 {mb} GMACs");
    // torchvision publishes 0.057 and 0.217 GFLOPS (its "FLOPS" are multiply-adds) for
    // MobileNetV3-Small and -Large at 224²; the paper 56 M and 219 M MAdds. Convs and linear
    // layers counted (the squeeze-excitations' 1×1 convs included; their channel scaling, the
    // hard swishes and the pools not).
    for (arch, published) in [(Arch::MobileNetV3Small, 56.5e6), (Arch::MobileNetV3Large, 217.0e6)] {
        let m = zoo::graph(arch, &cfg(224)).unwrap().macs() as f64;
        println!("{arch}: {:.2} M MACs at 224² (torchvision: {:.1} M)", m / 1e6, published / 1e6);
        assert!((m / published - 1.0).abs() < 0.02, "{arch}: {m} MACs, published {published}");
    }
    // Width 0.35: stem make_divisible(11.2, 8) = 16 (8 would be > 10 % below), head stays 1280.
    let mb035 = zoo::graph(Arch::MobileNetV2, &ZooConfig { width_mult: 0.35, ..cfg(224) }).unwrap();
    assert_eq!(mb035.nodes()[1].shape, vec![1, 16, 112, 112]);
    assert_eq!(mb035.node(mb035.output()).shape, vec![1, 1000]);
    let head = mb035.nodes().iter().find(|n| n.name == "features.18.0").unwrap();
    assert_eq!(head.shape[1], 1280);
}

/// Exports `arch` (folded and unfolded), checks both with the onnx checker, runs them in tract
/// and onnxruntime on two random inputs, and compares.
fn agree_with_onnxruntime(arch: Arch, resolution: usize) {
    agree_with_onnxruntime_cfg(arch, &cfg(resolution));
}

fn agree_with_onnxruntime_cfg(arch: Arch, c: &ZooConfig) {
    agree_with_onnxruntime_tol(arch, c, 1e-4);
}

/// As [`agree_with_onnxruntime_cfg`], with every comparison within `tol` × the largest logit.
fn agree_with_onnxruntime_tol(arch: Arch, c: &ZooConfig, tol: f32) {
    let resolution = c.resolution;
    let dir = scratch(&format!("zoo_{arch}_{resolution}_{}", c.num_classes));
    let model = zoo::build(arch, c, WeightSource::Seeded(7)).unwrap();
    let mut tract_outputs = Vec::new();
    for fold_bn in [false, true] {
        let bytes = export(&model, &ExportOptions { fold_bn }).unwrap();
        let path = dir.join(format!("{arch}_{}.onnx", if fold_bn { "folded" } else { "plain" }));
        std::fs::write(&path, &bytes).unwrap();
        onnx_check(&path);
        let engine = Engine::from_bytes(&bytes, &path.display().to_string(), &EngineOptions::default()).unwrap();
        assert_eq!(engine.input_shape(), [1, 3, resolution, resolution]);
        let mut outs = Vec::new();
        for seed in [1, 2] {
            let x = random_input(engine.input_len(), seed);
            let ours = engine.run(&x).unwrap();
            let theirs = ort_run(&path, &x);
            let scale = max_abs(&theirs);
            let diff = max_abs_diff(&ours, &theirs);
            assert!(scale > 0.0 && scale.is_finite(), "{arch}: degenerate logits (max |logit| {scale})");
            assert!(diff <= tol * scale, "{arch} fold_bn={fold_bn}: tract vs onnxruntime max |Δ| {diff} > {tol} × {scale}");
            outs.push(ours);
        }
        tract_outputs.push(outs);
    }
    for (plain, folded) in tract_outputs[0].iter().zip(&tract_outputs[1]) {
        let diff = max_abs_diff(plain, folded);
        let scale = max_abs(plain);
        assert!(diff <= tol * scale, "{arch}: folded vs unfolded max |Δ| {diff} > {tol} × {scale}");
    }
}

#[test]
fn resnet18_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::ResNet18, 224);
}

#[test]
fn resnet34_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::ResNet34, 160);
}

#[test]
fn resnet50_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::ResNet50, 224);
}

#[test]
fn resnet101_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::ResNet101, 128);
}

#[test]
fn resnet152_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::ResNet152, 96);
}

#[test]
fn mobilenet_v2_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::MobileNetV2, 224);
}

#[test]
fn efficientnet_lite0_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::EfficientNetLite0, 224);
}

#[test]
fn mobilenet_v3_small_agrees_with_onnxruntime() {
    agree_with_onnxruntime(Arch::MobileNetV3Small, 224);
}

/// With seeded weights MobileNetV3-Large is badly conditioned in f32: nothing bounds the hard
/// swish, the residual sums grow block after block, and random input 1 gives logits up to 7265
/// (MobileNetV2: 12). Against edgenet's f64 reference interpreter, tract is then off by 0.80
/// (1.1e-4 of the largest logit) and onnxruntime by 0.42 on the same file, 1.13 apart; on
/// input 2 both are within 3.1e-2 of it. Rounding, not a difference in the computation: the
/// tolerance here is 3e-4 of the largest logit instead of 1e-4.
#[test]
fn mobilenet_v3_large_agrees_with_onnxruntime() {
    agree_with_onnxruntime_tol(Arch::MobileNetV3Large, &cfg(224), 3e-4);
}

#[test]
fn narrow_mobilenet_v3_at_odd_resolution_agrees_with_onnxruntime() {
    agree_with_onnxruntime_cfg(Arch::MobileNetV3Small, &ZooConfig { width_mult: 0.75, resolution: 100, num_classes: 10 });
    agree_with_onnxruntime_cfg(Arch::MobileNetV3Large, &ZooConfig { width_mult: 0.5, resolution: 72, num_classes: 10 });
}

#[test]
fn narrow_mobilenet_v2_at_odd_resolution_agrees_with_onnxruntime() {
    agree_with_onnxruntime_cfg(Arch::MobileNetV2, &ZooConfig { width_mult: 0.35, resolution: 100, num_classes: 10 });
}

#[test]
fn two_threads_give_the_same_logits_as_one() {
    let model = zoo::build(Arch::MobileNetV2, &cfg(224), WeightSource::Seeded(5)).unwrap();
    let bytes = export(&model, &ExportOptions { fold_bn: true }).unwrap();
    let one = Engine::from_bytes(&bytes, "m", &EngineOptions { threads: 1, ..Default::default() }).unwrap();
    let two = Engine::from_bytes(&bytes, "m", &EngineOptions { threads: 2, ..Default::default() }).unwrap();
    let x = random_input(one.input_len(), 4);
    let (a, b) = (one.run(&x).unwrap(), two.run(&x).unwrap());
    assert!(max_abs_diff(&a, &b) <= 1e-5 * max_abs(&a));
}

#[test]
fn export_carries_metadata_and_names() {
    let model = zoo::build(Arch::EfficientNetLite0, &cfg(224), WeightSource::Seeded(1)).unwrap();
    let bytes = export(&model, &ExportOptions::default()).unwrap();
    let proto = edgenet::onnx::decode(&bytes, "m").unwrap();
    assert_eq!(proto.producer_name, "edgenet");
    assert_eq!(proto.opset_import[0].version, 13);
    let g = proto.graph.as_ref().unwrap();
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output[0].name, "logits");
    assert!(g.initializer.iter().any(|t| t.name == "_blocks.3._depthwise_conv.weight"));
    assert!(g.initializer.iter().any(|t| t.name == "_bn1.running_var"));
    let engine = Engine::from_bytes(&bytes, "m", &EngineOptions::default()).unwrap();
    assert_eq!(engine.metadata("edgenet.architecture"), Some("efficientnet_lite0"));
    let pre: edgenet::frames::preprocess::Preprocess = serde_json::from_str(engine.metadata("edgenet.preprocess").unwrap()).unwrap();
    assert_eq!(pre, edgenet::frames::preprocess::Preprocess::efficientnet_lite(224));
    // The import of our own export gives back the same graph.
    let back = edgenet::onnx::import(&bytes, "m").unwrap();
    assert_eq!(back.graph, model.graph);
    assert_eq!(back.weights, model.weights);
    assert_eq!(back.info, model.info);
}

/// torchvision's own MobileNetV3-Small and -Large (width 0.25, 10 classes, random weights with
/// non-trivial BatchNorms; tests/data/golden/make_mobilenet_v3_fixtures.py): their state dicts,
/// saved as safetensors under torchvision's key names with the int64 `num_batches_tracked`
/// counters, load by name, and the exported model gives PyTorch's logits in tract and
/// onnxruntime.
#[test]
fn torchvision_mobilenet_v3_state_dicts_load_by_name_and_give_pytorchs_logits() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden.join("mobilenet_v3_w025_logits.json")).unwrap()).unwrap();
    let resolution = json["resolution"].as_u64().unwrap() as usize;
    let c = ZooConfig { width_mult: json["width_mult"].as_f64().unwrap() as f32, resolution, num_classes: json["num_classes"].as_u64().unwrap() as usize };
    let dir = scratch("zoo_mobilenet_v3_torchvision");
    for arch in [Arch::MobileNetV3Small, Arch::MobileNetV3Large] {
        let want: Vec<f32> = json["models"][arch.name()]["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let weights = golden.join(format!("{arch}_w025.safetensors"));
        let model = zoo::build(arch, &c, WeightSource::Safetensors(&weights)).unwrap();
        // The fixture's deterministic input: k = (i · 7919) mod 1000, x = k / 1000 · 4 − 2 in f32.
        let x: Vec<f32> = (0..3 * resolution * resolution).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * 4.0 - 2.0).collect();
        let scale = max_abs(&want);
        for fold_bn in [false, true] {
            let bytes = export(&model, &ExportOptions { fold_bn }).unwrap();
            let path = dir.join(format!("{arch}_{fold_bn}.onnx"));
            std::fs::write(&path, &bytes).unwrap();
            let engine = Engine::from_bytes(&bytes, arch.name(), &EngineOptions::default()).unwrap();
            let ours = engine.run(&x).unwrap();
            let theirs = ort_run(&path, &x);
            let (d_torch, d_ort) = (max_abs_diff(&ours, &want), max_abs_diff(&theirs, &want));
            println!("{arch} fold_bn={fold_bn}: max |logit| {scale:.1}; tract vs PyTorch max |Δ| {d_torch:.2e}, onnxruntime vs PyTorch {d_ort:.2e}");
            assert!(d_torch <= 1e-4 * scale, "{arch} fold_bn={fold_bn}: tract vs PyTorch max |Δ| {d_torch} > 1e-4 × {scale}");
            assert!(d_ort <= 1e-4 * scale, "{arch} fold_bn={fold_bn}: onnxruntime vs PyTorch max |Δ| {d_ort} > 1e-4 × {scale}");
        }
        // And the f64 reference interpreter, which knows nothing of ONNX.
        let reference = edgenet::graph::reference::run(&model.graph, &model.weights, &x).unwrap();
        let d_ref = max_abs_diff(&reference, &want);
        assert!(d_ref <= 1e-4 * scale, "{arch}: reference interpreter vs PyTorch max |Δ| {d_ref}");
    }
}

/// MobileNetV3-Small quantizes: with torchvision's own initialisation (the width-0.25 state
/// dict of tests/data/golden, loaded by name) calibrated on four photos of models/calibration
/// at 128², the int8 file passes the onnx checker, runs in tract (onnxruntime agrees within a
/// few steps) and its logits keep a cosine ≥ 0.9 with the f32 model's on four other photos.
///
/// Not edgenet's seeded weights: with those, untrained and BatchNorm at identity, the
/// activations of this net grow to logits in the thousands and the int8 cosine swings with
/// the seed (0.73–0.93 over seeds 1, 2, 3, 5, 7, 11, 17, measured); torchvision's
/// initialisation is what a user's checkpoint starts from.
#[test]
fn mobilenet_v3_small_int8_runs_and_tracks_f32() {
    use edgenet::frames::image_file::load_inputs;
    use edgenet::quant::{quantize, report::report, QuantOptions};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let weights = root.join("tests/data/golden/mobilenet_v3_small_w025.safetensors");
    let c = ZooConfig { width_mult: 0.25, resolution: 128, num_classes: 10 };
    let m = zoo::build(Arch::MobileNetV3Small, &c, WeightSource::Safetensors(&weights)).unwrap();
    let (photos, skipped) = load_inputs(&root.join("models/calibration"), &m.info.preprocess).unwrap();
    assert!(skipped.is_empty() && photos.len() >= 8);
    let cal: Vec<Vec<f32>> = photos[..4].iter().map(|(_, x)| x.clone()).collect();
    let q = quantize(&m, &cal, &QuantOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(q.bias_saturations, 0);
    for (op, n, why) in q.float_summary() {
        println!("mobilenet_v3_small int8: {n} {op} in f32 ({why})");
    }
    let r = report(&m, &q, &photos[4..8], 20.0).unwrap();
    println!("mobilenet_v3_small int8 vs f32: min cosine {:.4} over {} photos", r.min_cosine, r.samples.len());
    for s in &r.samples {
        assert!(s.cosine >= 0.9, "{}: int8 vs f32 cosine {}", s.name, s.cosine);
    }
    let dir = scratch("zoo_mobilenet_v3_small_int8");
    let path = dir.join("mobilenet_v3_small.int8.onnx");
    std::fs::write(&path, &q.bytes).unwrap();
    onnx_check(&path);
    let engine = Engine::from_bytes(&q.bytes, "mobilenet_v3_small int8", &EngineOptions::default()).unwrap();
    for (name, x) in &photos[4..6] {
        let ours = engine.run(x).unwrap();
        let theirs = ort_run(&path, x);
        let steps = max_abs_diff(&ours, &theirs) / q.output_step;
        println!("{name}: int8 tract vs onnxruntime {steps:.2} steps");
        assert!(steps <= 4.001, "{name}: int8 logits differ by {steps} steps");
    }
}

/// `edgenet export` takes the new names (from `Arch::ALL`), with a width multiplier.
#[test]
fn cli_exports_mobilenet_v3() {
    let dir = scratch("zoo_mobilenet_v3_cli");
    for (name, extra) in [("mobilenet_v3_small", &[][..]), ("mobilenet-v3-large", &["--width-mult", "0.5"][..])] {
        let path = dir.join(format!("{name}.onnx"));
        let out = std::process::Command::new(bin()).args(["export", name, "--resolution", "64", "-o"]).arg(&path).args(extra).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let engine = Engine::from_bytes(&std::fs::read(&path).unwrap(), name, &EngineOptions::default()).unwrap();
        assert_eq!(engine.output_len(), 1000);
        assert!(engine.metadata("edgenet.architecture").is_some_and(|a| a.starts_with("mobilenet_v3_")));
    }
    let out = std::process::Command::new(bin()).args(["export", "resnet18", "--width-mult", "0.5", "-o"]).arg(dir.join("r.onnx")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mobilenet_v3_small") && err.contains("fixed width"), "{err}");
}
