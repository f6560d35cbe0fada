//! aarch64 NEON (ARMv8.0: the Raspberry Pi 3 and 4) int8 micro-kernels, each checked against
//! the portable reference by the kernel tests (which run every kernel set the CPU has): the
//! dense GEMM here, the depthwise form in [`depthwise`], row copies and interleaving in
//! [`rows`], the element-wise kernels in [`elementwise`].
//!
//! Dense GEMM, "c16" layout: the weights of a block of 4 rows and the columns of a panel of 4
//! output positions are both packed with 16 consecutive `k` contiguous, so one `smull` (8
//! products into i16) and one `smlal2` (8 more, added pairwise) followed by one `sadalp`
//! (pairs into 4 i32 lanes) compute 16 multiply-adds of one (row, column) pair in 3
//! instructions. Two int8 products fit i16 only while the weights avoid −128 (`|w| ≤ 127`,
//! `|x| ≤ 128`: 2 · 16256 < 2¹⁵), which symmetric quantizers guarantee; a layer with a −128
//! weight stays on the portable kernel (checked at load). The requantisation happens in
//! registers with saturating narrowing, which equals the portable clamp-then-round exactly
//! (see [`requant4`]).

use std::arch::aarch64::*;

mod depthwise;
mod elementwise;
mod rows;
mod simd;

pub(crate) use depthwise::{dw_tiles, store_first, Depthwise};
pub(crate) use elementwise::ELEMENTWISE;
pub(crate) use rows::{copy_rows, deal_plane, evens, interleave16, interleave4};
pub(crate) use simd::{narrow_zp, requant16, requant4, transpose16};

use super::panels::{Direct, DirectPanels, Packed, PackedPanels, Panels};

use crate::kernels::tasks::Out;

/// Rows of a c16 weight block.
pub(crate) const MR: usize = 4;
/// Columns of a c16 panel.
pub(crate) const NR: usize = 4;
/// `k` per packed group.
pub(crate) const KC: usize = 16;

/// Packs `[m][k]` weights in this kernel's layout (see [`pack_blocks`](crate::kernels::packing::pack_blocks)).
pub(crate) fn pack_a(weights: &[i8], m: usize, k: usize) -> Vec<i8> {
    crate::kernels::packing::pack_blocks(weights, m, k, MR, KC)
}

/// Bytes of packed columns for `ncols` columns of `k` values.
pub(crate) fn packed_len(k: usize, ncols: usize) -> usize {
    ncols.div_ceil(NR) * k.div_ceil(KC) * NR * KC
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels
/// `[ncols / 4][k / 16][4][16]` (zero beyond `k`; columns beyond `ncols` are left as they are,
/// never stored).
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
            // 16 rows (k) × 16 columns, transposed in registers: column c's 16 k values. A full
            // group's 16 loads unrolled (a loop over `rows` made LLVM zero and fill a copy on
            // the stack, about 150 more instructions per block); the last group's rows past
            // `k` zero.
            let r: [int8x16_t; 16] = if rows == KC {
                std::array::from_fn(|i| vld1q_s8(at(i, j)))
            } else {
                std::array::from_fn(|i| if i < rows { vld1q_s8(at(i, j)) } else { vdupq_n_s8(0) })
            };
            // Columns 4q..4q + 4 are panel 4j + q's group b, 64 contiguous bytes: one `st1` of
            // four registers each.
            let c = transpose16(r);
            for q in 0..4 {
                vst1q_s8_x4(d.add((4 * j + q) * panel + b * NR * KC), int8x16x4_t(c[4 * q], c[4 * q + 1], c[4 * q + 2], c[4 * q + 3]));
            }
        }
        super::panels::pack_columns_tail(s.add(b * KC * stride + c0), stride, rows, d.add(b * NR * KC), panel, 16 * full..ncols, NR, KC);
    }
}

/// The `asm!` text of one row's products in a group of 16 `k`: row `v$r` times columns
/// `v4`–`v7`, each (row, column) pair's 16 products summed pairwise in i16 (`smull`, `smlal2`,
/// through `v8`–`v11`), then into its accumulator `v$a0 + column` by `$op`. With `half`, only
/// the `smull` of the first 8 products (a group whose last 8 `k` are zero).
#[rustfmt::skip]
macro_rules! c16_row {
    ($op:literal, $r:literal, $a0:literal, $a1:literal, $a2:literal, $a3:literal) => {
        concat!(
            "smull v8.8h, v", $r, ".8b, v4.8b\n",
            "smull v9.8h, v", $r, ".8b, v5.8b\n",
            "smull v10.8h, v", $r, ".8b, v6.8b\n",
            "smull v11.8h, v", $r, ".8b, v7.8b\n",
            "smlal2 v8.8h, v", $r, ".16b, v4.16b\n",
            "smlal2 v9.8h, v", $r, ".16b, v5.16b\n",
            "smlal2 v10.8h, v", $r, ".16b, v6.16b\n",
            "smlal2 v11.8h, v", $r, ".16b, v7.16b\n",
            $op, " v", $a0, ".4s, v8.8h\n",
            $op, " v", $a1, ".4s, v9.8h\n",
            $op, " v", $a2, ".4s, v10.8h\n",
            $op, " v", $a3, ".4s, v11.8h\n",
        )
    };
    (half, $r:literal, $a0:literal, $a1:literal, $a2:literal, $a3:literal) => {
        concat!(
            "smull v8.8h, v", $r, ".8b, v4.8b\n",
            "smull v9.8h, v", $r, ".8b, v5.8b\n",
            "smull v10.8h, v", $r, ".8b, v6.8b\n",
            "smull v11.8h, v", $r, ".8b, v7.8b\n",
            "sadalp v", $a0, ".4s, v8.8h\n",
            "sadalp v", $a1, ".4s, v9.8h\n",
            "sadalp v", $a2, ".4s, v10.8h\n",
            "sadalp v", $a3, ".4s, v11.8h\n",
        )
    };
}

