//! Command-line front end: clap arguments → validated options → library calls → output.
//! Exit codes: 0 success (also when stdout is closed early), 1 failure, 2 usage.

mod bench;
mod classify;
mod demo;
mod export;
mod footprint;
mod inspect;
mod measure;
mod quantize;
mod run;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// edgenet: image classification networks from Rust definition to int8 on a Raspberry Pi.
#[derive(Debug, Parser)]
#[command(name = "edgenet", version, about)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a zoo network and write it as ONNX.
    Export(export::ExportArgs),
    /// Describe an ONNX file: ops, parameters, MACs, per-layer table.
    Inspect {
        /// The ONNX file.
        model: PathBuf,
    },
    /// Classify image files: top-K labels and probabilities per image.
    Classify(classify::ClassifyArgs),
    /// Quantize an f32 ONNX model to int8 with calibration, and report its accuracy.
    Quantize(quantize::QuantizeArgs),
    /// Classify a stream of frames: camera, raw or MJPEG pipe, image files, synthetic pattern.
    Run(run::RunArgs),
    /// The embedded default: EfficientNet-Lite0 from the shipped weights on the bundled photos.
    Demo(demo::DemoArgs),
    /// Memory a model costs: file, weights by type, tract's plan, heap per stage, RSS, binary.
    Footprint(footprint::FootprintArgs),
    /// Latency of a model alone: load/optimize and first-inference time, min/p50/p90/p99/max, FPS.
    Bench(bench::BenchArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    // First, while the process has one thread (see `avoid_tract_amx_int8`).
    edgenet::engine::avoid_tract_amx_int8();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new().filter_level(level).format_timestamp(None).init();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Export(args) => export::run(&args, &mut out),
        Command::Inspect { model } => inspect::run(&model, &mut out),
        Command::Classify(args) => classify::run(&args, &mut out),
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Quantize(args) => quantize::run(&args, &mut out),
        Command::Footprint(args) => footprint::run(&args, &mut out),
        Command::Bench(args) => bench::run(&args, &mut out),
        Command::Run(args) => run::run(&args, &mut out),
    };
    let result = result.and_then(|()| out.flush().map_err(anyhow::Error::from));
    match result {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// `--kernels NAME`: a kernel set by name (whether this CPU runs it is checked at load).
fn parse_kernels(s: &str) -> Result<edgenet::kernels::KernelSet, String> {
    edgenet::kernels::KernelSet::parse(s).ok_or_else(|| format!("unknown kernel set `{s}` (portable, avx2, neon, dotprod)"))
}
