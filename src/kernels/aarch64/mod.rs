//! aarch64 kernels: the `neon` set (ARMv8.0, [`neon`]) and the `dotprod` set (ARMv8.2 `sdot`,
//! [`dotprod`], with NEON for what has no dot-product form). This module holds what both share:
//! the column panels their GEMMs walk ([`Panels`]), the in-place form of convolutions
//! ([`DirectConv`]), and their implementations of the kernel table's traits ([`ArmDense`],
//! [`ArmDepthwise`]); Winograd's NEON pieces are in [`winograd`].

// Not yet under the crate's `unsafe_op_in_unsafe_fn` rule: their `unsafe fn` bodies (371
// operations, mostly intrinsics, pointer arithmetic and `asm!`) still rely on the function's
// contract without an `unsafe` block and `// SAFETY:` comment of their own.
#[allow(unsafe_op_in_unsafe_fn)]
pub(crate) mod dotprod;
#[allow(unsafe_op_in_unsafe_fn)]
pub(crate) mod neon;
pub(crate) mod winograd;

use std::ops::Range;

use crate::kernels::geometry::Geometry;
use crate::kernels::isa::KernelSet;
use crate::kernels::layers::{DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer};
use crate::kernels::packing::im2col;
use crate::kernels::plan::{in_place_fits, DenseAlgorithm, DensePlan, DepthwiseForm, DepthwisePlan};
use crate::kernels::planes::{self, PlaneForm, TapOffsets};
use crate::kernels::tasks::{Out, Work};

/// Where the `k` groups of one column panel lie: packed one after the other ([`Packed`]), or in
/// a channel-interleaved input at a table of offsets ([`Direct`], see [`DirectConv`]).
pub(crate) trait Cols: Copy {
    /// For the `asm!` tiles: the start, the offset table (null when packed) and the bytes
    /// between packed groups (0 when read in place).
    fn parts(self) -> (*const i8, *const usize, usize);
}

/// A packed panel: group `g` at `STEP · g` bytes.
#[derive(Clone, Copy)]
pub(crate) struct Packed<const STEP: usize>(pub(crate) *const i8);

impl<const STEP: usize> Cols for Packed<STEP> {
    #[inline(always)]
    fn parts(self) -> (*const i8, *const usize, usize) {
        (self.0, std::ptr::null(), STEP)
    }
}

/// A panel read in place: group `g` at `base + koff[g]`.
#[derive(Clone, Copy)]
pub(crate) struct Direct {
    base: *const i8,
    koff: *const usize,
}

impl Cols for Direct {
    #[inline(always)]
    fn parts(self) -> (*const i8, *const usize, usize) {
        (self.base, self.koff, 0)
    }
}

/// The column panels a GEMM call computes: each with its groups, the output column of its first
/// column and how many of its columns are real (the rest are computed and not stored).
pub(crate) trait Panels {
    type C: Cols;
    fn count(&self) -> usize;
    /// Whether every panel's real columns lie within `0..n` (output rows of length `n`).
    fn within(&self, n: usize) -> bool;
    /// # Safety
    /// `p < count()`.
    unsafe fn panel(&self, p: usize) -> (Self::C, usize, usize);
    /// NEON's register tile of a panel `c` with `cols` real columns against the weight block `a`
    /// (`kb` groups); the accumulators of columns past `cols` may be left undefined.
    ///
    /// # Safety
    /// As [`neon::tile_asm`]'s; `1 ≤ cols ≤ NR`.
    unsafe fn neon_tile(&self, c: Self::C, a: *const i8, kb: usize, cols: usize) -> [std::arch::aarch64::int32x4_t; 16];
    /// NEON: the full tiles of the leading panels that one loop can take ([`neon::packed_tiles`]:
    /// packed panels, all but a partial last one), requantised and stored to the 4 rows from
    /// `dst` (row length `n`) at each panel's output column; returns how many panels it took
    /// (none for panels read in place).
    ///
    /// # Safety
    /// As [`neon::packed_tiles`]'s for the panels taken: the weight block `a` of `kb` groups,
    /// `bq`/`sq` the 4 rows' biases and scales, the 4 rows from `dst` writable at those panels'
    /// columns.
    #[allow(clippy::too_many_arguments)]
    unsafe fn neon_full_tiles(&self, a: *const i8, kb: usize, bq: *const i32, sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize;
    /// The dot product's [`neon_full_tiles`](Self::neon_full_tiles) ([`dotprod::packed_tiles`],
    /// accumulators starting at `init`, the 8 rows' biases).
    ///
    /// # Safety
    /// As [`dotprod::packed_tiles`]'s for the panels taken; the CPU has the dot product.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_full_tiles(
        &self,
        a: *const i8,
        kb: usize,
        init: [std::arch::aarch64::int32x4_t; 2],
        sq: *const f32,
        zp: i32,
        dst: *mut i8,
        n: usize,
    ) -> usize;
}

