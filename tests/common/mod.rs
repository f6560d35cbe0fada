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

/// Writes a line to the process's stderr directly, past the test harness's capture (which only
/// takes `eprintln!`): what provisioning does shows even when the tests pass.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// What the judge needs from PyPI, pinned (the same versions `.ci/run` installs); the
/// ffmpeg wheel is the tests' ffmpeg where the system has none.
const JUDGE_PACKAGES: [&str; 4] = ["onnx==1.23.2", "onnxruntime==1.32.0", "numpy<3", "imageio-ffmpeg==0.8.1"];

/// The Python that runs the judge, and the folder to put on its `PYTHONPATH` (when the
/// packages were installed with `pip --target`).
#[derive(Debug, Clone)]
struct Judge {
    python: PathBuf,
    pythonpath: Option<PathBuf>,
}

impl Judge {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.python);
        if let Some(p) = &self.pythonpath {
            c.env("PYTHONPATH", p);
        }
        c
    }

    fn runs(&self, code: &str) -> bool {
        self.command().args(["-c", code]).output().is_ok_and(|o| o.status.success())
    }
}

/// The judge: `$EDGENET_PYTHON` if set; else `python3` if it has onnx, onnxruntime and numpy;
/// else Python packages provisioned once under `target/judge` from PyPI (a virtual
/// environment, or `pip install --target` where python3 has no `venv` module) and reused
/// afterwards. Says what it does on stderr; a failure names what failed and how to fix it.
fn judge_env() -> &'static Judge {
    static CELL: std::sync::OnceLock<Judge> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        if let Ok(p) = std::env::var("EDGENET_PYTHON") {
            return Judge { python: p.into(), pythonpath: None };
        }
        let system = Judge { python: "python3".into(), pythonpath: None };
        if system.runs("import onnx, onnxruntime, numpy") {
            return system;
        }
        provisioned()
    })
}

/// The judge's packages installed under `target/judge` (see [`judge_env`]).
fn provisioned() -> Judge {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("judge");
    let venv = Judge { python: dir.join("venv/bin/python"), pythonpath: None };
    let target = Judge { python: "python3".into(), pythonpath: Some(dir.join("site")) };
    let ready = dir.join("ready");
    let check = "import onnx, onnxruntime, numpy, imageio_ffmpeg";
    let _lock = DirLock::take(&dir.join("lock"));
    if ready.exists() {
        for j in [&venv, &target] {
            if j.runs(check) {
                return j.clone();
            }
        }
    }
    say!(
        "edgenet tests: python3 has no onnx/onnxruntime; installing the external judge ({}) from PyPI into {} (once; later runs reuse it)",
        JUDGE_PACKAGES.join(" "),
        dir.display()
    );
    std::fs::create_dir_all(&dir).expect("create target/judge");
    let pip = |python: &Judge, extra: &[&str]| -> Result<(), String> {
        let out = python
            .command()
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(extra)
            .args(JUDGE_PACKAGES)
            .output()
            .map_err(|e| format!("cannot start {}: {e}", python.python.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let venv_made = Command::new("python3").args(["-m", "venv"]).arg(dir.join("venv")).output().is_ok_and(|o| o.status.success());
    let result = if venv_made {
        pip(&venv, &[]).map(|()| venv)
    } else {
        say!("edgenet tests: python3 has no working `venv` module; using `pip install --target {}`", dir.join("site").display());
        let site = dir.join("site");
        pip(&Judge { python: "python3".into(), pythonpath: None }, &["--target", site.to_str().unwrap()]).map(|()| target)
    };
    match result {
        Ok(j) if j.runs(check) => {
            std::fs::write(&ready, JUDGE_PACKAGES.join("\n")).expect("write target/judge/ready");
            say!("edgenet tests: the external judge is ready ({})", j.python.display());
            j
        }
        Ok(j) => panic!("the judge's packages were installed in {} but do not import with {}", dir.display(), j.python.display()),
        Err(e) => panic!(
            "could not install the external judge from PyPI ({}): {e}\nThe tests compare edgenet with onnxruntime and need these packages: \
             check that PyPI can be reached, or set EDGENET_PYTHON to a python3 that has onnx and onnxruntime.",
            JUDGE_PACKAGES.join(" ")
        ),
    }
}

/// A lock between test processes provisioning the judge at once: a directory made atomically,
/// removed on drop. A lock older than 15 minutes is taken to be left by a killed run.
struct DirLock(PathBuf);

impl DirLock {
    fn take(path: &Path) -> DirLock {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let start = std::time::Instant::now();
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return DirLock(path.to_path_buf()),
                Err(_) => {
                    let stale = std::fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() > 900);
                    if stale || start.elapsed().as_secs() > 1800 {
                        let _ = std::fs::remove_dir(path);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The `ffmpeg` the stream tests feed `edgenet run` with: the system's if it has one, else
/// the static binary of the `imageio-ffmpeg` wheel the judge provisioning installs.
pub fn ffmpeg_exe() -> PathBuf {
    static CELL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        if Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success()) {
            return "ffmpeg".into();
        }
        let mut judge = judge_env().clone();
        if !judge.runs("import imageio_ffmpeg") {
            judge = provisioned();
        }
        let out = judge
            .command()
            .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
            .output()
            .expect("run the judge's python for imageio_ffmpeg");
        assert!(out.status.success(), "no ffmpeg on the PATH and imageio_ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
        let exe = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        say!("edgenet tests: no ffmpeg on the PATH; using {}", exe.display());
        exe
    })
    .clone()
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
    let judge = judge_env();
    let mut cmd = judge.command();
    if literal {
        cmd.env("EDGENET_ORT_LITERAL", "1");
    }
    let out = cmd.arg(judge_script()).args(args).output().unwrap_or_else(|e| panic!("cannot start the external judge ({}): {e}", judge.python.display()));
    assert!(out.status.success(), "judge {:?} failed:\n{}\n{}", args, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
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
