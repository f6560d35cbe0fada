//! x86-64 kernels: the `avx2` and `avx512vnni` sets. The `avx2` dense GEMM has AVX2
//! micro-kernels of its own ([`avx2`]); its depthwise and element-wise kernels are the portable
//! code compiled with AVX2 enabled; Winograd's transforms and tile are AVX2 ([`winograd`]). The
//! `avx512vnni` set has its own dense GEMM ([`vnni`]) and takes the rest from `avx2`.

pub(crate) mod avx2;
pub(crate) mod vnni;
pub(crate) mod winograd;

use std::ops::Range;

use super::layers::{bytes, bytes_mut, DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer, Elementwise};
use super::plan;
use super::portable::{self, PairPacked, Planes16};
use super::tasks::{Out, Work};
pub(crate) use avx2::Avx2Dense;

impl Avx2Dense {
    /// The AVX2 kernel of a dense layer with `weights`.
    pub(crate) fn new(layer: &DenseLayer, weights: &[i8]) -> Self {
        Avx2Dense(PairPacked::new(layer, weights))
    }
}

impl DenseKernel for Avx2Dense {
    fn held_bytes(&self) -> usize {
        self.0.a.len()
    }

    fn packed_len(&self, l: &DenseLayer, ncols: usize) -> Option<usize> {
        Some(ncols.div_ceil(plan::PAIR_NR) * (l.kp / 2) * plan::PAIR_NR * 2)
    }

    fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        // SAFETY: the table builds this kernel only when the CPU has AVX2 (`table::dense`).
        unsafe { self.pack_avx2(l, x, c0, ncols, work, dst) }
    }

    fn gemm(&self, l: &DenseLayer, _shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, work: &mut Work, out: Out) {
        // SAFETY: the table builds this kernel only when the CPU has AVX2 (`table::dense`); this
        // task alone accesses columns c0..c0 + ncols of `rows` (the trait's contract).
        unsafe { self.gemm_avx2(l, packed, &mut work.wide, rows, c0, ncols, l.oh * l.ow, out) }
    }
}

/// The depthwise form of the `avx2` set: the portable planes, compiled with AVX2 enabled.
#[derive(Debug)]
pub(crate) struct Avx2Depthwise(pub(crate) Planes16);

impl Avx2Depthwise {
    /// [`Planes16::channels`] compiled with AVX2 enabled.
    ///
    /// # Safety
    /// The CPU has AVX2, and no other task writes the output planes of `channels` meanwhile.
    #[target_feature(enable = "avx2")]
    unsafe fn channels_avx2(&self, l: &DepthwiseLayer, x: &[i8], y: Out, channels: Range<usize>, work: &mut Work) {
        self.0.channels(l, x, y, channels, work)
    }
}

impl DepthwiseKernel for Avx2Depthwise {
    fn held_bytes(&self) -> usize {
        self.0.held_bytes()
    }

    fn channels(&self, l: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work) {
        // SAFETY: the table builds this form only when the CPU has AVX2 (`table::depthwise`);
        // this task alone writes the planes of `channels` (the trait's contract).
        unsafe { self.channels_avx2(l, x, out, channels, work) }
    }
}

/// Defines `fn $name(args)` that runs `$body(args)` compiled for AVX2; `$body` is
/// `#[inline(always)]`, so the copy is specialised. Only reachable through [`ELEMENTWISE`],
/// which the table hands out when the CPU has AVX2.
macro_rules! avx2_copy {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) = $body:path) => {
        $(#[$m])*
        fn $name($($a: $t),*) {
            /// `$body` compiled with AVX2 enabled.
            ///
            /// # Safety
            /// The CPU has AVX2.
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($a: $t),*) {
                $body($($a),*)
            }
            // SAFETY: this function is only reachable through `ELEMENTWISE`, which
            // `table::elementwise` returns only when the CPU has AVX2.
            unsafe { avx2($($a),*) }
        }
    };
}

