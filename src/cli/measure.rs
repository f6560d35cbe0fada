//! What `footprint` and `bench` share: loading a model with each stage timed and its heap
//! high-water read from the binary's counting allocator, a synthetic input, latency
//! statistics, a progress bar and a description of the machine.

use std::io::IsTerminal;
use std::time::Instant;

use edgenet::alloc::{AllocSnapshot, CountingAlloc};
use edgenet::engine::{BuildPhase, Engine, EngineOptions};

use super::ModelSource;
use serde::Serialize;

/// The binary's global allocator.
pub fn alloc() -> &'static CountingAlloc {
    &crate::ALLOC
}

/// Heap readings, or `None` when the counting allocator is not the global one.
pub fn heap() -> Option<AllocSnapshot> {
    alloc().installed().then(|| alloc().snapshot())
}

/// One stage: how long it took, the heap high-water during it and the heap live at its end
/// (both absolute: they include what earlier stages left live).
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub phase: &'static str,
    pub ms: f64,
    pub heap_peak_bytes: Option<usize>,
    pub heap_live_bytes: Option<usize>,
}

/// Times a stage window: call `start` before, `end` after.
pub struct PhaseClock {
    t: Instant,
}

impl PhaseClock {
    pub fn start() -> Self {
        alloc().reset_peak();
        PhaseClock { t: Instant::now() }
    }

    pub fn end(&mut self, name: &'static str) -> Phase {
        let ms = self.t.elapsed().as_secs_f64() * 1e3;
        let h = heap();
        let p = Phase { phase: name, ms, heap_peak_bytes: h.map(|s| s.peak_bytes), heap_live_bytes: h.map(|s| s.live_bytes) };
        alloc().reset_peak();
        self.t = Instant::now();
        p
    }
}

/// Prepares `model` the way `classify` does ([`Engine::from_path`]: read the file, decode it
/// and drop the bytes, translate, optimize, plan), recording each stage.
/// Then, unless `no_trim`, gives the heap's free pages back to the system
/// ([`edgenet::alloc::release_free_heap`]), as a long-running process should once its model is
/// loaded. With `pre`, a model whose file does not fix the input size is loaded with the size
/// the preprocessing options give (see [`ModelSource::load_sized`]; the stages of the failed
/// first attempt are recorded too).
pub fn load(
    model: &ModelSource,
    opts: &EngineOptions,
    pre: Option<&super::preprocess::PreprocessArgs>,
    no_trim: bool,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<(Engine, usize)> {
    let file_bytes = model.len()?;
    let mut clock = PhaseClock::start();
    let mut on_phase = |p: BuildPhase| {
        let name = match p {
            BuildPhase::Read => "read file",
            BuildPhase::Decoded => "decode protobuf",
            BuildPhase::Translated => "translate to tract",
            BuildPhase::Optimized => "optimize",
            BuildPhase::Planned => "build plan",
        };
        phases.push(clock.end(name));
    };
    let engine = match pre {
        Some(pre) => model.load_sized(opts, pre, &mut on_phase)?,
        None => model.load(opts, &mut on_phase)?,
    };
    if !no_trim {
        edgenet::alloc::release_free_heap();
        phases.push(clock.end("release free heap"));
    }
    Ok((engine, file_bytes))
}

/// A deterministic input in [-1, 1) (speed and memory do not depend on the values).
pub fn synthetic_input(n: usize) -> Vec<f32> {
    let mut s: u32 = 0x2545_f491;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Latency statistics in milliseconds; percentiles by the nearest-rank method.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
}

impl Latency {
    /// `None` for an empty sample.
    pub fn of(samples: &[f64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |p: f64| v[(((p / 100.0) * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        Some(Latency { min: v[0], p50: rank(50.0), p90: rank(90.0), p99: rank(99.0), max: v[n - 1], mean, stddev: var.sqrt() })
    }
}

/// A one-line progress bar on stderr, only when stderr is a terminal; redrawn at most every
/// 100 ms.
pub struct Progress {
    label: &'static str,
    total: usize,
    tty: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Self {
        Progress { label, total, tty: std::io::stderr().is_terminal(), last: None }
    }

    /// `last_ms`: the latest latency, shown after the bar.
    pub fn set(&mut self, done: usize, last_ms: Option<f64>) {
        if !self.tty {
            return;
        }
        let finished = done >= self.total;
        if !finished && self.last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        self.last = Some(Instant::now());
        let w = 30 * done.min(self.total) / self.total.max(1);
        let note = last_ms.map_or(String::new(), |ms| format!("{ms:.2} ms"));
        eprint!("\r{} [{}{}] {done}/{} {note}   ", self.label, "#".repeat(w), ".".repeat(30 - w), self.total);
        if finished {
            eprintln!();
        }
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cores: usize,
    pub arch: &'static str,
    pub os: String,
    /// ISA extensions that matter to tract's kernels (x86: avx2, fma, avx512f, avx512_vnni,
    /// avx_vnni; aarch64: asimddp, i8mm, asimdhp).
    pub isa: Vec<String>,
    /// 1-minute load average when measured: a loaded machine gives slower, noisier numbers.
    pub load_average_1m: Option<f64>,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let cpu = field("model name")
            .or_else(|| field("Model"))
            .or_else(|| field("Hardware"))
            .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
            .unwrap_or_else(|| "unknown CPU".to_string());
        let flags = field("flags").or_else(|| field("Features")).unwrap_or_default();
        let wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "asimddp", "i8mm", "asimdhp"];
        let isa = wanted.iter().filter(|w| flags.split_whitespace().any(|f| f == **w)).map(|w| w.to_string()).collect();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
        let os = format!("{} {kernel}", std::env::consts::OS).trim().to_string();
        let load_average_1m = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
        Machine { cpu, logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()), arch: std::env::consts::ARCH, os, isa, load_average_1m }
    }

    pub fn one_line(&self) -> String {
        let load = self.load_average_1m.map_or(String::new(), |l| format!(", load average {l:.2}"));
        format!("{}, {} logical cores, {} ({}), {}{load}", self.cpu, self.logical_cores, self.arch, self.isa.join(" "), self.os)
    }
}

/// Bytes as MiB with two decimals.
pub fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / 1_048_576.0)
}

/// An optional byte count, or "not measured".
pub fn mib_or(b: Option<usize>) -> String {
    b.map_or_else(|| "not measured".to_string(), mib)
}

/// Peak and current RSS in bytes, if the system reports them.
pub fn rss() -> Option<(usize, usize)> {
    edgenet::alloc::rss().map(|(p, c)| (p as usize, c as usize))
}

/// Resident memory by kind now (`RssAnon`: heap, stacks, anonymous maps; `RssFile`: pages of
/// the binary and other mapped files), from `/proc/self/status`.
pub fn rss_kinds() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<usize> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: usize = line.get(key.len()..)?.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}