/// The `asm!` text of one group of 16 `k` in [`tile_asm`]: rows `v0`–`v3` times columns
/// `v4`–`v7`, row by row ([`c16_row!`], temporaries `v8`–`v11`), into accumulator
/// `v16 + 4·row + column` by `$op`: `saddlp` for the first group, `sadalp` after. `v12`–`v15`
/// are left alone (they hold the epilogue's constants in [`packed_tiles`]).
#[rustfmt::skip]
macro_rules! c16_products {
    ($op:literal) => {
        concat!(
            c16_row!($op, "0", "16", "17", "18", "19"),
            c16_row!($op, "1", "20", "21", "22", "23"),
            c16_row!($op, "2", "24", "25", "26", "27"),
            c16_row!($op, "3", "28", "29", "30", "31"),
        )
    };
}

/// [`c16_products!`] for a group whose last 8 `k` are zero (the padding of a `k` with
/// `k % 16` in 1..=8): only the `smull` of the first 8 products of each (row, column) pair, then
/// `sadalp`: 32 instructions instead of 48.
#[rustfmt::skip]
macro_rules! c16_half_products {
    () => {
        concat!(
            c16_row!(half, "0", "16", "17", "18", "19"),
            c16_row!(half, "1", "20", "21", "22", "23"),
            c16_row!(half, "2", "24", "25", "26", "27"),
            c16_row!(half, "3", "28", "29", "30", "31"),
        )
    };
}

/// Loads of one packed group: weights from `{a}`, columns from `{b}`, both advanced.
macro_rules! c16_load_packed {
    () => {
        "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64\nld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{b}], #64\n"
    };
}

/// Loads of one group read in place: weights from `{a}` (advanced), columns at `{b}` plus the
/// next offset of `{koff}` (advanced).
macro_rules! c16_load_direct {
    () => {
        "ldr {t}, [{koff}], #8\nld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64\nadd {t}, {b}, {t}\nld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{t}]\n"
    };
}

/// The loop of [`tile_asm`] with the group loads of macro `$load` (and their operands): the first group
/// starts the accumulators, an odd second one follows, then pairs of groups per iteration.
macro_rules! c16_tile {
    ($acc:ident, $load:ident, $rem:expr; $($operands:tt)*) => {
        c16_tile!($acc, $load, $rem, ""; $($operands)*)
    };
    ($acc:ident, $load:ident, $rem:expr, $tail:expr; $($operands:tt)*) => {
        std::arch::asm!(
            $load!(), c16_products!("saddlp"),
            "tbz {rem}, #0, 3f",
            $load!(), c16_products!("sadalp"),
            "3:",
            "lsr {rem}, {rem}, #1",
            "cbz {rem}, 4f",
            "2:",
            $load!(), c16_products!("sadalp"),
            $load!(), c16_products!("sadalp"),
            "subs {rem}, {rem}, #1",
            "b.ne 2b",
            "4:",
            $tail,
            $($operands)*
            rem = inout(reg) $rem => _,
            out("v16") $acc[0], out("v17") $acc[1], out("v18") $acc[2], out("v19") $acc[3],
            out("v20") $acc[4], out("v21") $acc[5], out("v22") $acc[6], out("v23") $acc[7],
            out("v24") $acc[8], out("v25") $acc[9], out("v26") $acc[10], out("v27") $acc[11],
            out("v28") $acc[12], out("v29") $acc[13], out("v30") $acc[14], out("v31") $acc[15],
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            options(nostack, readonly),
        )
    };
}

/// The register tile: rows `4·blk..` × the 4 columns of one panel, over `kb ≥ 1` groups of 16.
/// `acc[4r + c]` holds 4 partial sums of row `r`, column `c`; the first group starts them with
/// `saddlp` (no zeroing). For a packed panel (groups of `NR · KC` bytes one after the other,
/// `koff` null) or one read in place (group `g` at `b + koff[g]`). In `asm!`: `ld1` of four
/// registers with post-increment loads a group's weights and (packed) columns in two
/// instructions, and the loop takes two groups per iteration, so a packed group costs 50
/// instructions (48 multiply-adds and pairwise adds), an in-place one 52, against the 55–56 of
/// the loop of intrinsics it replaced, where LLVM recomputed addresses and counters.
///
/// # Safety
/// `a` is readable for `kb · MR · KC` bytes; `b` for `kb · NR · KC` when `koff` is null, else
/// `koff` for `kb` offsets and `b + koff[g]` for `NR · KC` bytes for each `g < kb`; `kb ≥ 1`.
/// NEON is part of every aarch64 CPU.
#[inline(always)]
pub(crate) unsafe fn tile_asm(a: *const i8, b: *const i8, koff: *const usize, kb: usize) -> [int32x4_t; 16] {
    const { assert!(MR == 4 && NR == 4 && KC == 16) };
    debug_assert!(kb >= 1);
    let mut acc = [vdupq_n_s32(0); 16];
    if koff.is_null() {
        c16_tile!(acc, c16_load_packed, kb - 1; a = inout(reg) a => _, b = inout(reg) b => _,);
    } else {
        c16_tile!(acc, c16_load_direct, kb - 1; a = inout(reg) a => _, b = in(reg) b, koff = inout(reg) koff => _, t = out(reg) _,);
    }
    acc
}

