//! The conv planner: the one place that decides how each convolution runs — which kernel set
//! takes it, which algorithm (a GEMM over packed im2col columns, the in-place form, Winograd,
//! a depthwise form), the register tile and packed layout, and how its work splits into tasks.
//!
//! A plan is a pure function of the layer (geometry, a few facts about its weights and scales)
//! and a [`Target`] (kernel set and architecture): it does not look at the CPU it runs on, so
//! `edgenet inspect MODEL --kernels dotprod` on an x86-64 machine prints what a Raspberry Pi 5
//! will run. Whether the CPU can run a set is [`KernelSet::available`]'s business, checked by
//! the ops before they plan.

use std::fmt;

use super::geometry::Geometry;
use super::isa::{Arch, KernelSet};
use super::requant::Requant;

/// A kernel set on an architecture: what a plan is made for. `neon` means different kernels
/// on aarch64 (Raspberry Pi 3/4) and armv7 (32-bit Raspberry Pi OS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The architecture the kernels are compiled for.
    pub arch: Arch,
    /// The kernel set.
    pub set: KernelSet,
}

impl Target {
    /// `set` on this machine's architecture.
    pub fn host(set: KernelSet) -> Target {
        Target { arch: Arch::HOST, set }
    }

    /// `set` on the architecture it belongs to: this machine's when the set is one of its own
    /// (or portable), else aarch64 for `neon` and `dotprod` and x86-64 for `avx2` (so that a
    /// plan for a Raspberry Pi can be printed on a PC).
    pub fn for_set(set: KernelSet) -> Target {
        let arch = match set {
            KernelSet::Portable => Arch::HOST,
            KernelSet::Neon if matches!(Arch::HOST, Arch::Aarch64 | Arch::Armv7) => Arch::HOST,
            KernelSet::Neon | KernelSet::Dotprod => Arch::Aarch64,
            KernelSet::Avx2 | KernelSet::Avx512Vnni => Arch::X86_64,
        };
        Target { arch, set }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.set, self.arch)
    }
}

/// A dense GEMM's register tile and packed layout: `mr` weight rows by `nr` output columns,
/// `kc` consecutive `k` packed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Weight rows (output channels) per tile.
    pub mr: usize,
    /// Output columns per packed panel.
    pub nr: usize,
    /// `k` values packed together (the depth of one multiply step).
    pub kc: usize,
    /// Panels per register tile.
    pub panels: usize,
}

impl Tile {
    /// The dense tile of `target`: the i16-pair layout (portable and AVX2: `vpmaddwd`), NEON's
    /// 4 × 4 × 16 on aarch64 and 4 × 2 × 16 on armv7, the dot product's 8 × 8 × 4, AVX-512
    /// VNNI's 8 rows × 2 panels of 16 columns × 4.
    pub fn dense(target: Target) -> Tile {
        match (target.set, target.arch) {
            (KernelSet::Neon, Arch::Aarch64) => Tile { mr: 4, nr: 4, kc: 16, panels: 1 },
            (KernelSet::Neon, Arch::Armv7) => Tile { mr: 4, nr: 2, kc: 16, panels: 1 },
            (KernelSet::Dotprod, Arch::Aarch64) => Tile { mr: 8, nr: 8, kc: 4, panels: 1 },
            (KernelSet::Avx512Vnni, Arch::X86_64) => Tile { mr: 8, nr: 16, kc: 4, panels: 2 },
            _ => Tile { mr: PAIR_MR, nr: PAIR_NR, kc: 2, panels: 2 },
        }
    }
}

/// Rows of the weight matrix per micro-tile of the i16-pair layout (portable and AVX2).
pub(crate) const PAIR_MR: usize = 4;
/// Columns (output positions) per packed panel of the i16-pair layout.
pub(crate) const PAIR_NR: usize = 8;
/// Target size of one block of packed columns (fits L2 beside the weights).
const PACKED_BLOCK_BYTES: usize = 192 * 1024;

/// What decides a layer's plan, besides its geometry: read once from its weights and scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFacts {
    /// The geometry, strides clamped ([`Geometry::with_strides_clamped`]).
    pub geo: Geometry,
    /// Output channels.
    pub m: usize,
    /// Some weight is −128 (NEON's i16 pair sums need −127..=127).
    pub min_weight: bool,
    /// Every requantization scale is finite (the ARM epilogues saturate instead of clamping,
    /// which equals the portable clamp for finite scales only).
    pub finite_scales: bool,
}

impl LayerFacts {
    /// The facts of a layer with these weights and requantization.
    pub fn new(geo: Geometry, m: usize, weights: &[i8], requant: &Requant) -> LayerFacts {
        LayerFacts { geo: geo.with_strides_clamped(), m, min_weight: weights.contains(&i8::MIN), finite_scales: requant.scale.iter().all(|s| s.is_finite()) }
    }
}

/// How a dense convolution's columns reach the GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseAlgorithm {
    /// A 1×1 stride-1 unpadded convolution: the input is the column matrix, packed per block.
    Pointwise,
    /// Columns of a block gathered by im2col, then packed.
    Im2col,
    /// Computed in place ("implicit GEMM", aarch64): the input is channel-interleaved once per
    /// run and the tiles read it at offsets known at load; no im2col, no packing.
    InPlace,
}

