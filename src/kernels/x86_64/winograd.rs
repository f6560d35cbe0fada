//! x86-64 AVX2 pieces of Winograd F(2×2, 3×3), beside the portable code in
//! `kernels/winograd/layer.rs` that they must equal (its tests run both): the input transform
//! of 16 tiles at a time from padded int8 rows, the interleaving of channel pairs into
//! `vpmaddwd` words, and the 4×16 register tile of the 16 position-wise GEMMs.

use super::avx2::micro_4x16;
use crate::kernels::plan::{PAIR_MR as MR, PAIR_NR as NR};
use crate::kernels::winograd::layer::{winograd_block, WinogradIsa, TILES};

/// The AVX2 pieces.
pub(crate) struct Avx2;

impl WinogradIsa for Avx2 {
    const SIMD_TRANSFORM: bool = true;

    #[inline(always)]
    unsafe fn transform_tile_row(rows: &[i8], rs: usize, tw: usize, v: &mut [i16], vs: usize, base: usize) {
        // SAFETY: the CPU has AVX2 (the trait's contract).
        unsafe { transform_tile_row_avx2(rows, rs, tw, v, vs, base) }
    }

    #[inline(always)]
    unsafe fn interleave(a: &[i16], b: &[i16], dst: &mut [u32], pw: usize, cc: usize) -> bool {
        // SAFETY: the CPU has AVX2 (the trait's contract).
        unsafe { interleave_avx2(a, b, dst, pw, cc) };
        true
    }

    #[inline(always)]
    unsafe fn tile(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
        // SAFETY: the CPU has AVX2 (the trait's contract).
        unsafe { tile_avx2(a, b, kh, two, acc) }
    }
}

winograd_block!(
    /// The AVX2 pieces, compiled with AVX2 enabled.
    BLOCK = Avx2, "avx2"
);

/// `V = Bᵀ d B` of the `tw` tiles of one tile row, 16 tiles at a time: `rows` holds the four
/// padded input rows (stride `rs`, column `2t + j` of tile `t`'s `j`), `v[e · vs + base + t]`
/// gets position `e` of tile `t`. Whole groups of 16 are written, up to 15 past `base + tw`.
///
/// # Safety
/// The CPU has AVX2. (The lengths of `rows` and `v` are asserted.)
#[target_feature(enable = "avx2")]
unsafe fn transform_tile_row_avx2(rows: &[i8], rs: usize, tw: usize, v: &mut [i16], vs: usize, base: usize) {
    use std::arch::x86_64::*;
    let groups = tw.div_ceil(TILES);
    assert!(rows.len() >= 4 * rs && rs >= 2 * (groups - 1) * TILES + 34);
    assert!(v.len() >= 15 * vs + base + groups * TILES);
    // Per 128-bit lane: the 8 even bytes, then the 8 odd ones.
    let split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for grp in 0..groups {
        let t0 = grp * TILES;
        // Columns 2t, 2t+1 (E, O) and 2t+2, 2t+3 (E1, O1) of tiles t0..t0+16, for each row.
        let mut e = [_mm256_setzero_si256(); 4];
        let mut o = [_mm256_setzero_si256(); 4];
        let mut e1 = [_mm256_setzero_si256(); 4];
        let mut o1 = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            // SAFETY: row i holds rs ≥ 2·t0 + 34 bytes (asserted).
            let (a, b) = unsafe {
                let p = rows.as_ptr().add(i * rs + 2 * t0);
                (_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(2) as *const __m256i))
            };
            // [evens lane 0, odds lane 0, evens lane 1, odds lane 1] → [evens 0–15, odds 0–15].
            let a = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(a, split));
            let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(b, split));
            e[i] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(a));
            o[i] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(a));
            e1[i] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b));
            o1[i] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(b));
        }
        // Rows of Bᵀ d: r0 = d0 − d2, r1 = d1 + d2, r2 = d2 − d1, r3 = d1 − d3.
        let bt = |d: [__m256i; 4]| [_mm256_sub_epi16(d[0], d[2]), _mm256_add_epi16(d[1], d[2]), _mm256_sub_epi16(d[2], d[1]), _mm256_sub_epi16(d[1], d[3])];
        let (re, ro, re1, ro1) = (bt(e), bt(o), bt(e1), bt(o1));
        for a in 0..4 {
            let vals = [_mm256_sub_epi16(re[a], re1[a]), _mm256_add_epi16(ro[a], re1[a]), _mm256_sub_epi16(re1[a], ro[a]), _mm256_sub_epi16(ro[a], ro1[a])];
            for (b, val) in vals.into_iter().enumerate() {
                // SAFETY: (4a + b)·vs + base + t0 + 16 ≤ v.len() (asserted).
                unsafe { _mm256_storeu_si256(v.as_mut_ptr().add((4 * a + b) * vs + base + t0) as *mut __m256i, val) };
            }
        }
    }
}

