//! 32-bit ARM (armv7) micro-kernels: NEON, detected at run time.

pub(crate) mod neon;

/// A depthwise layer's armv7 form (the same shape as aarch64's, which also has a dot-product
/// form): NEON's, for any geometry and weights in −127..=127, on raw int8 planes padded with the
/// input zero point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Depthwise {
    Neon(neon::Depthwise),
}

impl Depthwise {
    /// Bytes held.
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            Depthwise::Neon(d) => d.held_bytes(),
        }
    }
}
