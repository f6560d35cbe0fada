//! The inference engine: tract, and the only module of edgenet that uses tract's runtime.
//!
//! Load ONNX bytes → fix the input fact → `into_optimized` → a runnable plan, optionally with
//! an intra-op thread pool.
//!
//! This file builds the [`Engine`] and runs it; the rest is in its submodules, each of which
//! uses only submodules listed before it (none imports one that imports it back); `session` and
//! `report` add methods to the [`Engine`] defined here:
//! - `load`: reading the ONNX file and moving its weights into tract's model;
//! - `pool`: the output pool through which edgenet's ops write their outputs, knowing no op;
//! - `spec`: the constants of the ONNX file's quantized nodes, which the int8 rewrites need;
//! - `ops`: edgenet's int8 ops over [`crate::kernels`];
//! - `rewrite`: the rewrites that put them in tract's model (the int8 path's only matches on
//!   tract's op types), and the graph-patching helper `reuse` borrows;
//! - `reuse`: edgenet versions of the tract ops an optimised int8 plan keeps;
//! - `session`: [`Session`], which runs a plan again and again with the output pool;
//! - `report`: [`Engine::profile`], [`Engine::describe_plan`], [`Engine::plan_report`],
//!   [`Engine::layer_plans`] (each int8 layer's kernel plan, also for another kernel set).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimplePlan;
use tract_onnx::tract_core::runtime::RunOptions;

use crate::error::{Error, Result};
use crate::kernels::{KernelSet, ThreadPool};

mod load;
mod ops;
mod pool;
mod report;
mod reuse;
mod rewrite;
mod session;
mod spec;

pub use report::{LayerPlan, NodeTime, PlanReport};
pub use session::{NodeAllocations, RunAllocations, Session};

/// How to prepare a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Intra-op threads. 1 runs everything on the calling thread; `n > 1` gives edgenet's int8
    /// kernels a private pool of `n` threads (the caller's included), and, with the
    /// `tract-threads` feature (a default one, not in the runtime build), tract's own layers a
    /// rayon pool of `n`. Without it, the layers tract runs (an f32 model's) use one thread.
    pub threads: usize,
    /// Input shape `[1, C, H, W]` for models whose input size is not fixed in the file.
    pub input_shape: Option<[usize; 4]>,
    /// Run quantized convolutions with edgenet's int8 kernels instead of tract's lowering
    /// (on by default; off to measure or compare against tract's own path).
    pub int8_kernels: bool,
    /// With `int8_kernels`: run 3×3 stride-1 convolutions with at least 32 input and output
    /// channels (64 with the NEON set; never with the dot product, whose dense kernel is
    /// faster) with Winograd F(2×2, 3×3) — bit-identical results, 2.25× fewer multiplies, but
    /// their transformed weights take 3.6× the memory of the int8 ones (16/9 positions, 16 bits
    /// instead of 8). Off trades that speed for the smaller footprint.
    pub winograd: bool,
    /// With `int8_kernels`: the micro-kernels to run (`None`: the `EDGENET_KERNELS` environment
    /// variable if set, else the best this CPU has, see [`KernelSet::select`]). Every set
    /// gives the same results; forcing one is for tests and A/B measurements.
    pub kernels: Option<KernelSet>,
    /// The memory budget, in bytes: a model whose weights, input or any one activation tensor
    /// would need more is refused before it is allocated (see [`crate::onnx::validate()`]).
    pub memory_limit: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 1,
            input_shape: None,
            int8_kernels: true,
            winograd: true,
            kernels: None,
            memory_limit: crate::onnx::validate::DEFAULT_MEMORY_BYTES,
        }
    }
}

/// A model ready to run: a tract plan with a fixed `[1, C, H, W]` f32 input.
#[derive(Debug)]
pub struct Engine {
    plan: Arc<TypedSimplePlan>,
    input_shape: [usize; 4],
    output_len: usize,
    output_lens: Vec<usize>,
    metadata: HashMap<String, String>,
    output_name: String,
    origin: String,
    kernels: KernelSet,
}