/// [`tile_asm`] of a packed panel whose last group holds only 8 real `k` (`k % 16` in 1..=8;
/// the packing zeroes the rest): the `kb − 1` full groups, then that group's first 8 products
/// per pair only ([`c16_half_products!`]), 34 instructions instead of 50.
///
/// # Safety
/// `a` is readable for `kb · MR · KC` bytes and `b` for `kb · NR · KC`; `kb ≥ 2`. NEON is part
/// of every aarch64 CPU.
#[inline(always)]
pub(crate) unsafe fn tile_asm_half(a: *const i8, b: *const i8, kb: usize) -> [int32x4_t; 16] {
    const { assert!(MR == 4 && NR == 4 && KC == 16) };
    debug_assert!(kb >= 2);
    let mut acc = [vdupq_n_s32(0); 16];
    c16_tile!(acc, c16_load_packed, kb - 2, concat!(c16_load_packed!(), c16_half_products!()); a = inout(reg) a => _, b = inout(reg) b => _,);
    acc
}

/// The products of one group of a narrow tile ([`tile_cols`]) for two rows: each listed
/// (temporary, weight row register, column register, accumulator) pair's 16 products, `smull`
/// and `smlal2` into the temporary, then `$op` into the accumulator.
#[rustfmt::skip]
macro_rules! c16_pairs {
    ($op:literal; $(($t:literal, $r:literal, $c:literal, $acc:literal)),*) => {
        concat!(
            $("smull v", $t, ".8h, v", $r, ".8b, v", $c, ".8b\n",)*
            $("smlal2 v", $t, ".8h, v", $r, ".16b, v", $c, ".16b\n",)*
            $($op, " v", $acc, ".4s, v", $t, ".8h\n",)*
        )
    };
}

/// [`c16_products!`] for the first `$cols` columns of the panel only (rows `v0`–`v3`, columns
/// from `v4`, accumulators at [`tile_asm`]'s places `v16 + 4·row + column`).
#[rustfmt::skip]
macro_rules! c16_cols_products {
    ($op:literal, 1) => {
        concat!(
            c16_pairs!($op; ("8", "0", "4", "16"), ("9", "1", "4", "20"), ("10", "2", "4", "24"), ("11", "3", "4", "28")),
        )
    };
    ($op:literal, 2) => {
        concat!(
            c16_pairs!($op; ("8", "0", "4", "16"), ("9", "0", "5", "17"), ("10", "1", "4", "20"), ("11", "1", "5", "21")),
            c16_pairs!($op; ("12", "2", "4", "24"), ("13", "2", "5", "25"), ("14", "3", "4", "28"), ("15", "3", "5", "29")),
        )
    };
    ($op:literal, 3) => {
        concat!(
            c16_pairs!($op; ("8", "0", "4", "16"), ("9", "0", "5", "17"), ("10", "0", "6", "18"),
                            ("11", "1", "4", "20"), ("12", "1", "5", "21"), ("13", "1", "6", "22")),
            c16_pairs!($op; ("8", "2", "4", "24"), ("9", "2", "5", "25"), ("10", "2", "6", "26"),
                            ("11", "3", "4", "28"), ("12", "3", "5", "29"), ("13", "3", "6", "30")),
        )
    };
}

/// The loop of [`tile_cols`] for `$cols` columns loaded by `$load` (one group's rows and
/// columns, both advanced): as [`c16_tile!`]'s (first group, odd second one, then pairs).
macro_rules! c16_cols_tile {
    ($acc:ident, $rem:expr, $cols:tt, $load:expr; $($operands:tt)*) => {
        std::arch::asm!(
            $load, c16_cols_products!("saddlp", $cols),
            "tbz {rem}, #0, 3f",
            $load, c16_cols_products!("sadalp", $cols),
            "3:",
            "lsr {rem}, {rem}, #1",
            "cbz {rem}, 4f",
            "2:",
            $load, c16_cols_products!("sadalp", $cols),
            $load, c16_cols_products!("sadalp", $cols),
            "subs {rem}, {rem}, #1",
            "b.ne 2b",
            "4:",
            $($operands)*
            rem = inout(reg) $rem => _,
            out("v16") $acc[0], out("v17") $acc[1], out("v18") $acc[2], out("v19") $acc[3],
            out("v20") $acc[4], out("v21") $acc[5], out("v22") $acc[6], out("v23") $acc[7],
            out("v24") $acc[8], out("v25") $acc[9], out("v26") $acc[10], out("v27") $acc[11],
            out("v28") $acc[12], out("v29") $acc[13], out("v30") $acc[14], out("v31") $acc[15],
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            options(nostack, readonly),
        )
    };
}

