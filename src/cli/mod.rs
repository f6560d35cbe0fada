//! Command-line front end: clap arguments → validated options → library calls → output.
//! Exit codes: 0 success (also when stdout is closed early), 1 failure, 2 usage.

mod bench;
mod classify;
#[cfg(feature = "tools")]
mod demo;
#[cfg(feature = "tools")]
mod export;
mod footprint;
mod inspect;
mod measure;
mod preprocess;
#[cfg(feature = "tools")]
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
    #[cfg(feature = "tools")]
    Export(export::ExportArgs),
    /// Describe an ONNX file: ops, parameters, MACs, per-layer table, and for an int8 file
    /// the kernel plan of each layer.
    Inspect {
        /// The ONNX file.
        model: PathBuf,
        /// Show the int8 kernel plan for this kernel set (portable, avx2, avx512vnni, neon, dotprod)
        /// instead of this CPU's: `neon` and `dotprod` plan for aarch64 (a Raspberry Pi 4 or 5)
        /// on a PC. Planned, not run: the set need not run on this CPU.
        #[arg(long, value_parser = parse_kernels)]
        kernels: Option<edgenet::kernels::KernelSet>,
    },
    /// Classify image files: top-K labels and probabilities per image.
    Classify(classify::ClassifyArgs),
    /// Quantize an f32 ONNX model to int8 with calibration, and report its accuracy.
    #[cfg(feature = "tools")]
    Quantize(quantize::QuantizeArgs),
    /// Classify a stream of frames: camera, raw or MJPEG pipe, image files, synthetic pattern.
    Run(run::RunArgs),
    /// The embedded default: EfficientNet-Lite0 from the shipped weights on the bundled photos.
    #[cfg(feature = "tools")]
    Demo(demo::DemoArgs),
    /// Memory a model costs: file, weights by type, tract's plan, heap per stage, RSS, binary.
    Footprint(footprint::FootprintArgs),
    /// Latency of a model alone: load/optimize and first-inference time, min/p50/p90/p99/max, FPS.
    Bench(bench::BenchArgs),
    /// A verb of the full build (`export`, `quantize`, `demo`) in the runtime build: an error
    /// naming the feature, not clap's "unrecognized subcommand".
    #[cfg(not(feature = "tools"))]
    #[command(external_subcommand)]
    Missing(Vec<String>),
}

/// The verbs only the `tools` feature has.
#[cfg(not(feature = "tools"))]
const TOOL_VERBS: [&str; 3] = ["export", "quantize", "demo"];

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    // First, while the process has one thread (see `avoid_tract_amx_int8`).
    edgenet::engine::avoid_tract_amx_int8();
    edgenet::alloc::keep_mmap_threshold();
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
        #[cfg(feature = "tools")]
        Command::Export(args) => export::run(&args, &mut out),
        Command::Inspect { model, kernels } => inspect::run(&model, kernels, &mut out),
        Command::Classify(args) => classify::run(&args, &mut out),
        #[cfg(feature = "tools")]
        Command::Demo(args) => demo::run(&args, &mut out),
        #[cfg(feature = "tools")]
        Command::Quantize(args) => quantize::run(&args, &mut out),
        Command::Footprint(args) => footprint::run(&args, &mut out),
        Command::Bench(args) => bench::run(&args, &mut out),
        Command::Run(args) => run::run(&args, &mut out),
        #[cfg(not(feature = "tools"))]
        Command::Missing(words) => {
            let verb = words.first().map(String::as_str).unwrap_or_default();
            if TOOL_VERBS.contains(&verb) {
                eprintln!(
                    "error: `{verb}` is not in this build of edgenet: it is the runtime build (built without the \
                     `tools` feature), which has classify, run, bench, footprint and inspect; build with \
                     `--features tools` (the default) for export, quantize and demo"
                );
            } else {
                eprintln!("error: unrecognized subcommand `{verb}` (see `edgenet --help`)");
            }
            return 2;
        }
    };
    let result = result.and_then(|()| out.flush().map_err(anyhow::Error::from));
    match result {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) if e.chain().any(|c| c.is::<preprocess::Usage>()) => {
            eprintln!("error: {e:#}");
            2
        }
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

/// The model built into this binary (`EDGENET_EMBED_MODEL` at build time): its file name and
/// bytes. `run` and `bench` use it when no model is given.
#[cfg(edgenet_embedded_model)]
const EMBEDDED_MODEL: Option<(&str, &[u8])> = Some((env!("EDGENET_EMBEDDED_MODEL_NAME"), include_bytes!(env!("EDGENET_EMBEDDED_MODEL_PATH"))));
#[cfg(not(edgenet_embedded_model))]
const EMBEDDED_MODEL: Option<(&str, &[u8])> = None;

