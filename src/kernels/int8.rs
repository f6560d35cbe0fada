//! int8 convolution kernels: edgenet's own, for the quantized convolutions tract lowers slowly.
//!
//! The arithmetic is that of an ONNX `QLinearConv` with int8 input, symmetric int8 weights
//! (zero point 0), int32 bias and int8 output, and the requantization is onnxruntime's (MLAS):
//! `y = clamp(round_half_even(f32(acc + bias) · (s_x · s_w / s_y)), qmin − z_y, qmax − z_y) + z_y`
//! with the scale product computed in f32 in that order. The integer accumulation is exact, so
//! on the same file the output is bit-identical to onnxruntime's whenever the accumulator fits
//! f32's 24-bit mantissa, and within one step otherwise.
//!
//! Two kernels:
//! - [`DenseQConv`] (groups = 1): the input, or its im2col columns for k×k convs, is packed into
//!   panels of 8 columns with pairs of input channels interleaved as i16, and multiplied by the
//!   weights packed the same way in 4-row blocks. With AVX2 the inner product is `vpmaddwd`
//!   (16 multiply-adds per instruction, exact; `x86_64/avx2.rs`); this file's portable code is
//!   the reference every kernel set is tested against.
//! - [`DepthwiseQConv`] (groups = channels): a direct convolution per channel over a
//!   zero-point-subtracted, zero-padded i16 plane, vectorised along output rows.
//!
//! On aarch64 both run the NEON or dot-product micro-kernels of `aarch64/` (see [`KernelSet`]),
//! with their own weight layouts and the same results.
//!
//! [`WinogradQConv`](super::winograd::WinogradQConv) is a third, for 3×3 stride-1 layers. They
//! allocate only per-thread buffers (im2col columns, packed panels, padded planes), kept and
//! reused from one run to the next.

use super::KernelSet;

/// 1.5 · 2²³: adding then subtracting it rounds an f32 of magnitude < 2²² to the nearest
/// integer, ties to even, in the default rounding mode (what `cvtps2dq` and `vcvtnq` do).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `v.max(lo).min(hi)` for every `v` (NaN gives `lo`) when `lo ≤ hi`, written as comparisons:
/// armv7's VFP has no float max or min instruction, and `f32::max` there is a call to `fmaxf`.
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

/// Output columns per depthwise register tile.
const DW_TILE: usize = 16;

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2²²` (callers clamp first): the
/// mantissa bits of `v + 1.5·2²³` hold it. Pure bit arithmetic, so it vectorises, unlike a
/// saturating float-to-int cast.
#[inline(always)]
fn round_small(v: f32) -> i32 {
    (v + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32
}

#[cfg(target_arch = "x86_64")]
#[path = "x86_64/avx2.rs"]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::micro_4x16;

/// Target size of one block of packed columns (fits L2 beside the weights).
const PACKED_BLOCK_BYTES: usize = 192 * 1024;

/// Rows of the weight matrix per micro-tile.
pub(super) const MR: usize = 4;
/// Columns (output positions) per packed panel.
pub(super) const NR: usize = 8;

/// Output quantization of a convolution: per-output-channel multipliers, zero point and the
/// clamp range relative to the zero point.
#[derive(Debug, Clone, PartialEq)]
pub struct Requant {
    /// `s_x · s_w[c] / s_y` per output channel, computed in f32 in that order.
    pub scale: Vec<f32>,
    /// Output zero point.
    pub zero_point: i32,
    lo: f32,
    hi: f32,
}

impl Requant {
    /// Requantization to int8 with the given per-channel multipliers and zero point.
    pub fn new(scale: Vec<f32>, zero_point: i8) -> Self {
        let zp = i32::from(zero_point);
        Requant { scale, zero_point: zp, lo: (-128 - zp) as f32, hi: (127 - zp) as f32 }
    }

    #[inline(always)]
    pub(super) fn one(&self, acc: i32, scale: f32) -> i8 {
        let v = clamp(acc as f32 * scale, self.lo, self.hi);
        (round_small(v) + self.zero_point) as i8
    }

    #[inline(always)]
    fn row(&self, acc: &[i32], bias: i32, scale: f32, out: &mut [i8]) {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = self.one(a + bias, scale);
        }
    }
}

/// Defines `pub fn $name(args)` that runs `$body(args)` compiled for AVX2 when the CPU has it,
/// and as portable code otherwise; `$body` is `#[inline(always)]` so each copy is specialised.
macro_rules! with_avx2 {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) = $body:ident) => {
        $(#[$m])*
        fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                /// `$body` compiled with AVX2 enabled.
                ///
                /// # Safety
                /// The CPU has AVX2 (checked just below, before the only call).
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) {
                    $body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present.
                    return unsafe { avx2($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}

/// f32 → int8 as onnxruntime's `QuantizeLinear`: `clamp(x / scale, −128 − zp, 127 − zp)`
/// rounded half to even, plus `zp`. NaN becomes −128, as with MLAS on x86 (the clamp keeps the
/// bound). With the kernel set this CPU runs best.
pub fn quantize(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    quantize_with(KernelSet::detect(), x, scale, zp, y)
}

/// int8 → f32 as onnxruntime's `DequantizeLinear`: `(x − zp) · scale`. With the kernel set
/// this CPU runs best.
pub fn dequantize(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    dequantize_with(KernelSet::detect(), x, scale, zp, y)
}

/// `quantize(dequantize(a) + dequantize(b))` element by element, with the same f32 operations
/// as the three separate steps; each pair is `(scale, zero point)`. With the kernel set this
/// CPU runs best.
pub fn quantized_add(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    quantized_add_with(KernelSet::detect(), a, qa, b, qb, qy, y)
}

with_avx2! {
    /// [`quantize`] compiled for AVX2 when the CPU has it.
    fn quantize_x86(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) = quantize_body
}

/// [`quantize`] with the kernel set `set` (same results).
pub fn quantize_with(set: KernelSet, x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    match set {
        KernelSet::Portable => quantize_body(x, scale, zp, y),
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => super::aarch64::neon::quantize(x, scale, zp, y),
        _ => quantize_x86(x, scale, zp, y),
    }
}

/// [`dequantize`] with the kernel set `set` (same results).
pub fn dequantize_with(set: KernelSet, x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    match set {
        KernelSet::Portable => dequantize_body(x, scale, zp, y),
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => super::aarch64::neon::dequantize(x, scale, zp, y),
        _ => dequantize_x86(x, scale, zp, y),
    }
}

/// [`quantized_add`] with the kernel set `set` (same results).
pub fn quantized_add_with(set: KernelSet, a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    match set {
        KernelSet::Portable => quantized_add_body(a, qa, b, qb, qy, y),
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => super::aarch64::neon::quantized_add(a, qa, b, qb, qy, y),
        _ => quantized_add_x86(a, qa, b, qb, qy, y),
    }
}

/// `y[i] = table[x[i] as u8]`: an int8 → int8 function as a 256-entry table (a fused
/// element-wise chain), with the kernel set `set`: on aarch64 (`neon`, `dotprod`) 16 values per
/// four `tbl`/`tbx` lookups in the table held in 16 registers; portable code otherwise.
pub fn lookup_with(set: KernelSet, table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    match set {
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => super::aarch64::neon::lookup(table, x, y),
        _ => lookup_body(table, x, y),
    }
}

#[inline(always)]
pub(crate) fn lookup_body(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = table[v as u8 as usize];
    }
}

#[inline(always)]
pub(crate) fn quantize_body(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    let z = i32::from(zp);
    let (lo, hi) = ((-128 - z) as f32, (127 - z) as f32);
    for (o, &v) in y.iter_mut().zip(x) {
        let v = clamp(v / scale, lo, hi);
        *o = (round_small(v) + z) as i8;
    }
}

with_avx2! {
    /// [`dequantize`] compiled for AVX2 when the CPU has it.
    fn dequantize_x86(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) = dequantize_body
}

#[inline(always)]
pub(crate) fn dequantize_body(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    let z = i32::from(zp);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (i32::from(v) - z) as f32 * scale;
    }
}

with_avx2! {
    /// [`quantized_add`] compiled for AVX2 when the CPU has it.
    fn quantized_add_x86(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) = quantized_add_body
}

#[inline(always)]
pub(crate) fn quantized_add_body(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    let (za, zb, z) = (i32::from(qa.1), i32::from(qb.1), i32::from(qy.1));
    let (lo, hi) = ((-128 - z) as f32, (127 - z) as f32);
    for ((o, &va), &vb) in y.iter_mut().zip(a).zip(b) {
        let v = (i32::from(va) - za) as f32 * qa.0 + (i32::from(vb) - zb) as f32 * qb.0;
        let v = clamp(v / qy.0, lo, hi);
        *o = (round_small(v) + z) as i8;
    }
}

/// Spatial geometry of a 2-D convolution on a fixed input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Strides (height, width).
    pub stride: (usize, usize),
    /// Dilations (height, width).
    pub dilation: (usize, usize),
    /// Padding top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Geometry {
    /// The same convolution with each stride at most what can still reach a second output
    /// position: a stride beyond that gives one output row (or column), read from the window
    /// at the origin whatever the stride, so the output is unchanged. Kernels size their
    /// buffers by the stride (column phases), and a stride of 2³⁰ in a file would otherwise
    /// ask for gigabytes.
    pub fn with_strides_clamped(mut self) -> Geometry {
        let span_h = self.dilation.0 * self.kh.saturating_sub(1) + 1;
        let span_w = self.dilation.1 * self.kw.saturating_sub(1) + 1;
        let ph = self.h + self.pads[0] + self.pads[2];
        let pw = self.w + self.pads[1] + self.pads[3];
        if ph >= span_h {
            self.stride.0 = self.stride.0.min(ph - span_h + 1);
        }
        if pw >= span_w {
            self.stride.1 = self.stride.1.min(pw - span_w + 1);
        }
        self
    }

    /// Output height and width, or `None` when the kernel does not fit.
    pub fn output_hw(&self) -> Option<(usize, usize)> {
        let span_h = self.dilation.0 * (self.kh.checked_sub(1)?) + 1;
        let span_w = self.dilation.1 * (self.kw.checked_sub(1)?) + 1;
        let ph = self.h + self.pads[0] + self.pads[2];
        let pw = self.w + self.pads[1] + self.pads[3];
        if ph < span_h || pw < span_w || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some(((ph - span_h) / self.stride.0 + 1, (pw - span_w) / self.stride.1 + 1))
    }

    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == (1, 1) && self.pads == [0; 4]
    }
}