/// [`tile_asm`] of a packed panel with only `cols` (1..=3) real columns, the last panel of a
/// row count that is not a multiple of 4 (a 7×7 layer's 49 columns end with one): the products
/// of those columns only, so a group costs `2 + 12 · cols` instructions instead of 50 (14 for
/// one column). The accumulators of the other columns are left undefined, and are not stored.
/// All groups are taken whole (a half last group's zero products add nothing).
///
/// # Safety
/// `a` is readable for `kb · MR · KC` bytes and `b` for `kb · NR · KC`; `kb ≥ 1`, `cols` in
/// 1..=3. NEON is part of every aarch64 CPU.
#[inline(always)]
pub(crate) unsafe fn tile_cols(a: *const i8, b: *const i8, kb: usize, cols: usize) -> [int32x4_t; 16] {
    const { assert!(MR == 4 && NR == 4 && KC == 16) };
    debug_assert!(kb >= 1 && (1..NR).contains(&cols));
    let mut acc = [vdupq_n_s32(0); 16];
    let step = NR * KC;
    macro_rules! cols {
        ($cols:tt, $regs:literal) => {
            c16_cols_tile!(acc, kb - 1, $cols,
                concat!("ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64\nld1 {{", $regs, "}}, [{b}], {step}\n");
                a = inout(reg) a => _, b = inout(reg) b => _, step = in(reg) step,)
        };
    }
    match cols {
        1 => cols!(1, "v4.16b"),
        2 => cols!(2, "v4.16b, v5.16b"),
        _ => cols!(3, "v4.16b, v5.16b, v6.16b"),
    }
    acc
}

/// [`tile_asm`] for a panel read in place from a 16-channel-interleaved input whose `k` groups come
/// in runs of `KW` kernel columns (dilation 1): the run's groups are the panel's 4 positions
/// shifted by 0..KW, so its `4 + KW − 1` position vectors are loaded once for the run (3×3: 6
/// loads instead of 12). `runs` holds each run's offset from `base`; `a` has `KW` groups per run.
///
/// # Safety
/// `a` is readable for `runs.len() · KW · MR · KC` bytes and `base + runs[r]` for
/// `(NR + KW − 1) · KC` bytes for every run `r`; at least one run. NEON is part of every
/// aarch64 CPU.
#[inline(always)]
pub(crate) unsafe fn tile_runs<const KW: usize>(a: *const i8, base: *const i8, runs: &[usize]) -> [int32x4_t; 16] {
    let mut acc = [vdupq_n_s32(0); 16];
    let mut a = a;
    for &off in runs {
        let b = base.add(off);
        let bv: [int8x16_t; 8] = std::array::from_fn(|j| if j < NR + KW - 1 { vld1q_s8(b.add(16 * j)) } else { vdupq_n_s8(0) });
        run_step::<0>(&mut acc, a, &bv);
        run_step::<1>(&mut acc, a.add(MR * KC), &bv);
        run_step::<2>(&mut acc, a.add(2 * MR * KC), &bv);
        if KW == 5 {
            run_step::<3>(&mut acc, a.add(3 * MR * KC), &bv);
            run_step::<4>(&mut acc, a.add(4 * MR * KC), &bv);
        }
        a = a.add(KW * MR * KC);
    }
    acc
}

/// One group of a run: kernel column `KX`, the panel's positions `KX..KX + 4` of `bv`.
///
/// # Safety
/// `a` is readable for `MR · KC` bytes. NEON is part of every aarch64 CPU.
#[inline(always)]
unsafe fn run_step<const KX: usize>(acc: &mut [int32x4_t; 16], a: *const i8, bv: &[int8x16_t; 8]) {
    let av = [vld1q_s8(a), vld1q_s8(a.add(16)), vld1q_s8(a.add(32)), vld1q_s8(a.add(48))];
    for r in 0..MR {
        for c in 0..NR {
            let p: int16x8_t;
            // In `asm!`: LLVM otherwise splits some of these into `ext` + `smull` pairs.
            std::arch::asm!(
                "smull {p:v}.8h, {a:v}.8b, {b:v}.8b",
                "smlal2 {p:v}.8h, {a:v}.16b, {b:v}.16b",
                p = out(vreg) p, a = in(vreg) av[r], b = in(vreg) bv[KX + c],
                options(pure, nomem, nostack, preserves_flags),
            );
            acc[r * NR + c] = vpadalq_s16(acc[r * NR + c], p);
        }
    }
}

/// `addp`: pairwise sums of `a` then `b`. Written with `asm!` because LLVM turns the reduction
/// tree of `vpaddq_s32` into twice as many `uzp`/`add` instructions.
///
/// # Safety
/// None beyond NEON, which every aarch64 CPU has.
#[inline(always)]
unsafe fn addp(a: int32x4_t, b: int32x4_t) -> int32x4_t {
    let r: int32x4_t;
    std::arch::asm!("addp {r:v}.4s, {a:v}.4s, {b:v}.4s", r = out(vreg) r, a = in(vreg) a, b = in(vreg) b, options(pure, nomem, nostack, preserves_flags));
    r
}