/// tract 0.23.9's Intel AMX int8 matmul kernel (`avx512amx_mmm_i32_8x8`, picked on Xeons with
/// `amx-int8`) crashes the process intermittently (SIGSEGV inside the kernel, seen in about one
/// run in six of `int8_kernels_agree_with_tract_on_small_nets` on a Sapphire-Rapids-class VM;
/// none in 16 runs without it). edgenet's own int8 kernels do not use it, but layers left to
/// tract and `int8_kernels: false` do. So, once per process and before tract probes the CPU,
/// `TRACT_CPU_ISA=-amx-int8` is set on x86-64 unless the user set `TRACT_CPU_ISA` already
/// (which tract reads once; `TRACT_CPU_ISA=+amx-int8` puts it back). The binary does the same
/// first thing in `main`, before any thread exists.
pub fn avoid_tract_amx_int8() {
    #[cfg(target_arch = "x86_64")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("TRACT_CPU_ISA").is_none() {
                std::env::set_var("TRACT_CPU_ISA", "-amx-int8");
                log::debug!("TRACT_CPU_ISA=-amx-int8: tract's AMX int8 kernel is not used (it crashes in tract 0.23.9)");
            }
        });
    }
}

/// Every tensor of the typed model whose shape is known fits in `limit` bytes.
fn check_activations(model: &TypedModel, origin: &str, limit: u64) -> Result<()> {
    for node in model.nodes() {
        for output in &node.outputs {
            let Some(shape) = output.fact.shape.as_concrete() else { continue };
            if shape.contains(&0) {
                // A convolution or pool whose (dilated) kernel is larger than its padded input:
                // tract's optimizer does not terminate on such a graph.
                return Err(onnx_err(
                    origin,
                    format!("node `{}` ({}): its output {shape:?} is empty (a kernel larger than its padded input?)", node.name, node.op.name()),
                ));
            }
            let bytes = shape.iter().fold(output.fact.datum_type.size_of() as u64, |b, &d| b.saturating_mul(d as u64));
            if bytes > limit {
                let what = format!("its output {shape:?}");
                let limits = crate::onnx::Limits { memory_bytes: limit };
                return Err(onnx_err(
                    origin,
                    format!("node `{}` ({}): {}", node.name, node.op.name(), crate::onnx::validate::over_budget(&what, bytes, &limits)),
                ));
            }
        }
    }
    Ok(())
}

fn onnx_err(origin: &str, e: impl std::fmt::Display) -> Error {
    Error::Onnx { origin: origin.to_string(), message: format!("{e:#}") }
}

impl Engine {
    /// Loads the ONNX model at `path`.
    ///
    /// # Errors
    /// An unreadable file, or any [`Engine::from_bytes`] error.
    pub fn from_path(path: &Path, opts: &EngineOptions) -> Result<Self> {
        Self::from_path_with_phases(path, opts, &mut |_| {})
    }

    /// Like [`from_path`](Self::from_path), calling `on_phase` as each stage of preparing the
    /// plan ends (see [`from_bytes_with_phases`](Self::from_bytes_with_phases)). The file's
    /// bytes are dropped as soon as they are decoded, before tract translates the graph, so
    /// the load peak holds two copies of the weights at most, not three.
    ///
    /// # Errors
    /// As [`from_path`](Self::from_path).
    pub fn from_path_with_phases(path: &Path, opts: &EngineOptions, on_phase: &mut dyn FnMut(BuildPhase)) -> Result<Self> {
        let origin = path.display().to_string();
        // Read in chunks as it is decoded: the file's bytes are never all held beside the
        // protobuf (see `load`); reading and decoding are one stage.
        on_phase(BuildPhase::Read);
        let proto = load::decode_file(path, &origin)?;
        on_phase(BuildPhase::Decoded);
        Self::build_proto(proto, &origin, opts, &[], on_phase)
    }

