//! Still images from files (JPEG, PNG, BMP, PNM), decoded to packed RGB8.

use std::path::Path;

use crate::error::{Error, Result};

/// A decoded image as packed RGB8 (grey and RGBA sources are converted; alpha is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes, row-major, R G B.
    pub data: Vec<u8>,
}

/// Decodes an image file; the format is taken from the content, not the name.
///
/// # Errors
/// [`Error::Image`] naming the file: unreadable, empty, an unknown format, truncated or
/// corrupt data, or a zero-pixel image.
pub fn load_rgb(path: &Path) -> Result<RgbFrame> {
    let bytes = std::fs::read(path).map_err(|e| Error::Image { path: path.into(), message: e.to_string() })?;
    decode_rgb(&bytes, path)
}

/// Decodes image bytes; `path` names them in errors.
///
/// # Errors
/// As [`load_rgb`].
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbFrame> {
    let bad = |message: String| Error::Image { path: path.into(), message };
    if bytes.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    let format = image::guess_format(bytes).map_err(|_| bad("unrecognised image format (edgenet reads JPEG, PNG, BMP and PNM)".into()))?;
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| bad(format!("cannot decode {format:?}: {e}")))?;
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err(bad("the image has no pixels".into()));
    }
    Ok(RgbFrame { width: w, height: h, data: rgb.into_raw() })
}