/// A dense convolution's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DensePlan {
    /// What it runs on (the set may differ from the one asked for, see `fallback`).
    pub target: Target,
    /// How columns reach the GEMM.
    pub algorithm: DenseAlgorithm,
    /// The register tile and packed layout.
    pub tile: Tile,
    /// Why the layer does not run on the set asked for, when it does not.
    pub fallback: Option<&'static str>,
}

/// A depthwise convolution's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthwiseForm {
    /// Zero-point-subtracted i16 planes, 16 outputs per tile in i32 (portable code, compiled
    /// for AVX2 in the `avx2` set).
    Planes16,
    /// NEON on raw int8 planes, taps summed in i16 groups.
    Neon,
    /// The dot product (`sdot`) on raw int8 planes, 4 taps per lane.
    Dot,
    /// AVX-512 VNNI (`vpdpbusd`) on planes shifted to u8, 4 taps per lane, 16 outputs per
    /// register.
    Vnni,
}

/// A depthwise convolution's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwisePlan {
    /// What it runs on.
    pub target: Target,
    /// The form.
    pub form: DepthwiseForm,
    /// Column phases of the padded planes (the stride for forms that read contiguous runs, 1
    /// for the dot product's, which reads a strided plane whole).
    pub phases: usize,
    /// Stride-1 output rows computed as one run over the plane's pitch (see [`flat_pays`]).
    pub flat: bool,
    /// Why the layer does not run on the set asked for, when it does not.
    pub fallback: Option<&'static str>,
}

/// A convolution's plan: which kernel, and its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPlan {
    /// A dense convolution.
    Dense(DensePlan),
    /// Winograd F(2×2, 3×3) on `target` (its GEMM in i16 pairs).
    Winograd(Target),
    /// A depthwise convolution.
    Depthwise(DepthwisePlan),
}

impl ConvPlan {
    /// The target the layer runs on.
    pub fn target(&self) -> Target {
        match self {
            ConvPlan::Dense(p) => p.target,
            ConvPlan::Winograd(t) => *t,
            ConvPlan::Depthwise(p) => p.target,
        }
    }

    /// A short description: algorithm, tile or form, and any fallback with its reason.
    pub fn describe(&self) -> String {
        let (what, fallback) = match self {
            ConvPlan::Dense(p) => {
                let alg = match p.algorithm {
                    DenseAlgorithm::Pointwise => "gemm",
                    DenseAlgorithm::Im2col => "im2col+gemm",
                    DenseAlgorithm::InPlace => "in-place gemm",
                };
                let t = p.tile;
                (format!("{alg} {}x{}x{}", t.mr, t.nr * t.panels, t.kc), p.fallback)
            }
            ConvPlan::Winograd(_) => ("winograd F(2x2,3x3)".to_string(), None),
            ConvPlan::Depthwise(p) => {
                let form = match p.form {
                    DepthwiseForm::Planes16 => "i16 planes",
                    DepthwiseForm::Neon => "neon i16 tap groups",
                    DepthwiseForm::Dot => "sdot",
                    DepthwiseForm::Vnni => "vnni",
                };
                let layout = if p.flat {
                    ", flat rows"
                } else if p.phases > 1 {
                    ", column phases"
                } else {
                    ""
                };
                (format!("depthwise {form}{layout}"), p.fallback)
            }
        };
        match fallback {
            Some(why) => format!("{what} ({why})"),
            None => what,
        }
    }
}

/// The kernel set a layer runs when `target.set` cannot take it, and why.
fn dense_fallback(target: Target, facts: &LayerFacts) -> Option<&'static str> {
    match target.set {
        KernelSet::Neon if facts.min_weight => Some("a weight of -128: NEON's i16 pair sums need -127..=127"),
        KernelSet::Neon | KernelSet::Dotprod if !facts.finite_scales => Some("a non-finite scale: the ARM epilogues saturate"),
        _ => None,
    }
}

/// The plan of a dense convolution on `target`. `any_in_place`: the in-place form wherever it
/// applies, paying or not (for tests).
pub fn dense(target: Target, facts: &LayerFacts, any_in_place: bool) -> DensePlan {
    let fallback = dense_fallback(target, facts);
    let target = if fallback.is_some() { Target { set: KernelSet::Portable, ..target } } else { target };
    let tile = Tile::dense(target);
    let geo = &facts.geo;
    let algorithm = if geo.is_pointwise() {
        DenseAlgorithm::Pointwise
    } else if target.arch == Arch::Aarch64
        && matches!(target.set, KernelSet::Neon | KernelSet::Dotprod)
        && in_place_fits(geo, tile.kc)
        && (any_in_place || in_place_pays(geo, target.set))
    {
        DenseAlgorithm::InPlace
    } else {
        DenseAlgorithm::Im2col
    };
    DensePlan { target, algorithm, tile, fallback }
}

/// Whether the in-place form applies: no more than an eighth more multiply-adds from rounding
/// the channels up to `kc` than im2col's rounding of `k`.
pub(crate) fn in_place_fits(geo: &Geometry, kc: usize) -> bool {
    let k = geo.cin * geo.kh * geo.kw;
    let groups = geo.cin.div_ceil(kc);
    k != 0 && 8 * groups * kc * geo.kh * geo.kw <= 9 * k.div_ceil(kc) * kc
}