avx2_copy! {
    /// The portable quantize compiled for AVX2.
    fn quantize(x: &[f32], scale: f32, zp: i8, y: &mut [i8]) = portable::quantize_body
}
avx2_copy! {
    /// The portable dequantize compiled for AVX2.
    fn dequantize(x: &[i8], scale: f32, zp: i8, y: &mut [f32]) = portable::dequantize_body
}
avx2_copy! {
    /// The portable quantized add compiled for AVX2.
    fn quantized_add(a: &[i8], qa: (f32, i8), b: &[i8], qb: (f32, i8), qy: (f32, i8), y: &mut [i8]) = portable::quantized_add_body
}

/// The element-wise kernels of the `avx2` set (table lookups stay portable).
pub(crate) const ELEMENTWISE: Elementwise = Elementwise { quantize, dequantize, quantized_add, lookup: portable::lookup_body };

impl DepthwiseKernel for vnni::VnniDepthwise {
    fn held_bytes(&self) -> usize {
        vnni::VnniDepthwise::held_bytes(self)
    }

    fn channels(&self, l: &DepthwiseLayer, x: &[i8], out: Out, channels: Range<usize>, work: &mut Work) {
        // SAFETY: the table builds this form only for the `avx512vnni` set, which the CPU runs
        // (AVX-512 F, BW, VL, VNNI and VBMI: `KernelSet::available`); this task alone writes
        // the planes of `channels` (the trait's contract).
        unsafe { vnni::VnniDepthwise::channels(self, l, x, out, channels, work) }
    }
}

impl DenseKernel for vnni::VnniDense {
    fn held_bytes(&self) -> usize {
        vnni::VnniDense::held_bytes(self)
    }

    fn packed_len(&self, l: &DenseLayer, ncols: usize) -> Option<usize> {
        Some(vnni::VnniDense::packed_bytes(l, ncols).div_ceil(2))
    }

    fn pack(&self, l: &DenseLayer, x: &[i8], c0: usize, ncols: usize, work: &mut Work, dst: &mut [i16]) {
        // SAFETY: the table builds this kernel only when the CPU has AVX-512 F, BW, VL and
        // VNNI (`table::dense`, `KernelSet::available`).
        unsafe { vnni::VnniDense::pack(self, l, x, c0, ncols, work, bytes_mut(dst)) }
    }

    fn gemm(&self, l: &DenseLayer, _shared: &[i8], packed: &[i16], rows: Range<usize>, c0: usize, ncols: usize, _work: &mut Work, out: Out) {
        // SAFETY: the table builds this kernel only when the CPU has AVX-512 F, BW, VL and
        // VNNI (`table::dense`, `KernelSet::available`); this task alone accesses columns
        // c0..c0 + ncols of `rows` (the trait's contract).
        unsafe { vnni::VnniDense::gemm(self, l, bytes(packed), l.k.div_ceil(vnni::KC), rows, c0, ncols, l.oh * l.ow, out) }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::plan::{self, LayerFacts, Target, Tile};
    use crate::kernels::{Geometry, KernelSet, Requant};

    /// The planner's tiles (which the generated kernel tests take their cases from) are the
    /// kernels' own constants, and VNNI never plans Winograd (its dense kernel does 4× the
    /// multiply-adds per instruction of Winograd's i16 GEMM).
    #[test]
    fn planner_tiles_are_the_kernels() {
        use super::vnni;
        assert_eq!(Tile::dense(Target::host(KernelSet::Avx512Vnni)), Tile { mr: vnni::MR, nr: vnni::NR, kc: vnni::KC, panels: 2 });
        assert_eq!(Tile::dense(Target::host(KernelSet::Avx2)), Tile { mr: plan::PAIR_MR, nr: plan::PAIR_NR, kc: 2, panels: 2 });
        let g = Geometry { cin: 256, h: 14, w: 14, kh: 3, kw: 3, stride: (1, 1), dilation: (1, 1), pads: [1; 4] };
        let facts = LayerFacts::new(g, 256, &[1; 9], &Requant::new(vec![1.0], 0));
        assert!(plan::winograd_pays(Target::host(KernelSet::Avx2), &facts));
        assert!(!plan::winograd_pays(Target::host(KernelSet::Avx512Vnni), &facts));
        assert_eq!(Target::for_set(KernelSet::Avx512Vnni), Target::host(KernelSet::Avx512Vnni));
    }
}