/// Channel `c`'s values `a` and channel `c + 1`'s `b` (lengths a multiple of 16) as words
/// into `dst`: panel `p` (columns `8p..8p + 8`) at `p · pw + cc · NR`.
///
/// # Safety
/// The CPU has AVX2. (The lengths are asserted.)
#[target_feature(enable = "avx2")]
unsafe fn interleave_avx2(a: &[i16], b: &[i16], dst: &mut [u32], pw: usize, cc: usize) {
    use std::arch::x86_64::*;
    assert!(a.len() == b.len() && a.len().is_multiple_of(TILES));
    let panels = a.len() / NR;
    assert!(panels == 0 || (panels - 1) * pw + cc * NR + NR <= dst.len());
    for p in (0..panels).step_by(2) {
        // SAFETY: 16 values from column 8p (a multiple of 16 long); panels p and p + 1 of
        // `dst` are in bounds (asserted for the last one).
        unsafe {
            let va = _mm256_loadu_si256(a.as_ptr().add(p * NR) as *const __m256i);
            let vb = _mm256_loadu_si256(b.as_ptr().add(p * NR) as *const __m256i);
            // Within each 128-bit lane: lo = columns 0–3 (8–11), hi = 4–7 (12–15).
            let lo = _mm256_unpacklo_epi16(va, vb);
            let hi = _mm256_unpackhi_epi16(va, vb);
            let d = dst.as_mut_ptr();
            _mm256_storeu_si256(d.add(p * pw + cc * NR) as *mut __m256i, _mm256_permute2x128_si256::<0x20>(lo, hi));
            _mm256_storeu_si256(d.add((p + 1) * pw + cc * NR) as *mut __m256i, _mm256_permute2x128_si256::<0x31>(lo, hi));
        }
    }
}

/// The 4×16 register tile of one position's GEMM: `acc` gets `a` (`kh · MR` words) times one
/// panel of `b` (two when `two`), as the portable `tile_portable`.
///
/// # Safety
/// The CPU has AVX2. (The lengths are asserted.)
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(a: &[u32], b: &[u32], kh: usize, two: bool, acc: &mut [i32; MR * TILES]) {
    use std::arch::x86_64::*;
    let plen = kh * NR;
    assert!(a.len() >= kh * MR && b.len() >= if two { 2 * plen } else { plen });
    let (b0, w) = (b.as_ptr(), a.as_ptr());
    // SAFETY: lengths asserted above; AVX2 is present (this function's contract).
    let c = unsafe {
        if two {
            micro_4x16::<true>(w, b0, b0.add(plen), kh)
        } else {
            micro_4x16::<false>(w, b0, b0, kh)
        }
    };
    let p = acc.as_mut_ptr() as *mut __m256i;
    // SAFETY: acc holds MR · 16 i32 = 8 vectors.
    unsafe {
        for (i, v) in c.into_iter().enumerate() {
            _mm256_storeu_si256(p.add(i), v);
        }
    }
}