/// Whether the in-place form beats im2col and packing, as measured on ResNet-18 under qemu
/// (instructions per inference): with NEON at every stride (437 M against 439 M with strided
/// layers on im2col); with the dot product at stride 1 only (207 M against 210 M: its panels
/// of 8 leave more columns unused at the end of the 28-, 14- and 7-wide rows of the strided
/// layers, and its tile looks up each group's offset, while im2col of a strided layer copies
/// little). Re-measured with the `asm!` tiles: 194 M against 196 M, and ResNet-50 415 M
/// against 427 M.
fn in_place_pays(geo: &Geometry, set: KernelSet) -> bool {
    set != KernelSet::Dotprod || geo.stride == (1, 1)
}

/// Whether Winograd F(2×2, 3×3) pays for a convolution on `target`: 3×3, stride 1, no
/// dilation, at most [`WINOGRAD_MAX_CIN`] input channels, and enough channels that the GEMMs
/// outweigh the input and output transforms (measured with `examples/kernels.rs`: 1.1× at
/// 64→64, 1.8× at 512→512 with AVX2).
///
/// Winograd's GEMM multiplies i16 values (the transforms widen them): 4 multiply-adds per
/// NEON instruction on 2.25× fewer products. On the Cortex-A72 that beats the dense NEON
/// kernel (16 int8 multiply-adds per 3 instructions) by 22–31% in instructions from 64→64 at
/// 56² to 256→256 at 14² (examples/kernels.rs under qemu, emulated), so NEON takes it from 64
/// channels (32 was not measured). In cycles the gain should be small: the A72 issues `smull`
/// (8 byte lanes) and `smlal` (4 halfword lanes) at the same rate, so 8 against 9 equivalent
/// multiply-adds per multiply cycle. With `sdot` (16 per instruction) the dense kernel
/// executes fewer instructions.
pub fn winograd_pays(target: Target, facts: &LayerFacts) -> bool {
    let geo = &facts.geo;
    let channels = match (target.set, target.arch) {
        (KernelSet::Avx2 | KernelSet::Portable, _) => 32,
        // `vpdpbusd` does 4× `vpmaddwd`'s multiply-adds per instruction, so by that arithmetic
        // Winograd's i16 GEMM (2.25× fewer products at `vpmaddwd`'s rate) loses to the dense
        // VNNI kernel; not timed against it.
        (KernelSet::Avx512Vnni, _) => return false,
        (KernelSet::Neon, Arch::Aarch64) => 64,
        // armv7: Winograd has only its portable form there, slower than the dense NEON kernel.
        (KernelSet::Neon | KernelSet::Dotprod, _) => return false,
    };
    (geo.kh, geo.kw, geo.stride, geo.dilation) == (3, 3, (1, 1), (1, 1))
        && geo.cin >= channels
        && geo.cin <= WINOGRAD_MAX_CIN
        && facts.m >= channels
        && geo.output_hw().is_some()
}

/// Largest input channel count for which Winograd's final sums provably fit i32
/// (`9 · cin · 128² · 4 < 2³¹`).
pub const WINOGRAD_MAX_CIN: usize = 3640;

/// The set Winograd's pieces come from on `target`: AVX2's, NEON's (aarch64, also for the dot
/// product, whose dense kernel the planner prefers), or the portable code.
pub fn winograd_target(target: Target) -> Target {
    let set = match (target.set, target.arch) {
        (KernelSet::Avx2 | KernelSet::Avx512Vnni, Arch::X86_64) => KernelSet::Avx2,
        (KernelSet::Neon | KernelSet::Dotprod, Arch::Aarch64) => KernelSet::Neon,
        _ => KernelSet::Portable,
    };
    Target { set, ..target }
}

/// Whether the dot product's depthwise form takes this geometry: equal strides of 1 or 2, no
/// dilation, `1 ≤ kw ≤ 8`.
pub(crate) fn dot_depthwise_fits(geo: &Geometry) -> bool {
    geo.stride.0 == geo.stride.1 && (1..=2).contains(&geo.stride.0) && geo.dilation == (1, 1) && (1..=8).contains(&geo.kw) && geo.kh >= 1
}

