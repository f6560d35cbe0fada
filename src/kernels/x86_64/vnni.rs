//! x86-64 AVX-512 VNNI dense int8 kernel (the `avx512vnni` set): `vpdpbusd` on zmm registers
//! multiplies 64 unsigned bytes by 64 signed bytes and adds each group of 4 products into one
//! of 16 i32 lanes — 64 multiply-adds per instruction, 4× AVX2's `vpmaddwd` on i16 pairs.
//!
//! `vpdpbusd` wants one operand unsigned: the activations are shifted by +128 into u8 when
//! they are packed (`x ^ 0x80`), and the shift is removed exactly through the bias:
//! `Σ_k (x + 128)·w = Σ_k x·w + 128·Σ_k w`, so the kernel's bias is the layer's folded bias
//! minus `128·Σ_k w[m][k]` (modulo 2³², like the accumulation). Weights stay signed and are
//! broadcast from memory into the instruction (`{1to16}`), 4 `k` of one row per lane.
//!
//! Layouts: weights `[m / 8][k / 4][8][4]` (a row block's 4 `k` of each of 8 rows together),
//! columns `[panel of 16][k / 4][16][4]` u8. The register tile is 8 rows × 32 columns (16
//! accumulators of 16 lanes: lanes are output columns, so each row's result is 16 contiguous
//! output bytes); the epilogue requantises in registers with the same operations in the same
//! order as [`Requant::one`](crate::kernels::Requant) and stores with a byte mask.

use std::arch::x86_64::*;

use std::ops::Range;

use crate::kernels::layers::{row_blocks, DenseLayer};
use crate::kernels::packing::{im2col, no_evens};
use crate::kernels::tasks::{Out, Work};

/// Rows (output channels) of the register tile.
pub(crate) const MR: usize = 8;
/// Columns of a packed panel (one zmm of i32 lanes).
pub(crate) const NR: usize = 16;
/// `k` per packed group (one `vpdpbusd` lane).
pub(crate) const KC: usize = 4;

/// The AVX-512 VNNI dense kernel: packed weights and the bias with the +128 shift removed.
#[derive(Debug)]
pub(crate) struct VnniDense {
    /// `[m / MR][k / KC][MR][KC]`, zero past `m` and `k`.
    a: Vec<i8>,
    /// `layer.bias[m] − 128 · Σ_k w[m][k]`, then padded to whole row blocks.
    bias: Vec<i32>,
}

impl VnniDense {
    /// The kernel for a layer with `weights` (`[m][k]`).
    pub(crate) fn new(l: &DenseLayer, weights: &[i8]) -> Self {
        let a = crate::kernels::packing::pack_blocks(weights, l.m, l.k, MR, KC);
        let mut bias: Vec<i32> =
            weights.chunks_exact(l.k).zip(&l.bias).map(|(w, &b)| b.wrapping_sub(128i32.wrapping_mul(w.iter().map(|&v| i32::from(v)).sum::<i32>()))).collect();
        bias.resize(l.m.div_ceil(MR) * MR, 0);
        VnniDense { a, bias }
    }

    /// Bytes of packed weights and shifted biases.
    pub(crate) fn held_bytes(&self) -> usize {
        self.a.len() + 4 * self.bias.len()
    }

    /// Bytes of `ncols` packed columns (`[panel][k / 4][16][4]` u8).
    pub(crate) fn packed_bytes(l: &DenseLayer, ncols: usize) -> usize {
        ncols.div_ceil(NR) * l.k.div_ceil(KC) * NR * KC
    }

