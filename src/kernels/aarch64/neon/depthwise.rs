//! aarch64 NEON's depthwise form: taps summed in i16 groups sized per channel by its weights.

use std::arch::aarch64::*;

use super::simd::requant16;
use crate::kernels::planes::{dw_channel_fits, TapOffsets};
use crate::kernels::requant::fold_zero_point;

/// The NEON form of a depthwise convolution (any kernel size, stride and dilation), on raw int8
/// planes padded with the input zero point, whose products the folded bias cancels
/// (`bias − z_x · Σ w`), so nothing is widened. Per 16 outputs and tap: a 16-byte load and
/// `smull`/`smull2` (a group's first tap) or `smlal`/`smlal2` (the others), summing the
/// products of a group of taps in i16, then four `saddw` per group into the i32 accumulators.
///
/// The groups are chosen per channel at load from its weights: a group's sum fits i16 for every
/// input when `128 · P + 127 · N ≤ 32768` and `127 · P + 128 · N ≤ 32767` (`P`, `N`: the sums
/// of its positive weights and of the magnitudes of its negative ones; i16 arithmetic wraps, so
/// only the final sum matters). Pairs always fit while the weights avoid −128 (a layer with a
/// −128 weight gets no NEON form: [`Depthwise::new`] returns `None`); larger groups fit the
/// weights of most channels (3×3: groups of 9, 5 or 3 taps; 5×5: 13, 9, 7, 5 or 3), taps
/// reordered by magnitude so that the large ones share no group. A 3×3 channel in groups of 3
/// costs 12 widening adds per 16 outputs instead of 20. The sums are exact integers, so any
/// grouping and order gives the same results.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Depthwise {
    taps: usize,
    /// `[c][taps]`: each channel's weights in its tap order.
    w: Vec<i8>,
    /// `[c][taps]`: the tap (index into the layer's offsets) of each of those weights.
    order: Vec<u16>,
    /// Taps per i16 group of each channel (the last group may have fewer).
    group: Vec<u8>,
    /// Bias with the input zero point folded in.
    bias: Vec<i32>,
}

/// Whether an i16 sum of `w · x` fits for every int8 `x` (see [`Depthwise`]).
pub(super) fn group_fits(w: &[i8]) -> bool {
    let p: i64 = w.iter().filter(|&&v| v > 0).map(|&v| i64::from(v)).sum();
    let n: i64 = w.iter().filter(|&&v| v < 0).map(|&v| -i64::from(v)).sum();
    128 * p + 127 * n <= 32768 && 127 * p + 128 * n <= 32767
}

/// The tap order and group size of one channel's weights `w` (−127..=127): the fewest groups
/// among the sizes the tiles are built for that fit, taps dealt largest first to the group with
/// the smallest sum of magnitudes so far. Kernels other than 3×3 and 5×5 keep pairs in order.
pub(crate) fn plan_groups(w: &[i8]) -> (Vec<u16>, u8) {
    let n = w.len();
    let sizes: &[usize] = match n {
        9 => &[9, 5, 3],
        25 => &[13, 9, 7, 5, 3],
        _ => &[],
    };
    let mut by_size: Vec<usize> = (0..n).collect();
    by_size.sort_by_key(|&t| std::cmp::Reverse(w[t].unsigned_abs()));
    for &g in sizes {
        let ng = n.div_ceil(g);
        let mut groups: Vec<Vec<usize>> = vec![Vec::with_capacity(g); ng];
        let cap = |i: usize| if i + 1 < ng { g } else { n - g * (ng - 1) };
        let load = |grp: &Vec<usize>| grp.iter().map(|&t| u32::from(w[t].unsigned_abs())).sum::<u32>();
        for &t in &by_size {
            // Infallible: the capacities add up to `n`, so a group has room for every tap.
            let i = (0..ng).filter(|&i| groups[i].len() < cap(i)).min_by_key(|&i| load(&groups[i])).expect("room for every tap");
            groups[i].push(t);
        }
        if groups.iter().all(|grp| group_fits(&grp.iter().map(|&t| w[t]).collect::<Vec<_>>())) {
            return (groups.concat().into_iter().map(|t| t as u16).collect(), g as u8);
        }
    }
    ((0..n as u16).collect(), 2)
}

impl Depthwise {
    /// The NEON form of `[c][taps]` weights, or `None` if a weight is −128 (or the sizes
    /// disagree, or there are more than 65535 taps).
    pub(crate) fn new(taps: usize, weights: &[i8], bias: &[i32], x_zp: i8) -> Option<Self> {
        if taps == 0 || taps > usize::from(u16::MAX) || weights.len() != taps * bias.len() || weights.contains(&i8::MIN) {
            return None;
        }
        let (mut w, mut order, mut group) = (Vec::with_capacity(weights.len()), Vec::with_capacity(weights.len()), Vec::with_capacity(bias.len()));
        for wc in weights.chunks_exact(taps) {
            let (o, g) = plan_groups(wc);
            w.extend(o.iter().map(|&t| wc[usize::from(t)]));
            order.extend(o);
            group.push(g);
        }
        Some(Depthwise { taps, w, order, group, bias: fold_zero_point(bias, weights, taps, x_zp) })
    }

