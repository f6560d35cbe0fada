//! Real classification with the shipped EfficientNet-Lite0 weights: golden logits from an
//! independent float64 implementation, real photos through the full preprocessing, the
//! `classify` command's handling of bad files, and torchvision state-dict import.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::load_rgb;
use edgenet::frames::preprocess::{Crop, Preprocess};
use edgenet::onnx::{export, ExportOptions};
use edgenet::runner::{top_k, Classifier, TopK};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// EfficientNet-Lite0 from models/, exported (BN folded) once for all tests here.
fn lite0_onnx() -> &'static (PathBuf, Vec<u8>) {
    static CELL: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let w = root().join("models/efficientnet_lite0.safetensors");
        let model = zoo::build(Arch::EfficientNetLite0, &ZooConfig::default(), WeightSource::Safetensors(&w)).unwrap();
        let bytes = export(&model, &ExportOptions { fold_bn: true }).unwrap();
        let dir = scratch("classify_lite0");
        let path = dir.join("efficientnet_lite0.onnx");
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    })
}

fn engine() -> Engine {
    Engine::from_bytes(&lite0_onnx().1, "lite0", &EngineOptions::default()).unwrap()
}

#[test]
fn golden_logits_match_the_independent_reference() {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("tests/data/reference_logits.json")).unwrap()).unwrap();
    let images = json["images"].as_object().unwrap();
    assert_eq!(images.len(), 5);
    // Unfolded too: folding must not move the logits.
    let w = root().join("models/efficientnet_lite0.safetensors");
    let model = zoo::build(Arch::EfficientNetLite0, &ZooConfig::default(), WeightSource::Safetensors(&w)).unwrap();
    let unfolded = export(&model, &ExportOptions { fold_bn: false }).unwrap();
    let engines = [engine(), Engine::from_bytes(&unfolded, "unfolded", &EngineOptions::default()).unwrap()];
    for (name, entry) in images {
        let want: Vec<f32> = entry["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(want.len(), 1000);
        let img = load_rgb(&root().join(format!("tests/data/ref224/{name}.png"))).unwrap();
        assert_eq!((img.width, img.height), (224, 224));
        // The crops are exact: (pixel − 127) / 128, NCHW, no resize.
        let mut x = vec![0f32; 3 * 224 * 224];
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                x[c * 224 * 224 + i] = (px[c] as f32 - 127.0) / 128.0;
            }
        }
        for e in &engines {
            let got = e.run(&x).unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(diff <= 1e-3, "{name} ({}): max |Δ| {diff}", e.origin());
        }
        // And through the Preprocessor with a squash to the same size (identity resampling).
        let pre = Preprocess { crop: Crop::Squash, ..Preprocess::efficientnet_lite(224) };
        let mut c = Classifier::new(engine(), Some(pre)).unwrap();
        let got = c.classify(&img).unwrap();
        assert!(max_abs_diff(got, &want) <= 1e-3, "{name} via the preprocessor");
    }
}

fn top5(c: &mut Classifier, photo: &str) -> Vec<usize> {
    let img = load_rgb(&root().join("models/demo").join(photo)).unwrap();
    let logits = c.classify(&img).unwrap();
    let mut t = TopK::new();
    top_k(logits, 5, &mut t);
    t.iter().map(|p| p.index).collect()
}

#[test]
fn photos_through_the_full_preprocessing() {
    let mut c = Classifier::new(engine(), None).unwrap();
    assert_eq!(c.preprocess(), &Preprocess::efficientnet_lite(224));
    let cases: [(&str, &[usize]); 4] = [("chelsea.png", &[281, 282, 285]), ("coffee.png", &[967]), ("camera.png", &[872]), ("rocket.jpg", &[657])];
    for (photo, accepted) in cases {
        let t = top5(&mut c, photo);
        assert!(accepted.contains(&t[0]), "{photo}: top-5 {t:?}, accepted top-1 {accepted:?}");
    }
    let t = top5(&mut c, "grace_hopper.jpg");
    assert!(t.contains(&652), "grace_hopper centre crop: 652 not in top-5 {t:?}");
    let squash = Preprocess { crop: Crop::Squash, ..Preprocess::efficientnet_lite(224) };
    let mut s = Classifier::new(engine(), Some(squash)).unwrap();
    let t = top5(&mut s, "grace_hopper.jpg");
    assert_eq!(t[0], 652, "grace_hopper squashed: top-5 {t:?}");
}

