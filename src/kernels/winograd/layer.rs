//! Winograd F(2×2, 3×3)'s layer data and its algorithm, generic over the pieces a kernel set
//! supplies ([`WinogradIsa`]): the input transform of a tile row, the interleaving of channel
//! pairs, the register tile of the 16 position-wise GEMMs and the output transform. The
//! portable pieces are here; AVX2's are in `x86_64/winograd.rs`, NEON's in
//! `aarch64/winograd.rs`. See [`WinogradQConv`](super::WinogradQConv) for the arithmetic.

use std::ops::Range;

use crate::kernels::geometry::Geometry;
use crate::kernels::layers::row_blocks;
use crate::kernels::plan::{PAIR_MR as MR, PAIR_NR as NR};
use crate::kernels::requant::Requant;
use crate::kernels::tasks::Out;

/// Tiles (2×2 output blocks) per register tile of the GEMM.
pub(crate) const TILES: usize = 2 * NR;
/// Target size of one block's transformed input, all 16 positions (fits L2 beside `U`).
pub(crate) const BLOCK_BYTES: usize = 256 * 1024;

/// A Winograd layer's data, whatever the kernel set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WinogradLayer {
    pub(crate) geo: Geometry,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    /// Tile rows and columns: `oh / 2` and `ow / 2` rounded up.
    pub(crate) th: usize,
    pub(crate) tw: usize,
    pub(crate) m: usize,
    /// `cin` rounded up to even.
    pub(crate) cp: usize,
    /// Transformed weights `[m / MR][16][cp / 2][MR]`, each word two i16 (channels `2k`, `2k+1`).
    pub(crate) u: Vec<u32>,
    /// Bias with the input zero point folded in: `bias − z_x · Σ w`.
    pub(crate) bias: Vec<i32>,
    pub(crate) x_zp: i8,
    pub(crate) requant: Requant,
}

/// The pieces of Winograd's algorithm that a kernel set supplies. Every method's safety
/// contract is the same: the CPU has the set's instructions.
pub(crate) trait WinogradIsa {
    /// Whether the input transform reads padded int8 rows with
    /// [`transform_tile_row`](Self::transform_tile_row) (else the portable transform runs).
    const SIMD_TRANSFORM: bool;

    /// `V = Bᵀ d B` of the `tw` tiles of one tile row from four padded int8 input rows (stride
    /// `rs`), into `v[e · vs + base + t]`; whole groups of 16 tiles.
    ///
    /// # Safety
    /// The CPU has the set's instructions.
    unsafe fn transform_tile_row(_rows: &[i8], _rs: usize, _tw: usize, _v: &mut [i16], _vs: usize, _base: usize) {}

    /// Interleaves channels `a` and `b` into words of a panel (see `transform_input`); returns
    /// false when the set has no such piece (the portable loop runs).
    ///
    /// # Safety
    /// The CPU has the set's instructions.
    unsafe fn interleave(_a: &[i16], _b: &[i16], _dst: &mut [u32], _pw: usize, _cc: usize) -> bool {
        false
    }

    /// The register tile: `acc[r][t] = Σ_k a[k][r] · b[k][t]` (see [`tile_portable`]).
    ///
    /// # Safety
    /// The CPU has the set's instructions.
    unsafe fn tile(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]);

    /// `Aᵀ M A / 4` of `n` tiles, requantised and stored (see [`WinogradLayer::output`]).
    ///
    /// # Safety
    /// The CPU has the set's instructions; no other task writes those outputs meanwhile.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn output(l: &WinogradLayer, acc: &[i32], row0: usize, tile_y: &[u32], tile_x: &[u32], t0: usize, n: usize, out: Out) {
        l.output(acc, row0, tile_y, tile_x, t0, n, out)
    }
}

/// One kernel set's Winograd pieces, compiled for the set: the input transform of tile rows
/// `ty0..ty1` into `dst` ([`WinogradLayer::transformed_len`] words), and the GEMMs and output
/// transform of tile rows `ty0..ty1` of the output channels `rows` (whose start is a multiple
/// of the GEMM's `MR`) from what the transform wrote for those tile rows.
///
/// # Safety (both)
/// The CPU has the set's instructions (the table hands out a set's pieces only then); no
/// other task writes output rows `2·ty0..2·ty1` of those channels meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WinogradBlock {
    pub(crate) transform: unsafe fn(&WinogradLayer, &[i8], usize, usize, &mut Work, &mut [u32]),
    pub(crate) multiply: unsafe fn(&WinogradLayer, &[u32], usize, usize, Range<usize>, &mut Work, Out),
}

