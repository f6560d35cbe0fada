//! MJPEG streams: JPEG images back to back (`rpicam-vid --codec mjpeg -o -`, `ffmpeg -f
//! mjpeg -`, many USB cameras). Frames are found by walking the JPEG marker segments from SOI
//! to EOI (so an EXIF thumbnail's own markers do not split a frame), read into one reused
//! buffer and decoded into the caller's RGB buffer. A frame that does not decode is skipped,
//! counted and logged; the stream goes on.

use std::io::{Cursor, Read};
use std::time::Instant;

use image::ImageDecoder;

use super::source::{FrameInfo, FrameSource, RgbBuf};
use crate::error::{Error, Result};

/// Largest JPEG frame accepted (a 4K JPEG at high quality is a few MB).
const MAX_FRAME: usize = 64 << 20;

/// Largest decoded frame accepted, in pixels (8192 × 8192).
const MAX_PIXELS: usize = 1 << 26;

/// Where a frame starting with SOI at offset 0 of a buffer ends.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The frame is the first `n` bytes (EOI included).
    Complete(usize),
    /// More bytes are needed.
    NeedMore,
    /// A new SOI begins at this offset before the frame ended: the frame is cut short.
    Restart(usize),
    /// The bytes at this offset are not a marker where one must be.
    Invalid(usize),
}

