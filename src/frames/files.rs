//! Image files as a frame source: one file, or every file of a directory in name order.

use std::path::PathBuf;
use std::time::Instant;

use super::image_file::{decode_rgb, list_dir};
use super::source::{FrameInfo, FrameSource, RgbBuf};
use crate::error::{Error, Result};

/// Image files (JPEG, PNG, BMP, PNM) read one by one. A file that does not decode is skipped,
/// counted and logged. Decoding allocates (the image crate makes its own buffers); this source
/// is for stills, not for the zero-allocation camera path.
#[derive(Debug)]
pub struct FileSource {
    files: Vec<PathBuf>,
    next: usize,
    name: String,
    current: String,
    bytes: Vec<u8>,
    corrupt: u64,
}

impl FileSource {
    /// A directory's files in name order, or a single file.
    ///
    /// # Errors
    /// [`Error::Source`] when the path does not exist or the directory holds no file.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let files = if path.is_dir() {
            list_dir(path)?
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            return Err(Error::Source { source_name: name, message: "no such file or directory".into() });
        };
        if files.is_empty() {
            return Err(Error::Source { source_name: name, message: "the directory holds no files".into() });
        }
        Ok(FileSource { files, next: 0, name, current: String::new(), bytes: Vec::new(), corrupt: 0 })
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        while let Some(path) = self.files.get(self.next) {
            let index = self.next as u64;
            self.next += 1;
            let r = std::fs::read(path).map_err(|e| Error::Image { path: path.clone(), message: e.to_string() }).and_then(|b| {
                self.bytes = b;
                decode_rgb(&self.bytes, path)
            });
            match r {
                Ok(img) => {
                    buf.reshape(img.width, img.height).copy_from_slice(&img.data);
                    self.current = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    return Ok(Some(FrameInfo { index, dropped: 0, captured: Instant::now() }));
                }
                Err(e) => {
                    self.corrupt += 1;
                    log::warn!("{}: frame {index}: skipped: {e}", self.name);
                }
            }
        }
        Ok(None)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn corrupt(&self) -> u64 {
        self.corrupt
    }

    fn frame_name(&self) -> Option<&str> {
        Some(&self.current)
    }
}