/// NEON's tiles over the column panels of [`Panels`]: a panel's register tile, and the full
/// tiles one `asm!` loop can take.
pub(crate) trait NeonPanels: Panels {
    /// NEON's register tile of a panel `c` with `cols` real columns against the weight block `a`
    /// (`kb` groups); the accumulators of columns past `cols` may be left undefined.
    ///
    /// # Safety
    /// As [`tile_asm`]'s; `1 ≤ cols ≤ NR`.
    unsafe fn tile(&self, c: Self::C, a: *const i8, kb: usize, cols: usize) -> [std::arch::aarch64::int32x4_t; 16];
    /// NEON: the full tiles of the leading panels that one loop can take ([`packed_tiles`]:
    /// packed panels, all but a partial last one), requantised and stored to the 4 rows from
    /// `dst` (row length `n`) at each panel's output column; returns how many panels it took
    /// (none for panels read in place).
    ///
    /// # Safety
    /// As [`packed_tiles`]'s for the panels taken: the weight block `a` of `kb` groups,
    /// `bq`/`sq` the 4 rows' biases and scales, the 4 rows from `dst` writable at those panels'
    /// columns.
    #[allow(clippy::too_many_arguments)]
    unsafe fn full_tiles(&self, a: *const i8, kb: usize, bq: *const i32, sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize;
}

impl<const STEP: usize, const PNR: usize, const HALF: bool> NeonPanels for PackedPanels<STEP, PNR, HALF> {
    #[inline(always)]
    unsafe fn tile(&self, c: Packed<STEP>, a: *const i8, kb: usize, cols: usize) -> [std::arch::aarch64::int32x4_t; 16] {
        // SAFETY: the tiles' contract is this function's.
        unsafe {
            // Only NEON's GEMM calls this, on panels it packed.
            const { assert!(STEP == NR * KC) };
            if cols < NR {
                trace!("neon.cols");
                tile_cols(a, c.0, kb, cols)
            } else if HALF {
                tile_asm_half(a, c.0, kb)
            } else {
                tile_asm(a, c.0, std::ptr::null(), kb)
            }
        }
    }
    #[inline(always)]
    unsafe fn full_tiles(&self, a: *const i8, kb: usize, bq: *const i32, sq: *const f32, zp: i32, dst: *mut i8, n: usize) -> usize {
        // SAFETY: `packed_tiles`' contract is this function's; `dst + col0` is the first panel's column.
        unsafe {
            const { assert!(STEP == NR * KC && PNR == NR) };
            // The loop reaches each panel from the previous one's last group.
            assert_eq!(self.panel, kb * STEP, "packed panels of another k");
            let full = self.ncols / NR;
            if full > 0 {
                packed_tiles::<HALF>(a, self.packed, kb, full, bq, sq, zp, dst.add(self.col0), n);
            }
            full
        }
    }
}

impl NeonPanels for DirectPanels<'_> {
    #[inline(always)]
    unsafe fn tile(&self, c: Direct, a: *const i8, kb: usize, _cols: usize) -> [std::arch::aarch64::int32x4_t; 16] {
        // SAFETY: the tiles' contract is this function's; the offsets were checked by `direct_panels`.
        unsafe {
            match self.run {
                3 => tile_runs::<3>(a, c.base, self.runs),
                5 => tile_runs::<5>(a, c.base, self.runs),
                _ => tile_asm(a, c.base, c.koff, kb),
            }
        }
    }
    #[inline(always)]
    unsafe fn full_tiles(&self, _: *const i8, _: usize, _: *const i32, _: *const f32, _: i32, _: *mut i8, _: usize) -> usize {
        0
    }
}

/// The GEMM of some column panels with the requantisation: `y[row][col + c]` for every row
/// `< m` and each panel's real columns, from weights packed by [`pack_a`] (`kb` groups of 16 per
/// row) and columns packed by [`pack_b`] or read in place.
///
/// # Safety
/// `a` is as packed for `m` and `kb`, each panel's groups readable; `bias`/`scale` hold `m`
/// values; the caller owns the panels' output columns of the `m` rows of `y` (row length `n`).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<P: NeonPanels>(a: &[i8], kb: usize, m: usize, panels: &P, bias: &[i32], scale: &[f32], zp: i32, y: Out, n: usize) {
    assert!(kb > 0, "k = 0");
    let zp16 = vdupq_n_s16(zp as i16);
    let (y, len) = y.raw();
    assert!(m == 0 || panels.count() == 0 || (panels.within(n) && m * n <= len), "GEMM panels past the output");
    for blk in 0..m.div_ceil(MR) {
        let ab = a.as_ptr().add(blk * kb * MR * KC);
        let rows = (m - blk * MR).min(MR);
        let bs: [i32; MR] = super::panels::block_of(bias, blk * MR, rows);
        let ss: [f32; MR] = super::panels::block_of(scale, blk * MR, rows);
        let (bv, sv) = (vld1q_s32(bs.as_ptr()), vld1q_f32(ss.as_ptr()));
        // Packed panels' full tiles in one `asm!` loop; the rest tile by tile.
        let first = if rows == MR { panels.full_tiles(ab, kb, bs.as_ptr(), ss.as_ptr(), zp, y.add(blk * MR * n), n) } else { 0 };
        if first > 0 {
            trace!("neon.full_tiles");
        }
        let k = epilogue_constants(bs.as_ptr(), ss.as_ptr(), zp);
        for p in first..panels.count() {
            let (cols_at, col, cols) = panels.panel(p);
            let acc = panels.tile(cols_at, ab, kb, cols);
            let dst = y.add(blk * MR * n + col);
            if rows == MR && cols == NR {
                trace!("neon.tile");
                requant_store_tile(acc, k, dst, n);
                continue;
            }
            trace!("neon.partial");
            // Row r's 4 partial sums per column, reduced pairwise: lanes = columns 0..4.
            let row = |r: usize| addp(addp(acc[r * NR], acc[r * NR + 1]), addp(acc[r * NR + 2], acc[r * NR + 3]));
            let q0 = requant4(row(0), vgetq_lane_s32::<0>(bv), vgetq_lane_f32::<0>(sv));
            let q1 = requant4(row(1), vgetq_lane_s32::<1>(bv), vgetq_lane_f32::<1>(sv));
            let q2 = requant4(row(2), vgetq_lane_s32::<2>(bv), vgetq_lane_f32::<2>(sv));
            let q3 = requant4(row(3), vgetq_lane_s32::<3>(bv), vgetq_lane_f32::<3>(sv));
            let bytes = vcombine_s8(narrow_zp(q0, q1, zp16), narrow_zp(q2, q3, zp16));
            let mut tmp = [0i8; MR * NR];
            vst1q_s8(tmp.as_mut_ptr(), bytes);
            for r in 0..rows {
                super::panels::copy_short(tmp.as_ptr().add(r * NR), dst.add(r * n), cols);
            }
        }
    }
}

