//! Winograd F(2×2, 3×3) for int8 3×3 stride-1 convolutions: 16 multiplies for each 2×2 block
//! of outputs instead of 36, and exact, because every step is integer arithmetic.
//!
//! With `G' = 2G` (integer), `U = G' g G'ᵀ = 4·G g Gᵀ`, `V = Bᵀ d B` and `M = Σ_c U ⊙ V`,
//! `Aᵀ M A` is 4 times the convolution of the 4×4 input tile `d`, so dividing by 4 is exact.
//! `|U| ≤ 9·128` and `|V| ≤ 4·128` fit i16, the operands of `vpmaddwd`. Sums wrap in i32; the
//! wrapped result equals the true one because the final value (the convolution) fits i32 when
//! `9 · cin · 128² · 4 < 2³¹`, checked at construction. Results are therefore identical to
//! [`DenseQConv`](super::DenseQConv) bit for bit; the tests compare with the i64 reference.

pub(crate) mod layer;

use std::cell::RefCell;

use super::geometry::{Geometry, Unsupported};
use super::isa::KernelSet;
use super::plan::{self, DenseSplit, SplitCache, Target, PAIR_MR as MR, WINOGRAD_MAX_CIN};
use super::requant::{fold_zero_point, Requant};
use super::tasks::{par_chunks_mut, Out, Parallel};
use layer::{transform_weights, WinogradBlock, WinogradLayer, Work, BLOCK_BYTES, TILES};

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
    /// A layer's transformed input, by a job of the calling thread, read by the next job's
    /// tasks (a layer split into several channel blocks).
    static TRANSFORMED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// A 3×3 stride-1 dense int8 convolution computed with Winograd F(2×2, 3×3).
#[derive(Debug)]
pub struct WinogradQConv {
    layer: WinogradLayer,
    /// The set whose pieces run: AVX2's, NEON's (aarch64, also for the dot-product set, whose
    /// dense kernel the planner prefers), or the portable code.
    target: Target,
    block: WinogradBlock,
    /// [`split`](Self::split) per thread count.
    splits: SplitCache,
}