    /// Loads an ONNX model from bytes; `origin` names it in errors and logs.
    ///
    /// # Errors
    /// [`Error::Onnx`] when the bytes are not ONNX, tract cannot translate or optimise the
    /// graph, or the input shape is neither fixed in the file nor given in `opts`.
    pub fn from_bytes(bytes: &[u8], origin: &str, opts: &EngineOptions) -> Result<Self> {
        Self::build(bytes, origin, opts, &[], &mut |_| {})
    }

    /// Like [`from_bytes`](Self::from_bytes), calling `on_phase` as each stage of preparing
    /// the plan ends, so a caller can time the stages or read a heap counter between them
    /// (`edgenet footprint` and `edgenet bench` do).
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes).
    pub fn from_bytes_with_phases(bytes: &[u8], origin: &str, opts: &EngineOptions, on_phase: &mut dyn FnMut(BuildPhase)) -> Result<Self> {
        Self::build(bytes, origin, opts, &[], on_phase)
    }

    /// Like [`from_bytes`](Self::from_bytes), but the plan's outputs are the tensors named
    /// `outputs` (intermediate tensors included), in that order; [`run_all`](Self::run_all)
    /// returns them. Used by calibration and accuracy reports.
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes), or a name that is no tensor of the model.
    pub fn with_outputs(bytes: &[u8], origin: &str, opts: &EngineOptions, outputs: &[String]) -> Result<Self> {
        if outputs.is_empty() {
            return Err(Error::Config("no outputs requested".into()));
        }
        Self::build(bytes, origin, opts, outputs, &mut |_| {})
    }

    fn build(bytes: &[u8], origin: &str, opts: &EngineOptions, outputs: &[String], on_phase: &mut dyn FnMut(BuildPhase)) -> Result<Self> {
        let proto = crate::onnx::decode(bytes, origin)?;
        on_phase(BuildPhase::Decoded);
        Self::build_proto(proto, origin, opts, outputs, on_phase)
    }

    /// Validates the model (see [`crate::onnx::validate()`]), then prepares the plan. A panic
    /// inside tract while it translates or optimizes the model (a defect validation missed)
    /// becomes an [`Error::Onnx`] naming the model, not a dead process.
    fn build_proto(
        proto: tract_onnx::pb::ModelProto,
        origin: &str,
        opts: &EngineOptions,
        outputs: &[String],
        on_phase: &mut dyn FnMut(BuildPhase),
    ) -> Result<Self> {
        crate::onnx::validate(&proto, origin, &crate::onnx::Limits { memory_bytes: opts.memory_limit })?;
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::build_checked(proto, origin, opts, outputs, on_phase)));
        built.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            Err(onnx_err(
                origin,
                format!("tract failed while preparing the model (a panic: {message}); the model has a defect edgenet's checks do not catch yet"),
            ))
        })
    }

    fn build_checked(
        proto: tract_onnx::pb::ModelProto,
        origin: &str,
        opts: &EngineOptions,
        outputs: &[String],
        on_phase: &mut dyn FnMut(BuildPhase),
    ) -> Result<Self> {
        let metadata: HashMap<String, String> = proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let output_name = proto.graph.as_ref().and_then(|g| g.output.first()).map(|o| o.name.clone()).unwrap_or_default();
        let kernels = KernelSet::select(opts.kernels).map_err(Error::Config)?;
        avoid_tract_amx_int8();
        let (qconvs, skipped) = if opts.int8_kernels { spec::collect(&proto) } else { Default::default() };
        let quantizers = if opts.int8_kernels { spec::collect_quantize(&proto, "QuantizeLinear") } else { Default::default() };
        let dequantizers = if opts.int8_kernels { spec::collect_quantize(&proto, "DequantizeLinear") } else { Default::default() };
        for (name, why) in &skipped {
            log::info!("{origin}: QLinearConv `{name}` stays with tract: {why}");
        }
        let start = std::time::Instant::now();
        let onnx = tract_onnx::onnx();
        let mut proto = proto;
        let weights = load::take_weights(&mut proto);
        let mut model = onnx.model_for_proto_model(&proto).map_err(|e| onnx_err(origin, e))?;
        drop(proto);
        load::install_weights(&mut model, &onnx, weights).map_err(|e| onnx_err(origin, e))?;
        on_phase(BuildPhase::Translated);
        if !outputs.is_empty() {
            model.select_outputs_by_name(outputs).map_err(|e| onnx_err(origin, e))?;
        }
        if model.inputs.len() != 1 || (outputs.is_empty() && model.outputs.len() != 1) {
            return Err(onnx_err(
                origin,
                format!("edgenet runs models with one input and one output; this one has {} and {}", model.inputs.len(), model.outputs.len()),
            ));
        }
        let declared =
            model.input_fact(0).ok().and_then(|f| f.shape.as_concrete_finite().ok().flatten()).and_then(|s| <[usize; 4]>::try_from(s.as_slice()).ok());
        let input_shape = match (opts.input_shape, declared) {
            (Some(s), Some(d)) if s != d => {
                return Err(Error::Input(format!("{origin} has a fixed input shape {d:?}, not {s:?}")));
            }
            (Some(s), _) | (None, Some(s)) => s,
            (None, None) => {
                return Err(onnx_err(origin, "the input shape is not fixed in the file: give it explicitly ([1, C, H, W])"));
            }
        };
        model = model
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(input_shape[0], input_shape[1], input_shape[2], input_shape[3])))
            .map_err(|e| onnx_err(origin, e))?;
        let mut typed = model.into_typed().map_err(|e| onnx_err(origin, e))?;
        check_activations(&typed, origin, opts.memory_limit)?;
        // One pool for the model's int8 ops: convolutions and element-wise ops.
        let pool = Arc::new(ThreadPool::new(opts.threads));
        if !qconvs.is_empty() {
            let n = rewrite::rewrite(&mut typed, &qconvs, origin, opts.winograd, kernels, &pool).map_err(|e| onnx_err(origin, e))?;
            log::debug!("{origin}: {n} of {} quantized convolutions on edgenet's int8 kernels", qconvs.len() + skipped.len());
        }
        if !quantizers.is_empty() {
            let n = rewrite::rewrite_quantize(&mut typed, &quantizers, kernels, &pool).map_err(|e| onnx_err(origin, e))?;
            log::debug!("{origin}: {n} of {} QuantizeLinear on edgenet's quantizer", quantizers.len());
        }
        if !dequantizers.is_empty() {
            let n = rewrite::rewrite_dequantize(&mut typed, &dequantizers, kernels, &pool).map_err(|e| onnx_err(origin, e))?;
            log::debug!("{origin}: {n} of {} DequantizeLinear on edgenet's dequantizer", dequantizers.len());
            let n = rewrite::fuse_qadd(&mut typed).map_err(|e| onnx_err(origin, e))?;
            log::debug!("{origin}: {n} quantized residual additions fused");
            if !quantizers.is_empty() {
                let n = rewrite::fuse_lut(&mut typed).map_err(|e| onnx_err(origin, e))?;
                log::debug!("{origin}: {n} int8 element-wise functions as lookup tables");
            }
        }
        let mut typed = typed.into_optimized().map_err(|e| onnx_err(origin, e))?;
        if opts.int8_kernels && !(qconvs.is_empty() && quantizers.is_empty() && dequantizers.is_empty()) {
            // An int8 plan: the tract ops left in it that allocate on every run (global average
            // pool, f32 additions, flatten, max pool) become edgenet's buffer-reusing ones.
            let n = reuse::replace_allocating_ops(&mut typed, &pool).map_err(|e| onnx_err(origin, e))?;
            log::debug!("{origin}: {n} tract ops replaced by buffer-reusing ones");
        }
        on_phase(BuildPhase::Optimized);
        let mut output_lens = Vec::with_capacity(typed.outputs.len());
        for i in 0..typed.outputs.len() {
            let n = typed
                .output_fact(i)
                .ok()
                .and_then(|f| f.shape.as_concrete().map(|s| s.iter().product::<usize>()))
                .ok_or_else(|| onnx_err(origin, format!("the shape of output #{i} is not fixed")))?;
            output_lens.push(n);
        }
        let output_len = output_lens[0];
        #[cfg(feature = "tract-threads")]
        let run_opts =
            RunOptions { executor: (opts.threads > 1).then(|| tract_linalg::multithread::Executor::multithread(opts.threads)), ..RunOptions::default() };
        #[cfg(not(feature = "tract-threads"))]
        let run_opts = {
            if opts.threads > 1 {
                log::info!("{origin}: {} threads for edgenet's int8 kernels; tract's layers run on one (a build without `tract-threads`)", opts.threads);
            }
            RunOptions::default()
        };
        let plan = SimplePlan::new_with_options(typed, &run_opts).map_err(|e| onnx_err(origin, e))?;
        on_phase(BuildPhase::Planned);
        log::debug!("{origin}: plan ready in {:.1} ms, input {input_shape:?}, {output_len} outputs", start.elapsed().as_secs_f64() * 1e3);
        Ok(Engine { plan, input_shape, output_len, output_lens, metadata, output_name, origin: origin.to_string(), kernels })
    }

    /// The int8 kernel set chosen for this model's quantized layers (what `bench` and
    /// `footprint` report; f32 layers run on tract's own kernels whatever it is).
    pub fn kernel_set(&self) -> KernelSet {
        self.kernels
    }

    /// The input shape `[1, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// Number of input values, `C·H·W`.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Number of output values (classes).
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Name of the graph output (`logits` or `probabilities` for edgenet's exports).
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// Where the model came from (its path, or the name given to [`Engine::from_bytes`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A `metadata_props` entry of the model file.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Runs one NCHW f32 input and returns the output (logits) as f32.
    ///
    /// # Errors
    /// [`Error::Input`] when `input` has the wrong length, [`Error::Engine`] when tract fails.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.output_len];
        self.run_into(input, &mut out)?;
        Ok(out)
    }

    /// Runs one input and returns every output of the plan, each cast to f32 (integer
    /// tensors give their raw values).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_all(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let result = self.run_raw(input)?;
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let mut outs = Vec::with_capacity(result.len());
        for r in result.iter() {
            log::debug!("{}: output {:?}", self.origin, r.datum_type());
            let y = r.cast_to::<f32>().map_err(eng)?;
            let view = y.try_as_plain_ram().map_err(eng)?;
            outs.push(view.as_slice::<f32>().map_err(eng)?.to_vec());
        }
        Ok(outs)
    }

    /// Number of values of each output.
    pub fn output_lens(&self) -> &[usize] {
        &self.output_lens
    }

    fn run_raw(&self, input: &[f32]) -> Result<TVec<TValue>> {
        if input.len() != self.input_len() {
            return Err(Error::Input(format!("{} expects {:?} = {} values, got {}", self.origin, self.input_shape, self.input_len(), input.len())));
        }
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let t = Tensor::from_shape(&self.input_shape, input).map_err(eng)?;
        self.plan.run(tvec!(t.into_tvalue())).map_err(eng)
    }

    /// Like [`run`](Self::run), writing the outputs into `out` (of [`output_len`](Self::output_len)).
    ///
    /// # Errors
    /// As [`run`](Self::run), or `out` of the wrong length.
    pub fn run_into(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != self.output_len {
            return Err(Error::Input(format!("output buffer of {} for {} outputs", out.len(), self.output_len)));
        }
        let result = self.run_raw(input)?;
        copy_first_output(&result, out, &self.origin)
    }
}

