//! The kernel table: the one place that maps a plan's kernel set to the implementations of the
//! instruction-set folders (`portable/`, `x86_64/`, `aarch64/`, `armv7/`). Adding a set means
//! adding a folder, a [`KernelSet`] variant with its detection (`isa.rs`), its tile in the
//! planner (`plan.rs`) and its entries here. The ops (`dense.rs`, `depthwise.rs`,
//! `winograd/`, `elementwise.rs`) hold what these functions return and know no architecture.
//!
//! Every entry checks that the CPU can run the set ([`KernelSet::available`]) and gives the
//! portable implementation otherwise: the implementations' `unsafe` code relies on that.

use super::isa::KernelSet;
use super::layers::{DenseKernel, DenseLayer, DepthwiseKernel, DepthwiseLayer, Elementwise};
use super::plan::{DensePlan, DepthwisePlan, Target};
use super::portable;
use super::winograd::layer::WinogradBlock;

/// The set of `target` if this CPU runs it, else portable (logged: the ops map unavailable
/// sets to portable before planning, so this does not happen through them).
fn runnable(target: Target) -> KernelSet {
    if target.set.available() {
        target.set
    } else {
        log::debug!("the {} kernels cannot run on this CPU: portable instead", target.set);
        KernelSet::Portable
    }
}

/// The dense kernel of `plan` for `layer`, its weights (`[m][k]`) packed in its layout.
pub(crate) fn dense(plan: &DensePlan, layer: &DenseLayer, weights: &[i8]) -> Box<dyn DenseKernel> {
    match runnable(plan.target) {
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx2 => Box::new(super::x86_64::Avx2Dense::new(layer, weights)),
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx512Vnni => Box::new(super::x86_64::vnni::VnniDense::new(layer, weights)),
        #[cfg(target_arch = "aarch64")]
        set @ (KernelSet::Neon | KernelSet::Dotprod) => Box::new(super::aarch64::ArmDense::new(set, plan, layer, weights)),
        #[cfg(target_arch = "arm")]
        KernelSet::Neon => Box::new(super::armv7::Armv7Dense::new(layer, weights)),
        _ => Box::new(portable::Dense(portable::PairPacked::new(layer, weights))),
    }
}

/// The depthwise form of `plan` for `layer` and its weights (`[c][kh·kw]`).
pub(crate) fn depthwise(plan: &DepthwisePlan, layer: &DepthwiseLayer, weights: &[i8]) -> Box<dyn DepthwiseKernel> {
    let _ = layer;
    match runnable(plan.target) {
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx2 => Box::new(super::x86_64::Avx2Depthwise(portable::Planes16::new(weights))),
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx512Vnni => match super::x86_64::vnni::VnniDepthwise::new(layer, weights) {
            Some(d) => Box::new(d),
            None => Box::new(super::x86_64::Avx2Depthwise(portable::Planes16::new(weights))),
        },
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => match super::aarch64::ArmDepthwise::new(plan, layer, weights) {
            Some(d) => Box::new(d),
            None => Box::new(portable::Planes16::new(weights)),
        },
        #[cfg(target_arch = "arm")]
        KernelSet::Neon => match super::armv7::Armv7Depthwise::new(plan, layer, weights) {
            Some(d) => Box::new(d),
            None => Box::new(portable::Planes16::new(weights)),
        },
        _ => Box::new(portable::Planes16::new(weights)),
    }
}

/// The Winograd pieces of `target` (see [`plan::winograd_target`](super::plan::winograd_target))
/// and the target they belong to.
pub(crate) fn winograd(target: Target) -> (Target, WinogradBlock) {
    let (set, block): (KernelSet, WinogradBlock) = match runnable(target) {
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx2 => (KernelSet::Avx2, super::x86_64::winograd::BLOCK),
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon => (KernelSet::Neon, super::aarch64::winograd::BLOCK),
        _ => (KernelSet::Portable, super::winograd::layer::PORTABLE),
    };
    (Target { set, ..target }, block)
}

/// The element-wise kernels of `set`.
pub(crate) fn elementwise(set: KernelSet) -> &'static Elementwise {
    if !set.available() {
        return &portable::ELEMENTWISE;
    }
    match set {
        #[cfg(target_arch = "x86_64")]
        KernelSet::Avx2 | KernelSet::Avx512Vnni => &super::x86_64::ELEMENTWISE,
        #[cfg(target_arch = "aarch64")]
        KernelSet::Neon | KernelSet::Dotprod => &super::aarch64::neon::ELEMENTWISE,
        _ => &portable::ELEMENTWISE,
    }
}
