//! # edgenet
//!
//! Define an image-classification network in Rust, export it to ONNX, quantize it to int8 and
//! run it with tract on x86-64 or a Raspberry Pi.
//!
//! ```
//! use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};
//! use edgenet::onnx::{export, ExportOptions};
//! use edgenet::engine::{Engine, EngineOptions};
//! # fn main() -> edgenet::Result<()> {
//! let cfg = ZooConfig { width_mult: 0.5, resolution: 96, num_classes: 10 };
//! let model = zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(1))?;
//! let bytes = export(&model, &ExportOptions { fold_bn: true })?;
//! let engine = Engine::from_bytes(&bytes, "mobilenet_v2", &EngineOptions::default())?;
//! let logits = engine.run(&vec![0.0; engine.input_len()])?;
//! assert_eq!(logits.len(), 10);
//! # Ok(()) }
//! ```
//!
//! Features: `tools` (default) adds the zoo, ONNX export, the int8 quantizer and safetensors
//! weights; without it (`--no-default-features`) the crate is the runtime a device needs:
//! loading and inspecting ONNX files, the int8 kernels, frames and the runner.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
// Kernels and graph builders take many plain parameters by design; NaN-aware comparisons
// (`!(a > b)`) are intentional in the observers; nested tuple types name data, not logic.
#![allow(clippy::too_many_arguments, clippy::type_complexity, clippy::neg_cmp_op_on_partial_ord)]

pub mod alloc;
pub mod engine;
pub mod error;
pub mod frames;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod preprocess;
#[cfg(feature = "tools")]
pub mod quant;
pub mod runner;
#[cfg(feature = "tools")]
pub mod zoo;

pub use error::{Error, Result};
