//! Frames: image files, raw and MJPEG streams, V4L2 cameras and a synthetic pattern, behind
//! one [`FrameSource`] trait, turned into model input tensors.

pub mod files;
pub mod image_file;
pub mod live;
pub mod mjpeg;
pub mod preprocess;
pub mod raw;
pub mod source;
pub mod spec;
pub mod synthetic;
pub mod v4l2;
pub mod yuv;

pub use source::{FrameInfo, FrameSource, RgbBuf};
pub use spec::{LiveMode, SourceKind, SourceSpec};
pub use yuv::{PixelFormat, StreamFormat, YuvRange};
