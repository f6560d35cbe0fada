//! aarch64 dot-product (ARMv8.2 `sdot`: the Raspberry Pi 5's Cortex-A76) int8 micro-kernel.
//!
//! Dense GEMM, "c4" layout: weights in blocks of 8 rows and columns in panels of 8 output
//! positions, both with 4 consecutive `k` contiguous. One `sdot` by element multiplies the 4×4
//! bytes of four columns by the 4 bytes of one row and adds 16 products into that row's i32
//! lanes for the four columns: an 8×8 register tile takes 16 `sdot` and two 32-byte loads per
//! 4 `k`. Exact for every int8 value (i32 accumulation), so no weight restriction. The
//! accumulators start at the biases and hold rows, so the epilogue requantises in registers and
//! stores each row's 8 bytes as they are.
//!
//! `sdot` is written with `asm!` (its intrinsics are not stable Rust yet), in functions compiled
//! with the `dotprod` target feature and called only when the CPU reports it.

use std::arch::aarch64::*;
use std::arch::asm;

use super::panels::{DirectPanels, PackedPanels, Panels};
use crate::kernels::tasks::Out;

/// Rows of a c4 weight block.
pub(crate) const MR: usize = 8;
/// Columns of a c4 panel.
pub(crate) const NR: usize = 8;
/// `k` per packed group.
pub(crate) const KC: usize = 4;

/// Packs `[m][k]` weights in this kernel's layout (see [`pack_blocks`](crate::kernels::packing::pack_blocks)).
pub(crate) fn pack_a(weights: &[i8], m: usize, k: usize) -> Vec<i8> {
    crate::kernels::packing::pack_blocks(weights, m, k, MR, KC)
}

/// Bytes of packed columns for `ncols` columns of `k` values.
pub(crate) fn packed_len(k: usize, ncols: usize) -> usize {
    ncols.div_ceil(NR) * k.div_ceil(KC) * NR * KC
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels
/// `[ncols / 8][k / 4][8][4]` (zero beyond `k`; columns beyond `ncols` are never stored).
///
/// # Safety
/// `src` holds `k` rows of `stride ≥ c0 + ncols` bytes; `packed` holds
/// [`packed_len`]`(k, ncols)` bytes.
pub(crate) unsafe fn pack_b(src: &[i8], k: usize, stride: usize, c0: usize, ncols: usize, packed: &mut [i8]) {
    debug_assert!(src.len() >= (k - 1) * stride + c0 + ncols && packed.len() >= packed_len(k, ncols));
    let kb = k.div_ceil(KC);
    let panel = kb * NR * KC;
    let full = ncols / 16;
    let s = src.as_ptr();
    let d = packed.as_mut_ptr();
    for b in 0..kb {
        let rows = (k - b * KC).min(KC);
        let at = |i: usize, j: usize| s.add((b * KC + i) * stride + c0 + 16 * j);
        for j in 0..full {
            // 4 rows (k) × 16 columns → each column's 4 bytes together, 8 columns per panel. A
            // full group's 4 loads unrolled, without a test per row; the last group's rows past
            // `k` zero.
            let r: [int8x16_t; 4] = if rows == KC {
                std::array::from_fn(|i| vld1q_s8(at(i, j)))
            } else {
                std::array::from_fn(|i| if i < rows { vld1q_s8(at(i, j)) } else { vdupq_n_s8(0) })
            };
            // `st4` interleaves the 4 rows' bytes: column c's 4 `k` together, 8 columns per
            // panel (one `st4` for each half of the 16 columns).
            let p0 = d.add(2 * j * panel + b * NR * KC);
            let p1 = d.add((2 * j + 1) * panel + b * NR * KC);
            vst4_s8(p0, int8x8x4_t(vget_low_s8(r[0]), vget_low_s8(r[1]), vget_low_s8(r[2]), vget_low_s8(r[3])));
            vst4_s8(p1, int8x8x4_t(vget_high_s8(r[0]), vget_high_s8(r[1]), vget_high_s8(r[2]), vget_high_s8(r[3])));
        }
        super::panels::pack_columns_tail(s.add(b * KC * stride + c0), stride, rows, d.add(b * NR * KC), panel, 16 * full..ncols, NR, KC);
    }
}

/// The `asm!` text of one group of 4 `k` in [`tile_asm`]: rows 0..4 and 4..8 of the weights in
/// registers `v$a0` and `v$a1`, columns 0..4 and 4..8 in `v$b0` and `v$b1`. Row `r`'s 4 bytes
/// (an element of `v$a0` or `v$a1`) multiply each column's 4 bytes: columns 0..4 of row `r` go
/// to accumulator `v16 + 2r`, columns 4..8 to `v17 + 2r`, so the accumulators hold rows.
#[rustfmt::skip]
macro_rules! sdot_products {
    ($a0:literal, $a1:literal, $b0:literal, $b1:literal) => {
        concat!(
            "sdot v16.4s, v", $b0, ".16b, v", $a0, ".4b[0]\n",
            "sdot v17.4s, v", $b1, ".16b, v", $a0, ".4b[0]\n",
            "sdot v18.4s, v", $b0, ".16b, v", $a0, ".4b[1]\n",
            "sdot v19.4s, v", $b1, ".16b, v", $a0, ".4b[1]\n",
            "sdot v20.4s, v", $b0, ".16b, v", $a0, ".4b[2]\n",
            "sdot v21.4s, v", $b1, ".16b, v", $a0, ".4b[2]\n",
            "sdot v22.4s, v", $b0, ".16b, v", $a0, ".4b[3]\n",
            "sdot v23.4s, v", $b1, ".16b, v", $a0, ".4b[3]\n",
            "sdot v24.4s, v", $b0, ".16b, v", $a1, ".4b[0]\n",
            "sdot v25.4s, v", $b1, ".16b, v", $a1, ".4b[0]\n",
            "sdot v26.4s, v", $b0, ".16b, v", $a1, ".4b[1]\n",
            "sdot v27.4s, v", $b1, ".16b, v", $a1, ".4b[1]\n",
            "sdot v28.4s, v", $b0, ".16b, v", $a1, ".4b[2]\n",
            "sdot v29.4s, v", $b1, ".16b, v", $a1, ".4b[2]\n",
            "sdot v30.4s, v", $b0, ".16b, v", $a1, ".4b[3]\n",
            "sdot v31.4s, v", $b1, ".16b, v", $a1, ".4b[3]\n",
        )
    };
}

/// Column loads, packed, from `{b}` (advanced): one group's into two registers, or (`pair`) two
/// groups' into `v4`–`v7` with one instruction.
macro_rules! sdot_cols_packed {
    ($c0:literal, $c1:literal) => {
        concat!("ld1 {{v", $c0, ".16b, v", $c1, ".16b}}, [{b}], #32\n")
    };
    (pair) => {
        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{b}], #64\n"
    };
}

