//! Users' own models: torchvision classifiers exported by `torch.onnx.export` at opset 13
//! (tests/data/torchvision, made by scripts/make_torchvision_fixtures.py; reduced widths, random
//! weights). Each one classifies in f32 in edgenet with onnxruntime's logits (recorded by the
//! script, and the judge on the re-exported file), imports into edgenet's graph, quantizes to
//! int8 on the calibration photos, and the int8 file runs in edgenet and in onnxruntime with
//! output cosine ≥ 0.9 against f32 on the same inputs, every int8 tensor within one step of
//! onnxruntime's (measured: identical). Needs the judge (onnxruntime).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::image_file::load_inputs;
use edgenet::quant::{quantize, QuantOptions};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torchvision")
}

struct Fixture {
    file: String,
    input: Vec<usize>,
    ort: Vec<f32>,
}

fn fixtures() -> Vec<Fixture> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Fixture {
            file: m["file"].as_str().unwrap().to_string(),
            input: m["input"]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect(),
            ort: m["onnxruntime_output"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        })
        .collect()
}

/// The script's input: `x[i] = f32((i · 7919) mod 1000) / 1000 · 4 − 2`.
fn script_input(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * 4.0 - 2.0).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(f64::MIN_POSITIVE)
}

fn check(f: &Fixture) {
    let name = f.file.trim_end_matches(".onnx");
    let bytes = std::fs::read(dir().join(&f.file)).unwrap();
    check_model(name, &bytes, &f.input, &f.ort, true);
}