/// Panels packed one after the other (`pack_b`), for output columns `col0..col0 + ncols`.
/// `HALF` (NEON): the last `k` group holds only 8 real `k` (`k % 16` in 1..=8, at least 2
/// groups), so the tile skips the products of its zero half ([`neon::tile_asm_half`]); a type
/// parameter, so that the choice is made once per call, not per tile.
pub(crate) struct PackedPanels<const STEP: usize, const NR: usize, const HALF: bool = false> {
    pub(crate) packed: *const i8,
    /// Bytes per panel.
    pub(crate) panel: usize,
    pub(crate) ncols: usize,
    pub(crate) col0: usize,
}

impl<const STEP: usize, const NR: usize, const HALF: bool> Panels for PackedPanels<STEP, NR, HALF> {
    type C = Packed<STEP>;
    #[inline(always)]
    fn count(&self) -> usize {
        self.ncols.div_ceil(NR)
    }
    fn within(&self, n: usize) -> bool {
        self.col0 + self.ncols <= n
    }
    #[inline(always)]
    unsafe fn panel(&self, p: usize) -> (Packed<STEP>, usize, usize) {
        // SAFETY: `p < count()` (the contract) keeps the panel within the packed buffer.
        unsafe { (Packed(self.packed.add(p * self.panel)), self.col0 + p * NR, (self.ncols - p * NR).min(NR)) }
    }
    #[inline(always)]
    unsafe fn neon_tile(&self, c: Packed<STEP>, a: *const i8, kb: usize, cols: usize) -> [std::arch::aarch64::int32x4_t; 16] {
        // SAFETY: the tiles' contract is this function's.
        unsafe {
            // Only NEON's GEMM calls this, on panels it packed.
            const { assert!(STEP == neon::NR * neon::KC) };
            if cols < neon::NR {
                trace!("neon.cols");
                neon::tile_cols(a, c.0, kb, cols)
            } else if HALF {
                neon::tile_asm_half(a, c.0, kb)
            } else {
                neon::tile_asm(a, c.0, std::ptr::null(), kb)
            }
        }
    }
    #[inline(always)]
    unsafe fn neon_full_tiles(&self, a: *const i8, kb: usize, bq: *const i32, sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize {
        // SAFETY: `packed_tiles`' contract is this function's; `dst + col0` is the first panel's column.
        unsafe {
            const { assert!(STEP == neon::NR * neon::KC && NR == neon::NR) };
            // The loop reaches each panel from the previous one's last group.
            assert_eq!(self.panel, kb * STEP, "packed panels of another k");
            let full = self.ncols / NR;
            if full > 0 {
                neon::packed_tiles::<HALF>(a, self.packed, kb, full, bq, sq, zp, dst.add(self.col0), n);
            }
            full
        }
    }
    #[inline(always)]
    unsafe fn dot_full_tiles(
        &self,
        a: *const i8,
        kb: usize,
        init: [std::arch::aarch64::int32x4_t; 2],
        sq: *const f32,
        zp: i32,
        dst: *mut i8,
        n: usize,
    ) -> usize {
        // SAFETY: `packed_tiles`' contract is this function's (the CPU has the dot product).
        unsafe {
            const { assert!(STEP == dotprod::NR * dotprod::KC && NR == dotprod::NR && !HALF) };
            // The loop reaches each panel from the previous one's last group.
            assert_eq!(self.panel, kb * STEP, "packed panels of another k");
            let full = self.ncols / NR;
            if full > 0 {
                dotprod::packed_tiles(a, self.packed, kb, full, init, sq, zp, dst.add(self.col0), n);
            }
            full
        }
    }
}

/// Panels read in place from a channel-interleaved input: `[offset, output column, columns]`
/// (made by [`DirectConv::direct_panels`], which checks that they read within the input).
pub(crate) struct DirectPanels<'a> {
    base: *const i8,
    koff: &'a [usize],
    list: &'a [[usize; 3]],
    /// NEON: the offsets of the runs of `run` consecutive kernel columns (3 or 5; 0: none).
    runs: &'a [usize],
    run: usize,
}

