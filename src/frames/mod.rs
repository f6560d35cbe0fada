//! Frames: turning images (and, later, camera frames) into model input tensors.

pub mod preprocess;
