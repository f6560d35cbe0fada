//! aarch64 NEON pieces of Winograd F(2×2, 3×3), beside the portable code in
//! [`winograd`](super) that they must equal (its tests run both): the 4×16 register tile of the
//! 16 position-wise GEMMs on i16 operands (`smlal`/`smlal2` by element, 4 multiply-adds each),
//! and the output transform with the requantisation in registers.
//!
//! Why Winograd pays on NEON without the dot product: the dense kernel's best is 16 int8
//! multiply-adds per 3 instructions (`smull`, `smlal2`, `sadalp`), while here a widening i16
//! multiply-add does 4 per instruction on 2.25× fewer products, ≈ 8 multiply-adds of the direct
//! convolution per instruction in the loop. With `sdot` (16 per instruction) the dense kernel
//! stays ahead, so only the NEON set runs this. That is a count of instructions: in multiply
//! cycles the Cortex-A72 issues `smull` (8 lanes) and `smlal` (4 lanes) alike, so there the gain
//! is 9 equivalent multiply-adds per cycle against 8, before the transforms.

use std::arch::aarch64::*;

use super::neon::{narrow_zp, requant4};
use crate::kernels::plan::{PAIR_MR as MR, PAIR_NR as NR};
use crate::kernels::tasks::Out;
use crate::kernels::winograd::layer::{winograd_block, WinogradIsa, WinogradLayer, TILES};

/// NEON's pieces (aarch64, for the `neon` and `dotprod` sets).
pub(crate) struct Neon;

impl WinogradIsa for Neon {
    const SIMD_TRANSFORM: bool = true;

    #[inline(always)]
    unsafe fn transform_tile_row(rows: &[i8], rs: usize, tw: usize, v: &mut [i16], vs: usize, base: usize) {
        transform_tile_row_neon(rows, rs, tw, v, vs, base)
    }

    #[inline(always)]
    unsafe fn interleave(a: &[i16], b: &[i16], dst: &mut [u32], pw: usize, cc: usize) -> bool {
        interleave_neon(a, b, dst, pw, cc);
        true
    }

    #[inline(always)]
    unsafe fn tile(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
        tile_neon(a, b, kh, two, acc)
    }

    #[inline(always)]
    unsafe fn output(l: &WinogradLayer, acc: &[i32], row0: usize, tile_y: &[u32], tile_x: &[u32], t0: usize, n: usize, out: Out) {
        output_neon(l, acc, row0, tile_y, tile_x, t0, n, out)
    }
}

winograd_block!(
    /// NEON's pieces (NEON is part of aarch64).
    BLOCK = Neon
);

/// `acc[r][t] = Σ_k a[k][r] · b[k][t]` over `kh` channel pairs for the `MR` rows of a weight
/// block and the two panels of `NR` tiles that follow each other in `b` (`kh · NR` words each;
/// only the first when `!two`, the second half of `acc` then zero), as the portable tile. A word
/// holds two i16, channels `2k` (low half) and `2k + 1`: `ld2` splits a panel's words into the
/// two channels' vectors of 8 tiles, and one load of `a` gives the 8 weights (4 rows × 2
/// channels) that the multiply-adds take by element.
///
/// # Panics
/// If `a` holds fewer than `kh · MR` words or `b` fewer than `2 · kh · NR` (`kh · NR` when
/// `!two`).
#[inline(always)]
fn tile_neon(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
    if two {
        tile::<true>(a, b, kh, acc)
    } else {
        tile::<false>(a, b, kh, acc)
    }
}

/// The `asm!` text of one channel's multiply-adds in the pair loop of [`tile_neon`]: the 8 tiles
/// of panel 0 in `v$p0` and of panel 1 in `v$p1` times row r's weight in `v$u` (lane `$r0`,
/// `$r1`, `$r2`, `$r3` for rows 0..4), into accumulators `v16 + 4r` (panel 0, tiles 0..4),
/// `v17 + 4r` (4..8), `v18 + 4r` and `v19 + 4r` (panel 1).
macro_rules! smlal_products {
    ($u:literal, $p0:literal, $p1:literal, $r0:literal, $r1:literal, $r2:literal, $r3:literal) => {
        concat!(
            smlal_row!("16", "17", "18", "19", $u, $p0, $p1, $r0),
            smlal_row!("20", "21", "22", "23", $u, $p0, $p1, $r1),
            smlal_row!("24", "25", "26", "27", $u, $p0, $p1, $r2),
            smlal_row!("28", "29", "30", "31", $u, $p0, $p1, $r3),
        )
    };
}

