//! [`DepthwiseQConv`]: a depthwise (groups = channels, one filter per channel) int8
//! convolution. Its plan ([`plan::depthwise`](super::plan::depthwise)) picks the form; the
//! [kernel table](super::table) builds it.

use super::geometry::{Geometry, Unsupported};
use super::isa::KernelSet;
use super::layers::{DepthwiseKernel, DepthwiseLayer};
use super::plan::{self, DepthwisePlan, LayerFacts, Target};
use super::requant::Requant;
use super::tasks::{with_work, Out, Parallel, Sequential};

/// A depthwise (groups = channels, one filter per channel) int8 convolution.
#[derive(Debug)]
pub struct DepthwiseQConv {
    layer: DepthwiseLayer,
    plan: DepthwisePlan,
    kernel: Box<dyn DepthwiseKernel>,
}

impl DepthwiseQConv {
    /// A depthwise convolution of `[c][1][kh][kw]` weights, for the kernel set this CPU runs
    /// best.
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set` (the portable code where the set has no
    /// depthwise kernel of its own or cannot take the layer; same results).
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        let geo = geo.with_strides_clamped();
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let c = geo.cin;
        if weights.len() != c * geo.kh * geo.kw || bias.len() != c || requant.scale.len() != c {
            return Err(Unsupported(format!(
                "depthwise over {c} channels with {} weights, {} biases, {} scales",
                weights.len(),
                bias.len(),
                requant.scale.len()
            )));
        }
        let set = if set.available() { set } else { KernelSet::Portable };
        let plan = plan::depthwise(Target::host(set), &LayerFacts::new(geo, c, weights, &requant));
        if let Some(why) = plan.fallback {
            log::debug!("depthwise layer {geo:?}: {} instead of {set}: {why}", plan.target.set);
        }
        let layer = DepthwiseLayer { geo, oh, ow, bias: bias.to_vec(), x_zp, requant };
        let kernel = super::table::depthwise(&plan, &layer, weights);
        Ok(DepthwiseQConv { layer, plan, kernel })
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.layer.oh, self.layer.ow)
    }

    /// Bytes this kernel holds: weights in the form's layout, biases, scales.
    pub fn held_bytes(&self) -> usize {
        self.kernel.held_bytes() + 4 * (self.layer.bias.len() + self.layer.requant.scale.len())
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.plan.target.set
    }

    /// Its plan: kernel set and form.
    pub fn plan(&self) -> &DepthwisePlan {
        &self.plan
    }

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> usize {
        let g = &self.layer.geo;
        g.cin * g.kh * g.kw * self.layer.oh * self.layer.ow
    }

    /// Runs on one `[c][h][w]` input into one `[c][oh][ow]` output.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run(&self, x: &[i8], y: &mut [i8]) {
        self.run_par(x, y, &Sequential)
    }

    /// [`run`](Self::run) with groups of channels as tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        let l = &self.layer;
        let g = &l.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        assert_eq!(y.len(), g.cin * l.oh * l.ow);
        let (per, tasks) = plan::depthwise_split(g.cin, par.threads());
        let out = Out::new(y);
        // Each task writes the output planes of its own channels.
        par.run(tasks, &|t| {
            let channels = t * per..((t + 1) * per).min(g.cin);
            with_work(|work| self.kernel.channels(l, x, out, channels, work))
        });
    }
}
