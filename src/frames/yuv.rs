//! Raw pixel formats and their conversion to packed RGB8: BT.601 YUV (full or limited range)
//! in I420, NV12 and YUYV layouts, and RGB/BGR. Chroma is upsampled by repetition (each
//! chroma sample covers its 2×2 or 2×1 block), as ffmpeg's unscaled converters and most
//! camera pipelines do. Every function writes into a caller's buffer and allocates nothing.
//! [`StreamFormat`] is a byte stream's encoding: raw frames in one of these formats, or JPEGs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The encoding of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// Fixed-size raw frames.
    Raw(PixelFormat),
    /// Concatenated JPEGs.
    Mjpeg,
}

impl StreamFormat {
    /// Parses a pixel format name or `mjpeg` (also `jpeg`, `mjpg`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mjpeg" | "mjpg" | "jpeg" => Some(StreamFormat::Mjpeg),
            other => PixelFormat::parse(other).map(StreamFormat::Raw),
        }
    }
}

/// The byte layout of one raw frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed R G B, 3 bytes per pixel (ffmpeg `rgb24`).
    Rgb24,
    /// Packed B G R (ffmpeg `bgr24`, OpenCV's order).
    Bgr24,
    /// Planar YUV 4:2:0, I420: the Y plane, then U, then V at half width and height (rounded
    /// up); ffmpeg `yuv420p`, `rpicam-vid --codec yuv420`.
    Yuv420,
    /// Semi-planar YUV 4:2:0: the Y plane, then interleaved U V at half resolution.
    Nv12,
    /// Packed YUV 4:2:2, Y0 U Y1 V (ffmpeg `yuyv422`, V4L2 `YUYV`); the width must be even.
    Yuyv,
}

impl PixelFormat {
    /// Parses `rgb24`, `bgr24`, `yuv420` (also `i420`, `yuv420p`), `nv12`, `yuyv` (also
    /// `yuyv422`, `yuy2`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "rgb24" | "rgb" => PixelFormat::Rgb24,
            "bgr24" | "bgr" => PixelFormat::Bgr24,
            "yuv420" | "yuv420p" | "i420" => PixelFormat::Yuv420,
            "nv12" => PixelFormat::Nv12,
            "yuyv" | "yuyv422" | "yuy2" => PixelFormat::Yuyv,
            _ => return None,
        })
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Bgr24 => "bgr24",
            PixelFormat::Yuv420 => "yuv420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Yuyv => "yuyv",
        }
    }

    /// Whether this is a YUV format (so the range matters).
    pub fn is_yuv(self) -> bool {
        matches!(self, PixelFormat::Yuv420 | PixelFormat::Nv12 | PixelFormat::Yuyv)
    }

    /// Bytes of one `width`×`height` frame.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty size, an odd width in YUYV, or a size whose byte count
    /// overflows.
    pub fn frame_len(self, width: usize, height: usize) -> Result<usize> {
        if width == 0 || height == 0 {
            return Err(Error::Config(format!("frame size {width}x{height} has no pixels")));
        }
        if self == PixelFormat::Yuyv && !width.is_multiple_of(2) {
            return Err(Error::Config(format!("yuyv frames need an even width, not {width}")));
        }
        let px = width.checked_mul(height);
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let n = match self {
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => px.and_then(|p| p.checked_mul(3)),
            PixelFormat::Yuv420 | PixelFormat::Nv12 => px.and_then(|p| cw.checked_mul(ch).and_then(|c| c.checked_mul(2)).and_then(|c| p.checked_add(c))),
            PixelFormat::Yuyv => px.and_then(|p| p.checked_mul(2)),
        };
        n.filter(|n| *n <= 1 << 31).ok_or_else(|| Error::Config(format!("frame size {width}x{height} is too large")))
    }
}

/// The YUV quantisation range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YuvRange {
    /// "TV" range: Y in 16..=235, chroma in 16..=240 (cameras, video encoders; the default).
    #[default]
    Limited,
    /// "PC"/JPEG range: everything 0..=255.
    Full,
}

impl YuvRange {
    /// Parses `limited` (also `tv`) or `full` (also `pc`, `jpeg`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "limited" | "tv" => Some(YuvRange::Limited),
            "full" | "pc" | "jpeg" => Some(YuvRange::Full),
            _ => None,
        }
    }
}

/// BT.601 coefficients in 16.16 fixed point.
#[derive(Debug, Clone, Copy)]
struct Coeffs {
    y_off: i32,
    y: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
}

