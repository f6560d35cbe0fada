//! Live sources never queue latency: a reader thread pulls frames as fast as the source makes
//! them and keeps only the newest, so a slow model always works on the latest frame and the
//! frames it had no time for are counted as dropped.
//!
//! Three buffers rotate by swapping (no copy, no allocation once they have grown to the frame
//! size): the reader's back buffer, the pending slot, and the consumer's buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::source::{FrameInfo, FrameSource, RgbBuf};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct Slot {
    buf: RgbBuf,
    info: Option<FrameInfo>,
    dropped_since: u64,
    dropped_total: u64,
    corrupt: u64,
    end: bool,
    error: Option<Error>,
}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
    stop: AtomicBool,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic in the reader cannot leave the slot half-written (swaps only): go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wraps a source in a reader thread that keeps only the newest frame.
#[derive(Debug)]
pub struct Latest {
    shared: Arc<Shared>,
    name: String,
    corrupt: u64,
}

impl Latest {
    /// Starts the reader thread on `source`.
    ///
    /// # Errors
    /// [`Error::Source`] when the thread cannot be started.
    pub fn spawn(mut source: Box<dyn FrameSource>) -> Result<Self> {
        let name = source.name().to_string();
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("edgenet-frames".into())
            .spawn(move || {
                let mut back = RgbBuf::new();
                while !sh.stop.load(Ordering::Relaxed) {
                    let r = source.next_frame(&mut back);
                    let mut slot = lock(&sh.slot);
                    slot.corrupt = source.corrupt();
                    match r {
                        Ok(Some(info)) => {
                            if slot.info.is_some() {
                                slot.dropped_since += 1;
                                slot.dropped_total += 1;
                            }
                            std::mem::swap(&mut slot.buf, &mut back);
                            slot.info = Some(info);
                        }
                        Ok(None) => slot.end = true,
                        Err(e) => {
                            slot.error = Some(e);
                            slot.end = true;
                        }
                    }
                    let end = slot.end;
                    drop(slot);
                    sh.ready.notify_one();
                    if end {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Source { source_name: name.clone(), message: format!("cannot start the reader thread: {e}") })?;
        Ok(Latest { shared, name, corrupt: 0 })
    }

    /// Frames dropped so far because a newer one replaced them before they were taken.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared.slot).dropped_total
    }
}

impl Drop for Latest {
    fn drop(&mut self) {
        // The reader may be blocked in a read (a pipe): it is not joined, it stops after its
        // current frame or with the process.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl FrameSource for Latest {
    fn next_frame(&mut self, buf: &mut RgbBuf) -> Result<Option<FrameInfo>> {
        let mut slot = lock(&self.shared.slot);
        while slot.info.is_none() && !slot.end {
            slot = self.shared.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
        }
        self.corrupt = slot.corrupt;
        if let Some(mut info) = slot.info.take() {
            std::mem::swap(&mut slot.buf, buf);
            info.dropped = slot.dropped_since;
            slot.dropped_since = 0;
            return Ok(Some(info));
        }
        match slot.error.take() {
            Some(e) => Err(e),
            None => Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::synthetic::SyntheticSource;
    use std::time::Duration;

    /// Waits until the reader has read its source to the end (polling: an event, not a time).
    fn wait_for_the_end(live: &Latest) {
        while !lock(&live.shared.slot).end {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_slow_consumer_gets_the_newest_frame_and_counts_the_rest() {
        // The slowest consumer: it takes nothing until the reader has read all 200 frames.
        let mut live = Latest::spawn(Box::new(SyntheticSource::new(16, 8, Some(200)))).unwrap();
        wait_for_the_end(&live);
        let mut buf = RgbBuf::new();
        let info = live.next_frame(&mut buf).unwrap().expect("the newest frame");
        assert_eq!((info.index, info.dropped), (199, 199), "the newest frame, and the 199 it replaced");
        let mut want = vec![0; 16 * 8 * 3];
        SyntheticSource::draw(16, 8, 199, &mut want);
        assert_eq!(buf.data, want, "the buffer holds frame 199");
        assert!(live.next_frame(&mut buf).unwrap().is_none());
        assert_eq!(live.dropped(), 199);
    }

    #[test]
    fn frames_taken_while_the_reader_runs_are_all_accounted_for() {
        // 200 frames at 1000 fps; the consumer takes 20 ms per frame. How many it gets depends
        // on scheduling; what must hold whatever the timing is checked.
        let src = SyntheticSource::new(16, 8, Some(200)).paced(1000.0);
        let mut live = Latest::spawn(Box::new(src)).unwrap();
        let mut buf = RgbBuf::new();
        let (mut seen, mut dropped, mut last) = (0u64, 0u64, None::<u64>);
        while let Some(info) = live.next_frame(&mut buf).unwrap() {
            if let Some(l) = last {
                // Indices only go up, and the gap is exactly the dropped count.
                assert_eq!(info.index, l + 1 + info.dropped);
            } else {
                assert_eq!(info.index, info.dropped);
            }
            let mut want = vec![0; 16 * 8 * 3];
            SyntheticSource::draw(16, 8, info.index, &mut want);
            assert_eq!(buf.data, want, "the buffer holds frame {}", info.index);
            last = Some(info.index);
            seen += 1;
            dropped += info.dropped;
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(seen + dropped, 200);
        assert_eq!(dropped, live.dropped());
        assert_eq!(last, Some(199), "the last frame is always delivered");
    }

    #[test]
    fn errors_come_after_the_good_frames() {
        let bytes: Vec<u8> = vec![7; 12 + 5];
        let raw = crate::frames::raw::RawSource::new(
            Box::new(std::io::Cursor::new(bytes)),
            "pipe",
            crate::frames::yuv::PixelFormat::Rgb24,
            crate::frames::yuv::YuvRange::Full,
            2,
            2,
            true,
        )
        .unwrap();
        let mut live = Latest::spawn(Box::new(raw)).unwrap();
        let mut buf = RgbBuf::new();
        assert_eq!(live.next_frame(&mut buf).unwrap().map(|i| i.index), Some(0));
        let e = live.next_frame(&mut buf).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
