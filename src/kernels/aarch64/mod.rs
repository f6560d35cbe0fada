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
pub(crate) mod in_place;
#[allow(unsafe_op_in_unsafe_fn)]
pub(crate) mod neon;
pub(crate) mod panels;
pub(crate) mod winograd;

use std::ops::Range;

use crate::kernels::isa::KernelSet;
use crate::kernels::layers::{bytes, bytes_mut, row_blocks, DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer};
use crate::kernels::packing::im2col;
use crate::kernels::plan::{DenseAlgorithm, DensePlan, DepthwiseForm, DepthwisePlan};
use crate::kernels::planes::{self, PlaneForm, PlaneRows, TapOffsets};
use crate::kernels::tasks::{Out, Parallel, Work};
use in_place::DirectConv;
use panels::PackedPanels;

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

    fn prepare(&self, l: &DenseLayer, x: &[i8], buf: &mut Vec<i8>, par: &dyn Parallel) -> bool {
        match &self.direct {
            Some(d) => {
                d.interleave(x, l.x_zp, buf, par);
                true
            }
            None => false,
        }
    }

    /// Nothing for the in-place form, which reads `shared` (see [`DirectConv`]).
    fn packed_len(&self, l: &DenseLayer, ncols: usize) -> Option<usize> {
        match (&self.direct, self.dot) {
            (Some(_), _) => None,
            (None, true) => Some(dotprod::packed_len(l.k, ncols).div_ceil(2)),
            (None, false) => Some(neon::packed_len(l.k, ncols).div_ceil(2)),
        }
    }

    /// Columns packed as int8 in the set's layout, from `x` directly when pointwise, else
    /// through im2col.
    fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        let Work { cols, segs, .. } = work;
        let n = l.oh * l.ow;
        let (src, stride, start): (&[i8], usize, usize) = if l.geo.is_pointwise() {
            trace!("dense.pointwise");
            (x, n, c0)
        } else {
            trace!("dense.im2col");
            im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, neon::evens);
            (cols, ncols, 0)
        };
        let dst = bytes_mut(dst);
        // SAFETY: `src` holds k rows of `stride` bytes covering the columns and `dst` the packed
        // length (`packed_len`); `dot` only when the CPU has the dot product (`table::dense`).
        unsafe {
            if self.dot {
                dotprod::pack_b(src, l.k, stride, start, ncols, dst);
            } else {
                neon::pack_b(src, l.k, stride, start, ncols, dst);
            }
        }
    }

    /// The packed columns, or those read in place from `shared` (the in-place form's
    /// interleaved input, see [`DirectConv`]), by the weights of `rows`.
    fn gemm(&self, l: &DenseLayer, shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        let dot = self.dot;
        let rq = &l.requant;
        let n = l.oh * l.ow;
        // The GEMMs run rows 0..m of what they are given: give them `rows` alone (weights from
        // its first row block on, its biases and scales, the output from its first row).
        let (mr, kc) = if dot { (dotprod::MR, dotprod::KC) } else { (neon::MR, neon::KC) };
        let first = row_blocks(rows.clone(), mr).start;
        let m = rows.len();
        let (bias, scale, out) = (&l.bias[rows.clone()], &rq.scale[rows.clone()], out.from(rows.start * n));
        let a = |kb: usize| &self.a[first * kb * mr * kc..];
        if let Some(d) = &self.direct {
            trace!("dense.in_place");
            let nr = if dot { dotprod::NR } else { neon::NR };
            d.panels(l.ow, c0, ncols, nr, &mut work.panels);
            let p = d.direct_panels(shared, &work.panels, nr);
            let kb = d.k_groups();
            // SAFETY: the panels read within `shared` (checked by `direct_panels`) and write this
            // task's columns c0..c0 + ncols of `rows` (the trait's contract); `dot` only when
            // the CPU has the dot product (`table::dense`).
            unsafe {
                if dot {
                    dotprod::gemm(a(kb), kb, m, &p, bias, scale, rq.zero_point, out, n);
                } else {
                    neon::gemm(a(kb), kb, m, &p, bias, scale, rq.zero_point, out, n);
                }
            }
            return;
        }
        let packed = bytes(packed);
        let len = if dot { dotprod::packed_len(l.k, ncols) } else { neon::packed_len(l.k, ncols) };
        assert!(packed.len() >= len, "{} packed bytes for {ncols} columns", packed.len());
        // SAFETY: `packed` holds the packed panels of the columns (asserted); this task owns
        // columns c0..c0 + ncols of `rows` (the trait's contract); `dot` only when the CPU has
        // the dot product (`table::dense`).
        unsafe {
            if dot {
                let kb = l.k.div_ceil(dotprod::KC);
                let p = PackedPanels::<{ dotprod::NR * dotprod::KC }, { dotprod::NR }> {
                    packed: packed.as_ptr(),
                    panel: kb * dotprod::NR * dotprod::KC,
                    ncols,
                    col0: c0,
                };
                dotprod::gemm(a(kb), kb, m, &p, bias, scale, rq.zero_point, out, n);
            } else {
                let kb = l.k.div_ceil(neon::KC);
                // A last group of at most 8 real `k` after at least one full one: half its products.
                let (packed, panel) = (packed.as_ptr(), kb * neon::NR * neon::KC);
                if kb >= 2 && (1..=neon::KC / 2).contains(&(l.k % neon::KC)) {
                    trace!("neon.half");
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }, true> { packed, panel, ncols, col0: c0 };
                    neon::gemm(a(kb), kb, m, &p, bias, scale, rq.zero_point, out, n);
                } else {
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }> { packed, panel, ncols, col0: c0 };
                    neon::gemm(a(kb), kb, m, &p, bias, scale, rq.zero_point, out, n);
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
            DepthwiseForm::Planes16 | DepthwiseForm::Vnni => return None,
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

/// aarch64's row moves: NEON's (`neon/rows.rs`).
pub(crate) struct NeonRows;

impl PlaneRows for NeonRows {
    #[inline(always)]
    fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
        neon::copy_rows(src, src_pitch, dst, dst_pitch, width, rows)
    }

    #[inline(always)]
    fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize) {
        neon::deal_plane(src, w, h, planes, hp, pw, pt, pl)
    }
}

impl PlaneForm for dotprod::Depthwise {
    const SLACK: usize = dotprod::Depthwise::SLACK;
    type Rows = NeonRows;

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
    type Rows = NeonRows;

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