/// Column loads read in place, at `{b}` plus the next offset of `{koff}` (advanced): one group's
/// into two registers, or (`pair`) two groups' into `v4`–`v7`.
macro_rules! sdot_cols_direct {
    ($c0:literal, $c1:literal) => {
        concat!("ldr {t}, [{koff}], #8\nadd {t}, {b}, {t}\nld1 {{v", $c0, ".16b, v", $c1, ".16b}}, [{t}]\n")
    };
    (pair) => {
        concat!(sdot_cols_direct!("4", "5"), sdot_cols_direct!("6", "7"))
    };
}

/// Two groups of 4 `k` in [`tile_asm`]'s loop: both groups' weights by one `ld1`, their columns
/// by macro `$cols`, then their products.
macro_rules! sdot_pair {
    ($cols:ident) => {
        concat!("ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64\n", $cols!(pair), sdot_products!("0", "1", "4", "5"), sdot_products!("2", "3", "6", "7"),)
    };
}

/// The loop of [`tile_asm`] with the column loads of macro `$cols` (and their operands): an odd
/// group first, then pairs of groups per iteration, whose weights one `ld1` loads.
macro_rules! sdot_tile {
    ($acc:ident, $cols:ident, $kb:expr; $($operands:tt)*) => {
        asm!(
            "tbz {rem}, #0, 3f",
            "ld1 {{v0.16b, v1.16b}}, [{a}], #32",
            $cols!("2", "3"),
            sdot_products!("0", "1", "2", "3"),
            "3:",
            "tbz {rem}, #1, 5f",
            sdot_pair!($cols),
            "5:",
            "lsr {rem}, {rem}, #2",
            "cbz {rem}, 4f",
            "2:",
            sdot_pair!($cols),
            sdot_pair!($cols),
            "subs {rem}, {rem}, #1",
            "b.ne 2b",
            "4:",
            $($operands)*
            rem = inout(reg) $kb => _,
            inout("v16") $acc[0], inout("v17") $acc[1], inout("v18") $acc[2], inout("v19") $acc[3],
            inout("v20") $acc[4], inout("v21") $acc[5], inout("v22") $acc[6], inout("v23") $acc[7],
            inout("v24") $acc[8], inout("v25") $acc[9], inout("v26") $acc[10], inout("v27") $acc[11],
            inout("v28") $acc[12], inout("v29") $acc[13], inout("v30") $acc[14], inout("v31") $acc[15],
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            options(nostack, readonly),
        )
    };
}

/// The 8×8 register tile over `kb` groups of 4 `k`, starting from `init` (each row's bias in
/// its two accumulators): `acc[2·r + h]` holds columns `4h..4h + 4` of row `r`. For a packed panel
/// (groups of `NR · KC` bytes one after the other, `koff` null) or one read in place (group `g`
/// at `b + koff[g]`). In `asm!`: `ld1` of two or four registers with post-increment loads the
/// weights of one or two groups in one instruction, and the loop takes four groups per
/// iteration (after a single group and a pair, by the count's low bits; two packed groups cost
/// 36 instructions, 32 of them `sdot`), against about 44 per two groups in the loop of
/// intrinsics it replaced (8 loads, address arithmetic).
///
/// # Safety
/// The CPU has the dot product; `a` is readable for `kb · MR · KC` bytes; `b` for
/// `kb · NR · KC` when `koff` is null, else `koff` for `kb` offsets and `b + koff[g]` for
/// `NR · KC` bytes for each `g < kb`; `kb ≥ 1`.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn tile_asm(a: *const i8, b: *const i8, koff: *const usize, kb: usize, init: [int32x4_t; 16]) -> [int32x4_t; 16] {
    const { assert!(MR == 8 && NR == 8 && KC == 4) };
    debug_assert!(kb >= 1);
    let mut acc = init;
    if koff.is_null() {
        sdot_tile!(acc, sdot_cols_packed, kb; a = inout(reg) a => _, b = inout(reg) b => _,);
    } else {
        sdot_tile!(acc, sdot_cols_direct, kb; a = inout(reg) a => _, b = in(reg) b, koff = inout(reg) koff => _, t = out(reg) _,);
    }
    acc
}

