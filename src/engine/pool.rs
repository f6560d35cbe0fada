//! The output pool: buffers a session keeps from one run to the next for the ops that write
//! their output through it, so that a [`super::Session`] running an int8 plan allocates nothing
//! once warm.
//!
//! tract evaluates an op by calling `EvalOp::eval`, which returns a tensor wrapped in an `Arc`
//! (a `TValue`); an op that makes a new tensor for its output makes two allocations per run
//! (the data and the `Arc`). The ops that implement [`WriteOutput`] take their output from an
//! [`OutputPool`] instead when the run has one: a session puts one into tract's per-state
//! `TurnState::shared` (which tract hands every op through `EvalContext::shared` and keeps
//! across runs). A pooled buffer is free when the pool holds its only handle: tract drops a
//! value as soon as its last consumer has run and clears the rest at the end of the run, so
//! buffers come back during the run and are taken again by later nodes of the same size. The
//! pool hands out the first free buffer of the requested type and length (reshaped to the
//! requested shape), and makes one only when none is free; the plan runs its nodes in the same
//! order every time, so from the second run on every request finds the buffer it had in the
//! previous run, and nothing is allocated. What the pool keeps is about tract's own peak of
//! live intermediate tensors (per length), not their sum.
//!
//! Without a pool (outside a plan, in a plan run by [`super::Engine::run`] with a fresh
//! state) the ops allocate their output as before. A buffer that something outside still
//! holds (an output a caller keeps) is simply not free; the pool never hands it out again
//! while it is held, and it never holds more buffers than the plan has nodes.
//!
//! This module knows no concrete op. An op takes part by implementing [`WriteOutput`] and
//! evaluating through [`reuse_output_eval!`]; the modules that define such ops declare them in
//! a list ([`PooledOps`]: `rewrite::POOLED_OPS` for the int8 ops of `ops`, `reuse::POOLED_OPS`),
//! and the session, which builds the [`SlotPlan`], hands the plan a predicate made of those
//! lists. So the engine's modules depend on each other one way only: `pool` ← `ops` ←
//! `rewrite` ← `reuse` (which borrows `rewrite`'s `replace_nodes`) ← `session`, and `mod.rs`
//! over all of them.

use std::sync::Mutex;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// An op whose output can be written into an existing tensor.
pub(crate) trait WriteOutput: Op + Clone {
    /// The datum type and shape of the output for these inputs (checking the inputs).
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])>;

    /// Computes the output into `y`, of the type and shape [`output_of`](Self::output_of)
    /// gave, writing every element (`y` may hold anything before).
    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()>;
}

/// An uninitialised tensor of `dt` (quantized types included) and `shape`.
///
/// # Safety
/// Every element must be written before it is read.
unsafe fn uninit(dt: DatumType, shape: &[usize]) -> TractResult<Tensor> {
    // SAFETY: forwarded to the caller; a quantized type has its unquantized one's layout.
    unsafe {
        let mut y = Tensor::uninitialized_dt(dt.unquantized(), shape)?;
        y.set_datum_type(dt);
        Ok(y)
    }
}

/// The output buffers of one session's runs, shared by its nodes (see the module's
/// documentation). Lives in tract's `TurnState::shared`.
///
/// Two kinds of buffer:
/// - **slots**, planned once from the plan ([`SlotPlan`]): a node whose output only edgenet's
///   ops read (and that is no output of the model) writes into the slot the plan gave it. A
///   slot is as large as the largest output assigned to it, and holds, one after the other, the
///   outputs of nodes whose lifetimes do not overlap, whatever their type and length: what
///   the slots keep is about tract's peak of live intermediate tensors. Such a tensor's storage
///   may be longer than its shape: edgenet's ops read and write exactly `len()` elements, so it
///   never reaches tract's ops, which may assume storage and shape agree.
/// - **exact buffers** for the other nodes' outputs (read by tract's ops, or outputs of the
///   model): the first free buffer of the same type and length, made when none is free.
///
/// A buffer is free when the pool holds its only handle; a slot or buffer that is still held
/// (by a caller keeping an output, or a lifetime the plan did not foresee) is never handed out
/// again while held: the node then gets a new tensor (correct, only an allocation).
#[derive(Debug)]
pub(crate) struct OutputPool {
    buffers: Mutex<Vec<Arc<Tensor>>>,
    /// At most this many exact buffers (the plan's node count: within a run, each node's
    /// output is one buffer at most).
    cap: usize,
    plan: SlotPlan,
    slots: Mutex<Vec<Option<Arc<Tensor>>>>,
}

