//! Element-wise int8 kernels: quantize, dequantize, the quantized residual add and table
//! lookups, each with the kernel set's implementation from the [kernel table](super::table).

use super::isa::KernelSet;

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