    /// Bytes held: weights, tap orders, group sizes and biases.
    pub(crate) fn held_bytes(&self) -> usize {
        self.w.len() + 2 * self.order.len() + self.group.len() + 4 * self.bias.len()
    }

    /// One channel: `out[oy][ox]` for the `oh × ow` outputs, where output `(oy, ox)` reads tap
    /// `t` at `planes[oy · row_step + offsets[t] + ox]`; 16 outputs at a time.
    ///
    /// # Panics
    /// If a tile would read past `planes` (the caller leaves 16 bytes of slack after the last
    /// row), `offsets` does not have one entry per tap, or `out` is not `oh · ow` long.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn channel(&self, c: usize, planes: &[i8], offsets: &TapOffsets, row_step: usize, scale: f32, zp: i32, oh: usize, ow: usize, out: &mut [i8]) {
        if !dw_channel_fits(planes.len(), offsets, self.taps, row_step, oh, ow, out.len()) {
            return;
        }
        let offsets = offsets.offsets();
        let at = c * self.taps..(c + 1) * self.taps;
        let (w, order, b) = (&self.w[at.clone()], &self.order[at], self.bias[c]);
        // SAFETY: every load is within `planes` (asserted above for the last row, the largest
        // offset and the last tile; `order` is a permutation of the taps); `out` holds
        // `oh · ow` bytes.
        unsafe {
            let (p, o) = (planes.as_ptr(), out.as_mut_ptr());
            macro_rules! grouped {
                ($t:literal, $g:literal) => {{
                    let off: [usize; $t] = std::array::from_fn(|t| *offsets.get_unchecked(usize::from(*order.get_unchecked(t))));
                    tiles::<$t, $g>(p, &off, w, b, scale, zp, oh, ow, row_step, o)
                }};
            }
            match (self.taps, self.group[c]) {
                (9, 9) => grouped!(9, 9),
                (9, 5) => grouped!(9, 5),
                (9, 3) => grouped!(9, 3),
                (9, _) => grouped!(9, 2),
                (25, 13) => grouped!(25, 13),
                (25, 9) => grouped!(25, 9),
                (25, 7) => grouped!(25, 7),
                (25, 5) => grouped!(25, 5),
                (25, 3) => grouped!(25, 3),
                (25, _) => grouped!(25, 2),
                // Other kernels keep the taps in order, in pairs (`plan_groups`).
                _ => tiles::<0, 2>(p, offsets, w, b, scale, zp, oh, ow, row_step, o),
            }
        }
    }
}

/// The first tap of a group over 16 outputs: `[lo, hi] = w · x[p..]` in i16.
///
/// # Safety
/// `p` is readable for 16 bytes.
#[inline(always)]
unsafe fn tap_first(p: *const i8, w: int8x16_t) -> (int16x8_t, int16x8_t) {
    let a = vld1q_s8(p);
    let (lo, hi): (int16x8_t, int16x8_t);
    // In `asm!`: with the weights broadcast, LLVM rewrites `smull2` as `ext` + `smull`.
    std::arch::asm!(
        "smull {lo:v}.8h, {a:v}.8b, {w:v}.8b",
        "smull2 {hi:v}.8h, {a:v}.16b, {w:v}.16b",
        lo = out(vreg) lo, hi = out(vreg) hi, a = in(vreg) a, w = in(vreg) w,
        options(pure, nomem, nostack, preserves_flags),
    );
    (lo, hi)
}

/// Another tap of a group: `[lo, hi] += w · x[p..]` in i16 (wrapping).
///
/// # Safety
/// `p` is readable for 16 bytes.
#[inline(always)]
unsafe fn tap_more(lo: &mut int16x8_t, hi: &mut int16x8_t, p: *const i8, w: int8x16_t) {
    let a = vld1q_s8(p);
    std::arch::asm!(
        "smlal {lo:v}.8h, {a:v}.8b, {w:v}.8b",
        "smlal2 {hi:v}.8h, {a:v}.16b, {w:v}.16b",
        lo = inout(vreg) *lo, hi = inout(vreg) *hi, a = in(vreg) a, w = in(vreg) w,
        options(pure, nomem, nostack, preserves_flags),
    );
}

/// `acc += [lo, hi]` widened from 16 i16 lanes.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has: `unsafe` because the intrinsics are.
#[inline(always)]
unsafe fn widen_add(acc: &mut [int32x4_t; 4], lo: int16x8_t, hi: int16x8_t) {
    acc[0] = vaddw_s16(acc[0], vget_low_s16(lo));
    acc[1] = vaddw_high_s16(acc[1], lo);
    acc[2] = vaddw_s16(acc[2], vget_low_s16(hi));
    acc[3] = vaddw_high_s16(acc[3], hi);
}