impl WinogradQConv {
    /// Transforms `weights` (`[m][cin][3][3]`) for inputs of geometry `geo`, for the kernel set
    /// this CPU runs best.
    ///
    /// # Errors
    /// Not a 3×3 stride-1 undilated convolution, more than 3640 input channels, or sizes
    /// that do not match.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set` (AVX2, NEON or the portable code; same
    /// results).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        let geo = geo.with_strides_clamped();
        if (geo.kh, geo.kw, geo.stride, geo.dilation) != (3, 3, (1, 1), (1, 1)) {
            return Err(Unsupported(format!("Winograd F(2×2, 3×3) needs a 3×3 stride-1 kernel: {geo:?}")));
        }
        if geo.cin == 0 || geo.cin > WINOGRAD_MAX_CIN {
            return Err(Unsupported(format!("{} input channels: Winograd sums could overflow", geo.cin)));
        }
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let k = geo.cin * 9;
        if !weights.len().is_multiple_of(k) {
            return Err(Unsupported(format!("{} weights for {k} per output channel", weights.len())));
        }
        let m = weights.len() / k;
        if m == 0 || bias.len() != m || requant.scale.len() != m {
            return Err(Unsupported(format!("{m} output channels, {} biases, {} scales", bias.len(), requant.scale.len())));
        }
        let cp = geo.cin + (geo.cin & 1);
        let kh = cp / 2;
        let blocks = m.div_ceil(MR);
        let mut u16s = vec![0i16; blocks * 16 * kh * MR * 2];
        for row in 0..m {
            let (blk, r) = (row / MR, row % MR);
            for c in 0..geo.cin {
                let g = &weights[(row * geo.cin + c) * 9..][..9];
                for (e, v) in transform_weights(g).into_iter().enumerate() {
                    u16s[(((blk * 16 + e) * kh + c / 2) * MR + r) * 2 + (c & 1)] = v;
                }
            }
        }
        let u = u16s.chunks_exact(2).map(|p| (p[0] as u16 as u32) | ((p[1] as u16 as u32) << 16)).collect();
        let bias = fold_zero_point(bias, weights, k, x_zp);
        let set = if set.available() { set } else { KernelSet::Portable };
        let (target, block) = super::table::winograd(plan::winograd_target(Target::host(set)));
        let layer = WinogradLayer { geo, oh, ow, th: oh.div_ceil(2), tw: ow.div_ceil(2), m, cp, u, bias, x_zp, requant };
        Ok(WinogradQConv { layer, target, block, splits: Default::default() })
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.layer.oh, self.layer.ow)
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.target.set
    }

    /// The kernel set and architecture of the pieces it runs.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Multiply-accumulates of the direct convolution this computes.
    pub fn macs(&self) -> usize {
        self.layer.m * self.layer.geo.cin * 9 * self.layer.oh * self.layer.ow
    }

    /// Bytes this kernel holds: transformed weights, biases, scales.
    pub fn held_bytes(&self) -> usize {
        4 * self.layer.u.len() + 4 * self.layer.bias.len() + 4 * self.layer.requant.scale.len()
    }

    /// How a run on `threads` threads splits into tasks: blocks of tile rows by blocks of
    /// output channels ([`plan::winograd_grid`]), worked out once per thread count.
    pub fn split(&self, threads: usize) -> DenseSplit {
        let l = &self.layer;
        let block_tiles = (BLOCK_BYTES / (16 * l.cp * 2)).max(TILES);
        let grid = || plan::winograd_grid(l.th, l.tw, l.m, l.cp, (TILES, block_tiles), MR, threads);
        self.splits.get(threads, grid)
    }

    /// Runs on one `[cin][h][w]` input into one `[m][oh][ow]` output, the blocks of
    /// [`split`](Self::split) as tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length (the tract op checks shapes first).
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        self.run_with(x, y, par, self.split(par.threads()), self.block)
    }

    /// [`run_par`](Self::run_par) with the tasks of `split` (tile rows by channels, which must
    /// cover the output exactly, channel blocks in multiples of `MR`) and the pieces of
    /// `block`, which must be this layer's set's or the portable one (for tests).
    fn run_with(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel, split: DenseSplit, block: WinogradBlock) {
        let l = &self.layer;
        let g = &l.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        assert_eq!(y.len(), l.m * l.oh * l.ow);
        let out = Out::new(y);
        let with_work = |f: &mut dyn FnMut(&mut Work)| WORK.with(|w| f(&mut w.borrow_mut()));
        // Each task writes output rows 2·ty0 .. 2·ty1 of its channels: disjoint between tasks.
        if split.row_blocks > 1 {
            // Several channel blocks: each block of tile rows transformed once, by a job of its
            // own, into a buffer the GEMM tasks of its channel blocks then read.
            let len = l.transformed_len(split.cols);
            TRANSFORMED.with(|t| {
                let transformed = &mut *t.borrow_mut();
                // Only grown: the transform writes every word the GEMMs read.
                if transformed.len() < len * split.col_blocks {
                    transformed.resize(len * split.col_blocks, 0);
                }
                par_chunks_mut(&mut transformed[..len * split.col_blocks], len, par, &|b, dst| {
                    let (tile_rows, _) = split.task(b * split.row_blocks, l.th, l.m);
                    // SAFETY: `block` is this set's, which the table hands out only when the CPU
                    // has it, or the portable one.
                    with_work(&mut |work| unsafe { (block.transform)(l, x, tile_rows.start, tile_rows.end, work, dst) })
                });
                let transformed = &transformed[..];
                par.run(split.tasks(), &|t| {
                    let (tile_rows, channels) = split.task(t, l.th, l.m);
                    let packed = &transformed[(t / split.row_blocks) * len..][..len];
                    // SAFETY: as above; this task alone writes these rows of these channels.
                    with_work(&mut |work| unsafe { (block.multiply)(l, packed, tile_rows.start, tile_rows.end, channels.clone(), work, out) })
                })
            })
        } else {
            par.run(split.tasks(), &|t| {
                let (tile_rows, channels) = split.task(t, l.th, l.m);
                with_work(&mut |work| {
                    // Taken out of `work` while the pieces use the rest (put back: no allocation).
                    let mut packed = std::mem::take(&mut work.packed);
                    let len = l.transformed_len(tile_rows.len());
                    // Only grown: the transform writes every word the GEMMs read.
                    if packed.len() < len {
                        packed.resize(len, 0);
                    }
                    // SAFETY: `block` is this set's, which the table hands out only when the CPU
                    // has it, or the portable one; this task alone writes these rows of these
                    // channels.
                    unsafe {
                        (block.transform)(l, x, tile_rows.start, tile_rows.end, work, &mut packed[..len]);
                        (block.multiply)(l, &packed[..len], tile_rows.start, tile_rows.end, channels.clone(), work, out);
                    }
                    work.packed = packed;
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{data, reference};
    use crate::kernels::tasks::Sequential;

    struct Two;
    impl Parallel for Two {
        fn threads(&self) -> usize {
            2
        }
        fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
            (0..n).rev().for_each(task)
        }
    }

    fn check(cin: usize, h: usize, w: usize, pads: [usize; 4], m: usize, seed: u64, extreme: bool) {
        let g = Geometry { cin, h, w, kh: 3, kw: 3, stride: (1, 1), dilation: (1, 1), pads };
        let (wts, x) = if extreme { (vec![-128i8; m * cin * 9], vec![-128i8; cin * h * w]) } else { (data(seed, m * cin * 9), data(seed + 1, cin * h * w)) };
        let bias: Vec<i32> = (0..m as i32).map(|i| i * 37 - 500).collect();
        let scale = if extreme { 1e-6 } else { 0.003 };
        let rq = Requant::new((0..m).map(|i| scale * (1.0 + i as f32 / 7.0)).collect(), -5);
        let want = reference(&g, 1, &wts, &bias, 3, &rq, &x);
        let conv = WinogradQConv::new(g, &wts, &bias, 3, rq).unwrap();
        // On aarch64 the NEON pieces run (for the dot-product set too), unless forced portable.
        if cfg!(target_arch = "aarch64") && KernelSet::detect() != KernelSet::Portable {
            assert_eq!(conv.kernel_set(), KernelSet::Neon);
        }
        for par in [&Sequential as &dyn Parallel, &Two] {
            let mut y = vec![0i8; want.len()];
            conv.run_par(&x, &mut y, par);
            assert_eq!(y, want, "cin {cin} {h}×{w} pads {pads:?} m {m}");
        }
        // Grids of tile rows by channels, whatever their size (the planner splits only layers
        // worth waking threads for), with this set's pieces and the portable ones (what armv7
        // runs).
        let l = &conv.layer;
        for (ty, ch) in [(1, MR), (2, 2 * MR), (l.th, MR), (1, m)] {
            let split = DenseSplit { cols: ty, col_blocks: l.th.div_ceil(ty), rows: ch, row_blocks: m.div_ceil(ch) };
            for block in [conv.block, layer::PORTABLE] {
                let mut y = vec![0i8; want.len()];
                conv.run_with(&x, &mut y, &Two, split, block);
                assert_eq!(y, want, "cin {cin} {h}×{w} pads {pads:?} m {m} in a grid {split:?}");
            }
        }
    }

    #[test]
    fn winograd_matches_the_direct_convolution() {
        check(1, 1, 1, [1; 4], 1, 1, false);
        check(3, 5, 7, [1; 4], 5, 2, false);
        check(16, 8, 8, [1; 4], 16, 3, false);
        check(17, 9, 6, [0, 1, 1, 0], 9, 4, false);
        check(8, 7, 7, [0; 4], 4, 5, false);
        check(64, 14, 14, [1; 4], 20, 6, false);
        check(5, 3, 40, [2, 1, 0, 2], 7, 7, false);
        // Three groups of 16 tiles in a row, the last one partial; odd output width.
        check(6, 9, 69, [1, 1, 1, 1], 5, 9, false);
        check(4, 6, 33, [0, 2, 1, 0], 6, 10, false);
        // The largest sums: every weight and input −128.
        check(300, 4, 4, [1; 4], 4, 8, true);
    }

    #[test]
    fn unsupported_geometries_are_refused() {
        let g = Geometry { cin: 4, h: 8, w: 8, kh: 3, kw: 3, stride: (2, 2), dilation: (1, 1), pads: [1; 4] };
        assert!(WinogradQConv::new(g, &[0; 4 * 36], &[0; 4], 0, Requant::new(vec![1.0; 4], 0)).is_err());
        let g = Geometry { cin: 4000, stride: (1, 1), ..g };
        assert!(WinogradQConv::new(g, &vec![0; 36000], &[0], 0, Requant::new(vec![1.0], 0)).is_err());
    }
}