    /// Columns `c0..c0 + ncols` packed into `dst`: from `x` directly when pointwise, else
    /// through im2col.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i8]) {
        if l.geo.is_pointwise() {
            trace!("dense.pointwise");
            pack_b(x, l.k, l.oh * l.ow, c0, ncols, dst);
        } else {
            trace!("dense.im2col");
            let Work { cols, segs, .. } = work;
            im2col(&l.geo, l.ow, x, l.x_zp, c0, ncols, cols, segs, no_evens);
            pack_b(cols, l.k, ncols, 0, ncols, dst);
        }
    }

    /// Every row block by the packed panels of columns `col0..col0 + ncols`, requantised into
    /// `y` (rows of `n`).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI; `packed` holds the panels (what
    /// [`pack`](Self::pack) wrote); no other task accesses columns `col0..col0 + ncols` of the
    /// rows `rows_of` of `y` meanwhile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm(&self, l: &DenseLayer, packed: &[i8], kb: usize, rows_of: Range<usize>, col0: usize, ncols: usize, n: usize, y: Out) {
        let panels = ncols.div_ceil(NR);
        let panel_len = kb * NR * KC;
        assert!(packed.len() >= panels * panel_len && self.a.len() >= l.m.div_ceil(MR) * kb * MR * KC);
        let (dst, len) = y.raw();
        assert!(l.m == 0 || ((l.m - 1) * n + col0 + ncols <= len && col0 + ncols <= n), "GEMM past the output");
        let rq = &l.requant;
        let (lo, hi, zp) = (_mm512_set1_ps(rq.lo), _mm512_set1_ps(rq.hi), _mm512_set1_epi32(rq.zero_point));
        for blk in row_blocks(rows_of, MR) {
            let rows = (l.m - blk * MR).min(MR);
            // SAFETY: the block's weights lie within `a` (asserted above).
            let a = unsafe { self.a.as_ptr().add(blk * kb * MR * KC) };
            let mut p = 0;
            while p < panels {
                let two = p + 1 < panels;
                // SAFETY: panels p (and p + 1 when `two`) lie within `packed` (asserted).
                let b0 = unsafe { packed.as_ptr().add(p * panel_len) };
                let acc = if two {
                    trace!("vnni.two_panels");
                    // SAFETY: as above; AVX-512 VNNI is present.
                    unsafe { tile::<true>(a, b0, b0.add(panel_len), kb) }
                } else {
                    trace!("vnni.one_panel");
                    // SAFETY: as above.
                    unsafe { tile::<false>(a, b0, b0, kb) }
                };
                let cols = (ncols - p * NR).min(if two { 2 * NR } else { NR });
                if rows < MR || cols < 2 * NR {
                    trace!("vnni.partial");
                }
                for (r, pair) in acc.chunks_exact(2).enumerate().take(rows) {
                    let row = blk * MR + r;
                    let bias = _mm512_set1_epi32(self.bias[row]);
                    let scale = _mm512_set1_ps(rq.scale[row]);
                    for (h, &v) in pair.iter().enumerate() {
                        let c = (cols.min((h + 1) * NR)).saturating_sub(h * NR);
                        if c == 0 {
                            break;
                        }
                        let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(v, bias)), scale);
                        let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f, lo), hi)), zp);
                        let bytes = _mm512_cvtsepi32_epi8(q);
                        let mask: __mmask16 = if c == NR { 0xffff } else { (1u16 << c) - 1 };
                        // SAFETY: row `row` (< m), columns col0 + p·NR + h·NR .. + c lie within
                        // this task's columns of the output (asserted above).
                        unsafe { _mm_mask_storeu_epi8(dst.add(row * n + col0 + p * NR + h * NR), mask, bytes) };
                    }
                }
                p += 2;
            }
        }
    }
}

/// The register tile: `Σ_k a[r][k] · b[k][j]` for the 8 rows of the weight block `a` and the
/// 16 columns of panel `b0` (and of `b1` when `TWO`; otherwise those accumulators stay zero and
/// `b1` is unread), over `kb` groups of 4 `k`. Returns `[r0 b0, r0 b1, r1 b0, …]`.
///
/// # Safety
/// AVX-512 VNNI is present; `a` holds `kb · MR · KC` bytes, each panel `kb · NR · KC`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile<const TWO: bool>(a: *const i8, b0: *const i8, b1: *const i8, kb: usize) -> [__m512i; 2 * MR] {
    let mut acc = [_mm512_setzero_si512(); 2 * MR];
    for g in 0..kb {
        // SAFETY: g < kb: within `a` and the panels (the contract).
        unsafe {
            let v0 = _mm512_loadu_si512(b0.add(g * NR * KC) as *const __m512i);
            let v1 = if TWO { _mm512_loadu_si512(b1.add(g * NR * KC) as *const __m512i) } else { v0 };
            let w = a.add(g * MR * KC) as *const i32;
            for r in 0..MR {
                let wr = _mm512_set1_epi32(w.add(r).read_unaligned());
                acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], v0, wr);
                if TWO {
                    acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], v1, wr);
                }
            }
        }
    }
    acc
}

