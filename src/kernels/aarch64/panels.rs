//! The column panels the aarch64 GEMMs walk (packed, or read in place) and the small copies
//! both kernel sets share. Below `neon/` and `dotprod.rs`, which add their tiles to these
//! panels through their own traits (`neon::NeonPanels`, `dotprod::DotPanels`).

/// Where the `k` groups of one column panel lie: packed one after the other ([`Packed`]), or in
/// a channel-interleaved input at a table of offsets ([`Direct`], see `DirectConv`).
pub(crate) trait Cols: Copy {
    /// For the `asm!` tiles: the start, the offset table (null when packed) and the bytes
    /// between packed groups (0 when read in place).
    fn parts(self) -> (*const i8, *const usize, usize);
}

/// A packed panel: group `g` at `STEP · g` bytes.
#[derive(Clone, Copy)]
pub(crate) struct Packed<const STEP: usize>(pub(crate) *const i8);

impl<const STEP: usize> Cols for Packed<STEP> {
    #[inline(always)]
    fn parts(self) -> (*const i8, *const usize, usize) {
        (self.0, std::ptr::null(), STEP)
    }
}

/// A panel read in place: group `g` at `base + koff[g]`.
#[derive(Clone, Copy)]
pub(crate) struct Direct {
    pub(crate) base: *const i8,
    pub(crate) koff: *const usize,
}

impl Cols for Direct {
    #[inline(always)]
    fn parts(self) -> (*const i8, *const usize, usize) {
        (self.base, self.koff, 0)
    }
}

/// The column panels a GEMM call computes: each with its groups, the output column of its first
/// column and how many of its columns are real (the rest are computed and not stored).
pub(crate) trait Panels {
    type C: Cols;
    fn count(&self) -> usize;
    /// Whether every panel's real columns lie within `0..n` (output rows of length `n`).
    fn within(&self, n: usize) -> bool;
    /// # Safety
    /// `p < count()`.
    unsafe fn panel(&self, p: usize) -> (Self::C, usize, usize);
}

/// Panels packed one after the other (`pack_b`), for output columns `col0..col0 + ncols`.
/// `HALF` (NEON): the last `k` group holds only 8 real `k` (`k % 16` in 1..=8, at least 2
/// groups), so the tile skips the products of its zero half (`neon::tile_asm_half`); a type
/// parameter, so that the choice is made once per call, not per tile.
pub(crate) struct PackedPanels<const STEP: usize, const NR: usize, const HALF: bool = false> {
    pub(crate) packed: *const i8,
    /// Bytes per panel.
    pub(crate) panel: usize,
    pub(crate) ncols: usize,
    pub(crate) col0: usize,
}

impl<const STEP: usize, const NR: usize, const HALF: bool> Panels for PackedPanels<STEP, NR, HALF> {
    type C = Packed<STEP>;
    #[inline(always)]
    fn count(&self) -> usize {
        self.ncols.div_ceil(NR)
    }
    fn within(&self, n: usize) -> bool {
        self.col0 + self.ncols <= n
    }
    #[inline(always)]
    unsafe fn panel(&self, p: usize) -> (Packed<STEP>, usize, usize) {
        // SAFETY: `p < count()` (the contract) keeps the panel within the packed buffer.
        unsafe { (Packed(self.packed.add(p * self.panel)), self.col0 + p * NR, (self.ncols - p * NR).min(NR)) }
    }
}

/// Panels read in place from a channel-interleaved input: `[offset, output column, columns]`
/// (made by `DirectConv::direct_panels`, which checks that they read within the input).
pub(crate) struct DirectPanels<'a> {
    pub(crate) base: *const i8,
    pub(crate) koff: &'a [usize],
    pub(crate) list: &'a [[usize; 3]],
    /// NEON: the offsets of the runs of `run` consecutive kernel columns (3 or 5; 0: none).
    pub(crate) runs: &'a [usize],
    pub(crate) run: usize,
}

impl Panels for DirectPanels<'_> {
    type C = Direct;
    #[inline(always)]
    fn count(&self) -> usize {
        self.list.len()
    }
    fn within(&self, n: usize) -> bool {
        self.list.iter().all(|&[_, col, cols]| col + cols <= n)
    }
    #[inline(always)]
    unsafe fn panel(&self, p: usize) -> (Direct, usize, usize) {
        // SAFETY: `p < count()` (the contract); `direct_panels` checked every offset against the input.
        unsafe {
            let [off, col, cols] = *self.list.get_unchecked(p);
            (Direct { base: self.base.add(off), koff: self.koff.as_ptr() }, col, cols)
        }
    }
}

/// `src[at..at + rows]` in the first `rows` of an array of `N` (the rest default): a full block
/// as one copy of a length known when compiled, a partial one element by element. Per row block
/// of a GEMM, for its biases and scales: `copy_from_slice` of a run-time length called `memcpy`
/// (about 40 instructions a call, two per row block).
///
/// # Panics
/// If `at + rows` is past `src` or `rows > N`.
#[inline(always)]
pub(crate) fn block_of<T: Copy + Default, const N: usize>(src: &[T], at: usize, rows: usize) -> [T; N] {
    let mut out = [T::default(); N];
    if rows == N {
        out.copy_from_slice(&src[at..at + N]);
    } else {
        for (o, &v) in out[..rows].iter_mut().zip(&src[at..at + rows]) {
            *o = v;
        }
    }
    out
}

/// Copies `len < 8` bytes from `src` to `dst` as at most one 4-, one 2- and one 1-byte access,
/// where `copy_nonoverlapping` of a run-time length calls `memcpy` (about 40 instructions): a
/// partial tile's rows.
///
/// # Safety
/// `src` is readable and `dst` writable for `len` bytes; `len < 8`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: *const i8, dst: *mut i8, len: usize) {
    // SAFETY: `src` is readable and `dst` writable for `len < 8` bytes (the contract).
    unsafe {
        debug_assert!(len < 8);
        let mut i = 0;
        if len & 4 != 0 {
            std::ptr::write_unaligned(dst as *mut u32, std::ptr::read_unaligned(src as *const u32));
            i = 4;
        }
        if len & 2 != 0 {
            std::ptr::write_unaligned(dst.add(i) as *mut u16, std::ptr::read_unaligned(src.add(i) as *const u16));
            i += 2;
        }
        if len & 1 != 0 {
            *dst.add(i) = *src.add(i);
        }
    }
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
    // SAFETY: every access lies within the caller's buffers (the contract).
    unsafe {
        for c in cols {
            let d = dst.add((c / nr) * panel + (c % nr) * kc);
            for i in 0..kc {
                *d.add(i) = if i < rows { *src.add(i * stride + c) } else { 0 };
            }
        }
    }
}
