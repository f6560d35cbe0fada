//! `edgenet footprint` and `edgenet bench` through the real binary: their JSON is consistent,
//! bad models fail cleanly, and a 2,000-inference soak does not grow.
//!
//! No test here asserts a speed: timings are checked for order (min ≤ p50 ≤ … ≤ max), never
//! against a number.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// MobileNetV2 ×0.35 at 96², 10 classes, BN folded: f32 and int8. Small enough that 2,000
/// f32 inferences take seconds.
fn small_models(dir: &Path) -> (PathBuf, PathBuf) {
    let f = dir.join("small.onnx");
    let q = dir.join("small.int8.onnx");
    let out = Command::new(bin())
        .args(["export", "mobilenet_v2", "--width-mult", "0.35", "--resolution", "96", "--num-classes", "10", "--fold-bn", "-o"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cal = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/calibration");
    let out = Command::new(bin()).arg("quantize").arg(&f).arg("--calibrate").arg(&cal).arg("-o").arg(&q).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (f, q)
}

fn json_of(args: &[&str], model: &Path) -> Value {
    let out = Command::new(bin()).args(&args[..1]).arg(model).args(&args[1..]).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?} {}: {}", model.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("{path} missing or not an integer in {v}"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or_else(|| panic!("{path} missing or not a number in {v}"))
}

/// Bytes of the plan's constants whose kind mentions `dt` (`I8`, `F32`, …).
fn constant_bytes(v: &Value, dt: &str) -> u64 {
    v["plan"]["constants"].as_array().unwrap().iter().filter(|c| c["kind"].as_str().unwrap().contains(dt)).map(|c| c["bytes"].as_u64().unwrap()).sum()
}

fn check_footprint(v: &Value, model: &Path) {
    let file = std::fs::metadata(model).unwrap().len();
    assert_eq!(u(v, "/file_bytes"), file);
    let weights = u(v, "/weight_bytes");
    assert!(weights > 0 && weights <= file, "weights {weights} vs file {file}");
    let by_type: u64 = v["weights"].as_array().unwrap().iter().map(|g| g["bytes"].as_u64().unwrap()).sum();
    assert_eq!(by_type, weights);
    // The heap is measured in the real binary, and its readings are ordered.
    assert_eq!(v["heap"]["measured"], Value::Bool(true));
    let phases: Vec<&str> = v["heap"]["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        ["read file", "decode protobuf", "translate to tract", "optimize", "build plan", "release free heap", "first inference", "steady state"]
    );
    for p in v["heap"]["phases"].as_array().unwrap() {
        assert!(p["heap_peak_bytes"].as_u64().unwrap() >= p["heap_live_bytes"].as_u64().unwrap(), "{p}");
    }
    let peak = u(v, "/heap/peak_bytes");
    let steady_peak = u(v, "/heap/steady_peak_bytes");
    let steady_live = u(v, "/heap/steady_live_bytes");
    assert!(peak >= steady_peak && steady_peak >= steady_live && steady_live > 0, "{peak} {steady_peak} {steady_live}");
    // The engine holds at least the plan's constants.
    assert!(u(v, "/heap/engine_bytes") >= u(v, "/plan/constant_bytes"), "{}", v["heap"]);
    // Loading reads the whole file into the heap at some point.
    assert!(peak >= file, "heap peak {peak} < file {file}");
    // The activation estimate covers at least the f32 input tensor [1, 3, 96, 96].
    assert!(u(v, "/plan/activation_peak_bytes") >= 3 * 96 * 96 * 4);
    assert!(u(v, "/plan/nodes") > 0);
    let rss_peak = u(v, "/rss/peak_bytes");
    let rss_now = u(v, "/rss/current_bytes");
    assert!(rss_peak >= rss_now && rss_now > 0 && u(v, "/rss/start_bytes") > 0);
    // The process's resident peak holds at least the heap's peak.
    assert!(rss_peak >= peak, "VmHWM {rss_peak} < heap peak {peak}");
    assert!(u(v, "/binary/bytes") > 0);
}

#[test]
fn footprint_json_is_consistent_and_int8_weights_stay_int8() {
    let dir = scratch("footprint_json");
    let (f32_model, int8_model) = small_models(&dir);
    let a = json_of(&["footprint", "--runs", "3"], &f32_model);
    check_footprint(&a, &f32_model);
    let q = json_of(&["footprint", "--runs", "3"], &int8_model);
    check_footprint(&q, &int8_model);
    // The files: the f32 one holds only f32 weights, the int8 one mostly i8.
    let types: Vec<&str> = a["weights"].as_array().unwrap().iter().map(|g| g["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["f32"]);
    assert_eq!(q["weights"][0]["type"], "i8", "{}", q["weights"]);
    // In memory (issue 7, item 5): tract's plan keeps the int8 weights in 8 bits, packed or
    // not, rather than widening them to f32: the int8 plan's constants are far below the f32
    // plan's, and its i8 constants hold at least the file's i8 weights.
    let (ca, cq) = (u(&a, "/plan/constant_bytes"), u(&q, "/plan/constant_bytes"));
    assert!(cq * 2 < ca, "int8 plan constants {cq} vs f32 {ca}");
    let i8_file = q["weights"][0]["bytes"].as_u64().unwrap();
    assert!(constant_bytes(&q, "I8") >= i8_file, "{}", q["plan"]["constants"]);
    // A warm int8 session allocates nothing, down to the small classifier's bias addition
    // (`[1, 10] + [1, 10]`, which tract leaves as a plain binary op).
    assert_eq!(q["heap"]["allocations_per_inference"].as_f64(), Some(0.0), "{}", q["heap"]);
}

#[test]
fn bench_json_is_consistent() {
    let dir = scratch("bench_json");
    let (model, _) = small_models(&dir);
    let v = json_of(&["bench", "--warmup", "2", "--runs", "25"], &model);
    assert_eq!(u(&v, "/runs"), 25);
    assert_eq!(u(&v, "/warmup"), 2);
    assert_eq!(u(&v, "/threads"), 1);
    let l = |k: &str| f(&v, &format!("/latency_ms/{k}"));
    assert!(l("min") > 0.0);
    assert!(l("min") <= l("p50") && l("p50") <= l("p90") && l("p90") <= l("p99") && l("p99") <= l("max"), "{}", v["latency_ms"]);
    assert!(l("min") <= l("mean") && l("mean") <= l("max"));
    assert!((f(&v, "/fps") - 1000.0 / l("mean")).abs() < 1e-6 * f(&v, "/fps"));
    let stages: f64 = v["load"].as_array().unwrap().iter().map(|p| p["ms"].as_f64().unwrap()).sum();
    assert!((f(&v, "/load_ms") - stages).abs() < 1e-9 && stages > 0.0);
    assert!(f(&v, "/first_inference_ms") > 0.0);
    assert_eq!(v["machine"]["arch"], std::env::consts::ARCH);
    assert!(u(&v, "/machine/logical_cores") >= 1);
    assert!(!v["machine"]["cpu"].as_str().unwrap().is_empty());
    assert!(u(&v, "/memory/rss_peak_bytes") >= u(&v, "/memory/rss_end_bytes"));
    assert!(u(&v, "/memory/heap_peak_runs_bytes") >= u(&v, "/memory/heap_live_end_bytes"));
    // The text form carries the same figures.
    let out = Command::new(bin()).arg("bench").arg(&model).args(["--warmup", "1", "--runs", "5"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("p99") && s.contains("fps") && s.contains("timed runs 5"), "{s}");
    let out = Command::new(bin()).arg("footprint").arg(&model).args(["--runs", "1"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("eval_tmp_memory_usage") && s.contains("peak (VmHWM)") && s.contains("steady state (1 runs)"), "{s}");
    assert!(!s.contains("not measured"), "the binary installs the counting allocator: {s}");
}

#[test]
fn bad_models_fail_with_the_file_named_and_no_panic() {
    let dir = scratch("footprint_bad");
    let missing = dir.join("missing.onnx");
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x07this is not an onnx protobuf\xff\xff\xff").unwrap();
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for cmd in ["footprint", "bench"] {
        for (model, why) in [(&missing, "No such file"), (&corrupt, "ONNX"), (&empty, "empty")] {
            let out = Command::new(bin()).arg(cmd).arg(model).arg("--json").output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd} {}: {err}", model.display());
            assert!(err.contains(&model.display().to_string()) && err.contains(why), "{cmd}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(out.stdout.is_empty(), "no partial JSON on failure");
        }
    }
    for bad in [["--runs", "0"], ["--threads", "0"]] {
        let out = Command::new(bin()).arg("bench").arg(&missing).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// 2,000 inferences after a 50-inference warm-up must not accumulate anything.
///
/// The bounds: the heap is counted exactly by the binary's allocator, so heap live after the
/// runs must be within 2,000 bytes of heap live after the warm-up, i.e. less than one byte
/// kept per inference (in practice it is identical). RSS is coarser: pages come and go with the
/// allocator's arenas, so it may move by a few 64 KiB steps; it must grow by less than 1 MiB,
/// which a leak of 512 bytes or more per inference would exceed.
#[test]
fn soak_of_2000_inferences_does_not_grow() {
    let dir = scratch("footprint_soak");
    let (model, _) = small_models(&dir);
    let v = json_of(&["bench", "--warmup", "50", "--runs", "2000"], &model);
    assert_eq!(u(&v, "/runs"), 2000);
    let heap_growth = u(&v, "/memory/heap_live_end_bytes") as i64 - u(&v, "/memory/heap_live_after_warmup_bytes") as i64;
    assert!(heap_growth < 2000, "heap live grew by {heap_growth} bytes over 2000 inferences: {}", v["memory"]);
    let rss_growth = u(&v, "/memory/rss_end_bytes") as i64 - u(&v, "/memory/rss_after_warmup_bytes") as i64;
    assert!(rss_growth < 1 << 20, "RSS grew by {rss_growth} bytes over 2000 inferences: {}", v["memory"]);
    eprintln!("soak: heap live {heap_growth:+} bytes, RSS {rss_growth:+} bytes over 2000 inferences; {}", v["memory"]);
}