/// The plan of a depthwise convolution on `target`.
pub fn depthwise(target: Target, facts: &LayerFacts) -> DepthwisePlan {
    let geo = &facts.geo;
    let portable = |why: Option<&'static str>| (KernelSet::Portable, DepthwiseForm::Planes16, why);
    let no_neon = "a weight of -128: NEON's i16 tap sums need -127..=127";
    let neon_taps = geo.kh * geo.kw <= usize::from(u16::MAX);
    let (set, form, fallback) = match (target.set, target.arch) {
        (KernelSet::Neon | KernelSet::Dotprod, _) if !facts.finite_scales => portable(Some("a non-finite scale: the ARM epilogues saturate")),
        (KernelSet::Dotprod, Arch::Aarch64) if dot_depthwise_fits(geo) => (KernelSet::Dotprod, DepthwiseForm::Dot, None),
        (KernelSet::Neon | KernelSet::Dotprod, Arch::Aarch64 | Arch::Armv7) if facts.min_weight => portable(Some(no_neon)),
        (KernelSet::Neon | KernelSet::Dotprod, Arch::Aarch64 | Arch::Armv7) if !neon_taps => portable(Some("more than 65535 taps")),
        (KernelSet::Dotprod, Arch::Aarch64) => (KernelSet::Neon, DepthwiseForm::Neon, Some("the dot-product form takes strides 1 and 2, no dilation, kw <= 8")),
        (KernelSet::Neon, Arch::Aarch64 | Arch::Armv7) => (KernelSet::Neon, DepthwiseForm::Neon, None),
        (KernelSet::Avx2, Arch::X86_64) => (KernelSet::Avx2, DepthwiseForm::Planes16, None),
        (KernelSet::Avx512Vnni, Arch::X86_64) if dot_depthwise_fits(geo) => (KernelSet::Avx512Vnni, DepthwiseForm::Vnni, None),
        (KernelSet::Avx512Vnni, Arch::X86_64) => (KernelSet::Avx2, DepthwiseForm::Planes16, Some("the VNNI form takes strides 1 and 2, no dilation, kw <= 8")),
        _ => portable(None),
    };
    let phases = if matches!(form, DepthwiseForm::Dot | DepthwiseForm::Vnni) { 1 } else { geo.stride.1.max(1) };
    let flat = match (form, geo.output_hw()) {
        (DepthwiseForm::Neon | DepthwiseForm::Dot, Some((oh, ow))) if geo.stride == (1, 1) => {
            let pw = (geo.w + geo.pads[1] + geo.pads[3]).div_ceil(phases);
            flat_pays(oh, ow, pw)
        }
        _ => false,
    };
    DepthwisePlan { target: Target { set, ..target }, form, phases, flat, fallback }
}

/// Whether a stride-1 depthwise layer on the ARM forms runs faster "flat": its output rows
/// computed as one run over the padded plane's row pitch `pw` (so a 16-output tile spans rows,
/// and narrow planes waste no lanes), `pw − ow` wasted outputs per row, then copied back to rows
/// of `ow`. A tile costs about 64 instructions, copying a row back about 4 plus 2 per 16 bytes.
pub(crate) fn flat_pays(oh: usize, ow: usize, pw: usize) -> bool {
    if oh == 0 || ow == 0 {
        return false;
    }
    let rows = oh * ow.div_ceil(16) * 64;
    let flat = ((oh - 1) * pw + ow).div_ceil(16) * 64 + oh * (4 + 2 * ow.div_ceil(16));
    flat < rows
}

/// The plan of a convolution with `groups` groups on `target` (`winograd`: whether Winograd
/// may be chosen). `None` for a grouping the kernels do not take (neither dense nor depthwise).
pub fn conv(target: Target, facts: &LayerFacts, groups: usize, winograd: bool) -> Option<ConvPlan> {
    let c = facts.geo.cin;
    if groups == 1 {
        if winograd && winograd_pays(target, facts) {
            return Some(ConvPlan::Winograd(winograd_target(target)));
        }
        Some(ConvPlan::Dense(dense(target, facts, false)))
    } else if groups == c && facts.m == c {
        Some(ConvPlan::Depthwise(depthwise(target, facts)))
    } else {
        None
    }
}

/// How a dense convolution's work splits into tasks: a grid of column blocks (output pixels)
/// by row blocks (output channels). Task `t` is column block `t / row_blocks`, row block
/// `t % row_blocks`; each task packs its columns and multiplies them by its rows' weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseSplit {
    /// Columns per block (the last block may have fewer).
    pub cols: usize,
    /// Column blocks.
    pub col_blocks: usize,
    /// Output channels per block, a multiple of the tile's rows (the last block may have fewer).
    pub rows: usize,
    /// Row blocks.
    pub row_blocks: usize,
}

impl DenseSplit {
    /// Tasks in the grid.
    pub fn tasks(&self) -> usize {
        self.col_blocks * self.row_blocks
    }

    /// Task `t`'s columns and rows, for `n` columns and `m` rows.
    pub fn task(&self, t: usize, n: usize, m: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (cb, rb) = (t / self.row_blocks, t % self.row_blocks);
        let c0 = cb * self.cols;
        let r0 = rb * self.rows;
        (c0..(c0 + self.cols).min(n), r0..(r0 + self.rows).min(m))
    }
}

/// A layer's splits, worked out once per thread count: 1 to 8 threads without a lock, more
/// behind a mutex (growing a list the first time a count is seen), so that a run allocates
/// nothing and does not search again whatever `--threads` says.
#[derive(Debug, Default)]
pub(crate) struct SplitCache {
    few: [std::sync::OnceLock<DenseSplit>; 8],
    more: std::sync::Mutex<Vec<(usize, DenseSplit)>>,
}

impl SplitCache {
    /// The split for `threads`, made by `make` the first time.
    pub(crate) fn get(&self, threads: usize, make: impl FnOnce() -> DenseSplit) -> DenseSplit {
        if let Some(cell) = self.few.get(threads.max(1) - 1) {
            return *cell.get_or_init(make);
        }
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, split)) = more.iter().find(|(t, _)| *t == threads) {
            return split;
        }
        let split = make();
        more.push((threads, split));
        split
    }
}

