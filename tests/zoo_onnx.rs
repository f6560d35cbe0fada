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
            assert!(diff <= 1e-4 * scale, "{arch} fold_bn={fold_bn}: tract vs onnxruntime max |Δ| {diff} > 1e-4 × {scale}");
            outs.push(ours);
        }
        tract_outputs.push(outs);
    }
    for (plain, folded) in tract_outputs[0].iter().zip(&tract_outputs[1]) {
        let diff = max_abs_diff(plain, folded);
        let scale = max_abs(plain);
        assert!(diff <= 1e-4 * scale, "{arch}: folded vs unfolded max |Δ| {diff} > 1e-4 × {scale}");
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
