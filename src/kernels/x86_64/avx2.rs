//! x86-64 AVX2 micro-kernels of the dense int8 convolution, beside the portable reference
//! that they must equal (and do: the kernel tests run every kernel set this CPU has against it
//! and against an i64 definition). `vpmaddwd` multiplies i16 pairs into i32, 16 multiply-adds
//! per instruction; a 4×16 register tile; requantisation in registers. The weights are in the
//! portable set's i16-pair layout ([`PairPacked`]).

use std::ops::Range;

use crate::kernels::layers::{row_blocks, DenseLayer};
use crate::kernels::packing::{im2col, no_evens};
use crate::kernels::plan::{PAIR_MR as MR, PAIR_NR as NR};
use crate::kernels::portable::{pack_b, store_tile, PairPacked};
use crate::kernels::tasks::{Out, Work};

/// The AVX2 dense kernel: the portable layout, AVX2 packing, tile and epilogue.
#[derive(Debug)]
pub(crate) struct Avx2Dense(pub(crate) PairPacked);

impl Avx2Dense {
    /// [`DenseKernel::pack`](crate::kernels::layers::DenseKernel::pack) for AVX2: straight
    /// from `x` for a pointwise convolution, else through an im2col of just those columns.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn pack_avx2(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        if l.geo.is_pointwise() {
            trace!("dense.pointwise");
            // SAFETY: AVX2 is present (this function's contract).
            unsafe { pack_b_avx2(x, l.k, l.oh * l.ow, l.kp, c0, ncols, dst) };
        } else {
            trace!("dense.im2col");
            let Work { cols, segs, .. } = work;
            im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, no_evens);
            // SAFETY: AVX2 is present (this function's contract).
            unsafe { pack_b_avx2(cols, l.k, ncols, l.kp, 0, ncols, dst) };
        }
    }

    /// The GEMM of the row blocks of `rows` by the packed columns `col0..col0 + ncols`,
    /// requantised into `y` (rows of `n`).
    ///
    /// # Safety
    /// The CPU has AVX2, and no other task accesses columns `col0..col0 + ncols` of `rows` of
    /// `y` meanwhile.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm_avx2(
        &self,
        l: &DenseLayer,
        packed: &[i16],
        wide: &mut Vec<u32>,
        rows: Range<usize>,
        col0: usize,
        ncols: usize,
        n: usize,
        y: Out,
    ) {
        use std::arch::x86_64::*;
        let kh = l.kp / 2;
        let panel_len = kh * NR * 2;
        let panels = ncols.div_ceil(NR);
        for blk in row_blocks(rows, MR) {
            let a = self.0.widen_block(l, blk, wide).as_ptr();
            let mut p = 0;
            while p < panels {
                let two = p + 1 < panels;
                let b0 = packed[p * panel_len..].as_ptr();
                let b1 = if two { packed[(p + 1) * panel_len..].as_ptr() } else { b0 };
                // SAFETY: each panel holds kh·16 i16, A holds kh·MR words; AVX2 is present.
                let [c00, c01, c10, c11, c20, c21, c30, c31] = unsafe {
                    if two {
                        micro_4x16::<true>(a, b0 as *const u32, b1 as *const u32, kh)
                    } else {
                        micro_4x16::<false>(a, b0 as *const u32, b1 as *const u32, kh)
                    }
                };
                let cols = (ncols - p * NR).min(if two { 2 * NR } else { NR });
                let tile = [(c00, c01), (c10, c11), (c20, c21), (c30, c31)];
                if !two {
                    trace!("avx2.one_panel");
                }
                if cols == 2 * NR && (blk + 1) * MR <= l.m {
                    trace!("avx2.full");
                    for (r, (lo, hi)) in tile.into_iter().enumerate() {
                        let row = blk * MR + r;
                        // SAFETY: this task owns columns col0.. of its rows (see `run_split`); AVX2.
                        unsafe { requant16_avx2(l, lo, hi, row, y.slice(row * n + col0 + p * NR, 2 * NR)) };
                    }
                } else {
                    let mut acc = [[0i32; 2 * NR]; MR];
                    for (r, (lo, hi)) in tile.into_iter().enumerate() {
                        // SAFETY: each row of `acc` holds 16 i32.
                        unsafe {
                            _mm256_storeu_si256(acc[r].as_mut_ptr() as *mut __m256i, lo);
                            _mm256_storeu_si256(acc[r].as_mut_ptr().add(NR) as *mut __m256i, hi);
                        }
                    }
                    trace!("avx2.partial");
                    store_tile(l, &acc, blk * MR, col0 + p * NR, cols, n, y);
                }
                p += 2;
            }
        }
    }
}

