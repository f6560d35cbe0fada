//! What a prepared plan is made of and where its time goes: [`Engine::profile`] (time per
//! node), [`Engine::describe_plan`] (tract's optimised model as text) and
//! [`Engine::plan_report`] (constants by kind, the activation-memory estimate).

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{ops, Engine};
use crate::error::{Error, Result};

/// Time spent in one node of the plan, from [`Engine::profile`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeTime {
    /// The node's name in tract's optimised model.
    pub name: String,
    /// The op, as tract names it (e.g. `OptMatMulPack`, `Im2Col`, `Scale`).
    pub op: String,
    /// tract's one-line description of the op's configuration, if any.
    pub info: String,
    /// Median over the runs, in seconds.
    pub seconds: f64,
}

impl Engine {
    /// Runs `input` `runs` times (after one warm-up) timing each node of tract's plan; returns
    /// the nodes in plan order with their median time. For finding where time goes, not for
    /// benchmarking (the timing adds a little overhead per node).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn profile(&self, input: &[f32], runs: usize) -> Result<Vec<NodeTime>> {
        if input.len() != self.input_len() {
            return Err(Error::Input(format!("{} expects {} values, got {}", self.origin, self.input_len(), input.len())));
        }
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let model = self.plan.model();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); model.nodes.len()];
        let mut state = self.plan.spawn().map_err(eng)?;
        for run in 0..=runs.max(1) {
            let t = Tensor::from_shape(&self.input_shape, input).map_err(eng)?;
            state
                .run_plan_with_eval(tvec!(t.into_tvalue()), |ctx, st, node, inputs| {
                    let start = std::time::Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                    if run > 0 {
                        times[node.id].push(start.elapsed().as_secs_f64());
                    }
                    r
                })
                .map_err(eng)?;
        }
        let mut out = Vec::new();
        for &id in self.plan.order_without_consts() {
            let t = &mut times[id];
            if t.is_empty() {
                continue;
            }
            t.sort_by(f64::total_cmp);
            let node = model.node(id);
            let info = node.op().info().ok().and_then(|v| v.into_iter().next()).unwrap_or_default();
            out.push(NodeTime { name: node.name.clone(), op: node.op().name().to_string(), info, seconds: t[t.len() / 2] });
        }
        Ok(out)
    }

    /// tract's optimised model as text, one node per line with its op and output facts; for
    /// inspecting what tract made of a file.
    pub fn describe_plan(&self) -> String {
        let model = self.plan.model();
        let mut s = String::new();
        for &id in self.plan.order_without_consts() {
            let node = model.node(id);
            let facts: Vec<String> = node.outputs.iter().map(|o| format!("{:?}", o.fact)).collect();
            s.push_str(&format!("{} {} {} -> {}\n", node.id, node.op().name(), node.name, facts.join(", ")));
            for line in node.op().info().unwrap_or_default() {
                s.push_str(&format!("    {line}\n"));
            }
        }
        s
    }
}

/// What tract's optimized plan holds: its constants (weights, packed or not) by element type,
/// and its own estimate of the activation memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanReport {
    /// Nodes of the optimized model.
    pub nodes: usize,
    /// Nodes by op name, most frequent first.
    pub ops: Vec<(String, usize)>,
    /// Constant tensors by kind (`I8`, `F32`, `packed I8`, …): `(kind, tensors, bytes)`,
    /// largest first: Const nodes, and the weights packed into tract's matmul ops (counted at
    /// the size of the packed buffer tract keeps for its kernels).
    pub constants: Vec<(String, usize, usize)>,
    /// The five largest Const nodes: `(node name, kind, bytes)`.
    pub largest_const_nodes: Vec<(String, String, usize)>,
    /// Bytes of constant values held by the graph's type facts and not shared with a Const op.
    pub fact_constant_bytes: usize,
    /// Largest sum of live intermediate tensors at any step of the plan's order
    /// (`Graph::eval_tmp_memory_usage`, constants excluded), in bytes.
    pub activation_peak_bytes: usize,
    /// The plan step (node name) where that peak is reached.
    pub activation_peak_node: String,
}

