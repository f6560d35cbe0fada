//! 32-bit ARM (armv7) micro-kernels: NEON, detected at run time.

pub(crate) mod neon;
