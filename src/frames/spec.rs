//! `--source SPEC` and its companions (`--format`, `--size`, `--yuv-range`, `--live`), parsed
//! and opened.
//!
//! This module opens every kind of source, so it uses the source modules; none of them uses
//! it (a camera gets the format, size and range it needs as values, see [`super::v4l2::open`]).

use std::path::{Path, PathBuf};

use super::files::FileSource;
use super::live::Latest;
use super::mjpeg::MjpegSource;
use super::raw::RawSource;
use super::source::FrameSource;
use super::synthetic::SyntheticSource;
pub use super::yuv::StreamFormat;
use super::yuv::YuvRange;
use crate::error::{Error, Result};

/// Whether to keep only the newest frame (see [`Latest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiveMode {
    /// Live for cameras, pipes, FIFOs and paced synthetic sources; not for files.
    #[default]
    Auto,
    /// Always newest-frame-wins.
    On,
    /// Every frame is processed, in order (a recorded stream through a pipe).
    Off,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Standard input (`-` or `stdin`).
    Stdin,
    /// A V4L2 device, `/dev/videoN`.
    Device(PathBuf),
    /// The synthetic pattern: size and optional frame rate (`synthetic:320x240@30`).
    Synthetic {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Frames per second (live) or as fast as possible.
        fps: Option<f64>,
    },
    /// A file, FIFO or directory.
    Path(PathBuf),
}

/// A parsed `--source` with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// The source.
    pub kind: SourceKind,
    /// Stream encoding (needed for stdin, FIFOs, raw files).
    pub format: Option<StreamFormat>,
    /// Frame size of raw streams (and the size requested from a camera).
    pub size: Option<(usize, usize)>,
    /// YUV range.
    pub range: YuvRange,
    /// Newest-frame-wins or every frame.
    pub live: LiveMode,
    /// Stop after this many frames (synthetic sources need it or run forever).
    pub limit: Option<u64>,
}

/// Parses `WxH` (also `W×H`).
pub fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (w, h) = s.split_once(['x', 'X', '×'])?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0 && w <= 16384 && h <= 16384).then_some((w, h))
}

impl SourceKind {
    /// Parses the SPEC of `--source`: `-`/`stdin`, `/dev/videoN`, `synthetic[:WxH][@FPS]`, or a
    /// path.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed synthetic spec.
    pub fn parse(spec: &str) -> Result<Self> {
        if spec == "-" || spec == "stdin" {
            return Ok(SourceKind::Stdin);
        }
        if let Some(rest) = spec.strip_prefix("synthetic") {
            let bad = || Error::Config(format!("source `{spec}`: expected synthetic[:WxH][@FPS], e.g. synthetic:320x240@30"));
            let (size, fps) = match rest.split_once('@') {
                Some((s, f)) => (s, Some(f.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0).ok_or_else(bad)?)),
                None => (rest, None),
            };
            let (width, height) = match size {
                "" => (320, 240),
                s => s.strip_prefix(':').and_then(parse_size).ok_or_else(bad)?,
            };
            return Ok(SourceKind::Synthetic { width, height, fps });
        }
        if spec.starts_with("/dev/video") {
            return Ok(SourceKind::Device(PathBuf::from(spec)));
        }
        Ok(SourceKind::Path(PathBuf::from(spec)))
    }
}

#[cfg(unix)]
fn is_fifo_or_char(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_char_device() || m.file_type().is_socket())
}

#[cfg(not(unix))]
fn is_fifo_or_char(_: &Path) -> bool {
    false
}

fn stdin_is_live() -> bool {
    // A pipe or terminal is live; `< recording.yuv` (a regular file) is not.
    !std::fs::metadata("/dev/stdin").is_ok_and(|m| m.is_file())
}

fn source_err(name: &str, message: impl Into<String>) -> Error {
    Error::Source { source_name: name.to_string(), message: message.into() }
}

