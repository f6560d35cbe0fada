//! Winograd F(2×2, 3×3) for int8 3×3 stride-1 convolutions: 16 multiplies for each 2×2 block
//! of outputs instead of 36, and exact, because every step is integer arithmetic.
//!
//! With `G' = 2G` (integer), `U = G' g G'ᵀ = 4·G g Gᵀ`, `V = Bᵀ d B` and `M = Σ_c U ⊙ V`,
//! `Aᵀ M A` is 4 times the convolution of the 4×4 input tile `d`, so dividing by 4 is exact.
//! `|U| ≤ 9·128` and `|V| ≤ 4·128` fit i16, the operands of `vpmaddwd`. Sums wrap in i32; the
//! wrapped result equals the true one because the final value (the convolution) fits i32 when
//! `9 · cin · 128² · 4 < 2³¹`, checked at construction. Results are therefore identical to
//! [`DenseQConv`](super::int8::DenseQConv) bit for bit; the tests compare with the i64
//! reference.
use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
#[path = "x86_64/winograd_avx2.rs"]
mod avx2;
use super::int8::{fold_zero_point, Geometry, Out, Parallel, Requant, Unsupported, MR, NR};
use super::KernelSet;
#[cfg(target_arch = "x86_64")]
use avx2::{interleave_avx2, tile_avx2, transform_tile_row_avx2};
#[cfg(target_arch = "aarch64")]
#[path = "aarch64/winograd_neon.rs"]
mod neon;

/// Tiles (2×2 output blocks) per register tile of the GEMM.
const TILES: usize = 2 * NR;
/// Target size of one block's transformed input, all 16 positions (fits L2 beside `U`).
const BLOCK_BYTES: usize = 256 * 1024;
/// Largest input channel count for which the final sums provably fit i32.
const MAX_CIN: usize = 3640;

/// A 3×3 stride-1 dense int8 convolution computed with Winograd F(2×2, 3×3).
#[derive(Debug, Clone, PartialEq)]
pub struct WinogradQConv {
    /// AVX2 when the set is AVX2, NEON when it is NEON or the dot product (whose dense kernel
    /// beats this one: the engine does not choose Winograd there), the portable code otherwise.
    set: KernelSet,
    geo: Geometry,
    oh: usize,
    ow: usize,
    /// Tile rows and columns: `oh / 2` and `ow / 2` rounded up.
    th: usize,
    tw: usize,
    m: usize,
    /// `cin` rounded up to even.
    cp: usize,
    /// Transformed weights `[m / MR][16][cp / 2][MR]`, each word two i16 (channels `2k`, `2k+1`).
    u: Vec<u32>,
    /// Bias with the input zero point folded in: `bias − z_x · Σ w`.
    bias: Vec<i32>,
    x_zp: i8,
    requant: Requant,
}