/// [`Depthwise::channel`]'s loops, with `T` taps unrolled and their weights in registers
/// (`T = 0`: any number, each weight loaded where it is used), in groups of `G` taps summed in
/// i16 (`offsets` and `w` in the channel's tap order).
///
/// # Safety
/// As checked by [`Depthwise::channel`]: every tile's loads lie within the planes and `out`
/// holds `oh · ow` bytes; `w` and `offsets` have one entry per tap; every group of `G` fits i16.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tiles<const T: usize, const G: usize>(
    planes: *const i8,
    offsets: &[usize],
    w: &[i8],
    bias: i32,
    scale: f32,
    zp: i32,
    oh: usize,
    ow: usize,
    row_step: usize,
    out: *mut i8,
) {
    const { assert!(G >= 2) };
    let taps = if T > 0 { T } else { offsets.len() };
    let wreg: [int8x16_t; T] = std::array::from_fn(|t| vdupq_n_s8(w[t]));
    let off: [usize; T] = std::array::from_fn(|t| offsets[t]);
    let weight = |t: usize| if T > 0 { wreg[t] } else { vld1q_dup_s8(w.as_ptr().add(t)) };
    let offset = |t: usize| if T > 0 { off[t] } else { *offsets.get_unchecked(t) };
    dw_tiles::<false>(planes, row_step, 1, oh, ow, out, bias, scale, zp, vdupq_n_u8(0), |p, acc| {
        let mut t = 0;
        while t < taps {
            let end = (t + G).min(taps);
            let (mut lo, mut hi) = tap_first(p.add(offset(t)), weight(t));
            let mut u = t + 1;
            while u < end {
                tap_more(&mut lo, &mut hi, p.add(offset(u)), weight(u));
                u += 1;
            }
            widen_add(acc, lo, hi);
            t = end;
        }
    });
}

/// The tile loop of both depthwise forms (this one and the dot product's): for each output row
/// `oy` and each 16 outputs from `ox`, `tile(planes + oy · row_step + step · ox, acc)` adds the
/// taps to accumulators that start at `bias`; they are requantised ([`requant16`]), put in
/// output order by `tbl` with `perm` when `PERM` (the dot product's accumulators hold outputs
/// out of order), and stored to `out[oy · ow + ox..]`. A row's partial last tile is stored
/// whole where its excess falls on later rows of `out` (rewritten when their turn comes), else
/// only in part.
///
/// # Safety
/// `tile` reads within the planes for every tile; `out` holds `oh · ow` bytes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn dw_tiles<const PERM: bool>(
    planes: *const i8,
    row_step: usize,
    step: usize,
    oh: usize,
    ow: usize,
    out: *mut i8,
    bias: i32,
    scale: f32,
    zp: i32,
    perm: uint8x16_t,
    mut tile: impl FnMut(*const i8, &mut [int32x4_t; 4]),
) {
    let b = vdupq_n_s32(bias);
    let zp16 = vdupq_n_s16(zp as i16);
    let finish = |acc: [int32x4_t; 4]| {
        let v = requant16(acc, scale, zp16);
        if PERM {
            vqtbl1q_s8(v, perm)
        } else {
            v
        }
    };
    // The full tiles of a row in a loop of their own, then its partial tile: no tail test
    // per tile.
    let full = ow / 16 * 16;
    for oy in 0..oh {
        let row = planes.add(oy * row_step);
        let dst = out.add(oy * ow);
        let mut ox = 0;
        while ox < full {
            let mut acc = [b; 4];
            tile(row.add(step * ox), &mut acc);
            vst1q_s8(dst.add(ox), finish(acc));
            ox += 16;
        }
        if full < ow {
            let mut acc = [b; 4];
            tile(row.add(step * full), &mut acc);
            let v = finish(acc);
            if (oy * ow + full) + 16 <= oh * ow {
                // All 16 bytes, the ones past the row into the next rows, which are written
                // after this one: one store instead of `store_first`'s.
                vst1q_s8(dst.add(full), v);
            } else {
                store_first(dst.add(full), v, ow - full);
            }
        }
    }
}

/// Stores the first `n < 16` bytes of `v` at `dst` (8, 4, 2, 1 at a time, no call to memcpy).
///
/// # Safety
/// `dst` is valid for `n` bytes.
#[inline(always)]
pub(crate) unsafe fn store_first(dst: *mut i8, v: int8x16_t, n: usize) {
    let (mut d, mut v, mut n) = (dst, v, n);
    if n >= 8 {
        vst1_s8(d, vget_low_s8(v));
        v = vextq_s8::<8>(v, v);
        d = d.add(8);
        n -= 8;
    }
    if n >= 4 {
        std::ptr::write_unaligned(d as *mut u32, vgetq_lane_u32::<0>(vreinterpretq_u32_s8(v)));
        v = vextq_s8::<4>(v, v);
        d = d.add(4);
        n -= 4;
    }
    if n >= 2 {
        std::ptr::write_unaligned(d as *mut u16, vgetq_lane_u16::<0>(vreinterpretq_u16_s8(v)));
        v = vextq_s8::<2>(v, v);
        d = d.add(2);
        n -= 2;
    }
    if n == 1 {
        *d = vgetq_lane_s8::<0>(v);
    }
}