impl Coeffs {
    const fn of(range: YuvRange) -> Coeffs {
        match range {
            // 255/219 = 1.164383; 1.402·255/224 = 1.596027; 0.344136·255/224 = 0.391762;
            // 0.714136·255/224 = 0.812968; 1.772·255/224 = 2.017232.
            YuvRange::Limited => Coeffs { y_off: 16, y: 76309, rv: 104597, gu: 25675, gv: 53279, bu: 132201 },
            YuvRange::Full => Coeffs { y_off: 0, y: 65536, rv: 91881, gu: 22554, gv: 46802, bu: 116130 },
        }
    }

    #[inline(always)]
    fn rgb(&self, y: u8, u: u8, v: u8, out: &mut [u8]) {
        let c = (y as i32 - self.y_off) * self.y + 32768;
        let d = u as i32 - 128;
        let e = v as i32 - 128;
        let clamp = |x: i32| (x >> 16).clamp(0, 255) as u8;
        out[0] = clamp(c + self.rv * e);
        out[1] = clamp(c - self.gu * d - self.gv * e);
        out[2] = clamp(c + self.bu * d);
    }
}

/// Converts one raw frame to packed RGB8.
///
/// # Errors
/// [`Error::Input`] when `src` is not exactly one frame of `format` at `width`×`height` or
/// `dst` is not `width · height · 3` bytes.
pub fn to_rgb(format: PixelFormat, range: YuvRange, src: &[u8], width: usize, height: usize, dst: &mut [u8]) -> Result<()> {
    let need = format.frame_len(width, height)?;
    if src.len() != need {
        return Err(Error::Input(format!("a {width}x{height} {} frame has {need} bytes, got {}", format.name(), src.len())));
    }
    if dst.len() != width * height * 3 {
        return Err(Error::Input(format!("RGB buffer of {} bytes for {width}x{height}", dst.len())));
    }
    let k = Coeffs::of(range);
    let (w, h) = (width, height);
    let cw = w.div_ceil(2);
    match format {
        PixelFormat::Rgb24 => dst.copy_from_slice(src),
        PixelFormat::Bgr24 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                d[0] = s[2];
                d[1] = s[1];
                d[2] = s[0];
            }
        }
        PixelFormat::Yuv420 | PixelFormat::Nv12 => {
            let (yp, chroma) = src.split_at(w * h);
            let csize = cw * h.div_ceil(2);
            for row in 0..h {
                let yr = &yp[row * w..(row + 1) * w];
                let dr = &mut dst[row * w * 3..(row + 1) * w * 3];
                let crow = row / 2;
                if format == PixelFormat::Yuv420 {
                    let ur = &chroma[crow * cw..(crow + 1) * cw];
                    let vr = &chroma[csize + crow * cw..csize + (crow + 1) * cw];
                    for (x, (yv, d)) in yr.iter().zip(dr.chunks_exact_mut(3)).enumerate() {
                        k.rgb(*yv, ur[x / 2], vr[x / 2], d);
                    }
                } else {
                    let uv = &chroma[crow * cw * 2..(crow + 1) * cw * 2];
                    for (x, (yv, d)) in yr.iter().zip(dr.chunks_exact_mut(3)).enumerate() {
                        k.rgb(*yv, uv[(x / 2) * 2], uv[(x / 2) * 2 + 1], d);
                    }
                }
            }
        }
        PixelFormat::Yuyv => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                let (d0, d1) = d.split_at_mut(3);
                k.rgb(s[0], s[1], s[3], d0);
                k.rgb(s[2], s[1], s[3], d1);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 RGB → YUV, the textbook floating-point formulas (test-only reference encoder).
    fn yuv_of(rgb: [u8; 3], range: YuvRange) -> [u8; 3] {
        let [r, g, b] = rgb.map(|v| v as f64);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let u = (b - y) / 1.772;
        let v = (r - y) / 1.402;
        let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
        match range {
            YuvRange::Full => [q(y), q(u + 128.0), q(v + 128.0)],
            YuvRange::Limited => [q(16.0 + y * 219.0 / 255.0), q(128.0 + u * 224.0 / 255.0), q(128.0 + v * 224.0 / 255.0)],
        }
    }

    fn one_pixel(format: PixelFormat, range: YuvRange, yuv: [u8; 3]) -> [u8; 3] {
        // A 2×2 frame of one colour.
        let [y, u, v] = yuv;
        let src: Vec<u8> = match format {
            PixelFormat::Yuv420 => vec![y, y, y, y, u, v],
            PixelFormat::Nv12 => vec![y, y, y, y, u, v],
            PixelFormat::Yuyv => vec![y, u, y, v, y, u, y, v],
            _ => unreachable!(),
        };
        let mut dst = [0u8; 12];
        to_rgb(format, range, &src, 2, 2, &mut dst).unwrap();
        assert!(dst.chunks_exact(3).all(|p| p == &dst[..3]), "{format:?}: {dst:?}");
        [dst[0], dst[1], dst[2]]
    }

    #[test]
    fn known_colours_limited_range() {
        // Reference values: the BT.601 limited-range codes ffmpeg writes for these colours
        // (`ffmpeg -f lavfi -i color=c=red … -pix_fmt yuv420p`: Y 81 U 90 V 240).
        let cases = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([126, 128, 128], [128, 128, 128]),
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
        ];
        for f in [PixelFormat::Yuv420, PixelFormat::Nv12, PixelFormat::Yuyv] {
            for (yuv, want) in cases {
                let got = one_pixel(f, YuvRange::Limited, yuv);
                for c in 0..3 {
                    assert!((got[c] as i32 - want[c]).abs() <= 2, "{f:?} {yuv:?}: {got:?}, want {want:?}");
                }
            }
        }
    }

    #[test]
    fn known_colours_full_range() {
        assert_eq!(one_pixel(PixelFormat::Yuv420, YuvRange::Full, [0, 128, 128]), [0, 0, 0]);
        assert_eq!(one_pixel(PixelFormat::Yuv420, YuvRange::Full, [255, 128, 128]), [255, 255, 255]);
        // Limited-range black read as full range is dark grey, not black: the range matters.
        assert_eq!(one_pixel(PixelFormat::Yuv420, YuvRange::Full, [16, 128, 128]), [16, 16, 16]);
        let red = one_pixel(PixelFormat::Nv12, YuvRange::Full, yuv_of([255, 0, 0], YuvRange::Full));
        assert!(red[0] >= 253 && red[1] <= 2 && red[2] <= 2, "{red:?}");
    }

    #[test]
    fn round_trip_is_close_in_both_ranges() {
        let mut worst = [0i32; 2];
        for (ri, range) in [YuvRange::Full, YuvRange::Limited].into_iter().enumerate() {
            for r in (0..=255).step_by(15) {
                for g in (0..=255).step_by(15) {
                    for b in (0..=255).step_by(15) {
                        let rgb = [r as u8, g as u8, b as u8];
                        let got = one_pixel(PixelFormat::Yuyv, range, yuv_of(rgb, range));
                        for c in 0..3 {
                            worst[ri] = worst[ri].max((got[c] as i32 - rgb[c] as i32).abs());
                        }
                    }
                }
            }
        }
        // 8-bit YUV loses a little; limited range loses a little more.
        assert!(worst[0] <= 2 && worst[1] <= 3, "worst error full {} limited {}", worst[0], worst[1]);
    }

    #[test]
    fn layouts_place_chroma_per_block() {
        // 4×2 I420: left half red, right half blue (limited range).
        let (r, b) = ([81u8, 90, 240], [41u8, 240, 110]);
        let src = [r[0], r[0], b[0], b[0], r[0], r[0], b[0], b[0], r[1], b[1], r[2], b[2]];
        let mut dst = [0u8; 24];
        to_rgb(PixelFormat::Yuv420, YuvRange::Limited, &src, 4, 2, &mut dst).unwrap();
        for row in 0..2 {
            for x in 0..4 {
                let p = &dst[(row * 4 + x) * 3..(row * 4 + x) * 3 + 3];
                if x < 2 {
                    assert!(p[0] > 250 && p[2] < 5, "{x},{row}: {p:?}");
                } else {
                    assert!(p[2] > 250 && p[0] < 5, "{x},{row}: {p:?}");
                }
            }
        }
        // Odd sizes round the chroma planes up, like ffmpeg.
        assert_eq!(PixelFormat::Yuv420.frame_len(3, 3).unwrap(), 9 + 2 * 4);
        let mut d = [0u8; 27];
        assert!(to_rgb(PixelFormat::Nv12, YuvRange::Full, &[128; 17], 3, 3, &mut d).is_ok());
        // BGR swaps.
        let mut d = [0u8; 3];
        to_rgb(PixelFormat::Bgr24, YuvRange::Full, &[1, 2, 3], 1, 1, &mut d).unwrap();
        assert_eq!(d, [3, 2, 1]);
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut d = [0u8; 12];
        assert!(to_rgb(PixelFormat::Yuv420, YuvRange::Full, &[0; 5], 2, 2, &mut d).is_err());
        assert!(to_rgb(PixelFormat::Yuyv, YuvRange::Full, &[0; 6], 3, 1, &mut d).is_err());
        assert!(PixelFormat::Rgb24.frame_len(0, 5).is_err());
        assert!(PixelFormat::Rgb24.frame_len(usize::MAX / 2, 5).is_err());
        assert_eq!(PixelFormat::parse("yuv420p"), Some(PixelFormat::Yuv420));
        assert_eq!(PixelFormat::parse("mjpeg"), None);
    }
}