impl SourceSpec {
    /// Opens the source. Live ones (by [`LiveMode`]) come wrapped in [`Latest`].
    ///
    /// # Errors
    /// [`Error::Source`] naming the source: a missing file or device, a stream without
    /// `--format`, a raw stream without `--size`, a device that cannot be opened.
    pub fn open(&self) -> Result<Box<dyn FrameSource>> {
        let (src, auto_live): (Box<dyn FrameSource>, bool) = match &self.kind {
            SourceKind::Synthetic { width, height, fps } => {
                let s = SyntheticSource::new(*width, *height, self.limit);
                match fps {
                    Some(f) => (Box::new(s.paced(*f)), true),
                    None => (Box::new(s), false),
                }
            }
            SourceKind::Stdin => {
                let live = stdin_is_live();
                (self.stream(Box::new(std::io::stdin()), "stdin", live)?, live)
            }
            SourceKind::Device(p) => (super::v4l2::open(p, self.format, self.size, self.range)?, true),
            SourceKind::Path(p) => {
                let name = p.display().to_string();
                if !p.exists() {
                    return Err(source_err(&name, "no such file, directory or FIFO"));
                }
                if p.is_dir() {
                    if self.format.is_some() {
                        return Err(source_err(&name, "is a directory of images: --format applies to streams only"));
                    }
                    (Box::new(FileSource::open(p)?), false)
                } else {
                    let live = is_fifo_or_char(p);
                    let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                    let mjpeg_ext = matches!(ext.as_deref(), Some("mjpeg" | "mjpg"));
                    if self.format.is_none() && !live && !mjpeg_ext {
                        (Box::new(FileSource::open(p)?), false)
                    } else {
                        let f = std::fs::File::open(p).map_err(|e| source_err(&name, e.to_string()))?;
                        let spec =
                            if mjpeg_ext && self.format.is_none() { SourceSpec { format: Some(StreamFormat::Mjpeg), ..self.clone() } } else { self.clone() };
                        (spec.stream(Box::new(f), &name, live)?, live)
                    }
                }
            }
        };
        let live = match self.live {
            LiveMode::Auto => auto_live,
            LiveMode::On => true,
            LiveMode::Off => false,
        };
        if live {
            Ok(Box::new(Latest::spawn(src)?))
        } else {
            Ok(src)
        }
    }

    fn stream(&self, r: Box<dyn std::io::Read + Send>, name: &str, live: bool) -> Result<Box<dyn FrameSource>> {
        match self.format {
            None => Err(source_err(name, "a stream needs --format (rgb24, bgr24, yuv420, nv12, yuyv or mjpeg)")),
            Some(StreamFormat::Mjpeg) => Ok(Box::new(MjpegSource::new(r, name, live))),
            Some(StreamFormat::Raw(f)) => {
                let (w, h) = self.size.ok_or_else(|| source_err(name, format!("a raw {} stream needs --size WxH", f.name())))?;
                Ok(Box::new(RawSource::new(r, name, f, self.range, w, h, live)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::PixelFormat;

    #[test]
    fn specs_parse() {
        assert_eq!(SourceKind::parse("-").unwrap(), SourceKind::Stdin);
        assert_eq!(SourceKind::parse("stdin").unwrap(), SourceKind::Stdin);
        assert_eq!(SourceKind::parse("/dev/video0").unwrap(), SourceKind::Device("/dev/video0".into()));
        assert_eq!(SourceKind::parse("synthetic").unwrap(), SourceKind::Synthetic { width: 320, height: 240, fps: None });
        assert_eq!(SourceKind::parse("synthetic:64x48@30").unwrap(), SourceKind::Synthetic { width: 64, height: 48, fps: Some(30.0) });
        assert!(SourceKind::parse("synthetic:64").is_err());
        assert!(SourceKind::parse("synthetic@0").is_err());
        assert_eq!(SourceKind::parse("photos/").unwrap(), SourceKind::Path("photos/".into()));
        assert_eq!(parse_size("640x480"), Some((640, 480)));
        assert_eq!(parse_size("0x480"), None);
        assert_eq!(parse_size("640"), None);
        assert_eq!(StreamFormat::parse("MJPEG"), Some(StreamFormat::Mjpeg));
        assert_eq!(StreamFormat::parse("nv12"), Some(StreamFormat::Raw(PixelFormat::Nv12)));
    }

    #[test]
    fn missing_things_are_named() {
        let spec = |kind| SourceSpec { kind, format: None, size: None, range: YuvRange::Limited, live: LiveMode::Auto, limit: None };
        let e = spec(SourceKind::Path("/nonexistent/x.yuv".into())).open().err().unwrap().to_string();
        assert!(e.contains("/nonexistent/x.yuv") && e.contains("no such"), "{e}");
        let e = spec(SourceKind::Device("/dev/video99".into())).open().err().unwrap().to_string();
        assert!(e.contains("/dev/video99"), "{e}");
    }
}
