//! `edgenet bench`: load/optimize time, first-inference time, and the latency distribution of
//! the model alone (synthetic input, no decoding or preprocessing), with the memory readings
//! needed to see that a long run does not grow.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::measure::{self, mib, mib_or, Latency, Machine, Phase, Progress};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// ONNX model; optional in a binary built with a model inside (EDGENET_EMBED_MODEL).
    pub model: Option<PathBuf>,
    /// Untimed inferences after the first one.
    #[arg(long, default_value_t = 5)]
    pub warmup: u32,
    /// Timed inferences.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep the heap's free pages after loading instead of giving them back to the system
    /// (glibc malloc_trim), to see what a process that does not trim keeps resident.
    #[arg(long)]
    pub no_trim: bool,
    #[command(flatten)]
    pub engine: super::EngineArgs,
    // Accepted as by `classify` and `run` (checked against the model); bench feeds synthetic
    // tensors, so only the crop matters: the input size of a model whose file does not fix it.
    #[command(flatten)]
    pub preprocess: super::preprocess::PreprocessArgs,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    file_bytes: usize,
    threads: u16,
    /// The int8 micro-kernels the quantized layers run (see `edgenet::kernels`).
    int8_kernels: String,
    machine: Machine,
    load: Vec<Phase>,
    load_ms: f64,
    first_inference_ms: f64,
    warmup: u32,
    runs: u32,
    latency_ms: Latency,
    fps: f64,
    memory: Memory,
}

/// Readings after warm-up and at the end of the timed runs: equal heap-live figures and a flat
/// RSS mean nothing accumulates per inference.
#[derive(Debug, Serialize)]
struct Memory {
    /// VmRSS before the model is read: the binary and the runtime alone.
    rss_start_bytes: Option<usize>,
    rss_peak_bytes: Option<usize>,
    rss_after_warmup_bytes: Option<usize>,
    rss_end_bytes: Option<usize>,
    heap_live_after_warmup_bytes: Option<usize>,
    heap_live_end_bytes: Option<usize>,
    /// Heap high-water during the timed runs.
    heap_peak_runs_bytes: Option<usize>,
    /// Per timed run of the session (0 on an int8 plan once warm).
    allocations_per_inference: Option<f64>,
}

pub fn run(args: &BenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let machine = Machine::describe();
    let rss_start = measure::rss().map(|r| r.1);
    let mut load = Vec::new();
    let model = super::ModelSource::from_arg(args.model.as_deref())?;
    let (engine, file_bytes) = measure::load(&model, &args.engine.options(), Some(&args.preprocess), args.no_trim, &mut load)?;
    if !args.preprocess.options().is_empty() {
        let p = args.preprocess.resolve_for(&model, &engine)?;
        log::info!("{model}: bench times the model alone on synthetic input; the preprocessing ({}) is not run", p.describe());
    }
    let load_ms = load.iter().map(|p| p.ms).sum();
    let x = measure::synthetic_input(engine.input_len());
    let mut y = vec![0.0; engine.output_len()];
    // A session, as `edgenet run` uses: tract's state and the output buffers are kept between
    // runs, so the allocations and heap figures are those of the steady state of a stream.
    let t = Instant::now();
    let mut session = engine.session()?;
    session.run_into(&x, &mut y)?;
    let first_inference_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut progress = Progress::new("warm-up", args.warmup as usize);
    for i in 0..args.warmup {
        session.run_into(&x, &mut y)?;
        progress.set(i as usize + 1, None);
    }
    let mut samples = Vec::with_capacity(args.runs as usize);
    let mut progress = Progress::new("bench  ", args.runs as usize);
    let rss_after_warmup = measure::rss().map(|r| r.1);
    measure::alloc().reset_peak();
    let heap_before = measure::heap();
    for i in 0..args.runs {
        let t = Instant::now();
        session.run_into(&x, &mut y)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        samples.push(ms);
        progress.set(i as usize + 1, Some(ms));
    }
    let heap_after = measure::heap();
    let rss_end = measure::rss();
    let latency = Latency::of(&samples).ok_or_else(|| anyhow::anyhow!("no timed runs"))?;
    let memory = Memory {
        rss_start_bytes: rss_start,
        rss_peak_bytes: rss_end.map(|r| r.0),
        rss_after_warmup_bytes: rss_after_warmup,
        rss_end_bytes: rss_end.map(|r| r.1),
        heap_live_after_warmup_bytes: heap_before.map(|h| h.live_bytes),
        heap_live_end_bytes: heap_after.map(|h| h.live_bytes),
        heap_peak_runs_bytes: heap_after.map(|h| h.peak_bytes),
        allocations_per_inference: heap_before.zip(heap_after).map(|(b, a)| a.allocations_since(&b) as f64 / args.runs as f64),
    };
    let report = Report {
        model: model.to_string(),
        file_bytes,
        threads: args.engine.threads,
        int8_kernels: engine.kernel_set().to_string(),
        machine,
        load,
        load_ms,
        first_inference_ms,
        warmup: args.warmup,
        runs: args.runs,
        fps: 1e3 / latency.mean,
        latency_ms: latency,
        memory,
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write_text(&report, out)?;
    }
    Ok(())
}

fn write_text(r: &Report, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "model    {} ({})", r.model, mib(r.file_bytes))?;
    writeln!(out, "machine  {}", r.machine.one_line())?;
    writeln!(
        out,
        "threads  {}, int8 kernels {}, warm-up {}, timed runs {}, synthetic input, model only, one session (no decoding or preprocessing)",
        r.threads, r.int8_kernels, r.warmup, r.runs
    )?;
    let stages: Vec<String> = r.load.iter().map(|p| format!("{} {:.1}", p.phase, p.ms)).collect();
    writeln!(out, "load     {:.1} ms ({} ms)", r.load_ms, stages.join(", "))?;
    writeln!(out, "first inference {:.2} ms", r.first_inference_ms)?;
    let l = &r.latency_ms;
    writeln!(
        out,
        "latency  min {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2} ± {:.2} ms",
        l.min, l.p50, l.p90, l.p99, l.max, l.mean, l.stddev
    )?;
    writeln!(out, "fps      {:.1}", r.fps)?;
    let m = &r.memory;
    writeln!(
        out,
        "memory   peak RSS {}, RSS after warm-up {} → end {}; heap live {} → {}, high-water in runs {}, {:.0} allocations per inference",
        mib_or(m.rss_peak_bytes),
        mib_or(m.rss_after_warmup_bytes),
        mib_or(m.rss_end_bytes),
        mib_or(m.heap_live_after_warmup_bytes),
        mib_or(m.heap_live_end_bytes),
        mib_or(m.heap_peak_runs_bytes),
        m.allocations_per_inference.unwrap_or(f64::NAN)
    )?;
    Ok(())
}