/// Per-thread buffers of a task: im2col columns and their packed form, or a depthwise plane.
#[derive(Debug, Default)]
struct Work {
    cols: Vec<i8>,
    segs: Vec<[usize; 4]>,
    /// The panels of an ARM in-place convolution: `[input offset, output column, columns]`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    panels: Vec<[usize; 3]>,
    packed: Vec<i16>,
    /// Packed columns of the ARM kernels (int8, in the layout of the kernel set).
    #[cfg_attr(not(any(target_arch = "aarch64", target_arch = "arm")), allow(dead_code))]
    packed8: Vec<i8>,
    wide: Vec<u32>,
    offsets: Vec<usize>,
    row: Vec<i16>,
}

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::new(Work::default());
}

/// Runs independent tasks `0..n`, maybe on several threads: the kernels split their work into
/// tasks writing disjoint parts of the output, and the caller decides where they run.
pub trait Parallel: Sync {
    /// How many threads the tasks may run on (the kernels make at least that many tasks).
    fn threads(&self) -> usize;
    /// Runs `task(i)` for every `i` in `0..n`, returning when all are done.
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync));
}

/// Every task on the calling thread, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn threads(&self) -> usize {
        1
    }
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..n).for_each(task)
    }
}

/// The output of a kernel, written by tasks at disjoint ranges.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut i8,
    len: usize,
}

// SAFETY: tasks write disjoint ranges (each kernel documents its split) and the buffer outlives
// the `Parallel::run` call that uses it.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub(super) fn new(y: &mut [i8]) -> Self {
        Out { ptr: y.as_mut_ptr(), len: y.len() }
    }

    /// The start of the buffer and its length, for kernels that check a whole range once and
    /// then write with pointers (the same contract as [`slice`](Self::slice)).
    #[cfg_attr(not(any(target_arch = "aarch64", target_arch = "arm")), allow(dead_code))]
    pub(crate) fn raw(&self) -> (*mut i8, usize) {
        (self.ptr, self.len)
    }

    /// # Safety
    /// No other task may access `start..start + len` while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [i8] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked), disjoint by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// A dense (groups = 1) int8 convolution with its weights packed.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseQConv {
    /// The micro-kernels it runs, which decide the layout of `a`.
    set: KernelSet,
    geo: Geometry,
    oh: usize,
    ow: usize,
    m: usize,
    k: usize,
    /// `k` rounded up to even.
    kp: usize,
    /// int8 weights packed for `set`. Portable and AVX2: `[m / MR][kp / 2][MR][2]`, for each
    /// row block and pair of input positions the pair of every row, widened to i16 pairs one
    /// row block at a time. NEON: `[m / 4][k / 16][4][16]`; dot product: `[m / 8][k / 4][8][4]`.
    a: Vec<i8>,
    /// Bias with the input zero point folded in: `bias − z_x · Σ_k w`.
    bias: Vec<i32>,
    x_zp: i8,
    requant: Requant,
    /// The in-place form of a convolution on ARM (`a` then holds the weights in its `k` order).
    #[cfg(target_arch = "aarch64")]
    direct: Option<super::aarch64::DirectConv>,
}

#[cfg(target_arch = "aarch64")]
thread_local! {
    /// The channel-interleaved input of an ARM in-place convolution, written by the calling
    /// thread before the tasks run and read by all of them.
    static INTERLEAVED: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The set a dense layer runs: `set` if the CPU has it and the layer suits it, else portable
/// (same integers). NEON's i16 pair sums need weights in −127..=127; the ARM epilogues
/// saturate instead of clamping, which equals the portable clamp for finite scales only.
fn dense_set(set: KernelSet, weights: &[i8], requant: &Requant) -> KernelSet {
    let set = if set.available() { set } else { KernelSet::Portable };
    match set {
        KernelSet::Neon if weights.contains(&i8::MIN) => {
            log::debug!("a weight of −128: portable int8 kernel instead of NEON for this layer");
            KernelSet::Portable
        }
        KernelSet::Neon | KernelSet::Dotprod if !requant.scale.iter().all(|s| s.is_finite()) => KernelSet::Portable,
        set => set,
    }
}

/// The biases with the input zero point folded in: `bias[row] − z_x · Σ_k w[row][k]`, so that
/// the kernels can multiply the raw int8 input (`k` weights per row). Modulo 2³², like the
/// accumulation itself.
pub(super) fn fold_zero_point(bias: &[i32], weights: &[i8], k: usize, x_zp: i8) -> Vec<i32> {
    let zx = i32::from(x_zp);
    bias.iter().zip(weights.chunks_exact(k)).map(|(&b, w)| b.wrapping_sub(zx.wrapping_mul(w.iter().map(|&v| i32::from(v)).sum::<i32>()))).collect()
}

/// Packs `[m][k]` weights into `[m / mr][k / kc][mr][kc]`: blocks of `mr` rows with `kc`
/// consecutive `k` of each row together, zero-padded rows and `k` (NEON on aarch64 and armv7:
/// 4 × 16, dot product: 8 × 4). Done once, when a model is loaded.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub(super) fn pack_blocks(weights: &[i8], m: usize, k: usize, mr: usize, kc: usize) -> Vec<i8> {
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

/// A depthwise layer's weights as armv7's NEON form reads them (its `channel` method is in
/// `arm/neon.rs`; aarch64's form regroups the taps per channel, see `aarch64/neon.rs`):
/// `[c][taps]` int8, none of them −128, so that two taps' products fit i16 (`|w| ≤ 127`,
/// `|x| ≤ 128`: 2 · 16256 < 2¹⁵); the bias with the input zero point folded in.
#[cfg(target_arch = "arm")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TapWeights {
    pub(super) taps: usize,
    /// `[c][taps]`, as given.
    pub(super) w: Vec<i8>,
    /// Bias with the input zero point folded in.
    pub(super) bias: Vec<i32>,
}

#[cfg(target_arch = "arm")]
impl TapWeights {
    /// The NEON form of `[c][taps]` weights, or `None` if a weight is −128.
    pub(crate) fn new(taps: usize, weights: &[i8], bias: &[i32], x_zp: i8) -> Option<Self> {
        if taps == 0 || weights.len() != taps * bias.len() || weights.contains(&i8::MIN) {
            return None;
        }
        Some(TapWeights { taps, w: weights.to_vec(), bias: fold_zero_point(bias, weights, taps, x_zp) })
    }

    /// Bytes held: weights and biases.
    pub(crate) fn held_bytes(&self) -> usize {
        self.w.len() + 4 * self.bias.len()
    }
}

/// The checks of an ARM depthwise kernel's channel, whose output `(oy, ox)` reads tap `t` at
/// `oy · row_step + offsets[t] + ox` in 16-output tiles: `out_len` is `oh · ow`, one offset per
/// tap, and the last row's last tile at the largest offset lies within `planes_len` (the caller
/// leaves 16 bytes of slack after the last row). Returns whether there is anything to compute.
///
/// # Panics
/// If a check fails.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub(super) fn dw_channel_fits(planes_len: usize, offsets: &TapOffsets, taps: usize, row_step: usize, oh: usize, ow: usize, out_len: usize) -> bool {
    assert_eq!(out_len, oh * ow);
    assert_eq!(offsets.offsets.len(), taps);
    if oh == 0 || ow == 0 {
        return false;
    }
    let last_tile = (ow - 1) / 16 * 16;
    assert!((oh - 1) * row_step + offsets.max + last_tile + 16 <= planes_len, "depthwise tile past the plane");
    true
}

/// A depthwise layer's tap offsets (see [`dw_channel_fits`]) with the largest of them, found
/// once per run rather than once per channel (about 60 instructions a channel on aarch64).
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub(crate) struct TapOffsets<'a> {
    offsets: &'a [usize],
    max: usize,
}

#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
impl<'a> TapOffsets<'a> {
    pub(crate) fn new(offsets: &'a [usize]) -> Self {
        TapOffsets { offsets, max: offsets.iter().copied().max().unwrap_or(0) }
    }

    pub(crate) fn offsets(&self) -> &'a [usize] {
        self.offsets
    }
}

