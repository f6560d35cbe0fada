//! The portable kernels: plain Rust, auto-vectorised for the build's baseline. They run
//! everywhere and are the reference every other kernel set is tested against (besides the i64
//! oracle of `kernels::reference`). The AVX2 set compiles the same code with AVX2 enabled where
//! it has no micro-kernel of its own, and shares this module's dense packed layout.
//!
//! - Dense: the input, or its im2col columns for k×k convs, is packed into panels of 8 columns
//!   with pairs of input channels interleaved as i16, and multiplied by the weights packed the
//!   same way in 4-row blocks ([`PairPacked`]).
//! - Depthwise: a direct convolution per channel over a zero-point-subtracted, zero-padded i16
//!   plane, vectorised along output rows ([`Planes16`]).

use std::ops::Range;

use super::layers::{row_blocks, DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer, Elementwise};
use super::packing::{im2col, no_evens};
use super::plan::{PAIR_MR as MR, PAIR_NR as NR};
use super::requant::{clamp, round_small};
use super::tasks::{Out, Work};

/// Output columns per depthwise register tile.
pub(crate) const DW_TILE: usize = 16;

/// The element-wise kernels of the portable set.
pub(crate) const ELEMENTWISE: Elementwise =
    Elementwise { quantize: quantize_body, dequantize: dequantize_body, quantized_add: quantized_add_body, lookup: lookup_body };

/// The portable lookup (see `kernels::elementwise`).
#[inline(always)]
pub(crate) fn lookup_body(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = table[v as u8 as usize];
    }
}

/// The portable quantize (see `kernels::elementwise`).
#[inline(always)]
pub(crate) fn quantize_body(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    let z = i32::from(zp);
    let (lo, hi) = ((-128 - z) as f32, (127 - z) as f32);
    for (o, &v) in y.iter_mut().zip(x) {
        let v = clamp(v / scale, lo, hi);
        *o = (round_small(v) + z) as i8;
    }
}

/// The portable dequantize (see `kernels::elementwise`).
#[inline(always)]
pub(crate) fn dequantize_body(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    let z = i32::from(zp);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (i32::from(v) - z) as f32 * scale;
    }
}

/// The portable quantized add (see `kernels::elementwise`).
#[inline(always)]
pub(crate) fn quantized_add_body(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    let (za, zb, z) = (i32::from(qa.1), i32::from(qb.1), i32::from(qy.1));
    let (lo, hi) = ((-128 - z) as f32, (127 - z) as f32);
    for ((o, &va), &vb) in y.iter_mut().zip(a).zip(b) {
        let v = (i32::from(va) - za) as f32 * qa.0 + (i32::from(vb) - zb) as f32 * qb.0;
        let v = clamp(v / qy.0, lo, hi);
        *o = (round_small(v) + z) as i8;
    }
}

/// Dense weights in the i16-pair layout: `[m / MR][kp / 2][MR][2]` int8, for each row block and
/// pair of input positions the pair of every row, widened to i16 pairs one row block at a time
/// (the portable and AVX2 GEMMs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PairPacked {
    pub(crate) a: Vec<i8>,
}

impl PairPacked {
    /// Packs `[m][k]` weights (`layer.kp` is `k` rounded up to even).
    pub(crate) fn new(layer: &DenseLayer, weights: &[i8]) -> Self {
        let (m, k, kp) = (layer.m, layer.k, layer.kp);
        let blocks = m.div_ceil(MR);
        let mut a = vec![0i8; blocks * kp * MR];
        for row in 0..m {
            let wr = &weights[row * k..(row + 1) * k];
            let (blk, r) = (row / MR, row % MR);
            for kk in 0..kp / 2 {
                let at = ((blk * (kp / 2) + kk) * MR + r) * 2;
                a[at] = wr[2 * kk];
                a[at + 1] = wr.get(2 * kk + 1).copied().unwrap_or(0);
            }
        }
        PairPacked { a }
    }

    /// Row block `blk` of the weights as words of two i16 (the even position in the low half),
    /// the operand `vpmaddwd` broadcasts.
    #[inline(always)]
    pub(crate) fn widen_block<'w>(&self, layer: &DenseLayer, blk: usize, wide: &'w mut Vec<u32>) -> &'w [u32] {
        let words = (layer.kp / 2) * MR;
        let src = &self.a[blk * words * 2..(blk + 1) * words * 2];
        wide.clear();
        wide.extend(src.chunks_exact(2).map(|p| (p[0] as i16 as u16 as u32) | ((p[1] as i16 as u16 as u32) << 16)));
        wide
    }
}