/// Which nodes write into which slot (see [`OutputPool`]), made by [`SlotPlan::new`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotPlan {
    /// By node id: the node's slot, if it has one.
    slot_of: Vec<Option<usize>>,
    /// Bytes of each slot.
    slot_bytes: Vec<usize>,
}

impl SlotPlan {
    /// Plans the slots of `model` run in `order` (tract's plan order, constants left out):
    /// each eligible node's output lives from its own step to the step of its last consumer
    /// (after which tract drops it); outputs are placed largest first, each in the first slot
    /// whose outputs' lifetimes it does not overlap, else in a new slot. Eligible are the
    /// single outputs, not outputs of the model, of nodes whose op `writes_output` accepts and
    /// whose readers it all accepts: ops that write through the pool and read their inputs by
    /// `len()` (see [`is`]).
    pub(crate) fn new(model: &TypedModel, order: &[usize], writes_output: impl Fn(&dyn TypedOp) -> bool) -> SlotPlan {
        let mut step = vec![usize::MAX; model.nodes.len()];
        for (i, &n) in order.iter().enumerate() {
            if let Some(s) = step.get_mut(n) {
                *s = i;
            }
        }
        let outputs: Vec<OutletId> = model.output_outlets().map(|o| o.to_vec()).unwrap_or_default();
        // (bytes, first step, last step, node)
        let mut wanted: Vec<(usize, usize, usize, usize)> = Vec::new();
        for &n in order {
            let node = &model.nodes[n];
            if !writes_output(node.op.as_ref()) || node.outputs.len() != 1 || outputs.iter().any(|o| o.node == n) {
                continue;
            }
            let fact = &node.outputs[0].fact;
            let Some(shape) = fact.shape.as_concrete() else { continue };
            let succ = &node.outputs[0].successors;
            let readers_ours = succ.iter().all(|s| writes_output(model.nodes[s.node].op.as_ref()) && step[s.node] != usize::MAX);
            if succ.is_empty() || !readers_ours || !fact.datum_type.is_copy() {
                continue;
            }
            let last = succ.iter().map(|s| step[s.node]).max().unwrap_or(step[n]);
            let bytes = shape.iter().product::<usize>() * fact.datum_type.size_of();
            wanted.push((bytes, step[n], last, n));
        }
        wanted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut plan = SlotPlan { slot_of: vec![None; model.nodes.len()], slot_bytes: Vec::new() };
        let mut lifetimes: Vec<Vec<(usize, usize)>> = Vec::new();
        for (bytes, first, last, n) in wanted {
            let overlaps = |l: &Vec<(usize, usize)>| l.iter().any(|&(f, e)| first <= e && f <= last);
            let slot = match lifetimes.iter().position(|l| !overlaps(l)) {
                Some(s) => s,
                None => {
                    lifetimes.push(Vec::new());
                    plan.slot_bytes.push(bytes);
                    lifetimes.len() - 1
                }
            };
            lifetimes[slot].push((first, last));
            plan.slot_of[n] = Some(slot);
        }
        plan
    }
}

/// An op module's list of its [`WriteOutput`] ops (each entry [`is::<Op>`](is)), from which
/// the session makes the predicate [`SlotPlan::new`] takes.
pub(crate) type PooledOps = &'static [fn(&dyn TypedOp) -> bool];