/// What packing one column costs, as the multiply-accumulates of this many output channels
/// (`kp` each), per algorithm: a pointwise layer's columns are rows of the input, moved into
/// panels; an im2col gathers them first (a byte at a time for strided layers); the in-place
/// form packs nothing. Estimates from `scripts/thread_bound.py`'s per-job counts (THREADS_JOBS)
/// on ResNet-18 and MobileNetV2 under the emulated Cortex-A76, where a strided 3×3 layer's
/// packing was about a third of its one-thread instructions.
fn pack_rows(algorithm: DenseAlgorithm) -> usize {
    match algorithm {
        DenseAlgorithm::InPlace => 0,
        DenseAlgorithm::Pointwise => 16,
        DenseAlgorithm::Im2col => 64,
    }
}
/// A task's fixed cost (claiming it, setting up its buffers), in multiply-accumulates.
const TASK_MACS: usize = 4096;
/// A job's fixed cost (posting it, waking the workers, waiting for the last), likewise.
const JOB_MACS: usize = 8 * TASK_MACS;
/// A job below this many multiply-accumulates is not split: waking other threads costs more.
const JOB_MIN_MACS: usize = 1 << 18;

/// The grid of a dense convolution with `n` output columns, `m` output channels and `kp`
/// (padded) `k`, run by `algorithm` with the `tile` of its kernel set on `threads` threads.
///
/// One thread: column blocks whose packed form stays in L2 while every row block passes over
/// it, all rows in each. Several threads: the grid [`best_grid`] finds, counting padded tiles,
/// the packing and fixed costs per task and job. With one row block a task packs its columns
/// and multiplies them; with several, `DenseQConv` packs each column block once, in a job of
/// its own, before the GEMM tasks. A 7×7 map (49 columns) on four threads thus splits its
/// channels instead of making column blocks of 16, 16, 16 and 1.
pub(crate) fn dense_grid(n: usize, m: usize, kp: usize, algorithm: DenseAlgorithm, tile: Tile, threads: usize) -> DenseSplit {
    let (nr, mr) = (tile.nr.max(1), tile.mr.max(1));
    // In units of the i16-pair panel for every set (the one-thread split of every set since
    // the AVX2 kernels, kept so that one-thread runs do not change).
    let l2 = ((PACKED_BLOCK_BYTES / (kp.max(1) * 2)) / (2 * PAIR_NR) * (2 * PAIR_NR)).max(4 * PAIR_NR);
    let whole = |width: usize| DenseSplit { cols: width, col_blocks: n.div_ceil(width), rows: m.max(1), row_blocks: 1 };
    let l2_width = l2.min(n.div_ceil(PAIR_NR) * PAIR_NR).max(1);
    if threads <= 1 || n == 0 || m == 0 || n * m * kp < JOB_MIN_MACS {
        return whole(l2_width);
    }
    let round = |x: usize, to: usize| x.div_ceil(to) * to;
    let costs = GridCosts {
        pack: |cols: usize| pack_rows(algorithm) * cols * kp,
        gemm: |cols: usize, rows: usize| round(rows, mr) * round(cols, nr) * kp,
        // The in-place form packs nothing: its row blocks share the prepared input anyway.
        pack_once: algorithm != DenseAlgorithm::InPlace,
    };
    best_grid(n, m, (nr, l2_width), mr, threads, &costs).unwrap_or_else(|| whole(l2_width))
}

/// What a grid's tasks cost: packing `cols` columns, and multiplying them by `rows` rows.
/// `pack_once`: with several row blocks, each column block is packed once, by a job of its
/// own before the GEMMs (else every task packs its columns).
struct GridCosts<P, G> {
    pack: P,
    gemm: G,
    pack_once: bool,
}

/// The time `tasks` (costs, in order) take on `free.len()` equal threads, each next task
/// handed to the thread free first (as the pool's atomic counter does).
fn replay(tasks: impl Iterator<Item = usize>, free: &mut [usize]) -> usize {
    free.iter_mut().for_each(|f| *f = 0);
    for cost in tasks {
        // Infallible: `free` is not empty (`best_grid` gives it a thread at least).
        *free.iter_mut().min().unwrap() += cost;
    }
    free.iter().copied().max().unwrap_or(0)
}

/// Of the grids over `n` columns (blocks of a multiple of `unit.0` columns, at most `unit.1`)
/// and `m` rows (blocks of a multiple of `mr`) with at most eight tasks per thread (or the
/// fewest column blocks, if more), the one that finishes first on `threads` equal threads by
/// [`replay`] of its tasks' `costs` plus the fixed costs of tasks and jobs; ties go to fewer
/// tasks.
fn best_grid<P: Fn(usize) -> usize, G: Fn(usize, usize) -> usize>(
    n: usize,
    m: usize,
    unit: (usize, usize),
    mr: usize,
    threads: usize,
    costs: &GridCosts<P, G>,
) -> Option<DenseSplit> {
    let (nr, cap) = unit;
    let round = |x: usize, to: usize| x.div_ceil(to) * to;
    let max_tasks = (8 * threads).max(n.div_ceil(cap));
    let mut best: Option<(usize, DenseSplit)> = None;
    let mut free = vec![0usize; threads.max(1)];
    for col_blocks in n.div_ceil(cap)..=n.div_ceil(nr).min(max_tasks) {
        let cols = round(n.div_ceil(col_blocks), nr).min(cap);
        if n.div_ceil(cols) != col_blocks {
            continue; // the same grid as a smaller count
        }
        for row_blocks in 1..=m.div_ceil(mr).min(max_tasks / col_blocks) {
            let rows = round(m.div_ceil(row_blocks), mr);
            if m.div_ceil(rows) != row_blocks {
                continue;
            }
            let split = DenseSplit { cols, col_blocks, rows, row_blocks };
            let cost = |t: usize| {
                let (c, r) = split.task(t, n, m);
                (c.len(), r.len())
            };
            let span = if row_blocks > 1 && costs.pack_once {
                let packs = (0..col_blocks).map(|b| (costs.pack)(cost(b * row_blocks).0) + TASK_MACS);
                let pack_span = replay(packs, &mut free);
                let gemms = (0..split.tasks()).map(|t| (costs.gemm)(cost(t).0, cost(t).1) + TASK_MACS);
                pack_span + JOB_MACS + replay(gemms, &mut free)
            } else {
                let tasks = (0..split.tasks()).map(|t| (costs.pack)(cost(t).0) + (costs.gemm)(cost(t).0, cost(t).1) + TASK_MACS);
                replay(tasks, &mut free)
            };
            if best.is_none_or(|(b, s)| span < b || (span == b && split.tasks() < s.tasks())) {
                best = Some((span, split));
            }
        }
    }
    best.map(|(_, s)| s)
}

