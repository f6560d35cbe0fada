//! [`Session`]: one model run again and again with the state, the input tensor and the output
//! buffers kept between runs; and the predicate that tells the session's slot plan which ops
//! write through its output pool (the lists the op modules declare).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use super::pool::{OutputPool, SlotPlan};
use super::{copy_first_output, reuse, rewrite, Engine};
use crate::error::{Error, Result};

/// Whether `op` writes its output through the output pool and reads its inputs by `len()`:
/// one of the ops [`rewrite::POOLED_OPS`] and [`reuse::POOLED_OPS`] list.
fn writes_output(op: &dyn TypedOp) -> bool {
    rewrite::POOLED_OPS.iter().chain(reuse::POOLED_OPS).any(|is| is(op))
}

/// A model run session that keeps tract's per-run state (`SimpleState`: op states, the value
/// table), the input tensor, and a pool of output buffers between runs, for loops that run one
/// model many times. Compared with [`Engine::run_into`], which builds all that anew on every
/// call, it saves those allocations. On an int8 plan (edgenet's int8 kernels, the default for a
/// quantized file) every op writes into the pool's buffers, so once warm (after the first run)
/// a run allocates nothing; on other plans tract's ops still allocate their outputs on every
/// run ([`Session::allocations_by_node`] tells which). The pool keeps about the plan's peak of
/// live intermediate tensors allocated between runs ([`Session::buffer_bytes`]). With several
/// threads ([`EngineOptions::threads`](super::EngineOptions::threads)), the int8 kernels' pool
/// ([`crate::kernels::ThreadPool`]) allocates nothing per run either.
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
        let mut state = SimpleState::new(&self.plan).map_err(eng)?;
        // Output buffers for edgenet's ops, reused from run to run (see `pool`).
        let slots = SlotPlan::new(self.plan.model(), self.plan.order_without_consts(), writes_output);
        state.turn_state.shared.insert(OutputPool::new(self.plan.model().nodes().len(), slots));
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

    /// Bytes of the output buffers the session keeps for edgenet's ops between runs.
    pub fn buffer_bytes(&self) -> usize {
        self.state.turn_state.shared.get::<OutputPool>().map_or(0, |p| p.held().1)
    }

    /// Like [`Engine::run_into`], reusing the state and the input tensor.
    ///
    /// # Errors
    /// As [`Engine::run_into`].
    pub fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        self.run_with(input, out, tract_onnx::tract_core::plan::eval)
    }

    /// One run like [`run_into`](Self::run_into), counting the allocations each node of the
    /// plan makes while it runs and those made outside the nodes (setting the input, copying
    /// the output, tract's bookkeeping). `allocations` reads a running count of allocations,
    /// e.g. `|| ALLOC.snapshot().allocations` with a [`crate::alloc::CountingAlloc`] installed
    /// as the global allocator; the result is built after the run, so its own allocations are
    /// not counted. For finding what allocates, e.g. in `examples/profile.rs --allocs`.
    ///
    /// # Errors
    /// As [`run_into`](Self::run_into).
    pub fn allocations_by_node(&mut self, input: &[f32], out: &mut [f32], allocations: &dyn Fn() -> usize) -> Result<RunAllocations> {
        let n = self.state.model().nodes.len();
        let mut counts = vec![0usize; n];
        let start = allocations();
        self.run_with(input, out, |ctx, st, node, inputs| {
            let before = allocations();
            let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            if let Some(c) = counts.get_mut(node.id) {
                *c += allocations().saturating_sub(before);
            }
            r
        })?;
        let total = allocations().saturating_sub(start);
        let model = self.state.model();
        let nodes: Vec<NodeAllocations> = self
            .state
            .plan()
            .order_without_consts()
            .iter()
            .filter_map(|&id| Some((id, *counts.get(id)?)))
            .filter(|&(_, c)| c > 0)
            .map(|(id, c)| NodeAllocations { name: model.node(id).name.clone(), op: model.node(id).op().name().to_string(), allocations: c })
            .collect();
        let in_nodes: usize = counts.iter().sum();
        Ok(RunAllocations { total, outside_nodes: total.saturating_sub(in_nodes), nodes })
    }

    fn run_with<F>(&mut self, input: &[f32], out: &mut [f32], eval: F) -> Result<()>
    where
        F: for<'a, 'b, 'c> FnMut(
            &'a tract_onnx::tract_core::plan::EvalContext<'a>,
            Option<&'b mut (dyn tract_onnx::tract_core::ops::OpState + 'static)>,
            &'c TypedNode,
            TVec<TValue>,
        ) -> TractResult<TVec<TValue>>,
    {
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
            return Err(Error::Input(format!("{} expects {:?} = {} values, got {}", self.origin, self.input_shape, dst.len(), input.len())));
        }
        dst.copy_from_slice(input);
        let result = self.state.run_plan_with_eval(tvec!(TValue::from_const(self.input.clone())), eval).map_err(eng)?;
        copy_first_output(&result, out, &self.origin)
    }
}

/// Allocations of one node during one run, from [`Session::allocations_by_node`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeAllocations {
    /// The node's name in tract's optimised model.
    pub name: String,
    /// The op, as tract names it.
    pub op: String,
    /// Allocation calls while the node ran.
    pub allocations: usize,
}

/// Allocations of one run of a [`Session`], from [`Session::allocations_by_node`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RunAllocations {
    /// Every allocation call of the run.
    pub total: usize,
    /// Those made outside the nodes' evaluation (input, output, tract's bookkeeping).
    pub outside_nodes: usize,
    /// The nodes that allocated, in plan order.
    pub nodes: Vec<NodeAllocations>,
}
