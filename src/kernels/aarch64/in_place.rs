//! The in-place form of a convolution on aarch64 ("implicit GEMM"): the channel-interleaved
//! input and the panels that read it ([`DirectConv`]).

use super::neon::{interleave16, interleave4};
use super::panels::DirectPanels;
use crate::kernels::geometry::Geometry;
use crate::kernels::plan::{self, in_place_fits};
use crate::kernels::tasks::{par_chunks_mut, with_work, Parallel};

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
    /// Bytes of the interleaved input, slack included.
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
        let len = groups * sw * hp * pw * kc + nr * kc;
        let run = if kc == super::neon::KC && nr == super::neon::NR && sw == 1 && dw == 1 && matches!(geo.kw, 3 | 5) { geo.kw } else { 0 };
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

    /// Interleaves `x` (`[cin][h][w]`) into `buf`, padded with `zp`: each group of `kc`
    /// channels writes a region of its own, so groups run as tasks of `par` (the planner's
    /// [`channel_split`](crate::kernels::plan::channel_split)).
    ///
    /// # Panics
    /// If `x` is not `cin · h · w` long.
    pub(crate) fn interleave(&self, x: &[i8], zp: i8, buf: &mut Vec<i8>, par: &dyn Parallel) {
        assert_eq!(x.len(), self.cin * self.h * self.w);
        let groups = self.cin.div_ceil(self.kc);
        let group = self.stride.1 * self.hp * self.pw * self.kc;
        // Exactly `len` (within its capacity once grown: no allocation); every byte is written
        // below, the slack with `zp`.
        buf.resize(self.len, zp);
        buf[groups * group..self.len].fill(zp);
        let (per, tasks) = plan::channel_split(groups, group, par.threads());
        let planes = &mut buf[..groups * group];
        if tasks <= 1 {
            return with_work(|work| planes.chunks_exact_mut(group).enumerate().for_each(|(g, dst)| self.interleave_group(x, zp, g, dst, &mut work.cols)));
        }
        par_chunks_mut(planes, per * group, par, &|i, chunk| {
            with_work(|work| chunk.chunks_exact_mut(group).enumerate().for_each(|(j, dst)| self.interleave_group(x, zp, i * per + j, dst, &mut work.cols)))
        })
    }

    /// Channel group `g` of `x` into its region `dst` (`[sw][hp][pw][kc]`), padded with `zp`;
    /// `scratch` holds a row while strides above 1 deal it into the column phases.
    fn interleave_group(&self, x: &[i8], zp: i8, g: usize, dst: &mut [i8], scratch: &mut Vec<i8>) {
        let (h, w, kc) = (self.h, self.w, self.kc);
        let sw = self.stride.1;
        dst.fill(zp);
        if sw > 1 && scratch.len() < w * kc {
            scratch.resize(w * kc, 0);
        }
        let c0 = g * kc;
        let nch = (self.cin - c0).min(kc);
        for iy in 0..h {
            let py = iy + self.pads.0;
            let row = if sw == 1 {
                let at = (py * self.pw + self.pads.1) * kc;
                &mut dst[at..at + w * kc]
            } else {
                &mut scratch[..w * kc]
            };
            let src = |c: usize| &x[((c0 + c) * h + iy) * w..][..w];
            match (kc, nch) {
                (4, 4) => interleave4([src(0), src(1), src(2), src(3)], row),
                (16, 16) => interleave16(std::array::from_fn(src), row),
                _ => {
                    row.fill(zp);
                    for c in 0..nch {
                        for (d, &v) in row[c..].iter_mut().step_by(kc).zip(src(c)) {
                            *d = v;
                        }
                    }
                }
            }
            if sw > 1 {
                for (ix, pos) in scratch[..w * kc].chunks_exact(kc).enumerate() {
                    let px = ix + self.pads.1;
                    let at = (((px % sw) * self.hp + py) * self.pw + px / sw) * kc;
                    match kc {
                        4 => dst[at..at + 4].copy_from_slice(&pos[..4]),
                        16 => dst[at..at + 16].copy_from_slice(&pos[..16]),
                        _ => dst[at..at + kc].copy_from_slice(pos),
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