/// Whether `op` is a `T`: the entries of a [`PooledOps`] list. Only [`WriteOutput`] ops can be
/// listed, and each of them writes its output through the pool and reads its inputs by
/// `len()` (so a slot's longer storage is harmless to it).
pub(crate) fn is<T: WriteOutput>(op: &dyn TypedOp) -> bool {
    op.as_op().downcast_ref::<T>().is_some()
}

#[cfg(test)]
impl SlotPlan {
    /// Node `node`'s slot, if it has one.
    pub(crate) fn slot_of(&self, node: usize) -> Option<usize> {
        self.slot_of.get(node).copied().flatten()
    }

    /// Bytes of each slot.
    pub(crate) fn slot_bytes(&self) -> &[usize] {
        &self.slot_bytes
    }
}

impl OutputPool {
    pub(crate) fn new(cap: usize, plan: SlotPlan) -> OutputPool {
        let slots = vec![None; plan.slot_bytes.len()];
        OutputPool { buffers: Mutex::new(Vec::with_capacity(cap)), cap, plan, slots: Mutex::new(slots) }
    }

    /// Buffers held (slots made and exact buffers), and their bytes.
    pub(crate) fn held(&self) -> (usize, usize) {
        let exact = match self.buffers.lock() {
            Ok(b) => (b.len(), b.iter().map(|t| t.len() * t.datum_type().size_of()).sum()),
            Err(_) => (0, 0),
        };
        let slots = match self.slots.lock() {
            Ok(s) => s.iter().zip(&self.plan.slot_bytes).filter(|(s, _)| s.is_some()).fold((0, 0), |(n, b), (_, &len)| (n + 1, b + len)),
            Err(_) => (0, 0),
        };
        (exact.0 + slots.0, exact.1 + slots.1)
    }

    /// Runs `op` (node `node_id`) into its slot if it has one, else into a free exact buffer
    /// of the right type and length, made if there is none.
    fn eval<T: WriteOutput>(&self, op: &T, node_id: usize, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if let Some(slot) = self.plan.slot_of.get(node_id).copied().flatten() {
            return self.eval_in_slot(op, slot, inputs);
        }
        let (dt, shape) = op.output_of(&inputs)?;
        let mut buffers = self.buffers.lock().map_err(|_| format_err!("output pool poisoned by an earlier panic"))?;
        let len: usize = shape.iter().product();
        let free = |b: &mut Arc<Tensor>| Arc::get_mut(b).is_some_and(|t| t.datum_type().unquantized() == dt.unquantized() && t.len() == len);
        let ix = match buffers.iter_mut().position(free) {
            Some(ix) => ix,
            None if buffers.len() < self.cap => {
                // SAFETY: `write` below writes every element before anything reads it.
                buffers.push(Arc::new(unsafe { uninit(dt, shape)? }));
                buffers.len() - 1
            }
            None => {
                drop(buffers);
                return eval_fresh(op, inputs);
            }
        };
        let buffer = buffers.get_mut(ix).context("output pool index")?;
        let y = Arc::get_mut(buffer).context("a free output buffer is shared")?;
        // SAFETY: same representation (the unquantized types are equal, checked in `free`).
        unsafe { y.set_datum_type(dt) };
        // As many elements (checked in `free`): a buffer serves every shape of its length.
        y.set_shape(shape)?;
        op.write(&inputs, y)?;
        Ok(tvec!(TValue::from_const(Arc::clone(buffer))))
    }

