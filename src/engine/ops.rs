//! edgenet's int8 ops inside tract: `TypedOp`s running [`crate::kernels`]' int8 kernels.
//! - [`EdgeQConv`]: a quantized convolution or matmul (`QLinearConv`, `QLinearMatMul`) on the
//!   dense, depthwise or Winograd kernel;
//! - [`EdgeQuantize`] and [`EdgeDequantize`]: `QuantizeLinear` and `DequantizeLinear` as
//!   onnxruntime computes them;
//! - [`EdgeQAdd`]: `QuantizeLinear(DequantizeLinear(a) + DequantizeLinear(b))` in one pass;
//! - [`EdgeLut`]: an int8 → int8 element-wise function as a 256-entry lookup table.
//!
//! Each op writes its output into a buffer the session keeps between runs
//! ([`super::pool`]), so a warm session allocates nothing in them. [`super::rewrite`] puts
//! them in tract's model and lists them for the session's slot plan; this module matches no
//! tract op. It depends on `pool`, [`super::spec`] (the constants [`EdgeQConv::new`] takes)
//! and the kernels.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::pool::{i8_values, i8_values_mut, reuse_output_eval, WriteOutput};
use super::spec::QConvSpec;
use crate::kernels::plan::{self, ConvPlan, LayerFacts, Target};
use crate::kernels::{DenseQConv, DepthwiseQConv, Geometry, Requant, WinogradQConv};
use crate::kernels::{KernelSet, ThreadPool};

/// The int8 kernels' thread pool, shared by a model's ops; the element-wise ops split their
/// elements over it too ([`crate::kernels::elementwise`]'s `_par` forms). Two are equal when
/// they are the same pool.
#[derive(Debug, Clone)]
pub(crate) struct Threads(pub(crate) Arc<ThreadPool>);

impl PartialEq for Threads {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Threads {}

/// f32 → int8 quantization as onnxruntime (MLAS) computes it: `x / scale`, clamped to the
/// int8 range around the zero point, rounded half to even, plus the zero point. tract's own
/// multiplies by the reciprocal and rounds half away from zero, which differs by one step on
/// rare inputs; and it runs one element at a time.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQuantize {
    pub(super) scale: f32,
    pub(super) zero_point: i8,
    pub(super) out_dt: DatumType,
    pub(super) set: KernelSet,
    pub(super) threads: Threads,
}

impl PartialEq for EdgeQuantize {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits() && self.zero_point == other.zero_point && self.out_dt == other.out_dt
    }
}
impl Eq for EdgeQuantize {}

impl Op for EdgeQuantize {
    fn name(&self) -> StaticName {
        "EdgeQuantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("scale {} zero point {}", self.scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQuantize {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeQuantize takes one input");
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let x = inputs[0].try_as_plain_ram()?;
        let xs = x.as_slice::<f32>()?;
        let ys = i8_values_mut(y)?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::quantize_par(self.set, xs, self.scale, self.zero_point, ys, &*self.threads.0);
        Ok(())
    }
}

impl EvalOp for EdgeQuantize {
    reuse_output_eval!();
}

impl TypedOp for EdgeQuantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// int8 → f32 as onnxruntime's `DequantizeLinear`: `(x − zp) · scale`, the subtraction in
/// integers. tract's folds the zero point into an f32 offset, which rounds differently.
#[derive(Debug, Clone)]
pub(crate) struct EdgeDequantize {
    pub(super) scale: f32,
    pub(super) zero_point: i8,
    pub(super) set: KernelSet,
    pub(super) threads: Threads,
}

impl PartialEq for EdgeDequantize {
    fn eq(&self, other: &Self) -> bool {
        self.scale.to_bits() == other.scale.to_bits() && self.zero_point == other.zero_point
    }
}
impl Eq for EdgeDequantize {}