impl Panels for DirectPanels<'_> {
    type C = Direct;
    #[inline(always)]
    fn count(&self) -> usize {
        self.list.len()
    }
    fn within(&self, n: usize) -> bool {
        self.list.iter().all(|&[_, col, cols]| col + cols <= n)
    }
    #[inline(always)]
    unsafe fn panel(&self, p: usize) -> (Direct, usize, usize) {
        // SAFETY: `p < count()` (the contract); `direct_panels` checked every offset against the input.
        unsafe {
            let [off, col, cols] = *self.list.get_unchecked(p);
            (Direct { base: self.base.add(off), koff: self.koff.as_ptr() }, col, cols)
        }
    }
    #[inline(always)]
    unsafe fn neon_tile(&self, c: Direct, a: *const i8, kb: usize, _cols: usize) -> [std::arch::aarch64::int32x4_t; 16] {
        // SAFETY: the tiles' contract is this function's; the offsets were checked by `direct_panels`.
        unsafe {
            match self.run {
                3 => neon::tile_runs::<3>(a, c.base, self.runs),
                5 => neon::tile_runs::<5>(a, c.base, self.runs),
                _ => neon::tile_asm(a, c.base, c.koff, kb),
            }
        }
    }
    unsafe fn neon_full_tiles(&self, _: *const i8, _: usize, _: *const i32, _: *const f32, _: i32, _: *mut i8, _: usize) -> usize {
        0
    }
    unsafe fn dot_full_tiles(&self, _: *const i8, _: usize, _: [std::arch::aarch64::int32x4_t; 2], _: *const f32, _: i32, _: *mut i8, _: usize) -> usize {
        0
    }
}

/// `src[at..at + rows]` in the first `rows` of an array of `N` (the rest default): a full block
/// as one copy of a length known when compiled, a partial one element by element. Per row block
/// of a GEMM, for its biases and scales: `copy_from_slice` of a run-time length called `memcpy`
/// (about 40 instructions a call, two per row block).
///
/// # Panics
/// If `at + rows` is past `src` or `rows > N`.
#[inline(always)]
pub(crate) fn block_of<T: Copy + Default, const N: usize>(src: &[T], at: usize, rows: usize) -> [T; N] {
    let mut out = [T::default(); N];
    if rows == N {
        out.copy_from_slice(&src[at..at + N]);
    } else {
        for (o, &v) in out[..rows].iter_mut().zip(&src[at..at + rows]) {
            *o = v;
        }
    }
    out
}