/// One group of 4 `k` in [`tile_cols`] for the first `$cols` columns: column `c`'s 4 bytes
/// (element `c` of `v$b`) multiply rows 0..4 (`v$a0`) into accumulator `v16 + 2c` and rows
/// 4..8 (`v$a1`) into `v17 + 2c`, so the accumulators hold columns.
#[rustfmt::skip]
macro_rules! sdot_col_products {
    ($a0:literal, $a1:literal, $b:literal, 1) => {
        concat!(
            "sdot v16.4s, v", $a0, ".16b, v", $b, ".4b[0]\n", "sdot v17.4s, v", $a1, ".16b, v", $b, ".4b[0]\n",
        )
    };
    ($a0:literal, $a1:literal, $b:literal, 2) => {
        concat!(
            sdot_col_products!($a0, $a1, $b, 1),
            "sdot v18.4s, v", $a0, ".16b, v", $b, ".4b[1]\n", "sdot v19.4s, v", $a1, ".16b, v", $b, ".4b[1]\n",
        )
    };
    ($a0:literal, $a1:literal, $b:literal, 3) => {
        concat!(
            sdot_col_products!($a0, $a1, $b, 2),
            "sdot v20.4s, v", $a0, ".16b, v", $b, ".4b[2]\n", "sdot v21.4s, v", $a1, ".16b, v", $b, ".4b[2]\n",
        )
    };
    ($a0:literal, $a1:literal, $b:literal, 4) => {
        concat!(
            sdot_col_products!($a0, $a1, $b, 3),
            "sdot v22.4s, v", $a0, ".16b, v", $b, ".4b[3]\n", "sdot v23.4s, v", $a1, ".16b, v", $b, ".4b[3]\n",
        )
    };
}

/// The tile of a packed panel with only `cols` (1..=4) real columns, the last panel of a column
/// count that is not a multiple of 8 (a 14×14 layer's 196 columns end with 4, a 7×7 layer's 49
/// with 1): the 8 rows against those columns only, by the columns' elements, so the
/// accumulators hold columns (`acc[2c + h]`: rows `4h..4h + 4` of column `c`, from `init`, the
/// rows' biases). Two packed groups cost `4 + 4 · cols` instructions where the 8×8 tile's
/// cost about 36. Accumulators of columns past `cols` keep `init`.
///
/// # Safety
/// The CPU has the dot product; `a` is readable for `kb · MR · KC` bytes and `b` for
/// `kb · NR · KC`; `kb ≥ 1`; `cols` in 1..=4.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn tile_cols(a: *const i8, b: *const i8, kb: usize, cols: usize, init: [int32x4_t; 2]) -> [int32x4_t; 8] {
    const { assert!(MR == 8 && NR == 8 && KC == 4) };
    debug_assert!(kb >= 1 && (1..=4).contains(&cols));
    let mut acc: [int32x4_t; 8] = std::array::from_fn(|i| init[i % 2]);
    let step = NR * KC;
    macro_rules! cols {
        ($cols:tt) => {
            asm!(
                "tbz {rem}, #0, 3f",
                "ld1 {{v0.16b, v1.16b}}, [{a}], #32",
                "ld1 {{v4.16b}}, [{b}], {step}",
                sdot_col_products!("0", "1", "4", $cols),
                "3:",
                "lsr {rem}, {rem}, #1",
                "cbz {rem}, 4f",
                "2:",
                "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64",
                "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{b}], #64",
                sdot_col_products!("0", "1", "4", $cols),
                sdot_col_products!("2", "3", "6", $cols),
                "subs {rem}, {rem}, #1",
                "b.ne 2b",
                "4:",
                rem = inout(reg) kb => _, a = inout(reg) a => _, b = inout(reg) b => _, step = in(reg) step,
                inout("v16") acc[0], inout("v17") acc[1], inout("v18") acc[2], inout("v19") acc[3],
                inout("v20") acc[4], inout("v21") acc[5], inout("v22") acc[6], inout("v23") acc[7],
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                options(nostack, readonly),
            )
        };
    }
    match cols {
        1 => cols!(1),
        2 => cols!(2),
        3 => cols!(3),
        _ => cols!(4),
    }
    acc
}

