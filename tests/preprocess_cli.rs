//! The real binary on a model that carries no `edgenet.preprocess` metadata (torchvision's
//! MobileNetV2 exported by `torch.onnx.export`, tests/data): the preset assumed with a warning,
//! presets and single options, quantize recording the preprocessing, usage errors (issue 14).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use edgenet::onnx::meta;
use prost::Message;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn foreign() -> PathBuf {
    root().join("tests/data/mobilenet_v2_torchvision.onnx")
}

fn photo() -> PathBuf {
    root().join("models/demo/chelsea.png")
}

fn edgenet(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(bin()).args(args).args(paths).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `classify --json` of one photo: the top-10 (index, probability) pairs.
fn top(model: &Path, extra: &[&str]) -> (Vec<(u64, f64)>, String) {
    let out = Command::new(bin()).arg("classify").arg(model).arg(photo()).args(["--json", "--top", "10"]).args(extra).output().unwrap();
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = v["top"].as_array().unwrap().iter().map(|t| (t["index"].as_u64().unwrap(), t["probability"].as_f64().unwrap())).collect();
    (top, stderr(&out))
}

const IMAGENET: [&str; 4] = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"];

#[test]
fn a_model_without_metadata_classifies_with_a_warning_naming_the_assumed_preset() {
    let (assumed, err) = top(&foreign(), &[]);
    assert!(err.contains("mobilenet_v2_torchvision.onnx has no edgenet.preprocess metadata"), "{err}");
    assert!(err.contains("assuming --preset imagenet (resize 256, crop 224, bilinear, mean 0.485,0.456,0.406, std 0.229,0.224,0.225 on 0..1, rgb)"), "{err}");
    assert!(err.contains("give --preset or the preprocessing options"), "{err}");
    // The preset named, or its values given one by one: the same result, and no warning.
    let (named, err) = top(&foreign(), &["--preset", "imagenet"]);
    assert!(!err.contains("WARN"), "{err}");
    assert_eq!(named, assumed);
    let (explicit, err) = top(&foreign(), &IMAGENET);
    assert!(!err.contains("WARN"), "{err}");
    assert_eq!(explicit, assumed);
    let (explicit, _) = top(&foreign(), &[&IMAGENET[..], &["--resize", "256", "--crop", "224", "--channel-order", "rgb"]].concat());
    assert_eq!(explicit, assumed);
    // Another convention, another input tensor: other probabilities.
    for other in [&["--preset", "inception"][..], &["--preset", "lite"], &["--channel-order", "bgr"], &["--resize", "320"], &["--mean", "0.5"]] {
        let (o, _) = top(&foreign(), other);
        assert_ne!(o, assumed, "{other:?}");
    }
}

#[test]
fn options_override_an_edgenet_models_metadata() {
    let dir = scratch("preprocess_override");
    let m = dir.join("m.onnx");
    let out = edgenet(&["export", "mobilenet_v2", "--width-mult", "0.35", "--resolution", "96", "-o"], &[&m]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its metadata is torchvision's: the same as --preset imagenet, and no warning.
    let (meta, err) = top(&m, &[]);
    assert!(!err.contains("WARN"), "{err}");
    let (imagenet, err) = top(&m, &["--preset", "imagenet", "-v"]);
    assert_eq!(imagenet, meta);
    assert!(err.contains("override its edgenet.preprocess metadata"), "{err}");
    let (inception, _) = top(&m, &["--preset", "inception"]);
    assert_ne!(inception, meta);
}

#[test]
fn quantize_records_the_preprocessing_and_the_int8_file_needs_no_options() {
    let dir = scratch("preprocess_quantize");
    let cal = dir.join("cal");
    std::fs::create_dir_all(&cal).unwrap();
    for f in ["coins.png", "horse.png"] {
        std::fs::copy(root().join("models/calibration").join(f), cal.join(f)).unwrap();
    }
    let preprocess_of = |p: &Path| -> Option<String> {
        let proto = edgenet::onnx::decode(&std::fs::read(p).unwrap(), "q").unwrap();
        proto.metadata_props.iter().find(|e| e.key == meta::PREPROCESS).map(|e| e.value.clone())
    };
    assert_eq!(preprocess_of(&foreign()), None);
    // Nothing given: the assumed preset, with the warning, recorded.
    let q = dir.join("assumed.int8.onnx");
    let out = Command::new(bin()).arg("quantize").arg(foreign()).arg("--calibrate").arg(&cal).arg("-o").arg(&q).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("assuming --preset imagenet"), "{}", stderr(&out));
    let json = preprocess_of(&q).expect("metadata written");
    let p: edgenet::frames::preprocess::Preprocess = serde_json::from_str(&json).unwrap();
    assert_eq!(p, edgenet::frames::preprocess::Preprocess::torchvision(224));
    // A preset given: that one recorded; the int8 file then classifies with no warning.
    let q = dir.join("inception.int8.onnx");
    let out = Command::new(bin()).arg("quantize").arg(foreign()).arg("--calibrate").arg(&cal).args(["--preset", "inception", "-o"]).arg(&q).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let p: edgenet::frames::preprocess::Preprocess = serde_json::from_str(&preprocess_of(&q).unwrap()).unwrap();
    assert_eq!(p, edgenet::frames::preprocess::Preset::Inception.preprocess(224, 224));
    let out = edgenet(&["classify"], &[&q, &photo()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // And `run` too.
    let out = Command::new(bin()).arg("run").arg(&q).arg("--source").arg(photo()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
}

#[test]
fn run_takes_the_same_options() {
    let out = Command::new(bin()).arg("run").arg(foreign()).arg("--source").arg(photo()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("assuming --preset imagenet"), "{}", stderr(&out));
    let out = Command::new(bin()).arg("run").arg(foreign()).arg("--source").arg(photo()).args(["--preset", "lite", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
}

#[test]
fn bad_options_exit_2_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["--preset", "vgg"], "imagenet, inception, lite, raw"),
        (&["--mean", "0.5,0.5"], "--mean"),
        (&["--mean", "1,2,3,4"], "--mean"),
        (&["--std", "0.2,0,0.2"], "--std"),
        (&["--std", "0.2,-0.2,0.2"], "--std"),
        (&["--std", "0.2,inf,0.2"], "--std"),
        (&["--std", "0.2,nan,0.2"], "--std"),
        (&["--crop", "256"], "--crop 256x256 does not match the model's input size 224x224"),
        (&["--crop", "224", "--resize", "200"], "--crop 224 is larger than --resize 200"),
        (&["--resize", "200"], "--resize 200"),
        (&["--crop", "0"], "--crop"),
        (&["--channel-order", "grb"], "--channel-order"),
        (&["--range", "0..2"], "--range"),
        (&["--range", "0..255"], "--range"),
    ];
    for (args, want) in cases {
        for verb in ["classify", "run", "bench"] {
            let mut c = Command::new(bin());
            c.arg(verb).arg(foreign());
            match verb {
                "classify" => c.arg(photo()),
                "run" => c.arg("--source").arg(photo()),
                _ => c.args(["--runs", "1", "--warmup", "0"]),
            };
            let out = c.args(*args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{verb} {args:?}: {err}");
            assert!(err.contains(want), "{verb} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let dir = scratch("preprocess_bad_quantize");
    let out = Command::new(bin())
        .arg("quantize")
        .arg(foreign())
        .arg("--calibrate")
        .arg(root().join("models/calibration"))
        .args(["--crop", "96", "-o"])
        .arg(dir.join("q.onnx"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--crop 96x96 does not match"), "{}", stderr(&out));
    assert!(!dir.join("q.onnx").exists());
}

/// `torch.onnx.export` with dynamic axes: the file does not fix the input size, so `--crop`
/// (or the default 224) gives it.
#[test]
fn a_model_whose_input_size_is_not_fixed_takes_the_crop() {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    let dir = scratch("preprocess_dynamic");
    let mut proto = edgenet::onnx::decode(&std::fs::read(foreign()).unwrap(), "foreign").unwrap();
    let input = &mut proto.graph.as_mut().unwrap().input[0];
    let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) else { panic!("input type") };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    for (d, name) in dims.iter_mut().zip(["batch", "", "height", "width"]) {
        if !name.is_empty() {
            d.value = Some(Value::DimParam(name.into()));
        }
    }
    let m = dir.join("dynamic.onnx");
    std::fs::write(&m, proto.encode_to_vec()).unwrap();
    let (default, err) = top(&m, &[]);
    assert!(err.contains("assuming --preset imagenet (resize 256, crop 224"), "{err}");
    assert_eq!(default, top(&foreign(), &[]).0);
    let (small, err) = top(&m, &["--crop", "160", "--preset", "imagenet"]);
    assert!(!err.contains("WARN"), "{err}");
    assert_ne!(small, default);
    let out = edgenet(&["classify", "--crop", "160", "--resize", "150"], &[&m, &photo()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--crop 160 is larger than --resize 150"), "{}", stderr(&out));
}