/// Copies `len < 8` bytes from `src` to `dst` as at most one 4-, one 2- and one 1-byte access,
/// where `copy_nonoverlapping` of a run-time length calls `memcpy` (about 40 instructions): a
/// partial tile's rows.
///
/// # Safety
/// `src` is readable and `dst` writable for `len` bytes; `len < 8`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: *const i8, dst: *mut i8, len: usize) {
    // SAFETY: `src` is readable and `dst` writable for `len < 8` bytes (the contract).
    unsafe {
        debug_assert!(len < 8);
        let mut i = 0;
        if len & 4 != 0 {
            std::ptr::write_unaligned(dst as *mut u32, std::ptr::read_unaligned(src as *const u32));
            i = 4;
        }
        if len & 2 != 0 {
            std::ptr::write_unaligned(dst.add(i) as *mut u16, std::ptr::read_unaligned(src.add(i) as *const u16));
            i += 2;
        }
        if len & 1 != 0 {
            *dst.add(i) = *src.add(i);
        }
    }
}

/// The columns of a `pack_b` group that the 16-column vector code does not cover, one byte at a
/// time: column `c`'s `rows` values from `src` (row stride `stride`) to its `kc` bytes at
/// `dst + (c / nr) · panel + (c % nr) · kc`, zero past `rows`.
///
/// # Safety
/// Every read and write lies within the caller's `src` and packed buffer.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn pack_columns_tail(
    src: *const i8,
    stride: usize,
    rows: usize,
    dst: *mut i8,
    panel: usize,
    cols: std::ops::Range<usize>,
    nr: usize,
    kc: usize,
) {
    // SAFETY: every access lies within the caller's buffers (the contract).
    unsafe {
        for c in cols {
            let d = dst.add((c / nr) * panel + (c % nr) * kc);
            for i in 0..kc {
                *d.add(i) = if i < rows { *src.add(i * stride + c) } else { 0 };
            }
        }
    }
}

/// A convolution computed in place ("implicit GEMM"): the input is interleaved once per run
/// into `[cin / kc][sw][hp][pw][kc]` (padded with the input zero point; `kc` channels of a
/// position together, the kernel's `k` group; the padded columns dealt into `sw` phases by
/// `x % sw`, `pw = ⌈wp / sw⌉` each), so that the `NR` columns of a panel — consecutive output
/// positions of one row — are `NR · kc` contiguous bytes for every (channel group, kernel row,
/// kernel column), at offsets known at load. No im2col and no packing per run; the weights are
/// reordered to that `k` order once. Output rows are split into panels, so a row whose width is
/// not a multiple of `NR` computes a few columns it does not store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DirectConv {
    kc: usize,
    cin: usize,
    h: usize,
    w: usize,
    pads: (usize, usize),
    stride: (usize, usize),
    hp: usize,
    /// Positions per row of a column phase.
    pw: usize,
    /// Byte offset of each `k` group `(channel group, ky, kx)` from a panel's first position.
    koff: Vec<usize>,
    /// With 16 channels per group, stride and dilation 1 along the width and 3 or 5 kernel
    /// columns: the offset of each run of `kw` groups (`koff` of its first), which NEON's tile
    /// reads once.
    runs: Vec<usize>,
    run: usize,
    /// Bytes of the interleaved input, slack included (a scratch row of `w · kc` follows when
    /// `sw > 1`).
    len: usize,
}

