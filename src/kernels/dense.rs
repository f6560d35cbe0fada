//! [`DenseQConv`]: a dense (groups = 1) int8 convolution, also a matmul (a 1×1 convolution on a
//! 1×1 input). Its plan ([`plan::dense`](super::plan::dense)) picks the kernel set that takes
//! the layer and how columns reach the GEMM; its implementation, chosen once from the plan by
//! the [kernel table](super::table), holds the weights packed in its own layout.

use std::ops::Range;

use super::geometry::{Geometry, Unsupported};
use super::isa::KernelSet;
use super::layers::{DenseKernel, DenseLayer};
use super::plan::{self, DensePlan, DenseSplit, LayerFacts, SplitCache, Target, Tile};
use super::requant::{fold_zero_point, Requant};
use super::tasks::{par_chunks_mut, with_packed, with_shared, with_work, Out, Parallel, Sequential, Work};

/// A dense (groups = 1) int8 convolution with its weights packed.
#[derive(Debug)]
pub struct DenseQConv {
    layer: DenseLayer,
    plan: DensePlan,
    kernel: Box<dyn DenseKernel>,
    /// [`split`](Self::split) per thread count.
    splits: SplitCache,
}

impl DenseQConv {
    /// Packs `weights` (`[m][cin][kh][kw]`, OIHW) for inputs of geometry `geo`, for the kernel
    /// set this CPU runs best ([`KernelSet::detect`]).
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set`. A set that cannot take this layer (one the
    /// CPU lacks; NEON with a −128 weight, see `aarch64/neon`; a non-finite scale on ARM) gives
    /// the portable kernel, which computes the same integers; [`plan`](Self::plan) says why.
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::build(set, geo, weights, bias, x_zp, requant, false)
    }

    /// [`with_kernels`](Self::with_kernels); `any_in_place`: the in-place form wherever it
    /// applies, paying or not (for tests).
    pub(crate) fn build(
        set: KernelSet,
        geo: Geometry,
        weights: &[i8],
        bias: &[i32],
        x_zp: i8,
        requant: Requant,
        any_in_place: bool,
    ) -> Result<Self, Unsupported> {
        let geo = geo.with_strides_clamped();
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let k = geo.cin * geo.kh * geo.kw;
        if k == 0 || !weights.len().is_multiple_of(k) {
            return Err(Unsupported(format!("{} weights for {k} per output channel", weights.len())));
        }
        let m = weights.len() / k;
        if bias.len() != m || requant.scale.len() != m {
            return Err(Unsupported(format!("{m} output channels, {} biases, {} scales", bias.len(), requant.scale.len())));
        }
        let set = if set.available() { set } else { KernelSet::Portable };
        let plan = plan::dense(Target::host(set), &LayerFacts::new(geo, m, weights, &requant), any_in_place);
        if let Some(why) = plan.fallback {
            log::debug!("dense layer {geo:?}: {} instead of {set}: {why}", plan.target.set);
        }
        let layer = DenseLayer { geo, oh, ow, m, k, kp: k + (k & 1), bias: fold_zero_point(bias, weights, k, x_zp), x_zp, requant };
        let kernel = super::table::dense(&plan, &layer, weights);
        Ok(DenseQConv { layer, plan, kernel, splits: Default::default() })
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.plan.target.set
    }

    /// How a run on `threads` threads splits into tasks ([`plan::dense_grid`]), worked out
    /// once per thread count.
    pub fn split(&self, threads: usize) -> DenseSplit {
        let l = &self.layer;
        let grid = || plan::dense_grid(l.oh * l.ow, l.m, l.kp, self.plan.algorithm, Tile::dense(self.plan.target), threads);
        self.splits.get(threads, grid)
    }

    /// Its plan: kernel set, algorithm, tile.
    pub fn plan(&self) -> &DensePlan {
        &self.plan
    }

    /// Kernel height and width.
    pub fn kernel_hw(&self) -> (usize, usize) {
        (self.layer.geo.kh, self.layer.geo.kw)
    }

    /// Output channels.
    pub fn output_channels(&self) -> usize {
        self.layer.m
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.layer.oh, self.layer.ow)
    }

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> usize {
        self.layer.m * self.layer.k * self.layer.oh * self.layer.ow
    }

    /// Bytes this kernel holds: weights, biases, scales.
    pub fn held_bytes(&self) -> usize {
        self.kernel.held_bytes() + 4 * self.layer.bias.len() + 4 * self.layer.requant.scale.len()
    }

    /// Runs on one `[cin][h][w]` input into one `[m][oh][ow]` output.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length (the tract op checks shapes first).
    pub fn run(&self, x: &[i8], y: &mut [i8]) {
        self.run_par(x, y, &Sequential)
    }

    /// Columns `c0..c0 + ncols` of the output rows `rows`: packed into the task's own buffer
    /// (unless the form reads `shared` in place), then multiplied.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn block(&self, x: &[i8], shared: &[i8], rows: Range<usize>, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        let (l, k) = (&self.layer, &*self.kernel);
        // Taken out of `work` while `pack` and `gemm` use the rest (put back: no allocation).
        let mut block = std::mem::take(&mut work.block);
        let len = k.packed_len(l, ncols).unwrap_or(0);
        if len > 0 {
            // Only grown: packing writes every element the GEMM reads.
            if block.len() < len {
                block.resize(len, 0);
            }
            k.pack(l, x, c0, ncols, work, &mut block[..len]);
        }
        k.gemm(l, shared, &block[..len], rows, c0, ncols, work, out);
        work.block = block;
    }

    /// [`run`](Self::run) with the column blocks as tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        self.run_split(x, y, self.split(par.threads()), par)
    }

    /// [`run_par`](Self::run_par) with the tasks of `split`, which must cover the output
    /// exactly ([`plan::dense_grid`]'s do), its rows in multiples of the tile's.
    pub(crate) fn run_split(&self, x: &[i8], y: &mut [i8], split: DenseSplit, par: &dyn Parallel) {
        let l = &self.layer;
        let g = &l.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        let n = l.oh * l.ow;
        assert_eq!(y.len(), l.m * n);
        let out = Out::new(y);
        let k = &*self.kernel;
        with_shared(|buf| {
            // Prepared once by this thread, then read by every task.
            let shared: &[i8] = if k.prepare(l, x, buf, par) { buf } else { &[] };
            // Each task writes its columns of its rows: disjoint between tasks (the grid's
            // blocks do not overlap), as `DenseKernel::gemm` requires.
            match k.packed_len(l, split.cols) {
                // Several row blocks: each column block packed once, by a job of its own, into
                // a buffer the GEMM tasks of its row blocks then read.
                Some(len) if split.row_blocks > 1 => with_packed(|packed| {
                    // Only grown: packing writes every element the GEMMs read.
                    if packed.len() < len * split.col_blocks {
                        packed.resize(len * split.col_blocks, 0);
                    }
                    par_chunks_mut(&mut packed[..len * split.col_blocks], len, par, &|b, dst| {
                        let (cols, _) = split.task(b * split.row_blocks, n, l.m);
                        with_work(|work| k.pack(l, x, cols.start, cols.len(), work, dst))
                    });
                    let packed = &packed[..];
                    par.run(split.tasks(), &|t| {
                        let (cols, rows) = split.task(t, n, l.m);
                        let b = t / split.row_blocks;
                        with_work(|work| k.gemm(l, shared, &packed[b * len..(b + 1) * len], rows, cols.start, cols.len(), work, out))
                    })
                }),
                // Each task packs its columns into its own buffer, then multiplies them.
                _ => par.run(split.tasks(), &|t| {
                    let (cols, rows) = split.task(t, n, l.m);
                    with_work(|work| self.block(x, shared, rows, cols.start, cols.len(), work, out))
                }),
            }
        })
    }
}