    fn eval_in_slot<T: WriteOutput>(&self, op: &T, slot: usize, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (dt, shape) = op.output_of(&inputs)?;
        let bytes = shape.iter().product::<usize>() * dt.size_of();
        let capacity = self.plan.slot_bytes.get(slot).copied().unwrap_or(0);
        if bytes > capacity || !dt.is_copy() {
            return eval_fresh(op, inputs);
        }
        let mut slots = self.slots.lock().map_err(|_| format_err!("output pool poisoned by an earlier panic"))?;
        let s = slots.get_mut(slot).context("output pool slot")?;
        if s.is_none() {
            // SAFETY: plain bytes; every use below sets a type and a shape that fit in them,
            // and `write` writes every element of that shape before anything reads it.
            *s = Some(Arc::new(unsafe { Tensor::uninitialized_aligned_dt(u8::datum_type(), &[capacity.max(1)], 64)? }));
        }
        let Some(buffer) = s.as_mut() else { unreachable!("the slot was just made") };
        let Some(y) = Arc::get_mut(buffer) else {
            // Still held (an output kept outside, or a lifetime the plan did not foresee).
            drop(slots);
            return eval_fresh(op, inputs);
        };
        // SAFETY: the storage holds `capacity` ≥ `bytes` bytes, aligned to 64; a plain `Copy`
        // type of `shape` fits in it. Readers of this tensor are edgenet's ops (the plan gives
        // slots only to outputs they alone read), which read `len()` elements.
        unsafe {
            y.set_datum_type(dt);
            y.set_shape_unchecked(shape);
        }
        op.write(&inputs, y)?;
        Ok(tvec!(TValue::from_const(Arc::clone(buffer))))
    }
}

/// Evaluates `op` into a new tensor.
fn eval_fresh<T: WriteOutput>(op: &T, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    let (dt, shape) = op.output_of(&inputs)?;
    // SAFETY: `write` writes every element.
    let mut y = unsafe { uninit(dt, shape)? };
    op.write(&inputs, &mut y)?;
    Ok(tvec!(y.into_tvalue()))
}

/// Evaluates `op` into a buffer of the run's [`OutputPool`], or a new tensor if it has none.
pub(crate) fn eval_pooled<T: WriteOutput>(op: &T, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    match ctx.shared.and_then(|s| s.get::<OutputPool>()) {
        Some(pool) => pool.eval(op, ctx.node_id, inputs),
        None => eval_fresh(op, inputs),
    }
}

/// The `EvalOp` methods of a [`WriteOutput`] op.
macro_rules! reuse_output_eval {
    () => {
        op_out_of_plan!();

        fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
            $crate::engine::pool::eval_pooled(self, ctx, inputs)
        }
    };
}
pub(crate) use reuse_output_eval;

/// The values of an int8 tensor (`i8` or a quantized `i8` type).
pub(crate) fn i8_values(t: &Tensor) -> TractResult<&[i8]> {
    ensure!(t.datum_type().unquantized() == i8::datum_type(), "int8 expected, got {:?}", t.datum_type());
    ensure!(t.is_plain_ram(), "tensor is not in plain memory");
    // SAFETY: i8 and the quantized i8 types share their representation (checked above).
    Ok(unsafe { t.as_slice_unchecked::<i8>() })
}

/// The values of an int8 tensor, to write.
pub(crate) fn i8_values_mut(t: &mut Tensor) -> TractResult<&mut [i8]> {
    ensure!(t.datum_type().unquantized() == i8::datum_type(), "int8 expected, got {:?}", t.datum_type());
    ensure!(t.is_plain_ram(), "tensor is not in plain memory");
    // SAFETY: as in `i8_values`.
    Ok(unsafe { t.as_slice_mut_unchecked::<i8>() })
}

/// The values of an f32 tensor.
pub(crate) fn f32_values(t: &Tensor) -> TractResult<&[f32]> {
    ensure!(t.datum_type() == f32::datum_type(), "f32 expected, got {:?}", t.datum_type());
    ensure!(t.is_plain_ram(), "tensor is not in plain memory");
    // SAFETY: the type is checked above.
    Ok(unsafe { t.as_slice_unchecked::<f32>() })
}

/// The values of an f32 tensor, to write.
pub(crate) fn f32_values_mut(t: &mut Tensor) -> TractResult<&mut [f32]> {
    ensure!(t.datum_type() == f32::datum_type(), "f32 expected, got {:?}", t.datum_type());
    ensure!(t.is_plain_ram(), "tensor is not in plain memory");
    // SAFETY: the type is checked above.
    Ok(unsafe { t.as_slice_mut_unchecked::<f32>() })
}
