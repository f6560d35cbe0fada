//! The padded planes of the ARM depthwise forms (aarch64 NEON and dot product, armv7 NEON):
//! each channel's raw int8 plane padded with the input zero point (split into column phases
//! for strides above 1 where the form reads contiguous runs), rows copied or dealt with the
//! form's vector code; a stride-1 layer whose rows are narrow runs "flat" into a scratch run
//! copied back to rows ([`flat_pays`](super::plan::flat_pays)). What differs per form is a
//! [`PlaneForm`].

use std::ops::Range;

use super::layers::DepthwiseLayer;
use super::plan::DepthwisePlan;
use super::tasks::{Out, Work};

/// How an architecture moves rows into the padded planes (its vector code).
pub(crate) trait PlaneRows {
    /// Copies `rows` rows of `width` bytes from `src` (pitch `src_pitch`) to `dst` (pitch
    /// `dst_pitch`).
    fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize);

    /// Deals a `w × h` plane into the two column phases of a stride-2 padded plane
    /// (`[2][hp][pw]`, top padding `pt`, left `pl`).
    #[allow(clippy::too_many_arguments)]
    fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize);
}

/// What a depthwise form supplies to [`run`].
pub(crate) trait PlaneForm {
    /// Bytes a tile may read past the last row's start of its last output.
    const SLACK: usize;

    /// The row moves of the form's architecture.
    type Rows: PlaneRows;

    /// One channel `c`: `dst[oy][ox]` for `rows × cols` outputs, output `(oy, ox)` reading tap
    /// `t` at `planes[oy · row_step + taps.offsets()[t] + ox]` (phase planes of pitch `pw`).
    ///
    /// # Safety
    /// The CPU has the form's instructions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn channel(
        &self,
        c: usize,
        planes: &[i8],
        taps: &TapOffsets,
        pw: usize,
        row_step: usize,
        scale: f32,
        zp: i32,
        rows: usize,
        cols: usize,
        dst: &mut [i8],
    );
}

/// The output planes of `channels` with the form `form`, laid out as `plan` says.
///
/// # Safety
/// The CPU has the form's instructions, and no other task writes those planes meanwhile.
#[inline(always)]
pub(crate) unsafe fn run<F: PlaneForm>(form: &F, plan: &DepthwisePlan, l: &DepthwiseLayer, x: &[i8], y: Out, channels: Range<usize>, work: &mut Work) {
    let g = &l.geo;
    let (hp, wp) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
    let sh = g.stride.0;
    let (dh, dw) = g.dilation;
    let (oh, ow) = (l.oh, l.ow);
    if oh == 0 || ow == 0 {
        return;
    }
    let phases = plan.phases;
    let pw = wp.div_ceil(phases);
    let flat = plan.flat;
    if flat {
        trace!("dw.flat");
    }
    let Work { packed8: planes, cols: scratch, offsets, .. } = work;
    planes.clear();
    planes.resize(phases * hp * pw + F::SLACK, l.x_zp);
    if flat && scratch.len() < (oh - 1) * pw + ow {
        scratch.resize((oh - 1) * pw + ow, 0);
    }
    // Start offset of each tap in the phase planes, relative to output row 0, column 0.
    offsets.clear();
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let px = kx * dw;
            offsets.push(((px % phases) * hp + ky * dh) * pw + px / phases);
        }
    }
    let taps = TapOffsets::new(offsets);
    let (pt, pl) = (g.pads[0], g.pads[1]);
    let zp = l.requant.zero_point;
    for c in channels {
        let src = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        match phases {
            1 => F::Rows::copy_rows(src, g.w, &mut planes[pt * pw + pl..], pw, g.w, g.h),
            2 => F::Rows::deal_plane(src, g.w, g.h, planes, hp, pw, pt, pl),
            _ => {
                for (i, &v) in src.iter().enumerate() {
                    let (py, px) = (i / g.w + pt, i % g.w + pl);
                    planes[((px % phases) * hp + py) * pw + px / phases] = v;
                }
            }
        }
        let scale = l.requant.scale[c];
        // SAFETY: channel c belongs to this task only (this function's contract).
        let out = unsafe { y.slice(c * oh * ow, oh * ow) };
        let (rows, cols, dst) = if flat { (1, (oh - 1) * pw + ow, &mut scratch[..(oh - 1) * pw + ow]) } else { (oh, ow, &mut *out) };
        // SAFETY: the CPU has the form's instructions (this function's contract).
        unsafe { form.channel(c, planes, &taps, pw, sh * pw, scale, zp, rows, cols, dst) };
        if flat {
            F::Rows::copy_rows(scratch, pw, out, ow, ow, oh);
        }
    }
}

/// The checks of an ARM depthwise kernel's channel, whose output `(oy, ox)` reads tap `t` at
/// `oy · row_step + offsets[t] + ox` in 16-output tiles: `out_len` is `oh · ow`, one offset per
/// tap, and the last row's last tile at the largest offset lies within `planes_len` (the caller
/// leaves 16 bytes of slack after the last row). Returns whether there is anything to compute.
///
/// # Panics
/// If a check fails.
pub(crate) fn dw_channel_fits(planes_len: usize, offsets: &TapOffsets, taps: usize, row_step: usize, oh: usize, ow: usize, out_len: usize) -> bool {
    assert_eq!(out_len, oh * ow);
    assert_eq!(offsets.offsets.len(), taps);
    if oh == 0 || ow == 0 {
        return false;
    }
    let last_tile = (ow - 1) / 16 * 16;
    assert!((oh - 1) * row_step + offsets.max + last_tile + 16 <= planes_len, "depthwise tile past the plane");
    true
}

/// A depthwise layer's tap offsets (see [`dw_channel_fits`]) with the largest of them, found
/// once per run rather than once per channel (about 60 instructions a channel on aarch64).
pub(crate) struct TapOffsets<'a> {
    offsets: &'a [usize],
    max: usize,
}

impl<'a> TapOffsets<'a> {
    pub(crate) fn new(offsets: &'a [usize]) -> Self {
        TapOffsets { offsets, max: offsets.iter().copied().max().unwrap_or(0) }
    }

    pub(crate) fn offsets(&self) -> &'a [usize] {
        self.offsets
    }
}
