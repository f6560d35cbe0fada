//! The real binary: export → inspect, exit codes, closed stdout.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn export_then_inspect() {
    let dir = scratch("cli_export");
    let m = dir.join("m.onnx");
    let out = Command::new(bin()).args(["export", "mobilenet_v2", "-o"]).arg(&m).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3504872 parameters"));
    let out = Command::new(bin()).arg("inspect").arg(&m).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("parameters: 3504872"), "{s}");
    assert!(s.contains("opset 13"), "{s}");
    assert!(s.contains("edgenet.architecture = mobilenet_v2"), "{s}");
    assert!(s.contains("features.17.conv.1.0"), "{s}");
    assert!(s.contains("Conv×52") && s.contains("BatchNormalization×52"), "{s}");
    // Folded: no BatchNorm left, one bias per conv instead of BN's scale and shift.
    let f = dir.join("f.onnx");
    let out = Command::new(bin()).args(["export", "mobilenet_v2", "--fold-bn", "-o"]).arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&Command::new(bin()).arg("inspect").arg(&f).output().unwrap().stdout).into_owned();
    assert!(s.contains("Conv×52") && !s.contains("BatchNormalization"), "{s}");
    assert!(s.contains("edgenet.bn_folded = true"), "{s}");
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let out = Command::new(bin()).args(["export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let x = scratch("usage_errors").join("x.onnx");
    let x = x.to_str().unwrap();
    let out = Command::new(bin()).args(["export", "resnet51", "-o", x]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resnet51"));
    let out = Command::new(bin()).args(["export", "mobilenet_v2", "--width-mult", "0", "-o", x]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("width-mult"));
    let out = Command::new(bin()).args(["inspect", "/nonexistent.onnx"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.onnx"));
    let dir = scratch("cli_bad");
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"definitely not onnx").unwrap();
    let out = Command::new(bin()).arg("inspect").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.onnx") && !err.contains("panicked"), "{err}");
}

#[test]
fn closed_stdout_exits_0() {
    let dir = scratch("cli_pipe");
    let m = dir.join("m.onnx");
    let st = Command::new(bin()).args(["export", "resnet18", "-o"]).arg(&m).stdout(Stdio::null()).status().unwrap();
    assert!(st.success());
    let mut child = Command::new(bin()).arg("inspect").arg(&m).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `inspect` of an int8 file prints each int8 layer's kernel plan: this CPU's, and with
/// `--kernels` another set's, planned for the architecture it belongs to (a Raspberry Pi 5's
/// `dotprod` on a PC) without running it. An unknown set is a usage error.
#[test]
fn inspect_prints_the_int8_kernel_plan() {
    let m = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/int8/mobilenet_v2_035_48.int8.onnx");
    let run = |extra: &[&str]| -> String {
        let out = Command::new(bin()).arg("inspect").arg(m).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lines = |s: &str| s.lines().filter(|l| l.contains(" on ") && (l.contains("gemm") || l.contains("depthwise") || l.contains("winograd"))).count();
    let host = run(&[]);
    assert!(host.contains("(this CPU)") && !host.contains("per-layer table unavailable"), "{host}");
    // One plan line per quantized convolution or matmul of the file (its `ops:` line).
    let count = |op: &str| -> usize {
        let ops = host.lines().find(|l| l.starts_with("ops:")).unwrap();
        ops.split_whitespace().find_map(|t| t.strip_prefix(op).and_then(|n| n.strip_prefix('×')).and_then(|n| n.parse().ok())).unwrap_or(0)
    };
    let layers = count("QLinearConv") + count("QLinearMatMul");
    assert!(layers > 0 && lines(&host) == layers, "{layers} quantized nodes in the file:\n{host}");
    assert!(host.contains(&format!("{layers} layers:")), "{host}");
    let dot = run(&["--kernels", "dotprod"]);
    assert!(dot.contains("int8 kernel plan for dotprod on aarch64"), "{dot}");
    assert!(dot.contains("depthwise sdot") && dot.contains("gemm 8x8x4") && !dot.contains("4x16x2"), "{dot}");
    assert_eq!(lines(&dot), lines(&host), "{dot}");
    let neon = run(&["--kernels", "neon"]);
    assert!(neon.contains("depthwise neon i16 tap groups") && neon.contains("gemm 4x4x16"), "{neon}");
    let portable = run(&["--kernels", "portable"]);
    assert!(portable.contains("depthwise i16 planes") && portable.contains("gemm 4x16x2"), "{portable}");
    let out = Command::new(bin()).arg("inspect").arg(m).args(["--kernels", "sse9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