impl DirectConv {
    /// The in-place form of a convolution for a kernel with `kc` channels per group and panels
    /// of `nr` columns, where it applies ([`in_place_fits`]: no more than an eighth more
    /// multiply-adds from rounding the channels up to `kc` than im2col's rounding of `k`).
    pub(crate) fn new(geo: &Geometry, kc: usize, nr: usize) -> Option<Self> {
        if !in_place_fits(geo, kc) {
            return None;
        }
        let groups = geo.cin.div_ceil(kc);
        let (sh, sw) = geo.stride;
        let (dh, dw) = geo.dilation;
        let (hp, wp) = (geo.h + geo.pads[0] + geo.pads[2], geo.w + geo.pads[1] + geo.pads[3]);
        let pw = wp.div_ceil(sw);
        let mut koff = Vec::with_capacity(groups * geo.kh * geo.kw);
        for g in 0..groups {
            for ky in 0..geo.kh {
                for kx in 0..geo.kw {
                    // Output column ox reads padded column ox · sw + kx · dw: phase (kx · dw) % sw,
                    // position ox + kx · dw / sw.
                    let (q, x) = ((kx * dw) % sw, (kx * dw) / sw);
                    koff.push((((g * sw + q) * hp + ky * dh) * pw + x) * kc);
                }
            }
        }
        // A row's last panel reads up to `nr − 1` positions past the row: into the next row, or
        // past the last one into this slack.
        let planes = groups * sw * hp * pw * kc + nr * kc;
        let len = planes + if sw > 1 { geo.w * kc } else { 0 };
        let run = if kc == neon::KC && nr == neon::NR && sw == 1 && dw == 1 && matches!(geo.kw, 3 | 5) { geo.kw } else { 0 };
        let runs = if run > 0 { koff.iter().step_by(run).copied().collect() } else { Vec::new() };
        Some(DirectConv { kc, cin: geo.cin, h: geo.h, w: geo.w, pads: (geo.pads[0], geo.pads[1]), stride: (sh, sw), hp, pw, koff, runs, run, len })
    }

    /// The `k` groups per output: channel groups × kernel taps.
    pub(crate) fn k_groups(&self) -> usize {
        self.koff.len()
    }

    /// `k` per output in this form's order: `k` groups × `kc`.
    pub(crate) fn k_len(&self) -> usize {
        self.koff.len() * self.kc
    }

    /// `[m][cin][kh][kw]` weights in this form's `k` order: `[m][k group][kc]`, zero for the
    /// channels past `cin`.
    pub(crate) fn reorder(&self, weights: &[i8], m: usize, taps: usize) -> Vec<i8> {
        let kg = self.koff.len();
        let mut out = vec![0i8; m * kg * self.kc];
        for (r, wr) in weights.chunks_exact(self.cin * taps).enumerate().take(m) {
            for c in 0..self.cin {
                let (g, j) = (c / self.kc, c % self.kc);
                for t in 0..taps {
                    out[(r * kg + g * taps + t) * self.kc + j] = wr[c * taps + t];
                }
            }
        }
        out
    }

    /// Interleaves `x` (`[cin][h][w]`) into `buf`, padded with `zp`.
    ///
    /// # Panics
    /// If `x` is not `cin · h · w` long.
    pub(crate) fn interleave(&self, x: &[i8], zp: i8, buf: &mut Vec<i8>) {
        let (h, w, kc) = (self.h, self.w, self.kc);
        let sw = self.stride.1;
        assert_eq!(x.len(), self.cin * h * w);
        buf.clear();
        buf.resize(self.len, zp);
        // Strides above 1 interleave a row into the scratch row at the end, then deal it.
        let (planes, scratch) = buf.split_at_mut(self.len - if sw > 1 { w * kc } else { 0 });
        for g in 0..self.cin.div_ceil(kc) {
            let c0 = g * kc;
            let nch = (self.cin - c0).min(kc);
            for iy in 0..h {
                let py = iy + self.pads.0;
                let dst = if sw == 1 {
                    let at = ((g * self.hp + py) * self.pw + self.pads.1) * kc;
                    &mut planes[at..at + w * kc]
                } else {
                    &mut scratch[..]
                };
                let src = |c: usize| &x[((c0 + c) * h + iy) * w..][..w];
                match (kc, nch) {
                    (4, 4) => neon::interleave4([src(0), src(1), src(2), src(3)], dst),
                    (16, 16) => neon::interleave16(std::array::from_fn(src), dst),
                    _ => {
                        dst.fill(zp);
                        for c in 0..nch {
                            for (d, &v) in dst[c..].iter_mut().step_by(kc).zip(src(c)) {
                                *d = v;
                            }
                        }
                    }
                }
                if sw > 1 {
                    for (ix, pos) in scratch.chunks_exact(kc).enumerate() {
                        let px = ix + self.pads.1;
                        let at = (((g * sw + px % sw) * self.hp + py) * self.pw + px / sw) * kc;
                        match kc {
                            4 => planes[at..at + 4].copy_from_slice(&pos[..4]),
                            16 => planes[at..at + 16].copy_from_slice(&pos[..16]),
                            _ => planes[at..at + kc].copy_from_slice(pos),
                        }
                    }
                }
            }
        }
    }

