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

/// The files in `dir`, sorted by name (no recursion, hidden files skipped).
///
/// # Errors
/// [`Error::Io`] when the directory cannot be read.
pub fn list_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<std::path::PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    files.sort();
    Ok(files)
}

/// Decodes and preprocesses every image file in `dir` (name order) into model inputs.
/// Files that fail to decode are skipped with a warning and returned as errors.
///
/// # Errors
/// The directory cannot be read, or it holds no file at all.
pub fn load_inputs(dir: &Path, pre: &crate::frames::preprocess::Preprocess) -> Result<(Vec<(String, Vec<f32>)>, Vec<Error>)> {
    let files = list_dir(dir)?;
    if files.is_empty() {
        return Err(Error::Image { path: dir.into(), message: "the directory holds no image files".into() });
    }
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        let r = load_rgb(&f).and_then(|frame| {
            let mut p = crate::frames::preprocess::Preprocessor::new(pre, frame.width, frame.height)?;
            let mut x = vec![0.0; pre.input_len()];
            p.run(&frame.data, &mut x)?;
            Ok(x)
        });
        match r {
            Ok(x) => inputs.push((f.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), x)),
            Err(e) => {
                log::warn!("skipping {}: {e}", f.display());
                skipped.push(e);
            }
        }
    }
    Ok((inputs, skipped))
}