/// One row's four multiply-adds of [`smlal_products`].
#[rustfmt::skip]
macro_rules! smlal_row {
    ($c0:literal, $c1:literal, $c2:literal, $c3:literal, $u:literal, $p0:literal, $p1:literal, $l:literal) => {
        concat!(
            "smlal v", $c0, ".4s, v", $p0, ".4h, v", $u, ".h[", $l, "]\n",
            "smlal2 v", $c1, ".4s, v", $p0, ".8h, v", $u, ".h[", $l, "]\n",
            "smlal v", $c2, ".4s, v", $p1, ".4h, v", $u, ".h[", $l, "]\n",
            "smlal2 v", $c3, ".4s, v", $p1, ".8h, v", $u, ".h[", $l, "]\n",
        )
    };
}

/// [`tile_neon`] for `two == TWO`.
#[inline(always)]
fn tile<const TWO: bool>(a: &[u32], b: &[u32], kh: usize, acc: &mut [i32; MR * TILES]) {
    const { assert!(MR == 4 && NR == 8 && TILES == 16) };
    let plen = kh * NR;
    assert!(a.len() >= kh * MR && b.len() >= if TWO { 2 * plen } else { plen });
    // SAFETY: every load below reads words kk·MR..kk·MR + 4 of `a` and kk·NR..kk·NR + 8 of
    // the first panel of `b` (and of the second when TWO), kk < kh: in bounds (asserted). NEON
    // is part of every aarch64 CPU.
    unsafe {
        let (pa, pb) = (a.as_ptr() as *const i16, b.as_ptr() as *const i16);
        let mut c = [vdupq_n_s32(0); 16];
        macro_rules! row {
            ($r:literal, $lo:literal, $hi:literal, $u:ident, $p0:ident, $p1:ident) => {
                c[4 * $r] = vmlal_laneq_s16::<$lo>(c[4 * $r], vget_low_s16($p0.0), $u);
                c[4 * $r + 1] = vmlal_high_laneq_s16::<$lo>(c[4 * $r + 1], $p0.0, $u);
                c[4 * $r] = vmlal_laneq_s16::<$hi>(c[4 * $r], vget_low_s16($p0.1), $u);
                c[4 * $r + 1] = vmlal_high_laneq_s16::<$hi>(c[4 * $r + 1], $p0.1, $u);
                if TWO {
                    c[4 * $r + 2] = vmlal_laneq_s16::<$lo>(c[4 * $r + 2], vget_low_s16($p1.0), $u);
                    c[4 * $r + 3] = vmlal_high_laneq_s16::<$lo>(c[4 * $r + 3], $p1.0, $u);
                    c[4 * $r + 2] = vmlal_laneq_s16::<$hi>(c[4 * $r + 2], vget_low_s16($p1.1), $u);
                    c[4 * $r + 3] = vmlal_high_laneq_s16::<$hi>(c[4 * $r + 3], $p1.1, $u);
                }
            };
        }
        if TWO && kh >= 2 {
            // Pairs of `k` in `asm!`, the accumulators pinned to v16–v31 and the operands to
            // v0–v9 (a by-element multiply of halfwords takes its element from v0–v15): LLVM's
            // loop spilled its bound and recomputed addresses, 10 instructions around every 32
            // multiply-adds where this has 8 around 64.
            std::arch::asm!(
                "2:",
                "ldr q0, [{a}], #16",
                "ld2 {{v1.8h, v2.8h}}, [{b0}], #32",
                "ld2 {{v3.8h, v4.8h}}, [{b1}], #32",
                "ldr q5, [{a}], #16",
                "ld2 {{v6.8h, v7.8h}}, [{b0}], #32",
                "ld2 {{v8.8h, v9.8h}}, [{b1}], #32",
                // k: weights v0, even channel v1 (panel 0) and v3 (panel 1), odd v2 and v4.
                smlal_products!("0", "1", "3", "0", "2", "4", "6"),
                smlal_products!("0", "2", "4", "1", "3", "5", "7"),
                // k + 1: weights v5, even v6 and v8, odd v7 and v9.
                smlal_products!("5", "6", "8", "0", "2", "4", "6"),
                smlal_products!("5", "7", "9", "1", "3", "5", "7"),
                "subs {n}, {n}, #1",
                "b.ne 2b",
                a = inout(reg) pa => _,
                b0 = inout(reg) pb => _,
                b1 = inout(reg) pb.add(2 * plen) => _,
                n = inout(reg) kh / 2 => _,
                inout("v16") c[0], inout("v17") c[1], inout("v18") c[2], inout("v19") c[3],
                inout("v20") c[4], inout("v21") c[5], inout("v22") c[6], inout("v23") c[7],
                inout("v24") c[8], inout("v25") c[9], inout("v26") c[10], inout("v27") c[11],
                inout("v28") c[12], inout("v29") c[13], inout("v30") c[14], inout("v31") c[15],
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
                out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _,
                options(nostack, readonly),
            );
        }
        let first = if TWO { kh / 2 * 2 } else { 0 };
        for kk in first..kh {
            let u = vld1q_s16(pa.add(2 * kk * MR));
            let p0 = vld2q_s16(pb.add(2 * kk * NR));
            let p1 = if TWO { vld2q_s16(pb.add(2 * (plen + kk * NR))) } else { p0 };
            row!(0, 0, 1, u, p0, p1);
            row!(1, 2, 3, u, p0, p1);
            row!(2, 4, 5, u, p0, p1);
            row!(3, 6, 7, u, p0, p1);
        }
        let d = acc.as_mut_ptr();
        for (i, v) in c.into_iter().enumerate() {
            vst1q_s32(d.add(4 * i), v);
        }
    }
}

