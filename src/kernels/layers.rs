//! What every kernel set implements: the traits of the kernel table and the layer data the
//! implementations share (geometry, biases, requantization). An op holds one implementation,
//! chosen once at construction by [`table`](super::table) from its [`plan`](super::plan), and
//! the implementation holds its weights in its own packed layout.

use std::fmt;
use std::ops::Range;

use super::geometry::Geometry;
use super::requant::Requant;
use super::tasks::{Out, Parallel, Work};

/// A dense (groups = 1) convolution's data that does not depend on the kernel set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DenseLayer {
    pub(crate) geo: Geometry,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    /// Output channels.
    pub(crate) m: usize,
    /// `cin · kh · kw`.
    pub(crate) k: usize,
    /// `k` rounded up to even.
    pub(crate) kp: usize,
    /// Bias with the input zero point folded in: `bias − z_x · Σ_k w`.
    pub(crate) bias: Vec<i32>,
    pub(crate) x_zp: i8,
    pub(crate) requant: Requant,
}

/// One kernel set's dense convolution: its packed weights and the micro-kernels that multiply
/// them by a block of output columns.
pub(crate) trait DenseKernel: fmt::Debug + Send + Sync {
    /// Bytes of packed weights held.
    fn held_bytes(&self) -> usize;

    /// Prepares an input that every task reads (an in-place convolution's channel-interleaved
    /// input), once per run, into `buf` (the calling thread's), maybe as a job of `par`;
    /// returns whether it did.
    fn prepare(&self, _layer: &DenseLayer, _x: &[i8], _buf: &mut Vec<i8>, _par: &dyn Parallel) -> bool {
        false
    }

    /// The length, in i16 (the unit of every packed buffer; int8 layouts take two bytes a
    /// unit), of `ncols` packed columns; `None` for a form that packs nothing and reads its
    /// columns in place from what [`prepare`](Self::prepare) wrote.
    fn packed_len(&self, layer: &DenseLayer, ncols: usize) -> Option<usize>;

    /// Packs the columns `c0..c0 + ncols` (from `x` directly when pointwise, else through an
    /// im2col in `work`) into `dst`, [`packed_len`](Self::packed_len) long, in this set's
    /// layout. Only called when `packed_len` is `Some`.
    fn pack(&self, layer: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]);

    /// Output columns `c0..c0 + ncols` of the output rows (channels) `rows` (rows of
    /// `oh · ow`) into `out`, from `packed` (what [`pack`](Self::pack) wrote for those columns;
    /// empty for a form that packs nothing, which reads `shared`, what
    /// [`prepare`](Self::prepare) wrote). `rows.start` is a multiple of the set's tile rows
    /// ([`Tile::dense`](super::plan::Tile::dense)) and `rows.end <= m`.
    ///
    /// The caller guarantees that no other task accesses those columns of those rows of `out`
    /// meanwhile (every implementation relies on it for its writes through `out`).
    #[allow(clippy::too_many_arguments)]
    fn gemm(&self, layer: &DenseLayer, shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, work: &mut Work, out: Out);
}

/// An int8 view of a packed buffer (the int8 layouts are packed into the i16 buffers).
pub(crate) fn bytes(v: &[i16]) -> &[i8] {
    // SAFETY: i8 has no alignment requirement and every byte of an i16 is an initialised i8.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), 2 * v.len()) }
}

/// [`bytes`] for writing.
pub(crate) fn bytes_mut(v: &mut [i16]) -> &mut [i8] {
    // SAFETY: as for `bytes`; any byte values make valid i16.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), 2 * v.len()) }
}

/// The tile-row blocks (of `mr` rows) that cover output rows `rows`, whose start is a multiple
/// of `mr` ([`DenseKernel::gemm`]'s contract).
pub(crate) fn row_blocks(rows: Range<usize>, mr: usize) -> Range<usize> {
    assert!(rows.start.is_multiple_of(mr), "row block starting at {} for tiles of {mr} rows", rows.start);
    rows.start / mr..rows.end.div_ceil(mr)
}

/// A depthwise (groups = channels) convolution's data that does not depend on the kernel set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DepthwiseLayer {
    pub(crate) geo: Geometry,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    /// Bias as given (the forms that need it fold the input zero point into their own copy).
    pub(crate) bias: Vec<i32>,
    pub(crate) x_zp: i8,
    pub(crate) requant: Requant,
}

/// One kernel set's depthwise convolution.
pub(crate) trait DepthwiseKernel: fmt::Debug + Send + Sync {
    /// Bytes of weights (and whatever else the form keeps per channel) held.
    fn held_bytes(&self) -> usize;

    /// The output planes of `channels` into `out` (`[c][oh][ow]`). The caller guarantees that
    /// no other task writes those planes meanwhile.
    fn channels(&self, layer: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work);
}

/// One kernel set's element-wise int8 kernels, as plain functions (see
/// [`elementwise`](super::elementwise) for their definitions).
#[derive(Clone, Copy)]
pub(crate) struct Elementwise {
    pub(crate) quantize: fn(&[f32], f32, i8, &mut [i8]),
    pub(crate) dequantize: fn(&[i8], f32, i8, &mut [f32]),
    pub(crate) quantized_add: fn(&[i8], (f32, i8), &[i8], (f32, i8), (f32, i8), &mut [i8]),
    pub(crate) lookup: fn(&[i8; 256], &[i8], &mut [i8]),
}