/// Defines `$name: WinogradBlock` with the pieces of `$isa`, each compiled with
/// `$feature` enabled (or none).
macro_rules! winograd_block {
    ($(#[$m:meta])* $name:ident = $isa:ty $(, $feature:literal)?) => {
        $(#[$m])*
        pub(crate) const $name: $crate::kernels::winograd::layer::WinogradBlock = {
            use $crate::kernels::tasks::Out;
            use $crate::kernels::winograd::layer::{WinogradLayer, Work};
            /// # Safety
            /// The CPU has the set's instructions.
            $(#[target_feature(enable = $feature)])?
            unsafe fn transform(l: &WinogradLayer, x: &[i8], ty0: usize, ty1: usize, work: &mut Work, dst: &mut [u32]) {
                // SAFETY: the set's instructions are present (this function's contract).
                unsafe { l.transform::<$isa>(x, ty0, ty1, work, dst) }
            }
            /// # Safety
            /// The CPU has the set's instructions; these rows of these channels are this task's.
            $(#[target_feature(enable = $feature)])?
            unsafe fn multiply(l: &WinogradLayer, packed: &[u32], ty0: usize, ty1: usize, rows: std::ops::Range<usize>, work: &mut Work, out: Out) {
                // SAFETY: as this function's contract.
                unsafe { l.multiply::<$isa>(packed, ty0, ty1, rows, work, out) }
            }
            $crate::kernels::winograd::layer::WinogradBlock { transform, multiply }
        };
    };
}
#[allow(unused_imports)] // used by the x86-64 and aarch64 folders, not on armv7
pub(crate) use winograd_block;

/// The portable pieces.
pub(crate) struct Portable;

impl WinogradIsa for Portable {
    const SIMD_TRANSFORM: bool = false;

    #[inline(always)]
    unsafe fn tile(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
        tile_portable(a, b, kh, two, acc)
    }
}

winograd_block!(
    /// The portable pieces (what armv7 runs).
    PORTABLE = Portable
);

/// Per-thread buffers of a Winograd task.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Transformed input of a block: `[16][panels][cp / 2][NR]` words of two i16 (when each
    /// task transforms its own tile rows).
    pub(crate) packed: Vec<u32>,
    /// Even and odd columns of the four input rows of a tile row, then their transforms.
    rows: Vec<i16>,
    /// The four padded int8 input rows of a tile row (AVX2 path).
    rows8: Vec<i8>,
    /// GEMM results of one register tile: `[16][MR][TILES]`.
    acc: Vec<i32>,
    /// Top-left output row and column of each tile of the block.
    tile_y: Vec<u32>,
    tile_x: Vec<u32>,
}

impl WinogradLayer {
    /// Words (u32) of the transformed input of `tile_rows` tile rows: 16 positions of panels in
    /// pairs of `cp / 2` words per tile.
    pub(crate) fn transformed_len(&self, tile_rows: usize) -> usize {
        16 * (tile_rows * self.tw).div_ceil(TILES) * 2 * (self.cp / 2) * NR
    }

    /// The input transform of tile rows `ty0..ty1` into `dst` ([`transformed_len`] words), with
    /// the pieces of `I`.
    ///
    /// # Safety
    /// The CPU has `I`'s instructions.
    ///
    /// [`transformed_len`]: Self::transformed_len
    #[inline(always)]
    pub(crate) unsafe fn transform<I: WinogradIsa>(&self, x: &[i8], ty0: usize, ty1: usize, work: &mut Work, dst: &mut [u32]) {
        let len = self.transformed_len(ty1 - ty0);
        assert!(dst.len() >= len, "{} words for a transform of {len}", dst.len());
        // SAFETY: the CPU has `I`'s instructions (this function's contract).
        unsafe { self.transform_input::<I>(x, ty0, ty1, &mut dst[..len], len / 16, &mut work.rows, &mut work.rows8) };
    }

    /// Tile rows `ty0..ty1` of the output channels `channels` from `packed`, what
    /// [`transform`](Self::transform) wrote for those tile rows, with the pieces of `I`.
    ///
    /// # Safety
    /// The CPU has `I`'s instructions, and no other task writes output rows `2·ty0..2·ty1` of
    /// those channels meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn multiply<I: WinogradIsa>(&self, packed: &[u32], ty0: usize, ty1: usize, channels: Range<usize>, work: &mut Work, out: Out) {
        let nt = (ty1 - ty0) * self.tw;
        let kh = self.cp / 2;
        let plen = kh * NR;
        // Panels in pairs: a register tile covers two.
        let pairs = nt.div_ceil(TILES);
        let elen = pairs * 2 * plen;
        assert!(packed.len() >= 16 * elen, "{} transformed words for {nt} tiles", packed.len());
        work.tile_y.clear();
        work.tile_x.clear();
        for ty in ty0..ty1 {
            for tx in 0..self.tw {
                work.tile_y.push(2 * ty as u32);
                work.tile_x.push(2 * tx as u32);
            }
        }
        work.acc.clear();
        work.acc.resize(16 * MR * TILES, 0);
        let ulen = 16 * kh * MR;
        for blk in row_blocks(channels, MR) {
            let u = &self.u[blk * ulen..(blk + 1) * ulen];
            for pp in 0..pairs {
                // The last register tile may need only its first panel.
                let two = nt - pp * TILES > NR;
                for e in 0..16 {
                    let a = &u[e * kh * MR..(e + 1) * kh * MR];
                    let b = &packed[e * elen + pp * 2 * plen..][..2 * plen];
                    // Infallible: the slice is exactly MR · TILES long.
                    let acc: &mut [i32; MR * TILES] = (&mut work.acc[e * MR * TILES..][..MR * TILES]).try_into().unwrap();
                    // SAFETY: the CPU has `I`'s instructions (this function's contract).
                    unsafe { I::tile(a, b, kh, two, acc) };
                }
                let t0 = pp * TILES;
                let n = (nt - t0).min(TILES);
                // SAFETY: `I`'s instructions; these rows are this task's (the contract).
                unsafe { I::output(self, &work.acc, blk * MR, &work.tile_y, &work.tile_x, t0, n, out) };
            }
        }
    }

    /// `V = Bᵀ d B` of every tile of tile rows `ty0..ty1` and every channel, into `packed`
    /// (`[e][panel][c / 2][col]` words of two i16, channels `c` and `c + 1`; `elen` words per
    /// position `e`, columns past the last tile zero).
    ///
    /// # Safety
    /// The CPU has `I`'s instructions.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn transform_input<I: WinogradIsa>(
        &self,
        x: &[i8],
        ty0: usize,
        ty1: usize,
        packed: &mut [u32],
        elen: usize,
        rows: &mut Vec<i16>,
        rows8: &mut Vec<i8>,
    ) {
        let g = &self.geo;
        let tw = self.tw;
        let q = tw + 1;
        let (pl, zx) = (g.pads[1], i16::from(self.x_zp));
        let nt = (ty1 - ty0) * tw;
        let ntp = nt.div_ceil(TILES) * TILES;
        // The padded input row (2q), the even and odd columns of 4 rows (8q), then V of both
        // channels of the pair for the whole block (2 · 16 rows of vs, zero from nt to ntp; the
        // AVX2 and NEON paths write whole groups of 16 tiles, hence the slack).
        let vs = ntp + TILES;
        rows.clear();
        rows.resize(10 * q + 2 * 16 * vs, 0);
        let (prow, rest) = rows.split_at_mut(2 * q);
        // The SIMD paths' four padded int8 input rows: reads reach column 2·(tw − 1) + 33.
        let rs = 2 * tw + 2 * TILES + 2;
        rows8.clear();
        rows8.resize(4 * rs, 0);
        let rows8 = &mut rows8[..];
        let (d, vv) = rest.split_at_mut(8 * q);
        let pw = (self.cp / 2) * NR;
        for cc in 0..self.cp / 2 {
            for half in 0..2 {
                let c = 2 * cc + half;
                let v = &mut vv[half * 16 * vs..(half + 1) * 16 * vs];
                if c >= g.cin {
                    v.fill(0);
                    continue;
                }
                let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
                if I::SIMD_TRANSFORM {
                    for ty in ty0..ty1 {
                        // Four input rows, padded with the zero point: column j is input
                        // column j − pl; long enough for the last group's loads.
                        for i in 0..4 {
                            let row = &mut rows8[i * rs..(i + 1) * rs];
                            row.fill(self.x_zp);
                            let iy = (2 * ty + i) as isize - g.pads[0] as isize;
                            if iy >= 0 && iy < g.h as isize && pl < rs {
                                let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                                let n = g.w.min(rs.saturating_sub(pl));
                                row[pl..pl + n].copy_from_slice(&src[..n]);
                            }
                        }
                        // SAFETY: the CPU has `I`'s instructions (this function's contract).
                        unsafe { I::transform_tile_row(rows8, rs, tw, v, vs, (ty - ty0) * tw) };
                    }
                    for e in 0..16 {
                        v[e * vs + nt..e * vs + ntp].fill(0);
                    }
                    continue;
                }
                for ty in ty0..ty1 {
                    // d[i] holds even columns of input row i at [2i·q..], odd at [(2i+1)·q..]:
                    // column 2t + j of the tile row is even/odd index t + j/2.
                    for i in 0..4 {
                        let iy = (2 * ty + i) as isize - g.pads[0] as isize;
                        let (ev, od) = d[2 * i * q..(2 * i + 2) * q].split_at_mut(q);
                        if iy < 0 || iy >= g.h as isize {
                            ev.fill(zx);
                            od.fill(zx);
                            continue;
                        }
                        let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        // Padded row: column j is input column j − pl.
                        let lo = pl.min(2 * q);
                        let hi = (pl + g.w).min(2 * q);
                        prow[..lo].fill(zx);
                        prow[hi..].fill(zx);
                        if hi > lo {
                            for (dst, &s) in prow[lo..hi].iter_mut().zip(&src[..hi - lo]) {
                                *dst = i16::from(s);
                            }
                        }
                        for ((e, o), p) in ev.iter_mut().zip(od.iter_mut()).zip(prow.chunks_exact(2)) {
                            *e = p[0];
                            *o = p[1];
                        }
                    }
                    // Rows of Bᵀ d: r0 = d0 − d2, r1 = d1 + d2, r2 = d2 − d1, r3 = d1 − d3, in
                    // place (each of the 2q-long even/odd pairs).
                    {
                        let (d01, d23) = d.split_at_mut(4 * q);
                        let (d0, d1) = d01.split_at_mut(2 * q);
                        let (d2, d3) = d23.split_at_mut(2 * q);
                        for j in 0..2 * q {
                            let (a0, a1, a2, a3) = (d0[j], d1[j], d2[j], d3[j]);
                            d0[j] = a0 - a2;
                            d1[j] = a1 + a2;
                            d2[j] = a2 - a1;
                            d3[j] = a1 - a3;
                        }
                    }
                    // Columns: V[a][0] = E[t] − E[t+1], V[a][1] = O[t] + E[t+1],
                    // V[a][2] = E[t+1] − O[t], V[a][3] = O[t] − O[t+1].
                    let base = (ty - ty0) * tw;
                    for a in 0..4 {
                        let (ev, od) = d[2 * a * q..(2 * a + 2) * q].split_at(q);
                        let va = &mut v[4 * a * vs..(4 * a + 4) * vs];
                        let (v0, rest) = va.split_at_mut(vs);
                        let (v1, rest) = rest.split_at_mut(vs);
                        let (v2, v3) = rest.split_at_mut(vs);
                        let (v0, v1, v2, v3) = (&mut v0[base..base + tw], &mut v1[base..base + tw], &mut v2[base..base + tw], &mut v3[base..base + tw]);
                        for t in 0..tw {
                            v0[t] = ev[t] - ev[t + 1];
                            v1[t] = od[t] + ev[t + 1];
                            v2[t] = ev[t + 1] - od[t];
                            v3[t] = od[t] - od[t + 1];
                        }
                    }
                }
            }
            // The pair interleaved into words, a panel of NR columns at a time.
            let (v0, v1) = vv.split_at(16 * vs);
            for e in 0..16 {
                let (s0, s1) = (&v0[e * vs..e * vs + ntp], &v1[e * vs..e * vs + ntp]);
                let dst = &mut packed[e * elen..(e + 1) * elen];
                // SAFETY: the CPU has `I`'s instructions (this function's contract).
                if unsafe { I::interleave(s0, s1, dst, pw, cc) } {
                    continue;
                }
                for (p, (a, b)) in s0.chunks_exact(NR).zip(s1.chunks_exact(NR)).enumerate() {
                    let out = &mut dst[p * pw + cc * NR..][..NR];
                    for j in 0..NR {
                        out[j] = (a[j] as u16 as u32) | ((b[j] as u16 as u32) << 16);
                    }
                }
            }
        }
    }

    /// `Aᵀ M A / 4` of `n` tiles starting at tile `t0` of the block for rows `row0..row0 + MR`,
    /// requantised and stored at each tile's top-left output (`tile_y`, `tile_x`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn output(&self, acc: &[i32], row0: usize, tile_y: &[u32], tile_x: &[u32], t0: usize, n: usize, out: Out) {
        let (oh, ow) = (self.oh, self.ow);
        for r in 0..MR {
            let row = row0 + r;
            if row >= self.m {
                break;
            }
            // Infallible: the slice is exactly TILES long.
            let mv = |e: usize| -> &[i32; TILES] { acc[(e * MR + r) * TILES..][..TILES].try_into().unwrap() };
            let mut y = [[0i8; TILES]; 4];
            let (bias, scale) = (self.bias[row], self.requant.scale[row]);
            for t in 0..TILES {
                let m = |i: usize, j: usize| mv(i * 4 + j)[t];
                let t0j = |j: usize| m(0, j).wrapping_add(m(1, j)).wrapping_add(m(2, j));
                let t1j = |j: usize| m(1, j).wrapping_sub(m(2, j)).wrapping_sub(m(3, j));
                let (a0, a1, a2, a3) = (t0j(0), t0j(1), t0j(2), t0j(3));
                let (b0, b1, b2, b3) = (t1j(0), t1j(1), t1j(2), t1j(3));
                let q = [
                    a0.wrapping_add(a1).wrapping_add(a2),
                    a1.wrapping_sub(a2).wrapping_sub(a3),
                    b0.wrapping_add(b1).wrapping_add(b2),
                    b1.wrapping_sub(b2).wrapping_sub(b3),
                ];
                for (yy, v) in y.iter_mut().zip(q) {
                    yy[t] = self.requant.one((v >> 2) + bias, scale);
                }
            }
            let plane = row * oh * ow;
            for (i, t) in (t0..t0 + n).enumerate() {
                let (oy, ox) = (tile_y[t] as usize, tile_x[t] as usize);
                if oy + 1 < oh && ox + 1 < ow {
                    // SAFETY: output rows 2·ty0.. of every channel belong to this task.
                    let top = unsafe { out.slice(plane + oy * ow + ox, ow + 2) };
                    top[0] = y[0][i];
                    top[1] = y[1][i];
                    top[ow] = y[2][i];
                    top[ow + 1] = y[3][i];
                    continue;
                }
                for a in 0..2 {
                    if oy + a >= oh {
                        break;
                    }
                    let w = (ow - ox).min(2);
                    // SAFETY: as above.
                    let dst = unsafe { out.slice(plane + (oy + a) * ow + ox, w) };
                    dst[0] = y[2 * a][i];
                    if w == 2 {
                        dst[1] = y[2 * a + 1][i];
                    }
                }
            }
        }
    }
}