/// [`WinogradLayer::output`] with the transform `Aᵀ M A / 4` and the requantisation
/// of 4 tiles per vector: `n` tiles starting at tile `t0` of the block for rows
/// `row0..row0 + MR`, stored at each tile's top-left output (`tile_y`, `tile_x`). Tiles of the
/// same tile row are consecutive, so each run of them is two contiguous stretches of output,
/// one per output row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_neon(l: &WinogradLayer, acc: &[i32], row0: usize, tile_y: &[u32], tile_x: &[u32], t0: usize, n: usize, out: Out) {
    let (oh, ow) = (l.oh, l.ow);
    assert!(acc.len() >= 16 * MR * TILES && n <= TILES && t0 + n <= tile_y.len() && t0 + n <= tile_x.len());
    for r in 0..MR {
        let row = row0 + r;
        if row >= l.m {
            break;
        }
        let (bias, scale) = (l.bias[row], l.requant.scale[row]);
        // Two output rows of the 16 tiles, each tile's pair of columns side by side.
        let mut z = [[0i8; 2 * TILES]; 2];
        // SAFETY: the loads read acc[(e·MR + r)·TILES + 4g..][..4], e < 16, g < 4: below
        // 16 · MR · TILES (asserted). NEON is part of every aarch64 CPU.
        unsafe {
            let zp = vdupq_n_s16(l.requant.zero_point as i16);
            // y[g][k]: output k (row-major in the 2×2 block) of tiles 4g..4g + 4, rounded.
            let y: [[int32x4_t; 4]; 4] = std::array::from_fn(|g| {
                let m = |i: usize, j: usize| vld1q_s32(acc.as_ptr().add(((i * 4 + j) * MR + r) * TILES + 4 * g));
                let t0j = |j: usize| vaddq_s32(vaddq_s32(m(0, j), m(1, j)), m(2, j));
                let t1j = |j: usize| vsubq_s32(vsubq_s32(m(1, j), m(2, j)), m(3, j));
                let (a0, a1, a2, a3) = (t0j(0), t0j(1), t0j(2), t0j(3));
                let (b0, b1, b2, b3) = (t1j(0), t1j(1), t1j(2), t1j(3));
                let q =
                    [vaddq_s32(vaddq_s32(a0, a1), a2), vsubq_s32(vsubq_s32(a1, a2), a3), vaddq_s32(vaddq_s32(b0, b1), b2), vsubq_s32(vsubq_s32(b1, b2), b3)];
                q.map(|v| requant4(vshrq_n_s32::<2>(v), bias, scale))
            });
            // Output k as int8: tiles 0..8 and 8..16.
            let b = |k: usize| vcombine_s8(narrow_zp(y[0][k], y[1][k], zp), narrow_zp(y[2][k], y[3][k], zp));
            for (a, za) in z.iter_mut().enumerate() {
                let (l, rr) = (b(2 * a), b(2 * a + 1));
                vst1q_s8(za.as_mut_ptr(), vzip1q_s8(l, rr));
                vst1q_s8(za.as_mut_ptr().add(16), vzip2q_s8(l, rr));
            }
        }
        let plane = row * oh * ow;
        let mut i = 0;
        while i < n {
            // A run of tiles on one tile row: consecutive tile columns.
            let oy = tile_y[t0 + i] as usize;
            let mut j = i + 1;
            while j < n && tile_y[t0 + j] as usize == oy {
                j += 1;
            }
            let ox = tile_x[t0 + i] as usize;
            let cols = (2 * (j - i)).min(ow - ox);
            for (a, za) in z.iter().enumerate().take(oh - oy) {
                // SAFETY: output rows 2·ty0.. of every channel belong to this task.
                let dst = unsafe { out.slice(plane + (oy + a) * ow + ox, cols) };
                dst.copy_from_slice(&za[2 * i..2 * i + cols]);
            }
            i = j;
        }
    }
}

