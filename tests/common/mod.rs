//! Helpers shared by the integration tests: temporary files and the external judge
//! (onnx checker + onnxruntime through tests/judge/ort_judge.py).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory under the target dir for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn judge_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/judge/ort_judge.py")
}

fn python() -> String {
    std::env::var("EDGENET_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs the judge; a missing judge (no python3, onnx or onnxruntime) fails the test: the
/// external comparison is the point of these tests.
fn judge(args: &[&str]) -> String {
    judge_with(args, false)
}

/// `literal`: onnxruntime with its graph optimisations off, executing the file's ops as
/// written (by default it fuses DequantizeLinear → Add → QuantizeLinear into its own
/// QLinearAdd, which rounds differently).
fn judge_with(args: &[&str], literal: bool) -> String {
    let mut cmd = Command::new(python());
    if literal {
        cmd.env("EDGENET_ORT_LITERAL", "1");
    }
    let out = cmd.arg(judge_script()).args(args).output().unwrap_or_else(|e| {
        panic!("cannot start the external judge ({}): {e}. Install python3 with onnx and onnxruntime (see .ci/run).", python())
    });
    assert!(
        out.status.success(),
        "judge {:?} failed:\n{}\n{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// onnx.checker.check_model(full_check=True) must accept the file.
pub fn onnx_check(model: &Path) {
    let s = judge(&["check", model.to_str().unwrap()]);
    assert!(s.contains("ok"), "{s}");
}

/// Runs `model` in onnxruntime on `input` and returns its first output.
pub fn ort_run(model: &Path, input: &[f32]) -> Vec<f32> {
    let dir = model.parent().unwrap();
    let stem = model.file_stem().unwrap().to_string_lossy();
    let inp = dir.join(format!("{stem}.in.f32"));
    let outp = dir.join(format!("{stem}.out.f32"));
    std::fs::write(&inp, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    judge(&["run", model.to_str().unwrap(), inp.to_str().unwrap(), outp.to_str().unwrap()]);
    let bytes = std::fs::read(&outp).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Runs `model` in onnxruntime on `input` and returns the named (intermediate) tensors.
pub fn ort_run_tensors(model: &Path, input: &[f32], names: &[String]) -> Vec<Vec<f32>> {
    ort_run_tensors_with(model, input, names, false)
}

/// [`ort_run_tensors`] with onnxruntime executing the file literally (no graph optimisations).
pub fn ort_run_tensors_literal(model: &Path, input: &[f32], names: &[String]) -> Vec<Vec<f32>> {
    ort_run_tensors_with(model, input, names, true)
}

fn ort_run_tensors_with(model: &Path, input: &[f32], names: &[String], literal: bool) -> Vec<Vec<f32>> {
    let dir = model.parent().unwrap().join(format!("{}.tensors", model.file_stem().unwrap().to_string_lossy()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let inp = dir.join("input.f32");
    std::fs::write(&inp, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let mut args = vec!["run-tensors", model.to_str().unwrap(), inp.to_str().unwrap(), dir.to_str().unwrap()];
    args.extend(names.iter().map(String::as_str));
    judge_with(&args, literal);
    (0..names.len())
        .map(|i| {
            let bytes = std::fs::read(dir.join(format!("{i}.f32"))).unwrap();
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
        .collect()
}

/// Deterministic pseudo-random input in [-2, 2).
pub fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// max |a − b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// max |a|.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// Path of the release-built binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgenet"))
}