    /// The panels of output columns `c0..c0 + ncols` (flat `oy · ow + ox`), `nr` positions each
    /// within one output row, as `[input offset, output column, columns]`.
    pub(crate) fn panels(&self, ow: usize, c0: usize, ncols: usize, nr: usize, list: &mut Vec<[usize; 3]>) {
        list.clear();
        let end = c0 + ncols;
        let mut p = c0;
        while p < end {
            let (oy, xa) = (p / ow, p % ow);
            let xb = ow.min(xa + end - p);
            let mut ox = xa;
            while ox < xb {
                list.push([(oy * self.stride.0 * self.pw + ox) * self.kc, p + ox - xa, (xb - ox).min(nr)]);
                ox += nr;
            }
            p += xb - xa;
        }
    }

    /// Panels over `buf` (interleaved by [`interleave`](Self::interleave)).
    ///
    /// # Panics
    /// If `buf` is not this form's interleaved input, or a panel would read past it.
    pub(crate) fn direct_panels<'a>(&'a self, buf: &'a [i8], list: &'a [[usize; 3]], nr: usize) -> DirectPanels<'a> {
        assert_eq!(buf.len(), self.len);
        let last = self.koff.iter().copied().max().unwrap_or(0);
        assert!(list.iter().all(|&[off, _, _]| off + last + nr * self.kc <= buf.len()), "panel past the interleaved input");
        DirectPanels { base: buf.as_ptr(), koff: &self.koff, list, runs: &self.runs, run: self.run }
    }
}

/// The dense kernel of the `neon` and `dotprod` sets: weights packed in the set's layout (in
/// the in-place form's `k` order when the plan says so).
#[derive(Debug)]
pub(crate) struct ArmDense {
    dot: bool,
    /// NEON: `[m / 4][k / 16][4][16]`; dot product: `[m / 8][k / 4][8][4]`.
    a: Vec<i8>,
    /// The in-place form, when planned.
    direct: Option<DirectConv>,
}

impl ArmDense {
    /// The kernel of `set` (`neon` or `dotprod`) for a layer with `weights` (`[m][k]`).
    pub(crate) fn new(set: KernelSet, plan: &DensePlan, l: &DenseLayer, weights: &[i8]) -> Self {
        let dot = set == KernelSet::Dotprod;
        let (kc, nr) = if dot { (dotprod::KC, dotprod::NR) } else { (neon::KC, neon::NR) };
        let direct = if plan.algorithm == DenseAlgorithm::InPlace { DirectConv::new(&l.geo, kc, nr) } else { None };
        let reordered = direct.as_ref().map(|d| d.reorder(weights, l.m, l.geo.kh * l.geo.kw));
        let (wa, ka) = match (&reordered, &direct) {
            (Some(r), Some(d)) => (&r[..], d.k_len()),
            _ => (weights, l.k),
        };
        let a = if dot { dotprod::pack_a(wa, l.m, ka) } else { neon::pack_a(wa, l.m, ka) };
        ArmDense { dot, a, direct }
    }
}

impl DenseKernel for ArmDense {
    fn held_bytes(&self) -> usize {
        self.a.len()
    }

    fn prepare(&self, l: &DenseLayer, x: &[i8], buf: &mut Vec<i8>) -> bool {
        match &self.direct {
            Some(d) => {
                d.interleave(x, l.x_zp, buf);
                true
            }
            None => false,
        }
    }

