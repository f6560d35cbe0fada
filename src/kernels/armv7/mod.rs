//! 32-bit ARM (armv7) kernels: the `neon` set, NEON detected at run time. The dense GEMM and
//! the depthwise form are NEON `asm!` ([`neon`]); the element-wise kernels are portable.

pub(crate) mod neon;

use std::ops::Range;

use crate::kernels::layers::{bytes, bytes_mut, row_blocks, DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer};
use crate::kernels::packing::{im2col, no_evens};
use crate::kernels::plan::{DepthwiseForm, DepthwisePlan};
use crate::kernels::planes::{self, PlaneForm, PlaneRows, TapOffsets};
use crate::kernels::tasks::{Out, Work};

/// The dense kernel of armv7's `neon` set: weights `[m / 4][k / 16][4][16]`.
#[derive(Debug)]
pub(crate) struct Armv7Dense {
    a: Vec<i8>,
}

impl Armv7Dense {
    /// The kernel for a layer with `weights` (`[m][k]`).
    pub(crate) fn new(l: &DenseLayer, weights: &[i8]) -> Self {
        Armv7Dense { a: neon::pack_a(weights, l.m, l.k) }
    }
}

impl DenseKernel for Armv7Dense {
    fn held_bytes(&self) -> usize {
        self.a.len()
    }

    fn packed_len(&self, l: &DenseLayer, ncols: usize) -> Option<usize> {
        Some(neon::packed_len(l.k, ncols).div_ceil(2))
    }

    /// Columns packed as int8 in the kernel's layout (from `x` directly when pointwise, else
    /// through im2col).
    fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        let dst = bytes_mut(dst);
        // SAFETY: `x` (or the im2col columns) holds k rows covering the columns and `dst` the
        // packed length (`packed_len`).
        unsafe {
            if l.geo.is_pointwise() {
                trace!("dense.pointwise");
                neon::pack_b(x, l.k, l.oh * l.ow, c0, ncols, dst);
            } else {
                trace!("dense.im2col");
                let Work { cols, segs, .. } = work;
                im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, no_evens);
                neon::pack_b(cols, l.k, ncols, 0, ncols, dst);
            }
        }
    }

    fn gemm(&self, l: &DenseLayer, _shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, _work: &mut Work, out: Out) {
        let rq = &l.requant;
        let n = l.oh * l.ow;
        // The GEMM runs rows 0..m of what it is given: `rows` alone (weights from its first
        // row block on, its biases and scales, the output from its first row).
        let kb = l.k.div_ceil(neon::KC);
        let a = &self.a[row_blocks(rows.clone(), neon::MR).start * kb * neon::MR * neon::KC..];
        let out = out.from(rows.start * n);
        // SAFETY: the table builds this kernel only when the CPU has NEON with 32 double
        // registers (`table::dense`, `KernelSet::available`); `packed` holds the panels of the
        // columns; this task owns columns c0..c0 + ncols of `rows` (the trait's contract).
        unsafe { neon::gemm(a, kb, rows.len(), bytes(packed), ncols, &l.bias[rows.clone()], &rq.scale[rows], rq.zero_point, out, n, c0) }
    }
}

/// A depthwise layer's armv7 form: NEON's, for any geometry and weights in −127..=127, on raw
/// int8 planes padded with the input zero point ([`planes`]).
#[derive(Debug)]
pub(crate) struct Armv7Depthwise {
    plan: DepthwisePlan,
    form: neon::Depthwise,
}

impl Armv7Depthwise {
    /// The form `plan` names for `[c][kh·kw]` weights, or `None` if it cannot take them.
    pub(crate) fn new(plan: &DepthwisePlan, l: &DepthwiseLayer, weights: &[i8]) -> Option<Self> {
        if plan.form != DepthwiseForm::Neon {
            return None;
        }
        let form = neon::Depthwise::new(l.geo.kh * l.geo.kw, weights, &l.bias, l.x_zp)?;
        Some(Armv7Depthwise { plan: *plan, form })
    }
}

impl DepthwiseKernel for Armv7Depthwise {
    fn held_bytes(&self) -> usize {
        self.form.held_bytes()
    }

    fn channels(&self, l: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work) {
        trace!("dw.neon");
        // SAFETY: the table builds this form only when the CPU has NEON with 32 double
        // registers; this task alone writes the planes of `channels` (the trait's contract).
        unsafe { planes::run(&self.form, &self.plan, l, x, out, channels, work) }
    }
}

/// armv7's row moves (`neon.rs`).
pub(crate) struct Armv7Rows;

impl PlaneRows for Armv7Rows {
    #[inline(always)]
    fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
        neon::copy_rows(src, src_pitch, dst, dst_pitch, width, rows)
    }

    #[inline(always)]
    fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize) {
        for (iy, srow) in src.chunks_exact(w.max(1)).enumerate().take(h) {
            let (even, odd) = stride2_phases(planes, hp, pw, iy + pt, pl);
            neon::deal_row(srow, even, odd);
        }
    }
}

impl PlaneForm for neon::Depthwise {
    const SLACK: usize = 16;
    type Rows = Armv7Rows;

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
        // SAFETY: the CPU has NEON with 32 double registers (this function's contract).
        unsafe { self.channel(c, planes, taps, row_step, scale, zp, rows, cols, dst) }
    }
}

/// Where input row `py` of a stride-2 depthwise plane goes: the padded row is split into two
/// column phases (`x % 2`, `[2][hp][pw]`), and column `x = pl + ix` (left padding `pl`) lands
/// at index `x / 2` of phase `x % 2`. Returns the runs receiving the even `ix` and the odd `ix`,
/// each starting at the first such column.
fn stride2_phases<T>(planes: &mut [T], hp: usize, pw: usize, py: usize, pl: usize) -> (&mut [T], &mut [T]) {
    let (lower, upper) = planes.split_at_mut((hp + py) * pw);
    let (p0, p1) = (&mut lower[py * pw..(py + 1) * pw], &mut upper[..pw]);
    if pl.is_multiple_of(2) {
        (&mut p0[pl / 2..], &mut p1[pl / 2..])
    } else {
        (&mut p1[pl / 2..], &mut p0[pl.div_ceil(2)..])
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::plan::{Target, Tile};
    use crate::kernels::KernelSet;

    /// The planner's tile for armv7 NEON is the kernel's own constants.
    #[test]
    fn planner_tile_is_the_kernels() {
        assert_eq!(Tile::dense(Target::host(KernelSet::Neon)), Tile { mr: super::neon::MR, nr: super::neon::NR, kc: super::neon::KC, panels: 1 });
    }
}