impl Op for EdgeDequantize {
    fn name(&self) -> StaticName {
        "EdgeDequantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("scale {} zero point {}", self.scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeDequantize {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeDequantize takes one input");
        Ok((f32::datum_type(), inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        let mut view = y.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<f32>()?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::dequantize_par(self.set, xs, self.scale, self.zero_point, ys, &*self.threads.0);
        Ok(())
    }
}

impl EvalOp for EdgeDequantize {
    reuse_output_eval!();
}

impl TypedOp for EdgeDequantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type.unquantized() == i8::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `QuantizeLinear(DequantizeLinear(a) + DequantizeLinear(b))` in one pass, computed with
/// exactly the f32 operations of the three ops it replaces (so bit-identical to them), without
/// writing and reading back the two f32 tensors in between. The residual Add of ResNet and
/// MobileNetV2 blocks.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQAdd {
    pub(super) a: (f32, i8),
    pub(super) b: (f32, i8),
    pub(super) y: (f32, i8),
    pub(super) out_dt: DatumType,
    pub(super) set: KernelSet,
    pub(super) threads: Threads,
}

impl PartialEq for EdgeQAdd {
    fn eq(&self, other: &Self) -> bool {
        let bits = |q: (f32, i8)| (q.0.to_bits(), q.1);
        bits(self.a) == bits(other.a) && bits(self.b) == bits(other.b) && bits(self.y) == bits(other.y) && self.out_dt == other.out_dt
    }
}
impl Eq for EdgeQAdd {}

impl Op for EdgeQAdd {
    fn name(&self) -> StaticName {
        "EdgeQAdd".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("a {:?} + b {:?} → y {:?}", self.a, self.b, self.y)])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQAdd {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 2, "EdgeQAdd takes two inputs");
        ensure!(inputs[0].shape() == inputs[1].shape(), "EdgeQAdd: shapes {:?} and {:?}", inputs[0].shape(), inputs[1].shape());
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let (xa, xb) = (i8_values(&inputs[0])?, i8_values(&inputs[1])?);
        let ys = i8_values_mut(y)?;
        ensure!(xa.len() == ys.len() && xb.len() == ys.len());
        crate::kernels::elementwise::quantized_add_par(self.set, xa, self.a, xb, self.b, self.y, ys, &*self.threads.0);
        Ok(())
    }
}

impl EvalOp for EdgeQAdd {
    reuse_output_eval!();
}

impl TypedOp for EdgeQAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs[0].shape == inputs[1].shape);
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// An int8 → int8 element-wise function as a 256-entry table, computed by running the f32
/// ops it replaces (edgenet's dequantizer, tract's f32 ops, edgenet's quantizer) on the 256
/// possible inputs: the same bits as those ops, in one byte lookup per element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeLut {
    /// `table[x as u8]` is the output for input `x`.
    pub(super) table: Arc<[i8; 256]>,
    pub(super) out_dt: DatumType,
    /// What the table stands for, for the plan report.
    pub(super) what: String,
    /// The kernel set that applies it.
    pub(super) set: KernelSet,
    pub(super) threads: Threads,
}

impl Op for EdgeLut {
    fn name(&self) -> StaticName {
        "EdgeLut".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![self.what.clone()])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeLut {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeLut takes one input");
        Ok((self.out_dt, inputs[0].shape()))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        let ys = i8_values_mut(y)?;
        ensure!(xs.len() == ys.len());
        crate::kernels::elementwise::lookup_par(self.set, &self.table, xs, ys, &*self.threads.0);
        Ok(())
    }
}

impl EvalOp for EdgeLut {
    reuse_output_eval!();
}

impl TypedOp for EdgeLut {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type.unquantized() == i8::datum_type());
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[derive(Debug)]
enum Kernel {
    Dense(DenseQConv),
    Winograd(WinogradQConv),
    Depthwise(DepthwiseQConv),
}

