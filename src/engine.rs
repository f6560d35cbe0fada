//! The inference engine: tract, and the only module of edgenet that uses tract's runtime.
//!
//! Load ONNX bytes → fix the input fact → `into_optimized` → a runnable plan, optionally with
//! an intra-op thread pool.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};
use tract_onnx::tract_core::runtime::RunOptions;

use crate::error::{Error, Result};

/// How to prepare a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Intra-op threads. 1 runs everything on the calling thread; `n > 1` gives the plan a
    /// private pool of `n` threads (tract's `multithread-mm`).
    pub threads: usize,
    /// Input shape `[1, C, H, W]` for models whose input size is not fixed in the file.
    pub input_shape: Option<[usize; 4]>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { threads: 1, input_shape: None }
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
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string(), opts)
    }

    /// Loads an ONNX model from bytes; `origin` names it in errors and logs.
    ///
    /// # Errors
    /// [`Error::Onnx`] when the bytes are not ONNX, tract cannot translate or optimise the
    /// graph, or the input shape is neither fixed in the file nor given in `opts`.
    pub fn from_bytes(bytes: &[u8], origin: &str, opts: &EngineOptions) -> Result<Self> {
        Self::build(bytes, origin, opts, &[])
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
        Self::build(bytes, origin, opts, outputs)
    }

    fn build(bytes: &[u8], origin: &str, opts: &EngineOptions, outputs: &[String]) -> Result<Self> {
        let proto = crate::onnx::decode(bytes, origin)?;
        let metadata: HashMap<String, String> =
            proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let output_name = proto.graph.as_ref().and_then(|g| g.output.first()).map(|o| o.name.clone()).unwrap_or_default();
        let start = std::time::Instant::now();
        let onnx = tract_onnx::onnx();
        let mut model = onnx.model_for_proto_model(&proto).map_err(|e| onnx_err(origin, e))?;
        drop(proto);
        if !outputs.is_empty() {
            model.select_outputs_by_name(outputs).map_err(|e| onnx_err(origin, e))?;
        }
        if model.inputs.len() != 1 || (outputs.is_empty() && model.outputs.len() != 1) {
            return Err(onnx_err(
                origin,
                format!("edgenet runs models with one input and one output; this one has {} and {}", model.inputs.len(), model.outputs.len()),
            ));
        }
        let declared = model
            .input_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete_finite().ok().flatten())
            .and_then(|s| <[usize; 4]>::try_from(s.as_slice()).ok());
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
        let typed = model.into_optimized().map_err(|e| onnx_err(origin, e))?;
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
        let mut run_opts = RunOptions::default();
        if opts.threads > 1 {
            run_opts.executor = Some(tract_linalg::multithread::Executor::multithread(opts.threads));
        }
        let plan = SimplePlan::new_with_options(typed, &run_opts).map_err(|e| onnx_err(origin, e))?;
        log::debug!("{origin}: plan ready in {:.1} ms, input {input_shape:?}, {output_len} outputs", start.elapsed().as_secs_f64() * 1e3);
        Ok(Engine { plan, input_shape, output_len, output_lens, metadata, output_name, origin: origin.to_string() })
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
            return Err(Error::Input(format!(
                "{} expects {:?} = {} values, got {}",
                self.origin,
                self.input_shape,
                self.input_len(),
                input.len()
            )));
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
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let result = self.run_raw(input)?;
        let y = result[0].cast_to::<f32>().map_err(eng)?;
        let view = y.try_as_plain_ram().map_err(eng)?;
        let s = view.as_slice::<f32>().map_err(eng)?;
        if s.len() != out.len() {
            return Err(Error::Engine(format!("{}: produced {} outputs, expected {}", self.origin, s.len(), out.len())));
        }
        out.copy_from_slice(s);
        Ok(())
    }
}

/// A model run session that keeps tract's per-run state (`SimpleState`: op states, the value
/// table) and the input tensor between runs, for loops that run one model many times. Compared
/// with [`Engine::run_into`], which builds both anew on every call, it saves those allocations;
/// the ops' own output tensors are still allocated by tract on every run (see
/// `Session::run_into`).
#[derive(Debug)]
pub struct Session {
    state: tract_onnx::tract_core::model::TypedSimpleState,
    input: Arc<Tensor>,
    input_shape: [usize; 4],
    output_len: usize,
    origin: String,
}

impl Engine {
    /// A [`Session`] on this engine's plan (the plan is shared, not copied).
    ///
    /// # Errors
    /// [`Error::Engine`] when tract cannot create the state.
    pub fn session(&self) -> Result<Session> {
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let state = SimpleState::new(&self.plan).map_err(eng)?;
        let input = Arc::new(Tensor::zero::<f32>(&self.input_shape).map_err(eng)?);
        Ok(Session { state, input, input_shape: self.input_shape, output_len: self.output_len, origin: self.origin.clone() })
    }
}

impl Session {
    /// The input shape `[1, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// Number of output values.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Like [`Engine::run_into`], reusing the state and the input tensor.
    ///
    /// # Errors
    /// As [`Engine::run_into`].
    pub fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        if out.len() != self.output_len {
            return Err(Error::Input(format!("output buffer of {} for {} outputs", out.len(), self.output_len)));
        }
        // The plan drops every value at the end of a run, so the tensor is ours again here;
        // if it is not (an op kept it), make a new one rather than fail.
        let t = match Arc::get_mut(&mut self.input) {
            Some(t) => t,
            None => {
                self.input = Arc::new(Tensor::zero::<f32>(&self.input_shape).map_err(eng)?);
                Arc::get_mut(&mut self.input).ok_or_else(|| Error::Engine("input tensor is shared".into()))?
            }
        };
        let mut view = t.try_as_plain_ram_mut().map_err(eng)?;
        let dst = view.as_slice_mut::<f32>().map_err(eng)?;
        if dst.len() != input.len() {
            return Err(Error::Input(format!(
                "{} expects {:?} = {} values, got {}",
                self.origin,
                self.input_shape,
                dst.len(),
                input.len()
            )));
        }
        dst.copy_from_slice(input);
        let result = self.state.run(tvec!(TValue::from_const(self.input.clone()))).map_err(eng)?;
        let first = result.first().ok_or_else(|| Error::Engine(format!("{}: the plan returned no output", self.origin)))?;
        let y = first.cast_to::<f32>().map_err(eng)?;
        let view = y.try_as_plain_ram().map_err(eng)?;
        let s = view.as_slice::<f32>().map_err(eng)?;
        if s.len() != out.len() {
            return Err(Error::Engine(format!("{}: produced {} outputs, expected {}", self.origin, s.len(), out.len())));
        }
        out.copy_from_slice(s);
        Ok(())
    }
}

#[cfg(test)]
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

    #[test]
    fn tract_matches_reference_on_small_mobilenet_v2() {
        let cfg = ZooConfig { width_mult: 0.35, resolution: 32, num_classes: 10 };
        check(&zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(11)).unwrap());
    }

    #[test]
    fn tract_matches_reference_on_small_efficientnet_lite0() {
        let cfg = ZooConfig { width_mult: 1.0, resolution: 33, num_classes: 7 };
        check(&zoo::build(Arch::EfficientNetLite0, &cfg, WeightSource::Seeded(12)).unwrap());
    }

    #[test]
    fn tract_matches_reference_on_a_bottleneck_net_with_softmax() {
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