#[derive(Debug, Default)]
struct Work {
    /// Transformed input of a block: `[16][panels][cp / 2][NR]` words of two i16.
    packed: Vec<u32>,
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

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

impl WinogradQConv {
    /// Transforms `weights` (`[m][cin][3][3]`) for inputs of geometry `geo`, for the kernel set
    /// this CPU runs best.
    ///
    /// # Errors
    /// Not a 3×3 stride-1 undilated convolution, more than 3640 input channels, or sizes
    /// that do not match.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set` (AVX2, NEON or the portable code; same
    /// results).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        let geo = geo.with_strides_clamped();
        if (geo.kh, geo.kw, geo.stride, geo.dilation) != (3, 3, (1, 1), (1, 1)) {
            return Err(Unsupported(format!("Winograd F(2×2, 3×3) needs a 3×3 stride-1 kernel: {geo:?}")));
        }
        if geo.cin == 0 || geo.cin > MAX_CIN {
            return Err(Unsupported(format!("{} input channels: Winograd sums could overflow", geo.cin)));
        }
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let k = geo.cin * 9;
        if !weights.len().is_multiple_of(k) {
            return Err(Unsupported(format!("{} weights for {k} per output channel", weights.len())));
        }
        let m = weights.len() / k;
        if m == 0 || bias.len() != m || requant.scale.len() != m {
            return Err(Unsupported(format!("{m} output channels, {} biases, {} scales", bias.len(), requant.scale.len())));
        }
        let cp = geo.cin + (geo.cin & 1);
        let kh = cp / 2;
        let blocks = m.div_ceil(MR);
        let mut u16s = vec![0i16; blocks * 16 * kh * MR * 2];
        for row in 0..m {
            let (blk, r) = (row / MR, row % MR);
            for c in 0..geo.cin {
                let g = &weights[(row * geo.cin + c) * 9..][..9];
                for (e, v) in transform_weights(g).into_iter().enumerate() {
                    u16s[(((blk * 16 + e) * kh + c / 2) * MR + r) * 2 + (c & 1)] = v;
                }
            }
        }
        let u = u16s.chunks_exact(2).map(|p| (p[0] as u16 as u32) | ((p[1] as u16 as u32) << 16)).collect();
        let bias = fold_zero_point(bias, weights, k, x_zp);
        let set = match set {
            KernelSet::Avx2 if set.available() => set,
            KernelSet::Neon | KernelSet::Dotprod if cfg!(target_arch = "aarch64") => KernelSet::Neon,
            _ => KernelSet::Portable,
        };
        Ok(WinogradQConv { set, geo, oh, ow, th: oh.div_ceil(2), tw: ow.div_ceil(2), m, cp, u, bias, x_zp, requant })
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.oh, self.ow)
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.set
    }

    /// Multiply-accumulates of the direct convolution this computes.
    pub fn macs(&self) -> usize {
        self.m * self.geo.cin * 9 * self.oh * self.ow
    }

    /// Bytes this kernel holds: transformed weights, biases, scales.
    pub fn held_bytes(&self) -> usize {
        4 * self.u.len() + 4 * self.bias.len() + 4 * self.requant.scale.len()
    }

    /// Runs on one `[cin][h][w]` input into one `[m][oh][ow]` output, blocks of tile rows as
    /// tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length (the tract op checks shapes first).
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        let g = &self.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        assert_eq!(y.len(), self.m * self.oh * self.ow);
        let tiles_per_block = (BLOCK_BYTES / (16 * self.cp * 2)).max(TILES);
        let mut rows = (tiles_per_block / self.tw).max(1);
        let threads = par.threads();
        if threads > 1 {
            rows = rows.min(self.th.div_ceil(2 * threads)).max(1);
        }
        self.run_with(x, y, par, rows.min(self.th), self.set != KernelSet::Portable)
    }

    /// [`run_par`](Self::run_par) with `rows` tile rows per task; `simd` runs the pieces of the
    /// set (AVX2 or NEON), false the portable code. `simd` is true only for the `Avx2` set when
    /// the CPU has AVX2 (`with_kernels` keeps it only then) or for `Neon` on aarch64.
    fn run_with(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel, rows: usize, simd: bool) {
        let avx2 = simd && self.set == KernelSet::Avx2;
        let neon = simd && self.set == KernelSet::Neon;
        let blocks = self.th.div_ceil(rows);
        let out = Out::new(y);
        // Each task writes output rows 2·ty0 .. 2·ty1 of every channel: disjoint between tasks.
        par.run(blocks, &|b| {
            let ty0 = b * rows;
            let ty1 = (ty0 + rows).min(self.th);
            WORK.with(|w| {
                let work = &mut *w.borrow_mut();
                if avx2 {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX2 is present when `avx2` is set (see above); this task alone
                    // writes output rows 2·ty0..2·ty1.
                    unsafe {
                        self.block_avx2(x, ty0, ty1, work, out)
                    };
                } else {
                    self.block(x, ty0, ty1, work, out, false, neon);
                }
            })
        });
    }

    /// [`block`](Self::block) with the AVX2 pieces, compiled with AVX2 enabled.
    ///
    /// # Safety
    /// The CPU has AVX2, and no other task writes output rows `2·ty0..2·ty1` meanwhile.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, x: &[i8], ty0: usize, ty1: usize, work: &mut Work, out: Out) {
        self.block(x, ty0, ty1, work, out, true, false)
    }

    /// Tile rows `ty0..ty1` of every output channel. `avx2` is true only when called from
    /// [`block_avx2`](Self::block_avx2), that is when the CPU has AVX2: the unsafe blocks of the
    /// AVX2 pieces here and in `transform_input` rely on it. `neon` runs the NEON pieces (only
    /// on aarch64, where every CPU has NEON).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn block(&self, x: &[i8], ty0: usize, ty1: usize, work: &mut Work, out: Out, avx2: bool, neon: bool) {
        let nt = (ty1 - ty0) * self.tw;
        let kh = self.cp / 2;
        let plen = kh * NR;
        // Panels in pairs: a register tile covers two. The transform writes every word, zero
        // past the last tile.
        let pairs = nt.div_ceil(TILES);
        let elen = pairs * 2 * plen;
        if work.packed.len() < 16 * elen {
            work.packed.resize(16 * elen, 0);
        }
        self.transform_input(x, ty0, ty1, &mut work.packed, elen, &mut work.rows, &mut work.rows8, avx2, neon);
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
        for blk in 0..self.m.div_ceil(MR) {
            let u = &self.u[blk * ulen..(blk + 1) * ulen];
            for pp in 0..pairs {
                // The last register tile may need only its first panel.
                let two = nt - pp * TILES > NR;
                for e in 0..16 {
                    let a = &u[e * kh * MR..(e + 1) * kh * MR];
                    let b = &work.packed[e * elen + pp * 2 * plen..][..2 * plen];
                    // Infallible: the slice is exactly MR · TILES long.
                    let acc: &mut [i32; MR * TILES] = (&mut work.acc[e * MR * TILES..][..MR * TILES]).try_into().unwrap();
                    if avx2 {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: AVX2 is present when `avx2` is set.
                        unsafe {
                            tile_avx2(a, b, kh, two, acc)
                        };
                    } else if neon {
                        #[cfg(target_arch = "aarch64")]
                        neon::tile_neon(a, b, kh, two, acc);
                    } else {
                        tile_portable(a, b, kh, two, acc);
                    }
                }
                let t0 = pp * TILES;
                let n = (nt - t0).min(TILES);
                #[cfg(target_arch = "aarch64")]
                if neon {
                    self.output_neon(&work.acc, blk * MR, &work.tile_y, &work.tile_x, t0, n, out);
                    continue;
                }
                self.output(&work.acc, blk * MR, &work.tile_y, &work.tile_x, t0, n, out);
            }
        }
    }

    /// `V = Bᵀ d B` of every tile of tile rows `ty0..ty1` and every channel, into `packed`
    /// (`[e][panel][c / 2][col]` words of two i16, channels `c` and `c + 1`; `elen` words per
    /// position `e`, columns past the last tile zero).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn transform_input(
        &self,
        x: &[i8],
        ty0: usize,
        ty1: usize,
        packed: &mut [u32],
        elen: usize,
        rows: &mut Vec<i16>,
        rows8: &mut Vec<i8>,
        avx2: bool,
        neon: bool,
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
                if avx2 || neon {
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
                        #[cfg(target_arch = "x86_64")]
                        if avx2 {
                            // SAFETY: AVX2 is present when `avx2` is set.
                            unsafe { transform_tile_row_avx2(rows8, rs, tw, v, vs, (ty - ty0) * tw) };
                        }
                        #[cfg(target_arch = "aarch64")]
                        neon::transform_tile_row_neon(rows8, rs, tw, v, vs, (ty - ty0) * tw);
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
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: AVX2 is present when `avx2` is set.
                    unsafe { interleave_avx2(s0, s1, dst, pw, cc) };
                    continue;
                }
                #[cfg(target_arch = "aarch64")]
                if neon {
                    neon::interleave_neon(s0, s1, dst, pw, cc);
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
    fn output(&self, acc: &[i32], row0: usize, tile_y: &[u32], tile_x: &[u32], t0: usize, n: usize, out: Out) {
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
fn transform_weights(g: &[i8]) -> [i16; 16] {
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
fn tile_portable(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
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

#[cfg(test)]
mod tests {
    use super::super::int8::tests::data;
    use super::super::int8::{reference, Sequential};
    use super::*;

    struct Two;
    impl Parallel for Two {
        fn threads(&self) -> usize {
            2
        }
        fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
            (0..n).rev().for_each(task)
        }
    }

    fn check(cin: usize, h: usize, w: usize, pads: [usize; 4], m: usize, seed: u64, extreme: bool) {
        let g = Geometry { cin, h, w, kh: 3, kw: 3, stride: (1, 1), dilation: (1, 1), pads };
        let (wts, x) = if extreme { (vec![-128i8; m * cin * 9], vec![-128i8; cin * h * w]) } else { (data(seed, m * cin * 9), data(seed + 1, cin * h * w)) };
        let bias: Vec<i32> = (0..m as i32).map(|i| i * 37 - 500).collect();
        let scale = if extreme { 1e-6 } else { 0.003 };
        let rq = Requant::new((0..m).map(|i| scale * (1.0 + i as f32 / 7.0)).collect(), -5);
        let want = reference(&g, 1, &wts, &bias, 3, &rq, &x);
        let conv = WinogradQConv::new(g, &wts, &bias, 3, rq).unwrap();
        // On aarch64 the NEON pieces run (for the dot-product set too), unless forced portable.
        if cfg!(target_arch = "aarch64") && KernelSet::detect() != KernelSet::Portable {
            assert_eq!(conv.kernel_set(), KernelSet::Neon);
        }
        for par in [&Sequential as &dyn Parallel, &Two] {
            let mut y = vec![0i8; want.len()];
            conv.run_par(&x, &mut y, par);
            assert_eq!(y, want, "cin {cin} {h}×{w} pads {pads:?} m {m}");
        }
        // The portable path too (what armv7 runs), one tile row per block.
        let mut y = vec![0i8; want.len()];
        conv.run_with(&x, &mut y, &Two, 1, false);
        assert_eq!(y, want, "portable: cin {cin} {h}×{w} pads {pads:?} m {m}");
    }

    #[test]
    fn winograd_matches_the_direct_convolution() {
        check(1, 1, 1, [1; 4], 1, 1, false);
        check(3, 5, 7, [1; 4], 5, 2, false);
        check(16, 8, 8, [1; 4], 16, 3, false);
        check(17, 9, 6, [0, 1, 1, 0], 9, 4, false);
        check(8, 7, 7, [0; 4], 4, 5, false);
        check(64, 14, 14, [1; 4], 20, 6, false);
        check(5, 3, 40, [2, 1, 0, 2], 7, 7, false);
        // Three groups of 16 tiles in a row, the last one partial; odd output width.
        check(6, 9, 69, [1, 1, 1, 1], 5, 9, false);
        check(4, 6, 33, [0, 2, 1, 0], 6, 10, false);
        // The largest sums: every weight and input −128.
        check(300, 4, 4, [1; 4], 4, 8, true);
    }

    #[test]
    fn unsupported_geometries_are_refused() {
        let g = Geometry { cin: 4, h: 8, w: 8, kh: 3, kw: 3, stride: (2, 2), dilation: (1, 1), pads: [1; 4] };
        assert!(WinogradQConv::new(g, &[0; 4 * 36], &[0; 4], 0, Requant::new(vec![1.0; 4], 0)).is_err());
        let g = Geometry { cin: 4000, stride: (1, 1), ..g };
        assert!(WinogradQConv::new(g, &vec![0; 36000], &[0], 0, Requant::new(vec![1.0], 0)).is_err());
    }
}