/// A register tile's accumulators requantised and stored: rows `row0..row0 + MR` (those below
/// `m`), columns `col0..col0 + cols` of output rows of `n`.
#[inline(always)]
pub(crate) fn store_tile(layer: &DenseLayer, acc: &[[i32; 2 * NR]; MR], row0: usize, col0: usize, cols: usize, n: usize, y: Out) {
    for (r, acc_r) in acc.iter().enumerate() {
        let row = row0 + r;
        if row >= layer.m {
            break;
        }
        // SAFETY: this task owns columns col0.. of its rows (`DenseKernel::gemm`'s contract).
        let out = unsafe { y.slice(row * n + col0, cols) };
        layer.requant.row(&acc_r[..cols], layer.bias[row], layer.requant.scale[row], out);
    }
}

/// The portable dense kernel.
#[derive(Debug)]
pub(crate) struct Dense(pub(crate) PairPacked);

impl DenseKernel for Dense {
    fn held_bytes(&self) -> usize {
        self.0.a.len()
    }

    fn packed_len(&self, l: &DenseLayer, ncols: usize) -> Option<usize> {
        Some(ncols.div_ceil(NR) * (l.kp / 2) * NR * 2)
    }

    /// Straight from `x` for a pointwise convolution, else through an im2col of just those
    /// columns (small enough to stay in cache).
    fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        if l.geo.is_pointwise() {
            trace!("dense.pointwise");
            pack_b(x, l.k, l.oh * l.ow, l.kp, c0, ncols, dst);
        } else {
            trace!("dense.im2col");
            let Work { cols, segs, .. } = work;
            im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, no_evens);
            pack_b(cols, l.k, ncols, l.kp, 0, ncols, dst);
        }
    }

    fn gemm(&self, l: &DenseLayer, _shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        trace!("portable.gemm");
        gemm(l, &self.0, packed, &mut work.wide, rows, c0, ncols, l.oh * l.ow, out);
    }
}

/// The GEMM of the row blocks of `rows` by the packed columns `col0..col0 + ncols`,
/// requantised into `y` (rows of `n`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm(l: &DenseLayer, w: &PairPacked, packed: &[i16], wide: &mut Vec<u32>, rows: Range<usize>, col0: usize, ncols: usize, n: usize, y: Out) {
    let kh = l.kp / 2;
    let panel_len = kh * NR * 2;
    let panels = ncols.div_ceil(NR);
    for blk in row_blocks(rows, MR) {
        let a = w.widen_block(l, blk, wide);
        let mut p = 0;
        while p < panels {
            let two = p + 1 < panels;
            let b0 = &packed[p * panel_len..(p + 1) * panel_len];
            let b1 = if two { &packed[(p + 1) * panel_len..(p + 2) * panel_len] } else { b0 };
            let mut acc = [[0i32; 2 * NR]; MR];
            for kk in 0..kh {
                let bb0 = &b0[kk * 2 * NR..(kk + 1) * 2 * NR];
                let bb1 = &b1[kk * 2 * NR..(kk + 1) * 2 * NR];
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let w = a[kk * MR + r];
                    let (lo, hi) = (i32::from(w as u16 as i16), i32::from((w >> 16) as u16 as i16));
                    for j in 0..NR {
                        acc_r[j] += lo * i32::from(bb0[2 * j]) + hi * i32::from(bb0[2 * j + 1]);
                        acc_r[NR + j] += lo * i32::from(bb1[2 * j]) + hi * i32::from(bb1[2 * j + 1]);
                    }
                }
            }
            let cols = (ncols - p * NR).min(if two { 2 * NR } else { NR });
            store_tile(l, &acc, blk * MR, col0 + p * NR, cols, n, y);
            p += 2;
        }
    }
}

/// Packs columns `c0..c0 + ncols` of `[k][n]` int8 columns into panels of 8 columns:
/// `[panel][k/2][8][2]` i16, pairs of rows interleaved, zero beyond `k` and the block.
#[inline(always)]
pub(crate) fn pack_b(cols: &[i8], k: usize, n: usize, kp: usize, c0: usize, ncols: usize, packed: &mut [i16]) {
    let kh = kp / 2;
    for p in 0..ncols.div_ceil(NR) {
        let pc = c0 + p * NR;
        let width = (c0 + ncols - pc).min(NR);
        let panel = &mut packed[p * kh * NR * 2..(p + 1) * kh * NR * 2];
        for kk in 0..kh {
            // Infallible (here and below): the slices are exactly that long.
            let dst: &mut [i16; 2 * NR] = (&mut panel[kk * NR * 2..(kk + 1) * NR * 2]).try_into().unwrap();
            let r0 = &cols[2 * kk * n + pc..];
            let r1 = if 2 * kk + 1 < k { Some(&cols[(2 * kk + 1) * n + pc..]) } else { None };
            if width == NR {
                let r0: &[i8; NR] = r0[..NR].try_into().unwrap();
                match r1 {
                    Some(r1) => {
                        let r1: &[i8; NR] = r1[..NR].try_into().unwrap();
                        for j in 0..NR {
                            dst[2 * j] = i16::from(r0[j]);
                            dst[2 * j + 1] = i16::from(r1[j]);
                        }
                    }
                    None => {
                        for j in 0..NR {
                            dst[2 * j] = i16::from(r0[j]);
                            dst[2 * j + 1] = 0;
                        }
                    }
                }
            } else {
                dst.fill(0);
                for j in 0..width {
                    dst[2 * j] = i16::from(r0[j]);
                    dst[2 * j + 1] = r1.map_or(0, |r| i16::from(r[j]));
                }
            }
        }
    }
}