    /// Columns packed as int8 in the set's layout, or read in place from `shared` (the in-place
    /// form's interleaved input, see [`DirectConv`]).
    fn block(&self, l: &DenseLayer, x: &[i8], shared: &[i8], c0: usize, ncols: usize, work: &mut Work, out: Out) {
        let Work { packed8, cols, segs, panels, .. } = work;
        let dot = self.dot;
        let rq = &l.requant;
        let n = l.oh * l.ow;
        if let Some(d) = &self.direct {
            trace!("dense.in_place");
            let nr = if dot { dotprod::NR } else { neon::NR };
            d.panels(l.ow, c0, ncols, nr, panels);
            let p = d.direct_panels(shared, panels, nr);
            let kb = d.k_groups();
            // SAFETY: the panels read within `shared` (checked by `direct_panels`) and write this
            // task's columns c0..c0 + ncols (the trait's contract); `dot` only when the CPU has
            // the dot product (`table::dense`).
            unsafe {
                if dot {
                    dotprod::gemm(&self.a, kb, l.m, &p, &l.bias, &rq.scale, rq.zero_point, out, n);
                } else {
                    neon::gemm(&self.a, kb, l.m, &p, &l.bias, &rq.scale, rq.zero_point, out, n);
                }
            }
            return;
        }
        let len = if dot { dotprod::packed_len(l.k, ncols) } else { neon::packed_len(l.k, ncols) };
        // Only grown: packing writes every element that the GEMM's stored columns read.
        if packed8.len() < len {
            packed8.resize(len, 0);
        }
        let (src, stride, start): (&[i8], usize, usize) = if l.geo.is_pointwise() {
            trace!("dense.pointwise");
            (x, n, c0)
        } else {
            trace!("dense.im2col");
            im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, neon::evens);
            (cols, ncols, 0)
        };
        // SAFETY: `src` holds k rows of `stride` bytes covering the columns, `packed8` the packed
        // length; this task owns columns c0..c0 + ncols (the trait's contract); `dot` only when
        // the CPU has the dot product (`table::dense`).
        unsafe {
            if dot {
                let kb = l.k.div_ceil(dotprod::KC);
                dotprod::pack_b(src, l.k, stride, start, ncols, packed8);
                let p = PackedPanels::<{ dotprod::NR * dotprod::KC }, { dotprod::NR }> {
                    packed: packed8.as_ptr(),
                    panel: kb * dotprod::NR * dotprod::KC,
                    ncols,
                    col0: c0,
                };
                dotprod::gemm(&self.a, kb, l.m, &p, &l.bias, &rq.scale, rq.zero_point, out, n);
            } else {
                let kb = l.k.div_ceil(neon::KC);
                neon::pack_b(src, l.k, stride, start, ncols, packed8);
                // A last group of at most 8 real `k` after at least one full one: half its products.
                let (packed, panel) = (packed8.as_ptr(), kb * neon::NR * neon::KC);
                if kb >= 2 && (1..=neon::KC / 2).contains(&(l.k % neon::KC)) {
                    trace!("neon.half");
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }, true> { packed, panel, ncols, col0: c0 };
                    neon::gemm(&self.a, kb, l.m, &p, &l.bias, &rq.scale, rq.zero_point, out, n);
                } else {
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }> { packed, panel, ncols, col0: c0 };
                    neon::gemm(&self.a, kb, l.m, &p, &l.bias, &rq.scale, rq.zero_point, out, n);
                }
            }
        }
    }
}

/// A depthwise convolution's aarch64 form, chosen by the plan: the `sdot` kernel (dot product;
/// strides 1 and 2, no dilation, `kw ≤ 8`) or NEON's (any geometry, weights in −127..=127).
/// Both read raw int8 planes padded with the input zero point ([`planes`]).
#[derive(Debug)]
pub(crate) struct ArmDepthwise {
    plan: DepthwisePlan,
    form: Form,
}

#[derive(Debug)]
enum Form {
    Dot(dotprod::Depthwise),
    Neon(neon::Depthwise),
}