/// The `asm!` text of [`requant_store_tile`]: the 4×4 tile's accumulators (`v16`–`v31`) reduced,
/// requantised and stored as 4 rows of 4 bytes from `{d}` (advanced by `{n}` after each of the
/// first 3 rows; `rows`: through the row pointers `{d0}`–`{d3}`), with the constants in registers (set once for a run of tiles): the 4 rows'
/// biases in `v12` (added by `mla` by element with the ones of `v13`), their scales in `v14`,
/// the zero point in each i16 lane of `v15`.
#[rustfmt::skip]
macro_rules! c16_epilogue {
    () => {
        concat!(
            c16_epilogue!(requant),
            "st1 {{v16.s}}[0], [{d}], {n}\n",
            "st1 {{v16.s}}[1], [{d}], {n}\n",
            "st1 {{v16.s}}[2], [{d}], {n}\n",
            "st1 {{v16.s}}[3], [{d}]\n",
        )
    };
    // The tile's 16 bytes in v16, rows 0..4 in its 4-byte lanes.
    (requant) => {
        concat!(
            // acc[4r + c] (v16 + 4r + c): 4 partial sums of row r, column c.
            "addp v16.4s, v16.4s, v17.4s\n",
            "addp v18.4s, v18.4s, v19.4s\n",
            "addp v20.4s, v20.4s, v21.4s\n",
            "addp v22.4s, v22.4s, v23.4s\n",
            "addp v24.4s, v24.4s, v25.4s\n",
            "addp v26.4s, v26.4s, v27.4s\n",
            "addp v28.4s, v28.4s, v29.4s\n",
            "addp v30.4s, v30.4s, v31.4s\n",
            // Rows 0..4 in v16, v20, v24, v28, lanes = columns.
            "addp v16.4s, v16.4s, v18.4s\n",
            "addp v20.4s, v20.4s, v22.4s\n",
            "addp v24.4s, v24.4s, v26.4s\n",
            "addp v28.4s, v28.4s, v30.4s\n",
            // Plus the row's bias (1 · bias, wrapping as `add`).
            "mla v16.4s, v13.4s, v12.s[0]\n",
            "mla v20.4s, v13.4s, v12.s[1]\n",
            "mla v24.4s, v13.4s, v12.s[2]\n",
            "mla v28.4s, v13.4s, v12.s[3]\n",
            "scvtf v16.4s, v16.4s\n",
            "scvtf v20.4s, v20.4s\n",
            "scvtf v24.4s, v24.4s\n",
            "scvtf v28.4s, v28.4s\n",
            "fmul v16.4s, v16.4s, v14.s[0]\n",
            "fmul v20.4s, v20.4s, v14.s[1]\n",
            "fmul v24.4s, v24.4s, v14.s[2]\n",
            "fmul v28.4s, v28.4s, v14.s[3]\n",
            "fcvtns v16.4s, v16.4s\n",
            "fcvtns v20.4s, v20.4s\n",
            "fcvtns v24.4s, v24.4s\n",
            "fcvtns v28.4s, v28.4s\n",
            "sqxtn v16.4h, v16.4s\n",
            "sqxtn2 v16.8h, v20.4s\n",
            "sqxtn v24.4h, v24.4s\n",
            "sqxtn2 v24.8h, v28.4s\n",
            "sqadd v16.8h, v16.8h, v15.8h\n",
            "sqadd v24.8h, v24.8h, v15.8h\n",
            "sqxtn v16.8b, v16.8h\n",
            "sqxtn2 v16.16b, v24.8h\n",
        )
    };
    // For a run of tiles: each row through its own pointer `{d0}`–`{d3}`, advanced to the next
    // tile's columns by the store.
    (rows) => {
        concat!(
            c16_epilogue!(requant),
            "st1 {{v16.s}}[0], [{d0}], #4\n",
            "st1 {{v16.s}}[1], [{d1}], #4\n",
            "st1 {{v16.s}}[2], [{d2}], #4\n",
            "st1 {{v16.s}}[3], [{d3}], #4\n",
        )
    };
}

/// The epilogue's constants for [`c16_epilogue!`] (`v12`–`v15`): the 4 rows' biases and
/// scales from `bq` and `sq`, ones, the zero point in i16 lanes.
///
/// # Safety
/// `bq` is readable for 4 `i32`, `sq` for 4 `f32`. NEON is part of every aarch64 CPU.
#[inline(always)]
unsafe fn epilogue_constants(bq: *const i32, sq: *const f32, zp: i32) -> [int32x4_t; 4] {
    [vld1q_s32(bq), vdupq_n_s32(1), vreinterpretq_s32_f32(vld1q_f32(sq)), vreinterpretq_s32_s16(vdupq_n_s16(zp as i16))]
}