impl Engine {
    /// Inspects the optimized plan: constant bytes by kind and the activation-memory estimate.
    ///
    /// # Errors
    /// [`Error::Engine`] when tract cannot evaluate the order or a size is symbolic.
    pub fn plan_report(&self) -> Result<PlanReport> {
        use tract_onnx::tract_core::internal::DimLike;
        use tract_onnx::tract_core::ops::konst::Const;
        use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
        let eng = |e: TractError| Error::Engine(format!("{}: {e:#}", self.origin));
        let model = self.plan.model();
        let mut by_kind: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        let packed_kind = |w: tract_linalg::WeightType| match w {
            tract_linalg::WeightType::Plain(dt) => format!("packed {dt:?}"),
            tract_linalg::WeightType::BlockQuant(_) => "packed block-quant".to_string(),
        };
        let mut ops: std::collections::BTreeMap<String, usize> = Default::default();
        let mut fact_bytes = 0;
        let mut largest: Vec<(String, String, usize)> = Vec::new();
        for node in model.nodes() {
            *ops.entry(node.op().name().to_string()).or_default() += 1;
            // Weights that tract's optimizer packed into a matmul live inside the op.
            if let Some(mm) = node.op_as::<OptMatMul>() {
                for spec in &mm.micro_ops {
                    if let ProtoFusedSpec::AddMatMul { a, b, .. } = spec {
                        for operand in [a, b] {
                            if let MatMulOperand::Const(v) = operand {
                                let e = by_kind.entry(format!("{} (in matmul ops)", packed_kind(v.format().precursor()))).or_default();
                                e.0 += 1;
                                e.1 += v.exotic_fact().mem_size().to_usize().unwrap_or(0);
                            }
                        }
                    }
                }
            }
            // Weights held by edgenet's int8 kernels.
            if let Some(q) = node.op_as::<ops::EdgeQConv>() {
                let e = by_kind.entry(q.held_kind().to_string()).or_default();
                e.0 += 1;
                e.1 += q.held_bytes();
            }
            // Values known at optimization time that a fact holds besides the Const ops.
            for o in &node.outputs {
                if let Some(k) = &o.fact.konst {
                    let shared = node.op_as::<Const>().is_some_and(|c| Arc::ptr_eq(c.val(), k));
                    if !shared && k.is_plain() {
                        fact_bytes += k.len() * k.datum_type().size_of();
                    }
                }
            }
            let Some(c) = node.op_as::<Const>() else { continue };
            let t = c.val();
            let (kind, bytes) = match c.exotic_fact() {
                Some(f) => {
                    let kind = match f.downcast_ref::<tract_linalg::mmm::PackedExoticFact>() {
                        Some(p) => packed_kind(p.format.precursor()),
                        None => "exotic".to_string(),
                    };
                    (kind, f.mem_size().to_usize().unwrap_or(0))
                }
                None => (format!("{:?}", t.datum_type()), t.len() * t.datum_type().size_of()),
            };
            if log::log_enabled!(log::Level::Debug) && bytes >= 1 << 20 {
                let users: Vec<String> = node
                    .outputs
                    .iter()
                    .flat_map(|o| o.successors.iter())
                    .map(|s| format!("{} ({})", model.node(s.node).name, model.node(s.node).op().name()))
                    .collect();
                log::debug!("{}: constant {} ({kind}, {bytes} bytes) feeds {}", self.origin, node.name, users.join(", "));
            }
            largest.push((node.name.clone(), kind.clone(), bytes));
            let e = by_kind.entry(kind).or_default();
            e.0 += 1;
            e.1 += bytes;
        }
        let mut constants: Vec<(String, usize, usize)> = by_kind.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
        constants.sort_by_key(|c| std::cmp::Reverse(c.2));
        let order = model.eval_order().map_err(eng)?;
        let steps = model.eval_tmp_memory_usage(&order, |n| !n.op_is::<Const>()).map_err(eng)?;
        let mut peak = (0usize, String::new());
        for (node, mem) in steps.iter() {
            let m = mem.to_usize().map_err(|e| Error::Engine(format!("{}: activation size {mem}: {e:?}", self.origin)))?;
            if m > peak.0 {
                peak = (m, model.node(*node).name.clone());
            }
        }
        largest.sort_by_key(|c| std::cmp::Reverse(c.2));
        largest.truncate(5);
        let mut ops: Vec<(String, usize)> = ops.into_iter().collect();
        ops.sort_by_key(|o| std::cmp::Reverse(o.1));
        Ok(PlanReport {
            nodes: model.nodes().len(),
            ops,
            constants,
            largest_const_nodes: largest,
            fact_constant_bytes: fact_bytes,
            activation_peak_bytes: peak.0,
            activation_peak_node: peak.1,
        })
    }
}

/// One int8 convolution or matmul of a loaded model and how it runs (or would run with another
/// kernel set): the per-layer plan `edgenet inspect` and `edgenet footprint` print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerPlan {
    /// The node's name in tract's plan (the ONNX node's name).
    pub name: String,
    /// `conv`, `depthwise` or `matmul`.
    pub kind: &'static str,
    /// Input channels, height and width.
    pub input: [usize; 3],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides (clamped where a larger one changes nothing).
    pub stride: [usize; 2],
    /// Output channels.
    pub output_channels: usize,
    /// Multiply-accumulates of the direct convolution.
    pub macs: usize,
    /// The kernel set and architecture the layer runs on.
    pub target: String,
    /// The algorithm, tile or form, and the reason for any fallback.
    pub plan: String,
}

impl Engine {
    /// The plan of every int8 convolution and matmul on edgenet's kernels, in the plan's order:
    /// what runs in this engine, or, with `target`, what the planner chooses for that kernel
    /// set and architecture (planned from the same layer facts, not built: a set this CPU
    /// cannot run, e.g. `dotprod` on an x86-64 machine, can be planned). Empty for an f32
    /// model.
    pub fn layer_plans(&self, target: Option<crate::kernels::plan::Target>) -> Vec<LayerPlan> {
        let model = self.plan.model();
        let mut out = Vec::new();
        for &id in self.plan.order_without_consts() {
            let node = model.node(id);
            let Some(q) = node.op_as::<ops::EdgeQConv>() else { continue };
            let plan = match target {
                Some(t) => match q.plan_for(t) {
                    Some(p) => p,
                    None => continue,
                },
                None => q.plan(),
            };
            let (g, m, matmul) = q.shape();
            let kind = match plan {
                _ if matmul => "matmul",
                crate::kernels::plan::ConvPlan::Depthwise(_) => "depthwise",
                _ => "conv",
            };
            out.push(LayerPlan {
                name: node.name.clone(),
                kind,
                input: [g.cin, g.h, g.w],
                kernel: [g.kh, g.kw],
                stride: [g.stride.0, g.stride.1],
                output_channels: m,
                macs: q.macs(),
                target: plan.target().to_string(),
                plan: plan.describe(),
            });
        }
        out
    }
}