#[test]
fn classify_command_reports_bad_files_and_classifies_the_rest() {
    let dir = scratch("classify_bad");
    let (model, _) = lite0_onnx();
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let unknown = dir.join("notes.png");
    std::fs::write(&unknown, b"this is a text file, not an image at all").unwrap();
    let truncated = dir.join("truncated.jpg");
    let full = std::fs::read(root().join("models/demo/rocket.jpg")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    let missing = dir.join("missing.jpg");
    let good = root().join("models/demo/coffee.png");
    let out =
        Command::new(bin()).arg("classify").arg(model).args([&empty, &unknown, &good, &truncated, &missing]).args(["--json", "--top", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed image makes the call fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for f in ["empty.png", "notes.png", "missing.jpg"] {
        assert!(stderr.contains(f), "no error naming {f}: {stderr}");
    }
    assert!(stderr.contains("empty") && stderr.contains("unrecognised image format"), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    let coffee = lines.iter().find(|l| l["image"].as_str().unwrap().ends_with("coffee.png")).unwrap();
    assert_eq!(coffee["top"][0]["index"], 967);
    assert!(coffee["top"][0]["label"].as_str().unwrap().starts_with("espresso"));
    assert_eq!(coffee["top"].as_array().unwrap().len(), 3);
    // A truncated JPEG either decodes partially (then it is classified) or fails with its name.
    let trunc = lines.iter().find(|l| l["image"].as_str().unwrap().ends_with("truncated.jpg")).unwrap();
    assert!(trunc.get("top").is_some() || trunc["error"].as_str().unwrap().contains("truncated.jpg"), "{trunc}");

    // Labels with the wrong number of lines: named, and the image is still classified.
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "cat\ndog\n").unwrap();
    let out = Command::new(bin()).arg("classify").arg(model).arg(&good).arg("--labels").arg(&labels).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("labels.txt") && stderr.contains("2 lines") && stderr.contains("1000"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class 967"), "{stdout}");
}

#[test]
fn demo_prints_correct_top5() {
    let out = Command::new(bin()).arg("demo").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.contains("f32: 5/5 photos as expected") && s.contains("int8: 5/5 as expected"), "{s}");
    assert!(s.contains("same top-1 on 6/6 photos"), "{s}");
    assert!(s.contains("tabby") || s.contains("tiger cat") || s.contains("Egyptian cat"), "{s}");
    assert!(s.contains("espresso") && s.contains("missile") && s.contains("tripod"), "{s}");
    assert!(s.contains("peak resident memory"), "{s}");
}

/// A state dict saved from torchvision has `num_batches_tracked` int64 counters beside the
/// float tensors; it loads into the zoo graph by name.
#[test]
fn torchvision_state_dicts_load_by_name() {
    let dir = scratch("torchvision_import");
    for arch in [Arch::MobileNetV2, Arch::ResNet50] {
        let cfg = ZooConfig { resolution: 64, ..Default::default() };
        let g = zoo::graph(arch, &cfg).unwrap();
        let w = edgenet::graph::Weights::seeded(&g, 21);
        // Write it as torch would: f32 tensors plus an I64 scalar per BatchNorm.
        let mut raw: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
            w.iter().map(|(k, t)| (k.clone(), safetensors::Dtype::F32, t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
        for k in w.iter().map(|(k, _)| k.clone()).filter(|k| k.ends_with(".running_mean")).collect::<Vec<_>>() {
            let name = k.replace(".running_mean", ".num_batches_tracked");
            raw.push((name, safetensors::Dtype::I64, vec![], 12345i64.to_le_bytes().to_vec()));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            raw.iter().map(|(k, d, s, b)| (k.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
        let path = dir.join(format!("{arch}.safetensors"));
        std::fs::write(&path, safetensors::serialize(views, &None).unwrap()).unwrap();
        let m = zoo::build(arch, &cfg, WeightSource::Safetensors(&path)).unwrap();
        assert_eq!(m.weights, w, "{arch}");
    }
}