/// The tract op running one of edgenet's int8 convolutions on a `[1, C, H, W]` int8 input.
#[derive(Debug, Clone)]
pub(crate) struct EdgeQConv {
    kernel: Arc<Kernel>,
    /// What the planner decided from, to plan the layer for another kernel set
    /// ([`plan_for`](Self::plan_for)).
    facts: LayerFacts,
    groups: usize,
    winograd: bool,
    matmul: bool,
    /// The engine's threads (`EngineOptions::threads`), shared by all its convolutions.
    pool: Arc<ThreadPool>,
    in_len: usize,
    pub(super) out_shape: TVec<usize>,
    out_dt: DatumType,
}

impl PartialEq for EdgeQConv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.kernel, &other.kernel)
    }
}
impl Eq for EdgeQConv {}

impl EdgeQConv {
    /// `weights`: OIHW for a convolution, `[K, N]` for a matmul.
    pub(super) fn new(
        spec: &QConvSpec,
        weights: &[i8],
        in_shape: &[usize],
        out_dt: DatumType,
        winograd: bool,
        set: KernelSet,
        pool: &Arc<ThreadPool>,
    ) -> Result<Self, String> {
        if weights.len() != spec.w_dims.iter().product::<usize>() {
            return Err(format!("{} weights for dims {:?}", weights.len(), spec.w_dims));
        }
        let transposed;
        let weights = if spec.matmul {
            let [n, k, _, _] = spec.w_dims;
            let mut t = vec![0i8; k * n];
            for (kk, row) in weights.chunks_exact(n).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    t[j * k + kk] = v;
                }
            }
            transposed = t;
            &transposed[..]
        } else {
            weights
        };
        let [n, c, h, w] = match (spec.matmul, in_shape) {
            (false, &[n, c, h, w]) => [n, c, h, w],
            (true, &[n, k]) => [n, k, 1, 1],
            _ => return Err(format!("input shape {in_shape:?}")),
        };
        if n != 1 {
            return Err(format!("batch {n}"));
        }
        let [m, cin_g, kh, kw] = spec.w_dims;
        let geo = Geometry { cin: c, h, w, kh, kw, stride: spec.strides, dilation: spec.dilations, pads: spec.pads }.with_strides_clamped();
        let rq = Requant::new(spec.scale.clone(), spec.y_zp);
        let facts = LayerFacts::new(geo, m, weights, &rq);
        // Dense: one group over every channel; depthwise: one channel per group.
        let groups = match (spec.group, cin_g) {
            (1, g) if g == c => 1,
            (g, 1) if g == c => c,
            _ => 0,
        };
        let Some(planned) = plan::conv(Target::host(set), &facts, groups, winograd) else {
            return Err(format!("group {} with {c} input and {m} output channels", spec.group));
        };
        let kernel = match planned {
            ConvPlan::Winograd(_) => Kernel::Winograd(WinogradQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?),
            ConvPlan::Dense(_) => Kernel::Dense(DenseQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?),
            ConvPlan::Depthwise(_) => Kernel::Depthwise(DepthwiseQConv::with_kernels(set, geo, weights, &spec.bias, spec.x_zp, rq).map_err(|e| e.0)?),
        };
        let (oh, ow) = match &kernel {
            Kernel::Dense(k) => k.output_hw(),
            Kernel::Winograd(k) => k.output_hw(),
            Kernel::Depthwise(k) => k.output_hw(),
        };
        let out_shape = if spec.matmul { tvec![1, m] } else { tvec![1, m, oh, ow] };
        Ok(EdgeQConv { kernel: Arc::new(kernel), facts, groups, winograd, matmul: spec.matmul, pool: Arc::clone(pool), in_len: c * h * w, out_shape, out_dt })
    }

    /// The plan the layer runs: its kernel's.
    pub(crate) fn plan(&self) -> ConvPlan {
        match &*self.kernel {
            Kernel::Dense(k) => ConvPlan::Dense(*k.plan()),
            Kernel::Winograd(k) => ConvPlan::Winograd(k.target()),
            Kernel::Depthwise(k) => ConvPlan::Depthwise(*k.plan()),
        }
    }

    /// The plan the layer would run with on `target` (another kernel set, maybe another
    /// machine's); `None` for a grouping the kernels do not take (not built, so not here).
    pub(crate) fn plan_for(&self, target: Target) -> Option<ConvPlan> {
        plan::conv(target, &self.facts, self.groups, self.winograd)
    }

    /// The layer's geometry (strides clamped), output channels, and whether it is a matmul.
    pub(crate) fn shape(&self) -> (Geometry, usize, bool) {
        (self.facts.geo, self.facts.m, self.matmul)
    }

    /// Multiply-accumulates per run (of the direct convolution).
    pub(crate) fn macs(&self) -> usize {
        match &*self.kernel {
            Kernel::Dense(k) => k.macs(),
            Kernel::Winograd(k) => k.macs(),
            Kernel::Depthwise(k) => k.macs(),
        }
    }
}