impl ArmDepthwise {
    /// The form `plan` names for `[c][kh·kw]` weights, or `None` if it cannot take them.
    pub(crate) fn new(plan: &DepthwisePlan, l: &DepthwiseLayer, weights: &[i8]) -> Option<Self> {
        let g = &l.geo;
        let form = match plan.form {
            DepthwiseForm::Dot => Form::Dot(dotprod::Depthwise::new(g.kh, g.kw, g.stride, g.dilation, weights, &l.bias, l.x_zp)?),
            DepthwiseForm::Neon => Form::Neon(neon::Depthwise::new(g.kh * g.kw, weights, &l.bias, l.x_zp)?),
            DepthwiseForm::Planes16 => return None,
        };
        Some(ArmDepthwise { plan: *plan, form })
    }
}

impl DepthwiseKernel for ArmDepthwise {
    fn held_bytes(&self) -> usize {
        match &self.form {
            Form::Dot(d) => d.held_bytes(),
            Form::Neon(d) => d.held_bytes(),
        }
    }

    fn channels(&self, l: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work) {
        // SAFETY: the dot-product form exists only when the CPU has it (`table::depthwise`);
        // NEON is part of aarch64; this task alone writes the planes of `channels` (the
        // trait's contract).
        unsafe {
            match &self.form {
                Form::Dot(d) => {
                    trace!("dw.dot");
                    planes::run(d, &self.plan, l, x, out, channels, work)
                }
                Form::Neon(d) => {
                    trace!("dw.neon");
                    planes::run(d, &self.plan, l, x, out, channels, work)
                }
            }
        }
    }
}

impl PlaneForm for dotprod::Depthwise {
    const SLACK: usize = dotprod::Depthwise::SLACK;

    #[inline(always)]
    fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
        neon::copy_rows(src, src_pitch, dst, dst_pitch, width, rows)
    }

    #[inline(always)]
    fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize) {
        neon::deal_plane(src, w, h, planes, hp, pw, pt, pl)
    }

    #[inline(always)]
    unsafe fn channel(
        &self,
        c: usize,
        planes: &[i8],
        _taps: &TapOffsets,
        pw: usize,
        row_step: usize,
        scale: f32,
        zp: i32,
        rows: usize,
        cols: usize,
        dst: &mut [i8],
    ) {
        // SAFETY: the CPU has the dot product (this function's contract).
        unsafe { self.channel(dotprod::Channel { c, planes, pw, row_step, scale, zp, oh: rows, ow: cols, out: dst }) }
    }
}

impl PlaneForm for neon::Depthwise {
    /// The dot product's slack, as both forms always shared one plane buffer size.
    const SLACK: usize = dotprod::Depthwise::SLACK;

    #[inline(always)]
    fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
        neon::copy_rows(src, src_pitch, dst, dst_pitch, width, rows)
    }

    #[inline(always)]
    fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize) {
        neon::deal_plane(src, w, h, planes, hp, pw, pt, pl)
    }

    #[inline(always)]
    unsafe fn channel(
        &self,
        c: usize,
        planes: &[i8],
        taps: &TapOffsets,
        _pw: usize,
        row_step: usize,
        scale: f32,
        zp: i32,
        rows: usize,
        cols: usize,
        dst: &mut [i8],
    ) {
        self.channel(c, planes, taps, row_step, scale, zp, rows, cols, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::{dotprod, neon};
    use crate::kernels::plan::{Target, Tile};
    use crate::kernels::KernelSet;

    /// The planner's tiles (which the generated kernel tests take their cases from) are the
    /// kernels' own constants.
    #[test]
    fn planner_tiles_are_the_kernels() {
        assert_eq!(Tile::dense(Target::host(KernelSet::Neon)), Tile { mr: neon::MR, nr: neon::NR, kc: neon::KC, panels: 1 });
        assert_eq!(Tile::dense(Target::host(KernelSet::Dotprod)), Tile { mr: dotprod::MR, nr: dotprod::NR, kc: dotprod::KC, panels: 1 });
    }
}
