//! Helpers that every kernel set's packing uses: im2col of a block of output columns, strided
//! copies, and the row-block packing of weights.

use super::geometry::Geometry;

/// Columns `c0..c0 + ncols` (output positions) of a k×k convolution's im2col matrix:
/// `[cin·kh·kw][ncols]`, padding filled with the input zero point (the real value 0).
/// `evens(dst, src)` copies a prefix of `dst[i] = src[2i]` with the set's vector code and
/// returns its length (0: none); the rest is copied here.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col(
    g: &Geometry,
    ow: usize,
    x: &[i8],
    zp: i8,
    c0: usize,
    ncols: usize,
    cols: &mut Vec<i8>,
    segs: &mut Vec<[usize; 4]>,
    evens: impl Fn(&mut [i8], &[i8]) -> usize + Copy,
) {
    cols.clear();
    cols.resize(g.cin * g.kh * g.kw * ncols, zp);
    // The range in segments of one output row each: [oy, first ox, end ox, offset in the block].
    segs.clear();
    let mut p = c0;
    while p < c0 + ncols {
        let (oy, xa) = (p / ow, p % ow);
        let xb = ow.min(xa + c0 + ncols - p);
        segs.push([oy, xa, xb, p - c0]);
        p += xb - xa;
    }
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    for kx in 0..g.kw {
        // Output columns whose input column is inside the image: ix = ox·sw + kx·dw − pad_left.
        let off = kx * dw;
        let lo = g.pads[1].saturating_sub(off).div_ceil(sw).min(ow);
        let hi = if g.w + g.pads[1] > off { ((g.w + g.pads[1] - off - 1) / sw + 1).min(ow) } else { 0 };
        if lo >= hi {
            continue;
        }
        for c in 0..g.cin {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ky in 0..g.kh {
                let row = &mut cols[((c * g.kh + ky) * g.kw + kx) * ncols..][..ncols];
                for &[oy, xa, xb, seg] in segs.iter() {
                    let iy = (oy * sh + ky * dh) as isize - g.pads[0] as isize;
                    let (a, b) = (lo.max(xa), hi.min(xb));
                    if iy < 0 || iy >= g.h as isize || a >= b {
                        continue;
                    }
                    let src = &plane[iy as usize * g.w + a * sw + off - g.pads[1]..];
                    let dst = &mut row[seg + a - xa..seg + b - xa];
                    copy_strided(dst, src, sw, evens);
                }
            }
        }
    }
}

/// `dst[i] = src[i · step]`; for `step` 2, a prefix by `evens` (see [`im2col`]).
#[inline(always)]
pub(crate) fn copy_strided(dst: &mut [i8], src: &[i8], step: usize, evens: impl Fn(&mut [i8], &[i8]) -> usize) {
    let len = dst.len();
    if step == 1 {
        dst.copy_from_slice(&src[..len]);
    } else if step == 2 && len > 0 {
        // aarch64: 16 at a time with `ld2` (LLVM's vectorisation of the pairs below moves bytes
        // one lane at a time, about 26 instructions per 16).
        let done = evens(dst, src);
        let (dst, src) = (&mut dst[done..], &src[2 * done..]);
        let len = dst.len();
        if len == 0 {
            return;
        }
        // Pairs, so that it vectorises; the last element alone (its pair may lie past the plane).
        for (d, p) in dst[..len - 1].iter_mut().zip(src[..2 * (len - 1)].chunks_exact(2)) {
            *d = p[0];
        }
        dst[len - 1] = src[2 * (len - 1)];
    } else {
        for (d, s) in dst.iter_mut().zip(src.iter().step_by(step)) {
            *d = *s;
        }
    }
}

/// No vector prefix for [`copy_strided`]: the portable pairs loop copies everything.
#[inline(always)]
pub(crate) fn no_evens(_: &mut [i8], _: &[i8]) -> usize {
    0
}

/// Packs `[m][k]` weights into `[m / mr][k / kc][mr][kc]`: blocks of `mr` rows with `kc`
/// consecutive `k` of each row together, zero-padded rows and `k` (NEON on aarch64 and armv7:
/// 4 × 16, dot product: 8 × 4). Done once, when a model is loaded.
#[allow(dead_code)] // used by the ARM kernel sets
pub(crate) fn pack_blocks(weights: &[i8], m: usize, k: usize, mr: usize, kc: usize) -> Vec<i8> {
    let kb = k.div_ceil(kc);
    let mut a = vec![0i8; m.div_ceil(mr) * kb * mr * kc];
    for (row, w) in weights.chunks_exact(k).enumerate().take(m) {
        let (blk, r) = (row / mr, row % mr);
        for (g, chunk) in w.chunks(kc).enumerate() {
            let at = ((blk * kb + g) * mr + r) * kc;
            a[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
    a
}