/// `U = G' g G'ᵀ` with `G' = [[2,0,0],[1,1,1],[1,−1,1],[0,0,2]]`, row-major 4×4.
#[inline]
pub(crate) fn transform_weights(g: &[i8]) -> [i16; 16] {
    let gp: [[i32; 3]; 4] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];
    let mut t = [[0i32; 3]; 4];
    for a in 0..4 {
        for j in 0..3 {
            t[a][j] = (0..3).map(|i| gp[a][i] * i32::from(g[i * 3 + j])).sum();
        }
    }
    let mut u = [0i16; 16];
    for a in 0..4 {
        for b in 0..4 {
            // |u| ≤ 9 · 128: fits i16.
            u[a * 4 + b] = (0..3).map(|j| t[a][j] * gp[b][j]).sum::<i32>() as i16;
        }
    }
    u
}

/// `acc[r][t] = Σ_k a[k][r] · b[k][t]` over `kh` channel pairs for MR rows and two panels
/// of NR tiles (one when `!two`: the second half is then zero).
#[inline(always)]
pub(crate) fn tile_portable(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
    let plen = kh * NR;
    let panels = if two { 2 } else { 1 };
    acc.fill(0);
    for kk in 0..kh {
        for r in 0..MR {
            let w = a[kk * MR + r];
            let (lo, hi) = (i32::from(w as u16 as i16), i32::from((w >> 16) as u16 as i16));
            for p in 0..panels {
                let bb = &b[p * plen + kk * NR..][..NR];
                for j in 0..NR {
                    let s = lo * i32::from(bb[j] as u16 as i16) + hi * i32::from((bb[j] >> 16) as u16 as i16);
                    acc[r * TILES + p * NR + j] = acc[r * TILES + p * NR + j].wrapping_add(s);
                }
            }
        }
    }
}