/// Casts the plan's first output to f32 into `out`, checking its length.
fn copy_first_output(result: &[TValue], out: &mut [f32], origin: &str) -> Result<()> {
    let eng = |e: TractError| Error::Engine(format!("{origin}: {e:#}"));
    let first = result.first().ok_or_else(|| Error::Engine(format!("{origin}: the plan returned no output")))?;
    let y = first.cast_to::<f32>().map_err(eng)?;
    let view = y.try_as_plain_ram().map_err(eng)?;
    let s = view.as_slice::<f32>().map_err(eng)?;
    if s.len() != out.len() {
        return Err(Error::Engine(format!("{origin}: produced {} outputs, expected {}", s.len(), out.len())));
    }
    out.copy_from_slice(s);
    Ok(())
}

/// A stage of [`Engine::from_bytes_with_phases`], reported when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildPhase {
    /// The file is read ([`Engine::from_path_with_phases`] only).
    Read,
    /// The ONNX protobuf is decoded (and the file's bytes dropped, when loading from a path).
    Decoded,
    /// tract's inference model is built from it; the protobuf is dropped.
    Translated,
    /// The input fact is set and `into_optimized` is done (weights packed for the kernels).
    Optimized,
    /// The runnable plan exists.
    Planned,
}

#[cfg(all(test, feature = "tools"))]
mod tests {
    //! These run on every architecture CI covers (x86-64 natively, aarch64 under qemu): tract
    //! against the naive reference interpreter on small networks.
    use super::*;
    use crate::graph::{reference, ConvSpec, GraphBuilder, Weights};
    use crate::model::{Model, ModelInfo};
    use crate::onnx::{export, ExportOptions};
    use crate::zoo::{self, blocks, Arch, WeightSource, ZooConfig};