/// Where a command's model comes from: the file given, or the one built into the binary.
#[derive(Debug, Clone)]
pub(crate) enum ModelSource {
    File(PathBuf),
    Embedded { name: &'static str, bytes: &'static [u8] },
}

impl ModelSource {
    /// The model file given, else the embedded model, else an error saying how to give one.
    pub(crate) fn from_arg(path: Option<&std::path::Path>) -> anyhow::Result<ModelSource> {
        match (path, EMBEDDED_MODEL) {
            (Some(p), _) => Ok(ModelSource::File(p.to_path_buf())),
            (None, Some((name, bytes))) => Ok(ModelSource::Embedded { name, bytes }),
            (None, None) => Err(anyhow::anyhow!(
                "no model given, and this binary has none built in (give an ONNX file, or build with \
                 EDGENET_EMBED_MODEL=model.onnx to embed one)"
            )),
        }
    }

    /// Loads the model (see [`edgenet::engine::Engine::from_path_with_phases`]); a model whose
    /// file does not fix the input size is loaded again with the size `pre` gives (`--crop`,
    /// else the default 224×224).
    pub(crate) fn load_sized(
        &self,
        opts: &edgenet::engine::EngineOptions,
        pre: &preprocess::PreprocessArgs,
        on_phase: &mut dyn FnMut(edgenet::engine::BuildPhase),
    ) -> edgenet::Result<edgenet::engine::Engine> {
        match self.load(opts, on_phase) {
            Err(e) if opts.input_shape.is_none() && preprocess::is_unfixed_input(&e) => {
                let shape = pre.input_shape();
                let how = if pre.crop.is_some() { "--crop" } else { "the default; give --crop for another" };
                log::info!("{self}: the file does not fix the input size; using 1×3×{}×{} ({how})", shape[2], shape[3]);
                self.load(&edgenet::engine::EngineOptions { input_shape: Some(shape), ..opts.clone() }, on_phase)
            }
            r => r,
        }
    }

    /// Loads the model (see [`edgenet::engine::Engine::from_path_with_phases`]).
    pub(crate) fn load(
        &self,
        opts: &edgenet::engine::EngineOptions,
        on_phase: &mut dyn FnMut(edgenet::engine::BuildPhase),
    ) -> edgenet::Result<edgenet::engine::Engine> {
        match self {
            ModelSource::File(p) => edgenet::engine::Engine::from_path_with_phases(p, opts, on_phase),
            ModelSource::Embedded { name, bytes } => {
                on_phase(edgenet::engine::BuildPhase::Read);
                edgenet::engine::Engine::from_bytes_with_phases(bytes, &format!("{name} (embedded)"), opts, on_phase)
            }
        }
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> anyhow::Result<usize> {
        match self {
            ModelSource::File(p) => {
                use anyhow::Context;
                Ok(std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?.len() as usize)
            }
            ModelSource::Embedded { bytes, .. } => Ok(bytes.len()),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::File(p) => write!(f, "{}", p.display()),
            ModelSource::Embedded { name, .. } => write!(f, "{name} (embedded)"),
        }
    }
}

/// The flags that prepare a model, the same in `classify`, `run`, `bench` and `footprint`.
#[derive(Debug, clap::Args)]
pub(crate) struct EngineArgs {
    /// Intra-op threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Run 3×3 convolutions without Winograd: their weights take 3.6× less memory, they run
    /// slower (results are identical either way).
    #[arg(long)]
    pub no_winograd: bool,
    /// Force a set of int8 micro-kernels (portable, avx2, avx512vnni, neon, dotprod) instead of the best
    /// this CPU has; results are identical, speed is not (default: $EDGENET_KERNELS, else detected).
    #[arg(long, value_parser = parse_kernels)]
    pub kernels: Option<edgenet::kernels::KernelSet>,
    /// Refuse a model whose weights, input or any one activation would need more than this
    /// many MiB (checked before anything of that size is allocated).
    #[arg(long, value_name = "MIB", default_value_t = edgenet::onnx::validate::DEFAULT_MEMORY_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 24)))]
    pub memory_limit: u64,
}

impl EngineArgs {
    pub(crate) fn options(&self) -> edgenet::engine::EngineOptions {
        edgenet::engine::EngineOptions {
            threads: self.threads as usize,
            winograd: !self.no_winograd,
            kernels: self.kernels,
            memory_limit: self.memory_limit << 20,
            ..Default::default()
        }
    }
}

/// `--kernels NAME`: a kernel set by name (whether this CPU runs it is checked at load).
fn parse_kernels(s: &str) -> Result<edgenet::kernels::KernelSet, String> {
    edgenet::kernels::KernelSet::parse(s).ok_or_else(|| format!("unknown kernel set `{s}` ({})", edgenet::kernels::KernelSet::names()))
}