/// The depthwise form of the portable and AVX2 sets: weights `[c][kh·kw]` widened to i32.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planes16 {
    pub(crate) weights: Vec<i32>,
}

impl Planes16 {
    /// The form of `[c][kh·kw]` weights.
    pub(crate) fn new(weights: &[i8]) -> Self {
        Planes16 { weights: weights.iter().map(|&v| i32::from(v)).collect() }
    }

    /// The output planes of `channels`: each channel's zero-point-subtracted plane padded with
    /// zeros (split into column phases for strides above 1), then 16 outputs per tile in i32.
    #[inline(always)]
    pub(crate) fn channels(&self, l: &DepthwiseLayer, x: &[i8], y: Out, channels: Range<usize>, work: &mut Work) {
        trace!("dw.planes16");
        let g = &l.geo;
        let (hp, wp) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
        let (sh, sw) = g.stride;
        let (dh, dw) = g.dilation;
        let (oh, ow) = (l.oh, l.ow);
        let taps = g.kh * g.kw;
        let zx = i16::from(l.x_zp);
        // The padded plane split into `sw` column phases, so that every tap reads a contiguous
        // run: column `x` of the padded plane is at `phase x % sw`, index `x / sw`.
        let pw = wp.div_ceil(sw);
        work.packed.clear();
        work.packed.resize(sw * hp * pw + DW_TILE, 0);
        for c in channels {
            let planes = &mut work.packed;
            let src = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for iy in 0..g.h {
                let srow = &src[iy * g.w..(iy + 1) * g.w];
                let py = iy + g.pads[0];
                if sw == 1 {
                    let dst = &mut planes[py * pw + g.pads[1]..][..g.w];
                    for (d, &s) in dst.iter_mut().zip(srow) {
                        *d = i16::from(s) - zx;
                    }
                } else {
                    // The padded row in order, then dealt out to the phases.
                    let row = &mut work.row;
                    row.clear();
                    row.resize(pw * sw, 0);
                    for (d, &s) in row[g.pads[1]..g.pads[1] + g.w].iter_mut().zip(srow) {
                        *d = i16::from(s) - zx;
                    }
                    if sw == 2 {
                        let (lower, upper) = planes.split_at_mut((hp + py) * pw);
                        let p0 = &mut lower[py * pw..(py + 1) * pw];
                        let p1 = &mut upper[..pw];
                        for ((d0, d1), pair) in p0.iter_mut().zip(p1.iter_mut()).zip(row.chunks_exact(2)) {
                            *d0 = pair[0];
                            *d1 = pair[1];
                        }
                    } else {
                        for (x, &v) in row.iter().enumerate() {
                            planes[((x % sw) * hp + py) * pw + x / sw] = v;
                        }
                    }
                }
            }
            let w = &self.weights[c * taps..(c + 1) * taps];
            let scale = l.requant.scale[c];
            // Start offset of each tap in the phase planes, relative to output row 0, column 0.
            let offsets = &mut work.offsets;
            offsets.clear();
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let px = kx * dw;
                    offsets.push(((px % sw) * hp + ky * dh) * pw + px / sw);
                }
            }
            for oy in 0..oh {
                let row0 = oy * sh * pw;
                // SAFETY: channel c belongs to this task only (see `run_par`).
                let out = unsafe { y.slice((c * oh + oy) * ow, ow) };
                // 16 outputs at a time with the accumulators in registers; the last tile may
                // read past the row (into the next one or the slack), and stores only its part.
                let mut ox = 0;
                while ox < ow {
                    let n = (ow - ox).min(DW_TILE);
                    let mut acc = [l.bias[c]; DW_TILE];
                    for (&wv, &off) in w.iter().zip(offsets.iter()) {
                        let r = &planes[row0 + off + ox..][..DW_TILE];
                        for j in 0..DW_TILE {
                            acc[j] += wv * i32::from(r[j]);
                        }
                    }
                    l.requant.row(&acc[..n], 0, scale, &mut out[ox..ox + n]);
                    ox += DW_TILE;
                }
            }
            // Padding stays zero; only the interior is rewritten for the next channel.
        }
    }
}

impl DepthwiseKernel for Planes16 {
    fn held_bytes(&self) -> usize {
        4 * self.weights.len()
    }

    fn channels(&self, layer: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work) {
        Planes16::channels(self, layer, x, out, channels, work)
    }
}