/// The epilogue of a full 4×4 tile of [`gemm`], in `asm!`: the pairwise reduction of the 16
/// accumulators to the 4 rows' sums (lanes = columns), then [`requant4`] and [`narrow_zp`]'s
/// steps in the same order (so the same results), then the 4 rows' 4 bytes stored `n` apart:
/// 40 instructions, with the constants `k` from [`epilogue_constants`].
///
/// # Safety
/// `dst + r · n` is writable for 4 bytes for each row `r < 4`. NEON is part of every aarch64
/// CPU.
#[inline(always)]
unsafe fn requant_store_tile(acc: [int32x4_t; 16], k: [int32x4_t; 4], dst: *mut i8, n: usize) {
    std::arch::asm!(
        c16_epilogue!(),
        d = inout(reg) dst => _, n = in(reg) n,
        inout("v16") acc[0] => _, inout("v17") acc[1] => _, inout("v18") acc[2] => _, inout("v19") acc[3] => _,
        inout("v20") acc[4] => _, inout("v21") acc[5] => _, inout("v22") acc[6] => _, inout("v23") acc[7] => _,
        inout("v24") acc[8] => _, inout("v25") acc[9] => _, inout("v26") acc[10] => _, inout("v27") acc[11] => _,
        inout("v28") acc[12] => _, inout("v29") acc[13] => _, inout("v30") acc[14] => _, inout("v31") acc[15] => _,
        in("v12") k[0], in("v13") k[1], in("v14") k[2], in("v15") k[3],
        options(nostack, preserves_flags),
    );
}

/// The full 4×4 tiles of `np ≥ 1` consecutive packed panels (each `kb` groups, as [`pack_b`]
/// lays them out) against one weight block, each requantised and stored as [`requant_store_tile`]
/// does, in one `asm!` loop: per tile, [`tile_asm`]'s groups (the last one half when `HALF`, as
/// [`tile_asm_half`]), then the epilogue, then the next panel, whose columns the loads have
/// reached already. The loop around the tile costs 4 instructions (5 when `k` has pairs of
/// groups after the first) where the tile-by-tile calls
/// cost about 23 (setting up the tile's counters, the full-tile tests, the epilogue's addresses
/// reloaded from the stack); the epilogue's constants stay in `v12`–`v15` for the whole run
/// (the products use 4 temporaries, `v8`–`v11`), where loading them cost 3 instructions a tile,
/// and each row is stored through its own pointer, advanced by the store.
///
/// # Safety
/// `a` is readable for `kb · MR · KC` bytes and `b` for `np · kb · NR · KC`; `kb ≥ 1` (`≥ 2`
/// when `HALF`); `bq` for 4 `i32` (the rows' biases), `sq` for 4 `f32`; `dst + r · n + 4p` is
/// writable for 4 bytes for each row `r < 4` and panel `p < np`. NEON is part of every aarch64
/// CPU.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn packed_tiles<const HALF: bool>(
    a: *const i8,
    b: *const i8,
    kb: usize,
    np: usize,
    bq: *const i32,
    sq: *const f32,
    zp: i32,
    dst: *mut i8,
    n: usize,
) {
    const { assert!(MR == 4 && NR == 4 && KC == 16) };
    debug_assert!(np >= 1 && kb > usize::from(HALF));
    let k = epilogue_constants(bq, sq, zp);
    // The groups after the first: an odd one (bit 0 of `kb1`), then `kb1 / 2` pairs in a loop,
    // left out of the text when there are none (k of 16 to 47: no test per tile).
    macro_rules! panels {
        ($tail:expr, $kb1:expr, $pairs:expr; $($ops:tt)*) => {
            std::arch::asm!(
                "1:",
                "mov {a}, {a0}",
                c16_load_packed!(), c16_products!("saddlp"),
                "tbz {kb1}, #0, 3f",
                c16_load_packed!(), c16_products!("sadalp"),
                "3:",
                $pairs,
                $tail,
                c16_epilogue!(rows),
                "subs {np}, {np}, #1",
                "b.ne 1b",
                a0 = in(reg) a, a = out(reg) _, b = inout(reg) b => _, kb1 = in(reg) $kb1, $($ops)*
                np = inout(reg) np => _, d0 = inout(reg) dst => _, d1 = inout(reg) dst.add(n) => _,
                d2 = inout(reg) dst.add(2 * n) => _, d3 = inout(reg) dst.add(3 * n) => _,
                in("v12") k[0], in("v13") k[1], in("v14") k[2], in("v15") k[3],
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                options(nostack),
            )
        };
    }
    macro_rules! pairs {
        () => {
            concat!(
                "mov {rem}, {pairs}\n",
                "2:\n",
                c16_load_packed!(),
                c16_products!("sadalp"),
                c16_load_packed!(),
                c16_products!("sadalp"),
                "subs {rem}, {rem}, #1\n",
                "b.ne 2b\n",
            )
        };
    }
    let kb1 = kb - 1 - usize::from(HALF);
    match (HALF, kb1 >= 2) {
        (true, true) => panels!(concat!(c16_load_packed!(), c16_half_products!()), kb1, pairs!(); rem = out(reg) _, pairs = in(reg) kb1 / 2,),
        (true, false) => panels!(concat!(c16_load_packed!(), c16_half_products!()), kb1, "";),
        (false, true) => panels!("", kb1, pairs!(); rem = out(reg) _, pairs = in(reg) kb1 / 2,),
        (false, false) => panels!("", kb1, "";),
    }
}

#[cfg(test)]
mod tests {
    use super::depthwise::{group_fits, plan_groups};