/// The dot product's full tiles over the column panels of [`Panels`] (the `asm!` loop of
/// [`packed_tiles`]; none for panels read in place).
pub(crate) trait DotPanels: Panels {
    /// The full tiles of the leading panels that [`packed_tiles`]' loop can take (packed
    /// panels, all but a partial last one), accumulators starting at `init` (the 8 rows'
    /// biases), requantised and stored to the 8 rows from `dst` (row length `n`); returns how
    /// many panels it took (none for panels read in place).
    ///
    /// # Safety
    /// As [`packed_tiles`]'s for the panels taken; the CPU has the dot product.
    #[allow(clippy::too_many_arguments)]
    unsafe fn full_tiles(&self, a: *const i8, kb: usize, init: [std::arch::aarch64::int32x4_t; 2], sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize;
}

impl<const STEP: usize, const PNR: usize, const HALF: bool> DotPanels for PackedPanels<STEP, PNR, HALF> {
    #[inline(always)]
    unsafe fn full_tiles(&self, a: *const i8, kb: usize, init: [std::arch::aarch64::int32x4_t; 2], sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize {
        // SAFETY: `packed_tiles`' contract is this function's (the CPU has the dot product).
        unsafe {
            const { assert!(STEP == NR * KC && PNR == NR && !HALF) };
            // The loop reaches each panel from the previous one's last group.
            assert_eq!(self.panel, kb * STEP, "packed panels of another k");
            let full = self.ncols / NR;
            if full > 0 {
                packed_tiles(a, self.packed, kb, full, init, sq, zp, dst.add(self.col0), n);
            }
            full
        }
    }
}

impl DotPanels for DirectPanels<'_> {
    #[inline(always)]
    unsafe fn full_tiles(&self, _: *const i8, _: usize, _: [std::arch::aarch64::int32x4_t; 2], _: *const f32, _: i32, _: *mut i8, _: usize) -> usize {
        0
    }
}

/// The GEMM of some column panels with the requantisation: `y[row][col + c]` for every row
/// `< m` and each panel's real columns, from weights packed by [`pack_a`] (`kb` groups of 4 per
/// row) and columns packed by [`pack_b`] or read in place. The requantisation is
/// [`Requant::one`](crate::kernels::Requant)'s, exactly (see [`super::neon::requant4`]),
/// with per-row bias and scale in the lanes.
///
/// # Safety
/// The CPU has the dot product; `a` is as packed for `m` and `kb`, each panel's groups
/// readable; `bias`/`scale` hold `m` values; the caller owns the panels' output columns of the
/// `m` rows of `y` (row length `n`).
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<P: DotPanels>(a: &[i8], kb: usize, m: usize, panels: &P, bias: &[i32], scale: &[f32], zp: i32, y: Out, n: usize) {
    assert!(kb > 0, "k = 0");
    let zp16 = vdupq_n_s16(zp as i16);
    let (y, len) = y.raw();
    assert!(m == 0 || panels.count() == 0 || (panels.within(n) && m * n <= len), "GEMM panels past the output");
    for blk in 0..m.div_ceil(MR) {
        let ab = a.as_ptr().add(blk * kb * MR * KC);
        let rows = (m - blk * MR).min(MR);
        let bs: [i32; MR] = super::panels::block_of(bias, blk * MR, rows);
        let ss: [f32; MR] = super::panels::block_of(scale, blk * MR, rows);
        let quads = [vld1q_s32(bs.as_ptr()), vld1q_s32(bs.as_ptr().add(4))];
        // Row r's bias in both of its accumulators.
        let init: [int32x4_t; 16] = std::array::from_fn(|i| vdupq_n_s32(bs[i / 2]));
        // Packed panels' full tiles in one `asm!` loop; the rest tile by tile.
        let first = if rows == MR { panels.full_tiles(ab, kb, quads, ss.as_ptr(), zp, y.add(blk * MR * n), n) } else { 0 };
        if first > 0 {
            trace!("dot.full_tiles");
        }
        for p in first..panels.count() {
            let (cols_at, col0, cols) = panels.panel(p);
            let (b, koff, step) = super::panels::Cols::parts(cols_at);
            // Packed panels of this kernel's layout or panels read in place (both known when
            // this is compiled for a panel type, so the check costs nothing).
            assert!(!koff.is_null() || step == NR * KC, "panels packed for another kernel");
            let dst = y.add(blk * MR * n + col0);
            if koff.is_null() && cols <= 4 {
                trace!("dot.cols");
                // Each column's 8 rows requantised with the rows' scales (lanes), plus zp,
                // saturated to i8: the same operations on each value as below.
                let acc = tile_cols(ab, b, kb, cols, quads);
                let (s0, s1) = (vld1q_f32(ss.as_ptr()), vld1q_f32(ss.as_ptr().add(4)));
                for c in 0..cols {
                    let q0 = vcvtnq_s32_f32(vmulq_f32(vcvtq_f32_s32(acc[2 * c]), s0));
                    let q1 = vcvtnq_s32_f32(vmulq_f32(vcvtq_f32_s32(acc[2 * c + 1]), s1));
                    let mut tmp = [0i8; MR];
                    vst1_s8(tmp.as_mut_ptr(), vqmovn_s16(vqaddq_s16(vqmovn_high_s32(vqmovn_s32(q0), q1), zp16)));
                    for (r, &v) in tmp[..rows].iter().enumerate() {
                        *dst.add(r * n + c) = v;
                    }
                }
                continue;
            }
            let acc = tile_asm(ab, b, koff, kb, init);
            if rows == MR && cols == NR {
                trace!("dot.tile");
                requant_store_tile(acc, ss.as_ptr(), zp, dst, n);
                continue;
            }
            trace!("dot.partial");
            // Row r's 8 columns: requantised, plus zp, saturated to i8 (as neon::requant4).
            for r in 0..rows {
                let q0 = vcvtnq_s32_f32(vmulq_n_f32(vcvtq_f32_s32(acc[2 * r]), ss[r]));
                let q1 = vcvtnq_s32_f32(vmulq_n_f32(vcvtq_f32_s32(acc[2 * r + 1]), ss[r]));
                let v = vqmovn_s16(vqaddq_s16(vqmovn_high_s32(vqmovn_s32(q0), q1), zp16));
                if cols == NR {
                    vst1_s8(dst.add(r * n), v);
                } else {
                    let mut tmp = [0i8; NR];
                    vst1_s8(tmp.as_mut_ptr(), v);
                    super::panels::copy_short(tmp.as_ptr(), dst.add(r * n), cols);
                }
            }
        }
    }
}

/// The `asm!` text of [`requant_store_tile`]: the 8×8 tile's accumulators (`v16`–`v31`, rows)
/// requantised with the scales at `{sq}` and the zero point `{zp}` and stored as 8 rows of 8
/// bytes from `{d}` (advanced by `{n}` after each of the first 7); clobbers `v0`–`v2`.
#[rustfmt::skip]
macro_rules! sdot_epilogue {
    () => {
        concat!(
            "ld1 {{v0.4s, v1.4s}}, [{sq}]\n",
            "dup v2.8h, {zp:w}\n",
            // acc[2r + h] (v16 + 2r + h): row r, columns 4h..4h + 4.
            "scvtf v16.4s, v16.4s\n", "scvtf v17.4s, v17.4s\n", "scvtf v18.4s, v18.4s\n", "scvtf v19.4s, v19.4s\n",
            "scvtf v20.4s, v20.4s\n", "scvtf v21.4s, v21.4s\n", "scvtf v22.4s, v22.4s\n", "scvtf v23.4s, v23.4s\n",
            "scvtf v24.4s, v24.4s\n", "scvtf v25.4s, v25.4s\n", "scvtf v26.4s, v26.4s\n", "scvtf v27.4s, v27.4s\n",
            "scvtf v28.4s, v28.4s\n", "scvtf v29.4s, v29.4s\n", "scvtf v30.4s, v30.4s\n", "scvtf v31.4s, v31.4s\n",
            // Each row times its scale (lane r % 4 of v0 or v1).
            "fmul v16.4s, v16.4s, v0.s[0]\n", "fmul v17.4s, v17.4s, v0.s[0]\n", "fmul v18.4s, v18.4s, v0.s[1]\n", "fmul v19.4s, v19.4s, v0.s[1]\n",
            "fmul v20.4s, v20.4s, v0.s[2]\n", "fmul v21.4s, v21.4s, v0.s[2]\n", "fmul v22.4s, v22.4s, v0.s[3]\n", "fmul v23.4s, v23.4s, v0.s[3]\n",
            "fmul v24.4s, v24.4s, v1.s[0]\n", "fmul v25.4s, v25.4s, v1.s[0]\n", "fmul v26.4s, v26.4s, v1.s[1]\n", "fmul v27.4s, v27.4s, v1.s[1]\n",
            "fmul v28.4s, v28.4s, v1.s[2]\n", "fmul v29.4s, v29.4s, v1.s[2]\n", "fmul v30.4s, v30.4s, v1.s[3]\n", "fmul v31.4s, v31.4s, v1.s[3]\n",
            "fcvtns v16.4s, v16.4s\n", "fcvtns v17.4s, v17.4s\n", "fcvtns v18.4s, v18.4s\n", "fcvtns v19.4s, v19.4s\n",
            "fcvtns v20.4s, v20.4s\n", "fcvtns v21.4s, v21.4s\n", "fcvtns v22.4s, v22.4s\n", "fcvtns v23.4s, v23.4s\n",
            "fcvtns v24.4s, v24.4s\n", "fcvtns v25.4s, v25.4s\n", "fcvtns v26.4s, v26.4s\n", "fcvtns v27.4s, v27.4s\n",
            "fcvtns v28.4s, v28.4s\n", "fcvtns v29.4s, v29.4s\n", "fcvtns v30.4s, v30.4s\n", "fcvtns v31.4s, v31.4s\n",
            // Row r's 8 columns as i16 in v16 + 2r, plus the zero point.
            "sqxtn v16.4h, v16.4s\n", "sqxtn2 v16.8h, v17.4s\n", "sqxtn v18.4h, v18.4s\n", "sqxtn2 v18.8h, v19.4s\n",
            "sqxtn v20.4h, v20.4s\n", "sqxtn2 v20.8h, v21.4s\n", "sqxtn v22.4h, v22.4s\n", "sqxtn2 v22.8h, v23.4s\n",
            "sqxtn v24.4h, v24.4s\n", "sqxtn2 v24.8h, v25.4s\n", "sqxtn v26.4h, v26.4s\n", "sqxtn2 v26.8h, v27.4s\n",
            "sqxtn v28.4h, v28.4s\n", "sqxtn2 v28.8h, v29.4s\n", "sqxtn v30.4h, v30.4s\n", "sqxtn2 v30.8h, v31.4s\n",
            "sqadd v16.8h, v16.8h, v2.8h\n", "sqadd v18.8h, v18.8h, v2.8h\n", "sqadd v20.8h, v20.8h, v2.8h\n", "sqadd v22.8h, v22.8h, v2.8h\n",
            "sqadd v24.8h, v24.8h, v2.8h\n", "sqadd v26.8h, v26.8h, v2.8h\n", "sqadd v28.8h, v28.8h, v2.8h\n", "sqadd v30.8h, v30.8h, v2.8h\n",
            // Rows 2j and 2j + 1 as i8 in v16 + 4j.
            "sqxtn v16.8b, v16.8h\n", "sqxtn2 v16.16b, v18.8h\n", "sqxtn v20.8b, v20.8h\n", "sqxtn2 v20.16b, v22.8h\n",
            "sqxtn v24.8b, v24.8h\n", "sqxtn2 v24.16b, v26.8h\n", "sqxtn v28.8b, v28.8h\n", "sqxtn2 v28.16b, v30.8h\n",
            "st1 {{v16.d}}[0], [{d}], {n}\n", "st1 {{v16.d}}[1], [{d}], {n}\n",
            "st1 {{v20.d}}[0], [{d}], {n}\n", "st1 {{v20.d}}[1], [{d}], {n}\n",
            "st1 {{v24.d}}[0], [{d}], {n}\n", "st1 {{v24.d}}[1], [{d}], {n}\n",
            "st1 {{v28.d}}[0], [{d}], {n}\n", "st1 {{v28.d}}[1], [{d}]\n",
        )
    };
}

/// The epilogue of a full 8×8 tile of [`gemm`], in `asm!`: the steps of its general path (each
/// row's 8 columns requantised with its scale, narrowed with the zero point) with the same
/// instructions in the same order, so the same results, then two rows' 16 bytes per register
/// stored `n` apart straight from the vector registers. 90 instructions. The accumulators hold
/// rows, so nothing is transposed (when they held columns, the transpose to rows took 12 more).
/// `sq` holds the 8 rows' scales.
///
/// # Safety
/// `sq` is readable for 8 `f32`; `dst + r · n` is writable for 8 bytes for each row `r < 8`.
#[inline(always)]
unsafe fn requant_store_tile(acc: [int32x4_t; 16], sq: *const f32, zp: i32, dst: *mut i8, n: usize) {
    asm!(
        sdot_epilogue!(),
        sq = in(reg) sq, zp = in(reg) zp, d = inout(reg) dst => _, n = in(reg) n,
        inout("v16") acc[0] => _, inout("v17") acc[1] => _, inout("v18") acc[2] => _, inout("v19") acc[3] => _,
        inout("v20") acc[4] => _, inout("v21") acc[5] => _, inout("v22") acc[6] => _, inout("v23") acc[7] => _,
        inout("v24") acc[8] => _, inout("v25") acc[9] => _, inout("v26") acc[10] => _, inout("v27") acc[11] => _,
        inout("v28") acc[12] => _, inout("v29") acc[13] => _, inout("v30") acc[14] => _, inout("v31") acc[15] => _,
        out("v0") _, out("v1") _, out("v2") _,
        options(nostack, preserves_flags),
    );
}

/// The full 8×8 tiles of `np ≥ 1` consecutive packed panels (each `kb` groups, as [`pack_b`]
/// lays them out) against one weight block, in one `asm!` loop: per tile, the accumulators set
/// to the biases (`init`: rows 0..4 and 4..8), [`tile_asm`]'s groups, [`requant_store_tile`]'s epilogue, then the next
/// panel, whose columns the loads have reached already. Same instructions as the tile-by-tile
/// path, so the same results, without its per-tile setup (the full-tile tests, the epilogue's
/// addresses).
///
/// # Safety
/// The CPU has the dot product; `a` is readable for `kb · MR · KC` bytes and `b` for
/// `np · kb · NR · KC`; `kb ≥ 1`; `sq` for 8 `f32`; `dst + r · n + 8p` is writable for 8 bytes
/// for each row `r < 8` and panel `p < np`.
#[inline]
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed_tiles(a: *const i8, b: *const i8, kb: usize, np: usize, init: [int32x4_t; 2], sq: *const f32, zp: i32, dst: *mut i8, n: usize) {
    const { assert!(MR == 8 && NR == 8 && KC == 4) };
    debug_assert!(np >= 1 && kb >= 1);
    #[rustfmt::skip]
    asm!(
        "1:",
        "mov {a}, {a0}",
        "mov {rem}, {kb}",
        // The accumulators start at the biases: row r's (lane r % 4 of v8 or v9) in v16 + 2r
        // and v17 + 2r.
        "dup v16.4s, v8.s[0]", "dup v17.4s, v8.s[0]", "dup v18.4s, v8.s[1]", "dup v19.4s, v8.s[1]",
        "dup v20.4s, v8.s[2]", "dup v21.4s, v8.s[2]", "dup v22.4s, v8.s[3]", "dup v23.4s, v8.s[3]",
        "dup v24.4s, v9.s[0]", "dup v25.4s, v9.s[0]", "dup v26.4s, v9.s[1]", "dup v27.4s, v9.s[1]",
        "dup v28.4s, v9.s[2]", "dup v29.4s, v9.s[2]", "dup v30.4s, v9.s[3]", "dup v31.4s, v9.s[3]",
        "tbz {rem}, #0, 3f",
        "ld1 {{v0.16b, v1.16b}}, [{a}], #32",
        sdot_cols_packed!("2", "3"),
        sdot_products!("0", "1", "2", "3"),
        "3:",
        "tbz {rem}, #1, 5f",
        sdot_pair!(sdot_cols_packed),
        "5:",
        "lsr {rem}, {rem}, #2",
        "cbz {rem}, 4f",
        "2:",
        sdot_pair!(sdot_cols_packed),
        sdot_pair!(sdot_cols_packed),
        "subs {rem}, {rem}, #1",
        "b.ne 2b",
        "4:",
        "mov {d}, {dst}",
        sdot_epilogue!(),
        "add {dst}, {dst}, #8",
        "subs {np}, {np}, #1",
        "b.ne 1b",
        a0 = in(reg) a, a = out(reg) _, b = inout(reg) b => _, rem = out(reg) _, kb = in(reg) kb,
        np = inout(reg) np => _, dst = inout(reg) dst => _, d = out(reg) _, n = in(reg) n,
        sq = in(reg) sq, zp = in(reg) zp,
        in("v8") init[0], in("v9") init[1],
        out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
        out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
        out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
        options(nostack),
    );
}

/// A depthwise convolution with `sdot`, reading the padded int8 plane in place: for a tile of
/// 16 outputs, accumulator `q` (4 lanes) holds outputs `o(q, j)`: `4j + q` at stride 1,
/// `8⌊q/2⌋ + 2j + q % 2` at stride 2, whose taps `x(S·o + kx)` for a group of 4 `kx` are 4
/// consecutive bytes from `S·o + 4g`; so one 16-byte load at `p + off(q, g)` gives the 4 lanes'
/// groups (`off = q + 4g` at stride 1, `16⌊q/2⌋ + 2(q % 2) + 4g` at stride 2), and one `sdot`
/// multiplies them by the row's 4 weights. A 3×3 row takes 4 loads + 4 `sdot` per 16 outputs
/// (it took 2 loads + 4 `tbl` + 4 `sdot` at stride 1, 4 + 4 + 4 from two column phases at
/// stride 2); the requantised bytes are put in output order by one `tbl` ([`Depthwise::perm`]).
/// The plane is padded with the input zero point, whose products the folded bias cancels
/// (`bias − z_x · Σ w`), so nothing is widened; stride 2 reads the plane as it is (no phases).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Depthwise {
    kh: usize,
    stride: usize,
    /// Groups of 4 taps per kernel row (`kw / 4` rounded up).
    groups: usize,
    /// `[c][kh][groups][16]`: the row's 4 weights of the group (0 past the kernel), repeated
    /// for the 4 lanes.
    wdot: Vec<i8>,
    /// Bias with the input zero point folded in.
    bias: Vec<i32>,
}