/// The input transform of a Winograd task costs about as much as this many output channels of
/// its GEMM.
const TRANSFORM_ROWS: usize = 8;

/// The grid of a Winograd layer with `th × tw` tiles (2×2 output blocks), `m` output channels
/// and `cp` (padded) input channels, on `threads` threads: blocks of tile rows (the "columns"
/// of [`DenseSplit`]) by blocks of channels, in multiples of the GEMM's `mr` rows. One thread:
/// blocks of tile rows whose transformed input fits `block_tiles` tiles, all channels. Several:
/// the grid that [`best_grid`] finds, counting the GEMM's padded register tiles of `tiles`
/// tiles (on a 7×7 map the 16 tiles are one register tile: split into tile rows, each task
/// would compute all 16 for its 4) and the input transform (with several channel blocks,
/// `WinogradQConv` transforms each block of tile rows once, in a job of its own).
pub(crate) fn winograd_grid(th: usize, tw: usize, m: usize, cp: usize, tiles: (usize, usize), mr: usize, threads: usize) -> DenseSplit {
    let (tile, block_tiles) = tiles;
    let per = (block_tiles / tw.max(1)).clamp(1, th.max(1));
    let whole = DenseSplit { cols: per, col_blocks: th.div_ceil(per), rows: m.max(1), row_blocks: 1 };
    if threads <= 1 || th * tw * m * cp * 16 < JOB_MIN_MACS {
        return whole;
    }
    let costs = GridCosts {
        pack: |ty: usize| ty * tw * TRANSFORM_ROWS * cp * 16,
        gemm: |ty: usize, rows: usize| (ty * tw).div_ceil(tile) * tile * rows.div_ceil(mr) * mr * cp * 16,
        pack_once: true,
    };
    best_grid(th, m, (1, per), mr, threads, &costs).unwrap_or(whole)
}

/// An element-wise job below this many elements runs on the calling thread: waking the others
/// costs more (a quantized add executes about one instruction per element on NEON).
const ELEMENTWISE_MIN: usize = 8192;

/// How an element-wise kernel's `len` elements split into tasks: one equal chunk per thread,
/// in multiples of 64 elements (whole vectors for every set). Returns `(elements per task,
/// tasks)`.
pub(crate) fn elementwise_split(len: usize, threads: usize) -> (usize, usize) {
    if threads <= 1 || len < ELEMENTWISE_MIN {
        return (len.max(1), 1);
    }
    let per = len.div_ceil(threads).next_multiple_of(64);
    (per, len.div_ceil(per))
}

/// How `c` channels of a pooling layer (`work` window elements each) split into tasks: one
/// equal group per thread, none below the element-wise threshold. Returns `(channels per
/// task, tasks)`.
pub(crate) fn channel_split(c: usize, work: usize, threads: usize) -> (usize, usize) {
    if threads <= 1 || c * work < ELEMENTWISE_MIN {
        return (c.max(1), 1);
    }
    let per = c.div_ceil(threads);
    (per, c.div_ceil(per))
}

