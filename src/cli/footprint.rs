//! `edgenet footprint`: what a model costs in memory, measured rather than guessed.
//!
//! File and weight bytes come from the ONNX file; what tract keeps comes from its optimized
//! plan (constants by kind, `eval_tmp_memory_usage` for activations); heap high-water per stage
//! from the binary's counting allocator; resident memory from `/proc/self/status`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgenet::engine::PlanReport;
use serde::Serialize;

use super::measure::{self, mib, mib_or, Machine, Phase, PhaseClock};

#[derive(Debug, Args)]
pub struct FootprintArgs {
    /// ONNX model; optional in a binary built with a model inside (EDGENET_EMBED_MODEL).
    pub model: Option<PathBuf>,
    /// Inferences in the steady-state window (after the first one).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
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
}

/// Initializers of one ONNX data type.
#[derive(Debug, Clone, Serialize)]
pub struct WeightGroup {
    #[serde(rename = "type")]
    pub dtype: String,
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
struct Constant {
    kind: String,
    tensors: usize,
    bytes: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    file_bytes: usize,
    threads: u16,
    /// The int8 micro-kernels the quantized layers run (see `edgenet::kernels`).
    int8_kernels: String,
    weights: Vec<WeightGroup>,
    weight_bytes: u64,
    plan: PlanJson,
    /// Each int8 layer's kernel plan (set, algorithm, tile or form).
    layers: Vec<edgenet::engine::LayerPlan>,
    heap: HeapJson,
    rss: Option<Rss>,
    binary: Option<Binary>,
    machine: Machine,
}

#[derive(Debug, Serialize)]
struct PlanJson {
    nodes: usize,
    ops: Vec<OpCount>,
    constants: Vec<Constant>,
    constant_bytes: usize,
    largest_const_nodes: Vec<Constant>,
    fact_constant_bytes: usize,
    activation_peak_bytes: usize,
    activation_peak_node: String,
}

#[derive(Debug, Serialize)]
struct HeapJson {
    measured: bool,
    phases: Vec<Phase>,
    /// Heap held by the loaded engine (live after loading minus live before).
    engine_bytes: Option<usize>,
    /// High-water of the whole process so far (all stages).
    peak_bytes: Option<usize>,
    /// High-water over the steady-state runs, and heap live after them.
    steady_peak_bytes: Option<usize>,
    steady_live_bytes: Option<usize>,
    steady_runs: u32,
    /// Allocations per steady-state run of a session (0 on an int8 plan: see `Session`).
    allocations_per_inference: Option<f64>,
    /// Output buffers the session keeps between runs for edgenet's ops (counted in the steady
    /// state's live bytes).
    session_buffer_bytes: usize,
}

#[derive(Debug, Serialize)]
struct OpCount {
    op: String,
    count: usize,
}

#[derive(Debug, Serialize)]
struct Rss {
    /// VmRSS before the model is read: the binary's own pages and the runtime.
    start_bytes: usize,
    peak_bytes: usize,
    current_bytes: usize,
    /// The current figure split: anonymous memory (heap, stacks) and file pages (the binary).
    current_anon_bytes: Option<usize>,
    current_file_bytes: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Binary {
    path: PathBuf,
    bytes: u64,
}

fn onnx_type_name(t: i32) -> (String, u64) {
    match t {
        1 => ("f32".into(), 4),
        2 => ("u8".into(), 1),
        3 => ("i8".into(), 1),
        4 => ("u16".into(), 2),
        5 => ("i16".into(), 2),
        6 => ("i32".into(), 4),
        7 => ("i64".into(), 8),
        9 => ("bool".into(), 1),
        10 => ("f16".into(), 2),
        11 => ("f64".into(), 8),
        12 => ("u32".into(), 4),
        13 => ("u64".into(), 8),
        16 => ("bf16".into(), 2),
        other => (format!("onnx type {other}"), 0),
    }
}

/// Initializer bytes by data type, as they would sit in memory unpacked (elements × size).
pub fn weights_by_type(bytes: &[u8], origin: &str) -> anyhow::Result<Vec<WeightGroup>> {
    let proto = edgenet::onnx::decode(bytes, origin)?;
    let graph = proto.graph.as_ref().with_context(|| format!("{origin}: no graph"))?;
    let mut groups: BTreeMap<String, WeightGroup> = BTreeMap::new();
    for t in &graph.initializer {
        let (name, size) = onnx_type_name(t.data_type);
        let elements = t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>();
        let g = groups.entry(name.clone()).or_insert(WeightGroup { dtype: name, tensors: 0, elements: 0, bytes: 0 });
        g.tensors += 1;
        g.elements += elements;
        g.bytes += elements * size;
    }
    let mut v: Vec<WeightGroup> = groups.into_values().collect();
    v.sort_by_key(|g| std::cmp::Reverse(g.bytes));
    Ok(v)
}

pub fn run(args: &FootprintArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let machine = Machine::describe();
    let rss_start = measure::rss().map(|r| r.1);
    let heap_start = measure::heap();
    let mut phases = Vec::new();
    let model = super::ModelSource::from_arg(args.model.as_deref())?;
    let (engine, file_bytes) = measure::load(&model, &args.engine.options(), None, args.no_trim, &mut phases)?;
    let engine_bytes = match (heap_start, measure::heap()) {
        (Some(a), Some(b)) => Some(b.live_bytes.saturating_sub(a.live_bytes)),
        _ => None,
    };
    let x = measure::synthetic_input(engine.input_len());
    let mut y = vec![0.0; engine.output_len()];
    // Inference as `edgenet run` does it: a session, which keeps tract's state and its output
    // buffers between runs.
    let mut clock = PhaseClock::start();
    let mut session = engine.session()?;
    session.run_into(&x, &mut y)?;
    phases.push(clock.end("first inference"));
    let before = measure::heap();
    for _ in 0..args.runs {
        session.run_into(&x, &mut y)?;
    }
    let steady = clock.end("steady state");
    let after = measure::heap();
    let kinds = measure::rss_kinds();
    let rss = measure::rss().zip(rss_start).map(|((peak_bytes, current_bytes), start_bytes)| Rss {
        start_bytes,
        peak_bytes,
        current_bytes,
        current_anon_bytes: kinds.map(|k| k.0),
        current_file_bytes: kinds.map(|k| k.1),
    });
    // Measured: now the extra work of describing the model may allocate.
    let plan: PlanReport = engine.plan_report()?;
    let layers = engine.layer_plans(None);
    let weights = match &model {
        super::ModelSource::File(path) => {
            let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            weights_by_type(&file, &model.to_string())?
        }
        super::ModelSource::Embedded { bytes, .. } => weights_by_type(bytes, &model.to_string())?,
    };
    let weight_bytes = weights.iter().map(|g| g.bytes).sum();
    let session_buffer_bytes = session.buffer_bytes();
    drop(session);
    let allocations_per_inference = match (before, after) {
        (Some(b), Some(a)) => Some(a.allocations_since(&b) as f64 / args.runs as f64),
        _ => None,
    };
    let peak_bytes = phases.iter().chain(std::iter::once(&steady)).filter_map(|p| p.heap_peak_bytes).max();
    let heap = HeapJson {
        measured: before.is_some(),
        engine_bytes,
        steady_peak_bytes: steady.heap_peak_bytes,
        steady_live_bytes: steady.heap_live_bytes,
        steady_runs: args.runs,
        peak_bytes,
        allocations_per_inference,
        session_buffer_bytes,
        phases: phases.into_iter().chain(std::iter::once(steady)).collect(),
    };
    let binary = std::env::current_exe().ok().and_then(|p| std::fs::metadata(&p).ok().map(|m| Binary { path: p, bytes: m.len() }));
    let constant_bytes = plan.constants.iter().map(|c| c.2).sum();
    let report = Report {
        model: model.to_string(),
        file_bytes,
        threads: args.engine.threads,
        int8_kernels: engine.kernel_set().to_string(),
        weights,
        weight_bytes,
        plan: PlanJson {
            nodes: plan.nodes,
            ops: plan.ops.into_iter().map(|(op, count)| OpCount { op, count }).collect(),
            constants: plan.constants.into_iter().map(|(kind, tensors, bytes)| Constant { kind, tensors, bytes }).collect(),
            constant_bytes,
            fact_constant_bytes: plan.fact_constant_bytes,
            largest_const_nodes: plan
                .largest_const_nodes
                .into_iter()
                .map(|(node, kind, bytes)| Constant { kind: format!("{kind} {node}"), tensors: 1, bytes })
                .collect(),
            activation_peak_bytes: plan.activation_peak_bytes,
            activation_peak_node: plan.activation_peak_node,
        },
        layers,
        heap,
        rss,
        binary,
        machine,
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write_text(&report, out)?;
    }
    Ok(())
}

fn write_text(r: &Report, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "model        {}  {} ({} bytes)", r.model, mib(r.file_bytes), r.file_bytes)?;
    writeln!(out, "machine      {}", r.machine.one_line())?;
    writeln!(out, "threads      {}, int8 kernels {}", r.threads, r.int8_kernels)?;
    writeln!(out, "\nweights in the file (ONNX initializers, unpacked): {}", mib(r.weight_bytes as usize))?;
    for g in &r.weights {
        writeln!(out, "  {:<8} {:>12} bytes  {:>5} tensors  {:>11} elements", g.dtype, g.bytes, g.tensors, g.elements)?;
    }
    let ops: Vec<String> = r.plan.ops.iter().map(|o| format!("{}×{}", o.op, o.count)).collect();
    writeln!(out, "\ntract's optimized plan: {} nodes: {}", r.plan.nodes, ops.join(" "))?;
    writeln!(out, "  constants kept: {}", mib(r.plan.constant_bytes))?;
    for c in &r.plan.constants {
        writeln!(out, "    {:<18} {:>12} bytes  {:>5} tensors", c.kind, c.bytes, c.tensors)?;
    }
    if let Some(big) = r.plan.largest_const_nodes.first() {
        writeln!(out, "    largest Const node: {} ({} bytes)", big.kind, big.bytes)?;
    }
    if r.plan.fact_constant_bytes > 0 {
        writeln!(out, "  constant values held by type facts besides: {} bytes", r.plan.fact_constant_bytes)?;
    }
    writeln!(out, "  activation memory (eval_tmp_memory_usage): {} at its peak, node {}", mib(r.plan.activation_peak_bytes), r.plan.activation_peak_node)?;
    if !r.layers.is_empty() {
        writeln!(out, "\nint8 kernel plan, {} layers:", r.layers.len())?;
        super::inspect::write_layer_plans(&r.layers, out)?;
    }
    if r.heap.measured {
        writeln!(out, "\nheap (counting allocator)      time      high-water      live after")?;
        for p in &r.heap.phases {
            let name = if p.phase == "steady state" { format!("steady state ({} runs)", r.heap.steady_runs) } else { p.phase.to_string() };
            writeln!(out, "  {:<26} {:>8.1} ms  {:>14}  {:>14}", name, p.ms, mib_or(p.heap_peak_bytes), mib_or(p.heap_live_bytes))?;
        }
        writeln!(out, "  overall high-water {}; {:.0} allocations per inference", mib_or(r.heap.peak_bytes), r.heap.allocations_per_inference.unwrap_or(0.0))?;
        writeln!(out, "  the run session keeps {} of output buffers between runs", mib(r.heap.session_buffer_bytes))?;
        if let Some(e) = r.heap.engine_bytes {
            writeln!(
                out,
                "  the loaded engine holds {}: the plan's constants {} and {} of tract's graph, op state and edgenet's own fields",
                mib(e),
                mib(r.plan.constant_bytes),
                mib(e.saturating_sub(r.plan.constant_bytes))
            )?;
        }
    } else {
        writeln!(out, "\nheap: not measured (the counting allocator is not this binary's global allocator)")?;
    }
    match &r.rss {
        Some(s) => writeln!(
            out,
            "\nresident memory: before loading {}, peak (VmHWM) {}, current (VmRSS) {} = anonymous {} + file pages {}",
            mib(s.start_bytes),
            mib(s.peak_bytes),
            mib(s.current_bytes),
            mib_or(s.current_anon_bytes),
            mib_or(s.current_file_bytes)
        )?,
        None => writeln!(out, "\nresident memory: not measured (no /proc/self/status)")?,
    }
    match &r.binary {
        Some(b) => writeln!(out, "binary: {} {}", b.path.display(), mib(b.bytes as usize))?,
        None => writeln!(out, "binary: not measured")?,
    }
    Ok(())
}
