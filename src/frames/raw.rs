//! Raw frame streams: fixed-size frames of one pixel format back to back, from stdin, a file
//! or a FIFO (`rpicam-vid --codec yuv420 -o -`, `ffmpeg -f rawvideo -pix_fmt rgb24 -`).

use std::io::{ErrorKind, Read};
use std::time::Instant;

use super::source::{FrameInfo, FrameSource, RgbBuf};
use super::yuv::{to_rgb, PixelFormat, YuvRange};
use crate::error::{Error, Result};

/// Reads as many bytes as `buf` holds unless the stream ends first; returns the count.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A raw stream of `width`×`height` frames in one [`PixelFormat`].
pub struct RawSource {
    reader: Box<dyn Read + Send>,
    name: String,
    format: PixelFormat,
    range: YuvRange,
    width: usize,
    height: usize,
    raw: Vec<u8>,
    index: u64,
    live: bool,
}

impl std::fmt::Debug for RawSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawSource({} {}x{} {})", self.name, self.width, self.height, self.format.name())
    }
}

impl RawSource {
    /// A raw stream read from `reader`; `name` names it in messages; `live` says whether its
    /// producer runs in real time (a camera pipe).
    ///
    /// # Errors
    /// [`Error::Source`] for an unusable size.
    pub fn new(reader: Box<dyn Read + Send>, name: &str, format: PixelFormat, range: YuvRange, width: usize, height: usize, live: bool) -> Result<Self> {
        let len = format.frame_len(width, height).map_err(|e| Error::Source { source_name: name.into(), message: e.to_string() })?;
        Ok(RawSource { reader, name: name.into(), format, range, width, height, raw: vec![0; len], index: 0, live })
    }

    /// Bytes per frame.
    pub fn frame_len(&self) -> usize {
        self.raw.len()
    }
}

impl FrameSource for RawSource {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        let len = self.raw.len();
        let offset = self.index * len as u64;
        let got = read_full(&mut *self.reader, &mut self.raw).map_err(|e| Error::Frame {
            source_name: self.name.clone(),
            index: self.index,
            offset,
            message: format!("read failed: {e}"),
        })?;
        if got == 0 {
            return Ok(None);
        }
        if got < len {
            return Err(Error::Frame {
                source_name: self.name.clone(),
                index: self.index,
                offset,
                message: format!(
                    "truncated frame: expected {len} bytes ({}x{} {}), got {got}; the stream ends mid-frame \
                     (or --size/--format do not match the stream: its length is not a multiple of the frame size)",
                    self.width,
                    self.height,
                    self.format.name()
                ),
            });
        }
        let captured = Instant::now();
        let dst = buf.reshape(self.width, self.height);
        to_rgb(self.format, self.range, &self.raw, self.width, self.height, dst)?;
        let info = FrameInfo { index: self.index, dropped: 0, captured };
        self.index += 1;
        Ok(Some(info))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_live(&self) -> bool {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_then_end_then_truncation_named() {
        // Two 2×2 rgb24 frames and 5 stray bytes.
        let mut bytes: Vec<u8> = (0..24).collect();
        bytes.extend([9; 5]);
        let mut s = RawSource::new(Box::new(std::io::Cursor::new(bytes)), "test", PixelFormat::Rgb24, YuvRange::Full, 2, 2, false).unwrap();
        let mut buf = RgbBuf::new();
        assert_eq!(s.next_frame(&mut buf).unwrap().unwrap().index, 0);
        assert_eq!(buf.data, (0..12).collect::<Vec<u8>>());
        assert_eq!(s.next_frame(&mut buf).unwrap().unwrap().index, 1);
        let e = s.next_frame(&mut buf).unwrap_err().to_string();
        assert!(e.contains("frame 2") && e.contains("byte offset 24") && e.contains("expected 12 bytes") && e.contains("got 5"), "{e}");
        let mut s = RawSource::new(Box::new(std::io::empty()), "empty", PixelFormat::Nv12, YuvRange::Full, 4, 2, false).unwrap();
        assert!(s.next_frame(&mut buf).unwrap().is_none());
        assert!(RawSource::new(Box::new(std::io::empty()), "odd", PixelFormat::Yuyv, YuvRange::Full, 3, 2, false).is_err());
    }
}