fn scan_jpeg(b: &[u8]) -> Scan {
    let mut pos = 2;
    loop {
        if pos + 1 >= b.len() {
            return Scan::NeedMore;
        }
        if b[pos] != 0xFF {
            return Scan::Invalid(pos);
        }
        if b[pos + 1] == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        let m = b[pos + 1];
        match m {
            0xD9 => return Scan::Complete(pos + 2),
            0xD8 => return Scan::Restart(pos),
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        if pos + 3 >= b.len() {
            return Scan::NeedMore;
        }
        let seg = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        if seg < 2 {
            return Scan::Invalid(pos);
        }
        pos += 2 + seg;
        if m == 0xDA {
            // Entropy-coded data: runs until a marker other than a stuffed 0xFF00 or a restart.
            loop {
                match b.get(pos..).and_then(|r| r.iter().position(|&x| x == 0xFF)) {
                    None => return Scan::NeedMore,
                    Some(i) => {
                        let at = pos + i;
                        match b.get(at + 1) {
                            None => return Scan::NeedMore,
                            Some(0x00) | Some(0xD0..=0xD7) => pos = at + 2,
                            Some(0xFF) => pos = at + 1,
                            Some(_) => {
                                pos = at;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Decodes one JPEG into `buf` (grey JPEGs are expanded to RGB through `gray`).
pub(crate) fn decode_jpeg(bytes: &[u8], buf: &mut RgbBuf, gray: &mut Vec<u8>) -> std::result::Result<(), String> {
    let dec = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let (w, h) = dec.dimensions();
    let (w, h) = (w as usize, h as usize);
    if w == 0 || h == 0 {
        return Err("the image has no pixels".into());
    }
    // A corrupt header can claim 65535×65535: refuse instead of trying to allocate 12 GB.
    if w.saturating_mul(h) > MAX_PIXELS {
        return Err(format!("the header claims {w}x{h} pixels, more than edgenet accepts ({MAX_PIXELS})"));
    }
    match dec.color_type() {
        image::ColorType::Rgb8 => dec.read_image(buf.reshape(w, h)).map_err(|e| e.to_string()),
        image::ColorType::L8 => {
            gray.resize(w * h, 0);
            dec.read_image(gray).map_err(|e| e.to_string())?;
            for (d, g) in buf.reshape(w, h).chunks_exact_mut(3).zip(gray.iter()) {
                d.fill(*g);
            }
            Ok(())
        }
        other => Err(format!("unsupported JPEG colour type {other:?}")),
    }
}

/// An MJPEG stream.
pub struct MjpegSource {
    reader: Box<dyn Read + Send>,
    name: String,
    /// Stream bytes; `data[start..end]` are read and not yet consumed.
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `data[start]`.
    consumed: u64,
    eof: bool,
    index: u64,
    corrupt: u64,
    gray: Vec<u8>,
    live: bool,
}

impl std::fmt::Debug for MjpegSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MjpegSource({})", self.name)
    }
}

impl MjpegSource {
    /// An MJPEG stream read from `reader`; `name` names it in messages.
    pub fn new(reader: Box<dyn Read + Send>, name: &str, live: bool) -> Self {
        MjpegSource {
            reader,
            name: name.into(),
            data: vec![0; 256 << 10],
            start: 0,
            end: 0,
            consumed: 0,
            eof: false,
            index: 0,
            corrupt: 0,
            gray: Vec::new(),
            live,
        }
    }

    fn frame_err(&self, message: String) -> Error {
        Error::Frame { source_name: self.name.clone(), index: self.index, offset: self.consumed, message }
    }

    /// Reads more bytes; false at the end of the stream.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 && self.end == self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            if self.data.len() >= MAX_FRAME {
                return Err(self.frame_err(format!("no end-of-image marker within {} MB: not an MJPEG stream?", MAX_FRAME >> 20)));
            }
            let n = (self.data.len() * 2).min(MAX_FRAME);
            self.data.resize(n, 0);
        }
        loop {
            match self.reader.read(&mut self.data[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.frame_err(format!("read failed: {e}"))),
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
    }

    /// Finds the next frame; returns its length at `data[start..]`.
    fn next_jpeg(&mut self) -> Result<Option<usize>> {
        loop {
            // Resynchronise on SOI (FF D8 FF).
            let avail = &self.data[self.start..self.end];
            match avail.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]) {
                Some(0) => {}
                Some(i) => {
                    log::warn!("{}: skipped {i} bytes that are not JPEG before byte offset {}", self.name, self.consumed + i as u64);
                    self.advance(i);
                }
                None => {
                    let keep = avail.len().min(2);
                    let junk = avail.len() - keep;
                    if junk > 0 {
                        log::warn!("{}: skipped {junk} bytes that are not JPEG at byte offset {}", self.name, self.consumed);
                        self.advance(junk);
                    }
                    if !self.fill()? {
                        if self.end > self.start {
                            log::warn!("{}: {} trailing bytes at the end are not JPEG", self.name, self.end - self.start);
                        }
                        return Ok(None);
                    }
                    continue;
                }
            }
            match scan_jpeg(&self.data[self.start..self.end]) {
                Scan::Complete(n) => return Ok(Some(n)),
                Scan::NeedMore => {
                    if !self.fill()? {
                        // Counted with the corrupt frames, so that a summary accounts for every
                        // frame sent; the stream ends with the error.
                        self.corrupt += 1;
                        return Err(self.frame_err(format!(
                            "truncated JPEG: the stream ends {} bytes into the frame, before its end-of-image marker",
                            self.end - self.start
                        )));
                    }
                }
                Scan::Restart(at) | Scan::Invalid(at) => {
                    self.corrupt += 1;
                    log::warn!("{}: frame {} (byte offset {}): malformed JPEG (bad marker at +{at}); skipped", self.name, self.index, self.consumed);
                    self.index += 1;
                    self.advance(at.max(1));
                }
            }
        }
    }
}

impl FrameSource for MjpegSource {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        loop {
            let Some(n) = self.next_jpeg()? else { return Ok(None) };
            let r = decode_jpeg(&self.data[self.start..self.start + n], buf, &mut self.gray);
            let index = self.index;
            let offset = self.consumed;
            self.index += 1;
            self.advance(n);
            match r {
                Ok(()) => return Ok(Some(FrameInfo { index, dropped: 0, captured: Instant::now() })),
                Err(e) => {
                    self.corrupt += 1;
                    log::warn!("{}: frame {index} (byte offset {offset}, {n} bytes): corrupt JPEG skipped: {e}", self.name);
                }
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn corrupt(&self) -> u64 {
        self.corrupt
    }

    fn is_live(&self) -> bool {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, v: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([v, v / 2, 255 - v]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn scanner_finds_the_end_and_ignores_stuffed_bytes() {
        let j = jpeg(16, 8, 10);
        assert_eq!(scan_jpeg(&j), Scan::Complete(j.len()));
        assert_eq!(scan_jpeg(&j[..j.len() - 1]), Scan::NeedMore);
        // An APP segment holding FF D9 (as an EXIF thumbnail would) does not end the frame.
        let mut k = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00];
        k.extend_from_slice(&j[2..]);
        assert_eq!(scan_jpeg(&k), Scan::Complete(k.len()));
        assert_eq!(scan_jpeg(&[0xFF, 0xD8, 0x12, 0x34]), Scan::Invalid(2));
    }

    #[test]
    fn splits_decodes_and_skips_a_corrupt_frame() {
        let mut s = Vec::new();
        s.extend(jpeg(16, 8, 10));
        s.extend(b"junk");
        // SOI, a bogus SOF0 with zero size, EOI: found as a frame, fails to decode.
        s.extend([0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9]);
        s.extend(jpeg(8, 4, 200));
        let mut src = MjpegSource::new(Box::new(Cursor::new(s)), "t", false);
        let mut buf = RgbBuf::new();
        let a = src.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((a.index, buf.width, buf.height), (0, 16, 8));
        let b = src.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((b.index, buf.width, buf.height, src.corrupt()), (2, 8, 4, 1));
        assert!((buf.data[0] as i32 - 200).abs() < 8, "{}", buf.data[0]);
        assert!(src.next_frame(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused() {
        let mut j = jpeg(16, 8, 10);
        let sof = j.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        j[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        let mut buf = RgbBuf::new();
        let e = decode_jpeg(&j, &mut buf, &mut Vec::new()).unwrap_err();
        assert!(e.contains("65535x65535"), "{e}");
        assert!(buf.data.capacity() < 1 << 20);
    }

    #[test]
    fn a_truncated_last_frame_is_an_error_naming_it() {
        let mut s = jpeg(16, 8, 10);
        let j = jpeg(16, 8, 99);
        s.extend_from_slice(&j[..j.len() / 2]);
        let first = s.len() - j.len() / 2;
        let mut src = MjpegSource::new(Box::new(Cursor::new(s)), "cam.mjpeg", false);
        let mut buf = RgbBuf::new();
        assert!(src.next_frame(&mut buf).unwrap().is_some());
        let e = src.next_frame(&mut buf).unwrap_err().to_string();
        assert!(e.contains("cam.mjpeg") && e.contains("frame 1") && e.contains(&format!("byte offset {first}")) && e.contains("truncated"), "{e}");
        assert_eq!(src.corrupt(), 1, "the truncated frame is accounted for");
    }
}
