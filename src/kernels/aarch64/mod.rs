//! aarch64 micro-kernels: NEON (ARMv8.0) and the ARMv8.2 dot product.

pub(crate) mod dotprod;
pub(crate) mod neon;