impl EdgeQConv {
    /// What the weights held are, for the footprint report.
    pub(crate) fn held_kind(&self) -> &'static str {
        match &*self.kernel {
            Kernel::Winograd(_) => "I16 Winograd-transformed weights, i32 bias (edgenet int8 kernels)",
            _ => "I8 weights, i32 bias (edgenet int8 kernels)",
        }
    }

    /// Bytes of weights, biases and scales the op holds.
    pub(crate) fn held_bytes(&self) -> usize {
        match &*self.kernel {
            Kernel::Dense(k) => k.held_bytes(),
            Kernel::Winograd(k) => k.held_bytes(),
            Kernel::Depthwise(k) => k.held_bytes(),
        }
    }
}

impl Op for EdgeQConv {
    fn name(&self) -> StaticName {
        "EdgeQConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![match &*self.kernel {
            Kernel::Dense(k) => format!("dense {}×{} int8 → {:?}, {} MACs", k.kernel_hw().0, k.kernel_hw().1, self.out_shape, k.macs()),
            Kernel::Winograd(k) => format!("dense 3×3 int8 Winograd F(2×2,3×3) → {:?}, {} MACs", self.out_shape, k.macs()),
            Kernel::Depthwise(k) => format!("depthwise int8 → {:?}, {} MACs", self.out_shape, k.macs()),
        }])
    }

    op_as_typed_op!();
}

impl WriteOutput for EdgeQConv {
    fn output_of<'a>(&'a self, inputs: &'a [TValue]) -> TractResult<(DatumType, &'a [usize])> {
        ensure!(inputs.len() == 1, "EdgeQConv takes one input");
        Ok((self.out_dt, &self.out_shape))
    }

    fn write(&self, inputs: &[TValue], y: &mut Tensor) -> TractResult<()> {
        let xs = i8_values(&inputs[0])?;
        ensure!(xs.len() == self.in_len, "EdgeQConv: input of {} values, expected {}", xs.len(), self.in_len);
        let ys = i8_values_mut(y)?;
        ensure!(ys.len() == self.out_shape.iter().product::<usize>(), "EdgeQConv: output of {} values", ys.len());
        let pool = &*self.pool;
        match &*self.kernel {
            Kernel::Dense(k) => k.run_par(xs, ys, pool),
            Kernel::Winograd(k) => k.run_par(xs, ys, pool),
            Kernel::Depthwise(k) => k.run_par(xs, ys, pool),
        }
        Ok(())
    }
}

impl EvalOp for EdgeQConv {
    reuse_output_eval!();
}

impl TypedOp for EdgeQConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1);
        ensure!(inputs[0].datum_type.unquantized() == i8::datum_type(), "EdgeQConv takes int8, got {:?}", inputs[0].datum_type);
        Ok(tvec!(self.out_dt.fact(&*self.out_shape)))
    }

    as_op!();
}