impl Depthwise {
    /// The `sdot` form of a depthwise convolution of `[c][kh][kw]` weights, or `None` where it
    /// does not apply (strides other than 1 and 2 or unequal, dilation, kw > 8).
    pub(crate) fn new(kh: usize, kw: usize, stride: (usize, usize), dilation: (usize, usize), weights: &[i8], bias: &[i32], x_zp: i8) -> Option<Self> {
        let s = stride.0;
        if stride.0 != stride.1 || !(1..=2).contains(&s) || dilation != (1, 1) || kw == 0 || kw > 8 || kh == 0 {
            return None;
        }
        let taps = kh * kw;
        if weights.len() != taps * bias.len() {
            return None;
        }
        let groups = kw.div_ceil(4);
        let c = bias.len();
        let mut wdot = vec![0i8; c * kh * groups * 16];
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let (g, i) = (kx / 4, kx % 4);
                    for j in 0..4 {
                        wdot[((ch * kh + ky) * groups + g) * 16 + 4 * j + i] = weights[ch * taps + ky * kw + kx];
                    }
                }
            }
        }
        Some(Depthwise { kh, stride: s, groups, wdot, bias: crate::kernels::requant::fold_zero_point(bias, weights, taps, x_zp) })
    }

    /// Bytes held: replicated weights, biases.
    pub(crate) fn held_bytes(&self) -> usize {
        self.wdot.len() + 4 * self.bias.len()
    }

    /// Bytes a tile may read past the last row's start of its last output: the caller's slack.
    pub(crate) const SLACK: usize = 64;

    /// The offset from a tile's first input of accumulator `q`'s load for group `g`.
    #[inline(always)]
    const fn off(s2: bool, q: usize, g: usize) -> usize {
        if s2 {
            16 * (q / 2) + 2 * (q % 2) + 4 * g
        } else {
            q + 4 * g
        }
    }

    /// The `tbl` indices that put the narrowed accumulators (byte `4q + j` holds output
    /// `o(q, j)`) in output order.
    fn perm(s2: bool) -> [u8; 16] {
        let mut p = [0u8; 16];
        for q in 0..4 {
            for j in 0..4 {
                let o = if s2 { 8 * (q / 2) + 2 * j + q % 2 } else { 4 * j + q };
                p[o] = (4 * q + j) as u8;
            }
        }
        p
    }

    /// One channel (see [`Channel`]).
    ///
    /// # Safety
    /// The CPU has the dot product.
    ///
    /// # Panics
    /// If a tile would read past `planes` or `out` is not `oh · ow` long.
    #[target_feature(enable = "dotprod")]
    pub(crate) unsafe fn channel(&self, a: Channel) {
        let Channel { planes, pw, row_step, oh, ow, ref out, .. } = a;
        assert_eq!(out.len(), oh * ow);
        if oh == 0 || ow == 0 {
            return;
        }
        let last_tile = (ow - 1) / 16 * 16;
        let s2 = self.stride == 2;
        // The last tile's furthest load: the last accumulator's of the last group, 16 bytes.
        let reach = Self::off(s2, 3, self.groups - 1) + 16;
        assert!((oh - 1) * row_step + (self.kh - 1) * pw + self.stride * last_tile + reach <= planes.len(), "depthwise tile past the plane");
        // The usual sizes unrolled, their weights in registers: 3×3 and 5×5 at strides 1 and 2.
        match (s2, self.kh, self.groups) {
            (false, 3, 1) => self.tiles_3x3_rows2(a),
            (true, 3, 1) => self.tiles::<true, 3, 1>(a),
            (false, 5, 2) => self.tiles::<false, 5, 2>(a),
            (true, 5, 2) => self.tiles::<true, 5, 2>(a),
            (false, _, _) => self.tiles::<false, 0, 0>(a),
            (true, _, _) => self.tiles::<true, 0, 0>(a),
        }
    }

    /// A 3×3 stride-1 channel two output rows at a time: the 4 input rows they read are each
    /// loaded once, and each load feeds both rows' `sdot`s (input row `r` is kernel row `r` of
    /// the first output row and `r − 1` of the second), so 16 × 2 outputs take 16 loads instead
    /// of 24. The same sums in the same order as [`tiles`](Self::tiles) (kernel rows 0, 1, 2
    /// into accumulators that start at the bias), so the same results. An odd last row goes
    /// through `tiles`.
    ///
    /// # Safety
    /// As checked by `channel` (a 3×3 kernel, stride 1, one group per row); the CPU has the dot
    /// product.
    #[target_feature(enable = "dotprod")]
    unsafe fn tiles_3x3_rows2(&self, a: Channel) {
        let Channel { c, planes, pw, row_step, scale, zp, oh, ow, out } = a;
        debug_assert!(self.kh == 3 && self.groups == 1 && self.stride == 1);
        let pairs = oh / 2;
        {
            let (p0, o0) = (planes.as_ptr(), out.as_mut_ptr());
            let w = self.wdot.as_ptr().add(c * 3 * 16);
            let wr = [vld1q_s8(w), vld1q_s8(w.add(16)), vld1q_s8(w.add(32))];
            let perm = vld1q_u8(Self::perm(false).as_ptr());
            let b = vdupq_n_s32(self.bias[c]);
            let zp16 = vdupq_n_s16(zp as i16);
            for pair in 0..pairs {
                let oy = 2 * pair;
                let row = p0.add(oy * row_step);
                let (dst0, dst1) = (o0.add(oy * ow), o0.add((oy + 1) * ow));
                let mut ox = 0;
                while ox < ow {
                    let (mut acc0, mut acc1) = ([b; 4], [b; 4]);
                    for r in 0..4 {
                        let p = row.add(r * pw + ox);
                        for q in 0..4 {
                            let taps = vld1q_s8(p.add(Self::off(false, q, 0)));
                            if r < 3 {
                                asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc0[q], a = in(vreg) taps, b = in(vreg) wr[r],
                                     options(pure, nomem, nostack, preserves_flags));
                            }
                            if r > 0 {
                                asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc1[q], a = in(vreg) taps, b = in(vreg) wr[r - 1],
                                     options(pure, nomem, nostack, preserves_flags));
                            }
                        }
                    }
                    let y0 = vqtbl1q_s8(super::neon::requant16(acc0, scale, zp16), perm);
                    let y1 = vqtbl1q_s8(super::neon::requant16(acc1, scale, zp16), perm);
                    let n = (ow - ox).min(16);
                    if n == 16 {
                        vst1q_s8(dst0.add(ox), y0);
                        vst1q_s8(dst1.add(ox), y1);
                    } else {
                        super::neon::store_first(dst0.add(ox), y0, n);
                        super::neon::store_first(dst1.add(ox), y1, n);
                    }
                    ox += 16;
                }
            }
        }
        if oh % 2 == 1 {
            let last = (oh - 1) * row_step;
            let out = &mut out[(oh - 1) * ow..];
            self.tiles::<false, 3, 1>(Channel { c, planes: &planes[last..], pw, row_step, scale, zp, oh: 1, ow, out });
        }
    }

    /// [`channel`](Self::channel)'s loops for stride 2 or 1 (`S2`), with `KH` kernel rows of
    /// `G` groups unrolled (`KH = 0`: the layer's, each weight loaded where it is used).
    ///
    /// # Safety
    /// As checked by `channel`; the CPU has the dot product.
    #[target_feature(enable = "dotprod")]
    unsafe fn tiles<const S2: bool, const KH: usize, const G: usize>(&self, a: Channel) {
        let Channel { c, planes, pw, row_step, scale, zp, oh, ow, out } = a;
        let (planes, out) = (planes.as_ptr(), out.as_mut_ptr());
        let (kh, groups) = if KH > 0 { (KH, G) } else { (self.kh, self.groups) };
        let w = self.wdot.as_ptr().add(c * kh * groups * 16);
        // Kernel row ky, group g: the row's 4 weights (of the group) for each of 4 outputs.
        let wreg: [[int8x16_t; 2]; 5] =
            std::array::from_fn(|ky| std::array::from_fn(|g| if ky < KH && g < G { vld1q_s8(w.add((ky * G + g) * 16)) } else { vdupq_n_s8(0) }));
        let weights = |ky: usize, g: usize| if KH > 0 { wreg[ky][g] } else { vld1q_s8(w.add((ky * groups + g) * 16)) };
        let perm = vld1q_u8(Self::perm(S2).as_ptr());
        let step = if S2 { 2 } else { 1 };
        super::neon::dw_tiles::<true>(planes, row_step, step, oh, ow, out, self.bias[c], scale, zp, perm, |p, acc| {
            for ky in 0..kh {
                let p = p.add(ky * pw);
                for g in 0..groups {
                    let wv = weights(ky, g);
                    for (q, a) in acc.iter_mut().enumerate() {
                        let taps = vld1q_s8(p.add(Self::off(S2, q, g)));
                        asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) *a, a = in(vreg) taps, b = in(vreg) wv,
                             options(pure, nomem, nostack, preserves_flags));
                    }
                }
            }
        });
    }
}

/// One channel of a depthwise convolution for [`Depthwise::channel`]: `out[oy][ox]` (`oh × ow`)
/// from the padded int8 plane `planes` (row length `pw`, whole: no column phases), output row
/// `oy` starting at `oy · row_step`.
pub(crate) struct Channel<'a> {
    pub(crate) c: usize,
    pub(crate) planes: &'a [i8],
    pub(crate) pw: usize,
    pub(crate) row_step: usize,
    pub(crate) scale: f32,
    pub(crate) zp: i32,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    pub(crate) out: &'a mut [i8],
}
