//! edgenet's int8 compute, without tract: the kernels that run quantized convolutions,
//! matmuls, quantize/dequantize and the quantized residual add, bit-identical to onnxruntime.
//!
//! - [`int8`]: dense (1×1 and im2col) and depthwise convolutions, quantize, dequantize,
//!   quantized add, with the portable reference and the x86-64 AVX2 micro-kernels.
//! - [`winograd`]: Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions (exact in integers).
//! - `aarch64/neon.rs` (ARMv8.0, the Raspberry Pi 4's Cortex-A72) and `aarch64/dotprod.rs`
//!   (ARMv8.2 `sdot`, the Pi 5's Cortex-A76): the ARM micro-kernels, each checked against the
//!   portable reference.
//! - `arm/neon.rs`: the armv7 NEON GEMM (32-bit Raspberry Pi OS), in `asm!` since the armv7
//!   targets do not assume NEON; detected at run time.
//!
//! Which micro-kernels run is a [`KernelSet`], detected once from the CPU ([`KernelSet::detect`])
//! and chosen when a model is loaded; `EDGENET_KERNELS=portable|avx2|neon|dotprod` (or
//! `EngineOptions::kernels`) forces one for tests and A/B runs. Weights are packed once, at
//! load, in the layout of the chosen set.
//!
//! `src/engine` wraps these kernels in tract ops; nothing here imports tract.

pub mod int8;
mod isa;
pub mod threads;
pub mod winograd;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "arm")]
mod arm;

pub use isa::KernelSet;
pub use threads::ThreadPool;