/// Packs columns `c0..c0 + ncols` of the `[k][stride]` int8 matrix `src` into panels of 16
/// columns, `[panel][k / 4][16][4]`, each value shifted to u8 (`x ^ 0x80 = x + 128`); `k` past
/// the last row and columns past `ncols` are filled with 0x80 (x = 0; their weights or stores
/// are zero or skipped anyway).
///
/// # Panics
/// If `src` or `packed` is too short.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn pack_b(src: &[i8], k: usize, stride: usize, c0: usize, ncols: usize, packed: &mut [i8]) {
    let kb = k.div_ceil(KC);
    let panel_len = kb * NR * KC;
    let flip = _mm_set1_epi8(-128);
    for p in 0..ncols.div_ceil(NR) {
        let pc = c0 + p * NR;
        let width = (c0 + ncols - pc).min(NR);
        let panel = &mut packed[p * panel_len..(p + 1) * panel_len];
        for g in 0..kb {
            // The group's 4 rows of 16 columns, shifted to u8 (missing rows and columns 0x80).
            let row = |i: usize| -> __m128i {
                let kk = g * KC + i;
                if kk >= k {
                    return flip;
                }
                let s = &src[kk * stride + pc..kk * stride + pc + width];
                if width == NR {
                    // SAFETY: `s` holds 16 bytes.
                    return _mm_xor_si128(unsafe { _mm_loadu_si128(s.as_ptr() as *const __m128i) }, flip);
                }
                let mut buf = [0i8; NR];
                for (d, &v) in buf.iter_mut().zip(s) {
                    *d = v;
                }
                // SAFETY: `buf` holds 16 bytes.
                _mm_xor_si128(unsafe { _mm_loadu_si128(buf.as_ptr() as *const __m128i) }, flip)
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            // Bytes of rows 0/1 and 2/3 interleaved, then their 16-bit pairs: column j's 4
            // bytes together, columns in order.
            let (a01, b01) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
            let (a23, b23) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
            let q = [_mm_unpacklo_epi16(a01, a23), _mm_unpackhi_epi16(a01, a23), _mm_unpacklo_epi16(b01, b23), _mm_unpackhi_epi16(b01, b23)];
            let dst = &mut panel[g * NR * KC..(g + 1) * NR * KC];
            for (i, v) in q.into_iter().enumerate() {
                // SAFETY: `dst` holds 64 bytes; each store writes 16 of them.
                unsafe { _mm_storeu_si128(dst.as_mut_ptr().add(16 * i) as *mut __m128i, v) };
            }
        }
    }
}

/// The depthwise form of the `avx512vnni` set: `vpdpbusd` on raw planes shifted to u8, 4 taps
/// of a kernel row per lane and 16 outputs per register, for strides 1 and 2, no dilation and
/// `kw ≤ 8` (the planner gives other layers AVX2's form).
///
/// Each channel's plane is padded with its zero point and shifted to u8 (`x ^ 0x80`) once per
/// run; for each output row, kernel row and group of 4 kernel columns, one 64-byte load and one
/// `vpermb` (AVX-512 VBMI) put the 4 input bytes of each of 16 outputs side by side (the
/// windows overlap: `vpermb` picks bytes `s·j + 4g + i`), and one `vpdpbusd` multiplies them
/// by the 4 weights, broadcast. A 3×3 row of 16 outputs is 3 loads, 3 `vpermb` and 3
/// `vpdpbusd`. The shift and the zero point leave through the bias:
/// `Σ w·(x + 128) − (z_x + 128)·Σ w + bias = Σ w·(x − z_x) + bias`, the portable form's sum.
#[derive(Debug)]
pub(crate) struct VnniDepthwise {
    kh: usize,
    stride: usize,
    /// Groups of 4 kernel columns (`kw / 4` rounded up).
    groups: usize,
    /// `[c][kh][groups]`: a kernel row's 4 weights of a group as one dword (0 past `kw`).
    w: Vec<i32>,
    /// `bias − (z_x + 128) · Σ w`, modulo 2³².
    bias: Vec<i32>,
}

impl VnniDepthwise {
    /// The form of `[c][kh][kw]` weights, or `None` for a geometry it does not take.
    pub(crate) fn new(l: &crate::kernels::layers::DepthwiseLayer, weights: &[i8]) -> Option<Self> {
        let g = &l.geo;
        if !crate::kernels::plan::dot_depthwise_fits(g) {
            return None;
        }
        let (kh, kw) = (g.kh, g.kw);
        let taps = kh * kw;
        let c = g.cin;
        if weights.len() != c * taps || l.bias.len() != c {
            return None;
        }
        let groups = kw.div_ceil(4);
        let mut w = vec![0i32; c * kh * groups];
        let mut bias = Vec::with_capacity(c);
        let shift = i32::from(l.x_zp) + 128;
        for ch in 0..c {
            let wc = &weights[ch * taps..(ch + 1) * taps];
            for ky in 0..kh {
                for gi in 0..groups {
                    let mut bytes = [0u8; 4];
                    for (i, b) in bytes.iter_mut().enumerate() {
                        let kx = 4 * gi + i;
                        if kx < kw {
                            *b = wc[ky * kw + kx] as u8;
                        }
                    }
                    w[(ch * kh + ky) * groups + gi] = i32::from_le_bytes(bytes);
                }
            }
            let sum: i32 = wc.iter().map(|&v| i32::from(v)).sum();
            bias.push(l.bias[ch].wrapping_sub(shift.wrapping_mul(sum)));
        }
        Some(VnniDepthwise { kh, stride: g.stride.0, groups, w, bias })
    }