    /// The plan is a permutation of the taps whose groups all fit i16, with the fewest groups
    /// among the sizes built for.
    #[test]
    fn plan_groups_fits_and_takes_the_fewest_groups() {
        let check = |w: &[i8], want: u8| {
            let (order, g) = plan_groups(w);
            assert_eq!(g, want, "{w:?}");
            let mut seen = order.clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..w.len() as u16).collect::<Vec<_>>(), "a permutation of {w:?}");
            for grp in order.chunks(usize::from(g)) {
                assert!(group_fits(&grp.iter().map(|&t| w[usize::from(t)]).collect::<Vec<_>>()), "{w:?} in {order:?}");
            }
        };
        check(&[20; 9], 9);
        check(&[-28; 9], 9);
        check(&[29; 9], 5);
        check(&[127, 64, 64, 127, 64, 64, 127, 64, 64], 3);
        check(&[127, 64, 65, 127, 64, 65, 127, 64, 65], 3);
        check(&[127, 65, 65, 127, 65, 65, 127, 65, 65], 2);
        check(&[127, 65, 66, 127, 65, 66, 127, 65, 66], 2);
        check(&[127; 9], 2);
        check(&[10; 25], 13);
        check(&[50; 25], 5);
        check(&[127; 25], 2);
        check(&[1; 4], 2);
        // The bound itself: a positive sum of 256 reaches −32768 on −128 inputs, which fits;
        // 257 does not, nor a negative sum of 256 on −128 inputs.
        assert!(group_fits(&[127, 127, 2]));
        assert!(!group_fits(&[127, 127, 3]));
        assert!(group_fits(&[-127, -127, -1]));
        assert!(!group_fits(&[-127, -127, -2]));
    }

    /// `deal_plane` puts every byte where the definition does (padded row `pt + iy`, column
    /// `pl + ix` at index `x / 2` of phase `x % 2`) and writes nothing else, for every row length
    /// up to 80 (each chunk form and their overlaps) and both parities of the left padding.
    /// The channel's bounds check uses the largest tap offset, wherever it is in the list: a
    /// plane one byte short of the last tile at that offset panics, the exact length runs.
    #[test]
    fn depthwise_channel_checks_the_largest_offset() {
        let d = super::Depthwise::new(9, &[1; 9], &[0], 0).unwrap();
        let offsets = [22, 1, 2, 10, 11, 12, 20, 21, 0];
        let taps = crate::kernels::planes::TapOffsets::new(&offsets);
        let mut out = [0i8; 4];
        d.channel(0, &[0; 38], &taps, 10, 1.0, 0, 1, 4, &mut out);
        let short = std::panic::catch_unwind(|| d.channel(0, &[0; 37], &taps, 10, 1.0, 0, 1, 4, &mut [0i8; 4]));
        assert!(short.is_err(), "a plane too short for the largest offset was read");
    }

    /// `evens` writes `src[2i]` for whole chunks of 16 only while their 32 source bytes exist,
    /// and nothing past what it reports.
    #[test]
    fn evens_takes_even_bytes_within_the_source() {
        for len in 0..70usize {
            for src_len in [2 * len.max(1) - 1, 2 * len, 2 * len + 5] {
                let src: Vec<i8> = (0..src_len).map(|i| (i % 127) as i8 - 60).collect();
                let mut dst = vec![99i8; len];
                let done = super::evens(&mut dst, &src);
                assert!(done.is_multiple_of(16) && done <= len && (done == 0 || 2 * done <= src_len), "len={len} src={src_len} done={done}");
                // As many chunks as fit.
                assert!(done + 16 > len || 2 * done + 32 > src_len, "len={len} src={src_len} stopped early at {done}");
                for (i, &v) in dst.iter().enumerate() {
                    assert_eq!(v, if i < done { src[2 * i] } else { 99 }, "len={len} src={src_len} i={i}");
                }
            }
        }
    }

    /// `copy_rows` against a byte loop for every width class (bytes, 4..8, 8..16, 16 and
    /// more), one row and several, destination pitches with a gap: the runs copied, nothing
    /// between them touched.
    #[test]
    fn copy_rows_copies_runs_and_nothing_else() {
        for width in 0..=40usize {
            for (rows, extra) in [(1, 0), (3, 2), (14, 1), (5, 7)] {
                let (sp, dp) = (width + extra, width + 2 * extra + 1);
                let src: Vec<i8> = (0..rows * sp + 3).map(|i| (i % 253) as i8 - 100).collect();
                let mut want = vec![-7i8; rows * dp + 5];
                for r in 0..rows {
                    want[r * dp..r * dp + width].copy_from_slice(&src[r * sp..r * sp + width]);
                }
                let mut got = vec![-7i8; rows * dp + 5];
                super::copy_rows(&src, sp, &mut got, dp, width, rows);
                assert_eq!(got, want, "width={width} rows={rows} pitches {sp} {dp}");
            }
        }
    }

    #[test]
    fn deal_plane_places_every_byte() {
        let cases = (0..80usize).flat_map(|w| [(w, 2, 1, w % 4, 1), (w, 1, 0, 0, 0)]).chain([(112, 3, 1, 1, 1), (56, 5, 0, 0, 1), (33, 6, 2, 3, 0)]);
        for (w, h, pt, pl, pr) in cases {
            let (hp, pw) = (h + pt + 1, (w + pl + pr).div_ceil(2));
            let src: Vec<i8> = (0..w * h).map(|i| (i % 251) as i8).collect();
            let mut want = vec![-99i8; 2 * hp * pw + 16];
            for (i, &v) in src.iter().enumerate() {
                let (py, x) = (i / w + pt, i % w + pl);
                want[((x % 2) * hp + py) * pw + x / 2] = v;
            }
            let mut got = vec![-99i8; 2 * hp * pw + 16];
            super::deal_plane(&src, w, h, &mut got, hp, pw, pt, pl);
            assert_eq!(got, want, "w={w} h={h} pt={pt} pl={pl}");
        }
    }
}