/// `ort`: onnxruntime's logits on [`script_input`]; `reference`: also run edgenet's f64
/// reference interpreter (slow on full-size networks).
fn check_model(name: &str, bytes: &[u8], input: &[usize], ort: &[f32], reference: bool) {
    let n: usize = input.iter().product();
    let x = script_input(n);
    let tol = |r: &[f32]| 1e-4 * max_abs(r) + 1e-6;
    let f = Fixture { file: String::new(), input: input.to_vec(), ort: ort.to_vec() };

    // f32, the file as exported: tract in edgenet's engine against onnxruntime's recorded logits.
    let engine = Engine::from_bytes(bytes, name, &EngineOptions::default()).unwrap();
    let ours = engine.run(&x).unwrap();
    let d = max_abs_diff(&ours, &f.ort);
    assert!(d <= tol(&f.ort), "{name}: f32 in edgenet differs from onnxruntime by {d} (max |logit| {})", max_abs(&f.ort));

    // Imported into edgenet's graph and written again: still the same function.
    let m = edgenet::onnx::import(bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let scratch = scratch(&format!("torchvision_{name}"));
    let re = scratch.join("reexport.onnx");
    let re_bytes = edgenet::onnx::export(&m, &Default::default()).unwrap();
    std::fs::write(&re, &re_bytes).unwrap();
    if reference {
        let r = edgenet::graph::reference::run(&m.graph, &m.weights, &x).unwrap();
        let d = max_abs_diff(&r, &f.ort);
        assert!(d <= tol(&f.ort), "{name}: edgenet's reference interpreter on the imported graph differs from onnxruntime by {d}");
    }
    let theirs = ort_run(&re, &x);
    let d = max_abs_diff(&theirs, &f.ort);
    assert!(d <= tol(&f.ort), "{name}: onnxruntime on edgenet's re-export differs from the original by {d}");

    // int8: calibrated on six photos, judged on four others and the script's input.
    let (photos, _) = load_inputs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/calibration"), &m.info.preprocess).unwrap();
    let photos: Vec<Vec<f32>> = photos.into_iter().map(|(_, p)| p).collect();
    let q = quantize(&m, &photos[..6], &QuantOptions::default(), &mut |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
    let int8 = scratch.join("int8.onnx");
    std::fs::write(&int8, &q.bytes).unwrap();
    onnx_check(&int8);
    let f32_engine = Engine::from_bytes(&re_bytes, name, &EngineOptions::default()).unwrap();
    let q_engine = Engine::from_bytes(&q.bytes, name, &EngineOptions::default()).unwrap();
    let mut worst = (1f64, 1f64);
    for input in photos[6..].iter().chain(std::iter::once(&x)) {
        let want = f32_engine.run(input).unwrap();
        let ours = q_engine.run(input).unwrap();
        let theirs = ort_run(&int8, input);
        worst.0 = worst.0.min(cosine(&ours, &want));
        worst.1 = worst.1.min(cosine(&theirs, &want));
    }
    // Layer by layer against onnxruntime executing the file literally, in quantization steps
    // (the activations' lookup tables in edgenet, f32 functions in onnxruntime).
    let mut names: Vec<String> = q.tensors.iter().map(|t| t.tensor.clone()).collect();
    names.push(q_engine.output_name().to_string());
    let layers = Engine::with_outputs(&q.bytes, name, &EngineOptions::default(), &names).unwrap();
    let ours = layers.run_all(&photos[6]).unwrap();
    let theirs = ort_run_tensors_literal(&int8, &photos[6], &names);
    let steps: Vec<f32> = ours.iter().zip(&theirs).take(names.len() - 1).map(|(a, b)| max_abs_diff(a, b)).collect();
    let first_off = steps.iter().position(|&d| d > 1.0);
    println!(
        "{name}: int8 tensors vs onnxruntime (literal): max {} steps, {} of {} tensors differ by more than one step{}",
        steps.iter().cloned().fold(0.0, f32::max),
        steps.iter().filter(|&&d| d > 1.0).count(),
        steps.len(),
        first_off.map(|k| format!(", first {}", names[k])).unwrap_or_default()
    );
    assert!(first_off.is_none(), "{name}: an int8 tensor differs from onnxruntime's by more than one step");
    let floats: Vec<String> = q.float_layers.iter().map(|l| l.op.to_string()).collect();
    let mut kinds = floats.clone();
    kinds.sort();
    kinds.dedup();
    let summary: Vec<String> = kinds.iter().map(|k| format!("{} {k}", floats.iter().filter(|f| *f == k).count())).collect();
    println!(
        "{name}: int8 cosine vs f32: edgenet {:.4}, onnxruntime {:.4}; {} int8 tensors; f32 layers: {}; concat inputs requantized: {}",
        worst.0,
        worst.1,
        q.tensors.len(),
        if summary.is_empty() { "none".to_string() } else { summary.join(", ") },
        q.requantized_concat_inputs
    );
    assert!(worst.0 >= 0.9, "{name}: int8 in edgenet has cosine {} against f32", worst.0);
    assert!(worst.1 >= 0.9, "{name}: int8 in onnxruntime has cosine {} against f32", worst.1);
}

/// The full-size torchvision classifiers at 224² (random weights), exported by
/// `scripts/make_torchvision_fixtures.py --full DIR`, which needs PyTorch (not installed by the
/// test set-up): `EDGENET_TORCHVISION_FULL=DIR cargo test --release --test torchvision -- --ignored`.
#[test]
#[ignore = "needs full-size exports made with PyTorch: EDGENET_TORCHVISION_FULL=DIR (scripts/make_torchvision_fixtures.py --full DIR)"]
fn judge_full_size_exports() {
    let dir = PathBuf::from(std::env::var("EDGENET_TORCHVISION_FULL").expect("EDGENET_TORCHVISION_FULL names the folder of full-size exports"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    files.sort();
    assert!(!files.is_empty(), "no .onnx files in {}", dir.display());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let input = [1, 3, 224, 224];
        let ort = ort_run(&path, &script_input(3 * 224 * 224));
        check_model(&name, &bytes, &input, &ort, false);
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let all = fixtures();
                let f = all.iter().find(|f| f.file == $file).expect("fixture listed in expected.json");
                check(f);
            }
        )*

        /// Every fixture the script made has a test here.
        #[test]
        fn every_fixture_is_tested() {
            let tested = [$($file),*];
            for f in fixtures() {
                assert!(tested.contains(&f.file.as_str()), "{} has no test", f.file);
            }
        }
    };
}

fixture_tests! {
    judge_mobilenet_v3_small => "mobilenet_v3_small.onnx",
    judge_mobilenet_v3_large => "mobilenet_v3_large.onnx",
    judge_efficientnet_b0 => "efficientnet_b0.onnx",
    judge_shufflenet_v2 => "shufflenet_v2.onnx",
    judge_shufflenet_v2_without_constant_folding => "shufflenet_v2_nofold.onnx",
    judge_squeezenet1_1 => "squeezenet1_1.onnx",
    judge_mnasnet => "mnasnet.onnx",
    judge_googlenet_small => "googlenet_small.onnx",
    judge_densenet => "densenet.onnx",
    judge_regnet_y => "regnet_y.onnx",
    judge_resnet18 => "resnet18.onnx",
}