/// `V = Bᵀ d B` of the `tw` tiles of one tile row, 16 tiles at a time, as the AVX2 piece of the
/// same name: `rows` holds the four padded input rows (stride `rs`, column `2t + j` of tile
/// `t`'s `j`), `v[e · vs + base + t]` gets position `e` of tile `t`. Whole groups of 16 are
/// written, up to 15 past `base + tw`. `ld2` splits 32 columns into the even and odd ones.
///
/// # Panics
/// If `rows` or `v` is too short for that.
#[inline(always)]
fn transform_tile_row_neon(rows: &[i8], rs: usize, tw: usize, v: &mut [i16], vs: usize, base: usize) {
    let groups = tw.div_ceil(TILES);
    assert!(rows.len() >= 4 * rs && rs >= 2 * (groups - 1) * TILES + 34);
    assert!(v.len() >= 15 * vs + base + groups * TILES);
    // SAFETY: NEON, which the closure's intrinsics need, is part of every aarch64 CPU.
    let wide = |x: int8x16_t| unsafe { [vmovl_s8(vget_low_s8(x)), vmovl_high_s8(x)] };
    for grp in 0..groups {
        let t0 = grp * TILES;
        // SAFETY: row i holds rs ≥ 2·t0 + 34 bytes, and positions e < 16 of tiles
        // base + t0 .. base + t0 + 16 are inside `v` (both asserted). NEON is part of every
        // aarch64 CPU.
        unsafe {
            // Columns 2t, 2t+1 (e, o) and 2t+2, 2t+3 (e1, o1) of tiles t0..t0+16, each as two
            // i16 vectors of 8 tiles, for each row.
            let mut e = [[vdupq_n_s16(0); 2]; 4];
            let (mut o, mut e1, mut o1) = (e, e, e);
            for i in 0..4 {
                let p = rows.as_ptr().add(i * rs + 2 * t0);
                let (a, b) = (vld2q_s8(p), vld2q_s8(p.add(2)));
                (e[i], o[i], e1[i], o1[i]) = (wide(a.0), wide(a.1), wide(b.0), wide(b.1));
            }
            for h in 0..2 {
                // Rows of Bᵀ d: r0 = d0 − d2, r1 = d1 + d2, r2 = d2 − d1, r3 = d1 − d3.
                let bt = |d: &[[int16x8_t; 2]; 4]| {
                    [vsubq_s16(d[0][h], d[2][h]), vaddq_s16(d[1][h], d[2][h]), vsubq_s16(d[2][h], d[1][h]), vsubq_s16(d[1][h], d[3][h])]
                };
                let (re, ro, re1, ro1) = (bt(&e), bt(&o), bt(&e1), bt(&o1));
                for a in 0..4 {
                    let vals = [vsubq_s16(re[a], re1[a]), vaddq_s16(ro[a], re1[a]), vsubq_s16(re1[a], ro[a]), vsubq_s16(ro[a], ro1[a])];
                    for (b, val) in vals.into_iter().enumerate() {
                        vst1q_s16(v.as_mut_ptr().add((4 * a + b) * vs + base + t0 + 8 * h), val);
                    }
                }
            }
        }
    }
}

/// Channel `c`'s values `a` and channel `c + 1`'s `b` (lengths a multiple of 16) as words
/// into `dst`: panel `p` (columns `8p..8p + 8`) at `p · pw + cc · NR`.
///
/// # Panics
/// If the lengths do not fit.
#[inline(always)]
fn interleave_neon(a: &[i16], b: &[i16], dst: &mut [u32], pw: usize, cc: usize) {
    assert!(a.len() == b.len() && a.len().is_multiple_of(TILES));
    let panels = a.len() / NR;
    assert!(panels == 0 || (panels - 1) * pw + cc * NR + NR <= dst.len());
    for p in 0..panels {
        // SAFETY: 8 values from column 8p of each; panel p of `dst` is in bounds (asserted for
        // the last one).
        unsafe {
            let (va, vb) = (vld1q_s16(a.as_ptr().add(p * NR)), vld1q_s16(b.as_ptr().add(p * NR)));
            let d = dst.as_mut_ptr().add(p * pw + cc * NR) as *mut i16;
            vst1q_s16(d, vzip1q_s16(va, vb));
            vst1q_s16(d.add(8), vzip2q_s16(va, vb));
        }
    }
}