    /// Bytes held: packed weights and biases.
    pub(crate) fn held_bytes(&self) -> usize {
        4 * (self.w.len() + self.bias.len())
    }

    /// The output planes of `channels`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL, VNNI and VBMI, and no other task writes the output planes
    /// of `channels` meanwhile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    pub(crate) unsafe fn channels(&self, l: &crate::kernels::layers::DepthwiseLayer, x: &[i8], y: Out, channels: std::ops::Range<usize>, work: &mut Work) {
        trace!("dw.vnni");
        let g = &l.geo;
        let (hp, pw) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
        let (oh, ow, s) = (l.oh, l.ow, self.stride);
        if oh == 0 || ow == 0 {
            return;
        }
        const SLACK: usize = 64;
        let planes = &mut work.packed8;
        planes.clear();
        // The padding, shifted: z_x + 128 as a byte. Interior rows are rewritten per channel.
        planes.resize(hp * pw + SLACK, l.x_zp ^ i8::MIN);
        // The last tile's last load starts at most at ((oh − 1)·s + kh − 1)·pw + (ow − 1)·s.
        assert!(((oh - 1) * s + self.kh - 1) * pw + (ow - 1) * s + 64 <= planes.len(), "depthwise load past the plane");
        let idx: [__m512i; 2] = std::array::from_fn(|gi| {
            let mut b = [0u8; 64];
            for j in 0..16 {
                for i in 0..4 {
                    b[4 * j + i] = (s * j + 4 * gi + i) as u8;
                }
            }
            // SAFETY: `b` holds 64 bytes.
            unsafe { _mm512_loadu_si512(b.as_ptr() as *const __m512i) }
        });
        let rq = &l.requant;
        let (lo, hi, zp) = (_mm512_set1_ps(rq.lo), _mm512_set1_ps(rq.hi), _mm512_set1_epi32(rq.zero_point));
        let flip = _mm_set1_epi8(i8::MIN);
        for c in channels {
            let src = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for (iy, row) in src.chunks_exact(g.w.max(1)).enumerate().take(g.h) {
                let dst = &mut planes[(g.pads[0] + iy) * pw + g.pads[1]..][..g.w];
                let mut k = 0;
                while k + 16 <= g.w {
                    // SAFETY: 16 bytes of `row` and of `dst` from `k` (checked by the loop).
                    unsafe {
                        let v = _mm_loadu_si128(row.as_ptr().add(k) as *const __m128i);
                        _mm_storeu_si128(dst.as_mut_ptr().add(k) as *mut __m128i, _mm_xor_si128(v, flip));
                    }
                    k += 16;
                }
                let rest = g.w - k;
                if rest > 0 {
                    let m: __mmask16 = (1u16 << rest) - 1;
                    // SAFETY: the mask covers the `rest < 16` bytes of `row` and `dst` from `k`.
                    unsafe {
                        let v = _mm_maskz_loadu_epi8(m, row.as_ptr().add(k));
                        _mm_mask_storeu_epi8(dst.as_mut_ptr().add(k), m, _mm_xor_si128(v, flip));
                    }
                }
            }
            let bias = _mm512_set1_epi32(self.bias[c]);
            let scale = _mm512_set1_ps(rq.scale[c]);
            let wc = &self.w[c * self.kh * self.groups..(c + 1) * self.kh * self.groups];
            // SAFETY: channel c belongs to this task only (the contract).
            let out = unsafe { y.slice(c * oh * ow, oh * ow) };
            let base = planes.as_ptr();
            for oy in 0..oh {
                let mut ox = 0;
                while ox < ow {
                    let mut acc = _mm512_setzero_si512();
                    for ky in 0..self.kh {
                        // SAFETY: within the plane and its slack (asserted above).
                        let v = unsafe { _mm512_loadu_si512(base.add((oy * s + ky) * pw + ox * s) as *const __m512i) };
                        for (gi, &wg) in wc[ky * self.groups..(ky + 1) * self.groups].iter().enumerate() {
                            acc = _mm512_dpbusd_epi32(acc, _mm512_permutexvar_epi8(idx[gi], v), _mm512_set1_epi32(wg));
                        }
                    }
                    let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, bias)), scale);
                    let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f, lo), hi)), zp);
                    let n = (ow - ox).min(16);
                    let mask: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
                    let at = oy * ow + ox;
                    assert!(at + n <= out.len());
                    // SAFETY: `at + n` is within this channel's plane (asserted).
                    unsafe { _mm_mask_storeu_epi8(out.as_mut_ptr().add(at), mask, _mm512_cvtsepi32_epi8(q)) };
                    ox += 16;
                }
            }
        }
    }
}
