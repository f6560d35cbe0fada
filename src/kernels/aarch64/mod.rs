//! aarch64 micro-kernels: NEON (ARMv8.0) and the ARMv8.2 dot product.

pub(crate) mod dotprod;
pub(crate) mod neon;

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
