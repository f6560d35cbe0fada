//! Bad input gets a clear error naming the culprit, never a panic.

mod common;

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::graph::{Tensor, Weights};
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

fn small() -> ZooConfig {
    ZooConfig { width_mult: 0.35, resolution: 64, num_classes: 10 }
}

fn small_onnx() -> Vec<u8> {
    let m = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Seeded(1)).unwrap();
    export(&m, &ExportOptions::default()).unwrap()
}

#[test]
fn truncated_random_and_empty_onnx_are_errors() {
    let good = small_onnx();
    let opts = EngineOptions::default();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("random".into(), random_input(4096, 3).iter().map(|v| v.to_bits() as u8).collect()),
    ];
    for frac in [2, 3, 10, 100] {
        cases.push((format!("truncated_1/{frac}"), good[..good.len() / frac].to_vec()));
    }
    cases.push(("truncated_minus_1".into(), good[..good.len() - 1].to_vec()));
    for (name, bytes) in cases {
        let e = Engine::from_bytes(&bytes, &name, &opts).expect_err(&name).to_string();
        assert!(e.contains(&name), "engine error does not name the model: {e}");
        let e = edgenet::onnx::import(&bytes, &name).expect_err(&name).to_string();
        assert!(e.contains(&name), "import error does not name the model: {e}");
    }
    let e = Engine::from_path(std::path::Path::new("/nonexistent/m.onnx"), &opts).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/m.onnx"), "{e}");
}

#[test]
fn wrong_input_length_is_an_error() {
    let engine = Engine::from_bytes(&small_onnx(), "small", &EngineOptions::default()).unwrap();
    let e = engine.run(&[0.0; 10]).unwrap_err().to_string();
    assert!(e.contains("expects [1, 3, 64, 64]") && e.contains("got 10"), "{e}");
    let e = Engine::from_bytes(&small_onnx(), "small", &EngineOptions { input_shape: Some([1, 3, 32, 32]), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 3, 64, 64]"), "{e}");
}

#[test]
fn safetensors_errors_name_the_key() {
    let dir = scratch("bad_safetensors");
    let g = zoo::graph(Arch::MobileNetV2, &small()).unwrap();
    let good = Weights::seeded(&g, 1);
    let load = |w: &Weights, name: &str| {
        let p = dir.join(name);
        w.save_safetensors(&p).unwrap();
        zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p))
    };
    let loaded = load(&good, "good.safetensors").unwrap();
    assert_eq!(loaded.weights, good);

    let mut w = good.clone();
    w.insert("features.4.conv.1.0.weight", Tensor::new(vec![2, 2], vec![0.0; 4]).unwrap());
    let e = load(&w, "shape.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.4.conv.1.0.weight") && e.contains("[2, 2]"), "{e}");

    let mut w = good.clone();
    w.remove("classifier.1.bias");
    let e = load(&w, "missing.safetensors").unwrap_err().to_string();
    assert!(e.contains("classifier.1.bias") && e.contains("missing"), "{e}");

    let mut w = good.clone();
    w.insert("features.99.weight", Tensor::new(vec![1], vec![0.0]).unwrap());
    let e = load(&w, "extra.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.99.weight") && e.contains("unexpected"), "{e}");

    let mut w = good.clone();
    w.insert("features.0.1.running_var", Tensor::new(vec![16], vec![f32::NAN; 16]).unwrap());
    let e = load(&w, "nan.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.0.1.running_var") && e.contains("NaN"), "{e}");

    let p = dir.join("garbage.safetensors");
    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot safetensors").unwrap();
    let e = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p)).unwrap_err().to_string();
    assert!(e.contains("garbage.safetensors"), "{e}");
    let p = dir.join("absent.safetensors");
    let e = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p)).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn impossible_configs_are_errors() {
    let c = |width_mult, resolution, num_classes| ZooConfig { width_mult, resolution, num_classes };
    let cases = [
        (Arch::MobileNetV2, c(0.0, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(-1.0, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(f32::NAN, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(100.0, 224, 1000), "width-mult"),
        (Arch::ResNet50, c(0.5, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(1.0, 16, 1000), "resolution"),
        (Arch::ResNet50, c(1.0, 0, 1000), "resolution"),
        (Arch::EfficientNetLite0, c(1.0, 100_000, 1000), "resolution"),
        (Arch::ResNet18, c(1.0, 224, 0), "num-classes"),
    ];
    for (arch, cfg, word) in cases {
        let e = zoo::build(arch, &cfg, WeightSource::Seeded(0)).unwrap_err().to_string();
        assert!(e.contains(word), "{arch} {cfg:?}: {e}");
    }
    assert!("resnet51".parse::<Arch>().unwrap_err().to_string().contains("resnet51"));
    assert_eq!("ResNet-50".parse::<Arch>().unwrap(), Arch::ResNet50);
}

#[test]
fn unsupported_onnx_op_is_named() {
    use prost::Message;
    let mut proto = edgenet::onnx::decode(&small_onnx(), "m").unwrap();
    let g = proto.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.op_type == "Relu" || n.op_type == "Clip").unwrap();
    n.op_type = "HardSwish".into();
    n.input.truncate(1);
    let bytes = proto.encode_to_vec();
    let e = edgenet::onnx::import(&bytes, "hs.onnx").unwrap_err().to_string();
    assert!(e.contains("HardSwish") && e.contains("hs.onnx"), "{e}");
}
