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
