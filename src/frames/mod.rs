//! Frames: images and (later) camera frames, turned into model input tensors.

pub mod image_file;
pub mod preprocess;