/// [`Requant::one`](crate::kernels::requant::Requant::one) on 16 accumulators of `row` in
/// registers, stored as 16 int8: the same operations in the same order (i32 add, f32 convert,
/// multiply, clamp, round half to even by `cvtps2dq` in the default rounding mode), so
/// bit-identical to the scalar path.
///
/// # Safety
/// The CPU has AVX2.
///
/// # Panics
/// If `out` holds fewer than 16 bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn requant16_avx2(l: &DenseLayer, lo: std::arch::x86_64::__m256i, hi: std::arch::x86_64::__m256i, row: usize, out: &mut [i8]) {
    use std::arch::x86_64::*;
    assert!(out.len() >= 16);
    let rq = &l.requant;
    let bias = _mm256_set1_epi32(l.bias[row]);
    let scale = _mm256_set1_ps(rq.scale[row]);
    let (lo_f, hi_f, zp) = (_mm256_set1_ps(rq.lo), _mm256_set1_ps(rq.hi), _mm256_set1_epi32(rq.zero_point));
    let q = |v: __m256i| {
        let f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(v, bias)), scale);
        _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(f, lo_f), hi_f)), zp)
    };
    // packs works within 128-bit lanes: [a0..3 b0..3 | a4..7 b4..7] → reorder the quads.
    let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q(lo), q(hi)));
    let bytes = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
    // SAFETY: `out` holds at least 16 bytes (asserted).
    unsafe { _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, bytes) };
}

/// The register tile: `Σ_k a[k][r] · b[k][j]` for MR = 4 rows and 16 columns (8 when `!TWO`:
/// the second half is then zero and `b1` unread), over `kh` pairs of `k`. `a` holds `kh · MR`
/// words (two i16, the even `k` low), `b0`/`b1` `kh · NR` words each (a panel of 8 columns).
/// Returns the accumulators by row: `[r0 cols 0..8, r0 cols 8..16, r1 …]`.
///
/// # Safety
/// AVX2 is present and the pointers are valid for those lengths.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn micro_4x16<const TWO: bool>(a: *const u32, b0: *const u32, b1: *const u32, kh: usize) -> [std::arch::x86_64::__m256i; 8] {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_si256();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21, mut c30, mut c31) = (z, z, z, z, z, z, z, z);
    for kk in 0..kh {
        // SAFETY: kk < kh (the caller's contract covers the lengths).
        unsafe {
            let v0 = _mm256_loadu_si256(b0.add(kk * NR) as *const __m256i);
            let w = a.add(kk * MR);
            let a0 = _mm256_set1_epi32(*w as i32);
            let a1 = _mm256_set1_epi32(*w.add(1) as i32);
            let a2 = _mm256_set1_epi32(*w.add(2) as i32);
            let a3 = _mm256_set1_epi32(*w.add(3) as i32);
            c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(a0, v0));
            c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(a1, v0));
            c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(a2, v0));
            c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(a3, v0));
            if TWO {
                let v1 = _mm256_loadu_si256(b1.add(kk * NR) as *const __m256i);
                c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(a0, v1));
                c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(a1, v1));
                c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(a2, v1));
                c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(a3, v1));
            }
        }
    }
    [c00, c01, c10, c11, c20, c21, c30, c31]
}

/// [`pack_b`] with AVX2: two rows of 8 columns interleaved and sign-extended in registers.
///
/// # Safety
/// The CPU has AVX2. (Lengths are checked: out-of-range slices panic.)
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_b_avx2(cols: &[i8], k: usize, n: usize, kp: usize, c0: usize, ncols: usize, packed: &mut [i16]) {
    use std::arch::x86_64::*;
    let kh = kp / 2;
    let full = ncols / NR;
    let pairs = k / 2;
    for p in 0..full {
        let pc = c0 + p * NR;
        let panel = &mut packed[p * kh * NR * 2..(p + 1) * kh * NR * 2];
        for kk in 0..pairs {
            let r0 = &cols[2 * kk * n + pc..][..NR];
            let r1 = &cols[(2 * kk + 1) * n + pc..][..NR];
            let dst = &mut panel[kk * NR * 2..][..2 * NR];
            // SAFETY: r0, r1 hold NR = 8 bytes, dst 16 i16 (bounds checked by the slicing above).
            unsafe {
                let a = _mm_loadl_epi64(r0.as_ptr() as *const __m128i);
                let b = _mm_loadl_epi64(r1.as_ptr() as *const __m128i);
                let v = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
                _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, v);
            }
        }
        if k & 1 == 1 {
            let r0 = &cols[(k - 1) * n + pc..][..NR];
            let dst = &mut panel[pairs * NR * 2..][..2 * NR];
            for j in 0..NR {
                dst[2 * j] = i16::from(r0[j]);
                dst[2 * j + 1] = 0;
            }
        }
    }
    if full * NR < ncols {
        let start = full * kh * NR * 2;
        pack_b(cols, k, n, kp, c0 + full * NR, ncols - full * NR, &mut packed[start..]);
    }
}