    fn input(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
    }

    fn check(model: &Model) {
        let x = input(model.graph.input_shape().iter().product());
        let want = reference::run(&model.graph, &model.weights, &x).unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for fold_bn in [false, true] {
            let bytes = export(model, &ExportOptions { fold_bn }).unwrap();
            let engine = Engine::from_bytes(&bytes, "test", &EngineOptions::default()).unwrap();
            let got = engine.run(&x).unwrap();
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-4 * scale, "{} fold_bn={fold_bn}: |Δ| {diff} vs scale {scale}", model.info.arch);
        }
    }

    /// edgenet's int8 kernels against tract's own lowering of the same int8 file, on every int8
    /// tensor: equal up to tract's different rounding of QuantizeLinear (rare ties), on every
    /// architecture CI covers. (Against onnxruntime, bit-exact, in tests/quantize.rs on x86-64.)
    fn int8_kernels_agree_with_tract(arch: Arch, cfg: &ZooConfig) {
        let model = zoo::build(arch, cfg, WeightSource::Seeded(5)).unwrap();
        let n: usize = model.graph.input_shape().iter().product();
        let inputs: Vec<Vec<f32>> = (0..3).map(|k| input(n).iter().map(|v| v * (1.0 + k as f32 * 0.3)).collect()).collect();
        let q = crate::quant::quantize(&model, &inputs, &Default::default(), &mut |_, _| {}).unwrap();
        let names: Vec<String> = q.tensors.iter().map(|t| t.tensor.clone()).collect();
        let ours = Engine::with_outputs(&q.bytes, "ours", &EngineOptions::default(), &names).unwrap();
        let theirs_opts = EngineOptions { int8_kernels: false, ..Default::default() };
        let theirs = Engine::with_outputs(&q.bytes, "tract", &theirs_opts, &names).unwrap();
        assert!(ours.describe_plan().contains("EdgeQConv") && !theirs.describe_plan().contains("EdgeQConv"));
        if matches!(arch, Arch::MobileNetV3Small | Arch::MobileNetV3Large) {
            assert!(ours.describe_plan().contains("EdgeLut"), "{arch}: hard-swish should run as an int8 table");
        }
        let x = input(n);
        let (a, b) = (ours.run_all(&x).unwrap(), theirs.run_all(&x).unwrap());
        // tract requantizes with fixed-point multipliers and its own rounding, so the two may
        // differ by a step where a value sits near a rounding boundary; downstream layers of a
        // random-weight network then amplify that. Where they first differ, it must be by at
        // most one step: a wrong kernel would show there as a large difference.
        let first = names.iter().zip(&a).zip(&b).find_map(|((name, a), b)| {
            let d = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            (d > 0.0).then_some((name, d))
        });
        if let Some((name, d)) = first {
            assert!(d <= 1.0, "{arch}: `{name}`, the first tensor where they differ, differs by {d} steps");
        }
        let two = Engine::with_outputs(&q.bytes, "two", &EngineOptions { threads: 2, ..Default::default() }, &names).unwrap();
        assert_eq!(two.run_all(&x).unwrap(), a, "{arch}: 2 threads must give exactly what 1 thread gives");
    }

    /// The int8 fixture of tests/data/int8 (a small MobileNetV2 quantized by edgenet) gives the
    /// logits onnxruntime gave on x86-64, within one output step, on this architecture too,
    /// with every kernel set this CPU runs (forced one by one); tests/quantize.rs keeps the
    /// fixture honest against onnxruntime.
    #[test]
    fn int8_fixture_matches_onnxruntime_logits_on_this_architecture() {
        crate::engine::avoid_tract_amx_int8();
        let f32s = |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() };
        let bytes = include_bytes!("../../tests/data/int8/mobilenet_v2_035_48.int8.onnx");
        let x = f32s(include_bytes!("../../tests/data/int8/input.f32"));
        let want = f32s(include_bytes!("../../tests/data/int8/ort_logits.f32"));
        let step: f32 = include_str!("../../tests/data/int8/output_step.txt").trim().parse().unwrap();
        for set in KernelSet::ALL.into_iter().filter(|k| k.available()) {
            for threads in [1, 2] {
                let engine = Engine::from_bytes(bytes, "fixture", &EngineOptions { threads, kernels: Some(set), ..Default::default() }).unwrap();
                assert_eq!(engine.kernel_set(), set);
                assert!(engine.describe_plan().contains("EdgeQConv"));
                let got = engine.run(&x).unwrap();
                let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d <= step * 1.001, "{set}, {threads} threads: logits differ from onnxruntime's by {d} (step {step})");
            }
        }
    }

    /// A session reuses its output buffers from run to run: its results are exactly those of
    /// fresh runs, input after input, with 1 and 2 threads; and the int8 plan has none of the
    /// tract ops that allocate their output on every run left.
    fn session_matches_fresh_runs(arch: Arch, cfg: &ZooConfig) {
        let model = zoo::build(arch, cfg, WeightSource::Seeded(7)).unwrap();
        let n: usize = model.graph.input_shape().iter().product();
        let inputs: Vec<Vec<f32>> = (0..3).map(|k| input(n).iter().map(|v| v * (1.0 + k as f32 * 0.3)).collect()).collect();
        let q = crate::quant::quantize(&model, &inputs, &Default::default(), &mut |_, _| {}).unwrap();
        for threads in [1, 2] {
            let engine = Engine::from_bytes(&q.bytes, "session", &EngineOptions { threads, ..Default::default() }).unwrap();
            let plan = engine.describe_plan();
            for op in ["OptAddUnicast", "Reduce<", "OptMulByScalar", "IntoShape", "OptMaxPool"] {
                assert!(!plan.contains(op), "{arch}: {op} left in the int8 plan:\n{plan}");
            }
            let mut session = engine.session().unwrap();
            let mut y = vec![0.0; engine.output_len()];
            for round in 0..2 {
                for x in &inputs {
                    session.run_into(x, &mut y).unwrap();
                    assert_eq!(y, engine.run(x).unwrap(), "{arch}, {threads} threads, round {round}");
                }
            }
            assert!(session.buffer_bytes() > 0);
        }
    }

    #[test]
    fn sessions_reuse_buffers_without_changing_results() {
        crate::engine::avoid_tract_amx_int8();
        session_matches_fresh_runs(Arch::MobileNetV2, &ZooConfig { width_mult: 0.35, resolution: 40, num_classes: 10 });
        session_matches_fresh_runs(Arch::ResNet18, &ZooConfig { width_mult: 1.0, resolution: 40, num_classes: 10 });
        session_matches_fresh_runs(Arch::EfficientNetLite0, &ZooConfig { width_mult: 1.0, resolution: 40, num_classes: 10 });
    }

    /// Regression: tract's AMX int8 kernel crashed this process intermittently (SIGSEGV in
    /// `int8_kernels_agree_with_tract_on_small_nets`); loading an engine keeps tract off it
    /// unless the user chose tract's ISA set.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn loading_an_engine_keeps_tract_off_its_amx_int8_kernel() {
        let model = zoo::build(Arch::MobileNetV2, &ZooConfig { width_mult: 0.35, resolution: 32, num_classes: 4 }, WeightSource::Seeded(2)).unwrap();
        let bytes = crate::onnx::export(&model, &crate::onnx::ExportOptions { fold_bn: true }).unwrap();
        Engine::from_bytes(&bytes, "m", &EngineOptions::default()).unwrap();
        // Set by the first engine (or by the user, whose choice stands).
        let isa = std::env::var("TRACT_CPU_ISA").expect("TRACT_CPU_ISA set once an engine is loaded");
        assert!(!isa.trim().is_empty());
    }

    #[test]
    fn int8_kernels_agree_with_tract_on_small_nets() {
        crate::engine::avoid_tract_amx_int8();
        int8_kernels_agree_with_tract(Arch::MobileNetV2, &ZooConfig { width_mult: 0.35, resolution: 40, num_classes: 10 });
        int8_kernels_agree_with_tract(Arch::ResNet18, &ZooConfig { width_mult: 1.0, resolution: 40, num_classes: 10 });
        int8_kernels_agree_with_tract(Arch::EfficientNetLite0, &ZooConfig { width_mult: 1.0, resolution: 40, num_classes: 10 });
        // Hard-swish and squeeze-excitation: edgenet's int8 tables (`EdgeLut`) against tract's
        // f32 ops between its quantizers.
        int8_kernels_agree_with_tract(Arch::MobileNetV3Small, &ZooConfig { width_mult: 1.0, resolution: 40, num_classes: 10 });
    }

    #[test]
    fn tract_matches_reference_on_small_mobilenet_v2() {
        crate::engine::avoid_tract_amx_int8();
        let cfg = ZooConfig { width_mult: 0.35, resolution: 32, num_classes: 10 };
        check(&zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(11)).unwrap());
    }

    #[test]
    fn tract_matches_reference_on_small_efficientnet_lite0() {
        crate::engine::avoid_tract_amx_int8();
        let cfg = ZooConfig { width_mult: 1.0, resolution: 33, num_classes: 7 };
        check(&zoo::build(Arch::EfficientNetLite0, &cfg, WeightSource::Seeded(12)).unwrap());
    }

    #[test]
    fn tract_matches_reference_on_a_bottleneck_net_with_softmax() {
        crate::engine::avoid_tract_amx_int8();
        let mut b = GraphBuilder::new();
        let x = b.input(3, 20, 20).unwrap();
        let x = b.conv2d("stem", x, ConvSpec::new(16, 3).stride(2)).unwrap();
        let x = b.max_pool("pool", x, 3, 2, 1).unwrap();
        let x = b.scoped("l1", |b| blocks::bottleneck(b, x, 4, 1)).unwrap();
        let x = b.scoped("l2", |b| blocks::bottleneck(b, x, 8, 2)).unwrap();
        let x = b.global_avg_pool("gap", x).unwrap();
        let x = b.flatten("flat", x).unwrap();
        let x = b.linear("fc", x, 5, true).unwrap();
        let y = b.softmax("softmax", x).unwrap();
        let graph = b.finish(y).unwrap();
        let weights = Weights::seeded(&graph, 3);
        let info = ModelInfo { arch: "tiny".into(), preprocess: Arch::ResNet50.preprocess(20), labels: "5 classes".into() };
        check(&Model::new(info, graph, weights).unwrap());
    }
}
