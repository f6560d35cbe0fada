//! edgenet's int8 compute, without tract: the kernels that run quantized convolutions,
//! matmuls, quantize/dequantize and the quantized residual add, bit-identical to onnxruntime.
//!
//! The arithmetic is that of an ONNX `QLinearConv` with int8 input, symmetric int8 weights,
//! int32 bias and int8 output, with onnxruntime's requantization ([`Requant`]).
//!
//! # How it is organised
//!
//! - **Ops** — [`DenseQConv`] (groups = 1, also matmuls), [`DepthwiseQConv`],
//!   [`WinogradQConv`] (3×3 stride 1, exact in integers) and the element-wise kernels of
//!   [`elementwise`]. An op is built for a [`KernelSet`]: it asks the [`plan`]ner how the layer
//!   runs, then the kernel table (`table.rs`) for the implementation of that plan, and holds it
//!   with its weights packed in the implementation's own layout. Ops contain no
//!   architecture-specific code.
//! - **The planner** ([`plan`]) decides per layer: the kernel set that takes it (a set falls
//!   back to portable where it cannot, with the reason), the algorithm (packed GEMM, im2col,
//!   in place, Winograd, a depthwise form), the tile, and how the work splits into tasks. It is
//!   pure: `edgenet inspect --kernels SET` prints the plan for another machine's set.
//! - **Instruction-set folders**, each implementing the traits of `layers.rs`:
//!   `portable/` (the reference every set is tested against), `x86_64/` (AVX2, AVX-512 VNNI), `aarch64/`
//!   (`neon/` for ARMv8.0, the Raspberry Pi 4's Cortex-A72; `dotprod.rs` for ARMv8.2 `sdot`, the
//!   Pi 5's Cortex-A76), `armv7/` (32-bit Raspberry Pi OS, NEON in `asm!`).
//! - **Shared helpers** below the folders: `geometry.rs`, `requant.rs`, `packing.rs` (im2col,
//!   weight blocks), `tasks.rs` (the task split and per-thread buffers), `planes.rs` (the
//!   padded planes of the ARM depthwise forms), [`threads`] (the thread pool).
//!
//! Imports go one way: ops → table → instruction-set folders → shared helpers.
//!
//! Which micro-kernels run is a [`KernelSet`], detected once from the CPU ([`KernelSet::detect`])
//! and chosen when a model is loaded; `EDGENET_KERNELS=portable|avx2|avx512vnni|neon|dotprod` (or
//! `EngineOptions::kernels`) forces one for tests and A/B runs. Weights are packed once, at
//! load, in the layout of the chosen set.
//!
//! `src/engine` wraps these kernels in tract ops; nothing here imports tract.

/// Marks a kernel path as taken, for the tests' path assertions (`trace.rs`); nothing outside
/// tests.
#[cfg(test)]
macro_rules! trace {
    ($name:expr) => {
        $crate::kernels::trace::hit($name)
    };
}
#[cfg(not(test))]
macro_rules! trace {
    ($name:expr) => {};
}

mod dense;
mod depthwise;
pub mod elementwise;
mod geometry;
mod isa;
mod layers;
mod marks;
mod packing;
pub mod plan;
mod portable;
mod requant;
mod table;
mod tasks;
pub mod threads;
pub mod winograd;

#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
mod planes;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "arm")]
mod armv7;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace;

pub use dense::DenseQConv;
pub use depthwise::DepthwiseQConv;
pub use geometry::{Geometry, Unsupported};
pub use isa::{Arch, KernelSet, KERNELS_ENV};
pub use requant::Requant;
pub(crate) use tasks::par_chunks_mut;
pub use tasks::{Parallel, Sequential};
pub use threads::ThreadPool;
pub use winograd::WinogradQConv;