/// Why a convolution cannot use these kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl DenseQConv {
    /// Packs `weights` (`[m][cin][kh][kw]`, OIHW) for inputs of geometry `geo`, for the kernel
    /// set this CPU runs best ([`KernelSet::detect`]).
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set`. A set that cannot take this layer (one the
    /// CPU lacks; NEON with a −128 weight, see `aarch64/neon.rs`; a non-finite scale) gives the
    /// portable kernel, which computes the same integers.
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::build(set, geo, weights, bias, x_zp, requant, false)
    }

    /// [`with_kernels`](Self::with_kernels); `any_direct`: on ARM, the in-place form wherever it
    /// applies, paying or not (for tests).
    fn build(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant, any_direct: bool) -> Result<Self, Unsupported> {
        #[cfg(not(target_arch = "aarch64"))]
        let _ = any_direct;
        let geo = geo.with_strides_clamped();
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let k = geo.cin * geo.kh * geo.kw;
        if k == 0 || !weights.len().is_multiple_of(k) {
            return Err(Unsupported(format!("{} weights for {k} per output channel", weights.len())));
        }
        let m = weights.len() / k;
        if bias.len() != m || requant.scale.len() != m {
            return Err(Unsupported(format!("{m} output channels, {} biases, {} scales", bias.len(), requant.scale.len())));
        }
        let kp = k + (k & 1);
        let set = dense_set(set, weights, &requant);
        // ARM: convolutions other than the plain 1×1 read their input in place.
        #[cfg(target_arch = "aarch64")]
        let direct = {
            use super::aarch64::{dotprod, neon, DirectConv};
            match set {
                KernelSet::Neon if !geo.is_pointwise() => DirectConv::new(&geo, neon::KC, neon::NR).filter(|d| any_direct || d.pays(false)),
                KernelSet::Dotprod if !geo.is_pointwise() => DirectConv::new(&geo, dotprod::KC, dotprod::NR).filter(|d| any_direct || d.pays(true)),
                _ => None,
            }
        };
        #[cfg(target_arch = "aarch64")]
        let reordered = direct.as_ref().map(|d| d.reorder(weights, m, geo.kh * geo.kw));
        #[cfg(target_arch = "aarch64")]
        let (wa, ka) = match (&reordered, &direct) {
            (Some(r), Some(d)) => (&r[..], d.k_len()),
            _ => (weights, k),
        };
        let a = match set {
            #[cfg(target_arch = "aarch64")]
            KernelSet::Neon => super::aarch64::neon::pack_a(wa, m, ka),
            #[cfg(target_arch = "aarch64")]
            KernelSet::Dotprod => super::aarch64::dotprod::pack_a(wa, m, ka),
            #[cfg(target_arch = "arm")]
            KernelSet::Neon => super::arm::neon::pack_a(weights, m, k),
            _ => {
                let blocks = m.div_ceil(MR);
                let mut a = vec![0i8; blocks * kp * MR];
                for row in 0..m {
                    let wr = &weights[row * k..(row + 1) * k];
                    let (blk, r) = (row / MR, row % MR);
                    for kk in 0..kp / 2 {
                        let at = ((blk * (kp / 2) + kk) * MR + r) * 2;
                        a[at] = wr[2 * kk];
                        a[at + 1] = wr.get(2 * kk + 1).copied().unwrap_or(0);
                    }
                }
                a
            }
        };
        let bias = fold_zero_point(bias, weights, k, x_zp);
        Ok(DenseQConv {
            set,
            geo,
            oh,
            ow,
            m,
            k,
            kp,
            a,
            bias,
            x_zp,
            requant,
            #[cfg(target_arch = "aarch64")]
            direct,
        })
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.set
    }

    /// Kernel height and width.
    pub fn kernel_hw(&self) -> (usize, usize) {
        (self.geo.kh, self.geo.kw)
    }

    /// Output channels.
    pub fn output_channels(&self) -> usize {
        self.m
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.oh, self.ow)
    }

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> usize {
        self.m * self.k * self.oh * self.ow
    }

    /// Runs on one `[cin][h][w]` input into one `[m][oh][ow]` output.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length (the tract op checks shapes first).
    pub fn run(&self, x: &[i8], y: &mut [i8]) {
        self.run_par(x, y, &Sequential)
    }

    /// [`run`](Self::run) with the column blocks as tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        let g = &self.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        let n = self.oh * self.ow;
        assert_eq!(y.len(), self.m * n);
        let pointwise = g.is_pointwise();
        // Columns in blocks whose packed form stays in L2 while every row block passes over it,
        // and at least two blocks per thread when there are several.
        let mut nb = ((PACKED_BLOCK_BYTES / (self.kp * 2)) / (2 * NR) * (2 * NR)).max(4 * NR);
        let threads = par.threads();
        if threads > 1 {
            nb = nb.min(n.div_ceil(2 * threads).div_ceil(2 * NR) * 2 * NR).max(2 * NR);
        }
        let nb = nb.min(n.div_ceil(NR) * NR);
        let blocks = n.div_ceil(nb);
        let out = Out::new(y);
        // Each task writes columns c0..c0 + ncols of every output row: disjoint between tasks.
        let run = |interleaved: &[i8]| {
            #[cfg(not(target_arch = "aarch64"))]
            let _ = interleaved;
            par.run(blocks, &|b| {
                let c0 = b * nb;
                let ncols = (n - c0).min(nb);
                WORK.with(|w| {
                    let work = &mut *w.borrow_mut();
                    match self.set {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: the set is only chosen when AVX2 is present (`dense_set`); this
                        // task alone writes columns c0..c0 + ncols.
                        KernelSet::Avx2 => unsafe { self.block_avx2(x, pointwise, n, c0, ncols, work, out) },
                        #[cfg(target_arch = "aarch64")]
                        KernelSet::Neon | KernelSet::Dotprod => self.block_arm(x, interleaved, pointwise, n, c0, ncols, work, out),
                        #[cfg(target_arch = "arm")]
                        KernelSet::Neon => self.block_armv7(x, pointwise, n, c0, ncols, work, out),
                        _ => self.block(x, pointwise, n, c0, ncols, work, out),
                    }
                })
            })
        };
        #[cfg(target_arch = "aarch64")]
        if let Some(d) = &self.direct {
            // Interleaved once by this thread, then read by every task.
            return INTERLEAVED.with(|b| {
                let buf = &mut *b.borrow_mut();
                d.interleave(x, self.x_zp, buf);
                run(buf)
            });
        }
        run(&[])
    }

    /// [`block`](Self::block) with the ARM kernels: columns packed as int8 in the set's layout,
    /// or read in place from `interleaved` (the in-place form's input, see `DirectConv`).
    #[cfg(target_arch = "aarch64")]
    #[allow(clippy::too_many_arguments)]
    fn block_arm(&self, x: &[i8], interleaved: &[i8], pointwise: bool, n: usize, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        use super::aarch64::{dotprod, neon, PackedPanels};
        let Work { packed8, cols, segs, panels, .. } = work;
        let dot = self.set == KernelSet::Dotprod;
        let rq = &self.requant;
        if let Some(d) = &self.direct {
            let nr = if dot { dotprod::NR } else { neon::NR };
            d.panels(self.ow, c0, ncols, nr, panels);
            let p = d.direct_panels(interleaved, panels, nr);
            let kb = d.k_groups();
            // SAFETY: the panels read within `interleaved` (checked by `direct_panels`) and write
            // this task's columns c0..c0 + ncols (see `run_par`); `set` is Dotprod only when the
            // CPU has the dot product (`dense_set`).
            unsafe {
                if dot {
                    dotprod::gemm(&self.a, kb, self.m, &p, &self.bias, &rq.scale, rq.zero_point, out, n);
                } else {
                    neon::gemm(&self.a, kb, self.m, &p, &self.bias, &rq.scale, rq.zero_point, out, n);
                }
            }
            return;
        }
        let len = if dot { dotprod::packed_len(self.k, ncols) } else { neon::packed_len(self.k, ncols) };
        // Only grown: packing writes every element that the GEMM's stored columns read.
        if packed8.len() < len {
            packed8.resize(len, 0);
        }
        let (src, stride, start): (&[i8], usize, usize) = if pointwise {
            (x, n, c0)
        } else {
            im2col(&self.geo, self.ow, x, self.x_zp, c0, ncols, cols, segs);
            (cols, ncols, 0)
        };
        // SAFETY: `src` holds k rows of `stride` bytes covering the columns, `packed8` the packed
        // length; this task owns columns c0..c0 + ncols (see `run_par`); `set` is Dotprod only
        // when the CPU has the dot product (`dense_set`).
        unsafe {
            if dot {
                let kb = self.k.div_ceil(dotprod::KC);
                dotprod::pack_b(src, self.k, stride, start, ncols, packed8);
                let p = PackedPanels::<{ dotprod::NR * dotprod::KC }, { dotprod::NR }> {
                    packed: packed8.as_ptr(),
                    panel: kb * dotprod::NR * dotprod::KC,
                    ncols,
                    col0: c0,
                };
                dotprod::gemm(&self.a, kb, self.m, &p, &self.bias, &rq.scale, rq.zero_point, out, n);
            } else {
                let kb = self.k.div_ceil(neon::KC);
                neon::pack_b(src, self.k, stride, start, ncols, packed8);
                // A last group of at most 8 real `k` after at least one full one: half its products.
                let (packed, panel) = (packed8.as_ptr(), kb * neon::NR * neon::KC);
                if kb >= 2 && (1..=neon::KC / 2).contains(&(self.k % neon::KC)) {
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }, true> { packed, panel, ncols, col0: c0 };
                    neon::gemm(&self.a, kb, self.m, &p, &self.bias, &rq.scale, rq.zero_point, out, n);
                } else {
                    let p = PackedPanels::<{ neon::NR * neon::KC }, { neon::NR }> { packed, panel, ncols, col0: c0 };
                    neon::gemm(&self.a, kb, self.m, &p, &self.bias, &rq.scale, rq.zero_point, out, n);
                }
            }
        }
    }

    /// [`block`](Self::block) with armv7's NEON kernel (`arm/neon.rs`): columns packed as int8
    /// in its layout.
    #[cfg(target_arch = "arm")]
    #[allow(clippy::too_many_arguments)]
    fn block_armv7(&self, x: &[i8], pointwise: bool, n: usize, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        use super::arm::neon;
        let Work { packed8, cols, segs, .. } = work;
        let len = neon::packed_len(self.k, ncols);
        // Only grown: packing writes every byte of the panels it fills.
        if packed8.len() < len {
            packed8.resize(len, 0);
        }
        let rq = &self.requant;
        // SAFETY: the set is Neon only when the CPU has NEON with 32 double registers
        // (`dense_set`, `KernelSet::available`); this task owns columns c0..c0 + ncols (see
        // `run_par`).
        unsafe {
            if pointwise {
                neon::pack_b(x, self.k, n, c0, ncols, packed8);
            } else {
                im2col(&self.geo, self.ow, x, self.x_zp, c0, ncols, cols, segs);
                neon::pack_b(cols, self.k, ncols, 0, ncols, packed8);
            }
            neon::gemm(&self.a, self.k.div_ceil(neon::KC), self.m, packed8, ncols, &self.bias, &rq.scale, rq.zero_point, out, n, c0)
        }
    }

    /// Columns `c0..c0 + ncols` packed: straight from `x` for a pointwise convolution, else
    /// through an im2col of just those columns (small enough to stay in cache).
    #[inline(always)]
    fn block(&self, x: &[i8], pointwise: bool, n: usize, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        let panel_len = (self.kp / 2) * NR * 2;
        let Work { packed, wide, cols, segs, .. } = work;
        // Only grown: packing writes every element of the panels it fills.
        if packed.len() < ncols.div_ceil(NR) * panel_len {
            packed.resize(ncols.div_ceil(NR) * panel_len, 0);
        }
        if pointwise {
            pack_b(x, self.k, n, self.kp, c0, ncols, packed);
        } else {
            im2col(&self.geo, self.ow, x, self.x_zp, c0, ncols, cols, segs);
            pack_b(cols, self.k, ncols, self.kp, 0, ncols, packed);
        }
        self.gemm_portable(packed, wide, c0, ncols, n, out);
    }

    #[inline(always)]
    fn store_tile(&self, acc: &[[i32; 2 * NR]; MR], row0: usize, col0: usize, cols: usize, n: usize, y: Out) {
        for (r, acc_r) in acc.iter().enumerate() {
            let row = row0 + r;
            if row >= self.m {
                break;
            }
            // SAFETY: this task owns columns col0.. of every row (see `run_par`).
            let out = unsafe { y.slice(row * n + col0, cols) };
            self.requant.row(&acc_r[..cols], self.bias[row], self.requant.scale[row], out);
        }
    }

    /// Row block `blk` of the weights as words of two i16 (the even position in the low half),
    /// the operand `vpmaddwd` broadcasts.
    #[inline(always)]
    fn widen_block<'w>(&self, blk: usize, wide: &'w mut Vec<u32>) -> &'w [u32] {
        let words = (self.kp / 2) * MR;
        let src = &self.a[blk * words * 2..(blk + 1) * words * 2];
        wide.clear();
        wide.extend(src.chunks_exact(2).map(|p| (p[0] as i16 as u16 as u32) | ((p[1] as i16 as u16 as u32) << 16)));
        wide
    }

    /// Bytes this kernel holds: weights, biases, scales.
    pub fn held_bytes(&self) -> usize {
        self.a.len() + 4 * self.bias.len() + 4 * self.requant.scale.len()
    }

    #[inline(always)]
    fn gemm_portable(&self, packed: &[i16], wide: &mut Vec<u32>, col0: usize, ncols: usize, n: usize, y: Out) {
        let kh = self.kp / 2;
        let panel_len = kh * NR * 2;
        let panels = ncols.div_ceil(NR);
        for blk in 0..self.m.div_ceil(MR) {
            let a = self.widen_block(blk, wide);
            let mut p = 0;
            while p < panels {
                let two = p + 1 < panels;
                let b0 = &packed[p * panel_len..(p + 1) * panel_len];
                let b1 = if two { &packed[(p + 1) * panel_len..(p + 2) * panel_len] } else { b0 };
                let mut acc = [[0i32; 2 * NR]; MR];
                for kk in 0..kh {
                    let bb0 = &b0[kk * 2 * NR..(kk + 1) * 2 * NR];
                    let bb1 = &b1[kk * 2 * NR..(kk + 1) * 2 * NR];
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let w = a[kk * MR + r];
                        let (lo, hi) = (i32::from(w as u16 as i16), i32::from((w >> 16) as u16 as i16));
                        for j in 0..NR {
                            acc_r[j] += lo * i32::from(bb0[2 * j]) + hi * i32::from(bb0[2 * j + 1]);
                            acc_r[NR + j] += lo * i32::from(bb1[2 * j]) + hi * i32::from(bb1[2 * j + 1]);
                        }
                    }
                }
                let cols = (ncols - p * NR).min(if two { 2 * NR } else { NR });
                self.store_tile(&acc, blk * MR, col0 + p * NR, cols, n, y);
                p += 2;
            }
        }
    }
}

/// Columns `c0..c0 + ncols` (output positions) of a k×k convolution's im2col matrix:
/// `[cin·kh·kw][ncols]`, padding filled with the input zero point (the real value 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn im2col(g: &Geometry, ow: usize, x: &[i8], zp: i8, c0: usize, ncols: usize, cols: &mut Vec<i8>, segs: &mut Vec<[usize; 4]>) {
    cols.clear();
    cols.resize(g.cin * g.kh * g.kw * ncols, zp);
    // The range in segments of one output row each: [oy, first ox, end ox, offset in the block].
    segs.clear();
    let mut p = c0;
    while p < c0 + ncols {
        let (oy, xa) = (p / ow, p % ow);
        let xb = ow.min(xa + c0 + ncols - p);
        segs.push([oy, xa, xb, p - c0]);
        p += xb - xa;
    }
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    for kx in 0..g.kw {
        // Output columns whose input column is inside the image: ix = ox·sw + kx·dw − pad_left.
        let off = kx * dw;
        let lo = g.pads[1].saturating_sub(off).div_ceil(sw).min(ow);
        let hi = if g.w + g.pads[1] > off { ((g.w + g.pads[1] - off - 1) / sw + 1).min(ow) } else { 0 };
        if lo >= hi {
            continue;
        }
        for c in 0..g.cin {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ky in 0..g.kh {
                let row = &mut cols[((c * g.kh + ky) * g.kw + kx) * ncols..][..ncols];
                for &[oy, xa, xb, seg] in segs.iter() {
                    let iy = (oy * sh + ky * dh) as isize - g.pads[0] as isize;
                    let (a, b) = (lo.max(xa), hi.min(xb));
                    if iy < 0 || iy >= g.h as isize || a >= b {
                        continue;
                    }
                    let src = &plane[iy as usize * g.w + a * sw + off - g.pads[1]..];
                    let dst = &mut row[seg + a - xa..seg + b - xa];
                    copy_strided(dst, src, sw);
                }
            }
        }
    }
}

/// `dst[i] = src[i · step]`.
#[inline(always)]
fn copy_strided(dst: &mut [i8], src: &[i8], step: usize) {
    let len = dst.len();
    if step == 1 {
        dst.copy_from_slice(&src[..len]);
    } else if step == 2 && len > 0 {
        // aarch64: 16 at a time with `ld2` (LLVM's vectorisation of the pairs below moves bytes
        // one lane at a time, about 26 instructions per 16).
        #[cfg(target_arch = "aarch64")]
        let done = super::aarch64::neon::evens(dst, src);
        #[cfg(not(target_arch = "aarch64"))]
        let done = 0;
        let (dst, src) = (&mut dst[done..], &src[2 * done..]);
        let len = dst.len();
        if len == 0 {
            return;
        }
        // Pairs, so that it vectorises; the last element alone (its pair may lie past the plane).
        for (d, p) in dst[..len - 1].iter_mut().zip(src[..2 * (len - 1)].chunks_exact(2)) {
            *d = p[0];
        }
        dst[len - 1] = src[2 * (len - 1)];
    } else {
        for (d, s) in dst.iter_mut().zip(src.iter().step_by(step)) {
            *d = *s;
        }
    }
}

/// Packs columns `c0..c0 + ncols` of `[k][n]` int8 columns into panels of 8 columns:
/// `[panel][k/2][8][2]` i16, pairs of rows interleaved, zero beyond `k` and the block.
#[inline(always)]
fn pack_b(cols: &[i8], k: usize, n: usize, kp: usize, c0: usize, ncols: usize, packed: &mut [i16]) {
    let kh = kp / 2;
    for p in 0..ncols.div_ceil(NR) {
        let pc = c0 + p * NR;
        let width = (c0 + ncols - pc).min(NR);
        let panel = &mut packed[p * kh * NR * 2..(p + 1) * kh * NR * 2];
        for kk in 0..kh {
            // Infallible (here and below): the slices are exactly that long.
            let dst: &mut [i16; 2 * NR] = (&mut panel[kk * NR * 2..(kk + 1) * NR * 2]).try_into().unwrap();
            let r0 = &cols[2 * kk * n + pc..];
            let r1 = if 2 * kk + 1 < k { Some(&cols[(2 * kk + 1) * n + pc..]) } else { None };
            if width == NR {
                let r0: &[i8; NR] = r0[..NR].try_into().unwrap();
                match r1 {
                    Some(r1) => {
                        let r1: &[i8; NR] = r1[..NR].try_into().unwrap();
                        for j in 0..NR {
                            dst[2 * j] = i16::from(r0[j]);
                            dst[2 * j + 1] = i16::from(r1[j]);
                        }
                    }
                    None => {
                        for j in 0..NR {
                            dst[2 * j] = i16::from(r0[j]);
                            dst[2 * j + 1] = 0;
                        }
                    }
                }
            } else {
                dst.fill(0);
                for j in 0..width {
                    dst[2 * j] = i16::from(r0[j]);
                    dst[2 * j + 1] = r1.map_or(0, |r| i16::from(r[j]));
                }
            }
        }
    }
}

/// Whether a stride-1 depthwise layer runs faster "flat": its output rows computed as one run
/// over the padded plane's row pitch `pw` (so a 16-output tile spans rows, and narrow planes
/// waste no lanes), `pw − ow` wasted outputs per row, then copied back to rows of `ow`. A tile
/// costs about 64 instructions, copying a row back about 4 plus 2 per 16 bytes.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
fn flat_pays(oh: usize, ow: usize, pw: usize) -> bool {
    if oh == 0 || ow == 0 {
        return false;
    }
    let rows = oh * ow.div_ceil(16) * 64;
    let flat = ((oh - 1) * pw + ow).div_ceil(16) * 64 + oh * (4 + 2 * ow.div_ceil(16));
    flat < rows
}

#[cfg(target_arch = "aarch64")]
use super::aarch64::Depthwise as ArmDepthwise;
#[cfg(target_arch = "arm")]
use super::arm::Depthwise as ArmDepthwise;

/// A depthwise (groups = channels, one filter per channel) int8 convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseQConv {
    /// The micro-kernels it runs (portable and AVX2 share the code, compiled for each).
    set: KernelSet,
    geo: Geometry,
    oh: usize,
    ow: usize,
    /// `[c][kh·kw]`, widened to i32 (what the portable and AVX2 loops multiply; empty when an
    /// ARM form holds the weights instead).
    weights: Vec<i32>,
    bias: Vec<i32>,
    x_zp: i8,
    requant: Requant,
    /// The ARM form (`sdot` or NEON), when `set` is one of those.
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    arm: Option<ArmDepthwise>,
}

impl DepthwiseQConv {
    /// A depthwise convolution of `[c][1][kh][kw]` weights, for the kernel set this CPU runs
    /// best.
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn new(geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        Self::with_kernels(KernelSet::detect(), geo, weights, bias, x_zp, requant)
    }

    /// [`new`](Self::new) for the kernel set `set` (the portable code where the set has no
    /// depthwise kernel of its own or cannot take the layer; same results).
    ///
    /// # Errors
    /// Inconsistent sizes.
    pub fn with_kernels(set: KernelSet, geo: Geometry, weights: &[i8], bias: &[i32], x_zp: i8, requant: Requant) -> Result<Self, Unsupported> {
        let geo = geo.with_strides_clamped();
        let (oh, ow) = geo.output_hw().ok_or_else(|| Unsupported(format!("kernel larger than the padded input: {geo:?}")))?;
        let c = geo.cin;
        if weights.len() != c * geo.kh * geo.kw || bias.len() != c || requant.scale.len() != c {
            return Err(Unsupported(format!(
                "depthwise over {c} channels with {} weights, {} biases, {} scales",
                weights.len(),
                bias.len(),
                requant.scale.len()
            )));
        }
        let set = match set {
            _ if !set.available() => KernelSet::Portable,
            // The NEON epilogue saturates instead of clamping: equal for finite scales only.
            KernelSet::Neon | KernelSet::Dotprod if !requant.scale.iter().all(|s| s.is_finite()) => KernelSet::Portable,
            set => set,
        };
        // The dot-product form covers strides 1 and 2 without dilation and `kw ≤ 8`; NEON's
        // every geometry, for weights in −127..=127; the portable code the rest.
        #[cfg(target_arch = "aarch64")]
        let (set, arm) = {
            use super::aarch64::{dotprod, neon, Depthwise};
            let dot = || dotprod::Depthwise::new(geo.kh, geo.kw, geo.stride, geo.dilation, weights, bias, x_zp).map(Depthwise::Dot);
            let neon = || neon::Depthwise::new(geo.kh * geo.kw, weights, bias, x_zp).map(Depthwise::Neon);
            match set {
                KernelSet::Dotprod => match dot() {
                    Some(d) => (set, Some(d)),
                    None => neon().map_or((KernelSet::Portable, None), |d| (KernelSet::Neon, Some(d))),
                },
                KernelSet::Neon => neon().map_or((KernelSet::Portable, None), |d| (KernelSet::Neon, Some(d))),
                _ => (set, None),
            }
        };
        // armv7: NEON's form (any geometry, weights in −127..=127).
        #[cfg(target_arch = "arm")]
        let (set, arm) = match set {
            KernelSet::Neon => super::arm::neon::Depthwise::new(geo.kh * geo.kw, weights, bias, x_zp)
                .map_or((KernelSet::Portable, None), |d| (KernelSet::Neon, Some(ArmDepthwise::Neon(d)))),
            _ => (set, None),
        };
        #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
        let set = if set == KernelSet::Dotprod || set == KernelSet::Neon { KernelSet::Portable } else { set };
        #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
        let portable_weights = arm.is_none();
        #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
        let portable_weights = true;
        Ok(DepthwiseQConv {
            #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
            arm,
            set,
            geo,
            oh,
            ow,
            weights: if portable_weights { weights.iter().map(|&v| i32::from(v)).collect() } else { Vec::new() },
            bias: bias.to_vec(),
            x_zp,
            requant,
        })
    }

    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.oh, self.ow)
    }

    /// Bytes this kernel holds: weights (widened to i32), biases, scales.
    pub fn held_bytes(&self) -> usize {
        #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
        let dot = self.arm.as_ref().map_or(0, |d| d.held_bytes());
        #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
        let dot = 0;
        4 * (self.weights.len() + self.bias.len() + self.requant.scale.len()) + dot
    }

    /// The kernel set it runs.
    pub fn kernel_set(&self) -> KernelSet {
        self.set
    }

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> usize {
        self.geo.cin * self.geo.kh * self.geo.kw * self.oh * self.ow
    }

    /// Runs on one `[c][h][w]` input into one `[c][oh][ow]` output.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run(&self, x: &[i8], y: &mut [i8]) {
        self.run_par(x, y, &Sequential)
    }

    /// [`run`](Self::run) with groups of channels as tasks of `par`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn run_par(&self, x: &[i8], y: &mut [i8], par: &dyn Parallel) {
        let g = &self.geo;
        assert_eq!(x.len(), g.cin * g.h * g.w);
        assert_eq!(y.len(), g.cin * self.oh * self.ow);
        let per = if par.threads() > 1 { g.cin.div_ceil(2 * par.threads()) } else { g.cin };
        let out = Out::new(y);
        // Each task writes the output planes of its own channels.
        par.run(g.cin.div_ceil(per), &|t| {
            let channels = t * per..((t + 1) * per).min(g.cin);
            WORK.with(|w| {
                let w = &mut *w.borrow_mut();
                match self.set {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the set is only kept when AVX2 is present (`with_kernels`); this
                    // task alone writes the planes of `channels`.
                    KernelSet::Avx2 => unsafe { self.run_avx2(x, out, channels, w) },
                    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
                    KernelSet::Dotprod | KernelSet::Neon => self.run_arm(x, out, channels, w),
                    _ => self.run_body(x, out, channels, w),
                }
            })
        });
    }

    /// [`run_body`](Self::run_body) compiled with AVX2 enabled.
    ///
    /// # Safety
    /// The CPU has AVX2 (the `Avx2` set is only kept when it does, see `with_kernels`), and no
    /// other task writes the output planes of `channels` meanwhile.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, x: &[i8], y: Out, channels: std::ops::Range<usize>, work: &mut Work) {
        self.run_body(x, y, channels, work)
    }

    /// The channels with an ARM form: each channel's raw int8 plane padded with the input zero
    /// point (split into column phases for strides above 1), rows copied or dealt with NEON; a
    /// stride-1 layer whose rows are narrow runs "flat" (see [`flat_pays`]) into a scratch run
    /// copied back to rows.
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    fn run_arm(&self, x: &[i8], y: Out, channels: std::ops::Range<usize>, work: &mut Work) {
        #[cfg(target_arch = "aarch64")]
        use super::aarch64::{dotprod, neon, Depthwise};
        #[cfg(target_arch = "arm")]
        use super::arm::{neon, Depthwise};
        let Some(arm) = &self.arm else { return self.run_body(x, y, channels, work) };
        let g = &self.geo;
        let (hp, wp) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
        let (sh, sw) = g.stride;
        let (dh, dw) = g.dilation;
        let (oh, ow) = (self.oh, self.ow);
        if oh == 0 || ow == 0 {
            return;
        }
        // Column phases of the planes: NEON's taps read contiguous runs, so a stride-2 plane
        // is dealt into its even and odd columns; the dot product's form reads the plane whole.
        #[cfg(target_arch = "aarch64")]
        let phases = if matches!(arm, Depthwise::Dot(_)) { 1 } else { sw };
        #[cfg(target_arch = "arm")]
        let phases = sw;
        let pw = wp.div_ceil(phases);
        let flat = sh == 1 && sw == 1 && flat_pays(oh, ow, pw);
        let Work { packed8: planes, cols: scratch, offsets, .. } = work;
        planes.clear();
        #[cfg(target_arch = "aarch64")]
        let slack = dotprod::Depthwise::SLACK;
        #[cfg(target_arch = "arm")]
        let slack = 16;
        planes.resize(phases * hp * pw + slack, self.x_zp);
        if flat && scratch.len() < (oh - 1) * pw + ow {
            scratch.resize((oh - 1) * pw + ow, 0);
        }
        // Start offset of each tap in the phase planes, relative to output row 0, column 0.
        offsets.clear();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let px = kx * dw;
                offsets.push(((px % phases) * hp + ky * dh) * pw + px / phases);
            }
        }
        let taps = TapOffsets::new(offsets);
        let (pt, pl) = (g.pads[0], g.pads[1]);
        let zp = self.requant.zero_point;
        for c in channels {
            let src = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            match phases {
                1 => neon::copy_rows(src, g.w, &mut planes[pt * pw + pl..], pw, g.w, g.h),
                #[cfg(target_arch = "aarch64")]
                2 => neon::deal_plane(src, g.w, g.h, planes, hp, pw, pt, pl),
                #[cfg(target_arch = "arm")]
                2 => {
                    for (iy, srow) in src.chunks_exact(g.w.max(1)).enumerate().take(g.h) {
                        let (even, odd) = stride2_phases(planes, hp, pw, iy + pt, pl);
                        neon::deal_row(srow, even, odd);
                    }
                }
                _ => {
                    for (i, &v) in src.iter().enumerate() {
                        let (py, px) = (i / g.w + pt, i % g.w + pl);
                        planes[((px % phases) * hp + py) * pw + px / phases] = v;
                    }
                }
            }
            let scale = self.requant.scale[c];
            // SAFETY: channel c belongs to this task only (see `run_par`).
            let out = unsafe { y.slice(c * oh * ow, oh * ow) };
            let (rows, cols, dst) = if flat { (1, (oh - 1) * pw + ow, &mut scratch[..(oh - 1) * pw + ow]) } else { (oh, ow, &mut *out) };
            match arm {
                // SAFETY: the dot-product form exists only when the CPU has it (`with_kernels`).
                #[cfg(target_arch = "aarch64")]
                Depthwise::Dot(d) => unsafe { d.channel(dotprod::Channel { c, planes, pw, row_step: sh * pw, scale, zp, oh: rows, ow: cols, out: dst }) },
                #[cfg(target_arch = "aarch64")]
                Depthwise::Neon(d) => d.channel(c, planes, &taps, sh * pw, scale, zp, rows, cols, dst),
                // SAFETY: armv7's NEON form exists only when the CPU has NEON with 32 double
                // registers (`with_kernels`, `KernelSet::available`).
                #[cfg(target_arch = "arm")]
                Depthwise::Neon(d) => unsafe { d.channel(c, planes, &taps, sh * pw, scale, zp, rows, cols, dst) },
            }
            if flat {
                neon::copy_rows(scratch, pw, out, ow, ow, oh);
            }
        }
    }

    #[inline(always)]
    fn run_body(&self, x: &[i8], y: Out, channels: std::ops::Range<usize>, work: &mut Work) {
        let g = &self.geo;
        let (hp, wp) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
        let (sh, sw) = g.stride;
        let (dh, dw) = g.dilation;
        let (oh, ow) = (self.oh, self.ow);
        let taps = g.kh * g.kw;
        let zx = i16::from(self.x_zp);
        // The padded plane split into `sw` column phases, so that every tap reads a contiguous
        // run: column `x` of the padded plane is at `phase x % sw`, index `x / sw`.
        let pw = wp.div_ceil(sw);
        work.packed.clear();
        work.packed.resize(sw * hp * pw + DW_TILE, 0);
        for c in channels {
            let planes = &mut work.packed;
            let src = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for iy in 0..g.h {
                let srow = &src[iy * g.w..(iy + 1) * g.w];
                let py = iy + g.pads[0];
                if sw == 1 {
                    let dst = &mut planes[py * pw + g.pads[1]..][..g.w];
                    for (d, &s) in dst.iter_mut().zip(srow) {
                        *d = i16::from(s) - zx;
                    }
                } else {
                    // The padded row in order, then dealt out to the phases.
                    let row = &mut work.row;
                    row.clear();
                    row.resize(pw * sw, 0);
                    for (d, &s) in row[g.pads[1]..g.pads[1] + g.w].iter_mut().zip(srow) {
                        *d = i16::from(s) - zx;
                    }
                    if sw == 2 {
                        let (lower, upper) = planes.split_at_mut((hp + py) * pw);
                        let p0 = &mut lower[py * pw..(py + 1) * pw];
                        let p1 = &mut upper[..pw];
                        for ((d0, d1), pair) in p0.iter_mut().zip(p1.iter_mut()).zip(row.chunks_exact(2)) {
                            *d0 = pair[0];
                            *d1 = pair[1];
                        }
                    } else {
                        for (x, &v) in row.iter().enumerate() {
                            planes[((x % sw) * hp + py) * pw + x / sw] = v;
                        }
                    }
                }
            }
            let w = &self.weights[c * taps..(c + 1) * taps];
            let scale = self.requant.scale[c];
            // Start offset of each tap in the phase planes, relative to output row 0, column 0.
            let offsets = &mut work.offsets;
            offsets.clear();
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let px = kx * dw;
                    offsets.push(((px % sw) * hp + ky * dh) * pw + px / sw);
                }
            }
            for oy in 0..oh {
                let row0 = oy * sh * pw;
                // SAFETY: channel c belongs to this task only (see `run_par`).
                let out = unsafe { y.slice((c * oh + oy) * ow, ow) };
                // 16 outputs at a time with the accumulators in registers; the last tile may
                // read past the row (into the next one or the slack), and stores only its part.
                let mut ox = 0;
                while ox < ow {
                    let n = (ow - ox).min(DW_TILE);
                    let mut acc = [self.bias[c]; DW_TILE];
                    for (&wv, &off) in w.iter().zip(offsets.iter()) {
                        let r = &planes[row0 + off + ox..][..DW_TILE];
                        for j in 0..DW_TILE {
                            acc[j] += wv * i32::from(r[j]);
                        }
                    }
                    self.requant.row(&acc[..n], 0, scale, &mut out[ox..ox + n]);
                    ox += DW_TILE;
                }
            }
            // Padding stays zero; only the interior is rewritten for the next channel.
        }
    }
}

/// Where input row `py` of a stride-2 depthwise plane goes: the padded row is split into two
/// column phases (`x % 2`, `[2][hp][pw]`), and column `x = pl + ix` (left padding `pl`) lands
/// at index `x / 2` of phase `x % 2`. Returns the runs receiving the even `ix` and the odd `ix`,
/// each starting at the first such column.
#[cfg(target_arch = "arm")]
fn stride2_phases<T>(planes: &mut [T], hp: usize, pw: usize, py: usize, pl: usize) -> (&mut [T], &mut [T]) {
    let (lower, upper) = planes.split_at_mut((hp + py) * pw);
    let (p0, p1) = (&mut lower[py * pw..(py + 1) * pw], &mut upper[..pw]);
    if pl.is_multiple_of(2) {
        (&mut p0[pl / 2..], &mut p1[pl / 2..])
    } else {
        (&mut p1[pl / 2..], &mut p0[pl.div_ceil(2)..])
    }
}

/// The definition, for tests: a direct convolution in i64 with the same requantization.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference(g: &Geometry, groups: usize, weights: &[i8], bias: &[i32], x_zp: i8, rq: &Requant, x: &[i8]) -> Vec<i8> {
    let (oh, ow) = g.output_hw().unwrap();
    let cin_g = g.cin / groups;
    let m = bias.len();
    let m_g = m / groups;
    let mut y = vec![0i8; m * oh * ow];
    for co in 0..m {
        let grp = co / m_g;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc: i64 = 0;
                for ci in 0..cin_g {
                    let c = grp * cin_g + ci;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.pads[0] as isize;
                            let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.pads[1] as isize;
                            let v = if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                0
                            } else {
                                i64::from(x[(c * g.h + iy as usize) * g.w + ix as usize]) - i64::from(x_zp)
                            };
                            acc += v * i64::from(weights[((co * cin_g + ci) * g.kh + ky) * g.kw + kx]);
                        }
                    }
                }
                let acc = i32::try_from(acc + i64::from(bias[co])).unwrap();
                y[(co * oh + oy) * ow + ox] = rq.one(acc, rq.scale[co]);
            }
        }
    }
    y
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn geo(cin: usize, h: usize, w: usize, k: usize, s: usize, p: [usize; 4], d: usize) -> Geometry {
        Geometry { cin, h, w, kh: k, kw: k, stride: (s, s), dilation: (d, d), pads: p }
    }

    #[test]
    fn quantize_divides_clamps_and_rounds_half_to_even() {
        let x = [0.25, 0.75, -0.25, -0.75, 100.0, -100.0, 0.5, f32::NAN];
        let mut y = [0i8; 8];
        quantize(&x, 0.5, 3, &mut y);
        // 0.5 → 3+0, 1.5 → 3+2, −0.5 → 3−0, −1.5 → 3−2, saturated, saturated, 1.0 → 4, NaN → qmin (as MLAS on x86)
        assert_eq!(y, [3, 5, 3, 1, 127, -128, 4, -128]);
    }

    #[test]
    fn quantized_add_equals_the_three_steps() {
        let a = data(31, 1000);
        let b = data(32, 1000);
        let (qa, qb, qy) = ((0.037, -5i8), (0.052, 17i8), (0.061, -128i8));
        let (mut fa, mut fb) = (vec![0f32; 1000], vec![0f32; 1000]);
        dequantize(&a, qa.0, qa.1, &mut fa);
        dequantize(&b, qb.0, qb.1, &mut fb);
        let sum: Vec<f32> = fa.iter().zip(&fb).map(|(x, y)| x + y).collect();
        let mut want = vec![0i8; 1000];
        quantize(&sum, qy.0, qy.1, &mut want);
        let mut got = vec![0i8; 1000];
        quantized_add(&a, qa, &b, qb, qy, &mut got);
        assert_eq!(got, want);
        assert!(want.contains(&-128) && want.iter().any(|&v| v > 0), "the data exercises clamping and positives");
    }

    #[test]
    fn elementwise_kernels_agree_for_every_set() {
        // Lengths around the 16-element vectors, ties, saturation, NaN and infinities.
        let mut x: Vec<f32> = (0..203).map(|i| (i as f32 - 100.0) * 0.25 + if i % 7 == 0 { 0.125 } else { 0.0 }).collect();
        x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.5, 1.5, -2.5]);
        let a = data(41, x.len());
        let b = data(42, x.len());
        for n in [0, 1, 15, 16, 17, 33, x.len()] {
            for &(scale, zp) in &[(0.5f32, 3i8), (0.07, -128), (1.0, 127), (3e-3, 0)] {
                let mut want = vec![0i8; n];
                quantize_body(&x[..n], scale, zp, &mut want);
                let mut want_f = vec![0f32; n];
                dequantize_body(&a[..n], scale, zp, &mut want_f);
                let mut want_add = vec![0i8; n];
                quantized_add_body(&a[..n], (scale, zp), &b[..n], (0.03, -7), (0.05, zp), &mut want_add);
                for set in sets() {
                    let mut got = vec![0i8; n];
                    quantize_with(set, &x[..n], scale, zp, &mut got);
                    assert_eq!(got, want, "{set} quantize n={n} scale={scale} zp={zp}");
                    let mut got_f = vec![0f32; n];
                    dequantize_with(set, &a[..n], scale, zp, &mut got_f);
                    assert!(got_f.iter().zip(&want_f).all(|(g, w)| g.to_bits() == w.to_bits()), "{set} dequantize n={n}");
                    let mut got_add = vec![0i8; n];
                    quantized_add_with(set, &a[..n], (scale, zp), &b[..n], (0.03, -7), (0.05, zp), &mut got_add);
                    assert_eq!(got_add, want_add, "{set} quantized add n={n}");
                }
            }
        }
        // Quantized add with scales that make infinities and NaN (0/0, ∞ − ∞, ∞/∞), ties, and
        // outputs far past the int8 range, where a NEON path leaves the clamp to saturation.
        let (a, b) = (data(43, 67), data(44, 67));
        let scales = [
            ((0.5, 0), (0.5, 0), (1.0, 0)),
            ((0.02, -3), (0.03, 5), (1e-30, 7)),
            ((0.02, 0), (0.03, 0), (0.0, 0)),
            ((3e38, 1), (3e38, -1), (0.5, 0)),
            ((f32::INFINITY, 0), (0.5, 0), (f32::INFINITY, 0)),
            ((1e37, 2), (1e-3, 0), (1e30, -128)),
            ((0.25, -128), (0.25, 127), (0.125, 127)),
        ];
        for (qa, qb, qy) in scales {
            let mut want = vec![0i8; a.len()];
            quantized_add_body(&a, qa, &b, qb, qy, &mut want);
            for set in sets() {
                let mut got = vec![0i8; a.len()];
                quantized_add_with(set, &a, qa, &b, qb, qy, &mut got);
                assert_eq!(got, want, "{set} quantized add {qa:?} {qb:?} {qy:?}");
            }
        }
    }

    #[test]
    fn table_lookup_agrees_for_every_set() {
        // Every index, in lengths around the 16-value vectors.
        let table: [i8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11) as i8);
        let x: Vec<i8> = (0..600).map(|i| (i * 7 + i / 256) as u8 as i8).collect();
        for n in [0, 1, 15, 16, 17, 255, 256, 600] {
            let want: Vec<i8> = x[..n].iter().map(|&v| table[v as u8 as usize]).collect();
            for set in sets() {
                let mut got = vec![0i8; n];
                lookup_with(set, &table, &x[..n], &mut got);
                assert_eq!(got, want, "{set} lookup n={n}");
            }
        }
    }

    #[test]
    fn rounding_is_half_to_even_like_mlas() {
        let rq = Requant::new(vec![0.5], 0);
        let got: Vec<i8> = [-5, -3, -1, 1, 3, 5, 7].iter().map(|&a| rq.one(a, 0.5)).collect();
        assert_eq!(got, vec![-2, -2, 0, 0, 2, 2, 4]);
        let rq = Requant::new(vec![1.0], -128);
        assert_eq!(rq.one(-1, 1.0), -128, "clamped below at qmin");
        assert_eq!(rq.one(1000, 1.0), 127, "clamped above at qmax");
        assert_eq!(rq.one(3, 1.0), -125);
    }

    pub(crate) fn data(seed: u64, n: usize) -> Vec<i8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as i8
            })
            .collect()
    }

    /// Tasks as for `threads` threads, run in reverse order on this one.
    struct Reverse(usize);
    impl Parallel for Reverse {
        fn threads(&self) -> usize {
            self.0
        }
        fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
            (0..n).rev().for_each(task)
        }
    }

    /// Every kernel set this CPU runs.
    pub(crate) fn sets() -> Vec<KernelSet> {
        KernelSet::ALL.into_iter().filter(|k| k.available()).collect()
    }

    fn check_dense(g: Geometry, m: usize, seed: u64) {
        check_dense_zp(g, m, seed, 5, -7)
    }

    /// Weights in −127..=127 (what symmetric quantizers write, and what NEON needs), every
    /// kernel set against the i64 reference, then split into tasks.
    fn check_dense_zp(g: Geometry, m: usize, seed: u64, x_zp: i8, y_zp: i8) {
        let k = g.cin * g.kh * g.kw;
        let w: Vec<i8> = data(seed, m * k).into_iter().map(|v| v.max(-127)).collect();
        let x = data(seed + 1, g.cin * g.h * g.w);
        let bias: Vec<i32> = (0..m as i32).map(|i| i * 37 - 500).collect();
        let rq = Requant::new((0..m).map(|i| 0.0004 + 0.0001 * (i % 5) as f32).collect(), y_zp);
        let want = reference(&g, 1, &w, &bias, x_zp, &rq, &x);
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
            assert_eq!(conv.kernel_set(), set, "{set} took the layer");
            let (oh, ow) = conv.output_hw();
            let mut y = vec![0i8; m * oh * ow];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set} {g:?} m={m}");
            // Split into tasks as for several threads (run here in reverse order).
            let mut y3 = vec![0i8; y.len()];
            conv.run_par(&x, &mut y3, &Reverse(3));
            assert_eq!(y3, want, "{set} split into tasks");
        }
        let conv = DenseQConv::with_kernels(KernelSet::Portable, g, &w, &bias, x_zp, rq.clone()).unwrap();
        let (oh, ow) = conv.output_hw();
        let mut y2 = vec![0i8; m * oh * ow];
        let n = oh * ow;
        // The portable kernel, in blocks of 13 columns (crossing output rows).
        let mut work = Work::default();
        for c0 in (0..n).step_by(13) {
            conv.block(&x, g.is_pointwise(), n, c0, 13.min(n - c0), &mut work, Out::new(&mut y2));
        }
        assert_eq!(y2, want, "portable kernel in blocks of 13 columns");
    }

    #[test]
    fn dense_kernel_sets_agree_at_extreme_zero_points_and_saturation() {
        // Input zero points at both ends, outputs saturating at both ends (large scales).
        for (i, (x_zp, y_zp)) in [(-128i8, 127i8), (127, -128), (0, 0)].into_iter().enumerate() {
            let g = geo(37, 6, 7, 3, 1, [1, 0, 2, 1], 1);
            let m = 11;
            let k = g.cin * 9;
            let w: Vec<i8> = data(70 + i as u64, m * k).into_iter().map(|v| v.max(-127)).collect();
            let x = data(80 + i as u64, g.cin * g.h * g.w);
            let bias: Vec<i32> = (0..m as i32).map(|i| i * 9001 - 40000).collect();
            let rq = Requant::new((0..m).map(|i| 0.001 * (1 + i) as f32).collect(), y_zp);
            let want = reference(&g, 1, &w, &bias, x_zp, &rq, &x);
            assert!(want.contains(&127) && want.contains(&-128), "the case saturates both ways");
            for set in sets() {
                let conv = DenseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                assert_eq!(y, want, "{set} x_zp={x_zp} y_zp={y_zp}");
            }
        }
    }

    #[test]
    fn a_weight_of_minus_128_keeps_neon_exact() {
        // NEON sums two products in i16, which −128 · −128 twice would overflow: such a layer
        // runs the portable kernel (the dot-product and AVX2 kernels take it as it is).
        let g = geo(16, 4, 4, 1, 1, [0; 4], 1);
        let m = 8;
        let w = vec![-128i8; m * 16];
        let x = vec![-128i8; 16 * 16];
        let bias = vec![0i32; m];
        let rq = Requant::new(vec![1e-6; m], 0);
        let want = reference(&g, 1, &w, &bias, 0, &rq, &x);
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &w, &bias, 0, rq.clone()).unwrap();
            if set == KernelSet::Neon {
                assert_eq!(conv.kernel_set(), KernelSet::Portable);
            }
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set}");
        }
    }

    #[test]
    fn dead_channels_and_zero_weights() {
        // Rows of zeros (pruned channels) and a zero input: the output is the bias alone.
        let g = geo(20, 5, 5, 1, 1, [0; 4], 1);
        let m = 9;
        let mut w: Vec<i8> = data(5, m * 20).into_iter().map(|v| v.max(-127)).collect();
        for r in [0usize, 4, 8] {
            w[r * 20..(r + 1) * 20].fill(0);
        }
        let x = vec![3i8; 20 * 25];
        let bias: Vec<i32> = (0..m as i32).map(|i| 1000 * i - 4000).collect();
        let rq = Requant::new(vec![0.01; m], 2);
        let want = reference(&g, 1, &w, &bias, 3, &rq, &x);
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &w, &bias, 3, rq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set}");
        }
    }

    #[test]
    fn dense_matches_reference() {
        check_dense(geo(16, 7, 9, 1, 1, [0; 4], 1), 12, 1);
        check_dense(geo(3, 11, 10, 3, 2, [1, 1, 1, 1], 1), 10, 2);
        check_dense(geo(9, 8, 8, 3, 1, [1, 1, 1, 1], 1), 9, 3);
        check_dense(geo(5, 9, 9, 5, 2, [2, 1, 2, 1], 1), 7, 4);
        check_dense(geo(4, 9, 9, 3, 1, [2, 2, 2, 2], 2), 5, 5);
        check_dense(geo(7, 1, 1, 1, 1, [0; 4], 1), 33, 6);
        // Enough columns for several packed blocks (K = 576 gives blocks of 160 columns).
        check_dense(geo(64, 20, 21, 3, 1, [1, 1, 1, 1], 1), 9, 7);
        // Full 16-column blocks with row, column and k tails for the ARM packings.
        check_dense(geo(40, 8, 33, 1, 1, [0; 4], 1), 21, 8);
        check_dense(geo(32, 16, 16, 1, 1, [0; 4], 1), 16, 9);
        // NEON's half last group (`k % 16` in 1..=8 after full groups): k = 24, 17 and 9 · 2;
        // k = 8 is a single group (no half form), k = 25 a last group of 9.
        check_dense(geo(24, 9, 11, 1, 1, [0; 4], 1), 13, 10);
        check_dense(geo(17, 6, 7, 1, 1, [0; 4], 1), 5, 11);
        check_dense(geo(2, 7, 8, 3, 1, [1, 1, 1, 1], 1), 6, 12);
        check_dense(geo(8, 5, 6, 1, 1, [0; 4], 1), 7, 13);
        check_dense(geo(25, 4, 9, 1, 1, [0; 4], 1), 6, 14);
        // Last panels with 1, 2 and 3 real columns of NEON's 4 and 1 to 4 of the dot product's 8
        // (their narrow tiles): 49, 50, 51, 52, 5 and 3 columns, with odd and even group
        // counts, NEON's half last group (k = 40, 36, 20), a single group (k = 12) and partial
        // row blocks.
        check_dense(geo(48, 7, 7, 1, 1, [0; 4], 1), 16, 15);
        check_dense(geo(40, 5, 10, 1, 1, [0; 4], 1), 12, 16);
        check_dense(geo(36, 3, 17, 1, 1, [0; 4], 1), 9, 17);
        check_dense(geo(64, 4, 13, 1, 1, [0; 4], 1), 8, 18);
        check_dense(geo(20, 1, 5, 1, 1, [0; 4], 1), 5, 19);
        check_dense(geo(12, 1, 3, 1, 1, [0; 4], 1), 3, 20);
        // A stem-like stride-2 convolution on 3 channels, rows wide enough for aarch64's
        // 16-at-a-time stride-2 im2col copy (`neon::evens`) and its tail.
        check_dense(geo(3, 9, 70, 3, 2, [1, 1, 1, 1], 1), 8, 21);
        // NEON's runs of full tiles with a half last group after an odd group and a pair
        // (k = 72) or a pair alone (k = 56), and with whole groups: a pair alone (k = 48).
        check_dense(geo(72, 4, 5, 1, 1, [0; 4], 1), 8, 22);
        check_dense(geo(56, 4, 4, 1, 1, [0; 4], 1), 8, 23);
        check_dense(geo(48, 4, 4, 1, 1, [0; 4], 1), 8, 24);
    }

    /// ARM's in-place form of convolutions: taken where it should be, and exact for rows
    /// narrower and wider than 16, channel counts that are not a multiple of the group,
    /// dilation, asymmetric padding, a padded 1×1, strides 2 and 3 (column phases), and output
    /// rows that are not a multiple of the panel width (checked by `check_dense_zp` for every
    /// set, split into tasks too).
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn arm_convolutions_read_their_input_in_place() {
        let x_for = |g: &Geometry, i: usize| data(80 + i as u64, g.cin * g.h * g.w);
        let strided = |mut g: Geometry, s: (usize, usize)| {
            g.stride = s;
            g
        };
        for (i, (g, m)) in [
            (geo(32, 9, 13, 3, 1, [1, 1, 1, 1], 1), 12),
            (geo(64, 7, 7, 3, 1, [1, 1, 1, 1], 1), 9),
            (geo(28, 6, 21, 3, 1, [0, 2, 1, 0], 2), 5),
            (geo(48, 5, 35, 1, 1, [1, 0, 0, 1], 1), 17),
            (geo(16, 18, 19, 5, 1, [2, 2, 2, 2], 1), 8),
            (geo(32, 14, 14, 3, 2, [1, 1, 1, 1], 1), 10),
            (geo(64, 9, 37, 1, 2, [0; 4], 1), 7),
            (strided(geo(16, 13, 29, 3, 1, [1, 0, 2, 1], 2), (2, 3)), 6),
            (geo(32, 11, 10, 5, 2, [2, 2, 1, 1], 1), 5),
        ]
        .into_iter()
        .enumerate()
        {
            for set in sets().into_iter().filter(|s| matches!(s, KernelSet::Neon | KernelSet::Dotprod)) {
                let w: Vec<i8> = data(60 + i as u64, m * g.cin * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
                let bias: Vec<i32> = (0..m as i32).map(|i| 50 - 29 * i).collect();
                let rq = Requant::new((0..m).map(|i| 0.0005 + 0.0002 * (i % 3) as f32).collect(), 6);
                let conv = DenseQConv::with_kernels(set, g, &w, &bias, -3, rq.clone()).unwrap();
                // The dot product keeps im2col for strided layers (see `DirectConv::pays`).
                assert_eq!(conv.direct.is_some(), set == KernelSet::Neon || g.stride == (1, 1), "{set} {g:?}");
                // Where the in-place form does not pay, it is still exact.
                let forced = DenseQConv::build(set, g, &w, &bias, -3, rq.clone(), true).unwrap();
                assert!(forced.direct.is_some());
                let want = reference(&g, 1, &w, &bias, -3, &rq, &x_for(&g, i));
                let mut y = vec![0i8; want.len()];
                forced.run_par(&x_for(&g, i), &mut y, &Reverse(3));
                assert_eq!(y, want, "{set} {g:?} in place");
            }
            check_dense_zp(g, m, 70 + i as u64, -3, 9);
        }
        // 12 channels: three groups of 4 for the dot product, in place; a third of a group of 16
        // wasted for NEON, which keeps im2col. 3 channels: both keep im2col.
        for (cin, dot, neon) in [(12, true, false), (3, false, false)] {
            let g = geo(cin, 9, 9, 3, 1, [1, 1, 1, 1], 1);
            for set in sets().into_iter().filter(|s| matches!(s, KernelSet::Neon | KernelSet::Dotprod)) {
                let conv = DenseQConv::with_kernels(set, g, &vec![1; 9 * cin], &[0], 0, Requant::new(vec![0.01], 0)).unwrap();
                assert_eq!(conv.direct.is_some(), if set == KernelSet::Dotprod { dot } else { neon }, "{set} {cin} channels");
            }
            check_dense_zp(g, 7, 90 + cin as u64, 4, -2);
        }
    }

    #[test]
    fn depthwise_matches_reference() {
        // 3×3 stride 1 on rows wide enough to run by rows, not flat (the dot product's form
        // takes them two output rows at a time): 9 rows (odd), 8 (even), and a row tail.
        let by_rows = [geo(5, 9, 32, 3, 1, [1, 1, 1, 1], 1), geo(3, 8, 48, 3, 1, [1, 1, 1, 1], 1), geo(4, 7, 47, 3, 1, [1, 1, 1, 1], 1)];
        #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
        for g in &by_rows {
            assert!(!flat_pays(g.h, g.w, g.w + 2), "{g:?} runs flat");
        }
        for (i, g) in [
            geo(8, 9, 11, 3, 1, [1, 1, 1, 1], 1),
            geo(5, 10, 10, 3, 2, [0, 0, 1, 1], 1),
            geo(6, 13, 12, 5, 2, [1, 2, 2, 1], 1),
            geo(3, 7, 7, 5, 1, [2, 2, 2, 2], 1),
            geo(4, 9, 9, 3, 1, [2, 2, 2, 2], 2),
            // Rows longer than a 16-output tile, with a tail; a 5×5 stride 2 as in EfficientNet.
            geo(7, 20, 37, 3, 1, [1, 1, 1, 1], 1),
            geo(4, 21, 40, 5, 2, [1, 2, 2, 1], 1),
            geo(3, 33, 34, 3, 2, [0, 0, 1, 1], 1),
        ]
        .into_iter()
        .chain(by_rows)
        .enumerate()
        {
            let c = g.cin;
            // Weights in −127..=127 (NEON's form needs it) and then with a −128 (the sets fall
            // back where they must, with the same results).
            let mut w: Vec<i8> = data(10 + i as u64, c * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
            let x = data(20 + i as u64, c * g.h * g.w);
            let bias: Vec<i32> = (0..c as i32).map(|i| 100 - 41 * i).collect();
            let rq = Requant::new((0..c).map(|i| 0.002 + 0.0005 * i as f32).collect(), 3);
            let want = reference(&g, c, &w, &bias, -11, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, -11, rq.clone()).unwrap();
                // Every set has a depthwise kernel of its own for these layers (the dot product
                // none with dilation: NEON's then).
                let used = if set == KernelSet::Dotprod && g.dilation != (1, 1) { KernelSet::Neon } else { set };
                assert_eq!(conv.kernel_set(), used, "{g:?}");
                let (oh, ow) = conv.output_hw();
                let mut y = vec![0i8; c * oh * ow];
                conv.run(&x, &mut y);
                assert_eq!(y, want, "{set} {g:?}");
                let mut y2 = vec![0i8; y.len()];
                conv.run_par(&x, &mut y2, &Reverse(2));
                assert_eq!(y2, want, "{set} {g:?} split into tasks");
            }
            w[i] = -128;
            let want = reference(&g, c, &w, &bias, -11, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, -11, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                assert_eq!(y, want, "{set} {g:?} with a weight of −128");
            }
        }
    }

    /// aarch64 NEON's depthwise sums groups of taps in i16, sized per channel by its weights
    /// (`plan_groups`): weights scaled down to reach every group size, and channels at the
    /// bound of a group of 3 (positive sums of 255 and 256, which fit, and 257, which must not
    /// be grouped so; negative ones of 255, which fits, and 256, which does not), on inputs at
    /// both ends of int8 as well as random ones, against the reference.
    #[test]
    fn depthwise_groups_of_taps_stay_exact() {
        let g3 = geo(6, 9, 21, 3, 1, [1, 1, 1, 1], 1);
        let g5 = geo(5, 12, 19, 5, 2, [2, 2, 1, 2], 1);
        let at_bound: [[i8; 9]; 6] = [
            [127, 64, 64, 127, 64, 64, 127, 64, 64],
            [127, 64, 65, 127, 64, 65, 127, 64, 65],
            [127, 65, 65, 127, 65, 65, 127, 65, 65],
            [-127, -64, -64, -127, -64, -64, -127, -64, -64],
            [-127, -64, -65, -127, -64, -65, -127, -64, -65],
            [127, -64, 65, -127, 64, -65, 127, -64, 65],
        ];
        for (i, (g, div)) in [(g3, 1i8), (g3, 3), (g3, 6), (g3, 14), (g3, 40), (g5, 2), (g5, 6), (g5, 10), (g5, 20), (g5, 60), (g3, 0)].into_iter().enumerate()
        {
            let (c, taps) = (g.cin, g.kh * g.kw);
            let w: Vec<i8> = if div == 0 { at_bound.concat() } else { data(300 + i as u64, c * taps).into_iter().map(|v| v.max(-127) / div).collect() };
            let bias: Vec<i32> = (0..c as i32).map(|i| 7 - 300 * i).collect();
            let rq = Requant::new(vec![0.0004; c], -5);
            for (j, x) in [vec![-128i8; c * g.h * g.w], vec![127; c * g.h * g.w], data(400 + i as u64, c * g.h * g.w)].into_iter().enumerate() {
                let x_zp = [3i8, -2, 9][j];
                let want = reference(&g, c, &w, &bias, x_zp, &rq, &x);
                for set in sets() {
                    let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
                    let mut y = vec![0i8; want.len()];
                    conv.run(&x, &mut y);
                    assert_eq!(y, want, "{set} {g:?} weights / {div}, input {j}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn dense_matches_reference_on_random_shapes(
            cin in 1usize..40, m in 1usize..20, h in 1usize..10, w in 1usize..24,
            k in prop::sample::select(vec![1usize, 3, 5]), s in 1usize..3, p in 0usize..3, seed in 0u64..1000,
            x_zp in any::<i8>(), y_zp in any::<i8>(),
        ) {
            let g = geo(cin, h + k, w + k, k, s, [p; 4], 1);
            check_dense_zp(g, m, seed, x_zp, y_zp);
        }

        /// A stride past the input (a defective file's 2³⁰) gives one output position, equal
        /// to the reference, without sizing any buffer by the stride.
        #[test]
        fn strides_past_the_input_are_exact_and_cheap(
            c in 1usize..5, h in 1usize..9, w in 1usize..9, k in prop::sample::select(vec![1usize, 3]),
            p in 0usize..2, big in prop::sample::select(vec![1usize << 30, 1 << 20, 64]), seed in 0u64..100,
        ) {
            let g = Geometry { cin: c, h: h + k, w: w + k, kh: k, kw: k, stride: (big, 1 + big % 3), dilation: (1, 1), pads: [p; 4] };
            let wts = data(seed, c * k * k);
            let x = data(seed + 1, c * g.h * g.w);
            let bias: Vec<i32> = (0..c as i32).map(|i| 5 - 3 * i).collect();
            let rq = Requant::new(vec![0.01; c], 3);
            let want = reference(&g, c, &wts, &bias, -2, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &wts, &bias, -2, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                prop_assert_eq!(&y, &want, "{} {:?}", set, g);
            }
            let m = 3;
            let dw = data(seed + 2, m * c * k * k);
            let dbias: Vec<i32> = (0..m as i32).collect();
            let drq = Requant::new(vec![0.002; m], -1);
            let want = reference(&g, 1, &dw, &dbias, 4, &drq, &x);
            for set in sets() {
                let conv = DenseQConv::with_kernels(set, g, &dw, &dbias, 4, drq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                prop_assert_eq!(&y, &want, "dense {} {:?}", set, g);
            }
        }

        #[test]
        fn depthwise_matches_reference_on_random_shapes(
            c in 1usize..6, h in 0usize..12, w in 0usize..40,
            k in prop::sample::select(vec![1usize, 3, 5]), s in 1usize..3, d in 1usize..3,
            pads in prop::array::uniform4(0usize..3), seed in 0u64..1000,
            x_zp in any::<i8>(), y_zp in any::<i8>(),
        ) {
            let g = Geometry { cin: c, h: h + k * d, w: w + k * d, kh: k, kw: k, stride: (s, s), dilation: (d, d), pads };
            // Mostly weights in −127..=127 (NEON's form needs it), sometimes the full range.
            let wts: Vec<i8> = data(seed, c * k * k).into_iter().map(|v| if seed % 4 == 0 { v } else { v.max(-127) }).collect();
            let x = data(seed + 1, c * g.h * g.w);
            let bias: Vec<i32> = (0..c as i32).map(|i| 300 - 97 * i).collect();
            let rq = Requant::new((0..c).map(|i| 0.001 + 0.003 * i as f32).collect(), y_zp);
            let want = reference(&g, c, &wts, &bias, x_zp, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &wts, &bias, x_zp, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                prop_assert_eq!(&y, &want, "{} {:?}", set, g);
            }
        }
    }
}
