//! V4L2 cameras (`/dev/videoN`), YUYV or MJPEG, through the `v4l` crate when edgenet is built
//! with the `v4l` cargo feature. Without it, opening a device says so.

use std::path::Path;

use super::source::FrameSource;
use super::yuv::{StreamFormat, YuvRange};
use crate::error::{Error, Result};

fn err(p: &Path, message: impl Into<String>) -> Error {
    Error::Source { source_name: p.display().to_string(), message: message.into() }
}

/// Opens a V4L2 capture device, asking for `format` (YUYV, the default, or MJPEG) at `size`
/// (else the device's current size); YUYV frames are converted with `range`. These come from
/// the `--source` options ([`super::SourceSpec`]), which open cameras through here.
///
/// # Errors
/// [`Error::Source`] naming the device: it does not exist, it is busy (another program is
/// streaming from it), it offers neither YUYV nor MJPEG, or this build has no V4L2 support.
pub fn open(path: &Path, format: Option<StreamFormat>, size: Option<(usize, usize)>, range: YuvRange) -> Result<Box<dyn FrameSource>> {
    if !path.exists() {
        return Err(err(path, "no such device (is the camera connected? `ls /dev/video*` lists the capture devices)"));
    }
    imp::open(path, format, size, range)
}

#[cfg(not(feature = "v4l"))]
mod imp {
    use super::*;

    pub fn open(path: &Path, _format: Option<StreamFormat>, _size: Option<(usize, usize)>, _range: YuvRange) -> Result<Box<dyn FrameSource>> {
        Err(err(
            path,
            "this edgenet was built without V4L2 support (cargo feature `v4l`): rebuild with `--features v4l`, \
             or pipe the camera in: `rpicam-vid -t 0 -n --codec yuv420 --width 640 --height 480 -o - | edgenet run MODEL --source - --format yuv420 --size 640x480`",
        ))
    }
}

#[cfg(feature = "v4l")]
mod imp {
    use std::time::Instant;

    use v4l::buffer::Type;
    use v4l::io::mmap::Stream;
    use v4l::io::traits::CaptureStream;
    use v4l::video::Capture;
    use v4l::{Device, FourCC};

    use super::*;
    use crate::frames::mjpeg::decode_jpeg;
    use crate::frames::source::{FrameInfo, RgbBuf};
    use crate::frames::yuv::{to_rgb, PixelFormat};

    fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
        let hint = match e.raw_os_error() {
            Some(16) => " (the device is busy: another program is using the camera)",
            Some(13) => " (permission denied: add yourself to the `video` group)",
            _ => "",
        };
        err(path, format!("{what}: {e}{hint}"))
    }

    pub struct V4l2Source {
        _dev: Device,
        stream: Stream<'static>,
        name: String,
        mjpeg: bool,
        width: usize,
        height: usize,
        range: YuvRange,
        index: u64,
        corrupt: u64,
        gray: Vec<u8>,
    }

    pub fn open(path: &Path, format: Option<StreamFormat>, size: Option<(usize, usize)>, range: YuvRange) -> Result<Box<dyn FrameSource>> {
        let dev = Device::with_path(path).map_err(|e| io_err(path, "cannot open", e))?;
        let mut fmt = dev.format().map_err(|e| io_err(path, "cannot read the format", e))?;
        let want_mjpeg = match format {
            None | Some(StreamFormat::Raw(PixelFormat::Yuyv)) => false,
            Some(StreamFormat::Mjpeg) => true,
            Some(StreamFormat::Raw(f)) => return Err(err(path, format!("V4L2 capture supports --format yuyv or mjpeg, not {}", f.name()))),
        };
        if let Some((w, h)) = size {
            fmt.width = w as u32;
            fmt.height = h as u32;
        }
        fmt.fourcc = FourCC::new(if want_mjpeg { b"MJPG" } else { b"YUYV" });
        let fmt = dev.set_format(&fmt).map_err(|e| io_err(path, "cannot set the format", e))?;
        let mjpeg = fmt.fourcc == FourCC::new(b"MJPG");
        if !mjpeg && fmt.fourcc != FourCC::new(b"YUYV") {
            return Err(err(path, format!("the device offers {} instead of YUYV or MJPEG", fmt.fourcc)));
        }
        if !mjpeg && fmt.stride as usize != fmt.width as usize * 2 && fmt.stride != 0 {
            return Err(err(path, format!("YUYV rows are padded (stride {} for width {}): not supported", fmt.stride, fmt.width)));
        }
        let stream = Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(|e| io_err(path, "cannot start streaming", e))?;
        log::info!("{}: {}x{} {}", path.display(), fmt.width, fmt.height, fmt.fourcc);
        Ok(Box::new(V4l2Source {
            _dev: dev,
            stream,
            name: path.display().to_string(),
            mjpeg,
            width: fmt.width as usize,
            height: fmt.height as usize,
            range,
            index: 0,
            corrupt: 0,
            gray: Vec::new(),
        }))
    }

    impl FrameSource for V4l2Source {
        fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
            loop {
                let index = self.index;
                self.index += 1;
                let (data, meta) = self.stream.next().map_err(|e| Error::Frame {
                    source_name: self.name.clone(),
                    index,
                    offset: 0,
                    message: format!("capture failed: {e}"),
                })?;
                let used = (meta.bytesused as usize).min(data.len());
                let bytes = &data[..used];
                let r = if self.mjpeg {
                    decode_jpeg(bytes, buf, &mut self.gray)
                } else {
                    let (w, h) = (self.width, self.height);
                    to_rgb(PixelFormat::Yuyv, self.range, bytes, w, h, buf.reshape(w, h)).map_err(|e| e.to_string())
                };
                match r {
                    Ok(()) => return Ok(Some(FrameInfo { index, dropped: 0, captured: Instant::now() })),
                    Err(e) => {
                        self.corrupt += 1;
                        log::warn!("{}: frame {index}: unusable frame skipped: {e}", self.name);
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
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `--source P` with no other option asks of a camera.
    fn open_default(p: &str) -> Result<Box<dyn FrameSource>> {
        open(Path::new(p), None, None, YuvRange::Limited)
    }

    #[test]
    fn a_missing_device_is_named() {
        let e = open_default("/dev/video99").err().unwrap().to_string();
        assert!(e.starts_with("frame source /dev/video99: no such device"), "{e}");
    }

    #[cfg(not(feature = "v4l"))]
    #[test]
    fn an_existing_device_says_the_build_has_no_v4l2() {
        // /dev/null stands in for a device node that exists.
        let e = open_default("/dev/null").err().unwrap().to_string();
        assert!(e.contains("/dev/null") && e.contains("built without V4L2 support") && e.contains("--features v4l"), "{e}");
    }

    #[cfg(feature = "v4l")]
    #[test]
    fn a_node_that_is_no_camera_is_refused_with_its_name() {
        let e = open_default("/dev/null").err().unwrap().to_string();
        assert!(e.contains("/dev/null"), "{e}");
    }
}