/// How a depthwise convolution's `c` channels split into tasks: two groups per thread when
/// there are several. Returns `(channels per task, tasks)`.
pub(crate) fn depthwise_split(c: usize, threads: usize) -> (usize, usize) {
    let per = if threads > 1 { c.div_ceil(2 * threads) } else { c }.max(1);
    (per, c.div_ceil(per))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(cin: usize, hw: usize, k: usize, s: usize, p: usize) -> Geometry {
        Geometry { cin, h: hw, w: hw, kh: k, kw: k, stride: (s, s), dilation: (1, 1), pads: [p; 4] }
    }

    fn facts(g: Geometry, m: usize) -> LayerFacts {
        LayerFacts { geo: g, m, min_weight: false, finite_scales: true }
    }

    const A72: Target = Target { arch: Arch::Aarch64, set: KernelSet::Neon };
    const A76: Target = Target { arch: Arch::Aarch64, set: KernelSet::Dotprod };
    const A7: Target = Target { arch: Arch::Armv7, set: KernelSet::Neon };
    const X86: Target = Target { arch: Arch::X86_64, set: KernelSet::Avx2 };

    #[test]
    fn dense_algorithms_follow_the_geometry_and_the_set() {
        let pw = facts(geo(64, 14, 1, 1, 0), 128);
        for t in [A72, A76, A7, X86] {
            assert_eq!(dense(t, &pw, false).algorithm, DenseAlgorithm::Pointwise, "{t}");
        }
        let c3 = facts(geo(64, 14, 3, 1, 1), 64);
        assert_eq!(dense(A72, &c3, false).algorithm, DenseAlgorithm::InPlace);
        assert_eq!(dense(A76, &c3, false).algorithm, DenseAlgorithm::InPlace);
        assert_eq!(dense(A7, &c3, false).algorithm, DenseAlgorithm::Im2col);
        assert_eq!(dense(X86, &c3, false).algorithm, DenseAlgorithm::Im2col);
        // Stride 2: in place on NEON, im2col on the dot product (unless forced).
        let s2 = facts(geo(64, 14, 3, 2, 1), 64);
        assert_eq!(dense(A72, &s2, false).algorithm, DenseAlgorithm::InPlace);
        assert_eq!(dense(A76, &s2, false).algorithm, DenseAlgorithm::Im2col);
        assert_eq!(dense(A76, &s2, true).algorithm, DenseAlgorithm::InPlace);
        // The stem: 3 channels rounded up to 16 (NEON) or 4 (the dot product) is more than an
        // eighth extra; 12 channels are three whole groups of 4, not a whole group of 16.
        let stem = facts(geo(3, 224, 3, 2, 1), 32);
        assert_eq!(dense(A72, &stem, false).algorithm, DenseAlgorithm::Im2col);
        assert_eq!(dense(A76, &stem, true).algorithm, DenseAlgorithm::Im2col);
        let c12 = facts(geo(12, 9, 3, 1, 1), 7);
        assert_eq!(dense(A76, &c12, false).algorithm, DenseAlgorithm::InPlace);
        assert_eq!(dense(A72, &c12, false).algorithm, DenseAlgorithm::Im2col);
    }

    #[test]
    fn in_place_fits_at_an_eighth_of_padding() {
        // 16 channels per group: 128 fits exactly, 126 → 128 is within 1/8, 8 → 16 is not.
        assert!(in_place_fits(&geo(128, 8, 3, 1, 1), 16));
        assert!(in_place_fits(&geo(126, 8, 3, 1, 1), 16));
        assert!(!in_place_fits(&geo(8, 8, 3, 1, 1), 16));
        assert!(!in_place_fits(&geo(0, 8, 3, 1, 1), 16));
    }

    #[test]
    fn fallbacks_name_their_reason() {
        let mut f = facts(geo(16, 8, 1, 1, 0), 16);
        f.min_weight = true;
        let p = dense(A72, &f, false);
        assert_eq!(p.target.set, KernelSet::Portable);
        assert!(p.fallback.unwrap().contains("-128"));
        assert_eq!(dense(A76, &f, false).target.set, KernelSet::Dotprod, "sdot takes -128");
        assert_eq!(dense(X86, &f, false).target.set, KernelSet::Avx2);
        f.min_weight = false;
        f.finite_scales = false;
        assert_eq!(dense(A76, &f, false).target.set, KernelSet::Portable);
        assert_eq!(dense(X86, &f, false).target.set, KernelSet::Avx2, "AVX2 clamps like the reference");
    }

    #[test]
    fn winograd_thresholds_per_set() {
        let w = |cin, m, t| winograd_pays(t, &facts(geo(cin, 28, 3, 1, 1), m));
        assert!(w(32, 32, X86) && !w(16, 32, X86));
        assert!(w(64, 64, A72) && !w(32, 64, A72));
        assert!(!w(512, 512, A76), "sdot's dense kernel wins");
        assert!(!w(512, 512, A7), "armv7 has no SIMD Winograd");
        assert!(!w(WINOGRAD_MAX_CIN + 1, 64, X86), "sums could overflow");
        assert!(!winograd_pays(X86, &facts(geo(64, 28, 3, 2, 1), 64)), "stride 2");
        assert_eq!(winograd_target(A76).set, KernelSet::Neon);
        assert_eq!(winograd_target(A7).set, KernelSet::Portable);
    }

    #[test]
    fn depthwise_forms() {
        let dw = |k, s, t| depthwise(t, &facts(geo(32, 28, k, s, k / 2), 32));
        assert_eq!(dw(3, 1, A76).form, DepthwiseForm::Dot);
        assert_eq!(dw(3, 2, A76).phases, 1, "sdot reads a strided plane whole");
        assert_eq!(dw(3, 2, A72).phases, 2);
        assert_eq!(dw(9, 1, A76).form, DepthwiseForm::Neon, "kw > 8");
        assert_eq!(dw(9, 1, A76).target.set, KernelSet::Neon);
        assert_eq!(dw(3, 3, A76).form, DepthwiseForm::Neon, "stride 3");
        assert_eq!(dw(3, 1, A7).form, DepthwiseForm::Neon);
        assert_eq!(dw(3, 1, X86).form, DepthwiseForm::Planes16);
        let mut f = facts(geo(32, 28, 3, 1, 1), 32);
        f.min_weight = true;
        assert_eq!(depthwise(A72, &f).target.set, KernelSet::Portable);
        assert_eq!(depthwise(A76, &f).form, DepthwiseForm::Dot, "sdot takes -128");
    }

    #[test]
    fn flat_rows_pay_on_narrow_planes_only() {
        assert!(flat_pays(7, 7, 9));
        assert!(flat_pays(56, 56, 58), "8 wasted lanes of 64 per row cost less than the row tails");
        assert!(!flat_pays(8, 200, 202), "13 tiles per row: the copy back costs more");
        assert!(!flat_pays(0, 7, 9));
    }

    #[test]
    fn splits_cover_every_column_and_channel() {
        let tiles = [A72, A76, A7, X86, Target { arch: Arch::X86_64, set: KernelSet::Avx512Vnni }].map(Tile::dense);
        for n in [1, 7, 49, 196, 3136, 12544] {
            for m in [1, 8, 24, 96, 1000] {
                for kp in [2, 32, 576, 4608] {
                    for tile in tiles {
                        for threads in 1..=5 {
                            let s = dense_grid(n, m, kp, DenseAlgorithm::Im2col, tile, threads);
                            let at = format!("n {n} m {m} kp {kp} {tile:?} threads {threads}: {s:?}");
                            assert!(s.rows.is_multiple_of(tile.mr) || s.row_blocks == 1, "{at}");
                            assert!(s.tasks() <= (8 * threads).max(dense_grid(n, m, kp, DenseAlgorithm::Im2col, tile, 1).tasks()), "{at}");
                            // Every (column, row) in exactly one task.
                            let mut seen = vec![0u8; n * m];
                            for t in 0..s.tasks() {
                                let (c, r) = s.task(t, n, m);
                                assert!(!c.is_empty() && !r.is_empty(), "{at}: task {t} empty");
                                for row in r {
                                    c.clone().for_each(|col| seen[row * n + col] += 1);
                                }
                            }
                            assert!(seen.iter().all(|&v| v == 1), "{at}");
                        }
                    }
                }
            }
        }
        for c in [1, 3, 32, 960] {
            for threads in 1..=5 {
                let (per, tasks) = depthwise_split(c, threads);
                assert!(per * tasks >= c && (tasks - 1) * per < c);
            }
        }
    }

    /// The figures of issue 34: a 7×7 map's 49 columns made column blocks of 16, 16, 16 and 1
    /// (four threads waited for the 16s); the grid splits the channels instead. One thread
    /// keeps the L2 column blocks, all channels in each.
    #[test]
    fn small_maps_split_their_channels() {
        let tile = Tile::dense(A76);
        let s = dense_grid(49, 960, 160, DenseAlgorithm::Pointwise, tile, 4);
        assert!(s.row_blocks >= 4 && s.tasks().is_multiple_of(4), "{s:?}");
        let one = dense_grid(49, 960, 160, DenseAlgorithm::Pointwise, tile, 1);
        assert_eq!((one.col_blocks, one.row_blocks, one.cols), (1, 1, 56), "{one:?}");
        let big = dense_grid(112 * 112, 96, 16, DenseAlgorithm::Pointwise, tile, 4);
        assert_eq!(big.row_blocks, 1, "a large map splits its columns alone: {big:?}");
        // A layer too small to be worth waking other threads for stays one task.
        assert_eq!(dense_grid(1, 16, 16, DenseAlgorithm::Pointwise, tile, 4).tasks(), 1);
        // Winograd on ResNet-18's 7×7 layer4: 4×4 tiles, one register tile of 16. Tile rows
        // as tasks made each compute all 16 for its 4 (2.2× the one-thread instructions on
        // two threads); the grid splits the 512 channels and keeps every tile row together.
        let w = winograd_grid(4, 4, 512, 512, (16, 64), PAIR_MR, 4);
        assert!(w.col_blocks == 1 && w.row_blocks >= 4, "{w:?}");
        assert_eq!(winograd_grid(4, 4, 512, 512, (16, 64), PAIR_MR, 1), DenseSplit { cols: 4, col_blocks: 1, rows: 512, row_blocks: 1 });
        // ResNet-18's layer1 on the Pi 4: 28 tile rows in L2 blocks of 4 are 7 blocks, which
        // four threads share 2, 2, 2, 1; four channel blocks of each make 28 equal tasks.
        let w = winograd_grid(28, 28, 64, 64, (16, 128), PAIR_MR, 4);
        assert!(w.tasks().is_multiple_of(4) && w.cols == 4, "{w:?}");
    }

    /// Each thread count's split is made once, below and above the lock-free eight.
    #[test]
    fn splits_are_worked_out_once_per_thread_count() {
        let cache = SplitCache::default();
        let made = std::cell::Cell::new(0);
        let make = |cols| {
            made.set(made.get() + 1);
            DenseSplit { cols, col_blocks: 1, rows: 1, row_blocks: 1 }
        };
        for _ in 0..3 {
            for threads in [1, 4, 8, 9, 16, 64] {
                assert_eq!(cache.get(threads, || make(threads)).cols, threads);
            }
        }
        assert_eq!(made.get(), 6);
    }

    #[test]
    fn grouping_other_than_dense_or_depthwise_is_refused() {
        let f = facts(geo(32, 8, 3, 1, 1), 32);
        assert!(conv(X86, &f, 4, true).is_none());
        assert!(matches!(conv(X86, &f, 1, true), Some(ConvPlan::Winograd(_))));
        assert!(matches!(conv(X86, &f, 1, false), Some(ConvPlan::Dense(_))));
        assert!(matches!(conv(X86, &f, 32, true), Some(ConvPlan::Depthwise(_))));
    }
}
