//! The frame-source abstraction: anything that fills a reused RGB buffer with the next frame.

use std::time::Instant;

use crate::error::Result;

/// A packed RGB8 frame buffer that sources fill again and again. Its storage grows to the
/// largest frame seen and is never shrunk, so a stream of same-sized frames reuses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RgbBuf {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes, row-major, R G B.
    pub data: Vec<u8>,
}

impl RgbBuf {
    /// An empty buffer (no storage yet).
    pub fn new() -> Self {
        RgbBuf::default()
    }

    /// Sets the size and returns the pixel bytes to fill; allocates only when the frame is
    /// larger than any before.
    pub fn reshape(&mut self, width: usize, height: usize) -> &mut [u8] {
        self.width = width;
        self.height = height;
        let n = width.saturating_mul(height).saturating_mul(3);
        self.data.resize(n, 0);
        &mut self.data
    }

    /// The pixel bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.data
    }
}

/// What a source says about the frame it just delivered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    /// Index of the frame in the source, from 0, counting the frames that were skipped.
    pub index: u64,
    /// Frames dropped just before this one because a newer frame replaced them (live sources
    /// only; the runner was busy).
    pub dropped: u64,
    /// When the source had the frame ready.
    pub captured: Instant,
}

/// A stream of frames: camera, pipe, files, synthetic pattern.
///
/// `next_frame` fills `buf` (reused: its storage is kept) and returns `Ok(None)` at the end of
/// the stream. A source reports frames it had to skip as unusable (a corrupt JPEG inside an
/// MJPEG stream) through [`FrameSource::corrupt`] and logs a warning; an error ends the stream.
pub trait FrameSource: Send {
    /// Fills `buf` with the next frame.
    ///
    /// # Errors
    /// [`crate::Error::Frame`] for a frame that cannot be read (truncated stream), or
    /// [`crate::Error::Source`] when the source itself fails; both name the source.
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>>;

    /// A short name for messages: the path, `stdin`, the device.
    fn name(&self) -> &str;

    /// Frames skipped so far because they could not be decoded.
    fn corrupt(&self) -> u64 {
        0
    }

    /// A name for the frame last delivered, when it has one (the image file name).
    fn frame_name(&self) -> Option<&str> {
        None
    }

    /// Whether frames arrive in real time whether or not they are consumed (a camera): such a
    /// source is best wrapped in [`crate::frames::live::Latest`].
    fn is_live(&self) -> bool {
        false
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        (**self).next_frame(buf)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn corrupt(&self) -> u64 {
        (**self).corrupt()
    }
    fn frame_name(&self) -> Option<&str> {
        (**self).frame_name()
    }
    fn is_live(&self) -> bool {
        (**self).is_live()
    }
}
