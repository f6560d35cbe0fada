//! aarch64 micro-kernels: NEON (ARMv8.0) and the ARMv8.2 dot product.

pub(crate) mod dotprod;
pub(crate) mod neon;

/// A depthwise convolution's ARM form, chosen at load: the `sdot` kernel (dot product; strides
/// 1 and 2, no dilation, `kw ≤ 8`) or NEON's (any geometry, weights in −127..=127). Both read
/// raw int8 planes padded with the input zero point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Depthwise {
    Dot(dotprod::Depthwise),
    Neon(neon::Depthwise),
}

impl Depthwise {
    /// Bytes held.
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            Depthwise::Dot(d) => d.held_bytes(),
            Depthwise::Neon(d) => d.held_bytes(),
        }
    }
}

/// `bias[c] − z_x · Σ w[c]`: the bias of a convolution over raw int8 inputs whose padding holds
/// the input zero point `z_x`, equal to `bias + Σ w · (x − z_x)` over the same taps (modulo 2³²,
/// like the accumulation itself).
pub(crate) fn fold_zero_point(weights: &[i8], bias: &[i32], taps: usize, x_zp: i8) -> Vec<i32> {
    let zx = i32::from(x_zp);
    bias.iter().zip(weights.chunks_exact(taps)).map(|(&b, w)| b.wrapping_sub(zx * w.iter().map(|&v| i32::from(v)).sum::<i32>())).collect()
}

/// Whether a stride-1 depthwise layer runs faster "flat": its output rows computed as one run
/// over the padded plane's row pitch `pw` (so a 16-output tile spans rows, and narrow planes
/// waste no lanes), `pw − ow` wasted outputs per row, then copied back to rows of `ow`. A tile
/// costs about 64 instructions, copying a row back about 4 plus 2 per 16 bytes.
pub(crate) fn flat_pays(oh: usize, ow: usize, pw: usize) -> bool {
    if oh == 0 || ow == 0 {
        return false;
    }
    let rows = oh * ow.div_ceil(16) * 64;
    let flat = ((oh - 1) * pw + ow).div_ceil(16) * 64 + oh * (4 + 2 * ow.div_ceil(16));
    flat < rows
}

/// Packs `[m][k]` weights into `[m / mr][k / kc][mr][kc]`: blocks of `mr` rows with `kc`
/// consecutive `k` of each row together, zero-padded rows and `k` (NEON: 4 × 16, dot product:
/// 8 × 4). Done once, when a model is loaded.
pub(crate) fn pack_a(weights: &[i8], m: usize, k: usize, mr: usize, kc: usize) -> Vec<i8> {
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

/// The columns of a `pack_b` group that the 16-column vector code does not cover, one byte at a
/// time: column `c`'s `rows` values from `src` (row stride `stride`) to its `kc` bytes at
/// `dst + (c / nr) · panel + (c % nr) · kc`, zero past `rows`.
///
/// # Safety
/// Every read and write lies within the caller's `src` and packed buffer.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn pack_columns_tail(
    src: *const i8,
    stride: usize,
    rows: usize,
    dst: *mut i8,
    panel: usize,
    cols: std::ops::Range<usize>,
    nr: usize,
    kc: usize,
) {
    for c in cols {
        let d = dst.add((c / nr) * panel + (c % nr) * kc);
        for i in 0..kc {
            *d.add(i) = if i < rows { *src.add(i * stride + c) } else { 0 };
        }
    }
}
