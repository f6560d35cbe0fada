//! A deterministic moving test pattern, for tests and benchmarks without a camera.

use std::time::{Duration, Instant};

use super::source::{FrameInfo, FrameSource, RgbBuf};
use crate::error::Result;

/// Frame `i` is a diagonal colour gradient shifted by `i` pixels with a vertical bar moving
/// across it; the same index gives the same bytes. With a frame rate it is a live source that
/// produces frames on a clock, like a camera.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    width: usize,
    height: usize,
    index: u64,
    limit: Option<u64>,
    period: Option<Duration>,
    next_at: Option<Instant>,
    name: String,
}

impl SyntheticSource {
    /// A `width`×`height` pattern, as fast as it is read, endless unless `limit` is given.
    pub fn new(width: usize, height: usize, limit: Option<u64>) -> Self {
        SyntheticSource {
            width: width.max(1),
            height: height.max(1),
            index: 0,
            limit,
            period: None,
            next_at: None,
            name: format!("synthetic:{width}x{height}"),
        }
    }

    /// The same pattern delivered at `fps` frames per second (a live source).
    pub fn paced(mut self, fps: f64) -> Self {
        if fps.is_finite() && fps > 0.0 {
            self.period = Some(Duration::from_secs_f64(1.0 / fps));
            self.name = format!("{}@{fps}", self.name);
        }
        self
    }

    /// Draws frame `index` into `out` (`width · height · 3` bytes).
    pub fn draw(width: usize, height: usize, index: u64, out: &mut [u8]) {
        let shift = (index % 256) as usize;
        let bar = (index as usize * 4) % width.max(1);
        let bar_w = (width / 10).max(1);
        for y in 0..height {
            for x in 0..width {
                let p = &mut out[(y * width + x) * 3..(y * width + x) * 3 + 3];
                if x >= bar && x < bar + bar_w {
                    p.copy_from_slice(&[250, 250, 250]);
                } else {
                    p[0] = ((x * 255 / width.max(1)) + shift) as u8;
                    p[1] = ((y * 255 / height.max(1)) + shift / 2) as u8;
                    p[2] = ((x + y + 3 * shift) & 0xFF) as u8;
                }
            }
        }
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        if self.limit.is_some_and(|l| self.index >= l) {
            return Ok(None);
        }
        if let Some(p) = self.period {
            let now = Instant::now();
            let at = *self.next_at.get_or_insert(now);
            if at > now {
                std::thread::sleep(at - now);
            }
            self.next_at = Some(at + p);
        }
        Self::draw(self.width, self.height, self.index, buf.reshape(self.width, self.height));
        let info = FrameInfo { index: self.index, dropped: 0, captured: Instant::now() };
        self.index += 1;
        Ok(Some(info))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_live(&self) -> bool {
        self.period.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_moving_and_finite() {
        let mut s = SyntheticSource::new(32, 16, Some(3));
        let (mut a, mut b) = (RgbBuf::new(), RgbBuf::new());
        s.next_frame(&mut a).unwrap().unwrap();
        s.next_frame(&mut b).unwrap().unwrap();
        assert_ne!(a.data, b.data, "the pattern moves");
        let mut again = vec![0; 32 * 16 * 3];
        SyntheticSource::draw(32, 16, 0, &mut again);
        assert_eq!(a.data, again, "frame 0 is always the same");
        assert_eq!(s.next_frame(&mut a).unwrap().unwrap().index, 2);
        assert!(s.next_frame(&mut a).unwrap().is_none());
        assert!(!s.is_live() && SyntheticSource::new(4, 4, None).paced(30.0).is_live());
    }
}
