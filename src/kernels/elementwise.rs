//! Element-wise int8 kernels: quantize, dequantize, the quantized residual add and table
//! lookups, each with the kernel set's implementation from the [kernel table](super::table).
//!
//! The `_par` forms split the elements into equal chunks, one task per thread of a
//! [`Parallel`] (no split below [`plan::elementwise_split`]'s threshold): every element's
//! result depends on that element alone, so any split gives the same bytes.

use super::isa::KernelSet;
use super::plan;
use super::tasks::{par_chunks_mut, Parallel};

/// Runs `f(start, chunk of y)` on the chunks of `y` that [`plan::elementwise_split`] makes for
/// `par`'s threads, as the tasks of one job.
fn chunks<T: Send>(y: &mut [T], par: &dyn Parallel, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (per, tasks) = plan::elementwise_split(y.len(), par.threads());
    if tasks <= 1 {
        return f(0, y);
    }
    par_chunks_mut(y, per, par, &|i, ys| f(i * per, ys))
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

/// [`quantize`] with the kernel set `set` (same results; a set the CPU lacks runs the
/// portable code).
pub fn quantize_with(set: KernelSet, x: &[f32], scale: f32, zp: i8, y: &mut [i8]) {
    (super::table::elementwise(set).quantize)(x, scale, zp, y)
}

/// [`dequantize`] with the kernel set `set` (same results).
pub fn dequantize_with(set: KernelSet, x: &[i8], scale: f32, zp: i8, y: &mut [f32]) {
    (super::table::elementwise(set).dequantize)(x, scale, zp, y)
}

/// [`quantized_add`] with the kernel set `set` (same results).
pub fn quantized_add_with(set: KernelSet, a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) {
    (super::table::elementwise(set).quantized_add)(a, qa, b, qb, qy, y)
}

/// `y[i] = table[x[i] as u8]`: an int8 → int8 function as a 256-entry table (a fused
/// element-wise chain), with the kernel set `set`: on aarch64 (`neon`, `dotprod`) 16 values per
/// four `tbl`/`tbx` lookups in the table held in 16 registers; portable code otherwise.
pub fn lookup_with(set: KernelSet, table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    (super::table::elementwise(set).lookup)(table, x, y)
}

/// [`quantize_with`] on the threads of `par`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn quantize_par(set: KernelSet, x: &[f32], scale: f32, zp: i8, y: &mut [i8], par: &dyn Parallel) {
    assert_eq!(x.len(), y.len(), "quantize: input and output lengths");
    let k = super::table::elementwise(set).quantize;
    chunks(y, par, &|at, ys| k(&x[at..][..ys.len()], scale, zp, ys))
}

/// [`dequantize_with`] on the threads of `par`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn dequantize_par(set: KernelSet, x: &[i8], scale: f32, zp: i8, y: &mut [f32], par: &dyn Parallel) {
    assert_eq!(x.len(), y.len(), "dequantize: input and output lengths");
    let k = super::table::elementwise(set).dequantize;
    chunks(y, par, &|at, ys| k(&x[at..][..ys.len()], scale, zp, ys))
}

/// [`quantized_add_with`] on the threads of `par`.
///
/// # Panics
/// If `a`, `b` and `y` differ in length.
#[allow(clippy::too_many_arguments)]
pub fn quantized_add_par(set: KernelSet, a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8], par: &dyn Parallel) {
    assert!(a.len() == y.len() && b.len() == y.len(), "quantized add: input and output lengths");
    let k = super::table::elementwise(set).quantized_add;
    chunks(y, par, &|at, ys| k(&a[at..][..ys.len()], qa, &b[at..][..ys.len()], qb, qy, ys))
}

/// [`lookup_with`] on the threads of `par`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn lookup_par(set: KernelSet, table: &[i8; 256], x: &[i8], y: &mut [i8], par: &dyn Parallel) {
    assert_eq!(x.len(), y.len(), "lookup: input and output lengths");
    let k = super::table::elementwise(set).lookup;
    chunks(y, par, &|at, ys| k(table, &x[at..][..ys.len()], ys))
}
